//! Head-to-head similarity of attention patterns.
//!
//! Two heads are similar when they put their attention on the same keys
//! for the same queries. Each head's pattern over all prompts (the causal
//! triangle of every prompt, concatenated) is a vector; the similarity is
//! the cosine of two such vectors. Probabilities are never negative, so it
//! lies in [0, 1].

use ndarray::{Array2, Axis};

/// Cosine similarity of every pair of rows of `patterns` (`n × d`).
pub fn cosine_matrix(patterns: &Array2<f32>) -> Array2<f32> {
    let mut unit = patterns.clone();
    for mut row in unit.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
    // One matrix product (matrixmultiply's sgemm) does all n² dot products.
    let mut sim = unit.dot(&unit.t());
    sim.mapv_inplace(|v| v.clamp(0.0, 1.0));
    sim
}

/// Heads placed on a plane by the similarity of their patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityPlane {
    /// Per head, its two coordinates.
    pub xy: Vec<[f32; 2]>,
    /// Share of the total variance along each axis.
    pub explained: [f32; 2],
}

/// Most block-power iterations [`similarity_plane`] runs.
const PLANE_ITERATIONS: usize = 500;

/// Places heads on a plane so that heads with similar patterns lie close:
/// classical multidimensional scaling of the chord distance between unit
/// patterns, `‖u − v‖² = 2 − 2·cos(u, v)`. For that distance the doubly
/// centred Gram matrix is `J·S·J` (`S` the cosines, `J` the centring), and
/// its two leading eigenvectors, scaled by the square roots of their
/// eigenvalues, are the heads' coordinates: the principal plane of the
/// unit-length patterns themselves, computed from the `n × n` similarities
/// without the patterns. Found by block power iteration with a Rayleigh–Ritz
/// step; signs are fixed so the result is deterministic.
pub fn similarity_plane(sim: &Array2<f32>) -> SimilarityPlane {
    let n = sim.nrows();
    if n < 2 || sim.ncols() != n {
        return SimilarityPlane {
            xy: vec![[0.0, 0.0]; n],
            explained: [0.0, 0.0],
        };
    }
    let s = sim.mapv(f64::from);
    let means = s
        .mean_axis(Axis(1))
        .unwrap_or_else(|| ndarray::Array1::zeros(n));
    let grand = means.mean().unwrap_or(0.0);
    let b = Array2::from_shape_fn((n, n), |(i, j)| s[[i, j]] - means[i] - means[j] + grand);
    let trace: f64 = b.diag().sum();
    // A fixed, non-degenerate start: two different smooth sequences.
    let mut q = Array2::from_shape_fn((n, 2), |(i, k)| {
        let t = i as f64 + 1.0;
        if k == 0 {
            1.0 + (t * 0.7).sin()
        } else {
            (t * 1.3).cos()
        }
    });
    orthonormalise(&mut q);
    for _ in 0..PLANE_ITERATIONS {
        let mut z = b.dot(&q);
        orthonormalise(&mut z);
        let change = (&z - &q).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
        q = z;
        if change < 1e-10 {
            break;
        }
    }
    // Rayleigh–Ritz: the eigenvectors of B restricted to the subspace.
    let t = q.t().dot(&b.dot(&q));
    let (a, c, d) = (t[[0, 0]], t[[0, 1]], t[[1, 1]]);
    let mid = (a + d) / 2.0;
    let rad = (((a - d) / 2.0).powi(2) + c * c).sqrt();
    let lambdas = [mid + rad, mid - rad];
    let ritz = |lambda: f64| -> [f64; 2] {
        let v = if c.abs() > 1e-300 {
            [lambda - d, c]
        } else if (lambda - a).abs() <= (lambda - d).abs() {
            [1.0, 0.0]
        } else {
            [0.0, 1.0]
        };
        let norm = (v[0] * v[0] + v[1] * v[1]).sqrt().max(1e-300);
        [v[0] / norm, v[1] / norm]
    };
    let mut xy = vec![[0.0f32; 2]; n];
    let mut explained = [0.0f32; 2];
    for (axis, &lambda) in lambdas.iter().enumerate() {
        let r = ritz(lambda);
        let v: Vec<f64> = (0..n)
            .map(|i| q[[i, 0]] * r[0] + q[[i, 1]] * r[1])
            .collect();
        // The sign that makes the largest coordinate positive.
        let big = v
            .iter()
            .copied()
            .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        let scale = lambda.max(0.0).sqrt() * sign;
        for (p, x) in xy.iter_mut().zip(&v) {
            p[axis] = (x * scale) as f32;
        }
        explained[axis] = if trace > 0.0 {
            (lambda.max(0.0) / trace) as f32
        } else {
            0.0
        };
    }
    SimilarityPlane { xy, explained }
}

