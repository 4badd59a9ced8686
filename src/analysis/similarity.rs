//! Head-to-head similarity of attention patterns.
//!
//! Two heads are similar when they put their attention on the same keys
//! for the same queries. Each head's pattern over all prompts (the causal
//! triangle of every prompt, concatenated) is a vector; the similarity is
//! the cosine of two such vectors. Probabilities are never negative, so it
//! lies in [0, 1].

use ndarray::Array2;

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
}
