//! Principal components of the embeddings, and how faithful a projection
//! is to the neighbours of the full space.
//!
//! PCA here serves twice: three components place every token in the view
//! (the first two are the 2D layout), and 64 components of the unit rows
//! give the reduced space where the neighbour search finds candidates.

use linfa_linalg::eigh::Eigh;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};

use super::EmbeddingError;
use super::matrix::Matrix;
use super::neighbours::{Neighbours, TopK};

/// Principal axes of a matrix's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Subtracted before projecting (zeros for an uncentred PCA).
    pub mean: Vec<f32>,
    /// `n_components × dim`, unit rows, largest variance first.
    pub components: Matrix,
    /// The share of the total variance each component explains.
    pub explained: Vec<f32>,
}

/// The top `n_components` principal axes of `m`'s rows; `center` false
/// takes the axes of the second-moment matrix instead (what preserves dot
/// products of unit rows best).
pub fn pca(m: &Matrix, n_components: usize, center: bool) -> Result<Pca, EmbeddingError> {
    let (n, d) = (m.n_rows, m.dim);
    let shape = |e: ndarray::ShapeError| EmbeddingError::Analysis(e.to_string());
    let x = ArrayView2::from_shape((n, d), &m.data).map_err(shape)?;
    let mean: Vec<f32> = if center {
        (0..d)
            .map(|j| {
                (x.column(j).iter().map(|&v| f64::from(v)).sum::<f64>() / n.max(1) as f64) as f32
            })
            .collect()
    } else {
        vec![0.0; d]
    };
    // X^T X in f32 blocks (BLAS-speed), then f64 for the eigensolver; over
    // at most GRAM_ROWS rows spread evenly over the vocabulary (the axes of
    // 16,384 of 49,152 rows are the axes of all, to the eye and to the
    // clusters, for a third of the work).
    let rows_used = sample(n, GRAM_ROWS);
    let mut cov32 = Array2::<f32>::zeros((d, d));
    const BLOCK: usize = 4096;
    let mut centred = Array2::<f32>::zeros((0, d));
    for block in rows_used.chunks(BLOCK) {
        if centred.nrows() != block.len() {
            centred = Array2::zeros((block.len(), d));
        }
        for (&i, mut row) in block.iter().zip(centred.rows_mut()) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = x[[i, j]] - mean[j];
            }
        }
        general_mat_mul(1.0, &centred.t(), &centred, 1.0, &mut cov32);
    }
    let n = rows_used.len();
    let cov = cov32.mapv(|v| f64::from(v) / n.max(1) as f64);
    let total: f64 = (0..d).map(|j| cov[[j, j]]).sum();
    let (values, vectors) = top_eigen(&cov, n_components)?;
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let k = n_components.min(d);
    let mut comps = Vec::with_capacity(k * d);
    let mut explained = Vec::with_capacity(k);
    for &c in order.iter().take(k) {
        let v = vectors.column(c);
        // A sign convention, so the layout does not flip between builds:
        // the largest coordinate of each axis is positive.
        let sign = v
            .iter()
            .copied()
            .max_by(|a, b| a.abs().total_cmp(&b.abs()))
            .map_or(1.0, f64::signum);
        comps.extend(v.iter().map(|&x| (x * sign) as f32));
        explained.push(if total > 0.0 {
            (values[c].max(0.0) / total) as f32
        } else {
            0.0
        });
    }
    let components = Matrix::new(k, d, comps)
        .ok_or_else(|| EmbeddingError::Analysis("component shape".into()))?;
    Ok(Pca {
        mean,
        components,
        explained,
    })
}

/// Rows the covariance is computed over, at most.
pub const GRAM_ROWS: usize = 16384;

/// Below this dimension (or when most axes are wanted) the full
/// eigendecomposition is cheap enough.
const FULL_EIGH_BELOW: usize = 160;

/// Extra axes the subspace iteration carries beyond those wanted: they
/// speed convergence where the spectrum is flat.
const GUARD: usize = 16;

