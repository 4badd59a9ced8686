//! UMAP (McInnes, Healy & Melville, 2018) from the precomputed neighbour
//! graph: every token placed in 3D or 2D so that its nearest neighbours in
//! the embedding space stay near it.
//!
//! Written small rather than taken from a crate: `umap-rs` (the one that
//! takes a precomputed kNN graph) draws from `rand::rng()` in a Hogwild
//! loop, so its layout changes between runs, and it brings ndarray 0.17
//! beside ours. This one is deterministic for a seed whatever the number of
//! threads:
//!
//! 1. the fuzzy simplicial set: per token, `rho` (distance to its nearest
//!    neighbour) and `sigma` (binary search so the memberships sum to
//!    log2(k + 1)), memberships `exp(−(d − rho)/sigma)`, symmetrised by the
//!    fuzzy union `a + b − ab` (distance is cosine distance `1 − s`);
//! 2. the initial layout is given (the caller passes PCA coordinates),
//!    scaled to ±10 with a little seeded noise;
//! 3. SGD on the cross-entropy with negative sampling, each edge sampled in
//!    proportion to its weight; `a`, `b` fitted from `min_dist`. Each epoch
//!    reads the other points from a snapshot of the previous epoch and moves
//!    only the edge's head (each edge is stored in both directions, so both
//!    ends move), so vertex chunks run on threads independently; a chunk's
//!    random stream is seeded from (seed, epoch, chunk), not from a thread.

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};

use super::matrix::Matrix;
use super::neighbours::Neighbours;

/// Vertices per unit of parallel work (and per random stream).
const CHUNK: usize = 1024;

/// How [`layout`] runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UmapOptions {
    /// The smallest distance between points in the layout.
    pub min_dist: f32,
    pub spread: f32,
    /// SGD epochs; `None` picks by vocabulary size ([`default_epochs`]).
    pub epochs: Option<usize>,
    /// Negative samples per positive one.
    pub negative_rate: usize,
    pub learning_rate: f32,
    pub repulsion: f32,
    pub seed: u64,
}

impl Default for UmapOptions {
    fn default() -> Self {
        UmapOptions {
            min_dist: 0.1,
            spread: 1.0,
            epochs: None,
            negative_rate: 5,
            learning_rate: 1.0,
            repulsion: 1.0,
            seed: 0x756d_6170,
        }
    }
}

/// Epochs for `n` points: umap-learn's 500 for small sets, far fewer as
/// the vocabulary grows so the stage stays within its time budget (an
/// epoch costs O(n · k · negative_rate): 70 ms for the demo model's 49,152
/// tokens in 3D on 2 cores). 20 for the demo model (3D and 2D together
/// 2.8 s; 50 epochs would keep 39 % more of the neighbours for 2.5× the
/// time); the PCA start already holds the large-scale shape.
pub fn default_epochs(n: usize) -> usize {
    match n {
        0..=10_000 => 500,
        10_001..=30_000 => 100,
        30_001..=100_000 => 20,
        _ => 10,
    }
}

/// The symmetric fuzzy graph, compressed rows: vertex `i`'s edges are
/// `offsets[i]..offsets[i + 1]` of `targets` and `weights`.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub offsets: Vec<usize>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
}

