//! The nearest tokens of every token by cosine similarity.
//!
//! All pairs of a 49,152-token vocabulary at 576 dimensions is ~2.8 TFLOP:
//! far beyond a 10-second budget on two CPU cores, and a dense
//! vocab × vocab matrix would take 9.7 GB. So the product is chunked (one
//! block of query rows against all rows at a time, then a top-k scan), and
//! above [`EXACT_LIMIT`] tokens the candidates come from a PCA-reduced
//! space (an exact chunked search there) and are re-ranked with the full
//! vectors. The test `recall_of_the_reduced_search_on_the_demo_model`
//! checks recall@10 against the exact search.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};

use super::matrix::{Matrix, dot};

/// Vocabularies up to this size get the exact all-pairs search.
pub const EXACT_LIMIT: usize = 8192;

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
        let per = rows.div_ceil(threads);
        let parts: Vec<Vec<Vec<(f32, u32)>>> = std::thread::scope(|s| {
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
                                    if !(skip_self && j == me) {
                                        top.push(sim, j as u32);
                                    }
                                }
                                top.into_items()
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        out.extend(parts.into_iter().flatten());
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

/// Candidates by the `n_candidates` best dot products in `reduced` (the
/// same tokens in fewer dimensions), re-ranked by the full `unit` rows.
pub fn reranked(unit: &Matrix, reduced: &Matrix, k: usize, n_candidates: usize) -> Neighbours {
    let candidates = top_k_by_dot(reduced, reduced, n_candidates.max(k), true);
    let lists = candidates
        .into_iter()
        .enumerate()
        .map(|(i, cands)| {
            let mut top = TopK::new(k);
            for (_, j) in cands {
                top.push(dot(unit.row(i), unit.row(j as usize)), j);
            }
            top.into_items()
        })
        .collect();
    pack(lists, k)
}

/// The share of `truth`'s neighbours of each token that `found` also
/// lists, averaged over `tokens`.
pub fn recall(found: &Neighbours, truth: &Neighbours, tokens: &[usize]) -> f64 {
    let mut hits = 0usize;
    for &i in tokens {
        let f = found.of(i);
        hits += truth.of(i).iter().filter(|id| f.contains(id)).count();
    }
    hits as f64 / (tokens.len() * truth.k).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_unit(n: usize, dim: usize, seed: u64) -> Matrix {
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

    #[test]
    fn reranking_every_candidate_is_exact() {
        let u = random_unit(300, 8, 3);
        let all = reranked(&u, &u, 10, 299);
        let ex = exact(&u, 10);
        assert_eq!(all.ids, ex.ids);
        assert!(
            all.sims
                .iter()
                .zip(&ex.sims)
                .all(|(a, b)| (a - b).abs() < 1e-5)
        );
        let tokens: Vec<usize> = (0..300).collect();
        assert_eq!(recall(&all, &ex, &tokens), 1.0);
    }

    #[test]
    fn tiny_vocabularies_are_padded() {
        let u = random_unit(3, 4, 1);
        let nb = exact(&u, 5);
        assert_eq!(nb.len(), 3);
        assert_eq!(nb.of(0)[2..], [0, 0, 0]);
    }
}
