//! The validating GGUF reader.
//!
//! Opening a file maps it and parses only the header, the metadata and the
//! tensor index; weights are never touched, so a multi-gigabyte model opens
//! in milliseconds. Nothing is handed to anyone before the parser
//! (`parse.rs`) has validated every byte of that header.

use std::fs::File;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use memmap2::Mmap;

use super::error::GgufError;
use super::parse::{Parsed, Parser};
use super::types::GgmlType;
use super::value::Value;

/// The four magic bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a ggml tensor can have (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Longest metadata key accepted.
pub const MAX_KEY_LEN: u64 = 64 * 1024;
/// Longest tensor name accepted.
pub const MAX_TENSOR_NAME_LEN: u64 = 1024;
/// Longest string value accepted (chat templates are a few tens of KiB).
pub const MAX_STRING_LEN: u64 = 256 * 1024 * 1024;
/// Deepest nesting of arrays inside arrays accepted.
pub const MAX_ARRAY_DEPTH: usize = 4;
/// Memory the parser may allocate beyond the file's own size. A file's
/// parsed form is about as large as its header (string arrays, which hold
/// most of it, take exactly their bytes), but maps and tensor entries of tiny
/// files can take a few KiB more than such files have bytes.
pub const MEMORY_SLACK: u64 = 64 * 1024;

/// Byte order of the numbers in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

/// One entry of the tensor index.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Shape in GGUF order: `dims[0]` (`ne[0]`) is the contiguous row length.
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Offset of the data relative to the start of the data section.
    pub relative_offset: u64,
    /// Absolute byte offset of the data in its file.
    pub offset: u64,
    /// Bytes of data.
    pub n_bytes: u64,
    /// Number of elements (product of `dims`).
    pub n_elements: u64,
    /// Which file of a split model holds the data (0 for single files).
    pub shard: usize,
}

impl TensorInfo {
    /// Storage bits per weight of this tensor's type.
    pub fn bits_per_weight(&self) -> f64 {
        self.ggml_type.bits_per_weight()
    }
}

/// The bytes behind a file: a memory map, or a buffer for in-memory input.
enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed, validated GGUF file.
pub struct GgufFile {
    path: PathBuf,
    storage: Storage,
    /// The file's size: the storage's, or more when only a prefix is held.
    size: u64,
    /// Format version (2 or 3).
    pub version: u32,
    /// Byte order of the file's numbers.
    pub endian: Endian,
    /// Metadata in file order.
    pub metadata: IndexMap<String, Value>,
    /// Tensor index in file order.
    pub tensors: Vec<TensorInfo>,
    /// Data section alignment.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("endian", &self.endian)
            .field("metadata_len", &self.metadata.len())
            .field("tensors_len", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl GgufFile {
    /// Maps and validates the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| GgufError::io(path, "cannot open file", e))?;
        let len = file
            .metadata()
            .map_err(|e| GgufError::io(path, "cannot stat file", e))?
            .len();
        let storage = if len == 0 {
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only; a file truncated by another process
            // while mapped is the one hazard, as for every mmap-based reader
            // (llama.cpp included).
            let map = unsafe { Mmap::map(&file) }
                .map_err(|e| GgufError::io(path, "cannot map file", e))?;
            Storage::Mapped(map)
        };
        Self::from_storage(path.to_path_buf(), storage)
    }

    /// Validates GGUF bytes held in memory; `path` only labels errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        Self::from_storage(path.into(), Storage::Owned(bytes))
    }

    /// Validates the header and tensor index of a file of `file_size` bytes
    /// from its first bytes only (`prefix`), e.g. fetched by HTTP range
    /// requests. Every check is made against the whole file's size; when the
    /// header goes on past the prefix the error's kind is
    /// [`FormatError::BeyondPrefix`](super::FormatError::BeyondPrefix) and a
    /// longer prefix may succeed. Tensor data beyond the prefix is absent:
    /// [`GgufFile::tensor_data`] returns `None` for it.
    pub fn from_prefix(
        path: impl Into<PathBuf>,
        prefix: Vec<u8>,
        file_size: u64,
    ) -> Result<GgufFile, GgufError> {
        let path = path.into();
        let parsed = Parser::with_file_size(&path, &prefix, file_size).parse()?;
        Ok(Self::assemble(
            path,
            Storage::Owned(prefix),
            file_size,
            parsed,
        ))
    }

    fn from_storage(path: PathBuf, storage: Storage) -> Result<GgufFile, GgufError> {
        let parsed = Parser::new(&path, storage.bytes()).parse()?;
        let size = storage.bytes().len() as u64;
        Ok(Self::assemble(path, storage, size, parsed))
    }

    fn assemble(path: PathBuf, storage: Storage, size: u64, parsed: Parsed) -> GgufFile {
        GgufFile {
            path,
            storage,
            size,
            version: parsed.version,
            endian: parsed.endian,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
        }
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes.
    pub fn file_size(&self) -> u64 {
        self.size
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor of this file (validated to lie inside it).
    pub fn tensor_data(&self, info: &TensorInfo) -> Option<&[u8]> {
        let start = usize::try_from(info.offset).ok()?;
        let end = start.checked_add(usize::try_from(info.n_bytes).ok()?)?;
        self.storage.bytes().get(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::FormatError;
    use crate::gguf::synthetic::SyntheticModel;

    #[test]
    fn a_prefix_parses_as_the_whole_file_would() {
        let bytes = SyntheticModel::default().writer().to_bytes();
        let len = bytes.len() as u64;
        let full = GgufFile::from_bytes("m.gguf", bytes.clone()).expect("valid");
        let header = bytes[..full.data_offset as usize].to_vec();
        let f = GgufFile::from_prefix("m.gguf", header.clone(), len).expect("header suffices");
        assert_eq!(f.tensors, full.tensors);
        assert_eq!(f.metadata, full.metadata);
        assert_eq!(f.file_size(), len);
        assert_eq!(f.tensor_data(&f.tensors[0]), None, "no data in a prefix");

        // Too short a prefix asks for more, saying up to where.
        let err = GgufFile::from_prefix("m.gguf", bytes[..100].to_vec(), len).unwrap_err();
        match err.format_kind() {
            Some(FormatError::BeyondPrefix {
                needed_end,
                prefix_len,
            }) => assert!(*needed_end > 100 && *prefix_len == 100, "{err}"),
            other => panic!("{other:?}"),
        }
        // A file that really ends there fails as a full read of it does.
        let err = GgufFile::from_prefix("m.gguf", bytes[..100].to_vec(), 100).unwrap_err();
        let whole = GgufFile::from_bytes("m.gguf", bytes[..100].to_vec()).unwrap_err();
        assert_eq!(err.to_string(), whole.to_string());
        assert!(
            !matches!(err.format_kind(), Some(FormatError::BeyondPrefix { .. })),
            "{err}"
        );
        // Data ranges are checked against the announced size.
        let err = GgufFile::from_prefix("m.gguf", header, full.data_offset + 8).unwrap_err();
        assert!(
            matches!(err.format_kind(), Some(FormatError::OutOfFile { .. })),
            "{err}"
        );
    }
}