/// The eigenpairs of the symmetric `cov` that include its `k` largest
/// (unsorted; vectors as columns). Small matrices get the full
/// eigendecomposition; larger ones subspace iteration with Rayleigh–Ritz
/// (what only the top axes need: 576 dimensions took 0.73 s for the full
/// solver, two dozen milliseconds this way).
fn top_eigen(
    cov: &Array2<f64>,
    k: usize,
) -> Result<(ndarray::Array1<f64>, Array2<f64>), EmbeddingError> {
    let err = |e: String| EmbeddingError::Analysis(format!("eigendecomposition: {e}"));
    let d = cov.nrows();
    let p = (k + GUARD).min(d);
    if d < FULL_EIGH_BELOW || 2 * p >= d {
        return cov.eigh().map_err(|e| err(e.to_string()));
    }
    // A fixed start (deterministic builds): pseudo-random rows, one per
    // axis (rows, so every vector operation is on contiguous memory).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut v = Array2::<f64>::from_shape_fn((p, d), |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    });
    orthonormalize(&mut v);
    let mut w = Array2::<f64>::zeros((p, d));
    let mut last = f64::NAN;
    for iteration in 1..=MAX_SUBSPACE_ITERATIONS {
        // cov is symmetric: V·cov is (cov·Vᵀ)ᵀ.
        general_mat_mul(1.0, &v, cov, 0.0, &mut w);
        std::mem::swap(&mut v, &mut w);
        orthonormalize(&mut v);
        if iteration % 8 == 0 {
            // The k-th largest Ritz value; stop once it has settled.
            let h = v.dot(cov).dot(&v.t());
            let (vals, _) = h.eigh().map_err(|e| err(e.to_string()))?;
            let mut sorted = vals.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let kth = sorted.get(k.saturating_sub(1)).copied().unwrap_or(0.0);
            if (kth - last).abs() <= 1e-7 * kth.abs().max(1e-300) {
                break;
            }
            last = kth;
        }
    }
    let h = v.dot(cov).dot(&v.t());
    let (vals, q) = h.eigh().map_err(|e| err(e.to_string()))?;
    Ok((vals, v.t().dot(&q)))
}

/// Subspace iterations at most (each 8th checks convergence). The top
/// axes converge first; the last wanted ones of a flat spectrum may still
/// be mixed with their neighbours, which only rotates the reduced space
/// slightly within its span.
const MAX_SUBSPACE_ITERATIONS: usize = 64;

/// Modified Gram–Schmidt on the rows of `v`, twice for accuracy; a row
/// that vanishes is left zero.
fn orthonormalize(v: &mut Array2<f64>) {
    let (p, d) = v.dim();
    let Some(data) = v.as_slice_mut() else {
        return;
    };
    for _ in 0..2 {
        for j in 0..p {
            let (done, rest) = data.split_at_mut(j * d);
            let row = &mut rest[..d];
            for prev in done.chunks_exact(d) {
                let r: f64 = prev.iter().zip(row.iter()).map(|(a, b)| a * b).sum();
                row.iter_mut().zip(prev).for_each(|(x, a)| *x -= r * a);
            }
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
    }
}

impl Pca {
    /// Every row of `m` in component coordinates (`n × n_components`).
    pub fn project(&self, m: &Matrix) -> Matrix {
        let k = self.components.n_rows;
        let mut out = vec![0f32; m.n_rows * k];
        let (Ok(x), Ok(c)) = (
            ArrayView2::from_shape((m.n_rows, m.dim), &m.data),
            ArrayView2::from_shape((k, m.dim), &self.components.data),
        ) else {
            return Matrix {
                n_rows: m.n_rows,
                dim: k,
                data: out,
            };
        };
        if let Ok(mut o) = ndarray::ArrayViewMut2::from_shape((m.n_rows, k), &mut out[..]) {
            general_mat_mul(1.0, &x, &c.t(), 0.0, &mut o);
        }
        // (x − mean)·c = x·c − mean·c
        let shift: Vec<f32> = (0..k)
            .map(|j| super::matrix::dot(&self.mean, self.components.row(j)))
            .collect();
        for row in out.chunks_exact_mut(k.max(1)) {
            row.iter_mut().zip(&shift).for_each(|(v, s)| *v -= s);
        }
        Matrix {
            n_rows: m.n_rows,
            dim: k,
            data: out,
        }
    }
}

/// kNN preservation: for each token of `sample`, the share of its `k`
/// high-dimensional neighbours (`truth`) that are among its `k` nearest
/// points (Euclidean) in `points` (the first `dims` coordinates of each
/// row), averaged over the sample.
pub fn knn_preservation(points: &Matrix, dims: usize, truth: &Neighbours, sample: &[usize]) -> f32 {
    let k = truth.k;
    let dims = dims.min(points.dim);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let near_all = |near: &(dyn Fn(usize) -> Vec<u32> + Sync)| -> usize {
        let chunk = sample.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let parts: Vec<_> = sample
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|&i| {
                                let near = near(i);
                                truth.of(i).iter().filter(|id| near.contains(id)).count()
                            })
                            .sum::<usize>()
                    })
                })
                .collect();
            parts.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        })
    };
    let hits = match dims {
        1 => near_all(&kd_near::<1>(points, k)),
        2 => near_all(&kd_near::<2>(points, k)),
        3 => near_all(&kd_near::<3>(points, k)),
        _ => near_all(&|i| brute_near(points, dims, k, i)),
    };
    hits as f32 / (sample.len() * k).max(1) as f32
}

