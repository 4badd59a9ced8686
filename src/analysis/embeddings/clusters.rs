//! Groups of tokens: k-means over the reduced unit rows, each group
//! labelled by the tokens nearest its centre.

use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;

use super::EmbeddingError;
use super::matrix::Matrix;
use super::neighbours::TopK;

/// One k-means group.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub size: usize,
    /// The tokens nearest the centre, nearest first.
    pub central: Vec<u32>,
}

/// Every token's cluster and the clusters.
#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    pub labels: Vec<u16>,
    pub clusters: Vec<Cluster>,
}

/// k-means with `k` groups (fewer for tiny vocabularies) over `points`,
/// deterministic for `seed`; `n_central` tokens label each group.
pub fn kmeans(
    points: &Matrix,
    k: usize,
    seed: u64,
    n_central: usize,
) -> Result<Clusters, EmbeddingError> {
    let k = k.min(points.n_rows).max(1);
    let x = Array2::from_shape_vec((points.n_rows, points.dim), points.data.clone())
        .map_err(|e| EmbeddingError::Analysis(e.to_string()))?;
    let data = DatasetBase::from(x);
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .n_runs(1)
        .max_n_iterations(40)
        .tolerance(1e-4)
        .fit(&data)
        .map_err(|e| EmbeddingError::Analysis(format!("k-means: {e}")))?;
    let labelled = model.predict(data);
    let labels: Vec<u16> = labelled.targets().iter().map(|&l| l as u16).collect();
    let centroids = model.centroids();
    let mut clusters = Vec::with_capacity(k);
    for (c, centre) in centroids.rows().into_iter().enumerate() {
        let mut top = TopK::new(n_central);
        let mut size = 0;
        for (i, &l) in labels.iter().enumerate() {
            if usize::from(l) == c {
                size += 1;
                let d2: f32 = points
                    .row(i)
                    .iter()
                    .zip(centre.iter())
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                top.push(-d2, i as u32);
            }
        }
        clusters.push(Cluster {
            size,
            central: top.into_items().into_iter().map(|(_, i)| i).collect(),
        });
    }
    Ok(Clusters { labels, clusters })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_separate_blobs_are_two_clusters() {
        let mut data = Vec::new();
        for i in 0..40 {
            let off = if i < 20 { 0.0 } else { 100.0 };
            data.extend([off + (i % 5) as f32 * 0.1, off - (i % 3) as f32 * 0.1]);
        }
        let m = Matrix::new(40, 2, data).unwrap();
        let c = kmeans(&m, 2, 1, 3).unwrap();
        assert_eq!(c.clusters.iter().map(|c| c.size).sum::<usize>(), 40);
        assert_eq!(c.clusters[0].size, 20);
        assert!(c.labels[..20].iter().all(|&l| l == c.labels[0]));
        assert!(c.labels[20..].iter().all(|&l| l != c.labels[0]));
        let first = c.labels[0] as usize;
        assert!(c.clusters[first].central.iter().all(|&i| i < 20));
    }
}
