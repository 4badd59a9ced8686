//! Whether llama.cpp can run a model: the hyperparameters, token ids and
//! tensor shapes its graph relies on, checked before it sees the file.
//!
//! ggviz's reader proves a file well-formed; a well-formed file can still
//! hold values llama.cpp answers with `GGML_ASSERT` → `abort()` (a zero layer
//! count, a NaN epsilon, RoPE wider than a head) or with out-of-range reads
//! (special token ids past the vocabulary, token-type arrays shorter than
//! it). The worker process (see `crate::worker`) turns any abort into an
//! error, but a check here names the key and the value, which an assertion
//! in ggml's source does not. Every problem is listed, not just the first.

use crate::gguf::GgufModel;
use crate::gguf::Value;

use super::{Anatomy, TensorRole};

/// Problems that keep llama.cpp from running a model, in a readable list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("llama.cpp cannot run this model: {}", .problems.join("; "))]
pub struct NotRunnable {
    pub problems: Vec<String>,
}

/// Special-token keys whose ids index the vocabulary.
const TOKEN_ID_KEYS: &[&str] = &[
    "bos_token_id",
    "eos_token_id",
    "unknown_token_id",
    "seperator_token_id",
    "padding_token_id",
    "cls_token_id",
    "mask_token_id",
    "eot_token_id",
    "eom_token_id",
    "prefix_token_id",
    "suffix_token_id",
    "middle_token_id",
    "fim_pre_token_id",
    "fim_suf_token_id",
    "fim_mid_token_id",
    "fim_pad_token_id",
    "fim_rep_token_id",
    "fim_sep_token_id",
];

/// Per-token arrays that must be as long as `tokenizer.ggml.tokens`.
const PER_TOKEN_KEYS: &[&str] = &["tokenizer.ggml.scores", "tokenizer.ggml.token_type"];

/// Checks what llama.cpp relies on; `Ok` when nothing is wrong.
pub fn check(anatomy: &Anatomy, model: &GgufModel) -> Result<(), NotRunnable> {
    let mut problems = Vec::new();
    hyperparameters(anatomy, model, &mut problems);
    vocabulary(model, &mut problems);
    shapes(anatomy, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(NotRunnable { problems })
    }
}

fn arch_key(anatomy: &Anatomy, key: &str) -> String {
    format!("{}.{key}", anatomy.architecture)
}

/// A float key as the file holds it (f32 or f64), `None` when absent.
fn float_key(model: &GgufModel, key: &str) -> Option<f64> {
    match model.get(key)? {
        Value::F32(v) => Some(f64::from(*v)),
        Value::F64(v) => Some(*v),
        _ => None,
    }
}

