//! Hyperparameters, read from the `<arch>.*` metadata keys.
//!
//! Key names follow llama.cpp's `LLM_KV_NAMES` (`src/llama-arch.cpp`). Where a
//! key is missing, the value is derived from tensor shapes the way llama.cpp
//! derives it (head dim = embedding / heads, vocab = rows of `token_embd`),
//! or taken from llama.cpp's default for the architecture, and the page says
//! which values were derived.

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
    /// Hidden width of one routed expert, where the model has experts.
    pub n_ff_expert: Option<u64>,
    /// Hidden width of the shared expert, where the model has one.
    pub n_ff_shared_expert: Option<u64>,
    /// `use_parallel_residual`: attention and FFN read the same input and
    /// add to the stream together (GPT-NeoX writes it; other architectures
    /// fix their residual form in code, see `graph::residual`).
    pub use_parallel_residual: Option<bool>,
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
    /// Soft-capping of attention logits (Gemma 2): c · tanh(x / c).
    pub attn_logit_softcapping: Option<f64>,
    /// Soft-capping of the final logits (Gemma 2, some Gemma 3).
    pub final_logit_softcapping: Option<f64>,
    /// Keys whose value was derived from tensor shapes, or taken from
    /// llama.cpp's default for the architecture, instead of read.
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

/// Dimension `index` (`ne[index]`) of the tensor `name`, if both exist.
fn tensor_dim(model: &GgufModel, name: &str, index: usize) -> Option<u64> {
    model.tensor(name)?.dims.get(index).copied()
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
            tensor_dim(model, "token_embd.weight", 0).unwrap_or(0)
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
            // Dense layers have `ffn_up` [n_embd, n_ff]; MoE layers only
            // `ffn_up_exps` [n_embd, n_ff, n_expert]: the width of one expert.
            (0..n_layer)
                .map(|l| {
                    ["ffn_up", "ffn_up_exps"]
                        .iter()
                        .find_map(|base| tensor_dim(model, &format!("blk.{l}.{base}.weight"), 1))
                        .unwrap_or(0)
                })
                .collect()
        }
    };
    let n_expert = keys.u64("expert_count").or_else(|| {
        // The router `ffn_gate_inp` [n_embd, n_expert] of the first MoE layer.
        let n = (0..n_layer)
            .find_map(|l| tensor_dim(model, &format!("blk.{l}.ffn_gate_inp.weight"), 1))?;
        derived.push("expert_count");
        Some(n)
    });
    let expert_width = |key: &'static str, bases: &[&str], derived: &mut Vec<&'static str>| {
        keys.u64(key).or_else(|| {
            let n = (0..n_layer).find_map(|l| {
                bases
                    .iter()
                    .find_map(|base| tensor_dim(model, &format!("blk.{l}.{base}.weight"), 1))
            })?;
            derived.push(key);
            Some(n)
        })
    };
    // Routed experts are `ffn_*_exps` [n_embd, n_ff_exp, n_expert]; the
    // shared expert `ffn_*_shexp` [n_embd, n_ff_shexp] (qwen2moe.cpp).
    let n_ff_expert = expert_width(
        "expert_feed_forward_length",
        &["ffn_up_exps", "ffn_gate_exps"],
        &mut derived,
    );
    let n_ff_shared_expert = expert_width(
        "expert_shared_feed_forward_length",
        &["ffn_up_shexp", "ffn_gate_shexp"],
        &mut derived,
    );
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
        .or_else(|| tensor_dim(model, "token_embd.weight", 1))
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
    let (attn_logit_softcapping, final_logit_softcapping) = softcapping(&keys, &mut derived);
    Ok(HyperParams {
        n_layer,
        n_head,
        n_head_kv,
        head_dim_k,
        head_dim_v,
        n_embd,
        n_ff,
        n_expert: n_expert.unwrap_or(0).min(u64::from(u32::MAX)) as u32,
        n_expert_used: keys.u64("expert_used_count").unwrap_or(0) as u32,
        n_ff_expert,
        n_ff_shared_expert,
        use_parallel_residual: keys.get("use_parallel_residual").and_then(Value::as_bool),
        n_vocab,
        n_ctx_train: keys.u64("context_length"),
        rope,
        sliding_window: keys.u64("attention.sliding_window"),
        norm_rms_eps: keys.f64("attention.layer_norm_rms_epsilon"),
        norm_eps: keys.f64("attention.layer_norm_epsilon"),
        attn_logit_softcapping,
        final_logit_softcapping,
        derived,
    })
}

