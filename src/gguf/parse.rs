//! The validating parser behind [`GgufFile`](super::GgufFile).
//!
//! A bounds-checked cursor reads the header, the metadata and the tensor
//! index in file order. Every count and length is compared with the bytes
//! that remain before anything is allocated, and every tensor's data range is
//! checked (inside the file, aligned, non-overlapping, sized exactly as its
//! type and shape demand). The layout follows llama.cpp's `ggml/src/gguf.cpp`
//! and `docs/gguf.md`.

use std::path::Path;

use indexmap::IndexMap;
use indexmap::map::Entry;

use super::error::{FormatError, GgufError};
use super::reader::{
    DEFAULT_ALIGNMENT, Endian, MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS, MAX_KEY_LEN, MAX_STRING_LEN,
    MAX_TENSOR_NAME_LEN, TensorInfo,
};
use super::types::GgmlType;
use super::value::{Array, StringArray, Value, ValueType};

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
    pos: usize,
    endian: Endian,
}

impl<'a> Parser<'a> {
    pub(super) fn new(path: &'a Path, buf: &'a [u8]) -> Self {
        Parser {
            path,
            buf,
            pos: 0,
            endian: Endian::Little,
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

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
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
        // n <= available <= usize::MAX, so the cast is exact.
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
        // wrote versions 1..=3, so the two readings cannot be confused.
        let version = if (1..=3).contains(&le) {
            le
        } else if (2..=3).contains(&be) {
            self.endian = Endian::Big;
            be
        } else {
            le
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
        // Smallest key-value pair: empty key (8) + type (4) + one byte value.
        let kv_count =
            self.check_count(kv_count, 8 + 4 + 1, kv_at, &|| "header.kv_count".into())?;
        // Smallest tensor info: empty name (8) + n_dims (4) + type (4) + offset (8).
        self.check_count(tensor_count, 8 + 4 + 4 + 8, count_at, &|| {
            "header.tensor_count".into()
        })?;

        let metadata = self.metadata(kv_count)?;
        let alignment = self.alignment(&metadata)?;
        let tensor_count = self.check_count(tensor_count, 8 + 4 + 4 + 8, count_at, &|| {
            "header.tensor_count".into()
        })?;
        let mut tensors = self.tensor_infos(tensor_count)?;

        let data_offset = (self.pos as u64).div_ceil(alignment) * alignment;
        self.place_tensors(&mut tensors, data_offset, alignment)?;
        Ok(Parsed {
            version,
            endian: self.endian,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }

    fn metadata(&mut self, kv_count: usize) -> Result<IndexMap<String, Value>, GgufError> {
        let mut map = IndexMap::with_capacity(kv_count);
        for i in 0..kv_count {
            let key_at = self.pos;
            let key = self.string(MAX_KEY_LEN, &|| format!("metadata[{i}].key"))?;
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
            let value = self.value(value_type, 0, &|| field(""))?;
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
            ValueType::String => Value::String(self.string(MAX_STRING_LEN, field)?.to_owned()),
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
        let n = self.check_count(count, elem.min_size(), count_at, &|| {
            format!("{} length", field())
        })?;
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
            ValueType::String => Array::String(self.string_array(n, field)?),
            ValueType::Array => {
                // Each nested array takes at least 12 bytes of the file, so
                // growing this vector is bounded by the bytes consumed.
                let mut out = Vec::new();
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
        // `total` bytes were just found in the file, so the size is safe.
        let mut out = StringArray::with_capacity(n, total as usize);
        for i in 0..n {
            out.push(self.string(MAX_STRING_LEN, &|| format!("{}[{i}]", field()))?);
        }
        Ok(out)
    }

    fn alignment(&self, metadata: &IndexMap<String, Value>) -> Result<u64, GgufError> {
        let Some(value) = metadata.get("general.alignment") else {
            return Ok(DEFAULT_ALIGNMENT);
        };
        let err = |kind| self.error("metadata `general.alignment`", 0, kind);
        let v = value.as_u64().ok_or_else(|| {
            err(FormatError::WrongType {
                expected: "uint32",
                found: value.value_type().name(),
            })
        })?;
        if v == 0 || !v.is_power_of_two() {
            return Err(err(FormatError::BadAlignment { value: v }));
        }
        Ok(v)
    }

    fn tensor_infos(&mut self, count: usize) -> Result<Vec<TensorInfo>, GgufError> {
        let mut tensors = Vec::with_capacity(count);
        let mut seen = std::collections::HashSet::with_capacity(count);
        for i in 0..count {
            let name_at = self.pos;
            let name = self.string(MAX_TENSOR_NAME_LEN, &|| format!("tensor_info[{i}].name"))?;
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
            let row = dims.first().copied().unwrap_or(1);
            if row % u64::from(ggml_type.block_size()) != 0 {
                return Err(self.error(
                    field(".dims[0]"),
                    dims_at + 4,
                    FormatError::PartialBlock {
                        elements: row,
                        ggml_type: ggml_type.name(),
                        block_size: ggml_type.block_size(),
                    },
                ));
            }
            let n_bytes = ggml_type
                .bytes_for(n_elements)
                .ok_or_else(|| self.error(field(".dims"), dims_at, FormatError::ElementOverflow))?;
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
        }
        Ok(tensors)
    }

    /// Resolves absolute offsets and checks that every range is aligned,
    /// inside the file and disjoint from every other.
    fn place_tensors(
        &self,
        tensors: &mut [TensorInfo],
        data_offset: u64,
        alignment: u64,
    ) -> Result<(), GgufError> {
        let file_size = self.buf.len() as u64;
        // Offsets of each tensor's info record are not kept, so errors point
        // at the data range itself, which is what a user needs to look at.
        for t in tensors.iter_mut() {
            let field = format!("tensor `{}`.offset", t.name);
            if t.relative_offset % alignment != 0 {
                return Err(self.error(
                    field,
                    usize::try_from(data_offset.saturating_add(t.relative_offset))
                        .unwrap_or(usize::MAX),
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
                    return Err(GgufError::Format {
                        path: self.path.to_path_buf(),
                        field,
                        offset: start,
                        kind: FormatError::OutOfFile {
                            start,
                            end: start.saturating_add(t.n_bytes),
                            file_size,
                        },
                    });
                }
            }
        }
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| tensors[i].offset);
        for pair in order.windows(2) {
            let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
            if a.offset + a.n_bytes > b.offset {
                return Err(GgufError::Format {
                    path: self.path.to_path_buf(),
                    field: format!("tensor `{}`.offset", b.name),
                    offset: b.offset,
                    kind: FormatError::Overlap {
                        start: b.offset,
                        end: b.offset + b.n_bytes,
                        other: a.name.clone(),
                    },
                });
            }
        }
        Ok(())
    }
}
