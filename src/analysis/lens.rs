//! The logit lens: what each layer would predict if it were the last.
//!
//! A layer's hidden state goes through the model's own output norm and
//! output head (and final soft-capping where the architecture has it),
//! exactly as the last layer's does in llama.cpp's graph (`result_norm`,
//! `result_output`). Applied to the last layer this reproduces the model's
//! logits, which the tests check; applied to earlier layers it shows how the
//! prediction forms (nostalgebraist, "interpreting GPT: the logit lens", 2020).

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use serde::Serialize;

/// How the output norm normalises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormKind {
    /// x / sqrt(mean(x²) + eps) · w (llama, qwen, gemma, ...).
    Rms,
    /// (x − mean) / sqrt(var + eps) · w + b (gpt2, phi2, ...).
    Layer,
    /// No output norm in the model: the hidden state goes straight to the head.
    Identity,
}

/// Rounds normalised activations the way the runtime's matrix product does
/// before it multiplies (llama.cpp's CPU kernels quantize them to the
/// weight type's `vec_dot_type`), so the lens computes what llama.cpp does.
pub type ActivationRounding<'a> = &'a (dyn Fn(&mut [f32]) + Sync);

/// The model's output norm and head, dequantized to f32.
#[derive(Clone, Copy)]
pub struct OutputHead<'a> {
    /// Output head, `n_vocab` rows of `n_embd` (GGUF `[n_embd, n_vocab]`).
    pub weight: &'a [f32],
    pub n_vocab: usize,
    pub n_embd: usize,
    pub norm_weight: &'a [f32],
    pub norm_bias: Option<&'a [f32]>,
    pub norm: NormKind,
    pub eps: f32,
    /// Gemma 2's `final_logit_softcapping`: logits = c · tanh(logits / c).
    pub softcap: Option<f32>,
    /// Applied to each normalised row before the product, when set.
    pub round: Option<ActivationRounding<'a>>,
}

impl std::fmt::Debug for OutputHead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputHead")
            .field("n_vocab", &self.n_vocab)
            .field("n_embd", &self.n_embd)
            .field("norm", &self.norm)
            .field("eps", &self.eps)
            .field("softcap", &self.softcap)
            .field("round", &self.round.is_some())
            .finish()
    }
}

/// Tokens kept per lens cell.
pub const TOP_K: usize = 5;

/// The lens at one layer and position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LensCell {
    /// The most probable tokens with their probabilities, best first.
    pub top: Vec<(u32, f32)>,
    /// Rank (0 = top) of the model's final prediction at this position.
    pub target_rank: u32,
    /// Probability of the model's final prediction.
    pub target_prob: f32,
}

/// Rows per matrix product: bounds the logits buffer to rows × vocab floats.
const CHUNK: usize = 32;

