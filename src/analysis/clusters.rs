//! Grouping heads by what their attention does.
//!
//! Heads are clustered with k-means (linfa) on their pattern features, all
//! of which are shares in [0, 1], so no feature needs rescaling (rescaling
//! would blow a nearly constant feature's noise up to the size of a real
//! difference). k runs from 3 to 8 and the k with the best silhouette score
//! wins. Each cluster is then named after the feature its centre stands out
//! on most, in standard deviations from the mean head, and the page shows
//! that rule with the number behind it, so a name is a measured statement.

use linfa::prelude::*;
use linfa_clustering::KMeans;
use linfa_linalg::eigh::Eigh;
use ndarray::{Array1, Array2, Axis};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use super::heads::HeadFeatures;

/// Features used for clustering: what the attention pattern does, each a
/// share in [0, 1] (indices into [`HeadFeatures::to_array`]). Distance in
/// tokens and the contribution norm are left out: one depends on prompt
/// length, the other measures how much a head writes, not how it attends.
pub const CLUSTER_FEATURES: [&str; 6] = [
    "entropy",
    "reach",
    "sink",
    "prev_token",
    "diagonal",
    "induction",
];
const FEATURE_COLUMNS: [usize; 6] = [0, 2, 3, 4, 5, 6];

/// Smallest σ used when naming: below it a feature barely varies across
/// heads, and its z-score would only measure noise.
const MIN_SIGMA: f64 = 0.05;

/// Names a cluster can get: (cluster feature index, sign, name).
const NAMES: [(usize, f32, &str); 7] = [
    (3, 1.0, "previous-token"),
    (5, 1.0, "induction"),
    (2, 1.0, "sink"),
    (4, 1.0, "self"),
    (1, -1.0, "local"),
    (0, 1.0, "broad"),
    (1, 1.0, "long-range"),
];

/// Smallest and largest k tried.
pub const K_RANGE: (usize, usize) = (3, 8);

/// One cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    /// Why it has that name, e.g. "previous token is +2.1 σ above the mean head".
    pub rule: String,
    /// The feature that named it and its centre's z-score on it.
    pub feature: String,
    pub z: f32,
    /// Heads in the cluster.
    pub size: usize,
    /// Heads of the cluster in each layer.
    pub per_layer: Vec<u32>,
    /// The centre, in [`CLUSTER_FEATURES`] order.
    pub centre: Vec<f32>,
}

/// The heads split into `k` clusters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Partition {
    pub k: usize,
    /// Mean silhouette of the heads: how much closer each head is to its own
    /// cluster than to the next one (1 best, 0 overlapping).
    pub silhouette: f32,
    /// Cluster of each head, layer-major.
    pub labels: Vec<u8>,
    pub clusters: Vec<Cluster>,
}

/// The clustering of all heads, for every k tried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clustering {
    /// The k with the best silhouette.
    pub k: usize,
    /// One partition per k, in increasing k.
    pub partitions: Vec<Partition>,
    /// A 2D placement of the heads: the first two principal components of
    /// the clustering features.
    pub xy: Vec<[f32; 2]>,
    /// Share of the variance the two components explain.
    pub explained: [f32; 2],
}

impl Clustering {
    /// The partition with the best silhouette.
    pub fn best(&self) -> &Partition {
        self.partitions
            .iter()
            .find(|p| p.k == self.k)
            .unwrap_or(&self.partitions[0])
    }
}

/// Why heads could not be clustered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error("{0} heads are too few to cluster (at least {min} needed)", min = K_RANGE.0 + 1)]
    TooFew(usize),
    #[error("k-means failed: {0}")]
    KMeans(String),
}

fn feature_matrix(features: &[HeadFeatures]) -> Array2<f64> {
    let mut m = Array2::zeros((features.len(), CLUSTER_FEATURES.len()));
    for (i, f) in features.iter().enumerate() {
        let a = f.to_array();
        for (j, &col) in FEATURE_COLUMNS.iter().enumerate() {
            m[[i, j]] = f64::from(a[col]);
        }
    }
    m
}

