//! The embeddings view's data: the whole vocabulary's layout, neighbours,
//! clusters, properties, under-trained candidates and analogies.
//!
//! This is the largest section of a page (49,152 tokens × 10 neighbours for
//! the demo model), so its big arrays are quantized (coordinates and norms
//! to u16, similarities to u8, neighbour ids u16 when the vocabulary fits)
//! and then compressed with raw deflate ([`Deflated`]), which the page
//! undoes with the browser's own `DecompressionStream('deflate-raw')`. The
//! encoding is documented in `docs/report.md`. The section derives
//! `Deserialize` too: it crosses the pipe from the engine worker.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::DType;
use crate::analysis::embeddings::MatrixAnalysis;
use crate::analysis::embeddings::analogies::AnalogyResult;
use crate::analysis::embeddings::matrix::Matrix;
use crate::analysis::embeddings::tokens::{SCRIPTS, Vocabulary};
use crate::analysis::embeddings::undertrained::{CONFIRM_BELOW, Indicator, Undertrained};

/// A little-endian typed array, raw-deflated, then base64:
/// `{"dtype": "u16", "len": n, "deflate": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deflated {
    pub dtype: DType,
    pub len: usize,
    pub deflate: String,
}

impl Deflated {
    fn from_bytes(dtype: DType, len: usize, bytes: &[u8]) -> Deflated {
        let packed = miniz_oxide::deflate::compress_to_vec(bytes, 6);
        Deflated {
            dtype,
            len,
            deflate: base64::engine::general_purpose::STANDARD.encode(packed),
        }
    }

    pub fn u8(v: &[u8]) -> Deflated {
        Deflated::from_bytes(DType::U8, v.len(), v)
    }

    pub fn u16(v: &[u16]) -> Deflated {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Deflated::from_bytes(DType::U16, v.len(), &b)
    }

    pub fn u32(v: &[u32]) -> Deflated {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Deflated::from_bytes(DType::U32, v.len(), &b)
    }

    /// Token ids: u16 when every id fits, else u32.
    pub fn ids(v: &[u32]) -> Deflated {
        if v.iter().all(|&x| x <= u32::from(u16::MAX)) {
            Deflated::u16(&v.iter().map(|&x| x as u16).collect::<Vec<_>>())
        } else {
            Deflated::u32(v)
        }
    }

    /// UTF-8 text (the page decodes it with `TextDecoder`), as u8.
    pub fn text(s: &str) -> Deflated {
        Deflated::u8(s.as_bytes())
    }

    /// The bytes before compression.
    pub fn inflate(&self) -> Vec<u8> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&self.deflate)
            .unwrap_or_default();
        miniz_oxide::inflate::decompress_to_vec(&raw).unwrap_or_default()
    }
}

/// Values quantized linearly to u16 between `min` and `max`
/// (`v = min + q / 65535 · (max − min)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantized {
    pub min: f32,
    pub max: f32,
    pub q: Deflated,
}

impl Quantized {
    pub fn new(values: &[f32]) -> Quantized {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let min = finite.clone().fold(f32::INFINITY, f32::min);
        let max = finite.fold(f32::NEG_INFINITY, f32::max);
        let (min, max) = if min <= max { (min, max) } else { (0.0, 0.0) };
        let span = (max - min).max(f32::MIN_POSITIVE);
        let q: Vec<u16> = values
            .iter()
            .map(|&v| {
                let v = if v.is_finite() { v } else { min };
                (((v - min) / span) * 65535.0).round().clamp(0.0, 65535.0) as u16
            })
            .collect();
        Quantized {
            min,
            max,
            q: Deflated::u16(&q),
        }
    }
}

/// One k-means group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub size: usize,
    /// Tokens nearest the centre, nearest first.
    pub central: Vec<u32>,
}

/// How faithful the layout is to the neighbours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Mean share of each token's k neighbours among its k nearest points
    /// in the 3D layout.
    pub pca3: f32,
    pub pca2: f32,
    /// Tokens averaged over.
    pub sample: usize,
}

/// One matrix (input embedding, or the separate output head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixSection {
    /// GGUF tensor name.
    pub name: String,
    pub label: String,
    /// How the neighbours were found ([`crate::analysis::embeddings::neighbours::Method::name`]).
    pub method: String,
    pub k: usize,
    /// Recall@k of `neighbours` against an exact search on
    /// `recall_sample` tokens (1 for the exact method).
    pub recall: f32,
    pub recall_sample: usize,
    /// `n × k` neighbour ids, best first.
    pub neighbours: Deflated,
    /// `n × k` cosine similarities as u8 `q` (`s = q / 255 · 2 − 1`), each
    /// row's first as is and the others as the drop from the previous `q`.
    pub sims: Deflated,
    /// PCA coordinates, `n × 3` interleaved, each axis quantized on its own
    /// range; the first two are the 2D layout.
    pub coords: [Quantized; 3],
    /// Share of the variance each of the 3 components explains.
    pub explained: Vec<f32>,
    pub quality: Quality,
    pub norms: Quantized,
    /// Cluster of every token (u8 when ≤ 256 clusters, else u16).
    pub cluster: Deflated,
    pub clusters: Vec<ClusterInfo>,
}

