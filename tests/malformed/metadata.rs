//! Metadata keys, value types, lengths, encodings, nesting and alignment.

use ggviz::gguf::reader::{MAX_ARRAY_DEPTH, MAX_KEY_LEN, MAX_STRING_LEN};
use ggviz::gguf::{Array, FormatError, GgufFile, Value};

use super::fixture::{fixture_bytes, put_u32, put_u64, span, with_metadata};
use super::refused;

#[test]
fn key_lengths_up_to_2_pow_64_are_refused() {
    let (bytes, spans) = fixture_bytes();
    let at = span(&spans, "metadata[1].key");
    for len in [u64::MAX, MAX_KEY_LEN + 1] {
        let mut b = bytes.clone();
        put_u64(&mut b, at, len);
        let kind = FormatError::TooLong {
            len,
            limit: MAX_KEY_LEN,
        };
        refused(b, "metadata[1].key", at, kind);
    }
    // The longest allowed key runs past the end of this small file.
    let mut b = bytes.clone();
    put_u64(&mut b, at, MAX_KEY_LEN);
    let available = bytes.len() as u64 - (at + 8);
    let kind = FormatError::Truncated {
        needed: MAX_KEY_LEN,
        available,
    };
    refused(b, "metadata[1].key", at + 8, kind);
}

#[test]
fn invalid_utf8_is_refused_in_keys_values_and_string_arrays() {
    let (bytes, spans) = fixture_bytes();
    // Key "general.architecture": a continuation byte with no lead byte.
    let key = span(&spans, "metadata[0].key") + 8;
    let mut b = bytes.clone();
    b[key as usize + 3] = 0x80;
    refused(
        b,
        "metadata[0].key",
        key,
        FormatError::InvalidUtf8 { valid_up_to: 3 },
    );
    // Its value "llama": an overlong encoding of '/'.
    let value = span(&spans, "metadata[0].value") + 8;
    let mut b = bytes.clone();
    b[value as usize..value as usize + 2].copy_from_slice(&[0xC0, 0xAF]);
    refused(
        b,
        "metadata `general.architecture`",
        value,
        FormatError::InvalidUtf8 { valid_up_to: 0 },
    );
    // tokens[2] is "ü" (C3 BC): cut the sequence short.
    let tokens = span(&spans, "metadata[13].value");
    let third = tokens + 12 + (8 + 1) + 8 + 8;
    let mut b = bytes.clone();
    b[third as usize + 1] = b'(';
    refused(
        b,
        "metadata `tokens`[2]",
        third,
        FormatError::InvalidUtf8 { valid_up_to: 0 },
    );
}

#[test]
fn unknown_value_types_are_refused() {
    let (bytes, spans) = fixture_bytes();
    let at = span(&spans, "metadata[1].type");
    for type_id in [13, 255, u32::MAX] {
        let mut b = bytes.clone();
        put_u32(&mut b, at, type_id);
        refused(
            b,
            "metadata `u8` type",
            at,
            FormatError::UnknownValueType { type_id },
        );
    }
    // An array's element type.
    let at = span(&spans, "metadata[14].value");
    let mut b = bytes.clone();
    put_u32(&mut b, at, 13);
    refused(
        b,
        "metadata `scores` element type",
        at,
        FormatError::UnknownValueType { type_id: 13 },
    );
}

#[test]
fn string_value_lengths_up_to_2_pow_64_are_refused() {
    let (bytes, spans) = fixture_bytes();
    let at = span(&spans, "metadata[0].value");
    let field = "metadata `general.architecture`";
    for len in [u64::MAX, MAX_STRING_LEN + 1] {
        let mut b = bytes.clone();
        put_u64(&mut b, at, len);
        let kind = FormatError::TooLong {
            len,
            limit: MAX_STRING_LEN,
        };
        refused(b, field, at, kind);
    }
    let mut b = bytes.clone();
    put_u64(&mut b, at, MAX_STRING_LEN);
    let kind = FormatError::Truncated {
        needed: MAX_STRING_LEN,
        available: bytes.len() as u64 - (at + 8),
    };
    refused(b, field, at + 8, kind);
}

