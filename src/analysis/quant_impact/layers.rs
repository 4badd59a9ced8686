//! Inside the model: where a member's computation departs from the
//! reference's, layer by layer, on the same prompts (what llama.cpp issue
//! #2783 asks for). Per layer, the relative error ‖h_q − h_base‖ / ‖h_base‖
//! and the cosine of the residual stream after the layer and of the
//! attention and FFN outputs, over positions (mean and 95th percentile);
//! per head, the similarity of the attention patterns, the mean over query
//! positions of 1 − the Jensen–Shannon distance between the two rows.

use serde::{Deserialize, Serialize};

use super::lens_kl::{lens_logits, mean_kl};
use super::stats::percentile;
use crate::analysis::lens::OutputHead;
use crate::engine::{
    Attention, CaptureOptions, EngineError, HeadCapture, Matrix, Session, TokenId, Trace,
};

/// Error of one captured tensor over positions.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Divergence {
    /// Mean over positions of ‖q − b‖ / ‖b‖.
    pub rel_err_mean: f64,
    /// 95th percentile of the same.
    pub rel_err_p95: f64,
    /// Mean over positions of the cosine of q and b.
    pub cos_mean: f64,
    /// 5th percentile of the cosine (the worst positions).
    pub cos_p5: f64,
}

/// Compares two `positions × width` matrices row by row; `None` when the
/// shapes differ.
pub fn divergence(base: &Matrix, member: &Matrix) -> Option<Divergence> {
    if base.rows != member.rows || base.cols != member.cols || base.rows == 0 {
        return None;
    }
    let mut rel = Vec::with_capacity(base.rows);
    let mut cos = Vec::with_capacity(base.rows);
    for i in 0..base.rows {
        let (b, q) = (base.row(i), member.row(i));
        let (mut d2, mut b2, mut q2, mut bq) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (&x, &y) in b.iter().zip(q) {
            let (x, y) = (f64::from(x), f64::from(y));
            d2 += (y - x) * (y - x);
            b2 += x * x;
            q2 += y * y;
            bq += x * y;
        }
        rel.push(if b2 > 0.0 {
            (d2 / b2).sqrt()
        } else {
            d2.sqrt()
        });
        cos.push(if b2 > 0.0 && q2 > 0.0 {
            bq / (b2 * q2).sqrt()
        } else if b2 == q2 {
            1.0
        } else {
            0.0
        });
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let (rel_mean, cos_mean) = (mean(&rel), mean(&cos));
    Some(Divergence {
        rel_err_mean: rel_mean,
        rel_err_p95: percentile(&sorted(rel), 0.95),
        cos_mean,
        cos_p5: percentile(&sorted(cos), 0.05),
    })
}

/// The Jensen–Shannon distance (the square root of the divergence, natural
/// log, so it lies in [0, √ln 2]) between two distributions, normalised to
/// [0, 1].
pub fn js_distance(p: &[f32], q: &[f32]) -> f64 {
    let mut js = 0.0f64;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (f64::from(a.max(0.0)), f64::from(b.max(0.0)));
        let m = 0.5 * (a + b);
        if a > 0.0 {
            js += 0.5 * a * (a / m).ln();
        }
        if b > 0.0 {
            js += 0.5 * b * (b / m).ln();
        }
    }
    (js.max(0.0) / std::f64::consts::LN_2).sqrt().min(1.0)
}

/// Per head, the mean over query positions of 1 − JS distance.
pub fn head_similarity(base: &Attention, member: &Attention) -> Option<Vec<f64>> {
    if base.n_head != member.n_head || base.n_tokens != member.n_tokens || base.n_tokens == 0 {
        return None;
    }
    Some(
        (0..base.n_head)
            .map(|h| {
                (0..base.n_tokens)
                    .map(|i| 1.0 - js_distance(base.row(h, i), member.row(h, i)))
                    .sum::<f64>()
                    / base.n_tokens as f64
            })
            .collect(),
    )
}

