//! The embeddings view's data: the whole vocabulary's layout, neighbours,
//! clusters, properties, under-trained candidates and analogies.
//!
//! This is the largest section of a page (49,152 tokens × 10 neighbours for
//! the demo model), so its big arrays are quantized (coordinates to 11 or 10
//! bits, norms to u16, similarities and the under-trained indicator to u8,
//! neighbour ids replaced by their rank among the ids most often listed),
//! laid out in byte planes and compressed with raw deflate ([`Deflated`]),
//! which the page undoes with the browser's own
//! `DecompressionStream('deflate-raw')`. The encoding is documented in
//! `docs/report.md`. The section derives `Deserialize` too: it crosses the
//! pipe from the engine worker.

use serde::{Deserialize, Serialize};

use super::DType;
use crate::analysis::embeddings::MatrixAnalysis;
use crate::analysis::embeddings::analogies::AnalogyResult;
use crate::analysis::embeddings::matrix::Matrix;
use crate::analysis::embeddings::tokens::{SCRIPTS, Vocabulary};
use crate::analysis::embeddings::undertrained::{CONFIRM_BELOW, Indicator, Undertrained};

/// A typed array, raw-deflated, then written in [`base85`]:
/// `{"dtype": "u16", "len": n, "deflate": "…"}`. Multi-byte values are
/// laid out in byte planes before deflate: every value's low byte, then
/// every value's next byte, and so on (little-endian within a value once
/// reassembled). A plane of high bytes is mostly small numbers, which
/// deflate packs far better than interleaved bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deflated {
    pub dtype: DType,
    pub len: usize,
    pub deflate: String,
}

impl Deflated {
    fn from_bytes(dtype: DType, len: usize, bytes: &[u8]) -> Deflated {
        let packed = miniz_oxide::deflate::compress_to_vec(bytes, 9);
        Deflated {
            dtype,
            len,
            deflate: base85::encode(&packed),
        }
    }

    /// `width`-byte little-endian values as byte planes.
    fn planes(dtype: DType, v: &[u32], width: usize) -> Deflated {
        let mut b = Vec::with_capacity(v.len() * width);
        for plane in 0..width {
            b.extend(v.iter().map(|&x| (x >> (8 * plane)) as u8));
        }
        Deflated::from_bytes(dtype, v.len(), &b)
    }

    pub fn u8(v: &[u8]) -> Deflated {
        Deflated::from_bytes(DType::U8, v.len(), v)
    }

    pub fn u16(v: &[u16]) -> Deflated {
        let w: Vec<u32> = v.iter().map(|&x| u32::from(x)).collect();
        Deflated::planes(DType::U16, &w, 2)
    }

    pub fn u32(v: &[u32]) -> Deflated {
        Deflated::planes(DType::U32, v, 4)
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

    /// The bytes before compression (still in byte planes).
    pub fn inflate(&self) -> Vec<u8> {
        let raw = base85::decode(&self.deflate).unwrap_or_default();
        miniz_oxide::inflate::decompress_to_vec(&raw).unwrap_or_default()
    }

    /// The values, whatever their width (empty when the data is damaged).
    pub fn values(&self) -> Vec<u32> {
        let b = self.inflate();
        let width = match self.dtype {
            DType::U8 => 1,
            DType::U16 => 2,
            DType::U32 => 4,
            _ => return Vec::new(),
        };
        if b.len() < self.len * width {
            return Vec::new();
        }
        (0..self.len)
            .map(|i| {
                (0..width).fold(0u32, |v, plane| {
                    v | u32::from(b[plane * self.len + i]) << (8 * plane)
                })
            })
            .collect()
    }
}

/// Bytes as text in a JSON string inside the page's `<script>` block, 4
/// bytes to 5 characters (base64 takes 3 to 4: a sixteenth less text).
/// Each 4-byte group, read big-endian, is written as 5 base-85 digits, most
/// significant first, in [`base85::ALPHABET`] (printable ASCII without
/// `"`, `\`, `'`, `<`, `>`, `&`, space, `` ` ``, `}` and `~`, so nothing needs
/// escaping);
/// a last group of 1–3 bytes is padded with zeros and written as its first
/// 2–4 digits (the decoder pads it with the last digit and keeps as many
/// bytes), as Ascii85 does.
pub mod base85 {
    pub const ALPHABET: &[u8; 85] =
        b"!#$%()*+,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|";

    pub fn encode(b: &[u8]) -> String {
        let mut out = Vec::with_capacity(b.len().div_ceil(4) * 5);
        for chunk in b.chunks(4) {
            let mut g = [0u8; 4];
            g[..chunk.len()].copy_from_slice(chunk);
            let mut v = u32::from_be_bytes(g);
            let mut digits = [0u8; 5];
            for d in digits.iter_mut().rev() {
                *d = ALPHABET[(v % 85) as usize];
                v /= 85;
            }
            out.extend_from_slice(&digits[..chunk.len() + 1]);
        }
        out.into_iter().map(char::from).collect()
    }

