//! The header: magic, version and counts.

use ggviz::gguf::{Endian, FormatError, GgufFile};

use super::fixture::{fixture, fixture_bytes, put_u64};
use super::refused;

#[test]
fn bad_magic_is_refused() {
    let (mut bytes, _) = fixture_bytes();
    bytes[..4].copy_from_slice(b"GGML");
    refused(
        bytes,
        "header.magic",
        0,
        FormatError::BadMagic { found: *b"GGML" },
    );
}

#[test]
fn versions_other_than_2_and_3_are_refused_in_either_byte_order() {
    for endian in [Endian::Little, Endian::Big] {
        for version in [0, 1, 4, 5, 0x0100_0000, u32::MAX] {
            let mut w = fixture();
            w.endian(endian).version(version);
            let reported = version.min(version.swap_bytes());
            let kind = FormatError::UnsupportedVersion { version: reported };
            refused(w.to_bytes(), "header.version", 4, kind);
        }
    }
    // Version 2 has the same layout as 3 and is read.
    let mut w = fixture();
    w.version(2);
    assert_eq!(
        GgufFile::from_bytes("v2.gguf", w.to_bytes())
            .unwrap()
            .version,
        2
    );
}

#[test]
fn header_counts_up_to_2_pow_64_are_refused_before_allocating() {
    let (bytes, _) = fixture_bytes();
    let left = bytes.len() as u64 - 24;
    for count in [u64::MAX, 1 << 63, u64::MAX / 13 + 1, left / 13 + 1] {
        let mut b = bytes.clone();
        put_u64(&mut b, 16, count);
        let kind = FormatError::CountTooLarge {
            count,
            available: left,
        };
        refused(b, "header.kv_count", 16, kind);
    }
    for count in [u64::MAX, 1 << 63, u64::MAX / 24 + 1, left / 24 + 1] {
        let mut b = bytes.clone();
        put_u64(&mut b, 8, count);
        let kind = FormatError::CountTooLarge {
            count,
            available: left,
        };
        refused(b, "header.tensor_count", 8, kind);
    }
}
