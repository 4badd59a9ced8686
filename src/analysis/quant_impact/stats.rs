//! Output statistics of a quantized model against its reference, with
//! llama-perplexity's definitions (`tools/perplexity/perplexity.cpp`,
//! `--kl-divergence`): per scored token the negative log-likelihood of the
//! true next token, the KL divergence of the member's next-token
//! distribution from the reference's (summed where the reference's
//! log-probability is above −16), the change in the true token's probability
//! (Δp) and whether both pick the same most likely token; then means with
//! their standard errors, percentiles with linear interpolation, PPL with its
//! uncertainty, the PPL ratio and the correlation of per-token log-likelihoods.

use serde::{Deserialize, Serialize};

/// A token's term is in the KL sum when the reference's logit for it is
/// within this many nats of the reference's largest logit, as in
/// llama-perplexity: it stores the reference's log-probabilities as 16-bit
/// codes over `[max_logit − 16, max_logit]` and sums over the tokens whose
/// code is above 0. In log-probabilities that is `lb > lb_max − 16`, a
/// window as deep as the distribution is flat (`lb_max = −log Σ e^(l − max)`),
/// not a fixed `lb > −16` (on the demo family the two give the same mean
/// KLD to three figures: the extra terms are below e^−16 each).
pub const LOGIT_WINDOW: f64 = 16.0;

/// The scores of one predicted token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenScore {
    /// −log p_member(true token).
    pub nll: f64,
    /// −log p_reference(true token).
    pub nll_base: f64,
    /// KL(reference ‖ member) over the vocabulary.
    pub kld: f64,
    /// p_member(true token) − p_reference(true token).
    pub p_diff: f64,
    /// Whether both rank the same token first.
    pub same_top: bool,
}

/// Log-softmax in f64 (llama-perplexity works in double too).
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let log_sum = sum.ln() + max;
    logits.iter().map(|&l| l as f64 - log_sum).collect()
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Scores one position: `base` and `member` are the two models' logits at
/// the same position, `target` the true next token. `None` when the rows
/// differ in length or `target` is outside them.
pub fn score(base: &[f32], member: &[f32], target: usize) -> Option<TokenScore> {
    if base.len() != member.len() || target >= base.len() {
        return None;
    }
    let lb = log_softmax(base);
    let lq = log_softmax(member);
    let floor = lb.iter().copied().fold(f64::NEG_INFINITY, f64::max) - LOGIT_WINDOW;
    let kld = lb
        .iter()
        .zip(&lq)
        .filter(|(b, _)| **b > floor)
        .map(|(b, q)| b.exp() * (b - q))
        .sum::<f64>();
    Some(TokenScore {
        nll: -lq[target],
        nll_base: -lb[target],
        kld,
        p_diff: lq[target].exp() - lb[target].exp(),
        same_top: argmax(&lb) == argmax(&lq),
    })
}

/// A mean with its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub err: f64,
}

/// Mean and standard error of the mean, `sqrt(var / (n − 1))` with the
/// population variance, as llama-perplexity computes them.
pub fn mean_err(values: impl Iterator<Item = f64> + Clone) -> Estimate {
    let (n, sum, sum2) = values.fold((0usize, 0.0, 0.0), |(n, s, s2), x| {
        (n + 1, s + x, s2 + x * x)
    });
    if n == 0 {
        return Estimate::default();
    }
    let mean = sum / n as f64;
    let var = sum2 / n as f64 - mean * mean;
    let err = if n > 1 && var > 0.0 {
        (var / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Estimate { value: mean, err }
}

/// The value at `fraction` of sorted `values`, linearly interpolated between
/// neighbours (llama-perplexity's `percentile`).
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let (Some(&first), Some(&last)) = (sorted.first(), sorted.last()) else {
        return 0.0;
    };
    if fraction <= 0.0 {
        return first;
    }
    if fraction >= 1.0 {
        return last;
    }
    let p = fraction * (sorted.len() - 1) as f64;
    let ip = p.floor() as usize;
    let frac = p - ip as f64;
    let next = sorted[(ip + 1).min(sorted.len() - 1)];
    (1.0 - frac) * sorted[ip] + frac * next
}

/// Distribution of a per-token quantity: extremes, median and the
/// percentiles llama-perplexity prints.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Distribution {
    pub mean: Estimate,
    pub max: f64,
    pub p99_9: f64,
    pub p99: f64,
    pub p95: f64,
    pub p90: f64,
    pub median: f64,
    pub p10: f64,
    pub p5: f64,
    pub p1: f64,
    pub p0_1: f64,
    pub min: f64,
}

