//! Per-tensor weight error: each member's dequantized weights (ggml's own
//! `to_float`) against the reference's, as RMS(w_q − w_ref) / RMS(w_ref), so
//! a reader sees which tensors the quantization costs the most.

use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Session};

/// One tensor's weight error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorError {
    pub name: String,
    /// RMS of the difference over RMS of the reference (0 when identical).
    pub rel_rms: f64,
}

/// RMS(q − b) / RMS(b); `None` when the lengths differ. An all-zero
/// reference gives the plain RMS of the difference.
pub fn relative_rms(base: &[f32], member: &[f32]) -> Option<f64> {
    if base.len() != member.len() {
        return None;
    }
    let (mut d2, mut b2) = (0.0f64, 0.0f64);
    for (&b, &q) in base.iter().zip(member) {
        let (b, q) = (f64::from(b), f64::from(q));
        d2 += (q - b) * (q - b);
        b2 += b * b;
    }
    Some(if b2 > 0.0 {
        (d2 / b2).sqrt()
    } else {
        d2.sqrt()
    })
}

/// The weight error of every tensor the two files share, in file order.
pub fn weight_errors(
    reference: &Session,
    member: &Session,
) -> Result<Vec<TensorError>, EngineError> {
    let mut out = Vec::new();
    for t in reference.gguf().tensors() {
        if member.gguf().tensor(&t.name).is_none() {
            continue;
        }
        let b = reference.dequantize(&t.name)?;
        let q = member.dequantize(&t.name)?;
        let rel_rms = relative_rms(&b, &q).ok_or_else(|| EngineError::Tensor {
            name: t.name.clone(),
            reason: "the member's tensor has another size".into(),
        })?;
        out.push(TensorError {
            name: t.name.clone(),
            rel_rms,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_rms_by_hand() {
        assert_eq!(relative_rms(&[1.0, 2.0], &[1.0, 2.0]), Some(0.0));
        // d = (0, 1), b = (3, 4): sqrt(1 / 25) = 0.2
        let r = relative_rms(&[3.0, 4.0], &[3.0, 5.0]).expect("same length");
        assert!((r - 0.2).abs() < 1e-12);
        assert!(relative_rms(&[1.0], &[1.0, 2.0]).is_none());
    }
}