/// Gram–Schmidt on the columns of `m`.
fn orthonormalise(m: &mut Array2<f64>) {
    for k in 0..m.ncols() {
        for j in 0..k {
            let dot = m.column(k).dot(&m.column(j));
            let prev = m.column(j).to_owned();
            m.column_mut(k).scaled_add(-dot, &prev);
        }
        let norm = m.column(k).dot(&m.column(k)).sqrt();
        if norm > 0.0 {
            m.column_mut(k).mapv_inplace(|v| v / norm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn identical_patterns_score_one_and_disjoint_zero() {
        let p = array![[1.0f32, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.5, 0.5]];
        let s = cosine_matrix(&p);
        assert!((s[[0, 1]] - 1.0).abs() < 1e-6);
        assert_eq!(s[[0, 2]], 0.0);
        assert!((s[[2, 2]] - 1.0).abs() < 1e-6);
        assert_eq!(s, s.t());
    }

    /// Patterns of three kinds (first-token, previous-token and self heads,
    /// with noise): the plane puts the kinds apart, and its distances are those
    /// of the exact principal plane of the unit patterns (found by a full
    /// eigendecomposition), up to the axes' signs.
    #[test]
    fn the_similarity_plane_is_the_principal_plane_of_unit_patterns() {
        let (n, d) = (14, 40);
        let mut p = Array2::<f32>::zeros((n, d));
        for i in 0..n {
            for j in 0..d {
                // A deterministic jitter.
                let noise = (((i * 31 + j * 17) % 13) as f32) / 200.0;
                let kind = match i % 3 {
                    0 => j % 8 == 0,
                    1 => j % 8 == 7,
                    _ => j % 8 == 3,
                };
                p[[i, j]] = noise + if kind { 1.0 } else { 0.0 };
            }
        }
        let sim = cosine_matrix(&p);
        let plane = similarity_plane(&sim);
        let dist =
            |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        // Heads of a kind lie together, far from the other kinds.
        for i in 0..n {
            for j in 0..n {
                let d = dist(plane.xy[i], plane.xy[j]);
                if i % 3 == j % 3 {
                    assert!(d < 0.1, "{i} {j}: {d}");
                } else {
                    assert!(d > 0.5, "{i} {j}: {d}");
                }
            }
        }
        // Reference: PCA of the centred unit patterns.
        let mut u = p.mapv(f64::from);
        for mut row in u.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        let mean = u.mean_axis(Axis(0)).unwrap();
        let z = &u - &mean;
        let (exact, explained) = crate::analysis::clusters::principal_plane(&z);
        for i in 0..n {
            for j in 0..n {
                let (a, b) = (dist(plane.xy[i], plane.xy[j]), dist(exact[i], exact[j]));
                assert!((a - b).abs() < 1e-4, "{i} {j}: {a} vs {b}");
            }
        }
        assert!((plane.explained[0] - explained[0]).abs() < 1e-4);
        assert!((plane.explained[1] - explained[1]).abs() < 1e-4);
        assert!(plane.explained[0] >= plane.explained[1]);
    }
}