/// Column means and standard deviations (σ at least [`MIN_SIGMA`]).
fn column_stats(m: &Array2<f64>) -> (Array1<f64>, Array1<f64>) {
    let mean = m
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(m.ncols()));
    let std = m.std_axis(Axis(0), 0.0).mapv(|s| s.max(MIN_SIGMA));
    (mean, std)
}

/// Clusters `features` (layer-major, `n_head[l]` heads in layer `l`).
pub fn cluster(
    features: &[HeadFeatures],
    n_head: &[usize],
    seed: u64,
) -> Result<Clustering, ClusterError> {
    let n = features.len();
    if n <= K_RANGE.0 {
        return Err(ClusterError::TooFew(n));
    }
    let raw = feature_matrix(features);
    let (mean, std) = column_stats(&raw);
    let mut per_layer_of = Vec::with_capacity(n);
    for (l, &h) in n_head.iter().enumerate() {
        per_layer_of.extend(std::iter::repeat_n(l, h));
    }
    let mut partitions = Vec::new();
    for k in K_RANGE.0..=K_RANGE.1.min(n - 1) {
        let data = DatasetBase::from(raw.clone());
        let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
            .n_runs(8)
            .max_n_iterations(300)
            .tolerance(1e-6)
            .fit(&data)
            .map_err(|e| ClusterError::KMeans(e.to_string()))?;
        let labelled = model.predict(data);
        let labels: Vec<usize> = labelled.targets().iter().copied().collect();
        let silhouette = labelled.silhouette_score().unwrap_or(f64::NAN) as f32;
        let z_centres = (model.centroids() - &mean) / &std;
        let names = name_clusters(&z_centres);
        let clusters = (0..k)
            .map(|c| {
                let (feature, z, name) = names[c].clone();
                let mut per_layer = vec![0u32; n_head.len()];
                for (i, &label) in labels.iter().enumerate() {
                    if label == c
                        && let Some(&l) = per_layer_of.get(i)
                    {
                        per_layer[l] += 1;
                    }
                }
                Cluster {
                    rule: format!(
                        "{} is {:+.1} σ from the mean head, the most of any naming feature",
                        CLUSTER_FEATURES[feature], z
                    ),
                    name,
                    feature: CLUSTER_FEATURES[feature].to_owned(),
                    z,
                    size: labels.iter().filter(|&&l| l == c).count(),
                    per_layer,
                    centre: model.centroids().row(c).iter().map(|&v| v as f32).collect(),
                }
            })
            .collect();
        partitions.push(Partition {
            k,
            silhouette,
            labels: labels.iter().map(|&l| l as u8).collect(),
            clusters,
        });
    }
    let best = partitions
        .iter()
        .filter(|p| !p.silhouette.is_nan())
        .max_by(|a, b| a.silhouette.total_cmp(&b.silhouette))
        .map(|p| p.k)
        .ok_or(ClusterError::TooFew(n))?;
    let (xy, explained) = principal_plane(&(&raw - &mean));
    Ok(Clustering {
        k: best,
        partitions,
        xy,
        explained,
    })
}

