//! The importance matrix from ggviz's own capture, computed the way
//! llama.cpp's `llama-imatrix` does (`tools/imatrix/imatrix.cpp`,
//! `IMatrixCollector::collect_imatrix`): for every matrix product whose
//! weight is a `blk.*` tensor and whose activations span at least 16 tokens,
//! the sum over tokens of each input column's squared activation, and the
//! number of tokens. It is written in llama.cpp's GGUF imatrix format
//! (`general.type` = `imatrix`, tensors `<weight>.in_sum2` and
//! `<weight>.counts`), so `llama-quantize --imatrix` reads it too, and the
//! quantizer receives `in_sum2 / counts` per column, as llama-quantize
//! computes it when it loads such a file.
//!
//! A mixture of experts multiplies by its experts' weights indirectly
//! (`GGML_OP_MUL_MAT_ID`): as llama-imatrix does, every such product is
//! collected whatever its size, each token's activations go to the experts
//! the router chose for it, and each expert has its own sums and count
//! (`in_sum2` of `[cols, n_expert]`, `counts` of `[1, n_expert]`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::ffi::{EvalObserver, ObservedTensor};
use crate::engine::quantize::ImatrixValues;
use crate::engine::{EngineError, Session, TokenId};
use crate::gguf::{GgmlType, GgufError, GgufModel, GgufWriter, StringArray, Value};

/// llama-imatrix skips products over fewer tokens (its `ask` test on
/// `src1->ne[1]`): single-token decodes say little about a column.
pub const MIN_TOKENS: i64 = 16;

/// The calibration text bundled with ggviz (see `data/eval/README.md`).
pub const CALIBRATION_TEXT: &str = include_str!("../../../data/eval/calibration.txt");

/// One weight's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImatrixEntry {
    /// The weight's name (`blk.0.ffn_down.weight`).
    pub name: String,
    /// Per matrix (one, or one per expert) and input column, the sum over
    /// tokens of the squared activation, matrix-major.
    pub in_sum2: Vec<f32>,
    /// Tokens summed, per matrix.
    pub counts: Vec<f32>,
}

impl ImatrixEntry {
    /// Input columns of each matrix.
    pub fn cols(&self) -> usize {
        self.in_sum2.len() / self.counts.len().max(1)
    }
}

/// An importance matrix.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Imatrix {
    /// Names of the calibration texts.
    pub datasets: Vec<String>,
    /// Chunks decoded.
    pub chunk_count: u32,
    /// Tokens per chunk.
    pub chunk_size: u32,
    /// One entry per weight, by name.
    pub entries: Vec<ImatrixEntry>,
}

/// Collects the statistics during decodes (an [`EvalObserver`]).
#[derive(Debug, Default)]
pub struct ImatrixCollector {
    /// Per weight: sums (matrix-major) and counts per matrix.
    sums: BTreeMap<String, (Vec<f64>, Vec<f64>)>,
    scratch: Vec<f32>,
    ids: Vec<i32>,
    /// Products that were wanted but could not be read (not dense f32, or a
    /// batched weight), by weight name.
    pub skipped: BTreeMap<String, String>,
}

impl EvalObserver for ImatrixCollector {
    fn wants(&mut self, _: &str) -> bool {
        false
    }

    fn wants_node(&mut self, node: &ObservedTensor<'_>) -> bool {
        let (Some(w), Some(x)) = (node.source(0), node.source(1)) else {
            return false;
        };
        // llama-imatrix takes every indirect product (each expert sees
        // few tokens) and direct ones over at least 16 tokens.
        w.name().starts_with("blk.")
            && (node.is_mul_mat_id() || (node.is_mul_mat() && x.ne()[1] >= MIN_TOKENS))
    }

