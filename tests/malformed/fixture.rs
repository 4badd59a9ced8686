//! The small fixture: a file with a value of every type, cut at every byte.

use ggviz::gguf::{
    Array, Endian, GgmlType, GgufFile, GgufWriter, Span, StringArray, TensorSpec, Value,
};

use super::layout::{Layout, Step};
use super::{ALLOWED_OVERHEAD, peak_memory, refused};

/// One value of every type, arrays of every kind (empty and nested too), a
/// non-default alignment, and tensors of several types including a scalar.
pub fn fixture() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama")
        .metadata("u8", 7u8)
        .metadata("i8", -7i8)
        .metadata("u16", 700u16)
        .metadata("i16", -700i16)
        .metadata("u32", 70_000u32)
        .metadata("i32", -70_000i32)
        .metadata("f32", 0.5f32)
        .metadata("bool", true)
        .metadata("u64", 7u64 << 40)
        .metadata("i64", -7i64 << 40)
        .metadata("f64", -0.25f64)
        .metadata("general.alignment", 64u32)
        .metadata(
            "tokens",
            Array::String(["a", "", "ü"].into_iter().collect::<StringArray>()),
        )
        .metadata("scores", Array::F32(vec![0.0, -1.5]))
        .metadata("flags", Array::Bool(vec![true, false]))
        .metadata("empty", Array::U32(vec![]))
        .metadata(
            "nested",
            Array::Array(vec![
                Array::U8(vec![1, 2]),
                Array::Array(vec![Array::I64(vec![-1])]),
            ]),
        );
    let zeros = |t: GgmlType, dims: &[u64]| {
        let n: u64 = dims.iter().product();
        vec![0u8; t.bytes_for(n).expect("whole blocks") as usize]
    };
    for (name, t, dims) in [
        ("token_embd.weight", GgmlType::F16, &[4u64, 3][..]),
        ("blk.0.attn_q.weight", GgmlType::Q4_0, &[32, 2]),
        ("blk.0.ffn_down.weight", GgmlType::Q4K, &[256]),
        ("blk.0.attn_norm.weight", GgmlType::F32, &[5]),
        ("scale", GgmlType::F32, &[]),
    ] {
        w.tensor(name, t, dims, zeros(t, dims))
            .expect("data sized for its type");
    }
    w
}

pub fn fixture_bytes() -> (Vec<u8>, Vec<Span>) {
    fixture().to_bytes_with_layout()
}

/// Start of the writer's span `field`.
pub fn span(spans: &[Span], field: &str) -> u64 {
    spans
        .iter()
        .find(|s| s.field == field)
        .unwrap_or_else(|| panic!("no span {field}"))
        .start
}

pub fn put_u32(bytes: &mut [u8], at: u64, v: u32) {
    bytes[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(bytes: &mut [u8], at: u64, v: u64) {
    bytes[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
}

/// A file of the given metadata only.
pub fn with_metadata(entries: &[(&str, Value)]) -> (Vec<u8>, Vec<Span>) {
    let mut w = GgufWriter::new();
    for (k, v) in entries {
        w.metadata(*k, v.clone());
    }
    w.to_bytes_with_layout()
}

/// A file with one tensor written exactly as given (no checks).
pub fn with_raw_tensors(specs: Vec<TensorSpec>) -> (Vec<u8>, Vec<Span>) {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama");
    for s in specs {
        w.raw_tensor(s);
    }
    w.to_bytes_with_layout()
}

pub fn raw(name: &str, dims: &[u64], type_id: u32, data: usize, offset: Option<u64>) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        dims: dims.to_vec(),
        type_id,
        data: vec![0; data],
        offset,
    }
}

#[test]
fn fixture_is_valid_and_its_layout_matches_the_writer() {
    let (bytes, spans) = fixture_bytes();
    let len = bytes.len() as u64;
    let (file, peak) = peak_memory(|| GgufFile::from_bytes("ok.gguf", bytes));
    let file = file.unwrap();
    assert!(peak <= len + ALLOWED_OVERHEAD, "{peak} bytes for {len}");
    assert_eq!(file.alignment, 64);
    assert_eq!(file.tensors.len(), 5);
    let layout = Layout::of(&file);
    // Every field the writer wrote starts where the model says a read does.
    let starts: Vec<u64> = layout
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Read { start, .. } => Some(*start),
            Step::Fits { .. } => None,
        })
        .collect();
    for s in spans.iter().filter(|s| s.start < layout.index_end()) {
        assert!(starts.contains(&s.start), "{s:?} is not a read boundary");
    }
    assert_eq!(layout.index_end(), span(&spans, "padding"));
    assert_eq!(layout.truncation_error(len), None);
}

/// Cuts `bytes` at every position and checks each error against the model.
pub fn every_cut_is_refused_at_the_right_field(bytes: &[u8]) {
    let full = GgufFile::from_bytes("ok.gguf", bytes.to_vec()).expect("the uncut file is valid");
    let layout = Layout::of(&full);
    for cut in 0..bytes.len() as u64 {
        let (field, offset, kind) = layout
            .truncation_error(cut)
            .expect("a cut file misses something");
        refused(bytes[..cut as usize].to_vec(), &field, offset, kind);
    }
}

#[test]
fn truncation_at_every_byte_names_the_field_being_read() {
    every_cut_is_refused_at_the_right_field(&fixture_bytes().0);
}

#[test]
fn big_endian_truncation_at_every_byte_names_the_same_fields() {
    let mut w = fixture();
    w.endian(Endian::Big);
    every_cut_is_refused_at_the_right_field(&w.to_bytes());
}