fn hyperparameters(a: &Anatomy, model: &GgufModel, problems: &mut Vec<String>) {
    let hp = &a.hparams;
    let key = |k: &str| arch_key(a, k);
    if model.get(&key("block_count")).is_none() && model.get(&key("attention.head_count")).is_none()
    {
        problems.push(format!(
            "general.architecture is `{}`, but the file has none of its hyperparameters \
             ({}, {}): an architecture llama.cpp does not know, or a file without its keys",
            a.architecture,
            key("block_count"),
            key("attention.head_count")
        ));
        return;
    }
    if hp.n_layer == 0 {
        problems.push(format!(
            "{} is 0: the model has no layers",
            key("block_count")
        ));
    }
    if hp.n_embd == 0 {
        problems.push(format!(
            "{} is 0: the embedding has no width",
            key("embedding_length")
        ));
    }
    if hp.n_layer > 0 && hp.n_head.iter().all(|&h| h == 0) {
        problems.push(format!(
            "{} is 0: the model has no attention head",
            key("attention.head_count")
        ));
    }
    let mut attention_layers = hp
        .n_head
        .iter()
        .zip(&hp.n_head_kv)
        .filter(|(h, _)| **h > 0)
        .peekable();
    if attention_layers.peek().is_some() && attention_layers.all(|(_, kv)| *kv == 0) {
        problems.push(format!(
            "{} is 0: attention needs at least one KV head",
            key("attention.head_count_kv")
        ));
    }
    if let Some((l, (h, kv))) = hp
        .n_head
        .iter()
        .zip(&hp.n_head_kv)
        .enumerate()
        .find(|(_, (h, kv))| **h > 0 && **kv > 0 && **h % **kv != 0)
    {
        problems.push(format!(
            "{}: {kv} KV heads cannot serve {h} query heads in layer {l} \
             (the KV heads must divide the heads)",
            key("attention.head_count_kv")
        ));
    }
    if let Some(&most) = hp.n_head.iter().max()
        && most > 0
    {
        // Written in the file, or (llama.cpp's default) the embedding width
        // over the heads, which is 0 when the heads outnumber it.
        let mut derived = Vec::new();
        for (k, dim, what) in [
            ("attention.key_length", hp.head_dim_k, "key"),
            ("attention.value_length", hp.head_dim_v, "value"),
        ] {
            if dim != 0 {
                continue;
            }
            if model.get(&key(k)).is_some() {
                problems.push(format!("{} is 0: heads have no {what} width", key(k)));
            } else {
                derived.push(what);
            }
        }
        if !derived.is_empty() {
            problems.push(format!(
                "{} is {most}: {} {} over {most} heads leaves each no {} width",
                key("attention.head_count"),
                key("embedding_length"),
                hp.n_embd,
                derived.join(" or ")
            ));
        }
    }
    let dense_ffn = a.tensors.iter().any(|t| t.role == TensorRole::FfnUp);
    if dense_ffn && hp.n_ff.contains(&0) && hp.n_expert == 0 {
        problems.push(format!(
            "{} is 0: the FFN has no width",
            key("feed_forward_length")
        ));
    }
    if hp.n_ctx_train == Some(0) {
        problems.push(format!(
            "{} is 0: no context to run in",
            key("context_length")
        ));
    }
    for (k, what) in [
        ("attention.layer_norm_rms_epsilon", "RMS norm epsilon"),
        ("attention.layer_norm_epsilon", "norm epsilon"),
    ] {
        if let Some(eps) = float_key(model, &key(k))
            && !(eps.is_finite() && eps >= 0.0)
        {
            problems.push(format!(
                "{} is {eps}: the {what} must be a finite number ≥ 0",
                key(k)
            ));
        }
    }
    if let Some(base) = float_key(model, &key("rope.freq_base"))
        && !(base.is_finite() && base > 0.0)
    {
        problems.push(format!(
            "{} is {base}: the RoPE base must be a finite number > 0",
            key("rope.freq_base")
        ));
    }
    if let Some(dims) = hp.rope.dimension_count {
        let head = u64::from(hp.head_dim_k);
        if head > 0 && dims > head {
            problems.push(format!(
                "{} is {dims}: RoPE cannot rotate more dimensions than a head has ({head})",
                key("rope.dimension_count")
            ));
        }
        if dims % 2 == 1 {
            problems.push(format!(
                "{} is {dims}: RoPE rotates pairs of dimensions, so it must be even",
                key("rope.dimension_count")
            ));
        }
    }
    if hp.n_expert_used > hp.n_expert {
        problems.push(format!(
            "{} is {}, more than the {} experts of {}",
            key("expert_used_count"),
            hp.n_expert_used,
            hp.n_expert,
            key("expert_count")
        ));
    }
    let has_router = a.tensors.iter().any(|t| t.role == TensorRole::FfnRouter);
    if hp.n_expert > 0 && !has_router {
        problems.push(format!(
            "{} is {} but the file has no expert router (ffn_gate_inp) tensors",
            key("expert_count"),
            hp.n_expert
        ));
    }
}

fn vocabulary(model: &GgufModel, problems: &mut Vec<String>) {
    let Some(tokens) = model.get("tokenizer.ggml.tokens").and_then(Value::as_array) else {
        problems.push("tokenizer.ggml.tokens is missing: the model has no vocabulary".into());
        return;
    };
    let n_tokens = tokens.len() as u64;
    for k in PER_TOKEN_KEYS {
        if let Some(len) = model
            .get(k)
            .and_then(Value::as_array)
            .map(|a| a.len() as u64)
            && len != n_tokens
        {
            problems.push(format!(
                "{k} has {len} entries for a vocabulary of {n_tokens} tokens"
            ));
        }
    }
    for k in TOKEN_ID_KEYS {
        let key = format!("tokenizer.ggml.{k}");
        // llama.cpp reads these as u32 and treats -1 (u32::MAX) as "none"
        // only for some; anything else past the vocabulary is out of range.
        if let Some(id) = model.get(&key).and_then(Value::as_u64)
            && id >= n_tokens
        {
            problems.push(format!(
                "{key} is {id}, outside the vocabulary of {n_tokens} tokens"
            ));
        }
    }
}

