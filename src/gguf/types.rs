//! The ggml tensor type table: ids, names and block geometry.
//!
//! Byte sizes and bits per weight are derived from this table only, so every
//! figure ggviz shows about a tensor's storage is exact. Ids, names, block
//! sizes and bytes per block follow llama.cpp's `ggml/include/ggml.h` and the
//! `type_traits` table in `ggml/src/ggml.c` (the block structs live in
//! `ggml-common.h`). Ids that llama.cpp retired (4, 5, 31–33, 36–38) are
//! rejected by name, since no current runtime can load such a tensor.

use serde::Serialize;

/// Elements per super-block of the k-quants and i-quants (`QK_K` in ggml).
const QK_K: u32 = 256;

/// A ggml tensor storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    Iq2Xxs,
    Iq2Xs,
    Iq3Xxs,
    Iq1S,
    Iq4Nl,
    Iq3S,
    Iq2S,
    Iq4Xs,
    I8,
    I16,
    I32,
    I64,
    F64,
    Iq1M,
    Bf16,
    Tq1_0,
    Tq2_0,
    Mxfp4,
    Nvfp4,
    Q1_0,
}

/// Static facts about one type: `(type, id, name, block size, bytes per block)`.
const TABLE: &[(GgmlType, u32, &str, u32, u32)] = &[
    (GgmlType::F32, 0, "F32", 1, 4),
    (GgmlType::F16, 1, "F16", 1, 2),
    (GgmlType::Q4_0, 2, "Q4_0", 32, 2 + 16),
    (GgmlType::Q4_1, 3, "Q4_1", 32, 2 + 2 + 16),
    (GgmlType::Q5_0, 6, "Q5_0", 32, 2 + 4 + 16),
    (GgmlType::Q5_1, 7, "Q5_1", 32, 2 + 2 + 4 + 16),
    (GgmlType::Q8_0, 8, "Q8_0", 32, 2 + 32),
    // block_q8_1 is `ggml_half2 ds; int8_t qs[32]` (gguf-py says 40, ggml says 36).
    (GgmlType::Q8_1, 9, "Q8_1", 32, 4 + 32),
    (GgmlType::Q2K, 10, "Q2_K", QK_K, 16 + 64 + 2 + 2),
    (GgmlType::Q3K, 11, "Q3_K", QK_K, 32 + 64 + 12 + 2),
    (GgmlType::Q4K, 12, "Q4_K", QK_K, 2 + 2 + 12 + 128),
    (GgmlType::Q5K, 13, "Q5_K", QK_K, 2 + 2 + 12 + 32 + 128),
    (GgmlType::Q6K, 14, "Q6_K", QK_K, 128 + 64 + 16 + 2),
    (GgmlType::Q8K, 15, "Q8_K", QK_K, 4 + 256 + 32),
    (GgmlType::Iq2Xxs, 16, "IQ2_XXS", QK_K, 2 + 64),
    (GgmlType::Iq2Xs, 17, "IQ2_XS", QK_K, 2 + 64 + 8),
    (GgmlType::Iq3Xxs, 18, "IQ3_XXS", QK_K, 2 + 96),
    (GgmlType::Iq1S, 19, "IQ1_S", QK_K, 2 + 32 + 16),
    (GgmlType::Iq4Nl, 20, "IQ4_NL", 32, 2 + 16),
    (GgmlType::Iq3S, 21, "IQ3_S", QK_K, 2 + 64 + 8 + 32 + 4),
    (GgmlType::Iq2S, 22, "IQ2_S", QK_K, 2 + 64 + 8 + 8),
    (GgmlType::Iq4Xs, 23, "IQ4_XS", QK_K, 2 + 2 + 4 + 128),
    (GgmlType::I8, 24, "I8", 1, 1),
    (GgmlType::I16, 25, "I16", 1, 2),
    (GgmlType::I32, 26, "I32", 1, 4),
    (GgmlType::I64, 27, "I64", 1, 8),
    (GgmlType::F64, 28, "F64", 1, 8),
    (GgmlType::Iq1M, 29, "IQ1_M", QK_K, 32 + 16 + 8),
    (GgmlType::Bf16, 30, "BF16", 1, 2),
    (GgmlType::Tq1_0, 34, "TQ1_0", QK_K, 48 + 4 + 2),
    (GgmlType::Tq2_0, 35, "TQ2_0", QK_K, 64 + 2),
    (GgmlType::Mxfp4, 39, "MXFP4", 32, 1 + 16),
    (GgmlType::Nvfp4, 40, "NVFP4", 64, 4 + 32),
    (GgmlType::Q1_0, 41, "Q1_0", 128, 2 + 16),
];

