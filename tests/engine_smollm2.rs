//! The engine on the real SmolLM2 test model: llama.cpp's own tokens,
//! attention, residual stream and logits, checked against computations the
//! capture could not fake. The model is loaded once per test binary.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;
mod engine_checks;

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use engine_checks as check;
use ggviz::engine::{CaptureOptions, EngineError, Session, SessionOptions, TokenId, Trace};

const PROMPT: &str = "The quick brown fox jumps over the lazy dog because it was tired.";

fn session() -> MutexGuard<'static, Session> {
    static SESSION: OnceLock<Mutex<Session>> = OnceLock::new();
    SESSION
        .get_or_init(|| {
            let options = SessionOptions {
                threads: common::test_threads(),
                ..SessionOptions::default()
            };
            Mutex::new(Session::load(common::smollm2(), options).unwrap())
        })
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// One fully captured run of `PROMPT`, shared by the checks that only read it.
fn full_trace() -> &'static Trace {
    static TRACE: OnceLock<Trace> = OnceLock::new();
    TRACE.get_or_init(|| session().trace(PROMPT, &check::full()).unwrap())
}

#[test]
fn tokenize_detokenize_round_trips() {
    let s = session();
    for text in [
        PROMPT,
        "The capital of France is",
        "  two spaces, naïve café, 東京, emoji 🦀\nnew line\ttab",
        "<|im_start|>user\nHi<|im_end|>",
    ] {
        let tokens = s.tokenize(text).unwrap();
        let ids: Vec<TokenId> = tokens.iter().map(|t| t.id).collect();
        assert_eq!(s.detokenize(&ids).unwrap(), text);
    }
    // SmolLM2's tokenizer adds no BOS; special-token text becomes the token.
    let chat = s.tokenize("<|im_start|>user").unwrap();
    assert_eq!(chat[0].id, 1);
    assert!(chat[0].special);
    assert_eq!(chat[0].piece, "<|im_start|>");
    let plain = s.tokenize("The capital").unwrap();
    assert_eq!(plain.len(), 2, "{plain:?}");
    assert_eq!(plain[1].piece, " capital");
}