/// Gives each cluster the name of the feature its centre (`centroids`, in
/// z-scores) stands out on most, greedily: the strongest (cluster, name) pairs are taken first so
/// two clusters never share a name while a distinct one is left.
fn name_clusters(centroids: &Array2<f64>) -> Vec<(usize, f32, String)> {
    let k = centroids.nrows();
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for c in 0..k {
        for (n, &(feature, sign, _)) in NAMES.iter().enumerate() {
            pairs.push(((centroids[[c, feature]] as f32) * sign, c, n));
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut named: Vec<Option<(usize, f32, String)>> = vec![None; k];
    let mut taken = vec![false; NAMES.len()];
    for &(score, c, n) in &pairs {
        if named[c].is_none() && !taken[n] {
            taken[n] = true;
            let (feature, sign, name) = NAMES[n];
            named[c] = Some((feature, score * sign, name.to_owned()));
        }
    }
    named
        .into_iter()
        .enumerate()
        .map(|(c, n)| {
            n.unwrap_or_else(|| {
                // More clusters than names: the best name again, numbered.
                let &(score, _, n) = pairs.iter().find(|p| p.1 == c).unwrap_or(&pairs[0]);
                let (feature, sign, name) = NAMES[n];
                (feature, score * sign, format!("{name} {}", c + 1))
            })
        })
        .collect()
}

/// Projects centred rows on the two leading principal components.
pub(crate) fn principal_plane(z: &Array2<f64>) -> (Vec<[f32; 2]>, [f32; 2]) {
    let n = z.nrows().max(2) as f64;
    let cov = z.t().dot(z) / (n - 1.0);
    let Ok((values, vectors)) = cov.eigh() else {
        return (vec![[0.0, 0.0]; z.nrows()], [0.0, 0.0]);
    };
    // linfa-linalg's eigh leaves the eigenvalues in no particular order, so
    // pick the two largest by value, not by position.
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let (first, second) = (order[0], order.get(1).copied().unwrap_or(order[0]));
    let total: f64 = values.iter().sum::<f64>().max(1e-12);
    let pc = [vectors.column(first), vectors.column(second)];
    let xy = z
        .rows()
        .into_iter()
        .map(|r| [r.dot(&pc[0]) as f32, r.dot(&pc[1]) as f32])
        .collect();
    let explained = [
        (values[first] / total) as f32,
        (values[second] / total) as f32,
    ];
    (xy, explained)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(prev: f32, sink: f32, induction: f32, jitter: f32) -> HeadFeatures {
        HeadFeatures {
            entropy: 0.3 + jitter,
            distance: 2.0 + jitter,
            reach: 0.4 + jitter,
            sink,
            prev_token: prev,
            diagonal: 0.1,
            induction,
            contribution: 1.0,
        }
    }

    #[test]
    fn three_planted_groups_are_found_and_named_by_their_feature() {
        let mut f = Vec::new();
        for i in 0..12 {
            let j = i as f32 * 0.001;
            f.push(match i % 3 {
                0 => head(0.9, 0.05, 0.0, j),
                1 => head(0.05, 0.9, 0.0, j),
                _ => head(0.05, 0.1, 0.8, j),
            });
        }
        let all = cluster(&f, &[4, 4, 4], 7).unwrap();
        assert_eq!(all.k, 3, "{:?}", all.partitions);
        assert_eq!(all.partitions.len(), 6);
        assert!(all.partitions.iter().all(|p| p.clusters.len() == p.k));
        let c = all.best();
        let mut names: Vec<&str> = c.clusters.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["induction", "previous-token", "sink"]);
        // Heads planted together share a label.
        assert_eq!(c.labels[0], c.labels[3]);
        assert_ne!(c.labels[0], c.labels[1]);
        let prev = c
            .clusters
            .iter()
            .find(|c| c.name == "previous-token")
            .unwrap();
        assert_eq!(prev.size, 4);
        assert!((prev.centre[3] - 0.9).abs() < 1e-3);
        assert!(prev.z > 1.0, "{}", prev.rule);
        assert_eq!(prev.per_layer.iter().sum::<u32>(), 4);
        assert!(all.explained[0] >= all.explained[1]);
    }

    #[test]
    fn the_plane_is_spanned_by_the_leading_components() {
        // Most of the spread is along the first column, some along the
        // second, a trace along the third: the plane must be those two.
        let rows = 40;
        let z = Array2::from_shape_fn((rows, 3), |(i, j)| {
            let t = i as f64 / rows as f64 - 0.5;
            match j {
                0 => 10.0 * t,
                1 => 3.0 * (t * 7.0).sin(),
                _ => 0.01 * (t * 13.0).cos(),
            }
        });
        let z = &z - &z.mean_axis(Axis(0)).unwrap();
        let (xy, explained) = principal_plane(&z);
        assert!(explained[0] > 0.8, "{explained:?}");
        assert!(
            explained[1] > 0.05 && explained[1] < explained[0],
            "{explained:?}"
        );
        // The first coordinate follows the first column (up to sign).
        let corr: f64 = (0..rows).map(|i| f64::from(xy[i][0]) * z[[i, 0]]).sum();
        let norm_x: f64 = xy
            .iter()
            .map(|p| f64::from(p[0]).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm_z: f64 = z.column(0).iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((corr / (norm_x * norm_z)).abs() > 0.95);
    }

    #[test]
    fn too_few_heads_is_an_error() {
        assert!(cluster(&[HeadFeatures::default(); 3], &[3], 1).is_err());
    }
}
