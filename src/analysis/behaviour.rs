//! From traces to the behaviour views' numbers.
//!
//! An [`Analyser`] takes one [`Trace`] at a time, right after the engine
//! produced it, keeps what the page needs (attention triangles, per-layer
//! token statistics, the logit lens, running head features) and lets the
//! trace go, so memory does not grow with the full activations of every
//! prompt. [`Analyser::finish`] then clusters the heads and compares their
//! patterns. Nothing here calls llama.cpp: the engine's output is the input.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Token, Trace};

use super::clusters::{self, Clustering};
use super::heads::{HeadAccumulator, HeadFeatures, LayerAttention, induction_targets};
use super::lens::{LensCell, OutputHead};
use super::similarity::{SimilarityPlane, cosine_matrix, similarity_plane};

/// Similarity is skipped above this many heads: the matrix grows with the
/// square (a 64-layer × 64-head model would need 16.8M cells).
pub const MAX_SIMILARITY_HEADS: usize = 2048;

/// Rows of logits computed per matrix product.
const LENS_CHUNK: usize = 64;

/// How a prompt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    Text,
    RandomRepeat,
}

/// Per layer and token: how the residual stream evolves (`n_layer × n_tokens`
/// values each, layer-major; NaN where the architecture did not offer the
/// tensor).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Tracker {
    /// ‖residual stream after the layer‖ (`l_out`).
    pub hidden_norm: Vec<f32>,
    /// ‖what the attention block added‖ (`attn_out`).
    pub attn_norm: Vec<f32>,
    /// ‖what the FFN block added‖ (`ffn_out`).
    pub ffn_norm: Vec<f32>,
    /// Cosine between the residual stream after this layer and before it.
    pub cos_prev: Vec<f32>,
}

/// What one prompt showed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptAnalysis {
    pub name: String,
    pub kind: PromptKind,
    /// The text, for text prompts.
    pub text: Option<String>,
    pub tokens: Vec<Token>,
    /// Attention probabilities, causal triangle only: for each layer, each
    /// head, each query `i`, the keys `0..=i`.
    pub attention: Vec<f32>,
    pub tracker: Tracker,
    /// The logit lens, `n_layer × n_tokens` cells, layer-major; the target
    /// is the model's own prediction at that position.
    pub lens: Vec<LensCell>,
    /// The model's own prediction at each position (from llama.cpp's logits).
    pub prediction: Vec<LensCell>,
    /// Largest relative difference, over positions, between the last layer's
    /// lens logits and llama.cpp's logits (the lens's own correctness check).
    pub lens_error: f32,
    /// Mean next-token loss (negative log-likelihood of each next token).
    pub loss: f32,
    /// Core tensors the architecture's graph did not offer.
    pub missing: Vec<String>,
}

/// How head importance was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportanceKind {
    /// The mean norm of the head's contribution to the residual stream.
    Contribution,
    /// The increase in next-token loss when the head's output is zeroed.
    Ablation,
}

/// Everything the behaviour views show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Behaviour {
    pub n_head: Vec<usize>,
    pub prompts: Vec<PromptAnalysis>,
    /// Per head, layer-major.
    pub features: Vec<HeadFeatures>,
    pub importance_kind: ImportanceKind,
    /// Per head, layer-major.
    pub importance: Vec<f32>,
    /// `None` when there are too few heads; the reason is in `notes`.
    pub clustering: Option<Clustering>,
    /// Cosine similarity of attention patterns, `heads × heads`; `None` above
    /// [`MAX_SIMILARITY_HEADS`].
    #[serde(skip)]
    pub similarity: Option<Array2<f32>>,
    /// Heads placed by [`similarity_plane`]; present with `similarity`.
    #[serde(skip)]
    pub similarity_plane: Option<SimilarityPlane>,
    pub notes: Vec<String>,
}

/// Builds a [`Behaviour`] one trace at a time.
#[derive(Debug)]
pub struct Analyser<'a> {
    head: OutputHead<'a>,
    n_layer: usize,
    n_head: usize,
    features: HeadAccumulator,
    /// Per head: its causal triangles over all prompts so far.
    patterns: Vec<Vec<f32>>,
    prompts: Vec<PromptAnalysis>,
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return f32::NAN;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (na * nb)
}