impl MatrixSection {
    pub fn new(a: &MatrixAnalysis, label: &str) -> MatrixSection {
        let axis = |j: usize| -> Vec<f32> {
            (0..a.coords.n_rows)
                .map(|i| a.coords.row(i).get(j).copied().unwrap_or(0.0))
                .collect()
        };
        // Each row falls from its best similarity: the first byte is the
        // quantized value, the others the step down from the previous one
        // (small numbers, which deflate packs far better).
        let k = a.neighbours.k.max(1);
        let mut sims: Vec<u8> = a
            .neighbours
            .sims
            .iter()
            .map(|&s| (((s.clamp(-1.0, 1.0) + 1.0) / 2.0) * 255.0).round() as u8)
            .collect();
        for row in sims.chunks_exact_mut(k) {
            for j in (1..row.len()).rev() {
                row[j] = row[j - 1].saturating_sub(row[j]);
            }
        }
        let cluster = if a.clusters.clusters.len() <= 256 {
            Deflated::u8(
                &a.clusters
                    .labels
                    .iter()
                    .map(|&l| l as u8)
                    .collect::<Vec<_>>(),
            )
        } else {
            Deflated::u16(&a.clusters.labels)
        };
        MatrixSection {
            name: a.name.clone(),
            label: label.to_owned(),
            method: a.method.name().to_owned(),
            k: a.neighbours.k,
            recall: a.recall.0,
            recall_sample: a.recall.1,
            neighbours: Deflated::ids(&a.neighbours.ids),
            sims: Deflated::u8(&sims),
            coords: [
                Quantized::new(&axis(0)),
                Quantized::new(&axis(1)),
                Quantized::new(&axis(2)),
            ],
            explained: a.explained.clone(),
            quality: Quality {
                pca3: a.quality[0],
                pca2: a.quality[1],
                sample: a.quality_sample,
            },
            norms: Quantized::new(&a.norms),
            cluster,
            clusters: a
                .clusters
                .clusters
                .iter()
                .map(|c| ClusterInfo {
                    size: c.size,
                    central: c.central.clone(),
                })
                .collect(),
        }
    }
}

/// An under-trained candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: u32,
    pub value: f32,
    /// The probability the model gave it when asked to repeat it; `None`
    /// until verified.
    pub probability: Option<f32>,
}

/// Under-trained tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndertrainedSection {
    pub indicator: Indicator,
    /// Every token's indicator value.
    pub values: Quantized,
    #[serde(default)]
    pub threshold: Option<f32>,
    pub candidates: Vec<Candidate>,
    /// Whether the candidates went through llama.cpp.
    pub verified: bool,
    /// Below this probability a candidate is confirmed.
    pub confirm_below: f32,
    pub notes: Vec<String>,
}

/// The reduced matrix the page answers free analogies with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalogySubset {
    /// The tokens it holds.
    pub ids: Deflated,
    pub dims: usize,
    /// `ids.len × dims` as u8: `x = (q − 128) · scale[j]`.
    pub values: Deflated,
    pub scale: Vec<f32>,
    /// What the subset is, for the page.
    pub description: String,
}

/// Bundled (or `--analogies`) results and the free-analogy subset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalogySection {
    pub results: Vec<AnalogyResult>,
    pub top1: f32,
    pub top5: f32,
    /// Quadruples whose four words are all tokens.
    pub scored: usize,
    pub subset: AnalogySubset,
}

/// The embeddings view's section of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsSection {
    pub n_vocab: usize,
    pub n_embd: usize,
    /// The output head reuses the input embedding.
    pub tied: bool,
    /// The pieces as a UTF-8 JSON array of strings (one string table).
    pub pieces: Deflated,
    /// `tokenizer.ggml.token_type` per token (1 where the file has none).
    pub types: Deflated,
    /// Index into `script_names` per token.
    pub scripts: Deflated,
    pub script_names: Vec<String>,
    /// The input embedding, then the output head when it is separate.
    pub matrices: Vec<MatrixSection>,
    pub undertrained: UndertrainedSection,
    pub analogies: AnalogySection,
}

