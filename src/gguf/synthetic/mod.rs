//! Tiny synthetic models of several llama.cpp architectures, written with
//! [`GgufWriter`].
//!
//! Tests, benchmarks and examples need models they can make in milliseconds
//! without a download: a few layers, GQA, a mix of quantization types, a
//! small SentencePiece-style vocabulary with byte fallback, so llama.cpp can
//! load and run them too. [`Architecture`] picks the tensor set and metadata
//! keys of a real architecture (llama by default). Weights are deterministic
//! pseudo-random values, quantized for real for F32, F16, BF16, Q8_0, Q4_0
//! and Q4_1; other types get all-zero blocks (a zero scale decodes to zeros,
//! which is still valid).

mod arch;
mod encode;

use super::types::GgmlType;
use super::value::{Array, StringArray};
use super::writer::GgufWriter;

pub use arch::Architecture;
pub use encode::encode;

use arch::{Ffn, FfnNorm, Output};
use encode::{Rng, storage_type};

/// The ggml type of each tensor, by layer and tensor base name.
pub type TypeChooser = fn(layer: Option<u32>, base: &str) -> GgmlType;

/// A model to synthesise.
#[derive(Debug, Clone)]
pub struct SyntheticModel {
    /// The llama.cpp architecture whose tensors and keys the file has.
    pub architecture: Architecture,
    pub name: String,
    pub n_layer: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub n_embd: u64,
    pub n_ff: u64,
    /// Routed experts per layer, for architectures with experts.
    pub n_expert: u32,
    /// Experts used per token, for architectures with experts.
    pub n_expert_used: u32,
    /// Words added after the control and byte tokens (with the prefixes
    /// SentencePiece needs to reach them; see [`SyntheticModel::word_pieces`]).
    pub extra_tokens: Vec<String>,
    /// Leave out `output.weight`, so the head reuses the embedding. The
    /// architecture wins where llama.cpp fixes it: gemma2 and command-r are
    /// always tied;
    /// qwen2moe, phi2, gptneox and gpt-oss always have an output tensor.
    pub tied_embeddings: bool,
    pub context_length: u32,
    pub chat_template: Option<String>,
    pub types: TypeChooser,
    pub seed: u64,
}

/// Norms in F32, embeddings in F16, Q8_0 attention, Q4_0 FFN and Q4_1 for
/// the down projection of odd layers, so types vary across layers.
pub fn mixed_types(layer: Option<u32>, base: &str) -> GgmlType {
    match (layer, base) {
        (_, b) if b.ends_with("norm") => GgmlType::F32,
        (None, "token_embd") => GgmlType::F16,
        // llama.cpp never quantizes the expert router (llama-quant.cpp).
        (_, "ffn_gate_inp") => GgmlType::F32,
        (None, _) => GgmlType::Q8_0,
        (Some(l), "ffn_down") if l % 2 == 1 => GgmlType::Q4_1,
        (_, b) if b.starts_with("attn_") => GgmlType::Q8_0,
        _ => GgmlType::Q4_0,
    }
}

/// Every tensor in F32.
pub fn all_f32(_: Option<u32>, _: &str) -> GgmlType {
    GgmlType::F32
}

impl Default for SyntheticModel {
    fn default() -> Self {
        SyntheticModel {
            architecture: Architecture::Llama,
            name: "ggviz synthetic llama".into(),
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_embd: 64,
            n_ff: 128,
            n_expert: 4,
            n_expert_used: 2,
            extra_tokens: [
                "▁the",
                "▁capital",
                "▁of",
                "▁France",
                "▁is",
                "▁Paris",
                "▁a",
                "▁cat",
                "▁sat",
                "▁on",
                "▁mat",
                "▁and",
                "▁dog",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            tied_embeddings: false,
            context_length: 256,
            chat_template: None,
            types: mixed_types,
            seed: 0x5eed,
        }
    }
}

impl SyntheticModel {
    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> u64 {
        3 + 256 + self.word_pieces().len() as u64
    }

