//! Per-head attention features, measured over a set of prompts.
//!
//! Each feature is an average over the query rows of every prompt, computed
//! from the attention probabilities llama.cpp produced (`kq_soft_max`), so
//! the numbers describe the quantized model as it really runs. Definitions
//! follow the interpretability literature: previous-token and induction
//! scores as in Olsson et al. (2022), "sink" share as in Xiao et al. (2023),
//! entropy normalised by the number of positions a row may attend to.

use serde::Serialize;

/// Attention probabilities of one layer for one prompt, head-major:
/// element (head `h`, query `i`, key `j`) is at `(h * n_tok + i) * n_tok + j`.
/// Rows are causal: keys after the query are 0.
#[derive(Debug, Clone, Copy)]
pub struct LayerAttention<'a> {
    pub n_head: usize,
    pub n_tok: usize,
    pub probs: &'a [f32],
}

impl LayerAttention<'_> {
    /// Row `i` of head `h`, keys `0..=i`.
    pub fn row(&self, h: usize, i: usize) -> &[f32] {
        let start = (h * self.n_tok + i) * self.n_tok;
        &self.probs[start..=start + i]
    }
}

/// The features of one head, averaged over prompts and query rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct HeadFeatures {
    /// Mean attention entropy divided by ln(positions the row may attend to):
    /// 0 = all attention on one token, 1 = spread evenly.
    pub entropy: f32,
    /// Mean distance in tokens between a query and the keys it attends to.
    pub distance: f32,
    /// The same distance as a share of how far back the query could look:
    /// 0 = attends to itself, 1 = attends to the first token.
    pub reach: f32,
    /// Mean share of attention on the first token (the attention "sink").
    pub sink: f32,
    /// Mean attention from each token to the one just before it.
    pub prev_token: f32,
    /// Mean attention from each token to itself.
    pub diagonal: f32,
    /// Mean attention, on a repeated sequence, from a token to the token that
    /// followed its previous occurrence (what an induction head does).
    pub induction: f32,
    /// Mean norm of the head's contribution to the residual stream per token.
    pub contribution: f32,
}

/// Names, labels and meanings of the features, in table order.
pub const FEATURES: [(&str, &str, &str); 8] = [
    (
        "entropy",
        "entropy",
        "attention entropy / ln(span): 0 focused, 1 uniform",
    ),
    ("distance", "distance", "mean query-key distance in tokens"),
    (
        "reach",
        "reach",
        "distance as a share of the span: 0 self, 1 first token",
    ),
    ("sink", "sink", "share of attention on the first token"),
    (
        "prev_token",
        "previous token",
        "attention to the token just before",
    ),
    ("diagonal", "self", "attention to the token itself"),
    (
        "induction",
        "induction",
        "attention to the token after the previous occurrence, on a repeated sequence",
    ),
    (
        "contribution",
        "contribution",
        "norm of the head's output added to the residual stream",
    ),
];

impl HeadFeatures {
    /// The features in [`FEATURES`] order.
    pub fn to_array(&self) -> [f32; 8] {
        [
            self.entropy,
            self.distance,
            self.reach,
            self.sink,
            self.prev_token,
            self.diagonal,
            self.induction,
            self.contribution,
        ]
    }
}

/// For each query position, the key position an induction head would attend
/// to: one past the latest earlier occurrence of the same token, when that
/// is not the query itself or the token just before it (which previous-token
/// and self heads already explain).
pub fn induction_targets(tokens: &[i32]) -> Vec<Option<usize>> {
    let mut last_seen = std::collections::HashMap::new();
    tokens
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let target = last_seen
                .get(&t)
                .map(|&p: &usize| p + 1)
                .filter(|&target| target + 1 < i);
            last_seen.insert(t, i);
            target
        })
        .collect()
}

/// Running sums for every head of every layer.
#[derive(Debug, Clone)]
pub struct HeadAccumulator {
    n_head: Vec<usize>,
    sums: Vec<[f64; 7]>,
    rows: Vec<[u64; 7]>,
    contribution: Vec<(f64, u64)>,
}

/// Indices into the running sums.
const ENTROPY: usize = 0;
const DISTANCE: usize = 1;
const SINK: usize = 2;
const PREV: usize = 3;
const DIAG: usize = 4;
const INDUCTION: usize = 5;
const REACH: usize = 6;

impl HeadAccumulator {
    /// Sums for a model with `n_head[l]` heads in layer `l`.
    pub fn new(n_head: Vec<usize>) -> Self {
        let total: usize = n_head.iter().sum();
        HeadAccumulator {
            n_head,
            sums: vec![[0.0; 7]; total],
            rows: vec![[0; 7]; total],
            contribution: vec![(0.0, 0); total],
        }
    }

    fn index(&self, layer: usize, head: usize) -> usize {
        self.n_head[..layer].iter().sum::<usize>() + head
    }

