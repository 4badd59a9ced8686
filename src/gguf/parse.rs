//! The validating parser behind [`GgufFile`](super::GgufFile).
//!
//! A bounds-checked cursor reads the header, the metadata and the tensor
//! index in file order. Every count and length is compared with the bytes
//! that remain before anything is allocated, and every tensor's data range is
//! checked (inside the file, aligned, non-overlapping, sized exactly as its
//! type and shape demand). The layout follows llama.cpp's `ggml/src/gguf.cpp`
//! and `docs/gguf.md`.
//!
//! Memory is budgeted too: a count can fit the file's bytes and still ask for
//! far more memory than that (a key-value entry takes 13 bytes of file and
//! about a hundred of memory), so every allocation is charged against the
//! file's size plus [`MEMORY_SLACK`] before it is made. The parser therefore
//! never allocates more than that, whatever the file says.

use std::mem::size_of;
use std::path::Path;

use indexmap::IndexMap;
use indexmap::map::Entry;

use super::error::{FormatError, GgufError};
use super::reader::{
    DEFAULT_ALIGNMENT, Endian, MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS, MAX_KEY_LEN, MAX_STRING_LEN,
    MAX_TENSOR_NAME_LEN, MEMORY_SLACK, TensorInfo,
};
use super::types::GgmlType;
use super::value::{Array, StringArray, Value, ValueType};

/// The key whose value sets the data section's alignment.
const KEY_ALIGNMENT: &str = "general.alignment";

/// Fewest bytes a key-value pair takes: empty key (8) + type (4) + a
/// one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Fewest bytes a tensor info takes: empty name (8) + n_dims (4) + type (4)
/// + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;
/// Memory one metadata entry costs besides its key and value's heap data:
/// the `IndexMap` bucket (hash, key, value) and its index table, which holds
/// up to about 2.3 slots of one word and one control byte per entry.
const KV_MEMORY: u64 = (size_of::<(u64, String, Value)>() + 3 * size_of::<usize>()) as u64;
/// Memory one tensor info costs besides its name and dims: the entry itself,
/// where its offset field lies, its slot in the duplicate-name set and its
/// place in the sort order of the overlap check.
const TENSOR_MEMORY: u64 =
    (size_of::<TensorInfo>() + 3 * size_of::<&str>() + 2 * size_of::<usize>()) as u64;

/// What the parser produces before it is attached to its storage.
pub(super) struct Parsed {
    pub version: u32,
    pub endian: Endian,
    pub metadata: IndexMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
}

/// A bounds-checked cursor over the file's bytes.
pub(super) struct Parser<'a> {
    path: &'a Path,
    buf: &'a [u8],
    /// The file's full size; larger than `buf` when only a prefix of the
    /// file is at hand (a remote file read by range requests).
    file_size: u64,
    pos: usize,
    endian: Endian,
    /// Bytes the parser may still allocate.
    memory_left: u64,
    /// `general.alignment`, checked as soon as it is read.
    alignment: u64,
}

impl<'a> Parser<'a> {
    pub(super) fn new(path: &'a Path, buf: &'a [u8]) -> Self {
        Parser {
            path,
            buf,
            file_size: buf.len() as u64,
            pos: 0,
            endian: Endian::Little,
            memory_left: (buf.len() as u64).saturating_add(MEMORY_SLACK),
            alignment: DEFAULT_ALIGNMENT,
        }
    }

    /// A parser over the first `buf.len()` bytes of a file of `file_size`
    /// bytes. Every check (counts, budget, data ranges) is made against the
    /// whole file, as if it were at hand; a read past the prefix fails with
    /// [`FormatError::BeyondPrefix`] so the caller can fetch more.
    pub(super) fn with_file_size(path: &'a Path, buf: &'a [u8], file_size: u64) -> Self {
        let file_size = file_size.max(buf.len() as u64);
        Parser {
            file_size,
            memory_left: file_size.saturating_add(MEMORY_SLACK),
            ..Parser::new(path, buf)
        }
    }

    fn error(&self, field: impl Into<String>, offset: usize, kind: FormatError) -> GgufError {
        GgufError::Format {
            path: self.path.to_path_buf(),
            field: field.into(),
            offset: offset as u64,
            kind,
        }
    }

    /// Bytes left in the file (not only in the prefix at hand).
    fn remaining(&self) -> u64 {
        self.file_size - self.pos as u64
    }

