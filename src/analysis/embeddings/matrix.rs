//! The embedding matrices as dense f32 rows, one row per token.
//!
//! GGUF stores `token_embd.weight` as `[n_embd, n_vocab]`, which is row-major
//! `n_vocab × n_embd`: row `i` is token `i`. The rows are dequantized with
//! ggml's own dequantizer, so they are the numbers llama.cpp computes with.

use crate::engine;
use crate::gguf::GgufModel;

use super::EmbeddingError;

/// `n_rows × dim` floats, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub n_rows: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    /// A matrix from row-major data; `data.len()` must be `n_rows · dim`.
    pub fn new(n_rows: usize, dim: usize, data: Vec<f32>) -> Option<Matrix> {
        (data.len() == n_rows.checked_mul(dim)?).then_some(Matrix { n_rows, dim, data })
    }

    /// Tensor `name` of `gguf` (GGUF dims `[dim, n_rows]`), dequantized.
    pub fn load(gguf: &GgufModel, name: &str) -> Result<Matrix, EmbeddingError> {
        let info = gguf.tensor(name).ok_or_else(|| EmbeddingError::Tensor {
            name: name.to_owned(),
            reason: "not in the file".into(),
        })?;
        let [dim, n_rows] = info.dims[..] else {
            return Err(EmbeddingError::Tensor {
                name: name.to_owned(),
                reason: format!("dims {:?}, expected [n_embd, n_vocab]", info.dims),
            });
        };
        let (dim, n_rows) = (dim as usize, n_rows as usize);
        let data = engine::dequantize(gguf, name).map_err(|e| EmbeddingError::Tensor {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        Matrix::new(n_rows, dim, data).ok_or_else(|| EmbeddingError::Tensor {
            name: name.to_owned(),
            reason: "element count does not match its dims".into(),
        })
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The L2 norm of every row.
    pub fn norms(&self) -> Vec<f32> {
        self.data
            .chunks_exact(self.dim.max(1))
            .map(|r| r.iter().map(|x| x * x).sum::<f32>().sqrt())
            .collect()
    }

    /// The rows scaled to unit length (zero rows stay zero), so dot
    /// products are cosine similarities.
    pub fn unit_rows(&self) -> Matrix {
        let mut data = self.data.clone();
        for r in data.chunks_exact_mut(self.dim.max(1)) {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            if n > 0.0 {
                r.iter_mut().for_each(|x| *x /= n);
            }
        }
        Matrix { data, ..*self }
    }
}

/// Dot product, in eight independent lanes so the compiler can vectorise
/// it (a plain iterator sum is a chain of dependent scalar additions).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_rows_have_unit_norm_and_zero_rows_stay_zero() {
        let m = Matrix::new(2, 2, vec![3.0, 4.0, 0.0, 0.0]).unwrap();
        assert_eq!(m.norms(), [5.0, 0.0]);
        let u = m.unit_rows();
        assert_eq!(u.row(0), [0.6, 0.8]);
        assert_eq!(u.row(1), [0.0, 0.0]);
        assert!(Matrix::new(2, 3, vec![0.0; 5]).is_none());
    }
}
