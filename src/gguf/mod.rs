//! Reading and writing GGUF, llama.cpp's model file format.
//!
//! The reader validates every byte of the header and tensor index before
//! anything else sees the file; the writer makes files for tests, including
//! malformed ones.

pub mod error;
mod parse;
pub mod reader;
pub mod split;
pub mod synthetic;
pub mod types;
pub mod value;
pub mod writer;

pub use error::{FormatError, GgufError};
pub use reader::{Endian, GgufFile, TensorInfo};
pub use split::GgufModel;
pub use types::GgmlType;
pub use value::{Array, StringArray, Value, ValueType};
pub use writer::{GgufWriter, Span, TensorSpec};
