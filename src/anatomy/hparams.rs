//! Hyperparameters, read from the `<arch>.*` metadata keys.
//!
//! Key names follow llama.cpp's `LLM_KV_NAMES` (`src/llama-arch.cpp`). Where a
//! key is missing, the value is derived from tensor shapes the way llama.cpp
//! derives it (head dim = embedding / heads, vocab = rows of `token_embd`),
//! and the page says which values were derived.

use serde::Serialize;

use crate::gguf::{GgufModel, Value};

use super::AnatomyError;

/// The architecture's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HyperParams {
    /// Number of transformer blocks.
    pub n_layer: u32,
    /// Query heads per layer (one entry per layer; most models are uniform).
    pub n_head: Vec<u32>,
    /// Key/value heads per layer (equal to `n_head` without GQA; 0 for
    /// layers without attention in hybrid models).
    pub n_head_kv: Vec<u32>,
    /// Dimension of one key head.
    pub head_dim_k: u32,
    /// Dimension of one value head.
    pub head_dim_v: u32,
    /// Width of the residual stream.
    pub n_embd: u64,
    /// FFN hidden width per layer.
    pub n_ff: Vec<u64>,
    /// Experts per MoE layer (0 for dense models).
    pub n_expert: u32,
    /// Experts used per token.
    pub n_expert_used: u32,
    /// Vocabulary size.
    pub n_vocab: u64,
    /// Context length the model was trained for.
    pub n_ctx_train: Option<u64>,
    /// RoPE settings.
    pub rope: Rope,
    /// Sliding-window attention span, where the model has one.
    pub sliding_window: Option<u64>,
    /// RMS norm epsilon.
    pub norm_rms_eps: Option<f64>,
    /// LayerNorm epsilon.
    pub norm_eps: Option<f64>,
    /// Soft-capping of attention logits (Gemma 2).
    pub attn_logit_softcapping: Option<f64>,
    /// Soft-capping of the final logits (Gemma 2).
    pub final_logit_softcapping: Option<f64>,
    /// Keys whose value was derived from tensor shapes instead of read.
    pub derived: Vec<&'static str>,
}

/// Rotary position embedding settings.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Rope {
    pub freq_base: Option<f64>,
    pub dimension_count: Option<u64>,
    pub scaling_type: Option<String>,
    pub scaling_factor: Option<f64>,
    pub original_context_length: Option<u64>,
}

impl HyperParams {
    /// True when every layer has the same number of query heads.
    pub fn uniform_heads(&self) -> Option<u32> {
        uniform(&self.n_head)
    }

    /// True when every layer has the same number of KV heads.
    pub fn uniform_kv_heads(&self) -> Option<u32> {
        uniform(&self.n_head_kv)
    }

    /// The FFN width when it is the same for every layer.
    pub fn uniform_ff(&self) -> Option<u64> {
        uniform(&self.n_ff)
    }

    /// Query heads sharing one KV head in layer `l` (1 without GQA).
    pub fn gqa_group(&self, layer: usize) -> u32 {
        let h = self.n_head.get(layer).copied().unwrap_or(0);
        let kv = self.n_head_kv.get(layer).copied().unwrap_or(0);
        h.checked_div(kv).map_or(1, |g| g.max(1))
    }
}

fn uniform<T: Copy + PartialEq>(v: &[T]) -> Option<T> {
    let first = *v.first()?;
    v.iter().all(|&x| x == first).then_some(first)
}

/// Reads `<arch>.<key>` metadata with the shape conventions of llama.cpp.
struct Keys<'a> {
    model: &'a GgufModel,
    arch: &'a str,
}

impl Keys<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.model.get(&format!("{}.{key}", self.arch))
    }

    fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// A value that may be a scalar or an array with one entry per layer.
    fn per_layer(&self, key: &str, n_layer: u32) -> Option<Vec<u64>> {
        match self.get(key)? {
            Value::Array(a) => {
                let v: Vec<u64> = (0..a.len()).filter_map(|i| a.get_u64(i)).collect();
                (v.len() == a.len()).then_some(v)
            }
            scalar => scalar.as_u64().map(|x| vec![x; n_layer as usize]),
        }
    }
}