impl Graph {
    pub fn n_vertices(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
}

/// `rho` and `sigma` for one token's neighbour distances (ascending or
/// not), umap-learn's `smooth_knn_dist` with local connectivity 1.
fn smooth(dists: &[f32], target: f32, mean_all: f32) -> (f32, f32) {
    let rho = dists
        .iter()
        .copied()
        .filter(|&d| d > 0.0)
        .fold(f32::INFINITY, f32::min);
    let rho = if rho.is_finite() { rho } else { 0.0 };
    let (mut lo, mut hi, mut mid) = (0.0f32, f32::INFINITY, 1.0f32);
    for _ in 0..64 {
        let psum: f32 = dists
            .iter()
            .map(|&d| {
                let x = d - rho;
                if x > 0.0 { (-x / mid).exp() } else { 1.0 }
            })
            .sum();
        if (psum - target).abs() < 1e-5 {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            mid = if hi.is_finite() {
                (lo + hi) / 2.0
            } else {
                mid * 2.0
            };
        }
    }
    let mean = if dists.is_empty() {
        0.0
    } else {
        dists.iter().sum::<f32>() / dists.len() as f32
    };
    let floor = 1e-3 * if rho > 0.0 { mean } else { mean_all };
    (rho, mid.max(floor).max(f32::MIN_POSITIVE))
}

/// The fuzzy simplicial set of the kNN graph (similarities are cosine).
pub fn fuzzy_graph(nb: &Neighbours) -> Graph {
    let k = nb.k;
    let n = nb.len();
    let valid = |i: usize, j: u32| (j as usize) < n && j as usize != i;
    let dist = |s: f32| (1.0 - s).max(0.0);
    let mean_all = if nb.sims.is_empty() {
        0.0
    } else {
        nb.sims.iter().map(|&s| dist(s)).sum::<f32>() / nb.sims.len() as f32
    };
    let target = ((k + 1) as f32).log2();
    // Directed memberships, row-major like `nb.ids`.
    let mut w = vec![0f32; n * k];
    let mut dists = Vec::with_capacity(k);
    for i in 0..n {
        dists.clear();
        dists.extend(
            (0..k)
                .filter(|&j| valid(i, nb.ids[i * k + j]))
                .map(|j| dist(nb.sims[i * k + j])),
        );
        let (rho, sigma) = smooth(&dists, target, mean_all);
        for j in 0..k {
            if valid(i, nb.ids[i * k + j]) {
                let x = dist(nb.sims[i * k + j]) - rho;
                w[i * k + j] = if x > 0.0 { (-x / sigma).exp() } else { 1.0 };
            }
        }
    }
    let directed = |i: usize, j: usize| -> f32 {
        nb.of(i)
            .iter()
            .position(|&t| t as usize == j)
            .map_or(0.0, |p| w[i * k + p])
    };
    // Edges i→j that exist only because j lists i.
    let mut extra: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    for j in 0..n {
        for p in 0..k {
            let i = nb.ids[j * k + p];
            if valid(j, i) && !nb.of(i as usize).contains(&(j as u32)) {
                extra[i as usize].push((j as u32, w[j * k + p]));
            }
        }
    }
    let mut offsets = Vec::with_capacity(n + 1);
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    offsets.push(0);
    for i in 0..n {
        for p in 0..k {
            let j = nb.ids[i * k + p];
            if valid(i, j) {
                let a = w[i * k + p];
                let b = directed(j as usize, i);
                targets.push(j);
                weights.push(a + b - a * b);
            }
        }
        for &(j, b) in &extra[i] {
            targets.push(j);
            weights.push(b);
        }
        offsets.push(targets.len());
    }
    Graph {
        offsets,
        targets,
        weights,
    }
}

/// `a` and `b` of the layout's membership curve `1 / (1 + a·d^(2b))`,
/// least-squares fitted (Levenberg–Marquardt) to 1 below `min_dist` and
/// `exp(−(d − min_dist)/spread)` beyond, as umap-learn's `find_ab_params`.
pub fn find_ab(min_dist: f32, spread: f32) -> (f32, f32) {
    let xs: Vec<f64> = (0..300)
        .map(|i| f64::from(spread) * 3.0 * i as f64 / 299.0)
        .collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < f64::from(min_dist) {
                1.0
            } else {
                (-(x - f64::from(min_dist)) / f64::from(spread)).exp()
            }
        })
        .collect();
    let cost = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let f = 1.0 / (1.0 + a * x.powf(2.0 * b));
                (f - y) * (f - y)
            })
            .sum()
    };
    let (mut a, mut b, mut lambda) = (1.0f64, 1.0f64, 1e-3f64);
    let mut c = cost(a, b);
    for _ in 0..200 {
        // Normal equations J^T J δ = −J^T r for the two parameters.
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            if x <= 0.0 {
                continue;
            }
            let p = x.powf(2.0 * b);
            let f = 1.0 / (1.0 + a * p);
            let r = f - y;
            let da = -p * f * f;
            let db = -a * p * 2.0 * x.ln() * f * f;
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let (maa, mbb) = (jaa * (1.0 + lambda), jbb * (1.0 + lambda));
        let det = maa * mbb - jab * jab;
        if det.abs() < 1e-300 {
            break;
        }
        let da = -(mbb * ga - jab * gb) / det;
        let db = -(maa * gb - jab * ga) / det;
        let (na, nb) = (a + da, b + db);
        let nc = if na > 0.0 && nb > 0.0 {
            cost(na, nb)
        } else {
            f64::INFINITY
        };
        if nc < c {
            let done = (c - nc) < 1e-14;
            (a, b, c) = (na, nb, nc);
            lambda *= 0.3;
            if done {
                break;
            }
        } else {
            lambda *= 10.0;
            if lambda > 1e12 {
                break;
            }
        }
    }
    (a as f32, b as f32)
}