/// One layer of a member against the reference.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LayerImpact {
    /// The residual stream after the layer (`l_out`).
    pub hidden: Option<Divergence>,
    pub attn_out: Option<Divergence>,
    pub ffn_out: Option<Divergence>,
    /// Per head similarity of the attention patterns.
    pub heads: Option<Vec<f64>>,
    /// Mean over positions and prompts of KL(lens_ref ‖ lens_member): the
    /// logit lens of the residual after the layer, each model through its
    /// own output norm and head (see [`super::lens_kl`]).
    #[serde(default)]
    pub lens_kl: Option<f64>,
}

/// A member against the reference, layer by layer, averaged over prompts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MemberLayers {
    pub layers: Vec<LayerImpact>,
    /// Prompts compared.
    pub n_prompts: usize,
}

fn average(items: &[Divergence]) -> Option<Divergence> {
    if items.is_empty() {
        return None;
    }
    let n = items.len() as f64;
    Some(Divergence {
        rel_err_mean: items.iter().map(|d| d.rel_err_mean).sum::<f64>() / n,
        rel_err_p95: items.iter().map(|d| d.rel_err_p95).sum::<f64>() / n,
        cos_mean: items.iter().map(|d| d.cos_mean).sum::<f64>() / n,
        cos_p5: items.iter().map(|d| d.cos_p5).sum::<f64>() / n,
    })
}

/// Runs every prompt through both models with the capture on and compares
/// them layer by layer (the figures are means over prompts).
pub fn measure_layers(
    reference: &mut Session,
    member: &mut Session,
    prompts: &[Vec<TokenId>],
) -> Result<MemberLayers, EngineError> {
    let mut out = measure_family_layers(reference, &mut [member], prompts, None)?;
    out.pop()
        .ok_or_else(|| EngineError::InvalidRequest("no member measured".into()))
}

/// The output heads of the logit lens: the reference's and each member's
/// (`members[i]` for `members[i]` of [`measure_family_layers`]).
#[derive(Debug)]
pub struct LensHeads<'a, 'h> {
    pub reference: &'a mut OutputHead<'h>,
    pub members: &'a mut [OutputHead<'h>],
}