    fn observe(&mut self, node: &mut ObservedTensor<'_>) -> bool {
        let (Some(w), Some(x)) = (node.source(0), node.source(1)) else {
            return true;
        };
        let name = w.name().to_string();
        if node.is_mul_mat_id() {
            if let Err(why) = self.observe_experts(node) {
                self.skipped.insert(name, why);
            }
            return true;
        }
        let cols = w.ne()[0];
        if w.ne()[2] != 1 || w.ne()[3] != 1 || x.ne()[0] != cols || !x.is_dense_f32() {
            self.skipped.insert(
                name,
                format!("weight ne {:?}, activations ne {:?}", w.ne(), x.ne()),
            );
            return true;
        }
        let Ok(cols) = usize::try_from(cols) else {
            return true;
        };
        self.scratch.resize(x.n_elements(), 0.0);
        if let Err(e) = x.read(&mut self.scratch) {
            self.skipped.insert(name, e.to_string());
            return true;
        }
        let entry = self
            .sums
            .entry(name)
            .or_insert_with(|| (vec![0.0; cols], vec![0.0]));
        for row in self.scratch.chunks_exact(cols) {
            for (s, &v) in entry.0.iter_mut().zip(row) {
                *s += f64::from(v) * f64::from(v);
            }
            entry.1[0] += 1.0;
        }
        true
    }
}

impl ImatrixCollector {
    /// One indirect product: for each token and each expert the router
    /// chose for it, that expert's sums take the token's activation row
    /// (row `k % ne1` of the token's rows: one shared row for the up and
    /// gate products, one per chosen expert for the down product).
    fn observe_experts(&mut self, node: &ObservedTensor<'_>) -> Result<(), String> {
        let (Some(w), Some(x), Some(ids)) = (node.source(0), node.source(1), node.source(2)) else {
            return Err("an indirect product without its three operands".into());
        };
        let [cols, _, n_expert, _] = w.ne();
        let [xcols, per_token, n_tokens, _] = x.ne();
        let [n_used, id_tokens, _, _] = ids.ne();
        let shape = || {
            format!(
                "weights ne {:?}, activations ne {:?}, ids ne {:?}",
                w.ne(),
                x.ne(),
                ids.ne()
            )
        };
        let as_usize = |v: i64| usize::try_from(v).ok().filter(|&v| v > 0);
        let (Some(cols), Some(n_expert), Some(per_token), Some(n_tokens), Some(n_used)) = (
            as_usize(cols),
            as_usize(n_expert),
            as_usize(per_token),
            as_usize(n_tokens),
            as_usize(n_used),
        ) else {
            return Err(shape());
        };
        if xcols != cols as i64 || id_tokens != n_tokens as i64 || !x.is_dense_f32() {
            return Err(shape());
        }
        ids.read_i32_2d(&mut self.ids).map_err(|e| e.to_string())?;
        self.scratch.resize(x.n_elements(), 0.0);
        x.read(&mut self.scratch).map_err(|e| e.to_string())?;
        let entry = self
            .sums
            .entry(w.name().to_string())
            .or_insert_with(|| (vec![0.0; cols * n_expert], vec![0.0; n_expert]));
        if entry.1.len() != n_expert || entry.0.len() != cols * n_expert {
            return Err(shape());
        }
        for t in 0..n_tokens {
            for k in 0..n_used {
                let e = self.ids[t * n_used + k];
                let Some(e) = usize::try_from(e).ok().filter(|&e| e < n_expert) else {
                    return Err(format!("expert id {e} of {n_expert}"));
                };
                let at = (t * per_token + k % per_token) * cols;
                let row = &self.scratch[at..at + cols];
                for (s, &v) in entry.0[e * cols..(e + 1) * cols].iter_mut().zip(row) {
                    *s += f64::from(v) * f64::from(v);
                }
                entry.1[e] += 1.0;
            }
        }
        Ok(())
    }
}

impl ImatrixCollector {
    /// The matrix collected so far.
    pub fn finish(self, datasets: Vec<String>, chunk_count: u32, chunk_size: u32) -> Imatrix {
        Imatrix {
            datasets,
            chunk_count,
            chunk_size,
            entries: self
                .sums
                .into_iter()
                .map(|(name, (sums, counts))| ImatrixEntry {
                    name,
                    in_sum2: sums.into_iter().map(|s| s as f32).collect(),
                    counts: counts.into_iter().map(|c| c as f32).collect(),
                })
                .collect(),
        }
    }
}

