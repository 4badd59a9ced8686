//! The tensor index: names, dims, types and data ranges.

use ggviz::gguf::reader::MAX_TENSOR_NAME_LEN;
use ggviz::gguf::types::TypeIdError;
use ggviz::gguf::{Endian, FormatError, GgufFile};

use super::fixture::{fixture, fixture_bytes, put_u32, put_u64, raw, span, with_raw_tensors};
use super::refused;

#[test]
fn tensor_name_lengths_and_encodings_are_checked() {
    let (bytes, spans) = fixture_bytes();
    let at = span(&spans, "tensor_info[1].name");
    for len in [u64::MAX, MAX_TENSOR_NAME_LEN + 1] {
        let mut b = bytes.clone();
        put_u64(&mut b, at, len);
        let kind = FormatError::TooLong {
            len,
            limit: MAX_TENSOR_NAME_LEN,
        };
        refused(b, "tensor_info[1].name", at, kind);
    }
    let mut b = bytes.clone();
    b[at as usize + 8 + 4] = 0xFF;
    let kind = FormatError::InvalidUtf8 { valid_up_to: 4 };
    refused(b, "tensor_info[1].name", at + 8, kind);
}

#[test]
fn dimension_counts_above_4_are_refused() {
    let (bytes, spans) = fixture_bytes();
    let at = span(&spans, "tensor_info[0].n_dims");
    for n_dims in [5, 1 << 31, u32::MAX] {
        let mut b = bytes.clone();
        put_u32(&mut b, at, n_dims);
        let kind = FormatError::TooManyDims { n_dims, limit: 4 };
        refused(b, "tensor `token_embd.weight`.n_dims", at, kind);
    }
}

#[test]
fn zero_and_overflowing_dims_are_refused() {
    let (bytes, spans) = fixture_bytes();
    let dims = span(&spans, "tensor_info[0].dims");
    let mut b = bytes.clone();
    put_u64(&mut b, dims + 8, 0);
    let field = "tensor `token_embd.weight`.dims[1]";
    refused(b, field, dims + 8, FormatError::ZeroDim { index: 1 });

    // 2^32 × 2^32 overflows 64 bits; 2^63 alone overflows ggml's int64 ne.
    for (shape, bad) in [(&[1u64 << 32, 1 << 32][..], 1), (&[1 << 63], 0)] {
        let (bytes, spans) = with_raw_tensors(vec![raw("x", shape, 0, 0, None)]);
        let at = span(&spans, "tensor_info[0].dims") + 8 * bad;
        let field = format!("tensor `x`.dims[{bad}]");
        refused(bytes, &field, at, FormatError::ElementOverflow);
    }
    // 2^62 F64 elements fit int64, their 2^65 bytes do not fit 64 bits.
    let (bytes, spans) = with_raw_tensors(vec![raw("x", &[1 << 62], 28, 0, None)]);
    let at = span(&spans, "tensor_info[0].dims");
    refused(bytes, "tensor `x`.dims", at, FormatError::ElementOverflow);
}

#[test]
fn rows_must_be_whole_blocks() {
    let (bytes, spans) = with_raw_tensors(vec![raw("q", &[33, 2], 2, 0, None)]);
    let kind = FormatError::PartialBlock {
        elements: 33,
        ggml_type: "Q4_0",
        block_size: 32,
    };
    let at = span(&spans, "tensor_info[0].dims");
    refused(bytes, "tensor `q`.dims[0]", at, kind);
    // A scalar's row is one element: no quantized type can hold it.
    let (bytes, spans) = with_raw_tensors(vec![raw("s", &[], 12, 0, None)]);
    let kind = FormatError::PartialBlock {
        elements: 1,
        ggml_type: "Q4_K",
        block_size: 256,
    };
    let at = span(&spans, "tensor_info[0].n_dims");
    refused(bytes, "tensor `s`.n_dims", at, kind);
}

