//! How far the page's numbers are from llama.cpp as people run it.
//!
//! The capture needs flash attention off (the attention probabilities exist
//! as a tensor only then), while llama.cpp as people run it (`-fa auto`)
//! turns it on where the backend has it; other kernel choices move
//! probabilities too. [`compare`] measures the gap between the captured
//! run's next-token distributions and those of the same prompt decoded as
//! people run it, so a reader can tell how much of a difference (between two
//! quantizations, say) is the model and how much the kernels.

use serde::{Deserialize, Serialize};

/// The gap between two runs of one prompt, over its positions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KernelGap {
    /// Positions compared.
    pub positions: usize,
    /// Mean over positions of KL(as run ‖ captured), in nats.
    pub kl_mean: f64,
    /// Largest KL over positions, in nats.
    pub kl_max: f64,
    /// Largest |p_as_run − p_captured| over every token and position.
    pub max_prob_diff: f64,
    /// Share of positions whose most probable token is the same.
    pub top1_agreement: f64,
}

/// Softmax at temperature 1, in f64.
fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

fn argmax(p: &[f64]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// Compares `captured` with `as_run`, both `positions × n_vocab` logits,
/// row-major. `None` when the shapes differ or there is nothing to compare.
pub fn compare(captured: &[f32], as_run: &[f32], n_vocab: usize) -> Option<KernelGap> {
    if n_vocab == 0 || captured.len() != as_run.len() || !captured.len().is_multiple_of(n_vocab) {
        return None;
    }
    let positions = captured.len() / n_vocab;
    if positions == 0 {
        return None;
    }
    let (mut kl_sum, mut kl_max, mut max_diff, mut agree) = (0.0, 0.0f64, 0.0f64, 0usize);
    for (c, r) in captured
        .chunks_exact(n_vocab)
        .zip(as_run.chunks_exact(n_vocab))
    {
        let (p, q) = (softmax(r), softmax(c));
        let kl: f64 = p
            .iter()
            .zip(&q)
            .filter(|(p, _)| **p > 0.0)
            .map(|(p, q)| p * (p / q.max(f64::MIN_POSITIVE)).ln())
            .sum::<f64>()
            .max(0.0);
        kl_sum += kl;
        kl_max = kl_max.max(kl);
        for (p, q) in p.iter().zip(&q) {
            max_diff = max_diff.max((p - q).abs());
        }
        agree += usize::from(argmax(&p) == argmax(&q));
    }
    Some(KernelGap {
        positions,
        kl_mean: kl_sum / positions as f64,
        kl_max,
        max_prob_diff: max_diff,
        top1_agreement: agree as f64 / positions as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_runs_have_no_gap() {
        let logits = [0.5f32, 2.0, -1.0, 3.0, 0.0, 1.0];
        let gap = compare(&logits, &logits, 3).unwrap_or_else(|| panic!("shapes"));
        assert_eq!(gap.positions, 2);
        assert_eq!(gap.kl_mean, 0.0);
        assert_eq!(gap.max_prob_diff, 0.0);
        assert_eq!(gap.top1_agreement, 1.0);
    }

    #[test]
    fn the_gap_is_kl_and_probability_difference_by_hand() {
        // Two tokens: captured p = (0.5, 0.5); as run p = (e/(1+e), 1/(1+e)).
        let captured = [0.0f32, 0.0];
        let as_run = [1.0f32, 0.0];
        let gap = compare(&captured, &as_run, 2).unwrap_or_else(|| panic!("shapes"));
        let p1 = std::f64::consts::E / (1.0 + std::f64::consts::E);
        let p2 = 1.0 - p1;
        let kl = p1 * (p1 / 0.5).ln() + p2 * (p2 / 0.5).ln();
        assert!((gap.kl_mean - kl).abs() < 1e-9, "{gap:?}");
        assert!((gap.max_prob_diff - (p1 - 0.5)).abs() < 1e-9);
        // Ties go to the first token, so both pick token 0.
        assert_eq!(gap.top1_agreement, 1.0);
        let flipped = compare(&[0.0, 1.0], &as_run, 2).unwrap_or_else(|| panic!("shapes"));
        assert_eq!(flipped.top1_agreement, 0.0);
        assert!(compare(&[0.0; 3], &[0.0; 4], 2).is_none());
    }
}