    /// `None` for a character outside the alphabet or a lone last digit.
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let mut index = [u8::MAX; 128];
        for (i, &c) in ALPHABET.iter().enumerate() {
            index[c as usize] = i as u8;
        }
        let s = s.as_bytes();
        let mut out = Vec::with_capacity(s.len() / 5 * 4 + 4);
        for chunk in s.chunks(5) {
            if chunk.len() < 2 {
                return None;
            }
            let mut v: u64 = 0;
            for k in 0..5 {
                let d = match chunk.get(k) {
                    Some(&c) => *index.get(c as usize)?,
                    None => 84,
                };
                if d == u8::MAX {
                    return None;
                }
                v = v * 85 + u64::from(d);
            }
            let v = u32::try_from(v).ok()?;
            out.extend_from_slice(&v.to_be_bytes()[..chunk.len() - 1]);
        }
        Some(out)
    }
}

/// Values quantized linearly to `bits` bits between `min` and `max`
/// (`v = min + q / (2^bits − 1) · (max − min)`), u8 up to 8 bits, else u16.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantized {
    pub min: f32,
    pub max: f32,
    #[serde(default = "sixteen")]
    pub bits: u8,
    pub q: Deflated,
}

fn sixteen() -> u8 {
    16
}

impl Quantized {
    pub fn new(values: &[f32]) -> Quantized {
        Quantized::with_bits(values, 16)
    }

    pub fn with_bits(values: &[f32], bits: u8) -> Quantized {
        let bits = bits.clamp(1, 16);
        let top = f32::from(((1u32 << bits) - 1) as u16);
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let min = finite.clone().fold(f32::INFINITY, f32::min);
        let max = finite.fold(f32::NEG_INFINITY, f32::max);
        let (min, max) = if min <= max { (min, max) } else { (0.0, 0.0) };
        let span = (max - min).max(f32::MIN_POSITIVE);
        let q: Vec<u16> = values
            .iter()
            .map(|&v| {
                let v = if v.is_finite() { v } else { min };
                (((v - min) / span) * top).round().clamp(0.0, top) as u16
            })
            .collect();
        let q = if bits <= 8 {
            Deflated::u8(&q.iter().map(|&x| x as u8).collect::<Vec<_>>())
        } else {
            Deflated::u16(&q)
        };
        Quantized { min, max, bits, q }
    }

    /// The values back (to within a quantization step).
    pub fn dequantize(&self) -> Vec<f32> {
        let top = ((1u32 << self.bits.clamp(1, 16)) - 1) as f32;
        self.q
            .values()
            .into_iter()
            .map(|q| self.min + q as f32 / top * (self.max - self.min))
            .collect()
    }
}

/// Bits per coordinate of the PCA and UMAP layouts: 2,048 steps across an
/// axis (about a pixel at 2× zoom of a full-screen cloud) for the PCA
/// layout, 1,024 for UMAP's (its points spread over the whole range, so
/// every bit costs almost a bit on the page).
const PCA_BITS: u8 = 11;
const UMAP_BITS: u8 = 10;
/// Row norms size and colour the points, and the tooltip shows them to
/// 1/4,095 of their range.
const NORM_BITS: u8 = 12;

fn axes(m: &Matrix, bits: u8) -> Vec<Quantized> {
    (0..m.dim)
        .map(|j| {
            let axis: Vec<f32> = (0..m.n_rows).map(|i| m.row(i)[j]).collect();
            Quantized::with_bits(&axis, bits)
        })
        .collect()
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
    /// The same for the UMAP layouts, when they were made.
    #[serde(default)]
    pub umap3: Option<f32>,
    #[serde(default)]
    pub umap2: Option<f32>,
    /// Tokens averaged over.
    pub sample: usize,
}

/// UMAP of the neighbour graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UmapSection {
    /// `n` values per axis, each axis quantized on its own range.
    pub coords3: Vec<Quantized>,
    pub coords2: Vec<Quantized>,
    /// SGD epochs it ran.
    pub epochs: usize,
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
    /// `n × k` neighbours, best first, as one code byte each, by reference
    /// to earlier rows ([`super::neighbour_code`]); a `0` takes the next
    /// entry of `neighbour_escapes`.
    pub neighbours: Deflated,
    /// The neighbours no reference finds, each as its rank in
    /// `neighbour_ids` (ids sorted by how often they are listed, most
    /// first: a few hub tokens are listed thousands of times, so small
    /// ranks dominate and their high bytes deflate to little).
    pub neighbour_escapes: Deflated,
    /// Rank → token id, for every id listed at least once.
    pub neighbour_ids: Deflated,
    /// `n × k` cosine similarities as u8 `q` (`s = q / 255 · 2 − 1`), each
    /// row's first as is and the others as the drop from the previous `q`.
    pub sims: Deflated,
    /// PCA coordinates, one array of `n` per axis (3), each axis quantized
    /// on its own range; the first two are the 2D layout.
    pub coords: Vec<Quantized>,
    /// Share of the variance each of the 3 components explains.
    pub explained: Vec<f32>,
    pub quality: Quality,
    #[serde(default)]
    pub umap: Option<UmapSection>,
    pub norms: Quantized,
    /// Cluster of every token (u8 when ≤ 256 clusters, else u16).
    pub cluster: Deflated,
    pub clusters: Vec<ClusterInfo>,
}

