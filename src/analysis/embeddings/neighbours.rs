//! The nearest tokens of every token by cosine similarity.
//!
//! All pairs of a 49,152-token vocabulary at 576 dimensions is 1.4 TFLOP
//! once each unordered pair is counted once, and a dense vocab × vocab
//! matrix would take 9.7 GB: so every product here is chunked, and only each
//! token's best few partners are kept. Approximate search does not pay on
//! these matrices (see [`super::int8`]: inverted lists must scan half the
//! vocabulary for 95 % recall), so [`search`] computes every pair:
//!
//! - on a CPU with AVX-512 VNNI, with 8-bit products ([`super::int8`]);
//! - otherwise with ggml's `mul_mat` on the analytics device (a GPU, where
//!   the product is cheap, or the CPU backend), in blocks of query rows;
//! - tiny vocabularies: one f32 product ([`exact`]).
//!
//! The first two keep each token's [`CANDIDATES`] best partners and re-rank
//! them with the f32 rows, so the similarities shown are exact; the recall
//! of the result against an exact search is measured on a sample by the
//! caller and shown on the page.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};

use super::EmbeddingError;
use super::int8;
use super::matrix::{Matrix, dot};
use crate::engine::Device;
use crate::engine::ffi::DeviceMatrix;
use crate::gguf::GgmlType;

/// Vocabularies up to this size get one exact f32 product.
pub const EXACT_LIMIT: usize = 2048;

/// Partners per token kept by the 8-bit or device search and re-ranked with
/// the f32 rows: on the demo model 16 give a recall@10 of 0.983, 20 of
/// 0.987 (8-bit estimates, measured against an exact search).
pub const CANDIDATES: usize = 24;

/// Query rows × vocabulary values held at once by the device search.
const DEVICE_BLOCK: usize = 1 << 25;

/// Query rows per chunk of the product (the chunk is `CHUNK × n_rows` f32).
const CHUNK: usize = 256;

/// `k` neighbours per token, best first, the token itself excluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub k: usize,
    /// `n × k` token ids.
    pub ids: Vec<u32>,
    /// `n × k` cosine similarities, matching `ids`.
    pub sims: Vec<f32>,
}

impl Neighbours {
    pub fn len(&self) -> usize {
        self.ids.len() / self.k.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Token `i`'s neighbour ids.
    pub fn of(&self, i: usize) -> &[u32] {
        &self.ids[i * self.k..(i + 1) * self.k]
    }
}

/// The best `k` of a stream of (similarity, id), kept sorted, best first.
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    items: Vec<(f32, u32)>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> TopK {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, sim: f32, id: u32) {
        if self.items.len() == self.k {
            match self.items.last() {
                Some(&(worst, _)) if sim > worst => {}
                _ => return,
            }
        } else if !sim.is_finite() {
            return;
        }
        let at = self.items.partition_point(|&(s, _)| s >= sim);
        self.items.insert(at, (sim, id));
        self.items.truncate(self.k);
    }

    pub(crate) fn into_items(self) -> Vec<(f32, u32)> {
        self.items
    }

    /// The similarity a new item must beat: the worst kept once full.
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        match self.items.last() {
            Some(&(worst, _)) if self.items.len() == self.k => worst,
            _ => f32::NEG_INFINITY,
        }
    }

    /// Adds every item of `other`.
    pub(crate) fn extend(&mut self, other: TopK) {
        for (sim, id) in other.items {
            self.push(sim, id);
        }
    }
}

/// How [`search`] found the neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One f32 product of all pairs.
    Exact,
    /// All pairs with 8-bit products on the CPU, best candidates re-ranked.
    Int8,
    /// All pairs with ggml on the analytics device, re-ranked.
    Device,
}

impl Method {
    /// The name the page shows.
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Int8 => "all pairs, 8-bit products, re-ranked in f32",
            Method::Device => "all pairs on the analytics device, re-ranked in f32",
        }
    }
}

/// The `k` nearest tokens of every row of `unit` (unit rows), by the
/// fastest exact-in-effect path this machine has (see the module's
/// documentation). `device` is the analytics device; `threads` the CPU
/// threads.
pub fn search(
    unit: &Matrix,
    k: usize,
    device: Device,
    threads: usize,
) -> Result<(Neighbours, Method), EmbeddingError> {
    if unit.n_rows <= EXACT_LIMIT {
        return Ok((exact(unit, k), Method::Exact));
    }
    let kk = CANDIDATES.max(k);
    if device == Device::Cpu
        && let Some(cands) = int8::candidates(unit, kk, threads)
    {
        return Ok((rerank(unit, cands, k, threads), Method::Int8));
    }
    let cands = device_candidates(unit, kk, device, threads)?;
    Ok((rerank(unit, cands, k, threads), Method::Device))
}

