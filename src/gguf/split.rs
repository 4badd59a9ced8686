//! Models split over several GGUF files (`gguf-split`).
//!
//! llama.cpp names shards `<prefix>-00001-of-00003.gguf` and records
//! `split.no`, `split.count` and `split.tensors.count` in each; the first
//! shard carries the model's metadata. [`GgufModel`] opens every shard and
//! presents them as one model, each tensor remembering its shard.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::error::GgufError;
use super::reader::{GgufFile, TensorInfo};
use super::value::Value;

/// Metadata keys written by `gguf-split` (`LLM_KV_SPLIT_*` in llama.cpp).
pub const KEY_SPLIT_NO: &str = "split.no";
pub const KEY_SPLIT_COUNT: &str = "split.count";
pub const KEY_SPLIT_TENSORS_COUNT: &str = "split.tensors.count";

/// Most shards a split model may have (llama.cpp writes 5-digit numbers).
const MAX_SHARDS: u64 = 99_999;

/// A model: one GGUF file, or every shard of a split one.
#[derive(Debug)]
pub struct GgufModel {
    shards: Vec<GgufFile>,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
}

/// The parts of a shard file name: prefix, shard number (1-based), count.
pub fn parse_split_name(path: &Path) -> Option<(String, u64, u64)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    if no.len() != 5 || count.len() != 5 {
        return None;
    }
    let no: u64 = no.parse().ok()?;
    let count: u64 = count.parse().ok()?;
    (no >= 1 && no <= count).then(|| (prefix.to_owned(), no, count))
}

/// The path of shard `no` (1-based) of `count` next to `path`.
pub fn split_path(path: &Path, prefix: &str, no: u64, count: u64) -> PathBuf {
    path.with_file_name(format!("{prefix}-{no:05}-of-{count:05}.gguf"))
}