    /// Adds one prompt's attention for `layer`. `induction` says whether
    /// this prompt's rows count towards the induction score.
    pub fn add_attention(
        &mut self,
        layer: usize,
        attn: &LayerAttention<'_>,
        targets: &[Option<usize>],
        induction: bool,
    ) {
        for h in 0..attn.n_head.min(self.n_head[layer]) {
            let idx = self.index(layer, h);
            let (sums, rows) = (&mut self.sums[idx], &mut self.rows[idx]);
            for i in 0..attn.n_tok {
                let row = attn.row(h, i);
                let span = row.iter().filter(|&&p| p > 0.0).count();
                if span >= 2 {
                    let entropy: f64 = row
                        .iter()
                        .filter(|&&p| p > 0.0)
                        .map(|&p| -f64::from(p) * f64::from(p).ln())
                        .sum();
                    sums[ENTROPY] += entropy / (span as f64).ln();
                    rows[ENTROPY] += 1;
                }
                let distance: f64 = row
                    .iter()
                    .enumerate()
                    .map(|(j, &p)| f64::from(p) * (i - j) as f64)
                    .sum();
                sums[DISTANCE] += distance;
                rows[DISTANCE] += 1;
                // Row 0 can only attend to itself: it says nothing about a head.
                if i >= 1 {
                    sums[REACH] += distance / i as f64;
                    rows[REACH] += 1;
                    sums[SINK] += f64::from(row[0]);
                    sums[PREV] += f64::from(row[i - 1]);
                    sums[DIAG] += f64::from(row[i]);
                    rows[SINK] += 1;
                    rows[PREV] += 1;
                    rows[DIAG] += 1;
                }
                if induction && let Some(Some(t)) = targets.get(i) {
                    sums[INDUCTION] += f64::from(row[*t]);
                    rows[INDUCTION] += 1;
                }
            }
        }
    }

    /// Adds the norm of a head's contribution to the residual for one token.
    pub fn add_contribution(&mut self, layer: usize, head: usize, norm: f32) {
        let idx = self.index(layer, head);
        self.contribution[idx].0 += f64::from(norm);
        self.contribution[idx].1 += 1;
    }

    /// The averaged features, layer-major (all heads of layer 0 first).
    pub fn finish(&self) -> Vec<HeadFeatures> {
        let mean = |sum: f64, n: u64| if n == 0 { 0.0 } else { (sum / n as f64) as f32 };
        self.sums
            .iter()
            .zip(&self.rows)
            .zip(&self.contribution)
            .map(|((s, n), c)| HeadFeatures {
                entropy: mean(s[ENTROPY], n[ENTROPY]),
                distance: mean(s[DISTANCE], n[DISTANCE]),
                reach: mean(s[REACH], n[REACH]),
                sink: mean(s[SINK], n[SINK]),
                prev_token: mean(s[PREV], n[PREV]),
                diagonal: mean(s[DIAG], n[DIAG]),
                induction: mean(s[INDUCTION], n[INDUCTION]),
                contribution: mean(c.0, c.1),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two heads over four tokens: head 0 always looks one back (or at
    /// itself on row 0), head 1 spreads evenly.
    fn toy() -> Vec<f32> {
        let n = 4;
        let mut p = vec![0f32; 2 * n * n];
        for i in 0..n {
            p[i * n + i.saturating_sub(1)] = 1.0;
            for j in 0..=i {
                p[(n + i) * n + j] = 1.0 / (i + 1) as f32;
            }
        }
        p
    }

    #[test]
    fn features_of_a_previous_token_head_and_a_uniform_head() {
        let probs = toy();
        let attn = LayerAttention {
            n_head: 2,
            n_tok: 4,
            probs: &probs,
        };
        let mut acc = HeadAccumulator::new(vec![2]);
        acc.add_attention(0, &attn, &induction_targets(&[1, 2, 3, 4]), false);
        let f = acc.finish();
        assert_eq!(f[0].prev_token, 1.0);
        assert_eq!(f[0].diagonal, 0.0);
        assert_eq!(f[0].distance, 0.75); // rows 1..3 at distance 1, row 0 at 0
        let reach = (1.0 + 0.5 + 1.0 / 3.0) / 3.0;
        assert!((f[0].reach - reach).abs() < 1e-6);
        assert_eq!(f[0].entropy, 0.0);
        assert!((f[1].entropy - 1.0).abs() < 1e-6, "{}", f[1].entropy);
        let sink = (1.0 / 2.0 + 1.0 / 3.0 + 1.0 / 4.0) / 3.0;
        assert!((f[1].sink - sink).abs() < 1e-6);
    }

    #[test]
    fn induction_targets_point_past_the_previous_occurrence() {
        // BOS a b c a b c: the second `a` (4) should look at `b` (2).
        let t = induction_targets(&[0, 10, 11, 12, 10, 11, 12]);
        assert_eq!(t, vec![None, None, None, None, Some(2), Some(3), Some(4)]);
        // A token repeated immediately has no induction target.
        assert_eq!(induction_targets(&[5, 5, 5]), vec![None, None, None]);
    }

    #[test]
    fn induction_only_counts_flagged_prompts() {
        let tokens = [0, 10, 11, 12, 10, 11];
        let n = tokens.len();
        let mut probs = vec![0f32; n * n];
        for i in 0..n {
            probs[i * n + i] = 1.0;
        }
        // Row 4 (`10` again) attends fully to position 2 (after the first `10`).
        probs[4 * n + 4] = 0.0;
        probs[4 * n + 2] = 1.0;
        let attn = LayerAttention {
            n_head: 1,
            n_tok: n,
            probs: &probs,
        };
        let targets = induction_targets(&tokens);
        let mut acc = HeadAccumulator::new(vec![1]);
        acc.add_attention(0, &attn, &targets, false);
        assert_eq!(acc.finish()[0].induction, 0.0);
        acc.add_attention(0, &attn, &targets, true);
        // Rows 4 and 5 have targets 2 and 3: scores 1 and 0.
        assert_eq!(acc.finish()[0].induction, 0.5);
    }
}