/// The attention and final-logit soft-capping llama.cpp applies. Gemma 2
/// caps both always, with defaults of 50 and 30 when the file has no key
/// (`attn_soft_cap = true` and the unconditional cap in
/// `src/models/gemma2.cpp`, defaults in `src/llama-hparams.h`); Gemma 3n
/// caps the final logits at the default 30 without reading the key
/// (`src/models/gemma3n.cpp`). Elsewhere the key decides, and a cap of 0
/// means none (`if (hparams.f_final_logit_softcapping)` in gemma3.cpp and
/// others).
fn softcapping(keys: &Keys<'_>, derived: &mut Vec<&'static str>) -> (Option<f64>, Option<f64>) {
    let cap = |key: &'static str, default: Option<f64>, derived: &mut Vec<&'static str>| {
        match (keys.f64(key), default) {
            (Some(c), _) => Some(c),
            (None, Some(d)) => {
                derived.push(key);
                Some(d)
            }
            (None, None) => None,
        }
        .filter(|&c| c > 0.0)
    };
    match keys.arch {
        "gemma2" => (
            cap("attn_logit_softcapping", Some(50.0), derived),
            cap("final_logit_softcapping", Some(30.0), derived),
        ),
        "gemma3n" => {
            derived.push("final_logit_softcapping");
            (cap("attn_logit_softcapping", None, derived), Some(30.0))
        }
        _ => (
            cap("attn_logit_softcapping", None, derived),
            cap("final_logit_softcapping", None, derived),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::synthetic::SyntheticModel;
    use crate::gguf::{Array, GgmlType, GgufFile, GgufWriter};

    /// A model of `arch` with the given metadata and F32 tensors.
    fn model(arch: &str, meta: Vec<(&str, Value)>, tensors: &[(&str, &[u64])]) -> GgufModel {
        let mut w = GgufWriter::new();
        w.metadata("general.architecture", arch);
        for (k, v) in meta {
            w.metadata(k, v);
        }
        for (name, dims) in tensors {
            let n: u64 = dims.iter().product();
            w.tensor(*name, GgmlType::F32, dims, vec![0; n as usize * 4])
                .unwrap();
        }
        let file = GgufFile::from_bytes("test.gguf", w.to_bytes()).unwrap();
        GgufModel::from_file(file)
    }

    #[test]
    fn gqa_heads_come_from_the_keys_and_head_dims_from_the_width() {
        let m = SyntheticModel {
            n_head: 8,
            n_head_kv: 2,
            n_embd: 128,
            ..SyntheticModel::default()
        };
        let file = GgufFile::from_bytes("gqa.gguf", m.writer().to_bytes()).unwrap();
        let h = read(&GgufModel::from_file(file), "llama", 2).unwrap();
        assert_eq!(h.n_layer, 2);
        assert_eq!(
            (h.n_head.clone(), h.n_head_kv.clone()),
            (vec![8, 8], vec![2, 2])
        );
        assert_eq!(h.gqa_group(1), 4);
        assert_eq!(
            (h.uniform_heads(), h.uniform_kv_heads()),
            (Some(8), Some(2))
        );
        // The synthetic file has no key_length/value_length: 128 / 8 heads.
        assert_eq!((h.head_dim_k, h.head_dim_v), (16, 16));
        assert_eq!(
            h.derived,
            vec!["attention.key_length", "attention.value_length"]
        );
        assert_eq!((h.n_embd, h.n_vocab), (128, m.n_vocab()));
        assert_eq!(h.uniform_ff(), Some(128));
        assert_eq!(h.norm_rms_eps, Some(f64::from(1e-5f32)));
        assert_eq!(h.rope.dimension_count, Some(16));
    }

    #[test]
    fn per_layer_head_counts_stay_per_layer() {
        // A hybrid: layer 1 has no attention (0 KV heads), as Jamba writes.
        let m = model(
            "hybrid",
            vec![
                ("hybrid.block_count", Value::U32(3)),
                ("hybrid.embedding_length", Value::U32(64)),
                (
                    "hybrid.attention.head_count",
                    Array::I32(vec![4, 4, 8]).into(),
                ),
                (
                    "hybrid.attention.head_count_kv",
                    Array::U32(vec![2, 0, 8]).into(),
                ),
                ("hybrid.attention.key_length", Value::U32(32)),
                (
                    "hybrid.feed_forward_length",
                    Array::U64(vec![96, 128, 96]).into(),
                ),
            ],
            &[],
        );
        let h = read(&m, "hybrid", 0).unwrap();
        assert_eq!(h.n_head, vec![4, 4, 8]);
        assert_eq!(h.n_head_kv, vec![2, 0, 8]);
        assert_eq!(h.uniform_heads(), None);
        assert_eq!((h.gqa_group(0), h.gqa_group(1), h.gqa_group(2)), (2, 1, 1));
        assert_eq!(h.n_ff, vec![96, 128, 96]);
        // The first layer with heads sets the derived value width.
        assert_eq!((h.head_dim_k, h.head_dim_v), (32, 16));
    }

    #[test]
    fn per_layer_arrays_of_the_wrong_length_are_refused() {
        let m = model(
            "x",
            vec![
                ("x.block_count", Value::U32(3)),
                ("x.attention.head_count", Array::U32(vec![4, 4]).into()),
            ],
            &[],
        );
        let err = read(&m, "x", 0).unwrap_err().to_string();
        assert_eq!(err, "x.attention.head_count has 2 entries for 3 layers");
        let m = model("x", vec![("x.block_count", Value::U64(1 << 40))], &[]);
        assert!(read(&m, "x", 0).is_err());
    }

    #[test]
    fn missing_keys_are_derived_from_tensor_shapes() {
        let m = model(
            "mystery",
            vec![("mystery.attention.head_count", Value::U32(6))],
            &[
                ("token_embd.weight", &[48, 100]),
                ("blk.0.ffn_up.weight", &[48, 96]),
                ("blk.1.ffn_up.weight", &[48, 80]),
            ],
        );
        // Two blocks named in the tensors, no block_count key.
        let h = read(&m, "mystery", 2).unwrap();
        assert_eq!(h.n_layer, 2);
        assert_eq!(h.n_embd, 48);
        assert_eq!(h.n_ff, vec![96, 80]);
        assert_eq!(h.n_vocab, 100);
        assert_eq!(h.head_dim_k, 8);
        for key in [
            "block_count",
            "embedding_length",
            "feed_forward_length",
            "vocab_size",
        ] {
            assert!(h.derived.contains(&key), "{key} in {:?}", h.derived);
        }
        // A scalar token embedding has no width to derive from.
        let m = model("odd", vec![], &[("token_embd.weight", &[])]);
        let h = read(&m, "odd", 0).unwrap();
        assert_eq!((h.n_embd, h.n_vocab), (0, 0));
    }

    #[test]
    fn experts_come_from_keys_or_from_the_router_and_expert_tensors() {
        let tensors: &[(&str, &[u64])] = &[
            ("blk.0.ffn_gate_inp.weight", &[32, 8]),
            ("blk.0.ffn_up_exps.weight", &[32, 24, 8]),
        ];
        let keys = vec![
            ("moe.block_count", Value::U32(1)),
            ("moe.expert_count", Value::U32(8)),
            ("moe.expert_used_count", Value::U32(2)),
        ];
        let h = read(&model("moe", keys, tensors), "moe", 1).unwrap();
        assert_eq!((h.n_expert, h.n_expert_used), (8, 2));
        assert_eq!(h.n_ff, vec![24]);
        assert!(!h.derived.contains(&"expert_count"));

        let keys = vec![("moe.block_count", Value::U32(1))];
        let h = read(&model("moe", keys, tensors), "moe", 1).unwrap();
        assert_eq!(h.n_expert, 8);
        assert!(h.derived.contains(&"expert_count"));
    }

    #[test]
    fn soft_capping_follows_llama_cpp_per_architecture() {
        let caps = |arch: &str, meta: Vec<(&str, Value)>| {
            let h = read(&model(arch, meta, &[]), arch, 0).unwrap();
            let derived = ["attn_logit_softcapping", "final_logit_softcapping"]
                .map(|k| h.derived.contains(&k));
            (h.attn_logit_softcapping, h.final_logit_softcapping, derived)
        };
        // Gemma 2 without keys: llama.cpp's defaults, marked as derived.
        assert_eq!(
            caps("gemma2", vec![]),
            (Some(50.0), Some(30.0), [true, true])
        );
        assert_eq!(
            caps(
                "gemma2",
                vec![("gemma2.final_logit_softcapping", Value::F32(20.0))]
            ),
            (Some(50.0), Some(20.0), [true, false])
        );
        // Gemma 3: only what the file says, and 0 means no cap.
        assert_eq!(caps("gemma3", vec![]), (None, None, [false, false]));
        assert_eq!(
            caps(
                "gemma3",
                vec![("gemma3.final_logit_softcapping", Value::F32(0.0))]
            ),
            (None, None, [false, false])
        );
        assert_eq!(caps("gemma3n", vec![]), (None, Some(30.0), [false, true]));
    }

    #[test]
    fn expert_widths_and_the_parallel_residual_key_are_read_or_derived() {
        let tensors: &[(&str, &[u64])] = &[
            ("blk.0.ffn_up_exps.weight", &[32, 24, 8]),
            ("blk.0.ffn_up_shexp.weight", &[32, 40]),
        ];
        let h = read(&model("moe", vec![], tensors), "moe", 1).unwrap();
        assert_eq!((h.n_ff_expert, h.n_ff_shared_expert), (Some(24), Some(40)));
        assert!(h.derived.contains(&"expert_feed_forward_length"));
        assert!(h.derived.contains(&"expert_shared_feed_forward_length"));
        let keys = vec![
            ("moe.expert_feed_forward_length", Value::U32(16)),
            ("moe.use_parallel_residual", Value::Bool(true)),
        ];
        let h = read(&model("moe", keys, tensors), "moe", 1).unwrap();
        assert_eq!((h.n_ff_expert, h.n_ff_shared_expert), (Some(16), Some(40)));
        assert!(!h.derived.contains(&"expert_feed_forward_length"));
        assert_eq!(h.use_parallel_residual, Some(true));
        let h = read(&model("dense", vec![], &[]), "dense", 0).unwrap();
        assert_eq!((h.n_ff_expert, h.use_parallel_residual), (None, None));
    }
}
