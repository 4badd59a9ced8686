//! `ggviz inspect`: a model's summary as text or as stable JSON.
//!
//! The JSON shape is documented in the README and is a contract: tests and
//! users compare it with other tools, so fields are only ever added.

use std::fmt::Write as _;

use serde::Serialize;

use crate::anatomy::{Anatomy, LayerShare, Residual, TensorEntry, TensorRole, TypeShare};
use crate::gguf::value::Summarized;
use crate::gguf::{Endian, GgufModel, Value};

/// Arrays longer than this are summarised as `{"type", "len"}`.
pub const MAX_INLINE_ARRAY: usize = 32;
/// Version of the JSON layout.
pub const JSON_VERSION: u32 = 1;

/// One file of the model, as listed in the JSON.
#[derive(Debug, Serialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub gguf_version: u32,
    pub endian: Endian,
    pub alignment: u64,
    pub data_offset: u64,
    pub tensor_count: usize,
}

/// One tensor, as listed in the JSON.
#[derive(Debug, Serialize)]
pub struct TensorJson<'a> {
    pub name: &'a str,
    #[serde(rename = "type")]
    pub ggml_type: &'static str,
    pub shape: &'a [u64],
    pub offset: u64,
    pub bytes: u64,
    pub params: u64,
    pub bits_per_weight: f64,
    pub role: &'static str,
    pub layer: Option<u32>,
    pub shard: usize,
}

/// Everything `inspect --json` prints.
#[derive(Debug, Serialize)]
pub struct InspectJson<'a> {
    pub ggviz_inspect_version: u32,
    pub files: Vec<FileEntry>,
    pub model: &'a Anatomy,
    pub metadata: indexmap::IndexMap<&'a str, Summarized<'a>>,
    pub tensors: Vec<TensorJson<'a>>,
}

/// The JSON document for `model` (anatomy tensors are omitted there, since
/// the top-level `tensors` array carries them).
pub fn to_json(model: &GgufModel, anatomy: &Anatomy) -> serde_json::Result<String> {
    let files = model
        .shards()
        .iter()
        .map(|f| FileEntry {
            path: f.path().display().to_string(),
            bytes: f.file_size(),
            gguf_version: f.version,
            endian: f.endian,
            alignment: f.alignment,
            data_offset: f.data_offset,
            tensor_count: f.tensors.len(),
        })
        .collect();
    let mut slim = anatomy.clone();
    slim.tensors.clear();
    let metadata = model
        .metadata()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                Summarized {
                    value: v,
                    max_len: MAX_INLINE_ARRAY,
                },
            )
        })
        .collect();
    let tensors = anatomy
        .tensors
        .iter()
        .map(|t| TensorJson {
            name: &t.name,
            ggml_type: t.ggml_type.name(),
            shape: &t.shape,
            offset: t.offset,
            bytes: t.bytes,
            params: t.params,
            bits_per_weight: t.bits_per_weight,
            role: t.role.name(),
            layer: t.layer,
            shard: t.shard,
        })
        .collect();
    let doc = InspectJson {
        ggviz_inspect_version: JSON_VERSION,
        files,
        model: &slim,
        metadata,
        tensors,
    };
    serde_json::to_string_pretty(&doc)
}

/// Bytes in binary units (`93.8 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A count in decimal units (`134.5M`).
pub fn human_count(n: u64) -> String {
    let v = n as f64;
    if v >= 1e9 {
        format!("{:.2}B", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}K", v / 1e3)
    } else {
        n.to_string()
    }
}