    /// The normal (non-control, non-byte) pieces: `▁`, then each extra
    /// token's prefixes of two characters or more, then the token itself.
    /// SentencePiece tokenization (llama.cpp's `llm_tokenizer_spm`) builds a
    /// word by merging adjacent pieces, and only into pieces the vocabulary
    /// has, so `▁the` is reachable only through `▁t` and `▁th`; without them
    /// every word falls back to bytes.
    pub fn word_pieces(&self) -> Vec<String> {
        let mut pieces = vec!["▁".to_string()];
        // A set beside the list: benchmarks make 262,144-token vocabularies.
        let mut seen: std::collections::HashSet<String> = pieces.iter().cloned().collect();
        for token in &self.extra_tokens {
            let ends = token.char_indices().map(|(i, _)| i).skip(2);
            for prefix in ends.map(|i| &token[..i]).chain([token.as_str()]) {
                if seen.insert(prefix.to_string()) {
                    pieces.push(prefix.to_string());
                }
            }
        }
        pieces
    }

    /// The model as a writer, ready to write or to turn into bytes.
    pub fn writer(&self) -> GgufWriter {
        let mut w = GgufWriter::new();
        self.metadata(&mut w);
        self.tokenizer(&mut w);
        if let Some(t) = &self.chat_template {
            w.metadata("tokenizer.chat_template", t.as_str());
        }
        let mut rng = Rng(self.seed | 1);
        for (name, layer, dims) in self.tensors() {
            let (stem, suffix) = name.rsplit_once('.').unwrap_or((&name, ""));
            let base = stem.rsplit('.').next().unwrap_or(stem);
            let n: u64 = dims.iter().product();
            let values: Vec<f32> = if suffix != "weight" {
                (0..n).map(|_| rng.next(0.05)).collect()
            } else if base.ends_with("norm") {
                (0..n).map(|_| 1.0 + rng.next(0.1)).collect()
            } else {
                let scale = 1.0 / (dims[0] as f32).sqrt();
                (0..n).map(|_| rng.next(scale)).collect()
            };
            let t = storage_type((self.types)(layer, base), &dims, suffix);
            // `storage_type` keeps every quantized row whole blocks.
            if let Err(err) = w.tensor(name.as_str(), t, &dims, encode(&values, t)) {
                unreachable!("synthetic tensor does not fit its type: {err}");
            }
        }
        w
    }

    /// Width of one attention head.
    fn head_dim(&self) -> u64 {
        self.n_embd / u64::from(self.n_head)
    }

    /// The `general.*` keys and the architecture's own keys.
    fn metadata(&self, w: &mut GgufWriter) {
        let arch = self.architecture.name();
        let layout = self.architecture.layout();
        let head_dim = self.head_dim();
        let (num, den) = layout.rope_fraction;
        let key = |k: &str| format!("{arch}.{k}");
        w.metadata("general.architecture", arch)
            .metadata("general.name", self.name.as_str())
            .metadata("general.file_type", 7u32)
            .metadata(key("block_count"), self.n_layer)
            .metadata(key("context_length"), self.context_length)
            .metadata(key("embedding_length"), self.n_embd as u32)
            .metadata(key("feed_forward_length"), self.n_ff as u32)
            .metadata(key("attention.head_count"), self.n_head)
            .metadata(key("attention.head_count_kv"), self.n_head_kv)
            .metadata(key("rope.freq_base"), 10000f32)
            .metadata(key("rope.dimension_count"), (head_dim * num / den) as u32);
        if layout.layer_norm {
            w.metadata(key("attention.layer_norm_epsilon"), 1e-5f32);
        } else {
            w.metadata(key("attention.layer_norm_rms_epsilon"), 1e-5f32);
        }
        w.metadata(key("vocab_size"), self.n_vocab() as u32);
        if let Ffn::Experts { shared, .. } = layout.ffn {
            w.metadata(key("expert_count"), self.n_expert)
                .metadata(key("expert_used_count"), self.n_expert_used)
                .metadata(key("expert_feed_forward_length"), self.n_ff as u32);
            if shared {
                w.metadata(key("expert_shared_feed_forward_length"), self.n_ff as u32);
            }
        }
        match self.architecture {
            Architecture::Gemma2 => {
                // The values Gemma 2 ships with (and llama.cpp's defaults).
                w.metadata(key("attention.key_length"), head_dim as u32)
                    .metadata(key("attention.value_length"), head_dim as u32)
                    .metadata(key("attention.sliding_window"), 4096u32)
                    .metadata(key("attn_logit_softcapping"), 50f32)
                    .metadata(key("final_logit_softcapping"), 30f32);
            }
            Architecture::Gemma3 => {
                w.metadata(key("attention.key_length"), head_dim as u32)
                    .metadata(key("attention.value_length"), head_dim as u32)
                    .metadata(key("attention.sliding_window"), 512u32);
            }
            Architecture::GptNeoX { parallel_residual } => {
                w.metadata(key("use_parallel_residual"), parallel_residual);
            }
            Architecture::CommandR => {
                // Command R's scale, applied to the logits (command-r.cpp).
                w.metadata(key("logit_scale"), 0.0625f32);
            }
            Architecture::GptOss => {
                w.metadata(key("attention.sliding_window"), 128u32);
            }
            _ => {}
        }
    }

