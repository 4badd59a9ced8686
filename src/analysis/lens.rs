//! The logit lens: what each layer would predict if it were the last.
//!
//! A layer's hidden state goes through the model's own output norm and
//! output head (and final soft-capping where the architecture has it),
//! exactly as the last layer's does in llama.cpp's graph (`result_norm`,
//! `result_output`). Applied to the last layer this reproduces the model's
//! logits, which the tests check; applied to earlier layers it shows how the
//! prediction forms (nostalgebraist, "interpreting GPT: the logit lens", 2020).

use serde::Serialize;

use crate::engine::EngineError;
use crate::engine::ffi::DeviceMatrix;

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

/// The model's output norm and head.
pub struct OutputHead<'a> {
    /// The head as stored in the file (`n_vocab` rows of `n_embd`, GGUF
    /// `[n_embd, n_vocab]`) on the analytics device, multiplied by ggml's
    /// own kernel: on the CPU it rounds the activations to the weight type's
    /// dot type exactly as llama.cpp's output product does, and on a GPU it
    /// computes what llama.cpp's GPU kernels compute.
    pub product: DeviceMatrix,
    pub norm_weight: &'a [f32],
    pub norm_bias: Option<&'a [f32]>,
    pub norm: NormKind,
    pub eps: f32,
    /// Gemma 2's `final_logit_softcapping`: logits = c · tanh(logits / c).
    pub softcap: Option<f32>,
}

impl std::fmt::Debug for OutputHead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputHead")
            .field("n_vocab", &self.n_vocab())
            .field("n_embd", &self.n_embd())
            .field("norm", &self.norm)
            .field("eps", &self.eps)
            .field("softcap", &self.softcap)
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
    /// Rows of the head: the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.product.n_out()
    }

    /// Width of a hidden state.
    pub fn n_embd(&self) -> usize {
        self.product.n_in()
    }

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
    pub fn logits(&mut self, hidden: &[f32], out: &mut [f32]) -> Result<(), EngineError> {
        let e = self.n_embd();
        let mut normed = vec![0f32; hidden.len()];
        for (x, dst) in hidden.chunks_exact(e).zip(normed.chunks_exact_mut(e)) {
            self.normalise(x, dst);
        }
        self.product.product(&normed, out)?;
        if let Some(c) = self.softcap {
            let rows = hidden.len() / e;
            for l in &mut out[..rows * self.n_vocab()] {
                *l = c * (*l / c).tanh();
            }
        }
        Ok(())
    }

    /// The lens for each row of `hidden`, with `targets[r]` the token whose
    /// rank and probability are reported.
    pub fn lens(&mut self, hidden: &[f32], targets: &[u32]) -> Result<Vec<LensCell>, EngineError> {
        let (e, v) = (self.n_embd(), self.n_vocab());
        let rows = hidden.len() / e;
        let mut cells = Vec::with_capacity(rows);
        let mut logits = vec![0f32; CHUNK * v];
        for start in (0..rows).step_by(CHUNK) {
            let end = (start + CHUNK).min(rows);
            self.logits(&hidden[start * e..end * e], &mut logits)?;
            for r in start..end {
                let row = &logits[(r - start) * v..(r - start + 1) * v];
                cells.push(cell(row, targets.get(r).copied().unwrap_or(0)));
            }
        }
        Ok(cells)
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
    use crate::engine::Device;
    use crate::gguf::GgmlType;

    /// The head as f32 on the CPU through ggml.
    fn head(weight: &[f32], n_vocab: usize, n_embd: usize) -> DeviceMatrix {
        let bytes: Vec<u8> = weight.iter().flat_map(|w| w.to_le_bytes()).collect();
        DeviceMatrix::upload(
            Device::Cpu,
            "head",
            GgmlType::F32,
            &bytes,
            n_embd,
            n_vocab,
            1,
        )
        .unwrap()
    }

    #[test]
    fn lens_matches_a_direct_computation() {
        // Vocabulary of 3, embedding of 2; RMS norm with unit weights.
        let mut head = OutputHead {
            product: head(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 3, 2),
            norm_weight: &[1.0, 1.0],
            norm_bias: None,
            norm: NormKind::Rms,
            eps: 0.0,
            softcap: None,
        };
        let hidden = [3.0f32, 0.0, 0.0, -2.0];
        let mut out = [0f32; 6];
        head.logits(&hidden, &mut out).unwrap();
        let r = 2f32.sqrt();
        let expect = [r, 0.0, r, 0.0, -r, -r];
        for (a, b) in out.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{out:?}");
        }
        let cells = head.lens(&hidden, &[1, 0]).unwrap();
        assert_eq!(cells[0].target_rank, 2);
        assert_eq!(cells[0].top.len(), 3);
        assert!(cells[0].top[0].1 >= cells[0].top[1].1);
        let total: f32 = cells[0].top.iter().map(|t| t.1).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert_eq!(cells[1].top[0].0, 0);
        assert_eq!(cells[1].target_rank, 0);
    }

    #[test]
    fn layer_norm_subtracts_the_mean_and_adds_the_bias() {
        let mut head = OutputHead {
            product: head(&[1.0, 0.0, 0.0, 1.0], 2, 2),
            norm_weight: &[2.0, 1.0],
            norm_bias: Some(&[0.5, -0.5]),
            norm: NormKind::Layer,
            eps: 0.0,
            softcap: None,
        };
        // mean 2, variance 1: normalised (−1, 1), then · w + b.
        let mut out = [0f32; 2];
        head.logits(&[1.0, 3.0], &mut out).unwrap();
        assert!(
            (out[0] + 1.5).abs() < 1e-5 && (out[1] - 0.5).abs() < 1e-5,
            "{out:?}"
        );
    }

    #[test]
    fn softcap_bounds_logits() {
        let mut head = OutputHead {
            product: head(&[100.0], 1, 1),
            norm_weight: &[1.0],
            norm_bias: None,
            norm: NormKind::Rms,
            eps: 0.0,
            softcap: Some(30.0),
        };
        let mut out = [0f32];
        head.logits(&[1.0], &mut out).unwrap();
        assert!((out[0] - 30.0 * (100.0f32 / 30.0).tanh()).abs() < 1e-4);
    }
}