/// Whether tensor `name` of `a` has `want` in dimension `dim`; a problem
/// saying why it must, if not.
fn expect_dim(a: &Anatomy, name: &str, dim: usize, want: u64, why: &str) -> Option<String> {
    let t = a.tensors.iter().find(|t| t.name == name)?;
    t.shape.get(dim).filter(|&&d| d != want).map(|_| {
        format!(
            "{name} has shape {:?}, but {why} needs {want} in dimension {dim}",
            t.shape
        )
    })
}

/// Checks the token embedding's shape against the embedding width and the
/// vocabulary: what the embeddings view relies on, which also runs on
/// models llama.cpp cannot (`--no-inference`).
pub fn check_embedding(a: &Anatomy) -> Result<(), NotRunnable> {
    let mut problems = Vec::new();
    embedding_shape(a, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(NotRunnable { problems })
    }
}

fn embedding_shape(a: &Anatomy, problems: &mut Vec<String>) {
    let hp = &a.hparams;
    if hp.n_embd > 0 {
        problems.extend(expect_dim(
            a,
            "token_embd.weight",
            0,
            hp.n_embd,
            &format!("{} = {}", arch_key(a, "embedding_length"), hp.n_embd),
        ));
    }
    if a.tokenizer.tokens > 0 {
        problems.extend(expect_dim(
            a,
            "token_embd.weight",
            1,
            a.tokenizer.tokens as u64,
            "a vocabulary of that many tokens",
        ));
    }
}

/// The shapes every layer's attention and the embedding must have.
fn shapes(a: &Anatomy, problems: &mut Vec<String>) {
    let hp = &a.hparams;
    embedding_shape(a, problems);
    let mut expect = |name: &str, dim: usize, want: u64, why: &str| {
        problems.extend(expect_dim(a, name, dim, want, why));
    };
    for l in 0..hp.n_layer as usize {
        let (Some(&h), Some(&kv)) = (hp.n_head.get(l), hp.n_head_kv.get(l)) else {
            continue;
        };
        let dk = u64::from(hp.head_dim_k);
        let dv = u64::from(hp.head_dim_v);
        if h > 0 && dk > 0 {
            expect(
                &format!("blk.{l}.attn_q.weight"),
                1,
                u64::from(h) * dk,
                &format!("{h} heads × key width {dk}"),
            );
        }
        if kv > 0 && dk > 0 {
            expect(
                &format!("blk.{l}.attn_k.weight"),
                1,
                u64::from(kv) * dk,
                &format!("{kv} KV heads × key width {dk}"),
            );
        }
        if kv > 0 && dv > 0 {
            expect(
                &format!("blk.{l}.attn_v.weight"),
                1,
                u64::from(kv) * dv,
                &format!("{kv} KV heads × value width {dv}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::synthetic::SyntheticModel;

    fn anatomy_of(w: &crate::gguf::writer::GgufWriter) -> (tempfile::TempDir, GgufModel, Anatomy) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("m.gguf");
        w.write(&path).unwrap_or_else(|e| panic!("{e}"));
        let model = GgufModel::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let anatomy = Anatomy::from_model(&model).unwrap_or_else(|e| panic!("{e}"));
        (dir, model, anatomy)
    }

    #[test]
    fn the_synthetic_models_are_runnable() {
        let w = SyntheticModel::default().writer();
        let (_dir, model, anatomy) = anatomy_of(&w);
        assert_eq!(check(&anatomy, &model), Ok(()));
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let mut w = SyntheticModel::default().writer();
        w.set_metadata("llama.attention.layer_norm_rms_epsilon", f32::NAN)
            .set_metadata("llama.rope.dimension_count", 7u32)
            .set_metadata("tokenizer.ggml.bos_token_id", 1_000_000u32)
            .set_metadata("llama.attention.head_count_kv", 3u32);
        let (_dir, model, anatomy) = anatomy_of(&w);
        let err = check(&anatomy, &model).unwrap_err();
        let text = err.to_string();
        for needle in [
            "llama.attention.layer_norm_rms_epsilon is NaN",
            "llama.rope.dimension_count is 7",
            "tokenizer.ggml.bos_token_id is 1000000",
            "3 KV heads cannot serve 4 query heads",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert!(err.problems.len() >= 4, "{text}");
    }
}