/// Mean negative log-likelihood of each next token under `logits`.
pub fn next_token_loss(logits: &[f32], n_vocab: usize, tokens: &[i32]) -> f32 {
    let n = tokens.len();
    if n < 2 || n_vocab == 0 {
        return f32::NAN;
    }
    let mut total = 0f64;
    for i in 0..n - 1 {
        let row = &logits[i * n_vocab..(i + 1) * n_vocab];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = row
            .iter()
            .map(|&l| f64::from(l - max).exp())
            .sum::<f64>()
            .ln();
        let next = usize::try_from(tokens[i + 1]).unwrap_or(0).min(n_vocab - 1);
        total += log_sum - f64::from(row[next] - max);
    }
    (total / (n - 1) as f64) as f32
}

impl<'a> Analyser<'a> {
    /// An analyser for a model of `n_layer` layers of `n_head` heads whose
    /// output norm and head are `head`.
    pub fn new(head: OutputHead<'a>, n_layer: usize, n_head: usize) -> Self {
        Analyser {
            head,
            n_layer,
            n_head,
            features: HeadAccumulator::new(vec![n_head; n_layer]),
            patterns: vec![Vec::new(); n_layer * n_head],
            prompts: Vec::new(),
        }
    }

    /// Takes in one prompt's trace. Fails only when the lens's product
    /// fails on the analytics device.
    pub fn add(
        &mut self,
        name: &str,
        kind: PromptKind,
        text: Option<&str>,
        trace: &Trace,
    ) -> Result<(), EngineError> {
        let t = trace.tokens.len();
        let ids: Vec<i32> = trace.tokens.iter().map(|tok| tok.id).collect();
        let targets = induction_targets(&ids);
        let mut attention = Vec::with_capacity(self.n_layer * self.n_head * t * (t + 1) / 2);
        for (l, layer) in trace.layers.iter().enumerate().take(self.n_layer) {
            if let Some(a) = &layer.attention {
                let view = LayerAttention {
                    n_head: a.n_head,
                    n_tok: a.n_tokens,
                    probs: &a.data,
                };
                // Induction only counts where copying is the one way to predict.
                self.features
                    .add_attention(l, &view, &targets, kind == PromptKind::RandomRepeat);
                for h in 0..self.n_head.min(a.n_head) {
                    let pattern = &mut self.patterns[l * self.n_head + h];
                    for i in 0..t {
                        let row = view.row(h, i);
                        attention.extend_from_slice(row);
                        pattern.extend_from_slice(row);
                    }
                }
            }
            if let Some(heads) = &layer.heads {
                for h in 0..self.n_head {
                    for tok in 0..t {
                        self.features.add_contribution(l, h, heads.norm(h, tok));
                    }
                }
            }
        }
        let tracker = self.tracker(trace);
        let n_vocab = trace.logits.cols;
        let prediction_targets: Vec<u32> =
            (0..t).map(|i| argmax(trace.logits.row(i)) as u32).collect();
        let (lens, lens_error) = self.lens(trace, &prediction_targets)?;
        let prediction = (0..t)
            .map(|i| super::lens::cell(trace.logits.row(i), prediction_targets[i]))
            .collect();
        self.prompts.push(PromptAnalysis {
            name: name.to_owned(),
            kind,
            text: text.map(str::to_owned),
            tokens: trace.tokens.clone(),
            attention,
            tracker,
            lens,
            prediction,
            lens_error,
            loss: next_token_loss(&trace.logits.data, n_vocab, &ids),
            missing: trace.missing.clone(),
        });
        Ok(())
    }

    fn tracker(&self, trace: &Trace) -> Tracker {
        let t = trace.tokens.len();
        let cells = self.n_layer * t;
        let mut tr = Tracker {
            hidden_norm: vec![f32::NAN; cells],
            attn_norm: vec![f32::NAN; cells],
            ffn_norm: vec![f32::NAN; cells],
            cos_prev: vec![f32::NAN; cells],
        };
        for (l, layer) in trace.layers.iter().enumerate().take(self.n_layer) {
            for tok in 0..t {
                let at = l * t + tok;
                if let Some(h) = &layer.hidden {
                    tr.hidden_norm[at] = norm(h.row(tok));
                }
                if let Some(a) = &layer.attn_out {
                    tr.attn_norm[at] = norm(a.row(tok));
                }
                if let Some(f) = &layer.ffn_out {
                    tr.ffn_norm[at] = norm(f.row(tok));
                }
                let Some(h) = &layer.hidden else { continue };
                let before: Option<Vec<f32>> = if l > 0 {
                    trace.layers[l - 1]
                        .hidden
                        .as_ref()
                        .map(|p| p.row(tok).to_vec())
                } else {
                    // The input of layer 0 is what its two blocks did not add:
                    // l_out = input + attn_out + ffn_out.
                    match (&layer.attn_out, &layer.ffn_out) {
                        (Some(a), Some(f)) => Some(
                            h.row(tok)
                                .iter()
                                .zip(a.row(tok))
                                .zip(f.row(tok))
                                .map(|((x, a), f)| x - a - f)
                                .collect(),
                        ),
                        _ => None,
                    }
                };
                if let Some(b) = before {
                    tr.cos_prev[at] = cosine(h.row(tok), &b);
                }
            }
        }
        tr
    }