/// One chunk's share of an epoch: its points and its edges' schedules.
struct Work<'a> {
    first: usize,
    points: &'a mut [f32],
    next: &'a mut [f32],
    next_neg: &'a mut [f32],
}

/// A layout of `graph`'s vertices in `init.dim` dimensions, starting from
/// `init` (one row per vertex; PCA coordinates serve).
pub fn layout(graph: &Graph, init: &Matrix, opts: &UmapOptions) -> Matrix {
    let n = graph.n_vertices().min(init.n_rows);
    let dim = init.dim;
    if n == 0 || dim == 0 {
        return Matrix {
            n_rows: n,
            dim,
            data: vec![0.0; n * dim],
        };
    }
    let epochs = opts.epochs.unwrap_or_else(|| default_epochs(n)).max(1);
    let (a, b) = find_ab(opts.min_dist, opts.spread);
    // Scaled to ±10 with noise that separates identical rows.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(opts.seed);
    let scale = init.data[..n * dim]
        .iter()
        .map(|v| v.abs())
        .filter(|v| v.is_finite())
        .fold(0.0f32, f32::max);
    let scale = if scale > 0.0 { 10.0 / scale } else { 1.0 };
    let mut y: Vec<f32> = init.data[..n * dim]
        .iter()
        .map(|&v| {
            let v = if v.is_finite() { v * scale } else { 0.0 };
            v + (unit(&mut rng) - 0.5) * 2e-3
        })
        .collect();
    // Edges too weak to be sampled even once are left out, as umap-learn
    // does.
    let end = graph.offsets[n];
    let max_w = graph.weights[..end].iter().copied().fold(0.0f32, f32::max);
    let period: Vec<f32> = graph.weights[..end]
        .iter()
        .map(|&w| {
            if max_w > 0.0 && w >= max_w / epochs as f32 {
                max_w / w
            } else {
                f32::INFINITY
            }
        })
        .collect();
    let neg_rate = opts.negative_rate as f32;
    let mut next: Vec<f32> = period.clone();
    let mut next_neg: Vec<f32> = period.iter().map(|p| p / neg_rate.max(1.0)).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 16);
    let mut snapshot = y.clone();
    for epoch in 0..epochs {
        let alpha = opts.learning_rate * (1.0 - epoch as f32 / epochs as f32);
        snapshot.copy_from_slice(&y);
        // Split points and edge schedules at chunk boundaries.
        let mut work = Vec::with_capacity(n.div_ceil(CHUNK));
        {
            let (mut pts, mut nx, mut nn) = (&mut y[..], &mut next[..], &mut next_neg[..]);
            let mut first = 0;
            while first < n {
                let last = (first + CHUNK).min(n);
                let edges = graph.offsets[last] - graph.offsets[first];
                let (p, rest_p) = pts.split_at_mut((last - first) * dim);
                let (x, rest_x) = nx.split_at_mut(edges);
                let (g, rest_g) = nn.split_at_mut(edges);
                work.push(Work {
                    first,
                    points: p,
                    next: x,
                    next_neg: g,
                });
                (pts, nx, nn) = (rest_p, rest_x, rest_g);
                first = last;
            }
        }
        let ctx = Epoch {
            graph,
            snapshot: &snapshot,
            period: &period,
            n,
            dim,
            a,
            b,
            alpha,
            epoch: epoch as f32,
            neg_period_div: neg_rate.max(1.0),
            gamma: opts.repulsion,
            seed: opts.seed ^ ((epoch as u64) << 32),
        };
        if threads == 1 || work.len() == 1 {
            work.iter_mut().for_each(|w| ctx.run(w));
        } else {
            let per = work.len().div_ceil(threads);
            std::thread::scope(|s| {
                for group in work.chunks_mut(per) {
                    let ctx = &ctx;
                    s.spawn(move || group.iter_mut().for_each(|w| ctx.run(w)));
                }
            });
        }
    }
    Matrix {
        n_rows: n,
        dim,
        data: y,
    }
}