impl Distribution {
    pub fn of(values: &[f64]) -> Distribution {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => 0.0,
            n if n % 2 == 0 => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
            n => sorted[n / 2],
        };
        Distribution {
            mean: mean_err(values.iter().copied()),
            max: sorted.last().copied().unwrap_or(0.0),
            p99_9: percentile(&sorted, 0.999),
            p99: percentile(&sorted, 0.99),
            p95: percentile(&sorted, 0.95),
            p90: percentile(&sorted, 0.90),
            median,
            p10: percentile(&sorted, 0.10),
            p5: percentile(&sorted, 0.05),
            p1: percentile(&sorted, 0.01),
            p0_1: percentile(&sorted, 0.001),
            min: sorted.first().copied().unwrap_or(0.0),
        }
    }
}

/// Perplexity with its uncertainty: `exp(mean nll)`, error `PPL · se(nll)`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Perplexity {
    pub ppl: f64,
    pub err: f64,
}

impl Perplexity {
    pub fn of(nll: impl Iterator<Item = f64> + Clone) -> Perplexity {
        let m = mean_err(nll);
        let ppl = m.value.exp();
        Perplexity {
            ppl,
            err: ppl * m.err,
        }
    }
}

/// Everything llama-perplexity `--kl-divergence` reports for one member.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OutputStats {
    /// Tokens scored.
    pub n_tokens: usize,
    /// The member's perplexity.
    pub ppl: Perplexity,
    /// The reference's perplexity on the same tokens.
    pub ppl_base: Perplexity,
    /// Mean of ln(p_base / p_member) of the true token, i.e. ln(PPL(Q)/PPL(base)).
    pub ln_ppl_ratio: Estimate,
    /// PPL(Q)/PPL(base).
    pub ppl_ratio: f64,
    /// Pearson correlation of the per-token log-likelihoods.
    pub nll_correlation: f64,
    /// KL divergence per token.
    pub kld: Distribution,
    /// Δp per token (fractions, not percent).
    pub delta_p: Distribution,
    /// Root mean square of Δp, with its error.
    pub rms_delta_p: Estimate,
    /// Share of tokens where both models rank the same token first.
    pub same_top: Estimate,
}

impl OutputStats {
    pub fn of(scores: &[TokenScore]) -> OutputStats {
        let nll = scores.iter().map(|s| s.nll);
        let nll_base = scores.iter().map(|s| s.nll_base);
        let ln_ratio = mean_err(scores.iter().map(|s| s.nll - s.nll_base));
        let kld: Vec<f64> = scores.iter().map(|s| s.kld).collect();
        let dp: Vec<f64> = scores.iter().map(|s| s.p_diff).collect();
        // RMS Δp and its error: sqrt of the mean square, error by the delta
        // method as llama-perplexity does.
        let sq = mean_err(dp.iter().map(|d| d * d));
        let rms = sq.value.sqrt();
        let rms_delta_p = Estimate {
            value: rms,
            err: if rms > 0.0 { 0.5 * sq.err / rms } else { 0.0 },
        };
        OutputStats {
            n_tokens: scores.len(),
            ppl: Perplexity::of(nll.clone()),
            ppl_base: Perplexity::of(nll_base.clone()),
            ln_ppl_ratio: ln_ratio,
            ppl_ratio: ln_ratio.value.exp(),
            nll_correlation: correlation(nll, nll_base),
            kld: Distribution::of(&kld),
            delta_p: Distribution::of(&dp),
            rms_delta_p,
            same_top: mean_err(scores.iter().map(|s| f64::from(u8::from(s.same_top)))),
        }
    }
}