    /// Charges `count` items of `size` bytes of memory about to be allocated
    /// for the field at `at`, failing when the budget would be exceeded.
    fn reserve(
        &mut self,
        count: u64,
        size: u64,
        at: usize,
        field: &dyn Fn() -> String,
    ) -> Result<(), GgufError> {
        match count.checked_mul(size) {
            Some(bytes) if bytes <= self.memory_left => {
                self.memory_left -= bytes;
                Ok(())
            }
            needed => Err(self.error(
                field(),
                at,
                FormatError::OverBudget {
                    needed: needed.unwrap_or(u64::MAX),
                    left: self.memory_left,
                },
            )),
        }
    }

    /// Takes `n` bytes, or fails naming `field` when fewer remain.
    fn take(&mut self, n: u64, field: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let available = self.remaining();
        if n > available {
            return Err(self.error(
                field(),
                self.pos,
                FormatError::Truncated {
                    needed: n,
                    available,
                },
            ));
        }
        let start = self.pos;
        let in_buf = (self.buf.len() - start) as u64;
        if n > in_buf {
            return Err(self.error(
                field(),
                start,
                FormatError::BeyondPrefix {
                    needed_end: start as u64 + n,
                    prefix_len: self.buf.len() as u64,
                },
            ));
        }
        // n <= in_buf <= usize::MAX, so the cast is exact.
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn array<const N: usize>(&mut self, field: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, field: &dyn Fn() -> String) -> Result<u8, GgufError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &dyn Fn() -> String) -> Result<u16, GgufError> {
        let b = self.array(field)?;
        Ok(match self.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    fn u32(&mut self, field: &dyn Fn() -> String) -> Result<u32, GgufError> {
        let b = self.array(field)?;
        Ok(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    fn u64(&mut self, field: &dyn Fn() -> String) -> Result<u64, GgufError> {
        let b = self.array(field)?;
        Ok(match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }

    /// Reads a length-prefixed string of at most `limit` bytes.
    fn string(&mut self, limit: u64, field: &dyn Fn() -> String) -> Result<&'a str, GgufError> {
        let len_at = self.pos;
        let len = self.u64(&|| format!("{} length", field()))?;
        if len > limit {
            return Err(self.error(field(), len_at, FormatError::TooLong { len, limit }));
        }
        let at = self.pos;
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|e| {
            self.error(
                field(),
                at,
                FormatError::InvalidUtf8 {
                    valid_up_to: e.valid_up_to(),
                },
            )
        })
    }

    /// Reads a string that will be kept, charging its bytes to the budget.
    fn owned_string(
        &mut self,
        limit: u64,
        field: &dyn Fn() -> String,
    ) -> Result<&'a str, GgufError> {
        let at = self.pos;
        let s = self.string(limit, field)?;
        self.reserve(s.len() as u64, 1, at, field)?;
        Ok(s)
    }

    /// Checks that `count` items of at least `min_size` bytes each fit in
    /// what is left of the file, before anything is allocated for them.
    fn check_count(
        &self,
        count: u64,
        min_size: u64,
        at: usize,
        field: &dyn Fn() -> String,
    ) -> Result<usize, GgufError> {
        let available = self.remaining();
        match count.checked_mul(min_size) {
            Some(need) if need <= available => Ok(count as usize),
            _ => Err(self.error(field(), at, FormatError::CountTooLarge { count, available })),
        }
    }

    pub(super) fn parse(mut self) -> Result<Parsed, GgufError> {
        let magic: [u8; 4] = self.array(&|| "header.magic".into())?;
        if magic != MAGIC {
            return Err(self.error("header.magic", 0, FormatError::BadMagic { found: magic }));
        }
        let version_at = self.pos;
        let raw: [u8; 4] = self.array(&|| "header.version".into())?;
        let le = u32::from_le_bytes(raw);
        let be = u32::from_be_bytes(raw);
        // A big-endian file has its version byte-swapped; ggml only ever
        // wrote versions 1..=3, so the two readings cannot be confused. For
        // any other version the smaller reading is the one to report: a
        // big-endian version 4 reads as 4, not as 67108864.
        let version = if (1..=3).contains(&le) {
            le
        } else if (1..=3).contains(&be) {
            self.endian = Endian::Big;
            be
        } else {
            le.min(be)
        };
        if !(2..=3).contains(&version) {
            return Err(self.error(
                "header.version",
                version_at,
                FormatError::UnsupportedVersion { version },
            ));
        }
        let count_at = self.pos;
        let tensor_count = self.u64(&|| "header.tensor_count".into())?;
        let kv_at = self.pos;
        let kv_count = self.u64(&|| "header.kv_count".into())?;
        let kv_field = || "header.kv_count".to_string();
        let tensor_field = || "header.tensor_count".to_string();
        let kv_count = self.check_count(kv_count, MIN_KV_BYTES, kv_at, &kv_field)?;
        self.check_count(tensor_count, MIN_TENSOR_INFO_BYTES, count_at, &tensor_field)?;

        self.reserve(kv_count as u64, KV_MEMORY, kv_at, &kv_field)?;
        let metadata = self.metadata(kv_count)?;
        let tensor_count =
            self.check_count(tensor_count, MIN_TENSOR_INFO_BYTES, count_at, &tensor_field)?;
        self.reserve(tensor_count as u64, TENSOR_MEMORY, count_at, &tensor_field)?;
        let (mut tensors, offsets_at) = self.tensor_infos(tensor_count)?;

        let alignment = self.alignment;
        let data_offset = (self.pos as u64).div_ceil(alignment) * alignment;
        self.place_tensors(&mut tensors, &offsets_at, data_offset)?;
        Ok(Parsed {
            version,
            endian: self.endian,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }

    /// Reads `kv_count` key-value pairs (their memory is already reserved).
    fn metadata(&mut self, kv_count: usize) -> Result<IndexMap<String, Value>, GgufError> {
        let mut map = IndexMap::with_capacity(kv_count);
        for i in 0..kv_count {
            let key_at = self.pos;
            let key = self.owned_string(MAX_KEY_LEN, &|| format!("metadata[{i}].key"))?;
            let field = |suffix: &str| format!("metadata `{key}`{suffix}");
            let type_at = self.pos;
            let type_id = self.u32(&|| field(" type"))?;
            let value_type = ValueType::from_id(type_id).ok_or_else(|| {
                self.error(
                    field(" type"),
                    type_at,
                    FormatError::UnknownValueType { type_id },
                )
            })?;
            let value_at = self.pos;
            let value = self.value(value_type, 0, &|| field(""))?;
            if key == KEY_ALIGNMENT {
                self.alignment = self.check_alignment(&value, type_at, value_at)?;
            }
            match map.entry(key.to_owned()) {
                Entry::Occupied(_) => {
                    return Err(self.error(field(""), key_at, FormatError::DuplicateKey));
                }
                Entry::Vacant(v) => {
                    v.insert(value);
                }
            }
        }
        Ok(map)
    }

    /// `general.alignment` must be a `uint32` power of two: llama.cpp reads
    /// it with `gguf_get_val_u32`, which aborts the process on any other
    /// type, so a file that passes here must not carry another one.
    fn check_alignment(
        &self,
        value: &Value,
        type_at: usize,
        value_at: usize,
    ) -> Result<u64, GgufError> {
        let field = format!("metadata `{KEY_ALIGNMENT}`");
        match *value {
            Value::U32(v) if v.is_power_of_two() => Ok(u64::from(v)),
            Value::U32(v) => Err(self.error(
                field,
                value_at,
                FormatError::BadAlignment {
                    value: u64::from(v),
                },
            )),
            ref other => Err(self.error(
                field + " type",
                type_at,
                FormatError::WrongType {
                    expected: ValueType::U32.name(),
                    found: other.value_type().name(),
                },
            )),
        }
    }

    fn value(
        &mut self,
        value_type: ValueType,
        depth: usize,
        field: &dyn Fn() -> String,
    ) -> Result<Value, GgufError> {
        Ok(match value_type {
            ValueType::U8 => Value::U8(self.u8(field)?),
            ValueType::I8 => Value::I8(self.u8(field)? as i8),
            ValueType::U16 => Value::U16(self.u16(field)?),
            ValueType::I16 => Value::I16(self.u16(field)? as i16),
            ValueType::U32 => Value::U32(self.u32(field)?),
            ValueType::I32 => Value::I32(self.u32(field)? as i32),
            ValueType::F32 => Value::F32(f32::from_bits(self.u32(field)?)),
            ValueType::U64 => Value::U64(self.u64(field)?),
            ValueType::I64 => Value::I64(self.u64(field)? as i64),
            ValueType::F64 => Value::F64(f64::from_bits(self.u64(field)?)),
            ValueType::Bool => Value::Bool(self.bool(field)?),
            ValueType::String => {
                Value::String(self.owned_string(MAX_STRING_LEN, field)?.to_owned())
            }
            ValueType::Array => Value::Array(self.array_value(depth + 1, field)?),
        })
    }

    fn bool(&mut self, field: &dyn Fn() -> String) -> Result<bool, GgufError> {
        let at = self.pos;
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(self.error(field(), at, FormatError::InvalidBool { value })),
        }
    }

    fn array_value(
        &mut self,
        depth: usize,
        field: &dyn Fn() -> String,
    ) -> Result<Array, GgufError> {
        let start = self.pos;
        if depth > MAX_ARRAY_DEPTH {
            return Err(self.error(
                field(),
                start,
                FormatError::TooDeep {
                    limit: MAX_ARRAY_DEPTH,
                },
            ));
        }
        let type_id = self.u32(&|| format!("{} element type", field()))?;
        let elem = ValueType::from_id(type_id).ok_or_else(|| {
            self.error(
                format!("{} element type", field()),
                start,
                FormatError::UnknownValueType { type_id },
            )
        })?;
        let count_at = self.pos;
        let count = self.u64(&|| format!("{} length", field()))?;
        let count_field = || format!("{} length", field());
        let n = self.check_count(count, elem.min_size(), count_at, &count_field)?;
        // Strings are charged once their total length is known.
        let item_memory = match elem {
            ValueType::String => 0,
            ValueType::Array => size_of::<Array>() as u64,
            // Every fixed-size type takes as many bytes in memory as in the file.
            other => other.fixed_size().unwrap_or(1),
        };
        self.reserve(n as u64, item_memory, count_at, &count_field)?;
        let item = |i: usize| move || format!("{}[{i}]", field());
        macro_rules! fixed {
            ($variant:ident, $read:ident, $conv:expr) => {{
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push($conv(self.$read(&item(i))?));
                }
                Array::$variant(out)
            }};
        }
        Ok(match elem {
            ValueType::U8 => fixed!(U8, u8, |v| v),
            ValueType::I8 => fixed!(I8, u8, |v| v as i8),
            ValueType::U16 => fixed!(U16, u16, |v| v),
            ValueType::I16 => fixed!(I16, u16, |v| v as i16),
            ValueType::U32 => fixed!(U32, u32, |v| v),
            ValueType::I32 => fixed!(I32, u32, |v| v as i32),
            ValueType::F32 => fixed!(F32, u32, f32::from_bits),
            ValueType::U64 => fixed!(U64, u64, |v| v),
            ValueType::I64 => fixed!(I64, u64, |v| v as i64),
            ValueType::F64 => fixed!(F64, u64, f64::from_bits),
            ValueType::Bool => fixed!(Bool, bool, |v| v),
            ValueType::String => Array::String(self.string_array(n, count_at, field)?),
            ValueType::Array => {
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push(self.array_value(depth + 1, &item(i))?);
                }
                Array::Array(out)
            }
        })
    }

    /// Reads `n` strings into one buffer: a first pass checks every length
    /// against the file, a second copies them, so the allocation is exact.
    fn string_array(
        &mut self,
        n: usize,
        count_at: usize,
        field: &dyn Fn() -> String,
    ) -> Result<StringArray, GgufError> {
        let start = self.pos;
        let mut total: u64 = 0;
        for i in 0..n {
            let len_at = self.pos;
            let len = self.u64(&|| format!("{}[{i}] length", field()))?;
            if len > MAX_STRING_LEN {
                return Err(self.error(
                    format!("{}[{i}]", field()),
                    len_at,
                    FormatError::TooLong {
                        len,
                        limit: MAX_STRING_LEN,
                    },
                ));
            }
            self.take(len, &|| format!("{}[{i}]", field()))?;
            total += len;
        }
        self.pos = start;
        // One end offset per string, plus the bytes themselves.
        self.reserve(n as u64, size_of::<usize>() as u64, count_at, &|| {
            format!("{} length", field())
        })?;
        self.reserve(total, 1, count_at, &|| format!("{} length", field()))?;
        // `total` bytes were just found in the file, so the size is safe.
        let mut out = StringArray::with_capacity(n, total as usize);
        for i in 0..n {
            out.push(self.string(MAX_STRING_LEN, &|| format!("{}[{i}]", field()))?);
        }
        Ok(out)
    }

    /// Reads `count` tensor infos (their memory is already reserved), and
    /// where each one's `offset` field lies, for the errors of
    /// [`Parser::place_tensors`].
    fn tensor_infos(&mut self, count: usize) -> Result<(Vec<TensorInfo>, Vec<usize>), GgufError> {
        let mut tensors = Vec::with_capacity(count);
        let mut offsets_at = Vec::with_capacity(count);
        let mut seen = std::collections::HashSet::with_capacity(count);
        for i in 0..count {
            let name_at = self.pos;
            let name =
                self.owned_string(MAX_TENSOR_NAME_LEN, &|| format!("tensor_info[{i}].name"))?;
            let field = |suffix: &str| format!("tensor `{name}`{suffix}");
            let dims_at = self.pos;
            let n_dims = self.u32(&|| field(".n_dims"))?;
            if n_dims > MAX_DIMS {
                return Err(self.error(
                    field(".n_dims"),
                    dims_at,
                    FormatError::TooManyDims {
                        n_dims,
                        limit: MAX_DIMS,
                    },
                ));
            }
            self.reserve(u64::from(n_dims), 8, dims_at, &|| field(".n_dims"))?;
            let mut dims = Vec::with_capacity(n_dims as usize);
            let mut n_elements: u64 = 1;
            for d in 0..n_dims as usize {
                let at = self.pos;
                let dim = self.u64(&|| field(&format!(".dims[{d}]")))?;
                if dim == 0 {
                    return Err(self.error(
                        field(&format!(".dims[{d}]")),
                        at,
                        FormatError::ZeroDim { index: d },
                    ));
                }
                // ggml stores ne as int64_t, so the product must fit in i64.
                n_elements = n_elements
                    .checked_mul(dim)
                    .filter(|&n| n <= i64::MAX as u64)
                    .ok_or_else(|| {
                        self.error(
                            field(&format!(".dims[{d}]")),
                            at,
                            FormatError::ElementOverflow,
                        )
                    })?;
                dims.push(dim);
            }
            let type_at = self.pos;
            let type_id = self.u32(&|| field(".type"))?;
            let ggml_type = GgmlType::from_id(type_id)
                .map_err(|e| self.error(field(".type"), type_at, FormatError::TensorType(e)))?;
            // A tensor without dims is a scalar: its row is one element long,
            // and the field to blame is its dimension count.
            let (row, row_field, row_at) = match dims.first() {
                Some(&row) => (row, field(".dims[0]"), dims_at + 4),
                None => (1, field(".n_dims"), dims_at),
            };
            if row % u64::from(ggml_type.block_size()) != 0 {
                return Err(self.error(
                    row_field,
                    row_at,
                    FormatError::PartialBlock {
                        elements: row,
                        ggml_type: ggml_type.name(),
                        block_size: ggml_type.block_size(),
                    },
                ));
            }
            // Whole rows of whole blocks, so only an overflow can fail here.
            let n_bytes = ggml_type.bytes_for(n_elements).ok_or_else(|| {
                self.error(field(".dims"), dims_at + 4, FormatError::ElementOverflow)
            })?;
            let offset_at = self.pos;
            let relative_offset = self.u64(&|| field(".offset"))?;
            if !seen.insert(name) {
                return Err(self.error(field(""), name_at, FormatError::DuplicateTensor));
            }
            tensors.push(TensorInfo {
                name: name.to_owned(),
                dims,
                ggml_type,
                relative_offset,
                offset: 0,
                n_bytes,
                n_elements,
                shard: 0,
            });
            offsets_at.push(offset_at);
        }
        Ok((tensors, offsets_at))
    }

    /// Resolves absolute offsets and checks that every range is aligned,
    /// inside the file and disjoint from every other. Errors point at the
    /// tensor's `offset` field (`offsets_at`); the data range is in the kind.
    fn place_tensors(
        &self,
        tensors: &mut [TensorInfo],
        offsets_at: &[usize],
        data_offset: u64,
    ) -> Result<(), GgufError> {
        let file_size = self.file_size;
        let alignment = self.alignment;
        let field = |t: &TensorInfo| format!("tensor `{}`.offset", t.name);
        for (t, &at) in tensors.iter_mut().zip(offsets_at) {
            if t.relative_offset % alignment != 0 {
                return Err(self.error(
                    field(t),
                    at,
                    FormatError::Misaligned {
                        offset: t.relative_offset,
                        alignment,
                    },
                ));
            }
            let start = data_offset.checked_add(t.relative_offset);
            let end = start.and_then(|s| s.checked_add(t.n_bytes));
            match (start, end) {
                (Some(start), Some(end)) if end <= file_size => t.offset = start,
                _ => {
                    let start = data_offset.saturating_add(t.relative_offset);
                    return Err(self.error(
                        field(t),
                        at,
                        FormatError::OutOfFile {
                            start,
                            end: start.saturating_add(t.n_bytes),
                            file_size,
                        },
                    ));
                }
            }
        }
        // Ties are broken by index, so the later tensor in the index is blamed.
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_unstable_by_key(|&i| (tensors[i].offset, i));
        for pair in order.windows(2) {
            let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
            if a.offset + a.n_bytes > b.offset {
                return Err(self.error(
                    field(b),
                    offsets_at[pair[1]],
                    FormatError::Overlap {
                        start: b.offset,
                        end: b.offset + b.n_bytes,
                        other: a.name.clone(),
                    },
                ));
            }
        }
        Ok(())
    }
}