/// What every chunk of one epoch shares.
struct Epoch<'a> {
    graph: &'a Graph,
    snapshot: &'a [f32],
    period: &'a [f32],
    n: usize,
    dim: usize,
    a: f32,
    b: f32,
    alpha: f32,
    epoch: f32,
    neg_period_div: f32,
    gamma: f32,
    seed: u64,
}

impl Epoch<'_> {
    fn run(&self, w: &mut Work<'_>) {
        let dim = self.dim;
        let (a, b) = (self.a, self.b);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(
            self.seed ^ (w.first as u64 / CHUNK as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let e0 = self.graph.offsets[w.first];
        let count = w.points.len() / dim;
        let mut diff = [0f32; 8];
        for local in 0..count {
            let i = w.first + local;
            let yi = &mut w.points[local * dim..(local + 1) * dim];
            for e in self.graph.offsets[i]..self.graph.offsets[i + 1] {
                let le = e - e0;
                if w.next[le] > self.epoch {
                    continue;
                }
                let j = self.graph.targets[e] as usize;
                if j >= self.n {
                    continue;
                }
                let yj = &self.snapshot[j * dim..(j + 1) * dim];
                let mut d2 = 0.0;
                for c in 0..dim {
                    diff[c] = yi[c] - yj[c];
                    d2 += diff[c] * diff[c];
                }
                if d2 > 0.0 {
                    let pb = pow(d2, b);
                    let coeff = -2.0 * a * b * pb / d2 / (a * pb + 1.0);
                    for c in 0..dim {
                        yi[c] += clip(coeff * diff[c]) * self.alpha;
                    }
                }
                w.next[le] += self.period[e];
                let neg_period = self.period[e] / self.neg_period_div;
                let n_neg = ((self.epoch - w.next_neg[le]) / neg_period).max(0.0) as usize;
                for _ in 0..n_neg {
                    let k = (((rng.next_u64() >> 32) * self.n as u64) >> 32) as usize;
                    if k == i {
                        continue;
                    }
                    let yk = &self.snapshot[k * dim..(k + 1) * dim];
                    let mut d2 = 0.0;
                    for c in 0..dim {
                        diff[c] = yi[c] - yk[c];
                        d2 += diff[c] * diff[c];
                    }
                    if d2 > 0.0 {
                        let coeff = 2.0 * self.gamma * b / ((0.001 + d2) * (a * pow(d2, b) + 1.0));
                        for c in 0..dim {
                            yi[c] += clip(coeff * diff[c]) * self.alpha;
                        }
                    }
                }
                w.next_neg[le] += n_neg as f32 * neg_period;
            }
        }
    }
}

/// `x^y` for `x > 0` to about 1e-4 relative, several times faster than
/// `powf` (the SGD's inner loop; its steps are noisy far beyond that):
/// `2^(y · log2 x)` with the exponent bits and two short polynomials.
#[inline]
fn pow(x: f32, y: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    // log2(m) on [1, 2) through t = m − 1, least-squares degree 6 (error
    // below 5e-6).
    let t = m - 1.0;
    let log2m = t
        * (1.442_517
            + t * (-0.717_897_6
                + t * (0.456_890_03
                    + t * (-0.277_355_94 + t * (0.121_905_03 + t * -0.026_062_917)))));
    let z = y * (e as f32 + log2m);
    if z < -126.0 {
        return 0.0;
    }
    if z > 127.0 {
        return f32::INFINITY;
    }
    let zi = z.floor();
    let f = z - zi;
    // 2^f on [0, 1).
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5 + f * (0.055_504_1 + f * (0.009_618_1 + f * 0.001_333_6))));
    p * f32::from_bits(((zi as i32 + 127) as u32) << 23)
}