/// Ids llama.cpp once used and then removed, with the name they had.
const RETIRED: &[(u32, &str)] = &[
    (4, "Q4_2"),
    (5, "Q4_3"),
    (31, "Q4_0_4_4"),
    (32, "Q4_0_4_8"),
    (33, "Q4_0_8_8"),
    (36, "IQ4_NL_4_4"),
    (37, "IQ4_NL_4_8"),
    (38, "IQ4_NL_8_8"),
];

/// Why a type id could not be turned into a [`GgmlType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeIdError {
    #[error("ggml type id {id} ({name}) was removed from llama.cpp and cannot be loaded")]
    Retired { id: u32, name: &'static str },
    #[error("unknown ggml type id {id}")]
    Unknown { id: u32 },
}

impl GgmlType {
    /// Every type in the table, in id order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|row| row.0)
    }

    fn row(self) -> &'static (GgmlType, u32, &'static str, u32, u32) {
        // The table holds every variant exactly once (checked by a unit test).
        TABLE.iter().find(|row| row.0 == self).unwrap_or(&TABLE[0])
    }

    /// Looks a type up by its numeric id as stored in GGUF tensor infos.
    pub fn from_id(id: u32) -> Result<GgmlType, TypeIdError> {
        if let Some(row) = TABLE.iter().find(|row| row.1 == id) {
            return Ok(row.0);
        }
        match RETIRED.iter().find(|(rid, _)| *rid == id) {
            Some(&(id, name)) => Err(TypeIdError::Retired { id, name }),
            None => Err(TypeIdError::Unknown { id }),
        }
    }

    /// Looks a type up by the name llama.cpp prints (`Q4_K`, `IQ2_XXS`, ...).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        TABLE
            .iter()
            .find(|row| row.2.eq_ignore_ascii_case(name))
            .map(|row| row.0)
    }

    /// The numeric id stored in GGUF files.
    pub fn id(self) -> u32 {
        self.row().1
    }

    /// The name as llama.cpp spells it (`ggml_type_name`).
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Elements per block.
    pub fn block_size(self) -> u32 {
        self.row().3
    }

    /// Bytes per block.
    pub fn type_size(self) -> u32 {
        self.row().4
    }

    /// Storage bits per weight, scales and minimums included.
    pub fn bits_per_weight(self) -> f64 {
        f64::from(self.type_size()) * 8.0 / f64::from(self.block_size())
    }

    /// True for the plain float and integer types (one element per block).
    pub fn is_unquantized(self) -> bool {
        self.block_size() == 1
    }

    /// Bytes needed to store `n_elements` elements, or `None` when the count
    /// is not a whole number of blocks or the size overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let block = u64::from(self.block_size());
        if !n_elements.is_multiple_of(block) {
            return None;
        }
        (n_elements / block).checked_mul(u64::from(self.type_size()))
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for GgmlType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_each_type_once_and_ids_round_trip() {
        let mut ids: Vec<u32> = TABLE.iter().map(|r| r.1).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), TABLE.len());
        for t in GgmlType::all() {
            assert_eq!(GgmlType::from_id(t.id()), Ok(t));
            assert_eq!(GgmlType::from_name(t.name()), Some(t));
            assert_eq!(t.row().0, t);
        }
    }

    #[test]
    fn block_geometry_matches_ggml() {
        // Spot checks against sizeof(block_*) in ggml-common.h.
        assert_eq!(GgmlType::Q4K.type_size(), 144);
        assert_eq!(GgmlType::Q6K.type_size(), 210);
        assert_eq!(GgmlType::Q4_1.bits_per_weight(), 5.0);
        assert_eq!(GgmlType::Q8_0.bits_per_weight(), 8.5);
        assert_eq!(GgmlType::Q4K.bits_per_weight(), 4.5);
        assert_eq!(GgmlType::Iq2Xxs.bits_per_weight(), 2.0625);
        assert_eq!(GgmlType::Mxfp4.bits_per_weight(), 4.25);
    }

    #[test]
    fn retired_and_unknown_ids_are_named() {
        assert_eq!(
            GgmlType::from_id(31).unwrap_err().to_string(),
            "ggml type id 31 (Q4_0_4_4) was removed from llama.cpp and cannot be loaded"
        );
        assert_eq!(
            GgmlType::from_id(999).unwrap_err().to_string(),
            "unknown ggml type id 999"
        );
    }

    #[test]
    fn bytes_for_requires_whole_blocks() {
        assert_eq!(GgmlType::Q4_0.bytes_for(64), Some(36));
        assert_eq!(GgmlType::Q4_0.bytes_for(65), None);
        assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None);
    }
}
