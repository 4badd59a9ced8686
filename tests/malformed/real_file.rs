//! The real test model, cut and mutated.

use std::sync::{Arc, OnceLock};

use ggviz::gguf::reader::MAX_STRING_LEN;
use ggviz::gguf::types::TypeIdError;
use ggviz::gguf::{Endian, FormatError, GgufFile, Value, ValueType};

use super::common;
use super::fixture::{put_u32, put_u64};
use super::layout::Layout;
use super::{ALLOWED_OVERHEAD, peak_memory, refused, refused_with};

/// The real file's bytes, read once.
fn real() -> Arc<Vec<u8>> {
    static BYTES: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            Arc::new(std::fs::read(common::smollm2()).expect("cannot read the test model"))
        })
        .clone()
}

/// The real file parsed, and the layout of its reads.
fn real_layout() -> &'static (GgufFile, Layout) {
    static LAYOUT: OnceLock<(GgufFile, Layout)> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let file = GgufFile::open(common::smollm2()).expect("the test model is valid");
        let layout = Layout::of(&file);
        (file, layout)
    })
}

#[test]
fn the_real_file_opens_in_memory_proportional_to_its_header() {
    let path = common::smollm2();
    let (file, peak) = peak_memory(|| GgufFile::open(&path));
    let file = file.unwrap();
    // Token and merge lists take exactly their bytes; everything else a few
    // KiB. The 96 MB of weights are never copied.
    assert!(
        peak <= file.data_offset + ALLOWED_OVERHEAD,
        "{peak} bytes for a {}-byte header",
        file.data_offset
    );
    // The data section starts at the first multiple of 32 after the index.
    let index_end = real_layout().1.index_end();
    assert_eq!(file.data_offset, 1_785_664);
    assert_eq!(file.data_offset, index_end.div_ceil(32) * 32);
}

#[test]
fn the_real_file_cut_anywhere_is_refused_at_the_field_being_read() {
    let bytes = real();
    let (file, layout) = real_layout();
    let index_start = layout.start_of("tensor_info[0].name length");
    let tokens = layout.start_of("metadata `tokenizer.ggml.tokens`[1000]");
    let merges = layout.start_of("metadata `tokenizer.ggml.merges`[20000]");
    let template = layout.start_of("metadata `tokenizer.chat_template`");
    let mut cuts = vec![
        0,
        3,
        4,
        8,
        16,
        23,
        24, // end of the header
        30,
        tokens,
        tokens + 3,
        tokens + 9,
        merges + 5,
        template + 100,
        index_start - 1, // inside the last metadata value
        index_start,     // end of the metadata
        index_start + 8 + 5,
        layout.start_of("tensor `blk.7.ffn_up.weight`.dims[1]") + 2,
        layout.start_of("tensor `output_norm.weight`.offset") + 7,
        layout.index_end(),         // end of the tensor index
        layout.index_end() + 1,     // in the padding
        file.data_offset + 100_000, // inside the first tensor's data
        file.data_offset + 50_000_000,
        bytes.len() as u64 - 1,
    ];
    // Plus a sweep through the whole header.
    cuts.extend((0..layout.index_end()).step_by(65_537));
    for cut in cuts {
        let (field, offset, kind) = layout.truncation_error(cut).unwrap();
        refused(bytes[..cut as usize].to_vec(), &field, offset, kind);
    }
}

/// The real file with `edit` applied.
fn real_with(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = real().to_vec();
    edit(&mut bytes);
    bytes
}

#[test]
fn the_real_file_with_lying_counts_is_refused_without_allocating_them() {
    let len = real().len() as u64;
    let (_, layout) = real_layout();
    let left = len - 24;
    for (at, field) in [(16, "header.kv_count"), (8, "header.tensor_count")] {
        let bytes = real_with(|b| put_u64(b, at, u64::MAX));
        let kind = FormatError::CountTooLarge {
            count: u64::MAX,
            available: left,
        };
        refused(bytes, field, at, kind);
    }
    // Counts that fit in the file's bytes but would need far more memory
    // than its size: ~7.5 million key-value pairs, ~4 million tensors.
    let over_budget = |k: &FormatError| matches!(k, FormatError::OverBudget { needed, left } if needed > left && *left <= len + ALLOWED_OVERHEAD);
    let bytes = real_with(|b| put_u64(b, 16, left / 13));
    refused_with(bytes, "header.kv_count", 16, over_budget, "OverBudget");
    let index_start = layout.start_of("tensor_info[0].name length");
    let bytes = real_with(|b| put_u64(b, 8, (len - index_start) / 24));
    refused_with(bytes, "header.tensor_count", 8, over_budget, "OverBudget");

    // The token list's count, and one token's length.
    let count_at = layout.start_of("metadata `tokenizer.ggml.tokens` length");
    let bytes = real_with(|b| put_u64(b, count_at, u64::MAX));
    let kind = FormatError::CountTooLarge {
        count: u64::MAX,
        available: len - count_at - 8,
    };
    refused(
        bytes,
        "metadata `tokenizer.ggml.tokens` length",
        count_at,
        kind,
    );
    let at = layout.start_of("metadata `tokenizer.ggml.tokens`[123] length");
    let bytes = real_with(|b| put_u64(b, at, u64::MAX));
    let kind = FormatError::TooLong {
        len: u64::MAX,
        limit: MAX_STRING_LEN,
    };
    refused(bytes, "metadata `tokenizer.ggml.tokens`[123]", at, kind);
}