/// Neighbour ids as ranks of a table of the ids listed, most listed first
/// (ties by id): `(ranks, table)`.
pub fn rank_ids(ids: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut count: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    for &i in ids {
        *count.entry(i).or_default() += 1;
    }
    let mut table: Vec<u32> = count.keys().copied().collect();
    table.sort_unstable_by(|a, b| count[b].cmp(&count[a]).then(a.cmp(b)));
    let rank: std::collections::HashMap<u32, u32> = table
        .iter()
        .enumerate()
        .map(|(r, &i)| (i, r as u32))
        .collect();
    (ids.iter().map(|i| rank[i]).collect(), table)
}

impl MatrixSection {
    pub fn new(a: &MatrixAnalysis, label: &str) -> MatrixSection {
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
        let (ranks, table) = rank_ids(&a.neighbours.ids);
        let rank: std::collections::HashMap<u32, u32> =
            a.neighbours.ids.iter().copied().zip(ranks).collect();
        let (codes, escapes) = super::neighbour_code::encode(&a.neighbours.ids, k, |x| {
            rank.get(&x).copied().unwrap_or(0)
        });
        MatrixSection {
            name: a.name.clone(),
            label: label.to_owned(),
            method: a.method.name().to_owned(),
            k: a.neighbours.k,
            recall: a.recall.0,
            recall_sample: a.recall.1,
            neighbours: Deflated::u8(&codes),
            neighbour_escapes: Deflated::ids(&escapes),
            neighbour_ids: Deflated::ids(&table),
            sims: Deflated::u8(&sims),
            coords: axes(&a.coords, PCA_BITS),
            explained: a.explained.clone(),
            quality: Quality {
                pca3: a.quality[0],
                pca2: a.quality[1],
                umap3: a.umap.as_ref().map(|u| u.quality[0]),
                umap2: a.umap.as_ref().map(|u| u.quality[1]),
                sample: a.quality_sample,
            },
            umap: a.umap.as_ref().map(|u| UmapSection {
                coords3: axes(&u.three, UMAP_BITS),
                coords2: axes(&u.two, UMAP_BITS),
                epochs: u.epochs,
            }),
            norms: Quantized::with_bits(&a.norms, NORM_BITS),
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

impl MatrixSection {
    /// The `n × k` neighbour ids, decoded (empty when the data is damaged).
    pub fn neighbour_ids(&self) -> Vec<u32> {
        let codes: Vec<u8> = self.neighbours.values().iter().map(|&c| c as u8).collect();
        super::neighbour_code::decode(
            &codes,
            &self.neighbour_escapes.values(),
            &self.neighbour_ids.values(),
            self.k,
        )
        .unwrap_or_default()
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
                values: Quantized::with_bits(&under.values, 8),
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
        // Byte planes: the low bytes, then the high bytes.
        assert_eq!(d.inflate(), [1, 2, 255, 0, 0, 255]);
        assert_eq!(d.values(), [1, 2, 65535]);
        let big = Deflated::ids(&[70000, 3]);
        assert_eq!(big.dtype, DType::U32);
        assert_eq!(big.values(), [70000, 3]);
        let q = Quantized::new(&[-1.0, 0.0, 3.0]);
        assert_eq!((q.min, q.max), (-1.0, 3.0));
        assert_eq!(q.q.values(), [0, 16384, 65535]);
        let q = Quantized::with_bits(&[-1.0, 0.0, 3.0], 10);
        assert_eq!(q.q.values(), [0, 256, 1023]);
        assert_eq!(q.dequantize()[2], 3.0);
        let q = Quantized::with_bits(&[0.0, 1.0], 8);
        assert_eq!(q.q.dtype, DType::U8);
        assert_eq!(q.q.values(), [0, 255]);
    }

    #[test]
    fn base85_round_trips_every_tail_length() {
        for n in 0..12usize {
            let b: Vec<u8> = (0..n).map(|i| (i * 97 + 255) as u8).collect();
            let s = base85::encode(&b);
            assert_eq!(s.len(), n / 4 * 5 + if n % 4 > 0 { n % 4 + 1 } else { 0 });
            assert!(!s.contains(['"', '\\', '<', '>', '&', '\'']), "{s}");
            assert_eq!(base85::decode(&s).as_deref(), Some(&b[..]), "{n} bytes");
        }
        assert_eq!(base85::encode(&[255; 4]), "z;]0!");
        assert_eq!(base85::decode("\"bad"), None);
    }

    #[test]
    fn neighbours_are_ranked_by_how_often_they_are_listed() {
        let ids = [5, 9, 5, 7, 5, 9];
        let (ranks, table) = rank_ids(&ids);
        assert_eq!(table, [5, 9, 7]);
        assert_eq!(ranks, [0, 1, 0, 2, 0, 1]);
        let back: Vec<u32> = ranks.iter().map(|&r| table[r as usize]).collect();
        assert_eq!(back, ids);
    }
}