/// Runs every prompt through the reference once and through every member
/// with the capture on, and compares each member with the reference layer
/// by layer (the figures are means over prompts); with `lens`, also the
/// logit lens's KL divergence at every layer (mean over every position of
/// every prompt).
pub fn measure_family_layers(
    reference: &mut Session,
    members: &mut [&mut Session],
    prompts: &[Vec<TokenId>],
    mut lens: Option<LensHeads<'_, '_>>,
) -> Result<Vec<MemberLayers>, EngineError> {
    let options = CaptureOptions {
        heads: HeadCapture::Off,
        ..CaptureOptions::default()
    };
    let n_layer = reference.dims(0).n_layer;
    let n_vocab = reference.dims(0).n_vocab;
    let n = members.len();
    let mut hidden = vec![vec![Vec::new(); n_layer]; n];
    let mut attn = vec![vec![Vec::new(); n_layer]; n];
    let mut ffn = vec![vec![Vec::new(); n_layer]; n];
    let mut heads: Vec<Vec<Vec<Vec<f64>>>> = vec![vec![Vec::new(); n_layer]; n];
    // Sum of KL over positions and the number of positions, per layer.
    let mut kl = vec![vec![(0.0f64, 0usize); n_layer]; n];
    for ids in prompts {
        let b = reference.trace_ids(ids, &options)?;
        // The reference among the members is compared with its own trace
        // (llama.cpp's decode is deterministic: a second one is the same).
        let own = members
            .iter_mut()
            .map(|m| {
                if m.path() == reference.path() {
                    Ok(None)
                } else {
                    m.trace_ids(ids, &options).map(Some)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let traces: Vec<&Trace> = own.iter().map(|t| t.as_ref().unwrap_or(&b)).collect();
        for (m, q) in traces.iter().enumerate() {
            for (l, (lb, lq)) in b.layers.iter().zip(&q.layers).enumerate() {
                let pair =
                    |x: &Option<Matrix>, y: &Option<Matrix>| divergence(x.as_ref()?, y.as_ref()?);
                hidden[m][l].extend(pair(&lb.hidden, &lq.hidden));
                attn[m][l].extend(pair(&lb.attn_out, &lq.attn_out));
                ffn[m][l].extend(pair(&lb.ffn_out, &lq.ffn_out));
                if let (Some(x), Some(y)) = (&lb.attention, &lq.attention) {
                    heads[m][l].extend(head_similarity(x, y));
                }
            }
        }
        let Some(lens) = lens.as_mut() else {
            continue;
        };
        for (l, lb) in b.layers.iter().enumerate() {
            let Some(hb) = &lb.hidden else {
                continue;
            };
            let base = lens_logits(lens.reference, &hb.data)?;
            for (m, (q, head)) in traces.iter().zip(lens.members.iter_mut()).enumerate() {
                let Some(hq) = q.layers.get(l).and_then(|x| x.hidden.as_ref()) else {
                    continue;
                };
                if hq.rows != hb.rows || hq.cols != hb.cols {
                    continue;
                }
                let member = if own[m].is_none() {
                    None
                } else {
                    Some(lens_logits(head, &hq.data)?)
                };
                if let Some(mean) = mean_kl(&base, member.as_ref().unwrap_or(&base), n_vocab) {
                    kl[m][l].0 += mean * hb.rows as f64;
                    kl[m][l].1 += hb.rows;
                }
            }
        }
    }
    Ok((0..n)
        .map(|m| MemberLayers {
            layers: (0..n_layer)
                .map(|l| LayerImpact {
                    hidden: average(&hidden[m][l]),
                    attn_out: average(&attn[m][l]),
                    ffn_out: average(&ffn[m][l]),
                    heads: heads[m][l].first().map(|first| {
                        (0..first.len())
                            .map(|h| {
                                heads[m][l].iter().map(|v| v[h]).sum::<f64>()
                                    / heads[m][l].len() as f64
                            })
                            .collect()
                    }),
                    lens_kl: (kl[m][l].1 > 0).then(|| kl[m][l].0 / kl[m][l].1 as f64),
                })
                .collect(),
            n_prompts: prompts.len(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rows: usize, cols: usize, data: Vec<f32>) -> Matrix {
        Matrix { rows, cols, data }
    }

    #[test]
    fn identical_matrices_have_zero_error_and_cosine_one() {
        let a = m(2, 3, vec![1.0, 2.0, 3.0, -1.0, 0.5, 4.0]);
        let d = divergence(&a, &a).expect("same shape");
        assert_eq!(d.rel_err_mean, 0.0);
        assert_eq!(d.rel_err_p95, 0.0);
        assert!((d.cos_mean - 1.0).abs() < 1e-12);
    }

    #[test]
    fn divergence_by_hand() {
        // Row 0: b = (3, 4), q = (3, 0): ‖q − b‖ = 4, ‖b‖ = 5 → 0.8; cos = 9/15 = 0.6.
        // Row 1: b = (1, 0), q = (2, 0): error 1, cos 1.
        let b = m(2, 2, vec![3.0, 4.0, 1.0, 0.0]);
        let q = m(2, 2, vec![3.0, 0.0, 2.0, 0.0]);
        let d = divergence(&b, &q).expect("same shape");
        assert!((d.rel_err_mean - 0.9).abs() < 1e-12);
        assert!((d.cos_mean - 0.8).abs() < 1e-12);
        assert!(divergence(&b, &m(1, 2, vec![0.0, 0.0])).is_none());
    }

    #[test]
    fn js_distance_is_zero_for_equal_rows_and_one_for_disjoint_ones() {
        assert_eq!(js_distance(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        assert!((js_distance(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        let att = Attention {
            n_head: 2,
            n_tokens: 2,
            data: vec![1.0, 0.0, 0.5, 0.5, 1.0, 0.0, 0.5, 0.5],
        };
        let mut other = att.clone();
        // Head 1, query 0: all weight on token 1 instead of token 0.
        other.data[4] = 0.0;
        other.data[5] = 1.0;
        let s = head_similarity(&att, &other).expect("same shape");
        assert_eq!(s[0], 1.0);
        assert!((s[1] - 0.5).abs() < 1e-12, "{s:?}");
    }
}