fn correlation(a: impl Iterator<Item = f64> + Clone, b: impl Iterator<Item = f64> + Clone) -> f64 {
    let ma = mean_err(a.clone()).value;
    let mb = mean_err(b.clone()).value;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa > 0.0 && sbb > 0.0 {
        sab / (saa * sbb).sqrt()
    } else {
        // Identical constant series are perfectly correlated; anything else
        // constant has no defined correlation.
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn identical_rows_have_zero_divergence_and_the_same_top() {
        let row = [1.0f32, 2.0, 0.5, -3.0];
        let s = score(&row, &row, 1).expect("score");
        assert_eq!(s.kld, 0.0);
        assert_eq!(s.p_diff, 0.0);
        assert!(s.same_top);
        assert_eq!(s.nll, s.nll_base);
        let stats = OutputStats::of(&[s, s, s]);
        assert_eq!(stats.kld.mean.value, 0.0);
        assert_eq!(stats.kld.max, 0.0);
        assert_eq!(stats.ppl_ratio, 1.0);
        assert_eq!(stats.same_top.value, 1.0);
    }

    #[test]
    fn the_kl_sum_keeps_tokens_within_16_of_the_largest_logit() {
        // Four tokens at logit 0 and one at −17: its log-probability is
        // about −18.4 and its logit 17 below the largest, so it is left
        // out, as llama-perplexity's 16-bit window leaves it out. At −15 it
        // is inside the window although its log-probability (−16.4) is
        // below a fixed −16 floor: counted (a term of about −1.2e-6).
        let sum = |base: &[f32], member: &[f32], n: usize| -> f64 {
            let (lb, lq) = (log_softmax(base), log_softmax(member));
            (0..n).map(|i| lb[i].exp() * (lb[i] - lq[i])).sum()
        };
        let member = [0.0f32, 0.0, 0.0, 0.0, 5.0];
        let outside = [0.0f32, 0.0, 0.0, 0.0, -17.0];
        let got = score(&outside, &member, 0).expect("score").kld;
        assert!(close(got, sum(&outside, &member, 4)), "{got}");
        let inside = [0.0f32, 0.0, 0.0, 0.0, -15.0];
        assert!(log_softmax(&inside)[4] < -16.0);
        let got = score(&inside, &member, 0).expect("score").kld;
        let (all, flat) = (sum(&inside, &member, 5), sum(&inside, &member, 4));
        assert!(
            close(got, all) && !close(got, flat),
            "{got}: {all} vs {flat}"
        );
    }

    #[test]
    fn kl_divergence_matches_a_hand_computed_case() {
        // base = softmax(ln 0.5, ln 0.5) = (0.5, 0.5); member = (0.25, 0.75).
        let base = [0.5f32.ln(), 0.5f32.ln()];
        let member = [0.25f32.ln(), 0.75f32.ln()];
        let s = score(&base, &member, 0).expect("score");
        let want = 0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln();
        assert!((s.kld - want).abs() < 1e-6, "{} vs {want}", s.kld);
        assert!((s.p_diff - (0.25 - 0.5)).abs() < 1e-6);
        assert!((s.nll - 4f64.ln()).abs() < 1e-6);
        assert!((s.nll_base - 2f64.ln()).abs() < 1e-6);
        // The base's tie goes to the first token, the member prefers the second.
        assert!(!s.same_top);
    }

    #[test]
    fn terms_below_the_cutoff_are_left_out() {
        // The second token has base log-probability ≈ −30: its term is dropped.
        let base = [0.0f32, -30.0];
        let member = [0.0f32, 0.0];
        let s = score(&base, &member, 0).expect("score");
        let lb0 = -(1.0 + (-30f64).exp()).ln();
        let want = lb0.exp() * (lb0 - 0.5f64.ln());
        assert!((s.kld - want).abs() < 1e-9, "{} vs {want}", s.kld);
    }

    #[test]
    fn mean_error_and_percentiles_by_hand() {
        let m = mean_err([1.0, 2.0, 3.0, 4.0].into_iter());
        assert!(close(m.value, 2.5));
        // population variance 1.25, / (n−1) = 3 → sqrt(0.41667)
        assert!(close(m.err, (1.25f64 / 3.0).sqrt()));
        let sorted = [0.0, 10.0, 20.0, 30.0, 40.0];
        assert!(close(percentile(&sorted, 0.5), 20.0));
        assert!(close(percentile(&sorted, 0.9), 36.0));
        assert!(close(percentile(&sorted, 0.0), 0.0));
        assert!(close(percentile(&sorted, 1.0), 40.0));
        let d = Distribution::of(&[4.0, 1.0, 3.0, 2.0]);
        assert!(close(d.median, 2.5) && close(d.min, 1.0) && close(d.max, 4.0));
    }

    #[test]
    fn perplexity_is_exp_of_the_mean_nll() {
        let p = Perplexity::of([2f64.ln(), 8f64.ln()].into_iter());
        assert!(close(p.ppl, 4.0));
        // nll = ln 2, ln 8: population variance (ln 2)², n − 1 = 1 → se = ln 2.
        assert!(close(p.err, 4.0 * 2f64.ln()));
        assert!(p.err > 0.0);
    }

    #[test]
    fn mismatched_rows_are_not_scored() {
        assert!(score(&[0.0, 1.0], &[0.0], 0).is_none());
        assert!(score(&[0.0, 1.0], &[0.0, 1.0], 2).is_none());
    }
}