#[test]
fn attention_rows_are_causal_distributions() {
    let worst = check::attention_rows(full_trace());
    println!("attention: max |row sum - 1| = {worst:.2e}");
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn head_contributions_sum_to_the_attention_output() {
    let worst = check::head_sums(full_trace());
    println!("per-head sum vs attn_out: max rel. error = {worst:.2e}");
    assert!(worst < 1e-2, "{worst}");
}

#[test]
fn head_norms_are_the_norms_of_the_full_contributions() {
    let worst = check::head_norms_match_full(&mut session(), full_trace());
    println!("head norms vs full vectors: max error / layer max = {worst:.2e}");
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn output_head_on_the_last_hidden_state_gives_the_logits() {
    let trace = full_trace();
    let c = check::output_head_check(&session(), trace);
    println!(
        "output head: norm rel. error {:.2e}, logits rel. error {:.2e}",
        c.norm_err, c.logits_err
    );
    assert!(c.norm_err < 1e-4, "{c:?}");
    assert!(c.logits_err < 1e-2, "{c:?}");
}

#[test]
fn the_callback_does_not_change_the_logits() {
    let trace = full_trace();
    let err = check::callback_effect(&mut session(), trace);
    println!("logits with vs without the callback: rel. error {err:.2e}");
    assert!(err < 1e-5, "{err}");
}

#[test]
fn the_capital_of_france_is_paris_with_and_without_capture() {
    let mut s = session();
    let trace = s
        .trace("The capital of France is", &CaptureOptions::default())
        .unwrap();
    let last = trace.tokens.len() - 1;
    let captured = check::argmax(trace.logits.row(last));
    let plain = s.logits(&trace.token_ids()).unwrap();
    assert_eq!(check::argmax(plain.row(last)), captured);
    assert_eq!(s.token(captured as TokenId).unwrap().piece, " Paris");
}

#[test]
fn every_core_tensor_is_offered_and_captured() {
    let trace = full_trace();
    assert!(trace.missing.is_empty(), "{:?}", trace.missing);
    assert!(trace.notes.is_empty(), "{:?}", trace.notes);
    for name in ["kq_soft_max", "kqv_out", "l_out", "attn_out", "ffn_out"] {
        assert_eq!(trace.offered.get(name), Some(&30), "{name}");
    }
    for name in ["result_norm", "result_output"] {
        assert_eq!(trace.offered.get(name), Some(&0), "{name}");
    }
    assert!(
        trace
            .layers
            .iter()
            .all(|l| l.hidden.is_some() && l.ffn_out.is_some())
    );
    let s = session();
    assert_eq!(
        trace.data_bytes(),
        s.trace_bytes(trace.tokens.len(), &check::full())
    );
}

#[test]
fn residual_stream_adds_up_layer_by_layer() {
    // l_out[L] = l_out[L-1] + attn_out[L] + ffn_out[L]: the blocks captured
    // are the ones llama.cpp adds to the stream.
    let trace = full_trace();
    let mut worst = 0f64;
    for l in 1..trace.layers.len() {
        let prev = &trace.layers[l - 1].hidden.as_ref().unwrap().data;
        let layer = &trace.layers[l];
        let sum: Vec<f32> = prev
            .iter()
            .zip(&layer.attn_out.as_ref().unwrap().data)
            .zip(&layer.ffn_out.as_ref().unwrap().data)
            .map(|((p, a), f)| p + a + f)
            .collect();
        worst = worst.max(check::rel_err(&sum, &layer.hidden.as_ref().unwrap().data));
    }
    assert!(worst < 1e-5, "{worst}");
}

#[test]
fn zeroing_every_head_equals_zeroing_the_attention_output() {
    let mut s = session();
    let ids = full_trace().token_ids();
    let (same, changed) = check::ablation_equivalence(&mut s, &ids, 3);
    println!("ablation: heads vs attn_out rel. error {same:.2e}, vs unablated {changed:.2e}");
    assert!(same < 1e-6, "{same}");
    assert!(
        changed > 1e-3,
        "ablating a layer changed nothing: {changed}"
    );
}

#[test]
fn zeroing_one_head_removes_exactly_its_contribution() {
    let trace = full_trace();
    let err = check::single_head_ablation(&mut session(), trace, 5, 4);
    println!("single-head ablation: rel. error {err:.2e}");
    assert!(err < 1e-2, "{err}");
}

#[test]
fn prompts_over_the_limit_are_refused_before_running() {
    let mut s = session();
    let long = "word ".repeat(600);
    match s.trace(&long, &CaptureOptions::default()) {
        Err(EngineError::PromptTooLong {
            n_tokens,
            max_tokens: 512,
        }) => assert!(n_tokens > 512),
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
    assert!(matches!(
        s.trace("", &CaptureOptions::default()),
        Err(EngineError::EmptyPrompt)
    ));
}

/// Mean over queries of the attention each head pays to `target(i)`.
fn pattern_score(
    trace: &Trace,
    queries: std::ops::Range<usize>,
    target: impl Fn(usize) -> usize,
) -> (f32, usize, usize) {
    let mut best = (0f32, 0, 0);
    for (l, layer) in trace.layers.iter().enumerate() {
        let a = layer.attention.as_ref().unwrap();
        for h in 0..a.n_head {
            let n = queries.len() as f32;
            let score = queries.clone().map(|i| a.row(h, i)[target(i)]).sum::<f32>() / n;
            if score > best.0 {
                best = (score, l, h);
            }
        }
    }
    best
}

#[test]
fn previous_token_and_induction_heads_are_found() {
    // BOS + 25 random tokens, repeated: a previous-token head attends from i
    // to i-1; an induction head attends, in the repeat, to the token after
    // the previous occurrence of the current one (i-24).
    let mut s = session();
    let bos = s.bos().unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let random: Vec<TokenId> = (0..25)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            1000 + (state % 40_000) as TokenId
        })
        .collect();
    let ids: Vec<TokenId> = [&[bos][..], &random, &random].concat();
    let opts = CaptureOptions {
        attention: true,
        ..CaptureOptions::logits_only()
    };
    let trace = s.trace_ids(&ids, &opts).unwrap();
    let prev = pattern_score(&trace, 1..51, |i| i - 1);
    let induction = pattern_score(&trace, 26..51, |i| i - 24);
    println!(
        "previous-token head: {:.3} at layer {} head {}",
        prev.0, prev.1, prev.2
    );
    println!(
        "induction head: {:.3} at layer {} head {}",
        induction.0, induction.1, induction.2
    );
    // The same heads stand out across random sequences (layer 11 head 1
    // and layer 16 head 0 trade first place as previous-token heads; layer
    // 18 head 6 is the induction head), so a wrong attention layout could
    // not find them.
    assert!(prev.0 > 0.8, "{prev:?}");
    assert!([(11, 1), (16, 0)].contains(&(prev.1, prev.2)), "{prev:?}");
    assert!(induction.0 > 0.8, "{induction:?}");
    assert_eq!((induction.1, induction.2), (18, 6), "{induction:?}");
}
