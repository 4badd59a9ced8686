//! The trace: what one prompt's forward pass computed, as plain data.
//!
//! A [`Trace`] is the engine's whole output for one prompt and the only thing
//! later stages see of the run (DESIGN: "captured activations come back as an
//! explicit struct"). It holds llama.cpp's own tokens, attention
//! probabilities, residual stream, block outputs, per-head contributions and
//! logits, and says which tensors the architecture offered, so a view whose
//! data is missing can say why instead of failing.
//!
//! Sizes are known before the run ([`CaptureOptions::trace_bytes`]): every
//! buffer is allocated once, up front, with its final size.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ffi::TokenId;

/// One prompt token, exactly as llama.cpp's tokenizer produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Vocabulary id.
    pub id: TokenId,
    /// The token's text as llama.cpp renders it (`llama_token_to_piece` with
    /// special tokens shown), leading space included. Bytes that are not
    /// valid UTF-8 on their own (a byte token holding part of a character)
    /// are written `<0xE2>`.
    pub piece: String,
    /// A control token (BOS, EOS, chat markers) rather than text.
    pub special: bool,
}

/// How much of each head's contribution to the residual stream to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HeadCapture {
    /// Not computed.
    Off,
    /// The L2 norm per layer, head and token: `n_layer × n_head × n_tokens`
    /// floats (138 KiB for SmolLM2 at 128 tokens). What the CLI and the page
    /// use.
    #[default]
    Norms,
    /// The full vectors: `n_layer × n_head × n_tokens × n_embd` floats
    /// (80 MiB for SmolLM2 at 128 tokens). For tests and analyses that need
    /// directions, not only sizes.
    Full,
}

/// A change made to the forward pass while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Intervention {
    /// Zero these heads' slices of `kqv_out-{layer}` (the heads' outputs
    /// before the output projection) once computed, so the projection and
    /// everything after it sees the heads as silent.
    ZeroHeads { layer: usize, heads: Vec<usize> },
    /// Zero the layer's whole attention output (`attn_out-{layer}`, after the
    /// projection), where the architecture names it.
    ZeroAttentionOutput { layer: usize },
}

/// What to capture during a run, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureOptions {
    /// Attention probabilities per layer and head (`kq_soft_max-L`).
    pub attention: bool,
    /// Residual stream after each layer (`l_out-L`).
    pub hidden: bool,
    /// The attention and FFN blocks' outputs, i.e. what each adds to the
    /// residual stream (`attn_out-L`, `ffn_out-L`).
    pub blocks: bool,
    /// Per-head contributions to the residual stream.
    pub heads: HeadCapture,
    /// The last hidden state after the output norm (`result_norm`).
    pub final_norm: bool,
    /// Changes to the forward pass (ablations).
    pub interventions: Vec<Intervention>,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            attention: true,
            hidden: true,
            blocks: true,
            heads: HeadCapture::Norms,
            final_norm: true,
            interventions: Vec::new(),
        }
    }
}

impl CaptureOptions {
    /// Captures nothing: only the logits come back (for ablation runs).
    pub fn logits_only() -> CaptureOptions {
        CaptureOptions {
            attention: false,
            hidden: false,
            blocks: false,
            heads: HeadCapture::Off,
            final_norm: false,
            interventions: Vec::new(),
        }
    }

    /// Bytes of the trace for `dims` (its `n_tokens` included): every
    /// captured array plus the logits, which are always kept.
    pub fn trace_bytes(&self, dims: &TraceDims) -> u64 {
        let TraceDims {
            n_layer,
            n_head,
            n_embd,
            n_vocab,
            n_tokens,
            ..
        } = *dims;
        let [l, h, e, v, t] = [n_layer, n_head, n_embd, n_vocab, n_tokens].map(|x| x as u64);
        let mut per_layer = 0;
        if self.attention {
            per_layer += h * t * t;
        }
        if self.hidden {
            per_layer += t * e;
        }
        if self.blocks {
            per_layer += 2 * t * e;
        }
        per_layer += match self.heads {
            HeadCapture::Off => 0,
            HeadCapture::Norms => h * t,
            HeadCapture::Full => h * t * e,
        };
        let global = t * v + if self.final_norm { t * e } else { 0 };
        4 * (l * per_layer + global)
    }

