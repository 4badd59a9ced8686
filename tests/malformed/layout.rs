//! An independent model of the order in which the reader reads a valid
//! file, to say which error a file cut at any byte must give.

use ggviz::gguf::{Array, FormatError, GgufFile, Value, ValueType};

/// The fewest bytes a value of type `t` takes in a file, from the GGUF
/// specification (not from the reader): a string is at least its 8-byte
/// length, an array its 4-byte element type and 8-byte count.
fn min_bytes(t: ValueType) -> u64 {
    match t {
        ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
        ValueType::U16 | ValueType::I16 => 2,
        ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
        ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
        ValueType::Array => 12,
    }
}

/// One step of reading a file.
#[derive(Debug)]
pub enum Step {
    /// `len` bytes read at `start`, named `field` in errors.
    Read { field: String, start: u64, len: u64 },
    /// The check that `count` items of at least `min` bytes fit in the bytes
    /// after `from`, reported at the count's field `at`.
    Fits {
        field: String,
        at: u64,
        count: u64,
        min: u64,
        from: u64,
    },
}

/// The reads of a file, then the data ranges checked after the index.
#[derive(Debug)]
pub struct Layout {
    pub steps: Vec<Step>,
    /// Per tensor: the name, where its `offset` field is, and its data range.
    data: Vec<(String, u64, u64, u64)>,
}

impl Layout {
    /// Lays out what `file` (a valid file) was read from.
    pub fn of(file: &GgufFile) -> Layout {
        let mut l = LayoutBuilder {
            steps: Vec::new(),
            pos: 0,
        };
        l.read("header.magic", 4);
        l.read("header.version", 4);
        l.read("header.tensor_count", 8);
        l.read("header.kv_count", 8);
        let n_tensors = file.tensors.len() as u64;
        l.fits("header.kv_count", 16, file.metadata.len() as u64, 13);
        l.fits("header.tensor_count", 8, n_tensors, 24);
        for (i, (key, value)) in file.metadata.iter().enumerate() {
            l.string(&format!("metadata[{i}].key"), key.len());
            let field = format!("metadata `{key}`");
            l.read(&format!("{field} type"), 4);
            l.value(&field, value);
        }
        l.fits("header.tensor_count", 8, n_tensors, 24);
        let mut offsets_at = Vec::new();
        for (i, t) in file.tensors.iter().enumerate() {
            l.string(&format!("tensor_info[{i}].name"), t.name.len());
            let field = format!("tensor `{}`", t.name);
            l.read(&format!("{field}.n_dims"), 4);
            for d in 0..t.dims.len() {
                l.read(&format!("{field}.dims[{d}]"), 8);
            }
            l.read(&format!("{field}.type"), 4);
            offsets_at.push(l.pos);
            l.read(&format!("{field}.offset"), 8);
        }
        let data = file
            .tensors
            .iter()
            .zip(offsets_at)
            .map(|(t, at)| (t.name.clone(), at, t.offset, t.offset + t.n_bytes))
            .collect();
        Layout {
            steps: l.steps,
            data,
        }
    }

    /// Where the step reading `field` starts.
    pub fn start_of(&self, field: &str) -> u64 {
        self.steps
            .iter()
            .find_map(|s| match s {
                Step::Read {
                    field: f, start, ..
                } if f == field => Some(*start),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no field {field}"))
    }

    /// End of the tensor index.
    pub fn index_end(&self) -> u64 {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Read { start, len, .. } => Some(start + len),
                Step::Fits { .. } => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The error the file cut to its first `cut` bytes must give, or `None`
    /// when nothing is missing.
    pub fn truncation_error(&self, cut: u64) -> Option<(String, u64, FormatError)> {
        for step in &self.steps {
            match step {
                Step::Read { field, start, len } if start + len > cut => {
                    let kind = FormatError::Truncated {
                        needed: *len,
                        available: cut - start,
                    };
                    return Some((field.clone(), *start, kind));
                }
                Step::Fits {
                    field,
                    at,
                    count,
                    min,
                    from,
                } if count * min > cut - from => {
                    let kind = FormatError::CountTooLarge {
                        count: *count,
                        available: cut - from,
                    };
                    return Some((field.clone(), *at, kind));
                }
                _ => {}
            }
        }
        self.data
            .iter()
            .find(|(_, _, _, end)| *end > cut)
            .map(|(name, at, start, end)| {
                let kind = FormatError::OutOfFile {
                    start: *start,
                    end: *end,
                    file_size: cut,
                };
                (format!("tensor `{name}`.offset"), *at, kind)
            })
    }
}

pub struct LayoutBuilder {
    steps: Vec<Step>,
    pos: u64,
}

impl LayoutBuilder {
    fn read(&mut self, field: &str, len: u64) {
        self.steps.push(Step::Read {
            field: field.to_owned(),
            start: self.pos,
            len,
        });
        self.pos += len;
    }

    fn fits(&mut self, field: &str, at: u64, count: u64, min: u64) {
        self.steps.push(Step::Fits {
            field: field.to_owned(),
            at,
            count,
            min,
            from: self.pos,
        });
    }

    fn string(&mut self, field: &str, len: usize) {
        self.read(&format!("{field} length"), 8);
        self.read(field, len as u64);
    }

    fn value(&mut self, field: &str, value: &Value) {
        match value {
            Value::String(s) => self.string(field, s.len()),
            Value::Array(a) => self.array(field, a),
            scalar => {
                let size = min_bytes(scalar.value_type());
                self.read(field, size);
            }
        }
    }

    fn array(&mut self, field: &str, a: &Array) {
        self.read(&format!("{field} element type"), 4);
        let count_at = self.pos;
        let count_field = format!("{field} length");
        self.read(&count_field, 8);
        let min = min_bytes(a.element_type());
        self.fits(&count_field, count_at, a.len() as u64, min);
        for i in 0..a.len() {
            let item = format!("{field}[{i}]");
            match a {
                Array::String(s) => self.string(&item, s.get(i).map_or(0, str::len)),
                Array::Array(inner) => self.array(&item, &inner[i]),
                other => self.read(&item, min_bytes(other.element_type())),
            }
        }
    }
}
