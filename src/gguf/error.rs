//! Errors of the GGUF reader and writer.
//!
//! A GGUF file is untrusted input, so every format error carries the file,
//! the field being read and the byte offset where the problem starts: enough
//! for a user to look at the file in a hex editor and for a test to assert
//! that the right check fired.

use std::path::PathBuf;

use super::types::TypeIdError;

/// An error while opening, validating or writing a GGUF file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened, mapped or written.
    #[error("{path}: {action}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The bytes do not form a valid GGUF file.
    #[error("{path}: {field} at byte offset {offset}: {kind}")]
    Format {
        path: PathBuf,
        /// The field at fault, e.g. ``metadata `general.name` length`` or
        /// ``tensor `output.weight`.offset``.
        field: String,
        /// Where that field starts in the file (for a truncated read, where
        /// the read started; a bad data range is reported at its tensor's
        /// `offset` field and carries the range in `kind`).
        offset: u64,
        kind: FormatError,
    },
    /// A well-formed file whose content is not what the reader was asked to
    /// read (an importance matrix without `general.type` = `imatrix`, ...).
    #[error("{path}: {field}: {problem}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
    /// The shards of a split model do not fit together.
    #[error("{path}: split model: {reason}")]
    Split { path: PathBuf, reason: String },
}

impl GgufError {
    /// The format problem, when this is a format error.
    pub fn format_kind(&self) -> Option<&FormatError> {
        match self {
            GgufError::Format { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// The byte offset of a format error.
    pub fn offset(&self) -> Option<u64> {
        match self {
            GgufError::Format { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// The field a format error names.
    pub fn field(&self) -> Option<&str> {
        match self {
            GgufError::Format { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// What exactly is wrong with the bytes at a given offset.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("file ends early: {needed} bytes needed, {available} left")]
    Truncated { needed: u64, available: u64 },
    /// Only a prefix of the file is at hand and the header goes on past it.
    #[error(
        "the header goes on past the {prefix_len} bytes read so far (to byte {needed_end} at least)"
    )]
    BeyondPrefix { needed_end: u64, prefix_len: u64 },
    #[error("not a GGUF file (magic bytes {found:02x?}, expected \"GGUF\")")]
    BadMagic { found: [u8; 4] },
    #[error("GGUF version {version} is not supported (ggviz reads versions 2 and 3)")]
    UnsupportedVersion { version: u32 },
    #[error("declared length {len} exceeds the {limit} bytes allowed here")]
    TooLong { len: u64, limit: u64 },
    #[error("declared count {count} cannot fit in the {available} bytes left")]
    CountTooLarge { count: u64, available: u64 },
    #[error(
        "reading this would take {needed} bytes of memory, more than the {left} bytes the \
         file's size allows"
    )]
    OverBudget { needed: u64, left: u64 },
    #[error("string is not valid UTF-8 (first bad byte at string offset {valid_up_to})")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("unknown metadata value type {type_id}")]
    UnknownValueType { type_id: u32 },
    #[error("boolean byte is {value}, expected 0 or 1")]
    InvalidBool { value: u8 },
    #[error("arrays nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("duplicate key")]
    DuplicateKey,
    #[error("{0}")]
    TensorType(#[from] TypeIdError),
    #[error("tensor has {n_dims} dimensions, at most {limit} are allowed")]
    TooManyDims { n_dims: u32, limit: u32 },
    #[error("dimension {index} is zero")]
    ZeroDim { index: usize },
    #[error("element count overflows 64 bits")]
    ElementOverflow,
    #[error(
        "{elements} elements are not a whole number of {ggml_type} blocks ({block_size} per block)"
    )]
    PartialBlock {
        elements: u64,
        ggml_type: &'static str,
        block_size: u32,
    },
    #[error("duplicate tensor name")]
    DuplicateTensor,
    #[error("data offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned { offset: u64, alignment: u64 },
    #[error("data range {start}..{end} lies outside the file ({file_size} bytes)")]
    OutOfFile {
        start: u64,
        end: u64,
        file_size: u64,
    },
    #[error("data range {start}..{end} overlaps tensor `{other}`")]
    Overlap { start: u64, end: u64, other: String },
    #[error("alignment {value} is not a positive power of two")]
    BadAlignment { value: u64 },
    #[error("expected type {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
}

impl GgufError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        GgufError::Io {
            path: path.into(),
            action,
            source,
        }
    }
}
