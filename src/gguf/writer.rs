//! A GGUF v3 writer.
//!
//! It writes any metadata and tensors, and it is also how the test suite
//! makes malformed files: a tensor may be given a raw type id or an explicit
//! offset, and [`GgufWriter::to_bytes_with_layout`] reports the byte span of
//! every field, so a test can cut or corrupt exactly the field it means to.

use std::io::Write;
use std::path::Path;

use super::error::GgufError;
use super::reader::{DEFAULT_ALIGNMENT, Endian, MAGIC};
use super::types::GgmlType;
use super::value::{Array, Value};

/// A tensor to write.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Shape in GGUF order (`ne[0]` first).
    pub dims: Vec<u64>,
    /// Type id as written (usually `GgmlType::id`, anything for malformed files).
    pub type_id: u32,
    /// Data bytes.
    pub data: Vec<u8>,
    /// Offset relative to the data section; `None` packs tensors in order.
    pub offset: Option<u64>,
}

/// The byte span of one field in a written file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// What the bytes are, e.g. `metadata[2].value` or `tensor_info[0].dims`.
    pub field: String,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Builds a GGUF file in memory.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    endian: Endian,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorSpec>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// An empty little-endian GGUF v3 file.
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            endian: Endian::Little,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Sets the version number written in the header.
    pub fn version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Sets the byte order of every number written.
    pub fn endian(&mut self, endian: Endian) -> &mut Self {
        self.endian = endian;
        self
    }

    /// Appends a metadata entry (keys are written in the order added).
    pub fn metadata(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Sets a metadata entry: replaces the value where the key exists (in
    /// place, keeping the order), appends it otherwise.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        let (key, value) = (key.into(), value.into());
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.metadata.push((key, value)),
        }
        self
    }

    /// Removes a metadata entry, if present.
    pub fn remove_metadata(&mut self, key: &str) -> &mut Self {
        self.metadata.retain(|(k, _)| k != key);
        self
    }

    /// Removes a tensor, if present.
    pub fn remove_tensor(&mut self, name: &str) -> &mut Self {
        self.tensors.retain(|t| t.name != name);
        self
    }

    /// Appends a tensor whose data must be exactly as long as its type and
    /// shape require.
    pub fn tensor(
        &mut self,
        name: impl Into<String>,
        ggml_type: GgmlType,
        dims: &[u64],
        data: Vec<u8>,
    ) -> Result<&mut Self, GgufError> {
        let name = name.into();
        let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let expected = elements.and_then(|n| ggml_type.bytes_for(n));
        if expected != Some(data.len() as u64) {
            return Err(GgufError::Format {
                path: "<writer>".into(),
                field: format!("tensor `{name}` data"),
                offset: 0,
                kind: super::error::FormatError::Truncated {
                    needed: expected.unwrap_or(0),
                    available: data.len() as u64,
                },
            });
        }
        self.tensors.push(TensorSpec {
            name,
            dims: dims.to_vec(),
            type_id: ggml_type.id(),
            data,
            offset: None,
        });
        Ok(self)
    }

    /// Appends a tensor exactly as given, with no checks.
    pub fn raw_tensor(&mut self, spec: TensorSpec) -> &mut Self {
        self.tensors.push(spec);
        self
    }

    /// The alignment the file declares (or the default).
    fn alignment(&self) -> u64 {
        self.metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .filter(|a| a.is_power_of_two())
            .unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with_layout().0
    }

    /// The file's bytes and the span of every field in them.
    pub fn to_bytes_with_layout(&self) -> (Vec<u8>, Vec<Span>) {
        let mut out = Out {
            buf: Vec::new(),
            spans: Vec::new(),
            endian: self.endian,
        };
        out.field("header.magic", |o| o.buf.extend_from_slice(&MAGIC));
        out.field("header.version", |o| o.u32(self.version));
        out.field("header.tensor_count", |o| o.u64(self.tensors.len() as u64));
        out.field("header.kv_count", |o| o.u64(self.metadata.len() as u64));
        for (i, (key, value)) in self.metadata.iter().enumerate() {
            out.field(&format!("metadata[{i}].key"), |o| o.string(key));
            out.field(&format!("metadata[{i}].type"), |o| {
                o.u32(value.value_type().id())
            });
            out.field(&format!("metadata[{i}].value"), |o| o.value(value));
        }
        let alignment = self.alignment();
        let mut next = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let offset = t.offset.unwrap_or(next);
            offsets.push(offset);
            next = (offset + t.data.len() as u64).div_ceil(alignment) * alignment;
        }
        for (i, t) in self.tensors.iter().enumerate() {
            out.field(&format!("tensor_info[{i}].name"), |o| o.string(&t.name));
            out.field(&format!("tensor_info[{i}].n_dims"), |o| {
                o.u32(t.dims.len() as u32)
            });
            out.field(&format!("tensor_info[{i}].dims"), |o| {
                for &d in &t.dims {
                    o.u64(d);
                }
            });
            out.field(&format!("tensor_info[{i}].type"), |o| o.u32(t.type_id));
            out.field(&format!("tensor_info[{i}].offset"), |o| o.u64(offsets[i]));
        }
        if !self.tensors.is_empty() {
            let data_start = (out.buf.len() as u64).div_ceil(alignment) * alignment;
            out.field("padding", |o| o.buf.resize(data_start as usize, 0));
            for (i, t) in self.tensors.iter().enumerate() {
                let at = (data_start + offsets[i]) as usize;
                if out.buf.len() < at {
                    out.buf.resize(at, 0);
                }
                let end = at + t.data.len();
                if out.buf.len() < end {
                    out.buf.resize(end, 0);
                }
                out.buf[at..end].copy_from_slice(&t.data);
                out.spans.push(Span {
                    field: format!("tensor_data[{i}]"),
                    start: at as u64,
                    end: end as u64,
                });
            }
        }
        (out.buf, out.spans)
    }

    /// Writes the file to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), GgufError> {
        let path = path.as_ref();
        let mut f = std::fs::File::create(path)
            .map_err(|e| GgufError::io(path, "cannot create file", e))?;
        f.write_all(&self.to_bytes())
            .map_err(|e| GgufError::io(path, "cannot write file", e))
    }
}