    /// Every tensor as (name, layer, dims), in file order.
    fn tensors(&self) -> Vec<(String, Option<u32>, Vec<u64>)> {
        let layout = self.architecture.layout();
        let (e, ff, hd) = (self.n_embd, self.n_ff, self.head_dim());
        let q = hd * u64::from(self.n_head);
        let kv = hd * u64::from(self.n_head_kv);
        let n_exp = u64::from(self.n_expert);
        let vocab = self.n_vocab();
        let mut out = vec![("token_embd.weight".to_owned(), None, vec![e, vocab])];
        for l in 0..self.n_layer {
            let mut t = |base: &str, suffix: &str, dims: &[u64]| {
                out.push((format!("blk.{l}.{base}.{suffix}"), Some(l), dims.to_vec()));
            };
            // A weight, with its bias when `bias`.
            let mut wb = |base: &str, dims: &[u64], bias: &[u64], with_bias: bool| {
                t(base, "weight", dims);
                if with_bias {
                    t(base, "bias", bias);
                }
            };
            wb("attn_norm", &[e], &[e], layout.norm_bias);
            if layout.fused_qkv {
                wb("attn_qkv", &[e, q + 2 * kv], &[q + 2 * kv], layout.qkv_bias);
            } else {
                wb("attn_q", &[e, q], &[q], layout.qkv_bias);
                wb("attn_k", &[e, kv], &[kv], layout.qkv_bias);
                wb("attn_v", &[e, kv], &[kv], layout.qkv_bias);
            }
            if layout.qk_norm {
                wb("attn_q_norm", &[hd], &[], false);
                wb("attn_k_norm", &[hd], &[], false);
            }
            wb("attn_output", &[q, e], &[e], layout.out_bias);
            if layout.sinks {
                wb("attn_sinks", &[u64::from(self.n_head)], &[], false);
            }
            if layout.post_norms || layout.ffn_norm == FfnNorm::PostAttention {
                wb("post_attention_norm", &[e], &[], false);
            }
            if layout.ffn_norm == FfnNorm::Own {
                wb("ffn_norm", &[e], &[e], layout.norm_bias);
            }
            match layout.ffn {
                Ffn::Gated => {
                    wb("ffn_gate", &[e, ff], &[], false);
                    wb("ffn_up", &[e, ff], &[], false);
                    wb("ffn_down", &[ff, e], &[], false);
                }
                Ffn::Plain => {
                    wb("ffn_up", &[e, ff], &[ff], true);
                    wb("ffn_down", &[ff, e], &[e], true);
                }
                Ffn::Experts { shared, bias } => {
                    wb("ffn_gate_inp", &[e, n_exp], &[n_exp], bias);
                    wb("ffn_gate_exps", &[e, ff, n_exp], &[ff, n_exp], bias);
                    wb("ffn_up_exps", &[e, ff, n_exp], &[ff, n_exp], bias);
                    wb("ffn_down_exps", &[ff, e, n_exp], &[e, n_exp], bias);
                    if shared {
                        wb("ffn_gate_inp_shexp", &[e], &[], false);
                        wb("ffn_gate_shexp", &[e, ff], &[], false);
                        wb("ffn_up_shexp", &[e, ff], &[], false);
                        wb("ffn_down_shexp", &[ff, e], &[], false);
                    }
                }
            }
            if layout.post_norms {
                wb("post_ffw_norm", &[e], &[], false);
            }
        }
        out.push(("output_norm.weight".into(), None, vec![e]));
        if layout.norm_bias {
            out.push(("output_norm.bias".into(), None, vec![e]));
        }
        let (head, head_bias) = match layout.output {
            Output::Optional => (!self.tied_embeddings, false),
            Output::Required { bias } => (true, bias),
            Output::Tied => (false, false),
        };
        if head {
            out.push(("output.weight".into(), None, vec![e, vocab]));
        }
        if head_bias {
            out.push(("output.bias".into(), None, vec![vocab]));
        }
        out
    }