fn clip(v: f32) -> f32 {
    v.clamp(-4.0, 4.0)
}

/// A uniform number in [0, 1).
fn unit(rng: &mut Xoshiro256PlusPlus) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

/// UMAP of the neighbour graph in 3D and in 2D, both started from the PCA
/// layout `pca` (`n × 3`; its first two columns start the 2D one).
pub fn layouts(nb: &Neighbours, pca: &Matrix, opts: &UmapOptions) -> (Matrix, Matrix) {
    let graph = fuzzy_graph(nb);
    let three = layout(&graph, pca, opts);
    let init2: Vec<f32> = (0..pca.n_rows)
        .flat_map(|i| {
            let r = pca.row(i);
            [
                r.first().copied().unwrap_or(0.0),
                r.get(1).copied().unwrap_or(0.0),
            ]
        })
        .collect();
    let init2 = Matrix {
        n_rows: pca.n_rows,
        dim: 2,
        data: init2,
    };
    let two = layout(&graph, &init2, opts);
    (three, two)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::embeddings::projection::{knn_preservation, sample};

    #[test]
    fn a_and_b_match_umap_learn() {
        // umap-learn's find_ab_params(1.0, 0.1) = (1.5769, 0.8951).
        let (a, b) = find_ab(0.1, 1.0);
        assert!((a - 1.577).abs() < 0.02, "a = {a}");
        assert!((b - 0.895).abs() < 0.01, "b = {b}");
    }

    #[test]
    fn fast_pow_is_close_to_powf() {
        for &y in &[0.79f32, 0.895, 1.0, 1.2] {
            for i in 1..2000 {
                let x = i as f32 * 0.013;
                let (got, want) = (pow(x, y), x.powf(y));
                assert!(
                    ((got - want) / want).abs() < 2e-4,
                    "{x}^{y}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn smooth_hits_log2_k() {
        let d = [0.1, 0.2, 0.3, 0.5, 0.8];
        let (rho, sigma) = smooth(&d, 6f32.log2(), 0.4);
        assert_eq!(rho, 0.1);
        let s: f32 = d.iter().map(|&x| (-(x - rho).max(0.0) / sigma).exp()).sum();
        assert!((s - 6f32.log2()).abs() < 1e-3, "{s}");
    }

    /// `clusters` groups of `per` points in 16 dimensions: each group's
    /// points near one random centre, far from the others; the exact
    /// cosine neighbours, and a PCA-free start (a random layout).
    fn clustered(clusters: usize, per: usize, seed: u64) -> (Neighbours, Matrix, Matrix) {
        let (d, k) = (16usize, 10usize);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let n = clusters * per;
        let centres: Vec<f32> = (0..clusters * d)
            .map(|_| unit(&mut rng) * 2.0 - 1.0)
            .collect();
        let mut data = Vec::with_capacity(n * d);
        for c in 0..clusters {
            for _ in 0..per {
                for j in 0..d {
                    data.push(centres[c * d + j] + (unit(&mut rng) - 0.5) * 0.3);
                }
            }
        }
        let m = Matrix::new(n, d, data).unwrap();
        let unit_rows = m.unit_rows();
        let nb = crate::analysis::embeddings::neighbours::exact(&unit_rows, k);
        let random = |dim: usize, rng: &mut Xoshiro256PlusPlus| {
            Matrix::new(
                n,
                dim,
                (0..n * dim).map(|_| unit(rng) * 20.0 - 10.0).collect(),
            )
            .unwrap()
        };
        let init = random(3, &mut rng);
        let baseline = random(3, &mut rng);
        (nb, init, baseline)
    }

    #[test]
    fn the_same_seed_gives_the_same_layout() {
        let (nb, init, _) = clustered(6, 60, 3);
        let opts = UmapOptions {
            epochs: Some(60),
            ..UmapOptions::default()
        };
        let (a3, a2) = layouts(&nb, &init, &opts);
        let (b3, b2) = layouts(&nb, &init, &opts);
        assert_eq!(a3, b3);
        assert_eq!(a2, b2);
        assert!(a3.data.iter().all(|v| v.is_finite()));
        let other = layouts(
            &nb,
            &init,
            &UmapOptions {
                seed: 7,
                ..opts.clone()
            },
        );
        assert_ne!(other.0, a3, "another seed, another layout");
    }

    #[test]
    fn umap_keeps_clusters_far_better_than_a_random_layout() {
        let (nb, init, baseline) = clustered(8, 150, 11);
        let (three, two) = layouts(&nb, &init, &UmapOptions::default());
        let s = sample(nb.len(), nb.len());
        let random = knn_preservation(&baseline, 3, &nb, &s);
        let q3 = knn_preservation(&three, 3, &nb, &s);
        let q2 = knn_preservation(&two, 2, &nb, &s);
        // A random layout keeps ~k/n of the neighbours by chance; inside a
        // blob of 150 the neighbours are near-random, so ~0.07 of them is
        // the most a layout that only keeps the clusters apart would keep.
        assert!(random < 0.02, "random {random}");
        assert!(
            q3 > 0.25 && q3 > 10.0 * random,
            "3D {q3} vs random {random}"
        );
        assert!(
            q2 > 0.25 && q2 > 10.0 * random,
            "2D {q2} vs random {random}"
        );
        // And the clusters stay apart: a point's nearest points in the
        // layout are of its own cluster.
        let same = |m: &Matrix| {
            let per = 150;
            let mut hits = 0;
            for i in 0..m.n_rows {
                let mut d: Vec<(f32, usize)> = (0..m.n_rows)
                    .filter(|&j| j != i)
                    .map(|j| {
                        let d2 = m
                            .row(i)
                            .iter()
                            .zip(m.row(j))
                            .map(|(a, b)| (a - b) * (a - b));
                        (d2.sum(), j)
                    })
                    .collect();
                d.sort_by(|a, b| a.0.total_cmp(&b.0));
                hits += d[..10].iter().filter(|&&(_, j)| j / per == i / per).count();
            }
            hits as f32 / (m.n_rows * 10) as f32
        };
        let (s3, s2, sr) = (same(&three), same(&two), same(&baseline));
        assert!(s3 > 0.95 && s2 > 0.95, "own cluster: 3D {s3}, 2D {s2}");
        assert!(sr < 0.25, "random {sr}");
    }

    #[test]
    fn the_graph_is_symmetric_with_fuzzy_union_weights() {
        let (nb, _, _) = clustered(3, 30, 5);
        let g = fuzzy_graph(&nb);
        for i in 0..g.n_vertices() {
            for e in g.offsets[i]..g.offsets[i + 1] {
                let j = g.targets[e] as usize;
                let back = (g.offsets[j]..g.offsets[j + 1]).find(|&f| g.targets[f] as usize == i);
                let f = back.expect("every edge has its reverse");
                assert!((g.weights[e] - g.weights[f]).abs() < 1e-6);
                assert!(g.weights[e] > 0.0 && g.weights[e] <= 1.0);
            }
        }
    }
}