impl EmbeddingsSection {
    /// Packs the analysis; `reduced` are the input's reduced unit rows, of
    /// which up to `subset` whole-word tokens go to the page for free
    /// analogies.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vocab: &Vocabulary,
        n_embd: usize,
        tied: bool,
        matrices: Vec<MatrixSection>,
        reduced: &Matrix,
        under: &Undertrained,
        results: &[AnalogyResult],
        subset: usize,
    ) -> EmbeddingsSection {
        let pieces = serde_json::to_string(&vocab.pieces).unwrap_or_else(|_| "[]".into());
        let (top1, top5, scored) = crate::analysis::embeddings::analogies::accuracy(results);
        EmbeddingsSection {
            n_vocab: vocab.pieces.len(),
            n_embd,
            tied,
            pieces: Deflated::text(&pieces),
            types: Deflated::u8(&vocab.types),
            scripts: Deflated::u8(&vocab.scripts),
            script_names: SCRIPTS.iter().map(|s| s.to_string()).collect(),
            matrices,
            undertrained: UndertrainedSection {
                indicator: under.indicator,
                values: Quantized::new(&under.values),
                threshold: under.threshold,
                candidates: under
                    .candidates
                    .iter()
                    .map(|&id| Candidate {
                        id,
                        value: under.values.get(id as usize).copied().unwrap_or(f32::NAN),
                        probability: None,
                    })
                    .collect(),
                verified: false,
                confirm_below: CONFIRM_BELOW,
                notes: under.notes.clone(),
            },
            analogies: AnalogySection {
                results: results.to_vec(),
                top1,
                top5,
                scored,
                subset: analogy_subset(vocab, reduced, results, subset),
            },
        }
    }

    /// Records the probabilities [`undertrained::verify`] measured, in
    /// candidate order.
    ///
    /// [`undertrained::verify`]: crate::analysis::embeddings::undertrained::verify
    pub fn set_verified(&mut self, probabilities: &[f32]) {
        for (c, &p) in self.undertrained.candidates.iter_mut().zip(probabilities) {
            c.probability = Some(p);
        }
        self.undertrained.verified = true;
    }
}

/// Whole-word tokens (a space then letters, at least three), lowest ids
/// first (the most frequent merges in a BPE vocabulary), plus every word of
/// the analogy set, in the reduced space quantized to u8 per dimension.
fn analogy_subset(
    vocab: &Vocabulary,
    reduced: &Matrix,
    results: &[AnalogyResult],
    n: usize,
) -> AnalogySubset {
    let mut ids: Vec<u32> = results.iter().filter_map(|r| r.ids).flatten().collect();
    for (i, p) in vocab.pieces.iter().enumerate() {
        if ids.len() >= n {
            break;
        }
        let word = p.strip_prefix(' ').unwrap_or("");
        if word.chars().count() >= 3 && word.chars().all(char::is_alphabetic) {
            ids.push(i as u32);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids.retain(|&i| (i as usize) < reduced.n_rows);
    let dims = reduced.dim;
    let scale: Vec<f32> = (0..dims)
        .map(|j| {
            let m = ids
                .iter()
                .map(|&i| reduced.row(i as usize)[j].abs())
                .fold(0.0f32, f32::max);
            (m / 127.0).max(f32::MIN_POSITIVE)
        })
        .collect();
    let values: Vec<u8> = ids
        .iter()
        .flat_map(|&i| {
            let row = reduced.row(i as usize);
            row.iter()
                .zip(&scale)
                .map(|(x, s)| ((x / s).round().clamp(-127.0, 127.0) + 128.0) as u8)
                .collect::<Vec<_>>()
        })
        .collect();
    AnalogySubset {
        description: format!(
            "{} whole-word tokens (a space then three or more letters, lowest ids first) \
             and the analogy set's words, in {dims} PCA dimensions of the unit rows",
            ids.len()
        ),
        ids: Deflated::ids(&ids),
        dims,
        values: Deflated::u8(&values),
        scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflated_arrays_round_trip_and_quantization_keeps_the_range() {
        let d = Deflated::ids(&[1, 2, 65535]);
        assert_eq!(d.dtype, DType::U16);
        assert_eq!(d.inflate(), [1, 0, 2, 0, 255, 255]);
        assert_eq!(Deflated::ids(&[70000]).dtype, DType::U32);
        let q = Quantized::new(&[-1.0, 0.0, 3.0]);
        assert_eq!((q.min, q.max), (-1.0, 3.0));
        let b = q.q.inflate();
        let v: Vec<u16> = b
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(v, [0, 16384, 65535]);
    }
}