#[test]
fn the_real_file_with_bad_values_is_refused_at_them() {
    let (file, layout) = real_layout();
    // A token that is not UTF-8.
    let at = layout.start_of("metadata `tokenizer.ggml.tokens`[5000]");
    let bytes = real_with(|b| b[at as usize] = 0xFF);
    let kind = FormatError::InvalidUtf8 { valid_up_to: 0 };
    refused(bytes, "metadata `tokenizer.ggml.tokens`[5000]", at, kind);
    // A boolean that is 2.
    let at = layout.start_of("metadata `tokenizer.ggml.add_space_prefix`");
    let bytes = real_with(|b| b[at as usize] = 2);
    let kind = FormatError::InvalidBool { value: 2 };
    refused(
        bytes,
        "metadata `tokenizer.ggml.add_space_prefix`",
        at,
        kind,
    );
    // An unknown value type.
    let at = layout.start_of("metadata `general.name` type");
    let bytes = real_with(|b| put_u32(b, at, 77));
    let kind = FormatError::UnknownValueType { type_id: 77 };
    refused(bytes, "metadata `general.name` type", at, kind);
    // A retired tensor type.
    let at = layout.start_of("tensor `blk.0.attn_q.weight`.type");
    let bytes = real_with(|b| put_u32(b, at, 31));
    let kind = FormatError::TensorType(TypeIdError::Retired {
        id: 31,
        name: "Q4_0_4_4",
    });
    refused(bytes, "tensor `blk.0.attn_q.weight`.type", at, kind);
    // Version 1.
    let bytes = real_with(|b| put_u32(b, 4, 1));
    let kind = FormatError::UnsupportedVersion { version: 1 };
    refused(bytes, "header.version", 4, kind);
    // A misaligned, an overlapping and an out-of-file tensor.
    let name = &file.tensors[10].name;
    let at = layout.start_of(&format!("tensor `{name}`.offset"));
    let rel = file.tensors[10].relative_offset;
    let field = format!("tensor `{name}`.offset");
    let bytes = real_with(|b| put_u64(b, at, rel + 4));
    let kind = FormatError::Misaligned {
        offset: rel + 4,
        alignment: 32,
    };
    refused(bytes, &field, at, kind);
    let bytes = real_with(|b| put_u64(b, at, file.tensors[9].relative_offset));
    let start = file.tensors[9].offset;
    let kind = FormatError::Overlap {
        start,
        end: start + file.tensors[10].n_bytes,
        other: file.tensors[9].name.clone(),
    };
    refused(bytes, &field, at, kind);
    let len = real().len() as u64;
    let bytes = real_with(|b| put_u64(b, at, len));
    let start = file.data_offset + len;
    let kind = FormatError::OutOfFile {
        start,
        end: start + file.tensors[10].n_bytes,
        file_size: len,
    };
    refused(bytes, &field, at, kind);
}

/// The real file as written by `GgufWriter` in `endian`.
fn rewrite(file: &GgufFile, endian: Endian) -> Vec<u8> {
    let mut w = common::writer_of(file);
    w.endian(endian);
    w.to_bytes()
}

#[test]
fn the_real_file_rewritten_is_identical_and_big_endian_reads_the_same() {
    let (file, _) = real_layout();
    let little = rewrite(file, Endian::Little);
    assert!(
        little == *real(),
        "the writer reproduces the file byte for byte"
    );
    drop(little);
    let big = GgufFile::from_bytes("be.gguf", rewrite(file, Endian::Big)).unwrap();
    assert_eq!(big.endian, Endian::Big);
    assert_eq!(big.metadata, file.metadata);
    assert_eq!(big.tensors, file.tensors);
    assert_eq!(big.data_offset, file.data_offset);
    // The value types survive too, not only the values.
    let types =
        |f: &GgufFile| -> Vec<ValueType> { f.metadata.values().map(Value::value_type).collect() };
    assert_eq!(types(&big), types(file));
}

#[test]
fn opening_a_cut_file_from_disk_gives_the_same_error() {
    let (_, layout) = real_layout();
    let bytes = real();
    let dir = tempfile::tempdir().unwrap();
    let cut = layout.start_of("metadata `tokenizer.ggml.merges`[100]") + 2;
    let path = dir.path().join("cut.gguf");
    std::fs::write(&path, &bytes[..cut as usize]).unwrap();
    let (result, peak) = peak_memory(|| GgufFile::open(&path));
    let err = result.unwrap_err();
    assert!(peak <= cut + ALLOWED_OVERHEAD);
    let (field, offset, kind) = layout.truncation_error(cut).unwrap();
    assert_eq!(err.field(), Some(field.as_str()));
    assert_eq!(err.offset(), Some(offset));
    assert_eq!(err.format_kind(), Some(&kind));
    assert!(
        err.to_string()
            .starts_with(&format!("{}: ", path.display()))
    );
    // An empty file is refused at the magic.
    std::fs::write(&path, b"").unwrap();
    let err = GgufFile::open(&path).unwrap_err();
    assert_eq!((err.field(), err.offset()), (Some("header.magic"), Some(0)));
}