/// The `k` points nearest point `i` (itself excluded), through a k-d tree
/// over the first `D` coordinates (`kiddo`): the whole vocabulary in a
/// fraction of a second where a scan of every pair takes minutes.
fn kd_near<const D: usize>(points: &Matrix, k: usize) -> impl Fn(usize) -> Vec<u32> + Sync {
    let at = |i: usize| -> [f32; D] {
        let mut p = [0f32; D];
        p.copy_from_slice(&points.row(i)[..D]);
        p
    };
    let rows: Vec<[f32; D]> = (0..points.n_rows).map(at).collect();
    let tree: kiddo::immutable::float::kdtree::ImmutableKdTree<f32, u32, D, 32> =
        kiddo::immutable::float::kdtree::ImmutableKdTree::new_from_slice(&rows);
    move |i| {
        let Some(want) = std::num::NonZero::new(k + 1) else {
            return Vec::new();
        };
        let found = tree.nearest_n::<kiddo::SquaredEuclidean>(&rows[i], want);
        let mut near: Vec<u32> = found
            .iter()
            .map(|n| n.item)
            .filter(|&j| j as usize != i)
            .collect();
        near.truncate(k);
        near
    }
}

/// [`kd_near`] by a scan of every point (for other widths, and the tests).
fn brute_near(points: &Matrix, dims: usize, k: usize, i: usize) -> Vec<u32> {
    let p = &points.row(i)[..dims];
    let mut top = TopK::new(k);
    for j in 0..points.n_rows {
        if j != i {
            let q = &points.row(j)[..dims];
            let d2: f32 = p.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
            top.push(-d2, j as u32);
        }
    }
    top.into_items().into_iter().map(|(_, j)| j).collect()
}