impl OutputHead<'_> {
    /// Normalises one hidden state as the output norm does.
    pub fn normalise(&self, x: &[f32], out: &mut [f32]) {
        if self.norm == NormKind::Identity {
            out.copy_from_slice(x);
            return;
        }
        let n = x.len() as f32;
        let (mean, var) = match self.norm {
            NormKind::Rms => (0.0, x.iter().map(|v| v * v).sum::<f32>() / n),
            NormKind::Layer => {
                let m = x.iter().sum::<f32>() / n;
                (m, x.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / n)
            }
            NormKind::Identity => (0.0, 1.0),
        };
        let scale = 1.0 / (var + self.eps).sqrt();
        for (i, (o, v)) in out.iter_mut().zip(x).enumerate() {
            *o = (v - mean) * scale * self.norm_weight[i] + self.norm_bias.map_or(0.0, |b| b[i]);
        }
    }

    /// Logits for `rows` hidden states (`rows × n_embd`), written to `out`
    /// (`rows × n_vocab`).
    pub fn logits(&self, hidden: &[f32], out: &mut [f32]) {
        let (e, v) = (self.n_embd, self.n_vocab);
        let rows = hidden.len() / e;
        let mut normed = Array2::<f32>::zeros((rows, e));
        for (r, mut row) in normed.rows_mut().into_iter().enumerate() {
            if let Some(dst) = row.as_slice_mut() {
                self.normalise(&hidden[r * e..(r + 1) * e], dst);
                if let Some(round) = self.round {
                    round(dst);
                }
            }
        }
        let (Ok(weight), Ok(mut logits)) = (
            ArrayView2::from_shape((v, e), &self.weight[..v * e]),
            ArrayViewMut2::from_shape((rows, v), &mut out[..rows * v]),
        ) else {
            return;
        };
        // One product per chunk (ndarray hands it to matrixmultiply's sgemm).
        general_mat_mul(1.0, &normed, &weight.t(), 0.0, &mut logits);
        if let Some(c) = self.softcap {
            logits.mapv_inplace(|l| c * (l / c).tanh());
        }
    }

    /// The lens for each row of `hidden`, with `targets[r]` the token whose
    /// rank and probability are reported.
    pub fn lens(&self, hidden: &[f32], targets: &[u32]) -> Vec<LensCell> {
        let rows = hidden.len() / self.n_embd;
        let mut cells = Vec::with_capacity(rows);
        let mut logits = vec![0f32; CHUNK * self.n_vocab];
        for start in (0..rows).step_by(CHUNK) {
            let end = (start + CHUNK).min(rows);
            self.logits(&hidden[start * self.n_embd..end * self.n_embd], &mut logits);
            for r in start..end {
                let row = &logits[(r - start) * self.n_vocab..(r - start + 1) * self.n_vocab];
                cells.push(cell(row, targets.get(r).copied().unwrap_or(0)));
            }
        }
        cells
    }
}

/// Softmax statistics of one row of logits, with `target`'s rank.
pub fn cell(logits: &[f32], target: u32) -> LensCell {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let prob = |l: f32| (l - max).exp() / sum;
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(TOP_K + 1);
    for (id, &l) in logits.iter().enumerate() {
        if top.len() < TOP_K || l > top[top.len() - 1].1 {
            let at = top.partition_point(|&(_, t)| t >= l);
            top.insert(at, (id as u32, l));
            top.truncate(TOP_K);
        }
    }
    let t = logits
        .get(target as usize)
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    LensCell {
        top: top.into_iter().map(|(id, l)| (id, prob(l))).collect(),
        target_rank: logits.iter().filter(|&&l| l > t).count() as u32,
        target_prob: prob(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lens_matches_a_direct_computation() {
        // Vocabulary of 3, embedding of 2; RMS norm with unit weights.
        let weight = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
        let head = OutputHead {
            weight: &weight,
            n_vocab: 3,
            n_embd: 2,
            norm_weight: &[1.0, 1.0],
            norm_bias: None,
            norm: NormKind::Rms,
            eps: 0.0,
            softcap: None,
            round: None,
        };
        let hidden = [3.0f32, 0.0, 0.0, -2.0];
        let mut out = [0f32; 6];
        head.logits(&hidden, &mut out);
        let r = 2f32.sqrt();
        let expect = [r, 0.0, r, 0.0, -r, -r];
        for (a, b) in out.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{out:?}");
        }
        let cells = head.lens(&hidden, &[1, 0]);
        assert_eq!(cells[0].target_rank, 2);
        assert_eq!(cells[0].top.len(), 3);
        assert!(cells[0].top[0].1 >= cells[0].top[1].1);
        let total: f32 = cells[0].top.iter().map(|t| t.1).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert_eq!(cells[1].top[0].0, 0);
        assert_eq!(cells[1].target_rank, 0);
    }

    #[test]
    fn softcap_bounds_logits() {
        let weight = [100.0f32];
        let head = OutputHead {
            weight: &weight,
            n_vocab: 1,
            n_embd: 1,
            norm_weight: &[1.0],
            norm_bias: None,
            norm: NormKind::Rms,
            eps: 0.0,
            softcap: Some(30.0),
            round: None,
        };
        let mut out = [0f32];
        head.logits(&[1.0], &mut out);
        assert!((out[0] - 30.0 * (100.0f32 / 30.0).tanh()).abs() < 1e-4);
    }
}