#[test]
fn unknown_and_retired_tensor_types_are_refused_by_name() {
    let (bytes, spans) = fixture_bytes();
    let at = span(&spans, "tensor_info[2].type");
    let retired = [
        (4, "Q4_2"),
        (5, "Q4_3"),
        (31, "Q4_0_4_4"),
        (32, "Q4_0_4_8"),
        (33, "Q4_0_8_8"),
        (36, "IQ4_NL_4_4"),
        (37, "IQ4_NL_4_8"),
        (38, "IQ4_NL_8_8"),
    ];
    for (id, name) in retired {
        let mut b = bytes.clone();
        put_u32(&mut b, at, id);
        let kind = FormatError::TensorType(TypeIdError::Retired { id, name });
        refused(b, "tensor `blk.0.ffn_down.weight`.type", at, kind);
    }
    for id in [42, 1000, u32::MAX] {
        let mut b = bytes.clone();
        put_u32(&mut b, at, id);
        let kind = FormatError::TensorType(TypeIdError::Unknown { id });
        refused(b, "tensor `blk.0.ffn_down.weight`.type", at, kind);
    }
}

#[test]
fn duplicate_tensor_names_are_refused_at_the_second() {
    let (bytes, spans) = with_raw_tensors(vec![
        raw("a", &[8], 0, 32, None),
        raw("b", &[8], 0, 32, None),
        raw("a", &[8], 0, 32, None),
    ]);
    let at = span(&spans, "tensor_info[2].name");
    refused(bytes, "tensor `a`", at, FormatError::DuplicateTensor);
}

#[test]
fn misaligned_overlapping_and_out_of_file_ranges_are_refused() {
    // 8 F32 = 32 bytes each; the fixture's default alignment is 32.
    let t = |name: &str, offset| raw(name, &[8], 0, 32, Some(offset));
    let (bytes, spans) = with_raw_tensors(vec![t("a", 0), t("b", 16)]);
    let at = span(&spans, "tensor_info[1].offset");
    let kind = FormatError::Misaligned {
        offset: 16,
        alignment: 32,
    };
    refused(bytes, "tensor `b`.offset", at, kind);

    // Two tensors at the same place: the later one in the index is blamed.
    let (bytes, spans) = with_raw_tensors(vec![t("b", 64), t("a", 64)]);
    let start = span(&spans, "tensor_data[1]");
    let at = span(&spans, "tensor_info[1].offset");
    let kind = FormatError::Overlap {
        start,
        end: start + 32,
        other: "b".into(),
    };
    refused(bytes, "tensor `a`.offset", at, kind);

    // A 64-byte tensor whose second half holds another one.
    let (bytes, spans) = with_raw_tensors(vec![
        raw("wide", &[16], 0, 64, Some(0)),
        raw("inside", &[8], 0, 32, Some(32)),
    ]);
    let start = span(&spans, "tensor_data[1]");
    let kind = FormatError::Overlap {
        start,
        end: start + 32,
        other: "wide".into(),
    };
    let at = span(&spans, "tensor_info[1].offset");
    refused(bytes, "tensor `inside`.offset", at, kind);

    // Offsets past the end, up to the largest aligned 64-bit value.
    let (bytes, spans) = with_raw_tensors(vec![t("a", 0)]);
    let len = bytes.len() as u64;
    let data = span(&spans, "tensor_data[0]");
    let at = span(&spans, "tensor_info[0].offset");
    for offset in [32, 1 << 40, u64::MAX - 31] {
        let mut b = bytes.clone();
        put_u64(&mut b, at, offset);
        let start = data.saturating_add(offset);
        let kind = FormatError::OutOfFile {
            start,
            end: start.saturating_add(32),
            file_size: len,
        };
        refused(b, "tensor `a`.offset", at, kind);
    }
}

#[test]
fn big_endian_files_read_identically() {
    let little = GgufFile::from_bytes("le.gguf", fixture().to_bytes()).unwrap();
    let mut w = fixture();
    w.endian(Endian::Big);
    let bytes = w.to_bytes();
    assert_ne!(bytes, fixture().to_bytes());
    let big = GgufFile::from_bytes("be.gguf", bytes).unwrap();
    assert_eq!(big.endian, Endian::Big);
    assert_eq!(little.endian, Endian::Little);
    assert_eq!(big.metadata, little.metadata);
    assert_eq!(
        big.metadata.keys().collect::<Vec<_>>(),
        little.metadata.keys().collect::<Vec<_>>()
    );
    assert_eq!(big.tensors, little.tensors);
    assert_eq!(
        (big.alignment, big.data_offset),
        (little.alignment, little.data_offset)
    );
}
