//! Tiny synthetic llama-style models, written with [`GgufWriter`].
//!
//! Tests, benchmarks and examples need models they can make in milliseconds
//! without a download: a few layers, GQA, a mix of quantization types, a
//! small SentencePiece-style vocabulary with byte fallback, so llama.cpp can
//! load and run them too. Weights are deterministic pseudo-random values,
//! quantized for real for F32, F16, BF16, Q8_0, Q4_0 and Q4_1; other types
//! get all-zero blocks (a zero scale decodes to zeros, which is still valid).

use half::{bf16, f16};

use super::types::GgmlType;
use super::value::{Array, StringArray};
use super::writer::GgufWriter;

/// The ggml type of each tensor, by layer and tensor base name.
pub type TypeChooser = fn(layer: Option<u32>, base: &str) -> GgmlType;

/// A llama-architecture model to synthesise.
#[derive(Debug, Clone)]
pub struct SyntheticModel {
    pub name: String,
    pub n_layer: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub n_embd: u64,
    pub n_ff: u64,
    /// Words added after the control and byte tokens (with the prefixes
    /// SentencePiece needs to reach them; see [`SyntheticModel::word_pieces`]).
    pub extra_tokens: Vec<String>,
    /// Leave out `output.weight`, so the head reuses the embedding.
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
            name: "ggviz synthetic llama".into(),
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_embd: 64,
            n_ff: 128,
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

/// Deterministic xorshift64* values in [-scale, scale].
struct Rng(u64);

impl Rng {
    fn next(&mut self, scale: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }
}

/// Encodes f32 values as `ggml_type`, quantizing per 32-element block.
pub fn encode(values: &[f32], ggml_type: GgmlType) -> Vec<u8> {
    let mut out = Vec::new();
    match ggml_type {
        GgmlType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        GgmlType::Bf16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&bf16::from_f32(*v).to_le_bytes())),
        GgmlType::Q8_0 => {
            for block in values.chunks(32) {
                let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
            }
        }
        GgmlType::Q4_0 => {
            for block in values.chunks(32) {
                // ggml's quantize_row_q4_0_ref: scale from the signed extreme.
                let max = block
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
                for j in 0..16 {
                    out.push(q(block[j]) | (q(block[j + 16]) << 4));
                }
            }
        }
        GgmlType::Q4_1 => {
            for block in values.chunks(32) {
                let min = block.iter().copied().fold(f32::INFINITY, f32::min);
                let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
                let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
                for j in 0..16 {
                    out.push(q(block[j]) | (q(block[j + 16]) << 4));
                }
            }
        }
        other => {
            let n = other.bytes_for(values.len() as u64).unwrap_or(0);
            out.resize(n as usize, 0);
        }
    }
    out
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
        for token in &self.extra_tokens {
            let ends = token.char_indices().map(|(i, _)| i).skip(2);
            for prefix in ends.map(|i| &token[..i]).chain([token.as_str()]) {
                if !pieces.iter().any(|p| p == prefix) {
                    pieces.push(prefix.to_string());
                }
            }
        }
        pieces
    }

    /// The model as a writer, ready to write or to turn into bytes.
    pub fn writer(&self) -> GgufWriter {
        let mut w = GgufWriter::new();
        let head_dim = self.n_embd / u64::from(self.n_head);
        w.metadata("general.architecture", "llama")
            .metadata("general.name", self.name.as_str())
            .metadata("general.file_type", 7u32)
            .metadata("llama.block_count", self.n_layer)
            .metadata("llama.context_length", self.context_length)
            .metadata("llama.embedding_length", self.n_embd as u32)
            .metadata("llama.feed_forward_length", self.n_ff as u32)
            .metadata("llama.attention.head_count", self.n_head)
            .metadata("llama.attention.head_count_kv", self.n_head_kv)
            .metadata("llama.rope.freq_base", 10000f32)
            .metadata("llama.rope.dimension_count", head_dim as u32)
            .metadata("llama.attention.layer_norm_rms_epsilon", 1e-5f32)
            .metadata("llama.vocab_size", self.n_vocab() as u32);
        self.tokenizer(&mut w);
        if let Some(t) = &self.chat_template {
            w.metadata("tokenizer.chat_template", t.as_str());
        }
        let mut rng = Rng(self.seed | 1);
        let e = self.n_embd;
        let kv = head_dim * u64::from(self.n_head_kv);
        let mut add = |w: &mut GgufWriter, name: String, layer, base: &str, dims: &[u64]| {
            let n: u64 = dims.iter().product();
            let values: Vec<f32> = if base.ends_with("norm") {
                (0..n).map(|_| 1.0 + rng.next(0.1)).collect()
            } else {
                let scale = 1.0 / (dims[0] as f32).sqrt();
                (0..n).map(|_| rng.next(scale)).collect()
            };
            let t = (self.types)(layer, base);
            // Shapes are multiples of 32, so every encoding is whole blocks.
            if let Err(err) = w.tensor(name, t, dims, encode(&values, t)) {
                unreachable!("synthetic tensor does not fit its type: {err}");
            }
        };
        add(
            &mut w,
            "token_embd.weight".into(),
            None,
            "token_embd",
            &[e, self.n_vocab()],
        );
        for l in 0..self.n_layer {
            let blk = |b: &str| format!("blk.{l}.{b}.weight");
            let layer = Some(l);
            add(&mut w, blk("attn_norm"), layer, "attn_norm", &[e]);
            add(&mut w, blk("attn_q"), layer, "attn_q", &[e, e]);
            add(&mut w, blk("attn_k"), layer, "attn_k", &[e, kv]);
            add(&mut w, blk("attn_v"), layer, "attn_v", &[e, kv]);
            add(&mut w, blk("attn_output"), layer, "attn_output", &[e, e]);
            add(&mut w, blk("ffn_norm"), layer, "ffn_norm", &[e]);
            add(&mut w, blk("ffn_gate"), layer, "ffn_gate", &[e, self.n_ff]);
            add(&mut w, blk("ffn_up"), layer, "ffn_up", &[e, self.n_ff]);
            add(&mut w, blk("ffn_down"), layer, "ffn_down", &[self.n_ff, e]);
        }
        add(
            &mut w,
            "output_norm.weight".into(),
            None,
            "output_norm",
            &[e],
        );
        if !self.tied_embeddings {
            add(
                &mut w,
                "output.weight".into(),
                None,
                "output",
                &[e, self.n_vocab()],
            );
        }
        w
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

    #[test]
    fn q8_0_encoding_round_trips_closely() {
        let values: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) / 10.0).collect();
        let bytes = encode(&values, GgmlType::Q8_0);
        assert_eq!(bytes.len(), 34);
        let d = f16::from_le_bytes([bytes[0], bytes[1]]).to_f32();
        for (i, v) in values.iter().enumerate() {
            let q = bytes[2 + i] as i8 as f32 * d;
            assert!((q - v).abs() <= d, "{q} vs {v}");
        }
    }
}