/// Reads the hyperparameters of `arch` from `model`.
/// `layers_in_names` is one more than the highest `blk.<L>` index seen, used
/// when the file has no `<arch>.block_count`.
pub fn read(
    model: &GgufModel,
    arch: &str,
    layers_in_names: u32,
) -> Result<HyperParams, AnatomyError> {
    let keys = Keys { model, arch };
    let mut derived = Vec::new();
    let n_layer = keys.u64("block_count").unwrap_or_else(|| {
        derived.push("block_count");
        u64::from(layers_in_names)
    });
    let n_layer = u32::try_from(n_layer)
        .ok()
        .filter(|&n| n <= 100_000)
        .ok_or_else(|| AnatomyError::Invalid(format!("{arch}.block_count is {n_layer}")))?;
    let n_embd = match keys.u64("embedding_length") {
        Some(n) => n,
        None => {
            derived.push("embedding_length");
            model.tensor("token_embd.weight").map_or(0, |t| t.dims[0])
        }
    };
    let check_len = |name: &str, v: Vec<u64>| -> Result<Vec<u64>, AnatomyError> {
        if v.len() == n_layer as usize {
            Ok(v)
        } else {
            Err(AnatomyError::Invalid(format!(
                "{arch}.{name} has {} entries for {n_layer} layers",
                v.len()
            )))
        }
    };
    let to_u32 = |v: Vec<u64>| v.into_iter().map(|x| x.min(u64::from(u32::MAX)) as u32);
    let n_head: Vec<u32> = to_u32(check_len(
        "attention.head_count",
        keys.per_layer("attention.head_count", n_layer)
            .unwrap_or_else(|| vec![0; n_layer as usize]),
    )?)
    .collect();
    let n_head_kv: Vec<u32> = match keys.per_layer("attention.head_count_kv", n_layer) {
        Some(v) => to_u32(check_len("attention.head_count_kv", v)?).collect(),
        None => n_head.clone(),
    };
    let n_ff = match keys.per_layer("feed_forward_length", n_layer) {
        Some(v) => check_len("feed_forward_length", v)?,
        None => {
            derived.push("feed_forward_length");
            (0..n_layer)
                .map(|l| {
                    model
                        .tensor(&format!("blk.{l}.ffn_up.weight"))
                        .and_then(|t| t.dims.get(1).copied())
                        .unwrap_or(0)
                })
                .collect()
        }
    };
    let first_heads = n_head.iter().copied().find(|&h| h > 0).unwrap_or(0);
    let default_head_dim = if first_heads > 0 {
        (n_embd / u64::from(first_heads)) as u32
    } else {
        0
    };
    let head_dim_k = keys.u64("attention.key_length").map_or_else(
        || {
            derived.push("attention.key_length");
            default_head_dim
        },
        |v| v as u32,
    );
    let head_dim_v = keys.u64("attention.value_length").map_or_else(
        || {
            derived.push("attention.value_length");
            default_head_dim
        },
        |v| v as u32,
    );
    let n_vocab = keys
        .u64("vocab_size")
        .or_else(|| {
            derived.push("vocab_size");
            model
                .get("tokenizer.ggml.tokens")
                .and_then(Value::as_array)
                .map(|a| a.len() as u64)
        })
        .or_else(|| {
            model
                .tensor("token_embd.weight")
                .and_then(|t| t.dims.get(1).copied())
        })
        .unwrap_or(0);
    let rope = Rope {
        freq_base: keys.f64("rope.freq_base"),
        dimension_count: keys.u64("rope.dimension_count"),
        scaling_type: keys
            .get("rope.scaling.type")
            .and_then(Value::as_str)
            .map(str::to_owned),
        scaling_factor: keys.f64("rope.scaling.factor"),
        original_context_length: keys.u64("rope.scaling.original_context_length"),
    };
    Ok(HyperParams {
        n_layer,
        n_head,
        n_head_kv,
        head_dim_k,
        head_dim_v,
        n_embd,
        n_ff,
        n_expert: keys.u64("expert_count").unwrap_or(0) as u32,
        n_expert_used: keys.u64("expert_used_count").unwrap_or(0) as u32,
        n_vocab,
        n_ctx_train: keys.u64("context_length"),
        rope,
        sliding_window: keys.u64("attention.sliding_window"),
        norm_rms_eps: keys.f64("attention.layer_norm_rms_epsilon"),
        norm_eps: keys.f64("attention.layer_norm_epsilon"),
        attn_logit_softcapping: keys.f64("attn_logit_softcapping"),
        final_logit_softcapping: keys.f64("final_logit_softcapping"),
        derived,
    })
}