/// The output buffer with the spans recorded so far.
struct Out {
    buf: Vec<u8>,
    spans: Vec<Span>,
    endian: Endian,
}

impl Out {
    fn field(&mut self, name: &str, write: impl FnOnce(&mut Out)) {
        let start = self.buf.len() as u64;
        write(self);
        self.spans.push(Span {
            field: name.to_owned(),
            start,
            end: self.buf.len() as u64,
        });
    }

    fn bytes<const N: usize>(&mut self, le: [u8; N], be: [u8; N]) {
        match self.endian {
            Endian::Little => self.buf.extend_from_slice(&le),
            Endian::Big => self.buf.extend_from_slice(&be),
        }
    }

    fn u16(&mut self, v: u16) {
        self.bytes(v.to_le_bytes(), v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.bytes(v.to_le_bytes(), v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.bytes(v.to_le_bytes(), v.to_be_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::U8(x) => self.buf.push(*x),
            Value::I8(x) => self.buf.push(*x as u8),
            Value::U16(x) => self.u16(*x),
            Value::I16(x) => self.u16(*x as u16),
            Value::U32(x) => self.u32(*x),
            Value::I32(x) => self.u32(*x as u32),
            Value::F32(x) => self.u32(x.to_bits()),
            Value::Bool(x) => self.buf.push(u8::from(*x)),
            Value::String(s) => self.string(s),
            Value::Array(a) => self.array(a),
            Value::U64(x) => self.u64(*x),
            Value::I64(x) => self.u64(*x as u64),
            Value::F64(x) => self.u64(x.to_bits()),
        }
    }

    fn array(&mut self, a: &Array) {
        self.u32(a.element_type().id());
        self.u64(a.len() as u64);
        match a {
            Array::String(s) => s.iter().for_each(|s| self.string(s)),
            Array::Array(items) => items.iter().for_each(|a| self.array(a)),
            other => {
                for i in 0..other.len() {
                    if let Some(v) = other.get(i) {
                        self.value(&v);
                    }
                }
            }
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(v)
            }
        })*
    };
}

value_from!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32,
    bool => Bool, String => String, Array => Array, u64 => U64, i64 => I64, f64 => F64);

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::reader::GgufFile;
    use crate::gguf::value::StringArray;

    fn sample() -> GgufWriter {
        let mut w = GgufWriter::new();
        w.metadata("general.architecture", "llama")
            .metadata("count", 7u32)
            .metadata("neg", -3i64)
            .metadata("pi", 3.5f64)
            .metadata("flag", true)
            .metadata(
                "tokens",
                Array::String(["a", "", "ü"].into_iter().collect::<StringArray>()),
            )
            .metadata(
                "nested",
                Array::Array(vec![Array::U8(vec![1, 2]), Array::F32(vec![0.5])]),
            );
        w.tensor("a", GgmlType::F32, &[3], vec![0; 12]).unwrap();
        w.tensor("b", GgmlType::Q4_0, &[32, 2], vec![7; 36])
            .unwrap();
        w
    }

    #[test]
    fn written_files_read_back_identically_in_both_byte_orders() {
        for endian in [Endian::Little, Endian::Big] {
            let mut w = sample();
            w.endian(endian);
            let f = GgufFile::from_bytes("mem.gguf", w.to_bytes()).unwrap();
            assert_eq!(f.endian, endian);
            assert_eq!(f.version, 3);
            assert_eq!(f.metadata.len(), 7);
            for (key, value) in &w.metadata {
                assert_eq!(f.get(key), Some(value), "{key}");
            }
            let keys: Vec<_> = f.metadata.keys().cloned().collect();
            let written: Vec<_> = w.metadata.iter().map(|(k, _)| k.clone()).collect();
            assert_eq!(keys, written, "file order is kept");
            assert_eq!(f.tensors.len(), 2);
            let b = f.tensor("b").unwrap();
            assert_eq!(b.dims, vec![32, 2]);
            assert_eq!(b.n_bytes, 36);
            assert_eq!(b.relative_offset, 32);
            assert_eq!(b.offset % 32, f.data_offset % 32);
            assert_eq!(f.tensor_data(b).unwrap(), &[7u8; 36][..]);
        }
    }

    #[test]
    fn layout_spans_cover_the_header_contiguously() {
        let (bytes, spans) = sample().to_bytes_with_layout();
        assert_eq!(spans[0].field, "header.magic");
        for pair in spans
            .windows(2)
            .take_while(|p| p[1].field != "tensor_data[0]")
        {
            assert_eq!(pair[0].end, pair[1].start, "{:?}", pair);
        }
        assert_eq!(spans.last().unwrap().end, bytes.len() as u64);
    }

    #[test]
    fn tensor_data_length_is_checked() {
        let mut w = GgufWriter::new();
        assert!(w.tensor("x", GgmlType::Q8_0, &[32], vec![0; 33]).is_err());
    }
}