impl GgufModel {
    /// Opens a model from any of its files. A file named like a shard, or
    /// whose metadata says it is one, brings in all its siblings.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufModel, GgufError> {
        let path = path.as_ref();
        let first = GgufFile::open(path)?;
        let declared = first.get(KEY_SPLIT_COUNT).and_then(Value::as_u64);
        let count = match declared {
            Some(n) if n > 1 => n,
            _ => return Ok(Self::from_file(first)),
        };
        let split_err = |reason: String| GgufError::Split {
            path: path.to_path_buf(),
            reason,
        };
        if count > MAX_SHARDS {
            return Err(split_err(format!(
                "split.count {count} is more than {MAX_SHARDS}"
            )));
        }
        let (prefix, no, name_count) = parse_split_name(path).ok_or_else(|| {
            split_err(format!(
                "metadata says it is one of {count} shards, but the file name is not \
                 <prefix>-NNNNN-of-NNNNN.gguf, so its siblings cannot be found"
            ))
        })?;
        if name_count != count {
            return Err(split_err(format!(
                "file name says {name_count} shards, metadata split.count says {count}"
            )));
        }
        let mut shards = Vec::with_capacity(count as usize);
        let mut first = Some((no, first));
        for n in 1..=count {
            let file = match first.take() {
                Some((no, f)) if no == n => f,
                other => {
                    first = other;
                    GgufFile::open(split_path(path, &prefix, n, count))?
                }
            };
            let got = file.get(KEY_SPLIT_NO).and_then(Value::as_u64);
            if got != Some(n - 1) {
                return Err(GgufError::Split {
                    path: file.path().to_path_buf(),
                    reason: format!("expected split.no {} (0-based), found {got:?}", n - 1),
                });
            }
            shards.push(file);
        }
        let model = Self::from_shards(shards)?;
        let expected = model.shards[0]
            .get(KEY_SPLIT_TENSORS_COUNT)
            .and_then(Value::as_u64);
        if let Some(expected) = expected
            && expected != model.tensors.len() as u64
        {
            return Err(split_err(format!(
                "split.tensors.count is {expected} but the shards hold {} tensors",
                model.tensors.len()
            )));
        }
        Ok(model)
    }

    /// A model of one file, already opened or parsed from bytes; split
    /// keys in it are not followed.
    pub fn from_file(file: GgufFile) -> GgufModel {
        // The reader refuses duplicate names, so the index is complete.
        let index = file
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        GgufModel {
            tensors: file.tensors.clone(),
            shards: vec![file],
            index,
        }
    }

    /// A model of every shard of a split model, in order (shard 1 first),
    /// already opened or parsed from bytes.
    pub fn from_shards(shards: Vec<GgufFile>) -> Result<GgufModel, GgufError> {
        let mut tensors = Vec::new();
        let mut index = HashMap::new();
        for (s, file) in shards.iter().enumerate() {
            for t in &file.tensors {
                if index.insert(t.name.clone(), tensors.len()).is_some() {
                    return Err(GgufError::Split {
                        path: file.path().to_path_buf(),
                        reason: format!("tensor `{}` appears in more than one shard", t.name),
                    });
                }
                tensors.push(TensorInfo {
                    shard: s,
                    ..t.clone()
                });
            }
        }
        Ok(GgufModel {
            shards,
            tensors,
            index,
        })
    }

    /// Path of the first shard (the one holding the metadata).
    pub fn path(&self) -> &Path {
        self.shards[0].path()
    }

    /// The shards in order (one for an unsplit model).
    pub fn shards(&self) -> &[GgufFile] {
        &self.shards
    }

    /// The first shard, which carries the model's metadata.
    pub fn first(&self) -> &GgufFile {
        &self.shards[0]
    }

    /// Metadata of the model (from the first shard), in file order.
    pub fn metadata(&self) -> &IndexMap<String, Value> {
        &self.shards[0].metadata
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.shards[0].get(key)
    }

    /// Every tensor of every shard, in order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of a tensor.
    pub fn tensor_data(&self, info: &TensorInfo) -> Option<&[u8]> {
        self.shards.get(info.shard)?.tensor_data(info)
    }

    /// Total bytes over all shards.
    pub fn file_size(&self) -> u64 {
        self.shards.iter().map(GgufFile::file_size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgmlType, GgufWriter};

    #[test]
    fn shard_names_parse() {
        let p = Path::new("/m/model-q4-00002-of-00003.gguf");
        assert_eq!(parse_split_name(p), Some(("model-q4".into(), 2, 3)));
        assert_eq!(parse_split_name(Path::new("model.gguf")), None);
        assert_eq!(parse_split_name(Path::new("m-00004-of-00003.gguf")), None);
        assert_eq!(
            split_path(p, "model-q4", 1, 3),
            PathBuf::from("/m/model-q4-00001-of-00003.gguf")
        );
    }

    fn write_shards(dir: &Path, count: u16, tensors_count: i32) -> PathBuf {
        for no in 0..count {
            let mut w = GgufWriter::new();
            if no == 0 {
                w.metadata("general.architecture", "llama");
            }
            w.metadata(KEY_SPLIT_NO, no)
                .metadata(KEY_SPLIT_COUNT, count)
                .metadata(KEY_SPLIT_TENSORS_COUNT, tensors_count);
            w.tensor(format!("t{no}"), GgmlType::F32, &[4], vec![0; 16])
                .unwrap();
            w.write(split_path(
                &dir.join("x"),
                "m",
                u64::from(no) + 1,
                u64::from(count),
            ))
            .unwrap();
        }
        split_path(&dir.join("x"), "m", 2, u64::from(count))
    }

    #[test]
    fn a_file_parsed_from_bytes_is_a_model() {
        let mut w = GgufWriter::new();
        w.metadata("general.architecture", "llama")
            .metadata(KEY_SPLIT_COUNT, 3u16);
        w.tensor("a", GgmlType::F32, &[4], vec![0; 16]).unwrap();
        w.tensor("b", GgmlType::F32, &[8], vec![0; 32]).unwrap();
        let file = GgufFile::from_bytes("mem.gguf", w.to_bytes()).unwrap();
        let m = GgufModel::from_file(file);
        assert_eq!(m.shards().len(), 1);
        assert_eq!(m.tensor("b").unwrap().n_bytes, 32);
        assert_eq!(m.tensors().len(), 2);
        assert_eq!(m.path(), Path::new("mem.gguf"));
    }

    #[test]
    fn split_models_open_as_one_from_any_shard() {
        let dir = tempfile::tempdir().unwrap();
        let second = write_shards(dir.path(), 3, 3);
        let m = GgufModel::open(&second).unwrap();
        assert_eq!(m.shards().len(), 3);
        assert_eq!(m.tensors().len(), 3);
        assert_eq!(m.tensor("t2").unwrap().shard, 2);
        assert_eq!(
            m.get("general.architecture").unwrap().as_str(),
            Some("llama")
        );
        assert!(m.path().ends_with("m-00001-of-00003.gguf"));
    }

    #[test]
    fn missing_shards_and_wrong_counts_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let second = write_shards(dir.path(), 3, 5);
        let err = GgufModel::open(&second).unwrap_err().to_string();
        assert!(err.contains("split.tensors.count is 5"), "{err}");
        std::fs::remove_file(dir.path().join("m-00003-of-00003.gguf")).unwrap();
        let err = GgufModel::open(&second).unwrap_err().to_string();
        assert!(err.contains("m-00003-of-00003.gguf"), "{err}");
    }
}
