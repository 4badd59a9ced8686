//! Checks shared by the engine tests on SmolLM2 and on synthetic models.
//! Each compares what the capture returned with an independent computation
//! that would disagree if the capture were wrong: attention layout, head
//! slicing, the residual stream, the callback's effect on the result.
// Test helpers: a failed unwrap is a failed test, as in the tests themselves.
#![allow(dead_code, clippy::unwrap_used)]

use ggviz::anatomy::Anatomy;
use ggviz::engine::{
    CaptureOptions, HeadCapture, HeadContributions, Intervention, Matrix, Session, TokenId, Trace,
};
use ndarray::ArrayView2;

/// ‖a − b‖ / ‖b‖, accumulated in f64.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (f64::from(x) - f64::from(y)).powi(2);
        den += f64::from(y).powi(2);
    }
    assert!(den > 0.0, "reference is all zeros");
    (num / den).sqrt()
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}

/// Everything, with per-head contributions as full vectors.
pub fn full() -> CaptureOptions {
    CaptureOptions {
        heads: HeadCapture::Full,
        ..CaptureOptions::default()
    }
}

/// Every attention row of every layer and head sums to 1 over the causal
/// span j ≤ i and is exactly 0 after it. Returns the largest |sum − 1|.
pub fn attention_rows(trace: &Trace) -> f64 {
    let t = trace.tokens.len();
    let mut worst = 0f64;
    for (l, layer) in trace.layers.iter().enumerate() {
        let a = layer.attention.as_ref().expect("attention captured");
        assert_eq!((a.n_head, a.n_tokens), (trace.dims.n_head, t));
        for h in 0..a.n_head {
            for i in 0..t {
                let row = a.row(h, i);
                let sum: f64 = row[..=i].iter().map(|&p| f64::from(p)).sum();
                worst = worst.max((sum - 1.0).abs());
                assert!(
                    row[i + 1..].iter().all(|&p| p == 0.0),
                    "layer {l} head {h} query {i}: masked entries not 0: {:?}",
                    &row[i + 1..]
                );
                assert!(row[..=i].iter().all(|&p| p >= 0.0));
            }
        }
    }
    worst
}

/// Per layer, the sum of the per-head contributions against llama.cpp's
/// attention output `attn_out-L`. Returns the largest relative error.
pub fn head_sums(trace: &Trace) -> f64 {
    let mut worst = 0f64;
    for layer in &trace.layers {
        let Some(HeadContributions::Full {
            n_head,
            n_tokens,
            n_embd,
            data,
        }) = &layer.heads
        else {
            panic!("full head contributions not captured");
        };
        let mut sum = vec![0f32; n_tokens * n_embd];
        for head in data.chunks_exact(n_tokens * n_embd).take(*n_head) {
            sum.iter_mut().zip(head).for_each(|(s, x)| *s += x);
        }
        let attn_out = layer.attn_out.as_ref().expect("attn_out captured");
        worst = worst.max(rel_err(&sum, &attn_out.data));
    }
    worst
}

/// The head norms of a default capture (through the per-head Gram
/// matrices, kept by the session) against the norms of the full vectors of
/// `full` (products with `W_o`), same prompt. Returns the largest error
/// relative to the layer's largest norm. Captures twice, so the second
/// capture reads the kept matrices.
pub fn head_norms_match_full(session: &mut Session, full: &Trace) -> f64 {
    let ids: Vec<TokenId> = full.tokens.iter().map(|t| t.id).collect();
    let mut worst = 0f64;
    for _ in 0..2 {
        let norms = session.trace_ids(&ids, &CaptureOptions::default()).unwrap();
        for (l, (a, b)) in norms.layers.iter().zip(&full.layers).enumerate() {
            let (Some(a), Some(b)) = (&a.heads, &b.heads) else {
                panic!("layer {l}: head contributions not captured");
            };
            assert!(matches!(a, HeadContributions::Norms { .. }));
            let n_head = full.dims.n_head;
            let t = ids.len();
            let scale = (0..n_head)
                .flat_map(|h| (0..t).map(move |i| (h, i)))
                .map(|(h, i)| f64::from(b.norm(h, i)))
                .fold(0f64, f64::max);
            for h in 0..n_head {
                for i in 0..t {
                    let d = (f64::from(a.norm(h, i)) - f64::from(b.norm(h, i))).abs();
                    worst = worst.max(d / scale.max(f64::MIN_POSITIVE));
                }
            }
        }
    }
    worst
}

/// The output norm (RMS, the model's epsilon and weights) applied to each
/// row of `hidden`, as llama.cpp's `build_norm(..., LLM_NORM_RMS)` does.
pub fn output_norm(session: &Session, hidden: &Matrix) -> Matrix {
    let anatomy = Anatomy::from_model(session.gguf()).unwrap();
    let eps = anatomy.hparams.norm_rms_eps.expect("RMS norm epsilon");
    let w = session.dequantize("output_norm.weight").unwrap();
    let mut out = hidden.clone();
    for row in out.data.chunks_exact_mut(hidden.cols) {
        let mean_sq = row.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / row.len() as f64;
        let scale = (1.0 / (mean_sq + eps).sqrt()) as f32;
        row.iter_mut().zip(&w).for_each(|(x, w)| *x *= scale * w);
    }
    out
}