/// Every row of `unit` against all rows with ggml's `mul_mat` on `device`,
/// in blocks of query rows; the best `kk` partners of each.
pub fn device_candidates(
    unit: &Matrix,
    kk: usize,
    device: Device,
    threads: usize,
) -> Result<Vec<Vec<(f32, u32)>>, EmbeddingError> {
    let fail = |e: crate::engine::EngineError| {
        EmbeddingError::Analysis(format!("the neighbour search on {device}: {e}"))
    };
    let bytes: Vec<u8> = unit.data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut m = DeviceMatrix::upload(
        device,
        "unit embedding rows",
        GgmlType::F32,
        &bytes,
        unit.dim,
        unit.n_rows,
        threads,
    )
    .map_err(fail)?;
    drop(bytes);
    let n = unit.n_rows;
    let block = (DEVICE_BLOCK / n.max(1)).clamp(1, 1024);
    let mut product = vec![0f32; block * n];
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(block) {
        let rows = block.min(n - start);
        let x = &unit.data[start * unit.dim..(start + rows) * unit.dim];
        m.product(x, &mut product[..rows * n]).map_err(fail)?;
        out.extend(scan(&product[..rows * n], n, start, kk, true, threads));
    }
    Ok(out)
}

/// The `k` best of each token's candidates by the f32 rows' dot product.
fn rerank(unit: &Matrix, cands: Vec<Vec<(f32, u32)>>, k: usize, threads: usize) -> Neighbours {
    let per = cands.len().div_ceil(threads.max(1)).max(1);
    let lists: Vec<Vec<(f32, u32)>> = std::thread::scope(|s| {
        let handles: Vec<_> = cands
            .chunks(per)
            .enumerate()
            .map(|(t, part)| {
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(r, list)| {
                            let i = t * per + r;
                            let mut top = TopK::new(k);
                            for &(_, j) in list {
                                top.push(dot(unit.row(i), unit.row(j as usize)), j);
                            }
                            top.into_items()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    pack(lists, k)
}

/// The best `k` of every row of `flat` (`rows × n` similarities of query
/// rows `start..` against all tokens), in parallel.
fn scan(
    flat: &[f32],
    n: usize,
    start: usize,
    k: usize,
    skip_self: bool,
    threads: usize,
) -> Vec<Vec<(f32, u32)>> {
    let rows = flat.len() / n.max(1);
    let per = rows.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = flat
            .chunks(per * n)
            .enumerate()
            .map(|(t, block)| {
                s.spawn(move || {
                    block
                        .chunks_exact(n)
                        .enumerate()
                        .map(|(r, sims)| {
                            let me = start + t * per + r;
                            let mut top = TopK::new(k);
                            for (j, &sim) in sims.iter().enumerate() {
                                if !(skip_self && j == me) && sim > top.threshold() {
                                    top.push(sim, j as u32);
                                }
                            }
                            top.into_items()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// For every row of `queries`, its `k` best rows of `base` by dot product,
/// `skip_self` leaving out row i for query i (queries and base the same
/// tokens). Chunked: at most `CHUNK × base.n_rows` products are held.
pub fn top_k_by_dot(
    queries: &Matrix,
    base: &Matrix,
    k: usize,
    skip_self: bool,
) -> Vec<Vec<(f32, u32)>> {
    let n = base.n_rows;
    let Ok(b) = ArrayView2::from_shape((n, base.dim), &base.data) else {
        return Vec::new();
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = Vec::with_capacity(queries.n_rows);
    let mut product = Array2::<f32>::zeros((0, 0));
    for start in (0..queries.n_rows).step_by(CHUNK) {
        let rows = CHUNK.min(queries.n_rows - start);
        let q = &queries.data[start * queries.dim..(start + rows) * queries.dim];
        let Ok(q) = ArrayView2::from_shape((rows, queries.dim), q) else {
            return Vec::new();
        };
        if product.dim() != (rows, n) {
            product = Array2::zeros((rows, n));
        }
        general_mat_mul(1.0, &q, &b.t(), 0.0, &mut product);
        let Some(flat) = product.as_slice() else {
            return Vec::new();
        };
        out.extend(scan(flat, n, start, k, skip_self, threads));
    }
    out
}

/// Packs per-token lists (padded with the token itself at similarity 0
/// where a tiny vocabulary has fewer than `k` other tokens).
fn pack(lists: Vec<Vec<(f32, u32)>>, k: usize) -> Neighbours {
    let mut ids = Vec::with_capacity(lists.len() * k);
    let mut sims = Vec::with_capacity(lists.len() * k);
    for (i, list) in lists.into_iter().enumerate() {
        for j in 0..k {
            let (s, id) = list.get(j).copied().unwrap_or((0.0, i as u32));
            ids.push(id);
            sims.push(s);
        }
    }
    Neighbours { k, ids, sims }
}

/// Exact: every pair, chunked. `unit` has unit rows.
pub fn exact(unit: &Matrix, k: usize) -> Neighbours {
    pack(top_k_by_dot(unit, unit, k, true), k)
}

/// Recall@k: the share of each token's true `k` nearest that `found`
/// lists, averaged over `tokens`; `truth` row `t` is token `tokens[t]`'s
/// exact list. A found token whose similarity ties the true `k`-th (within
/// 1e-6, the rounding of two f32 sums) counts as found: which of several
/// equal tokens is listed is arbitrary (unused tokens' rows are often
/// identical).
pub fn recall(found: &Neighbours, truth: &Neighbours, tokens: &[usize]) -> f64 {
    let k = truth.k;
    let mut hits = 0usize;
    for (t, &i) in tokens.iter().enumerate() {
        let want = truth.of(t);
        let kth = truth.sims[(t + 1) * k - 1];
        let got = found.of(i);
        let sims = &found.sims[i * found.k..(i + 1) * found.k];
        let ok = got
            .iter()
            .zip(sims)
            .filter(|&(id, &s)| want.contains(id) || s >= kth - 1e-6)
            .count();
        hits += ok.min(k);
    }
    hits as f64 / (tokens.len() * k).max(1) as f64
}

/// The exact `k` nearest of each of `tokens` (themselves excluded), row
/// `t` for `tokens[t]`: the reference [`recall`] is measured against.
pub fn exact_for(unit: &Matrix, tokens: &[usize], k: usize) -> Neighbours {
    let rows: Vec<f32> = tokens.iter().flat_map(|&i| unit.row(i).to_vec()).collect();
    let Some(queries) = Matrix::new(tokens.len(), unit.dim, rows) else {
        return pack(Vec::new(), k);
    };
    let lists = top_k_by_dot(&queries, unit, k + 1, false)
        .into_iter()
        .zip(tokens)
        .map(|(list, &i)| {
            list.into_iter()
                .filter(|&(_, j)| j as usize != i)
                .take(k)
                .collect()
        })
        .collect();
    pack(lists, k)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` random unit rows, deterministic for `seed`.
    pub(crate) fn random_unit(n: usize, dim: usize, seed: u64) -> Matrix {
        let mut x = seed | 1;
        let data = (0..n * dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        Matrix::new(n, dim, data).unwrap().unit_rows()
    }

    #[test]
    fn exact_matches_brute_force() {
        let u = random_unit(600, 16, 7);
        let nb = exact(&u, 10);
        for i in 0..u.n_rows {
            let mut all: Vec<(f32, u32)> = (0..u.n_rows)
                .filter(|&j| j != i)
                .map(|j| (dot(u.row(i), u.row(j)), j as u32))
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0));
            let want: Vec<u32> = all[..10].iter().map(|p| p.1).collect();
            assert_eq!(nb.of(i), want, "token {i}");
            assert!((nb.sims[i * 10] - all[0].0).abs() < 1e-5);
        }
    }

    fn same_neighbours(a: &Neighbours, b: &Neighbours) {
        for i in 0..a.len() {
            for (x, y) in a.of(i).iter().zip(b.of(i)) {
                let (sx, sy) = (a.sims[i * a.k], b.sims[i * b.k]);
                assert!(x == y || (sx - sy).abs() < 1e-6, "token {i}: {x} vs {y}");
            }
        }
        assert!(
            a.sims
                .iter()
                .zip(&b.sims)
                .all(|(x, y)| (x - y).abs() < 1e-5)
        );
    }

    #[test]
    fn the_device_search_on_the_cpu_backend_is_exact() {
        let u = random_unit(2100, 24, 3);
        let ex = exact(&u, 10);
        let cands = device_candidates(&u, CANDIDATES, Device::Cpu, 2).unwrap();
        let nb = rerank(&u, cands, 10, 2);
        same_neighbours(&nb, &ex);
        let tokens: Vec<usize> = (0..2100).step_by(3).collect();
        let truth = exact_for(&u, &tokens, 10);
        assert_eq!(recall(&nb, &truth, &tokens), 1.0);
    }

    #[test]
    fn the_search_above_the_exact_limit_finds_the_exact_neighbours() {
        let u = random_unit(EXACT_LIMIT + 300, 48, 11);
        let (nb, method) = search(&u, 10, Device::Cpu, 2).unwrap();
        let expect = if int8::available() {
            Method::Int8
        } else {
            Method::Device
        };
        assert_eq!(method, expect);
        let tokens: Vec<usize> = (0..u.n_rows).step_by(5).collect();
        let truth = exact_for(&u, &tokens, 10);
        let r = recall(&nb, &truth, &tokens);
        assert!(r > 0.995, "recall {r}");
    }

    #[test]
    fn recall_counts_ties_and_misses() {
        let truth = Neighbours {
            k: 2,
            ids: vec![1, 2],
            sims: vec![0.9, 0.5],
        };
        // Token 0 found 1 and 3; 3 ties the true 2nd (0.5): both count.
        let found = Neighbours {
            k: 2,
            ids: vec![1, 3, 0, 0],
            sims: vec![0.9, 0.5, 0.0, 0.0],
        };
        assert_eq!(recall(&found, &truth, &[0]), 1.0);
        // A worse token in its place is a miss.
        let found = Neighbours {
            k: 2,
            ids: vec![1, 3, 0, 0],
            sims: vec![0.9, 0.4, 0.0, 0.0],
        };
        assert_eq!(recall(&found, &truth, &[0]), 0.5);
    }

    #[test]
    fn tiny_vocabularies_are_padded() {
        let u = random_unit(3, 4, 1);
        let nb = exact(&u, 5);
        assert_eq!(nb.len(), 3);
        assert_eq!(nb.of(0)[2..], [0, 0, 0]);
    }
}
