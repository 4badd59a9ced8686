//! Writes the seed corpus of the `gguf_reader` fuzz target.
//!
//! The seeds are small valid files made by ggviz's own writer, so the corpus
//! is reproducible from source and never committed: tiny llama models (mixed
//! quantization, tied embeddings, big-endian, version 2), a file with a value
//! of every metadata type, one tensor of every ggml type, and models with
//! per-layer head counts, experts and Gemma-style post-norms.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds -- fuzz/corpus/gguf_reader
//! ```

use std::path::PathBuf;

use ggviz::gguf::synthetic::{SyntheticModel, all_f32, mixed_types};
use ggviz::gguf::{Array, Endian, GgmlType, GgufWriter, StringArray};

fn tiny() -> SyntheticModel {
    SyntheticModel {
        n_layer: 1,
        n_head: 2,
        n_head_kv: 1,
        n_embd: 32,
        n_ff: 32,
        extra_tokens: vec!["▁a".into(), "▁b".into()],
        ..SyntheticModel::default()
    }
}

fn zeros(t: GgmlType, dims: &[u64]) -> Vec<u8> {
    let n: u64 = dims.iter().product();
    vec![0; t.bytes_for(n).unwrap_or(0) as usize]
}

/// A value of every metadata type, nested and empty arrays included.
fn every_value_type() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama")
        .metadata("u8", 7u8)
        .metadata("i8", -7i8)
        .metadata("u16", 700u16)
        .metadata("i16", -700i16)
        .metadata("u32", 70_000u32)
        .metadata("i32", -70_000i32)
        .metadata("f32", f32::NAN)
        .metadata("bool", true)
        .metadata("u64", u64::MAX)
        .metadata("i64", i64::MIN)
        .metadata("f64", f64::INFINITY)
        .metadata("general.alignment", 64u32)
        .metadata(
            "strings",
            Array::String(["a", "", "ü"].into_iter().collect::<StringArray>()),
        )
        .metadata("bools", Array::Bool(vec![true, false]))
        .metadata("empty", Array::U32(vec![]))
        .metadata(
            "nested",
            Array::Array(vec![
                Array::U8(vec![1, 2]),
                Array::Array(vec![Array::I64(vec![-1])]),
            ]),
        );
    w
}

/// One tensor of every ggml type, one block each, plus a scalar.
fn every_tensor_type() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "test");
    for t in GgmlType::all() {
        let dims = [u64::from(t.block_size())];
        // Sizes come from the type table, so this cannot fail.
        let _ = w.tensor(format!("t.{}", t.name()), t, &dims, zeros(t, &dims));
    }
    let _ = w.tensor("scalar", GgmlType::F32, &[], vec![0; 4]);
    w
}

/// Per-layer head counts, experts, Gemma-style post-norms and a split key.
fn architectures() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "moe")
        .metadata("moe.block_count", 2u32)
        .metadata("moe.embedding_length", 32u32)
        .metadata("moe.attention.head_count", Array::I32(vec![4, 2]))
        .metadata("moe.attention.head_count_kv", Array::U32(vec![2, 0]))
        .metadata("moe.expert_count", 4u32)
        .metadata("moe.expert_used_count", 2u32)
        .metadata("moe.attention.sliding_window", 16u32)
        .metadata("split.count", 1u16);
    let f32 = GgmlType::F32;
    let mut add = |name: &str, dims: &[u64]| {
        let _ = w.tensor(name, f32, dims, zeros(f32, dims));
    };
    add("token_embd.weight", &[32, 8]);
    for l in 0..2 {
        add(&format!("blk.{l}.attn_norm.weight"), &[32]);
        add(&format!("blk.{l}.attn_qkv.weight"), &[32, 64]);
        add(&format!("blk.{l}.post_attention_norm.weight"), &[32]);
        add(&format!("blk.{l}.ffn_gate_inp.weight"), &[32, 4]);
        add(&format!("blk.{l}.ffn_gate_exps.weight"), &[32, 16, 4]);
        add(&format!("blk.{l}.ffn_down.3.weight"), &[16, 32]);
        add(&format!("blk.{l}.post_ffw_norm.weight"), &[32]);
        add(&format!("blk.{l}.ssm_conv1d.weight"), &[4, 32]);
    }
    add("output_norm.weight", &[32]);
    w
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus/gguf_reader".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut m = tiny();
    seeds.push(("llama-mixed", m.writer().to_bytes()));
    m.tied_embeddings = true;
    m.types = all_f32;
    seeds.push(("llama-tied-f32", m.writer().to_bytes()));
    m.types = mixed_types;
    let mut w = m.writer();
    w.endian(Endian::Big).version(2);
    seeds.push(("llama-big-endian-v2", w.to_bytes()));
    seeds.push(("every-value-type", every_value_type().to_bytes()));
    let mut w = every_value_type();
    w.endian(Endian::Big);
    seeds.push(("every-value-type-big-endian", w.to_bytes()));
    seeds.push(("every-tensor-type", every_tensor_type().to_bytes()));
    seeds.push(("moe-gemma-hybrid", architectures().to_bytes()));
    seeds.push(("empty", GgufWriter::new().to_bytes()));
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(format!("seed-{name}.gguf")), bytes)?;
    }
    println!("{} seeds in {}", seeds.len(), dir.display());
    Ok(())
}