    /// Bytes of working memory the capture needs on top of the trace: one
    /// layer's `kqv_out` (or attention output, for an ablation), and for
    /// per-head contributions one layer's dequantized output projection and
    /// one head's product. llama.cpp's own buffers are not counted.
    pub fn scratch_bytes(&self, dims: &TraceDims) -> u64 {
        let [e, t, w] = [dims.n_embd, dims.n_tokens, dims.kqv_width()].map(|x| x as u64);
        let zero_heads = self
            .interventions
            .iter()
            .any(|iv| matches!(iv, Intervention::ZeroHeads { .. }));
        let zero_attn = self
            .interventions
            .iter()
            .any(|iv| matches!(iv, Intervention::ZeroAttentionOutput { .. }));
        let heads = self.heads != HeadCapture::Off;
        let mut floats = 0;
        if heads || zero_heads {
            floats = t * w;
        }
        if zero_attn {
            floats = floats.max(t * e);
        }
        if heads {
            floats += e * w;
        }
        if self.heads == HeadCapture::Norms {
            floats += t * e;
        }
        4 * floats
    }
}

/// The shape of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceDims {
    pub n_layer: usize,
    /// Query heads per layer.
    pub n_head: usize,
    /// Key/value heads per layer (`n_head / n_head_kv` query heads share one).
    pub n_head_kv: usize,
    /// Width of one head's output (the value head dimension).
    pub head_dim: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    pub n_vocab: usize,
    /// Tokens of the prompt.
    pub n_tokens: usize,
}

impl TraceDims {
    /// Width of `kqv_out`: all heads' outputs side by side.
    pub fn kqv_width(&self) -> usize {
        self.n_head * self.head_dim
    }
}

/// A dense row-major matrix of f32.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    /// `rows × cols` values, row after row.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `i` (panics when out of range, like slice indexing).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// One layer's attention probabilities, cropped to the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attention {
    pub n_head: usize,
    pub n_tokens: usize,
    /// `n_head × n_tokens (query) × n_tokens (key)` values: entry
    /// (h, i, j) is how much query token i of head h attends to token j.
    /// Positions the mask hides (j > i; outside a sliding window) are
    /// exactly 0, as llama.cpp's softmax leaves them.
    pub data: Vec<f32>,
}

impl Attention {
    /// Head `head`'s attention from query token `query` over all tokens.
    pub fn row(&self, head: usize, query: usize) -> &[f32] {
        let t = self.n_tokens;
        let start = (head * t + query) * t;
        &self.data[start..start + t]
    }

    /// Head `head`'s whole `n_tokens × n_tokens` pattern.
    pub fn head(&self, head: usize) -> &[f32] {
        let tt = self.n_tokens * self.n_tokens;
        &self.data[head * tt..(head + 1) * tt]
    }
}

/// Each head's contribution to the residual stream: the head's slice of
/// `kqv_out` times its columns of the output projection `attn_output.weight`
/// (dequantized with ggml's own `to_float`; on the CPU, `kqv_out` rounded as
/// the CPU kernel rounds it). Summed over heads (plus the projection's bias,
/// where the model has one) it is the layer's attention output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HeadContributions {
    /// Full vectors: `n_head × n_tokens × n_embd` values.
    Full {
        n_head: usize,
        n_tokens: usize,
        n_embd: usize,
        data: Vec<f32>,
    },
    /// L2 norms: `n_head × n_tokens` values.
    Norms {
        n_head: usize,
        n_tokens: usize,
        data: Vec<f32>,
    },
}

impl HeadContributions {
    /// The norm of head `head`'s contribution at token `token`.
    pub fn norm(&self, head: usize, token: usize) -> f32 {
        match self {
            HeadContributions::Full { .. } => self
                .vector(head, token)
                .map_or(0.0, |v| v.iter().map(|x| x * x).sum::<f32>().sqrt()),
            HeadContributions::Norms { n_tokens, data, .. } => data[head * n_tokens + token],
        }
    }

