//! Token embeddings under quantization: for a fixed sample of tokens, the
//! share of each one's nearest neighbours (cosine, the dequantized
//! `token_embd.weight`, searched exactly against the whole vocabulary) that
//! a member shares with the reference.

use serde::{Deserialize, Serialize};

use crate::analysis::embeddings::EmbeddingError;
use crate::analysis::embeddings::matrix::Matrix;
use crate::analysis::embeddings::neighbours::top_k_by_dot;
use crate::analysis::embeddings::projection;
use crate::gguf::GgufModel;

/// Neighbours compared per token.
pub const K: usize = 10;
/// Tokens in the sample.
pub const SAMPLE: usize = 1000;
/// Tokens listed as having moved most.
const MOVED: usize = 10;

/// The embedding tensor compared.
pub const TENSOR: &str = "token_embd.weight";

/// The sampled tokens' neighbours in one model.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleNeighbours {
    /// Token ids of the sample.
    pub tokens: Vec<u32>,
    /// `K` neighbours of each, best first, the token itself left out.
    pub ids: Vec<Vec<u32>>,
}

/// One token whose neighbours changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovedToken {
    pub id: u32,
    pub piece: String,
    /// Share of its neighbours kept.
    pub overlap: f64,
}

/// A member's neighbour overlap with the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighbourOverlap {
    pub k: usize,
    /// Tokens in the sample.
    pub sample: usize,
    /// Mean over the sample of the shared share.
    pub mean: f64,
    /// The tokens that kept the fewest neighbours, fewest first.
    pub moved: Vec<MovedToken>,
}

/// The sample's neighbours in `model`, searched exactly against the whole
/// vocabulary.
pub fn sample_neighbours(model: &GgufModel) -> Result<SampleNeighbours, EmbeddingError> {
    let unit = Matrix::load(model, TENSOR)?.unit_rows();
    let sample = projection::sample(unit.n_rows, SAMPLE);
    let rows: Vec<f32> = sample.iter().flat_map(|&i| unit.row(i).to_vec()).collect();
    let queries = Matrix::new(sample.len(), unit.dim, rows)
        .ok_or_else(|| EmbeddingError::Analysis("neighbour sample shape".into()))?;
    // One more than needed: the token itself is usually its own best match.
    let found = top_k_by_dot(&queries, &unit, K + 1, false);
    let ids = sample
        .iter()
        .zip(found)
        .map(|(&t, list)| {
            list.into_iter()
                .map(|(_, id)| id)
                .filter(|&id| id as usize != t)
                .take(K)
                .collect()
        })
        .collect();
    Ok(SampleNeighbours {
        tokens: sample.iter().map(|&t| t as u32).collect(),
        ids,
    })
}

/// Per sampled token, the share of `base`'s neighbours also in `member`'s.
pub fn overlaps(base: &SampleNeighbours, member: &SampleNeighbours) -> Vec<f64> {
    base.ids
        .iter()
        .zip(&member.ids)
        .map(|(b, m)| {
            if b.is_empty() {
                1.0
            } else {
                b.iter().filter(|id| m.contains(id)).count() as f64 / b.len() as f64
            }
        })
        .collect()
}

/// The overlap summary; `piece` names a token.
pub fn summarise(
    base: &SampleNeighbours,
    member: &SampleNeighbours,
    piece: &dyn Fn(u32) -> String,
) -> NeighbourOverlap {
    let shares = overlaps(base, member);
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| shares[a].total_cmp(&shares[b]).then(a.cmp(&b)));
    NeighbourOverlap {
        k: K,
        sample: shares.len(),
        mean: if shares.is_empty() {
            1.0
        } else {
            shares.iter().sum::<f64>() / shares.len() as f64
        },
        moved: order
            .into_iter()
            .filter(|&i| shares[i] < 1.0)
            .take(MOVED)
            .map(|i| MovedToken {
                id: base.tokens[i],
                piece: piece(base.tokens[i]),
                overlap: shares[i],
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_shared_neighbours_in_any_order() {
        let base = SampleNeighbours {
            tokens: vec![0, 1],
            ids: vec![vec![1, 2, 3, 4], vec![0, 2, 3, 4]],
        };
        let member = SampleNeighbours {
            tokens: vec![0, 1],
            ids: vec![vec![4, 3, 2, 1], vec![0, 2, 9, 8]],
        };
        assert_eq!(overlaps(&base, &member), vec![1.0, 0.5]);
        let s = summarise(&base, &member, &|id| format!("t{id}"));
        assert_eq!(s.mean, 0.75);
        assert_eq!(s.moved.len(), 1);
        assert_eq!((s.moved[0].id, s.moved[0].piece.as_str()), (1, "t1"));
        assert_eq!(summarise(&base, &base, &|_| String::new()).mean, 1.0);
    }
}