fn per_layer_text<T: Copy + PartialEq + std::fmt::Display>(v: &[T]) -> String {
    match v.first() {
        None => "none (no layers)".to_owned(),
        Some(&f) if v.iter().all(|&x| x == f) => f.to_string(),
        Some(_) => format!(
            "per layer: {}",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// What the text output includes beyond the summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    pub tensors: bool,
    pub metadata: bool,
}

/// The human-readable summary.
pub fn to_text(model: &GgufModel, a: &Anatomy, opts: TextOptions) -> String {
    let h = &a.hparams;
    let acc = &a.accounting;
    let mut s = String::new();
    let row = |s: &mut String, label: &str, value: String| {
        // The widest label ("sliding window") still gets a space after it.
        let _ = writeln!(s, "  {label:<15}{value}");
    };
    let _ = writeln!(s, "{}", a.name);
    row(
        &mut s,
        "file",
        format!(
            "{} ({}, GGUF v{}, {} tensors, {} metadata keys{})",
            a.file_name,
            human_bytes(acc.file_bytes),
            a.gguf_version,
            a.tensors.len(),
            model.metadata().len(),
            if a.shards > 1 {
                format!(", {} shards", a.shards)
            } else {
                String::new()
            },
        ),
    );
    row(
        &mut s,
        "architecture",
        match &a.file_type {
            Some(ft) => format!("{} ({ft})", a.architecture),
            None => a.architecture.clone(),
        },
    );
    row(
        &mut s,
        "parameters",
        format!("{} ({})", human_count(acc.total_params), acc.total_params),
    );
    let kv = per_layer_text(&h.n_head_kv);
    let gqa = match (h.uniform_heads(), h.uniform_kv_heads()) {
        (Some(q), Some(k)) if k > 0 && q != k => {
            format!(" (GQA, {} query heads per KV head)", q / k)
        }
        (Some(q), Some(k)) if q == k => " (MHA)".to_string(),
        _ => String::new(),
    };
    row(&mut s, "layers", h.n_layer.to_string());
    let parallel = (0..h.n_layer)
        .filter(|&l| a.residual(l) == Residual::Parallel)
        .count();
    if parallel > 0 {
        let which = if parallel as u32 == h.n_layer {
            "every layer".to_string()
        } else {
            format!("{parallel} of {} layers", h.n_layer)
        };
        row(
            &mut s,
            "residual",
            format!("attention and FFN in parallel, one add ({which})"),
        );
    }
    row(
        &mut s,
        "heads",
        format!("{} query, {kv} KV{gqa}", per_layer_text(&h.n_head)),
    );
    row(
        &mut s,
        "head dims",
        format!("key {}, value {}", h.head_dim_k, h.head_dim_v),
    );
    row(&mut s, "embedding", h.n_embd.to_string());
    row(&mut s, "FFN", per_layer_text(&h.n_ff));
    if h.n_expert > 0 {
        let mut experts = format!("{} ({} used per token)", h.n_expert, h.n_expert_used);
        if let Some(w) = h.n_ff_expert {
            let _ = write!(experts, ", {w} wide");
        }
        if let Some(w) = h.n_ff_shared_expert {
            let _ = write!(experts, "; shared expert {w} wide");
        }
        row(&mut s, "experts", experts);
    }
    row(&mut s, "vocab", h.n_vocab.to_string());
    if let Some(ctx) = h.n_ctx_train {
        row(&mut s, "context", ctx.to_string());
    }
    let mut rope = Vec::new();
    if let Some(b) = h.rope.freq_base {
        rope.push(format!("base {b}"));
    }
    if let Some(d) = h.rope.dimension_count {
        rope.push(format!("{d} dims"));
    }
    if let Some(t) = &h.rope.scaling_type {
        rope.push(format!(
            "scaling {t} ×{}",
            h.rope.scaling_factor.unwrap_or(1.0)
        ));
    }
    if !rope.is_empty() {
        row(&mut s, "RoPE", rope.join(", "));
    }
    if let Some(w) = h.sliding_window {
        row(&mut s, "sliding window", w.to_string());
    }
    if let Some(e) = h.norm_rms_eps.or(h.norm_eps) {
        let kind = if h.norm_rms_eps.is_some() {
            "RMSNorm"
        } else {
            "LayerNorm"
        };
        // Epsilons are stored as f32: print the shortest f32 spelling.
        row(&mut s, "norm", format!("{kind}, eps {:e}", e as f32));
    }
    let caps: Vec<String> = [
        ("attention logits", h.attn_logit_softcapping),
        ("final logits", h.final_logit_softcapping),
    ]
    .iter()
    .filter_map(|(what, c)| c.map(|c| format!("{what} at {c}")))
    .collect();
    if !caps.is_empty() {
        row(&mut s, "soft-capping", caps.join(", "));
    }
    row(
        &mut s,
        "output head",
        if a.tied_embeddings {
            "tied to the token embedding (no output.weight)".to_string()
        } else if a.tensors.iter().any(|t| t.role == TensorRole::Output) {
            "own weights (output.weight)".to_string()
        } else {
            "none in the file (no output.weight, no token_embd.weight)".to_string()
        },
    );
    row(
        &mut s,
        "weights",
        format!(
            "{} in tensors ({} bytes), {:.3} bits per weight on average",
            human_bytes(acc.tensor_bytes),
            acc.tensor_bytes,
            acc.avg_bits_per_weight
        ),
    );
    let _ = writeln!(s, "\nquantization mix");
    for t in &acc.by_type {
        let _ = writeln!(s, "{}", quant_line(t));
    }
    let _ = writeln!(
        s,
        "\nbytes per layer (runs of identical layers on one line)"
    );
    // Layers with the same bytes, parameters and type mix are one line, so
    // an 80-layer model stays readable while Q4_K_M-style variation shows.
    let layers = &acc.by_layer;
    let mut start = 0;
    while start < layers.len() {
        let l = &layers[start];
        let same = |o: &LayerShare| {
            o.bytes == l.bytes && o.params == l.params && o.bytes_by_type == l.bytes_by_type
        };
        let end = start + layers[start..].iter().take_while(|o| same(o)).count();
        let types: Vec<String> = l
            .bytes_by_type
            .iter()
            .map(|(t, b)| format!("{t} {}", human_bytes(*b)))
            .collect();
        let label = if end - start > 1 {
            format!("blk.{}-{}", start, end - 1)
        } else {
            format!("blk.{start}")
        };
        let each = if end - start > 1 { " each" } else { "" };
        let _ = writeln!(
            s,
            "  {label:<11} {:>10}{each:<5}  {:>9} params  {}",
            human_bytes(l.bytes),
            human_count(l.params),
            types.join(", ")
        );
        start = end;
    }
    let g = &acc.global;
    let _ = writeln!(
        s,
        "  {:<11} {:>10}       {:>9} params  (embeddings, output norm and head)",
        "global",
        human_bytes(g.bytes),
        human_count(g.params)
    );
    if opts.tensors {
        tensor_text(&mut s, a);
    }
    if opts.metadata {
        metadata_text(&mut s, model);
    }
    s
}

fn quant_line(t: &TypeShare) -> String {
    format!(
        "  {:<8} {:>6.2} bpw  {:>4} tensor{} {:>10} ({:>5.1}% of bytes, {:>5.1}% of params)",
        t.ggml_type.name(),
        t.bits_per_weight,
        t.tensors,
        if t.tensors == 1 { " " } else { "s" },
        human_bytes(t.bytes),
        t.share_of_bytes * 100.0,
        t.share_of_params * 100.0
    )
}

fn tensor_line(s: &mut String, t: &TensorEntry) {
    let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
    let _ = writeln!(
        s,
        "    {:<34} {:<20} {:<8} [{}] {}",
        t.name,
        t.role.label(),
        t.ggml_type.name(),
        shape.join(", "),
        human_bytes(t.bytes)
    );
}

fn tensor_text(s: &mut String, a: &Anatomy) {
    let _ = writeln!(s, "\ntensors");
    let _ = writeln!(s, "  global");
    for t in a.tensors.iter().filter(|t| t.layer.is_none()) {
        tensor_line(s, t);
    }
    for l in 0..a.hparams.n_layer {
        let _ = writeln!(s, "  blk.{l}");
        let mut layer: Vec<&TensorEntry> = a.layer_tensors(l).collect();
        layer.sort_by_key(|t| t.role);
        for t in layer {
            tensor_line(s, t);
        }
    }
    // Tensors with a block index beyond block_count are still listed.
    for t in a
        .tensors
        .iter()
        .filter(|t| t.layer.is_some_and(|l| l >= a.hparams.n_layer))
    {
        tensor_line(s, t);
    }
}

/// A value on one line: long strings cut, long arrays summarised.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let one_line = s.replace('\n', "\\n");
            let chars = one_line.chars().count();
            if chars > 80 {
                let head: String = one_line.chars().take(77).collect();
                format!("{head:?}… ({chars} chars)")
            } else {
                format!("{one_line:?}")
            }
        }
        Value::Array(a) if a.len() > 8 => {
            format!("[{} × {}]", a.element_type().name(), a.len())
        }
        Value::Array(a) => {
            let items: Vec<String> = (0..a.len())
                .filter_map(|i| a.get(i))
                .map(|v| value_text(&v))
                .collect();
            format!("[{}]", items.join(", "))
        }
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn metadata_text(s: &mut String, model: &GgufModel) {
    let _ = writeln!(s, "\nmetadata");
    for (k, v) in model.metadata() {
        let _ = writeln!(
            s,
            "  {k:<44} {:<8} {}",
            v.value_type().name(),
            value_text(v)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(98_362_432), "93.8 MiB");
        assert_eq!(human_count(134_515_008), "134.5M");
    }

    #[test]
    fn every_row_label_is_followed_by_a_space() {
        use crate::gguf::{GgufFile, GgufModel, synthetic::SyntheticModel};
        let mut w = SyntheticModel::default().writer();
        w.metadata("llama.attention.sliding_window", 4096u32);
        let file = GgufFile::from_bytes("swa.gguf", w.to_bytes()).unwrap();
        let model = GgufModel::from_file(file);
        let a = Anatomy::from_model(&model).unwrap();
        let text = to_text(&model, &a, TextOptions::default());
        assert!(text.contains("  sliding window 4096\n"), "{text}");
        assert!(text.contains("  output head    own weights"), "{text}");
    }

    #[test]
    fn long_values_are_summarised() {
        let v = Value::String("x".repeat(200));
        assert!(value_text(&v).ends_with("(200 chars)"));
        let a = Value::Array(crate::gguf::Array::I32(vec![0; 100]));
        assert_eq!(value_text(&a), "[int32 × 100]");
    }
}