    /// A SentencePiece vocabulary: `<unk>`, `<s>`, `</s>`, the 256 byte
    /// tokens, then the word pieces (llama.cpp's `LLAMA_VOCAB_TYPE_SPM`).
    fn tokenizer(&self, w: &mut GgufWriter) {
        let mut tokens = StringArray::default();
        let mut types = Vec::new();
        let mut scores = Vec::new();
        for (t, ty) in [("<unk>", 2), ("<s>", 3), ("</s>", 3)] {
            tokens.push(t);
            types.push(ty);
            scores.push(0f32);
        }
        for b in 0..=255u8 {
            tokens.push(&format!("<0x{b:02X}>"));
            types.push(6);
            scores.push(0f32);
        }
        for (i, t) in self.word_pieces().iter().enumerate() {
            tokens.push(t);
            types.push(1);
            scores.push(-(i as f32));
        }
        w.metadata("tokenizer.ggml.model", "llama")
            .metadata("tokenizer.ggml.tokens", Array::String(tokens))
            .metadata("tokenizer.ggml.scores", Array::F32(scores))
            .metadata("tokenizer.ggml.token_type", Array::I32(types))
            .metadata("tokenizer.ggml.bos_token_id", 1u32)
            .metadata("tokenizer.ggml.eos_token_id", 2u32)
            .metadata("tokenizer.ggml.unknown_token_id", 0u32)
            .metadata("tokenizer.ggml.add_bos_token", true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;

    #[test]
    fn synthetic_model_is_valid_gguf_with_mixed_types() {
        let m = SyntheticModel::default();
        let f = GgufFile::from_bytes("synthetic.gguf", m.writer().to_bytes()).unwrap();
        assert_eq!(f.tensors.len(), 1 + 9 * 2 + 2);
        let types: std::collections::BTreeSet<_> = f.tensors.iter().map(|t| t.ggml_type).collect();
        assert!(types.len() >= 4, "{types:?}");
    }

    #[test]
    fn word_pieces_include_every_prefix_once() {
        let m = SyntheticModel {
            extra_tokens: vec!["▁the".into(), "▁to".into()],
            ..SyntheticModel::default()
        };
        assert_eq!(m.word_pieces(), ["▁", "▁t", "▁th", "▁the", "▁to"]);
        assert_eq!(m.n_vocab(), 3 + 256 + 5);
    }

    fn names(arch: Architecture, tied: bool) -> Vec<String> {
        let m = SyntheticModel {
            architecture: arch,
            tied_embeddings: tied,
            n_layer: 1,
            ..SyntheticModel::default()
        };
        let f = GgufFile::from_bytes("arch.gguf", m.writer().to_bytes()).unwrap();
        f.tensors.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn each_architecture_has_llama_cpps_tensor_set() {
        let layer = |arch, tied| -> Vec<String> {
            names(arch, tied)
                .into_iter()
                .filter_map(|n| n.strip_prefix("blk.0.").map(str::to_owned))
                .collect()
        };
        assert_eq!(
            layer(Architecture::Qwen2, false),
            [
                "attn_norm.weight",
                "attn_q.weight",
                "attn_q.bias",
                "attn_k.weight",
                "attn_k.bias",
                "attn_v.weight",
                "attn_v.bias",
                "attn_output.weight",
                "ffn_norm.weight",
                "ffn_gate.weight",
                "ffn_up.weight",
                "ffn_down.weight"
            ]
        );
        assert_eq!(
            layer(Architecture::Phi2, false),
            [
                "attn_norm.weight",
                "attn_norm.bias",
                "attn_qkv.weight",
                "attn_qkv.bias",
                "attn_output.weight",
                "attn_output.bias",
                "ffn_up.weight",
                "ffn_up.bias",
                "ffn_down.weight",
                "ffn_down.bias"
            ]
        );
        let gemma3 = layer(Architecture::Gemma3, false);
        for n in [
            "attn_q_norm.weight",
            "attn_k_norm.weight",
            "post_attention_norm.weight",
            "post_ffw_norm.weight",
        ] {
            assert!(gemma3.iter().any(|t| t == n), "{n}");
        }
        let moe = layer(Architecture::Qwen2Moe, false);
        for n in [
            "ffn_gate_inp.weight",
            "ffn_up_exps.weight",
            "ffn_gate_inp_shexp.weight",
            "ffn_down_shexp.weight",
        ] {
            assert!(moe.iter().any(|t| t == n), "{n}");
        }
        assert!(!moe.iter().any(|t| t == "ffn_up.weight"));
        let oss = layer(Architecture::GptOss, false);
        for n in [
            "attn_sinks.weight",
            "ffn_gate_inp.bias",
            "ffn_down_exps.bias",
        ] {
            assert!(oss.iter().any(|t| t == n), "{n}");
        }
        assert!(!oss.iter().any(|t| t == "ffn_norm.weight"));
        // Output heads: gemma2 is always tied; phi2 never, with a bias.
        let globals = |arch, tied| -> Vec<String> {
            names(arch, tied)
                .into_iter()
                .filter(|n| !n.starts_with("blk."))
                .collect()
        };
        assert_eq!(
            globals(Architecture::Gemma2, false),
            ["token_embd.weight", "output_norm.weight"]
        );
        assert_eq!(
            globals(Architecture::Phi2, true),
            [
                "token_embd.weight",
                "output_norm.weight",
                "output_norm.bias",
                "output.weight",
                "output.bias"
            ]
        );
        assert_eq!(globals(Architecture::Qwen2, true).len(), 2);
        // command-r: LayerNorm without biases, no FFN norm, always tied.
        assert_eq!(
            globals(Architecture::CommandR, false),
            ["token_embd.weight", "output_norm.weight"]
        );
        let command_r = layer(Architecture::CommandR, false);
        assert_eq!(command_r.len(), 8);
        assert!(
            !command_r
                .iter()
                .any(|t| t.ends_with(".bias") || t == "ffn_norm.weight")
        );
    }

    #[test]
    fn keys_and_types_follow_the_architecture() {
        let m = SyntheticModel {
            architecture: Architecture::GptNeoX {
                parallel_residual: true,
            },
            n_embd: 48,
            n_head: 3,
            n_head_kv: 3,
            n_ff: 96,
            ..SyntheticModel::default()
        };
        let f = GgufFile::from_bytes("neox.gguf", m.writer().to_bytes()).unwrap();
        let meta = |k: &str| f.metadata.get(k).cloned();
        assert_eq!(meta("general.architecture"), Some("gptneox".into()));
        assert_eq!(meta("gptneox.use_parallel_residual"), Some(true.into()));
        assert_eq!(meta("gptneox.rope.dimension_count"), Some(4u32.into()));
        assert!(meta("gptneox.attention.layer_norm_epsilon").is_some());
        assert!(meta("gptneox.attention.layer_norm_rms_epsilon").is_none());
        // Rows of 48 are no whole number of 32-blocks: F16, as llama.cpp's
        // quantizer falls back; biases and norms stay F32.
        let ty = |n: &str| f.tensors.iter().find(|t| t.name == n).unwrap().ggml_type;
        assert_eq!(ty("blk.0.attn_qkv.weight"), GgmlType::F16);
        assert_eq!(ty("blk.0.attn_qkv.bias"), GgmlType::F32);
        assert_eq!(ty("blk.1.ffn_down.weight"), GgmlType::Q4_1);
        assert_eq!(ty("blk.1.ffn_norm.bias"), GgmlType::F32);

        let m = SyntheticModel {
            architecture: Architecture::Gemma2,
            ..SyntheticModel::default()
        };
        let f = GgufFile::from_bytes("gemma2.gguf", m.writer().to_bytes()).unwrap();
        let meta = |k: &str| f.metadata.get(k).cloned();
        assert_eq!(meta("gemma2.final_logit_softcapping"), Some(30f32.into()));
        assert_eq!(meta("gemma2.attn_logit_softcapping"), Some(50f32.into()));
        assert_eq!(meta("gemma2.attention.key_length"), Some(16u32.into()));
    }
}