    /// The full contribution vector, when captured in full.
    pub fn vector(&self, head: usize, token: usize) -> Option<&[f32]> {
        match self {
            HeadContributions::Full {
                n_tokens,
                n_embd,
                data,
                ..
            } => {
                let start = (head * n_tokens + token) * n_embd;
                Some(&data[start..start + n_embd])
            }
            HeadContributions::Norms { .. } => None,
        }
    }
}

/// Everything captured from one layer. A field is `None` when it was not
/// asked for or the architecture's graph has no tensor of that name (see
/// [`Trace::missing`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LayerTrace {
    /// Attention probabilities (`kq_soft_max-L`).
    pub attention: Option<Attention>,
    /// Residual stream after the layer (`l_out-L`), `n_tokens × n_embd`.
    pub hidden: Option<Matrix>,
    /// The attention block's output added to the residual (`attn_out-L`).
    pub attn_out: Option<Matrix>,
    /// The FFN block's output added to the residual (`ffn_out-L`).
    pub ffn_out: Option<Matrix>,
    /// Per-head contributions to the residual stream.
    pub heads: Option<HeadContributions>,
}

/// Where the time of a captured run went, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct CaptureTiming {
    /// `llama_decode`, wall clock, everything the eval callback does
    /// included.
    pub decode_ms: f64,
    /// Time spent inside the eval callback: copying tensors out, applying
    /// interventions, computing per-head contributions (the capture's own
    /// cost; the rest of `decode_ms` is llama.cpp computing).
    pub callback_ms: f64,
    /// The part of `callback_ms` spent on per-head contributions.
    pub heads_ms: f64,
}

/// One prompt's forward pass through llama.cpp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub dims: TraceDims,
    /// The prompt's tokens, BOS included when the model adds one.
    pub tokens: Vec<Token>,
    /// What was asked for, interventions included.
    pub options: CaptureOptions,
    /// One entry per layer.
    pub layers: Vec<LayerTrace>,
    /// The last hidden state after the output norm (`result_norm`).
    pub final_norm: Option<Matrix>,
    /// Logits at every position (`n_tokens × n_vocab`), from llama.cpp's
    /// output buffer (`llama_get_logits_ith`).
    pub logits: Matrix,
    /// Every named node the architecture's graph offered, by base name
    /// (`kq_soft_max` for `kq_soft_max-3`), with the number of layers that
    /// had it (0 for graph-level nodes such as `result_norm`).
    pub offered: BTreeMap<String, usize>,
    /// Requested base names the graph did not offer.
    pub missing: Vec<String>,
    /// Tensors that were offered but could not be used, with the reason.
    pub notes: Vec<String>,
    pub timing: CaptureTiming,
}

impl Trace {
    /// The ids of the prompt's tokens.
    pub fn token_ids(&self) -> Vec<TokenId> {
        self.tokens.iter().map(|t| t.id).collect()
    }

    /// Size of the captured data in bytes (what
    /// [`CaptureOptions::trace_bytes`] predicted).
    pub fn data_bytes(&self) -> u64 {
        let floats: usize = self
            .layers
            .iter()
            .map(|l| {
                l.attention.as_ref().map_or(0, |a| a.data.len())
                    + [&l.hidden, &l.attn_out, &l.ffn_out]
                        .iter()
                        .map(|m| m.as_ref().map_or(0, |m| m.data.len()))
                        .sum::<usize>()
                    + l.heads.as_ref().map_or(0, |h| match h {
                        HeadContributions::Full { data, .. }
                        | HeadContributions::Norms { data, .. } => data.len(),
                    })
            })
            .sum::<usize>()
            + self.final_norm.as_ref().map_or(0, |m| m.data.len())
            + self.logits.data.len();
        4 * floats as u64
    }
}

/// The first non-finite value of `data` read as rows of `cols`: (row, value).
pub(crate) fn first_non_finite(data: &[f32], cols: usize) -> Option<(usize, f32)> {
    let i = data.iter().position(|v| !v.is_finite())?;
    Some((i / cols.max(1), data[i]))
}