#[test]
fn array_counts_up_to_2_pow_64_are_refused_before_allocating() {
    let (bytes, spans) = fixture_bytes();
    let len = bytes.len() as u64;
    // (array, its value span, the bytes its elements take at least)
    for (name, i, min) in [("tokens", 13, 8), ("scores", 14, 4), ("flags", 15, 1)] {
        let at = span(&spans, &format!("metadata[{i}].value")) + 4;
        // 2^62 four-byte floats overflow 64 bits of bytes.
        for count in [u64::MAX, 1 << 62, (len - (at + 8)) / min + 1] {
            let mut b = bytes.clone();
            put_u64(&mut b, at, count);
            let kind = FormatError::CountTooLarge {
                count,
                available: len - (at + 8),
            };
            refused(b, &format!("metadata `{name}` length"), at, kind);
        }
    }
    // The count of the array inside `nested`[1]: after [0] = U8 × 2 (14 bytes).
    let nested = span(&spans, "metadata[17].value");
    let at = nested + 12 + 14 + 4;
    let mut b = bytes.clone();
    put_u64(&mut b, at, u64::MAX);
    let kind = FormatError::CountTooLarge {
        count: u64::MAX,
        available: len - (at + 8),
    };
    refused(b, "metadata `nested`[1] length", at, kind);
    // The length of a string inside an array.
    let at = span(&spans, "metadata[13].value") + 12 + 9;
    let mut b = bytes.clone();
    put_u64(&mut b, at, u64::MAX);
    let kind = FormatError::TooLong {
        len: u64::MAX,
        limit: MAX_STRING_LEN,
    };
    refused(b, "metadata `tokens`[1]", at, kind);
}

#[test]
fn booleans_other_than_0_and_1_are_refused() {
    let (bytes, spans) = fixture_bytes();
    let at = span(&spans, "metadata[8].value");
    for value in [2, 0x80, 0xFF] {
        let mut b = bytes.clone();
        b[at as usize] = value;
        refused(b, "metadata `bool`", at, FormatError::InvalidBool { value });
    }
    let at = span(&spans, "metadata[15].value") + 12 + 1;
    let mut b = bytes.clone();
    b[at as usize] = 7;
    refused(
        b,
        "metadata `flags`[1]",
        at,
        FormatError::InvalidBool { value: 7 },
    );
}

/// An array nested `levels` deep (the innermost one empty).
fn nested(levels: usize) -> Array {
    (1..levels).fold(Array::U8(vec![]), |inner, _| Array::Array(vec![inner]))
}

#[test]
fn arrays_nested_too_deep_are_refused() {
    let (bytes, _) = with_metadata(&[("deep", Value::Array(nested(MAX_ARRAY_DEPTH)))]);
    let ok = GgufFile::from_bytes("ok.gguf", bytes).unwrap();
    assert_eq!(ok.get("deep"), Some(&Value::Array(nested(MAX_ARRAY_DEPTH))));

    let (bytes, spans) = with_metadata(&[("deep", Value::Array(nested(MAX_ARRAY_DEPTH + 1)))]);
    // Each level is an element type and a count (12 bytes) before the next.
    let at = span(&spans, "metadata[0].value") + 12 * MAX_ARRAY_DEPTH as u64;
    let kind = FormatError::TooDeep {
        limit: MAX_ARRAY_DEPTH,
    };
    refused(bytes, "metadata `deep`[0][0][0][0]", at, kind);
}

#[test]
fn duplicate_keys_are_refused_at_the_second() {
    let (bytes, spans) = with_metadata(&[
        ("a", Value::U32(1)),
        ("b", Value::U32(2)),
        ("a", Value::U32(3)),
    ]);
    let at = span(&spans, "metadata[2].key");
    refused(bytes, "metadata `a`", at, FormatError::DuplicateKey);
}

#[test]
fn alignments_must_be_uint32_powers_of_two() {
    for value in [0u32, 3, 48, u32::MAX] {
        let (bytes, spans) = with_metadata(&[("general.alignment", Value::U32(value))]);
        let kind = FormatError::BadAlignment {
            value: u64::from(value),
        };
        let at = span(&spans, "metadata[0].value");
        refused(bytes, "metadata `general.alignment`", at, kind);
    }
    // llama.cpp aborts on any other type, so these must not pass.
    for (value, found) in [
        (Value::U64(32), "uint64"),
        (Value::I32(32), "int32"),
        (Value::String("32".into()), "string"),
    ] {
        let (bytes, spans) = with_metadata(&[("general.alignment", value)]);
        let kind = FormatError::WrongType {
            expected: "uint32",
            found,
        };
        let at = span(&spans, "metadata[0].type");
        refused(bytes, "metadata `general.alignment` type", at, kind);
    }
    // A huge power of two puts the data section past the end of the file.
    let (mut bytes, spans) = fixture_bytes();
    let len = bytes.len() as u64;
    put_u32(&mut bytes, span(&spans, "metadata[12].value"), 1 << 31);
    let kind = FormatError::OutOfFile {
        start: 1 << 31,
        end: (1 << 31) + 24,
        file_size: len,
    };
    let at = span(&spans, "tensor_info[0].offset");
    refused(bytes, "tensor `token_embd.weight`.offset", at, kind);
}