/// Options of [`compute`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImatrixOptions {
    /// Tokens per chunk (llama-imatrix's `n_ctx`, 512 by default).
    pub chunk_size: usize,
    /// At most this many chunks (`None`: the whole text).
    pub max_chunks: Option<usize>,
    /// The dataset's name as recorded in the file.
    pub dataset: String,
}

impl Default for ImatrixOptions {
    fn default() -> Self {
        ImatrixOptions {
            chunk_size: 512,
            max_chunks: None,
            dataset: "ggviz calibration (data/eval/calibration.txt)".into(),
        }
    }
}

/// Cuts `ids` into chunks of `size` tokens, each starting with `bos` where
/// the model has one (replacing the chunk's first token, as llama-imatrix
/// and llama-perplexity do). A last, shorter chunk is dropped.
pub fn chunks(ids: &[TokenId], size: usize, bos: Option<TokenId>) -> Vec<Vec<TokenId>> {
    if size == 0 {
        return Vec::new();
    }
    ids.chunks_exact(size)
        .map(|c| {
            let mut c = c.to_vec();
            if let (Some(b), Some(first)) = (bos, c.first_mut()) {
                *first = b;
            }
            c
        })
        .collect()
}

/// Computes the importance matrix of `session`'s model over `text`.
pub fn compute(
    session: &mut Session,
    text: &str,
    options: &ImatrixOptions,
) -> Result<Imatrix, EngineError> {
    let ids: Vec<TokenId> = session.tokenize(text)?.into_iter().map(|t| t.id).collect();
    let mut plan = chunks(&ids, options.chunk_size, session.chunk_bos());
    if let Some(max) = options.max_chunks {
        plan.truncate(max);
    }
    if plan.is_empty() {
        return Err(EngineError::InvalidRequest(format!(
            "the calibration text has {} tokens, fewer than one chunk of {}",
            ids.len(),
            options.chunk_size
        )));
    }
    let mut collector = ImatrixCollector::default();
    for chunk in &plan {
        session.observe_ids(chunk, &mut collector)?;
    }
    for (name, why) in &collector.skipped {
        tracing::warn!("importance matrix: {name} skipped ({why})");
    }
    let n = u32::try_from(plan.len()).unwrap_or(u32::MAX);
    let size = u32::try_from(options.chunk_size).unwrap_or(u32::MAX);
    Ok(collector.finish(vec![options.dataset.clone()], n, size))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Imatrix {
    /// What the quantizer takes: `in_sum2 / count` per column of each
    /// matrix (each expert), 1 where no token reached it (as llama-quantize
    /// does for partial data).
    pub fn values(&self) -> ImatrixValues {
        self.entries
            .iter()
            .map(|e| {
                let cols = e.cols().max(1);
                let v = e
                    .in_sum2
                    .chunks(cols)
                    .zip(&e.counts)
                    .flat_map(|(sums, &count)| {
                        sums.iter()
                            .map(move |s| if count > 0.0 { s / count } else { 1.0 })
                    })
                    .collect();
                (e.name.clone(), v)
            })
            .collect()
    }

    /// The file in llama.cpp's GGUF imatrix format.
    pub fn writer(&self) -> Result<GgufWriter, GgufError> {
        let mut w = GgufWriter::new();
        w.metadata("general.type", "imatrix");
        let datasets: StringArray = self.datasets.iter().map(String::as_str).collect();
        w.metadata(
            "imatrix.datasets",
            Value::Array(crate::gguf::Array::String(datasets)),
        );
        w.metadata("imatrix.chunk_count", Value::U32(self.chunk_count));
        w.metadata("imatrix.chunk_size", Value::U32(self.chunk_size));
        for e in &self.entries {
            let (cols, n_mat) = (e.cols() as u64, e.counts.len() as u64);
            w.tensor(
                format!("{}.in_sum2", e.name),
                GgmlType::F32,
                &[cols, n_mat],
                f32_bytes(&e.in_sum2),
            )?;
            w.tensor(
                format!("{}.counts", e.name),
                GgmlType::F32,
                &[1, n_mat],
                f32_bytes(&e.counts),
            )?;
        }
        Ok(w)
    }

    /// Writes the GGUF imatrix file.
    pub fn write(&self, path: &Path) -> Result<(), GgufError> {
        self.writer()?.write(path)
    }

    /// Reads a GGUF imatrix file (one matrix per weight, or one per expert).
    pub fn read(path: &Path) -> Result<Imatrix, GgufError> {
        let model = GgufModel::open(path)?;
        let bad = |field: String, problem: &str| GgufError::Invalid {
            path: path.to_path_buf(),
            field,
            problem: problem.to_string(),
        };
        if model.get("general.type").and_then(Value::as_str) != Some("imatrix") {
            return Err(bad("general.type".into(), "not `imatrix`"));
        }
        let u32_of = |key: &str| {
            model
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad(key.into(), "missing or not an unsigned integer"))
        };
        let datasets = model
            .get("imatrix.datasets")
            .and_then(Value::as_array)
            .and_then(|a| a.as_strings())
            .map(|s| s.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default();
        let f32s = |name: &str| -> Result<Vec<f32>, GgufError> {
            let info = model
                .tensor(name)
                .ok_or_else(|| bad(name.into(), "tensor missing"))?;
            if info.ggml_type != GgmlType::F32 {
                return Err(bad(name.into(), "not F32"));
            }
            let data = model
                .tensor_data(info)
                .ok_or_else(|| bad(name.into(), "data outside the file"))?;
            Ok(data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let mut entries = Vec::new();
        for t in model.tensors() {
            let Some(weight) = t.name.strip_suffix(".in_sum2") else {
                continue;
            };
            let n_mat = t.dims.get(1).copied().unwrap_or(1);
            let counts = f32s(&format!("{weight}.counts"))?;
            if counts.len() as u64 != n_mat || n_mat == 0 {
                return Err(bad(
                    format!("{weight}.counts"),
                    &format!("{} counts for {n_mat} matrices", counts.len()),
                ));
            }
            entries.push(ImatrixEntry {
                name: weight.to_string(),
                in_sum2: f32s(&t.name)?,
                counts,
            });
        }
        Ok(Imatrix {
            datasets,
            chunk_count: u32_of("imatrix.chunk_count")?,
            chunk_size: u32_of("imatrix.chunk_size")?,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_start_with_bos_and_drop_the_tail() {
        let ids: Vec<TokenId> = (10..21).collect();
        let c = chunks(&ids, 4, Some(1));
        assert_eq!(c, vec![vec![1, 11, 12, 13], vec![1, 15, 16, 17]]);
        assert_eq!(chunks(&ids, 4, None)[0], vec![10, 11, 12, 13]);
        assert!(chunks(&ids, 0, None).is_empty());
    }

    #[test]
    fn values_are_means_and_the_file_round_trips() {
        let m = Imatrix {
            datasets: vec!["test".into()],
            chunk_count: 2,
            chunk_size: 16,
            entries: vec![
                ImatrixEntry {
                    name: "blk.0.attn_q.weight".into(),
                    in_sum2: vec![4.0, 8.0],
                    counts: vec![4.0],
                },
                ImatrixEntry {
                    name: "blk.0.ffn_up.weight".into(),
                    in_sum2: vec![0.0, 0.0],
                    counts: vec![0.0],
                },
                ImatrixEntry {
                    name: "blk.0.ffn_up_exps.weight".into(),
                    in_sum2: vec![2.0, 4.0, 0.0, 0.0, 9.0, 3.0],
                    counts: vec![2.0, 0.0, 3.0],
                },
            ],
        };
        let v = m.values();
        assert_eq!(v[0], ("blk.0.attn_q.weight".to_string(), vec![1.0, 2.0]));
        assert_eq!(v[1].1, vec![1.0, 1.0]);
        // Per expert: its own count; an expert no token chose gets 1.
        assert_eq!(v[2].1, vec![1.0, 2.0, 1.0, 1.0, 3.0, 1.0]);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("imatrix.gguf");
        m.write(&path).expect("written");
        assert_eq!(Imatrix::read(&path).expect("read back"), m);
    }
}