/// The output head (dequantized with ggml's own type traits) applied to
/// normed hidden states, rounded first as llama.cpp's CPU kernel rounds
/// them (without that, near-ties between the top two tokens can flip).
pub fn output_head(session: &Session, normed: &Matrix) -> Matrix {
    let name = session.output_weight_name();
    let head = session.dequantize(name).unwrap();
    let ggml_type = session.gguf().tensor(name).unwrap().ggml_type;
    let mut normed = normed.clone();
    ggviz::engine::ffi::round_like_cpu_matmul(ggml_type, normed.cols, &mut normed.data).unwrap();
    let n_vocab = head.len() / normed.cols;
    let head = ArrayView2::from_shape((n_vocab, normed.cols), &head).unwrap();
    let x = ArrayView2::from_shape((normed.rows, normed.cols), &normed.data).unwrap();
    let logits = x.dot(&head.t());
    Matrix {
        rows: normed.rows,
        cols: n_vocab,
        data: logits.iter().copied().collect(),
    }
}

/// Result of recomputing the logits from the last hidden state.
#[derive(Debug)]
pub struct OutputHeadCheck {
    /// Our normed last hidden state against llama.cpp's `result_norm`.
    pub norm_err: f64,
    /// Our logits against llama.cpp's.
    pub logits_err: f64,
}

/// Output norm and output head applied to the last layer's `l_out`
/// reproduce llama.cpp's logits, with the same top token everywhere.
pub fn output_head_check(session: &Session, trace: &Trace) -> OutputHeadCheck {
    let last = trace.layers.last().unwrap().hidden.as_ref().unwrap();
    let normed = output_norm(session, last);
    let logits = output_head(session, &normed);
    for i in 0..trace.tokens.len() {
        let (ours, theirs) = (logits.row(i), trace.logits.row(i));
        assert_eq!(
            argmax(ours),
            argmax(theirs),
            "top token differs at position {i}"
        );
    }
    OutputHeadCheck {
        norm_err: rel_err(&normed.data, &trace.final_norm.as_ref().unwrap().data),
        logits_err: rel_err(&logits.data, &trace.logits.data),
    }
}

/// Relative difference of the captured run's logits from llama.cpp's plain
/// run (no eval callback).
pub fn callback_effect(session: &mut Session, trace: &Trace) -> f64 {
    let plain = session.logits(&trace.token_ids()).unwrap();
    rel_err(&trace.logits.data, &plain.data)
}

/// Zeroing every head of `layer` against zeroing the layer's attention
/// output: returns (difference between the two, difference from the
/// unablated run).
pub fn ablation_equivalence(session: &mut Session, ids: &[TokenId], layer: usize) -> (f64, f64) {
    let n_head = session.dims(0).n_head;
    let run = |session: &mut Session, iv: Intervention| {
        let opts = CaptureOptions {
            interventions: vec![iv],
            ..CaptureOptions::logits_only()
        };
        session.trace_ids(ids, &opts).unwrap().logits
    };
    let heads = run(
        session,
        Intervention::ZeroHeads {
            layer,
            heads: (0..n_head).collect(),
        },
    );
    let attn = run(session, Intervention::ZeroAttentionOutput { layer });
    let base = session.logits(ids).unwrap();
    (
        rel_err(&heads.data, &attn.data),
        rel_err(&heads.data, &base.data),
    )
}

/// Zeroing one head removes exactly that head's contribution from the
/// layer's attention output: attn_out(ablated) = attn_out − c_head.
/// Returns the relative error of that identity.
pub fn single_head_ablation(session: &mut Session, base: &Trace, layer: usize, head: usize) -> f64 {
    let opts = CaptureOptions {
        interventions: vec![Intervention::ZeroHeads {
            layer,
            heads: vec![head],
        }],
        ..full()
    };
    let ablated = session.trace_ids(&base.token_ids(), &opts).unwrap();
    let l = &ablated.layers[layer];
    for t in 0..base.tokens.len() {
        assert_eq!(l.heads.as_ref().unwrap().norm(head, t), 0.0);
    }
    let base_layer = &base.layers[layer];
    let c = base_layer.heads.as_ref().unwrap();
    let e = base.dims.n_embd;
    let mut expected = base_layer.attn_out.as_ref().unwrap().data.clone();
    for (t, row) in expected.chunks_exact_mut(e).enumerate() {
        row.iter_mut()
            .zip(c.vector(head, t).unwrap())
            .for_each(|(x, ch)| *x -= ch);
    }
    rel_err(&l.attn_out.as_ref().unwrap().data, &expected)
}