    /// The lens over every layer and position, and how far the last layer's
    /// lens logits are from llama.cpp's.
    fn lens(
        &mut self,
        trace: &Trace,
        targets: &[u32],
    ) -> Result<(Vec<LensCell>, f32), EngineError> {
        let t = trace.tokens.len();
        let (e, v) = (self.head.n_embd(), self.head.n_vocab());
        let mut cells = Vec::with_capacity(self.n_layer * t);
        let mut logits = vec![0f32; LENS_CHUNK * v];
        let mut hidden = Vec::with_capacity(LENS_CHUNK * e);
        let mut error = 0f32;
        let last = self.n_layer.saturating_sub(1);
        // Rows are (layer, token) pairs, taken LENS_CHUNK at a time.
        let rows: Vec<(usize, usize)> = (0..self.n_layer)
            .flat_map(|l| (0..t).map(move |tok| (l, tok)))
            .collect();
        for chunk in rows.chunks(LENS_CHUNK) {
            hidden.clear();
            for &(l, tok) in chunk {
                match &trace.layers[l].hidden {
                    Some(h) if h.cols == e => hidden.extend_from_slice(h.row(tok)),
                    _ => hidden.extend(std::iter::repeat_n(f32::NAN, e)),
                }
            }
            self.head.logits(&hidden, &mut logits)?;
            for (r, &(l, tok)) in chunk.iter().enumerate() {
                let row = &logits[r * v..(r + 1) * v];
                cells.push(super::lens::cell(row, targets[tok]));
                if l == last && trace.logits.cols == v {
                    let reference = trace.logits.row(tok);
                    let diff = norm(
                        &row.iter()
                            .zip(reference)
                            .map(|(a, b)| a - b)
                            .collect::<Vec<_>>(),
                    );
                    error = error.max(diff / norm(reference).max(f32::MIN_POSITIVE));
                }
            }
        }
        Ok((cells, error))
    }

    /// Clusters and compares the heads; `ablation` holds the measured loss
    /// increase per head when `--ablation` ran.
    pub fn finish(self, ablation: Option<Vec<f32>>) -> Behaviour {
        let features = self.features.finish();
        let n_head = vec![self.n_head; self.n_layer];
        let mut notes = Vec::new();
        let clustering = match clusters::cluster(&features, &n_head, 0x9e37) {
            Ok(c) => Some(c),
            Err(e) => {
                notes.push(format!("heads not clustered: {e}"));
                None
            }
        };
        let n = self.patterns.len();
        let len = self.patterns.iter().map(Vec::len).max().unwrap_or(0);
        let similarity = if n > MAX_SIMILARITY_HEADS {
            notes.push(format!(
                "pattern similarity skipped: {n} heads (at most {MAX_SIMILARITY_HEADS})"
            ));
            None
        } else if len == 0 {
            None
        } else {
            let mut m = Array2::<f32>::zeros((n, len));
            for (i, p) in self.patterns.iter().enumerate() {
                for (j, &x) in p.iter().enumerate() {
                    m[[i, j]] = x;
                }
            }
            Some(cosine_matrix(&m))
        };
        let similarity_plane = similarity.as_ref().map(similarity_plane);
        let (importance_kind, importance) = match ablation {
            Some(v) => (ImportanceKind::Ablation, v),
            None => (
                ImportanceKind::Contribution,
                features.iter().map(|f| f.contribution).collect(),
            ),
        };
        Behaviour {
            n_head,
            prompts: self.prompts,
            features,
            importance_kind,
            importance,
            clustering,
            similarity,
            similarity_plane,
            notes,
        }
    }
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_the_mean_negative_log_likelihood_of_next_tokens() {
        // Two positions over a vocabulary of 2; next tokens 1 then 0.
        let logits = [0.0f32, 0.0, 2f32.ln(), 0.0];
        let loss = next_token_loss(&logits, 2, &[0, 1, 0]);
        let expect = (2f32.ln() + (3.0f32 / 2.0).ln()) / 2.0;
        assert!((loss - expect).abs() < 1e-6, "{loss} vs {expect}");
    }
}