impl Trace {
    /// Where the first NaN or infinite value is, in the order the model
    /// computes it (layer by layer: attention, its output, the FFN's, the
    /// residual stream; then the output norm and the logits), described for
    /// an error message; `None` when every captured value is finite.
    pub fn first_non_finite(&self) -> Option<String> {
        let say = |what: &str, (row, v): (usize, f32)| {
            let token = self
                .tokens
                .get(row)
                .map(|t| format!(" ({:?})", t.piece))
                .unwrap_or_default();
            format!("{what} at token {row}{token}: {v}")
        };
        for (l, layer) in self.layers.iter().enumerate() {
            if let Some(a) = &layer.attention
                && let Some((row, v)) = first_non_finite(&a.data, a.n_tokens)
            {
                // Rows of the attention array are (head, query) pairs.
                let (head, query) = (row / a.n_tokens.max(1), row % a.n_tokens.max(1));
                return Some(say(
                    &format!("layer {l}'s attention, head {head},"),
                    (query, v),
                ));
            }
            for (what, m) in [
                ("attention output", &layer.attn_out),
                ("FFN output", &layer.ffn_out),
                ("residual stream", &layer.hidden),
            ] {
                if let Some(m) = m
                    && let Some(found) = first_non_finite(&m.data, m.cols)
                {
                    return Some(say(&format!("layer {l}'s {what}"), found));
                }
            }
        }
        if let Some(m) = &self.final_norm
            && let Some(found) = first_non_finite(&m.data, m.cols)
        {
            return Some(say("the output norm", found));
        }
        first_non_finite(&self.logits.data, self.logits.cols).map(|found| say("the logits", found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2_dims(n_tokens: usize) -> TraceDims {
        TraceDims {
            n_layer: 30,
            n_head: 9,
            n_head_kv: 3,
            head_dim: 64,
            n_embd: 576,
            n_vocab: 49152,
            n_tokens,
        }
    }

    #[test]
    fn trace_size_adds_up_per_array() {
        let d = smollm2_dims(128);
        let logits = 4 * 128 * 49152;
        assert_eq!(CaptureOptions::logits_only().trace_bytes(&d), logits);
        let all_norms = CaptureOptions::default().trace_bytes(&d);
        let per_layer = 9 * 128 * 128 + 3 * 128 * 576 + 9 * 128;
        assert_eq!(all_norms, logits + 4 * (30 * per_layer + 128 * 576));
        let full = CaptureOptions {
            heads: HeadCapture::Full,
            ..CaptureOptions::default()
        };
        assert_eq!(
            full.trace_bytes(&d) - all_norms,
            4 * 30 * 9 * 128 * (576 - 1)
        );
    }

    #[test]
    fn scratch_is_one_layer_of_working_memory() {
        let d = smollm2_dims(128);
        assert_eq!(CaptureOptions::logits_only().scratch_bytes(&d), 0);
        let kqv = 128 * 576;
        let w = 576 * 576;
        let norms = CaptureOptions::default().scratch_bytes(&d);
        assert_eq!(norms, 4 * (kqv + w + 128 * 576));
        let ablate = CaptureOptions {
            interventions: vec![Intervention::ZeroAttentionOutput { layer: 0 }],
            ..CaptureOptions::logits_only()
        };
        assert_eq!(ablate.scratch_bytes(&d), 4 * 128 * 576);
    }

    #[test]
    fn attention_rows_index_head_then_query() {
        let a = Attention {
            n_head: 2,
            n_tokens: 3,
            data: (0..18).map(|x| x as f32).collect(),
        };
        assert_eq!(a.row(1, 2), &[15.0, 16.0, 17.0]);
        assert_eq!(a.head(1).len(), 9);
        assert_eq!(a.head(1)[0], 9.0);
    }

    #[test]
    fn full_head_contributions_give_their_norms() {
        let h = HeadContributions::Full {
            n_head: 1,
            n_tokens: 2,
            n_embd: 2,
            data: vec![0.0, 0.0, 3.0, 4.0],
        };
        assert_eq!(h.norm(0, 1), 5.0);
        assert_eq!(h.vector(0, 1), Some(&[3.0, 4.0][..]));
    }
}
