//! Where each layer's guess drifts: the logit lens of a member against the
//! reference's. At every layer the residual stream after the layer goes
//! through the model's own output norm and head ([`crate::analysis::lens`],
//! as the model pages do it), each model with its own (quantized) head, and
//! the member's distribution is compared with the reference's at the same
//! layer and position by KL(p_ref ‖ p_member), natural log.

use crate::analysis::lens::{NormKind, OutputHead};
use crate::anatomy::Anatomy;
use crate::engine::{Device, EngineError, Session};

/// What the lens needs of a model besides the head's matrix: the output
/// norm, read once from the session's file.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadParts {
    norm_weight: Vec<f32>,
    norm_bias: Option<Vec<f32>>,
    norm: NormKind,
    eps: f32,
    softcap: Option<f32>,
}

impl HeadParts {
    /// The output norm of `session`'s model, as the model pages read it.
    pub fn of(session: &Session) -> Result<HeadParts, EngineError> {
        let gguf = session.gguf();
        let anatomy = Anatomy::from_model(gguf).map_err(|e| EngineError::NotRunnable {
            path: session.path().to_path_buf(),
            problems: vec![e.to_string()],
        })?;
        let hp = &anatomy.hparams;
        let n_embd = session.dims(1).n_embd;
        let has = |name: &str| gguf.tensor(name).is_some();
        let norm_weight = if has("output_norm.weight") {
            Some(session.dequantize("output_norm.weight")?)
        } else {
            None
        };
        let norm_bias = if has("output_norm.bias") {
            Some(session.dequantize("output_norm.bias")?)
        } else {
            None
        };
        let norm = match (&norm_weight, hp.norm_rms_eps, hp.norm_eps) {
            (None, _, _) => NormKind::Identity,
            (Some(_), None, Some(_)) => NormKind::Layer,
            (Some(_), _, _) => NormKind::Rms,
        };
        Ok(HeadParts {
            norm_weight: norm_weight.unwrap_or_else(|| vec![1.0; n_embd]),
            norm_bias,
            norm,
            eps: hp.norm_rms_eps.or(hp.norm_eps).unwrap_or(1e-5) as f32,
            softcap: hp.final_logit_softcapping.map(|c| c as f32),
        })
    }

    /// The lens's head: these norm parts and `session`'s output matrix as
    /// stored, on `device`.
    pub fn head<'a>(
        &'a self,
        session: &Session,
        device: Device,
    ) -> Result<OutputHead<'a>, EngineError> {
        let dims = session.dims(1);
        Ok(OutputHead {
            product: session.device_matrix(
                session.output_weight_name(),
                device,
                dims.n_embd,
                dims.n_vocab,
            )?,
            norm_weight: &self.norm_weight,
            norm_bias: self.norm_bias.as_deref(),
            norm: self.norm,
            eps: self.eps,
            softcap: self.softcap,
        })
    }
}

/// log-softmax of one row, in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let max = f64::from(max);
    let sum: f64 = row.iter().map(|&l| (f64::from(l) - max).exp()).sum();
    let log_sum = sum.ln();
    row.iter().map(|&l| f64::from(l) - max - log_sum).collect()
}

/// KL(softmax(base) ‖ softmax(member)), natural log; exactly 0 for equal
/// rows, `None` when the lengths differ.
pub fn kl_logits(base: &[f32], member: &[f32]) -> Option<f64> {
    if base.len() != member.len() {
        return None;
    }
    let (lb, lq) = (log_softmax(base), log_softmax(member));
    let kl = lb
        .iter()
        .zip(&lq)
        .filter(|(b, _)| b.is_finite())
        .map(|(&b, &q)| b.exp() * (b - q))
        .sum::<f64>();
    Some(kl.max(0.0))
}

/// Rows of logits computed per product (bounds the buffer).
const ROWS: usize = 64;

/// The lens logits of `hidden` (`rows × n_embd`), `rows × n_vocab`.
pub fn lens_logits(head: &mut OutputHead<'_>, hidden: &[f32]) -> Result<Vec<f32>, EngineError> {
    let (e, v) = (head.n_embd(), head.n_vocab());
    let rows = hidden.len() / e.max(1);
    let mut out = vec![0f32; rows * v];
    for start in (0..rows).step_by(ROWS) {
        let end = (start + ROWS).min(rows);
        head.logits(&hidden[start * e..end * e], &mut out[start * v..end * v])?;
    }
    Ok(out)
}

/// The mean over rows of KL(base row ‖ member row) of two `rows × n_vocab`
/// blocks of logits.
pub fn mean_kl(base: &[f32], member: &[f32], n_vocab: usize) -> Option<f64> {
    if base.len() != member.len() || n_vocab == 0 || base.is_empty() {
        return None;
    }
    let rows = base.len() / n_vocab;
    let mut sum = 0.0;
    for (b, q) in base.chunks_exact(n_vocab).zip(member.chunks_exact(n_vocab)) {
        sum += kl_logits(b, q)?;
    }
    Some(sum / rows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_is_zero_for_equal_rows_and_matches_a_hand_computation() {
        let a = [1.0f32, 2.0, 3.0];
        assert_eq!(kl_logits(&a, &a), Some(0.0));
        // p = (1/2, 1/2), q = (1/(1+e), e/(1+e)):
        // KL = ½ ln(½(1+e)) + ½ ln(½(1+e)/e) = ln(½(1+e)) − ½.
        let e = std::f64::consts::E;
        let kl = kl_logits(&[0.0, 0.0], &[0.0, 1.0]).expect("same length");
        assert!((kl - ((0.5 * (1.0 + e)).ln() - 0.5)).abs() < 1e-9, "{kl}");
        assert!(kl_logits(&[0.0], &[0.0, 1.0]).is_none());
        let m = mean_kl(&[0.0, 0.0, 1.0, 2.0], &[0.0, 1.0, 1.0, 2.0], 2).expect("blocks");
        assert!((m - kl / 2.0).abs() < 1e-12);
    }
}
