//! Groups of tokens: k-means over the reduced unit rows, each group
//! labelled by the tokens nearest its centre.

use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};

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

/// k-means with `k` groups (fewer for tiny vocabularies) over `points`:
/// k-means++ seeding and Lloyd's iterations until no token changes group
/// (at most [`MAX_ITERATIONS`]), deterministic for `seed`; `n_central`
/// tokens label each group.
pub fn kmeans(
    points: &Matrix,
    k: usize,
    seed: u64,
    n_central: usize,
) -> Result<Clusters, EmbeddingError> {
    let n = points.n_rows;
    if n == 0 {
        return Ok(Clusters {
            labels: Vec::new(),
            clusters: Vec::new(),
        });
    }
    if k > usize::from(u16::MAX) {
        return Err(EmbeddingError::Analysis(format!(
            "{k} clusters are too many"
        )));
    }
    let k = k.min(n).max(1);
    let d = points.dim;
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut centres = seed_plus_plus(points, k, &mut rng);
    let mut labels = vec![0u16; n];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    for iteration in 0..MAX_ITERATIONS {
        let changed = assign(points, &centres, &mut labels, threads);
        if iteration > 0 && changed == 0 {
            break;
        }
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        for (i, &l) in labels.iter().enumerate() {
            let c = usize::from(l);
            counts[c] += 1;
            for (s, &x) in sums[c * d..(c + 1) * d].iter_mut().zip(points.row(i)) {
                *s += f64::from(x);
            }
        }
        for c in 0..k {
            // An emptied group keeps its centre.
            if counts[c] > 0 {
                for j in 0..d {
                    centres[c * d + j] = (sums[c * d + j] / counts[c] as f64) as f32;
                }
            }
        }
    }
    let mut clusters = Vec::with_capacity(k);
    for c in 0..k {
        let centre = &centres[c * d..(c + 1) * d];
        let mut top = TopK::new(n_central);
        let mut size = 0;
        for (i, &l) in labels.iter().enumerate() {
            if usize::from(l) == c {
                size += 1;
                top.push(-distance2(points.row(i), centre), i as u32);
            }
        }
        clusters.push(Cluster {
            size,
            central: top.into_items().into_iter().map(|(_, i)| i).collect(),
        });
    }
    Ok(Clusters { labels, clusters })
}

/// Lloyd's iterations at most.
pub const MAX_ITERATIONS: usize = 30;

/// Squared Euclidean distance, in eight independent lanes so the compiler
/// can vectorise it.
fn distance2(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let t = x[l] - y[l];
            lanes[l] += t * t;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// k-means++: each next centre drawn with probability proportional to the
/// squared distance to the nearest centre so far.
fn seed_plus_plus(points: &Matrix, k: usize, rng: &mut Xoshiro256Plus) -> Vec<f32> {
    let n = points.n_rows;
    let d = points.dim;
    let mut centres = Vec::with_capacity(k * d);
    let first = (rng.next_u64() % n as u64) as usize;
    centres.extend_from_slice(points.row(first));
    let mut nearest: Vec<f32> = (0..n)
        .map(|i| distance2(points.row(i), points.row(first)))
        .collect();
    for _ in 1..k {
        let total: f64 = nearest.iter().map(|&x| f64::from(x)).sum();
        let pick = if total > 0.0 {
            let mut target = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let mut chosen = n - 1;
            for (i, &w) in nearest.iter().enumerate() {
                target -= f64::from(w);
                if target < 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            (rng.next_u64() % n as u64) as usize
        };
        let row = points.row(pick).to_vec();
        for (i, best) in nearest.iter_mut().enumerate() {
            *best = best.min(distance2(points.row(i), &row));
        }
        centres.extend_from_slice(&row);
    }
    centres
}

/// Puts every point in its nearest centre's group; returns how many moved.
fn assign(points: &Matrix, centres: &[f32], labels: &mut [u16], threads: usize) -> usize {
    let d = points.dim.max(1);
    let per = labels.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = labels
            .chunks_mut(per)
            .enumerate()
            .map(|(t, part)| {
                s.spawn(move || {
                    let mut moved = 0;
                    for (r, label) in part.iter_mut().enumerate() {
                        let row = points.row(t * per + r);
                        let (best, _) = centres.chunks_exact(d).enumerate().fold(
                            (0usize, f32::INFINITY),
                            |acc, (c, centre)| {
                                let dist = distance2(row, centre);
                                if dist < acc.1 { (c, dist) } else { acc }
                            },
                        );
                        let best = best as u16;
                        if *label != best {
                            *label = best;
                            moved += 1;
                        }
                    }
                    moved
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_groups() {
        let data: Vec<f32> = (0..600).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let m = Matrix::new(200, 3, data).unwrap();
        let a = kmeans(&m, 5, 9, 3).unwrap();
        assert_eq!(a, kmeans(&m, 5, 9, 3).unwrap());
        assert_eq!(a.clusters.iter().map(|c| c.size).sum::<usize>(), 200);
        assert!(a.labels.iter().all(|&l| l < 5));
    }

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