/// Up to `n` token ids spread evenly over `0..n_rows` (all when fewer).
pub fn sample(n_rows: usize, n: usize) -> Vec<usize> {
    if n_rows <= n {
        return (0..n_rows).collect();
    }
    (0..n).map(|i| i * n_rows / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_exact_axes_of_a_known_covariance() {
        // Points ±3 along (1,1)/√2 and ±1 along (1,−1)/√2, centred at
        // (5, 5): covariance eigenvalues 4.5 and 0.5 (share 0.9 and 0.1),
        // eigenvectors the two diagonals, by hand.
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let mut data = Vec::new();
        for (a, b) in [(3.0, 0.0), (-3.0, 0.0), (0.0, 1.0), (0.0, -1.0)] {
            data.extend([5.0 + (a + b) * s, 5.0 + (a - b) * s]);
        }
        let m = Matrix::new(4, 2, data).unwrap();
        let p = pca(&m, 2, true).unwrap();
        assert!((p.explained[0] - 0.9).abs() < 1e-5, "{:?}", p.explained);
        assert!((p.explained[1] - 0.1).abs() < 1e-5);
        let c0 = p.components.row(0);
        assert!(
            (c0[0] - s).abs() < 1e-5 && (c0[1] - s).abs() < 1e-5,
            "{c0:?}"
        );
        let c1 = p.components.row(1);
        assert!((c1[0].abs() - s).abs() < 1e-5 && (c1[0] + c1[1]).abs() < 1e-5);
        let proj = p.project(&m);
        assert!((proj.row(0)[0] - 3.0).abs() < 1e-4, "{:?}", proj.row(0));
        assert!(proj.row(0)[1].abs() < 1e-4);
    }

    #[test]
    fn subspace_iteration_finds_the_top_axes_of_the_full_solver() {
        // A 200 × 200 covariance of 400 random points whose axes have a
        // slowly falling spread (a flat spectrum, like embeddings').
        let (n, d) = (400, 200);
        let mut x = 7u64;
        let mut data = Vec::with_capacity(n * d);
        for _ in 0..n {
            for j in 0..d {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                data.push(u * (1.0 + 3.0 / (1.0 + j as f32 / 8.0)));
            }
        }
        let m = Matrix::new(n, d, data).unwrap();
        let fast = pca(&m, 20, true).unwrap();
        // The reference: the full solver on the same covariance.
        let xs = ArrayView2::from_shape((n, d), &m.data).unwrap();
        let centred = xs.mapv(f64::from) - xs.mapv(f64::from).mean_axis(ndarray::Axis(0)).unwrap();
        let cov = centred.t().dot(&centred) / n as f64;
        let total: f64 = cov.diag().sum();
        let (vals, vecs) = cov.eigh().unwrap();
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
        for (c, &o) in order.iter().take(20).enumerate() {
            let want = (vals[o] / total) as f32;
            assert!(
                (fast.explained[c] - want).abs() < 1e-4 * want.max(1e-3),
                "axis {c}: {} vs {want}",
                fast.explained[c]
            );
            let cos: f64 = fast
                .components
                .row(c)
                .iter()
                .zip(vecs.column(o))
                .map(|(&a, &b)| f64::from(a) * b)
                .sum();
            assert!(cos.abs() > 0.999, "axis {c}: cosine {cos}");
        }
    }

    #[test]
    fn knn_preservation_by_hand() {
        // Four points on a line at 0, 1, 3, 10, k = 1: their nearest
        // points are 0→1, 1→0, 3→1, 10→3.
        let points = Matrix::new(4, 1, vec![0.0, 1.0, 3.0, 10.0]).unwrap();
        let truth = Neighbours {
            k: 1,
            ids: vec![1, 2, 1, 0],
            sims: vec![1.0; 4],
        };
        // Hits: token 0 (1 = 1), token 1 (0 ≠ 2), token 2 (1 = 1), token 3
        // (2 ≠ 0): 2 of 4.
        assert_eq!(knn_preservation(&points, 1, &truth, &[0, 1, 2, 3]), 0.5);
        assert_eq!(knn_preservation(&points, 1, &truth, &[0, 2]), 1.0);
    }

    #[test]
    fn the_tree_finds_what_a_scan_finds() {
        let mut state = 12345u32;
        let mut rnd = move || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32
        };
        let n = 3000;
        let points = Matrix::new(n, 3, (0..n * 3).map(|_| rnd()).collect()).unwrap();
        for dims in [1, 2, 3] {
            let near = match dims {
                1 => Box::new(kd_near::<1>(&points, 10)) as Box<dyn Fn(usize) -> Vec<u32>>,
                2 => Box::new(kd_near::<2>(&points, 10)),
                _ => Box::new(kd_near::<3>(&points, 10)),
            };
            for i in (0..n).step_by(37) {
                let mut a = near(i);
                let mut b = brute_near(&points, dims, 10, i);
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a, b, "point {i}, {dims} dims");
            }
        }
    }
}
