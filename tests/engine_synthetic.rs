//! The engine on tiny synthetic llama models written by ggviz's own GGUF
//! writer: proof that the files load and run in llama.cpp, and the same
//! capture checks as on SmolLM2 over other shapes and weight types (F32,
//! F16, Q8_0, Q4_0, Q4_1; tied and untied output heads; GQA and not).
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;
mod engine_checks;

use engine_checks as check;
use ggviz::engine::{CaptureOptions, Session, TokenId, Trace};
use ggviz::gguf::synthetic::{SyntheticModel, all_f32};

const PROMPT: &str = "the cat sat on the mat and the dog sat on the cat";

fn variants() -> Vec<(&'static str, SyntheticModel)> {
    vec![
        ("mixed quantization, GQA", SyntheticModel::default()),
        (
            "f32, tied head, no GQA",
            SyntheticModel {
                n_layer: 3,
                n_head: 2,
                n_head_kv: 2,
                n_embd: 64,
                tied_embeddings: true,
                types: all_f32,
                seed: 7,
                ..SyntheticModel::default()
            },
        ),
    ]
}

fn full_trace(session: &mut Session) -> Trace {
    session.trace(PROMPT, &check::full()).unwrap()
}

#[test]
fn tokens_are_the_vocabulary_words_and_round_trip() {
    let (_dir, s) = common::load_synthetic(&SyntheticModel::default());
    let tokens = s.tokenize("the capital of France is Paris").unwrap();
    let pieces: Vec<&str> = tokens.iter().map(|t| t.piece.as_str()).collect();
    assert_eq!(
        pieces,
        ["<s>", " the", " capital", " of", " France", " is", " Paris"]
    );
    assert!(tokens[0].special);
    for text in [PROMPT, "the cat, naïve", "x"] {
        let ids: Vec<TokenId> = s.tokenize(text).unwrap().iter().map(|t| t.id).collect();
        // SentencePiece prepends a space that llama.cpp's detokenizer keeps
        // once it has removed BOS (llama-vocab.cpp, `detokenize`).
        assert_eq!(s.detokenize(&ids).unwrap(), format!(" {text}"));
    }
    // A byte-fallback token that is part of a character shows its byte.
    let bytes = s.tokenize("ï").unwrap();
    assert!(bytes.iter().any(|t| t.piece == "<0xC3>"), "{bytes:?}");
}

#[test]
fn capture_checks_hold_on_every_variant() {
    for (name, model) in variants() {
        let (_dir, mut s) = common::load_synthetic(&model);
        let trace = full_trace(&mut s);
        assert_eq!(trace.dims.n_layer, model.n_layer as usize, "{name}");
        assert!(
            trace.missing.is_empty() && trace.notes.is_empty(),
            "{name}: {trace:?}"
        );
        let rows = check::attention_rows(&trace);
        let heads = check::head_sums(&trace);
        let head = check::output_head_check(&s, &trace);
        let callback = check::callback_effect(&mut s, &trace);
        let norms = check::head_norms_match_full(&mut s, &trace);
        println!(
            "{name}: rows {rows:.1e}, heads {heads:.1e}, head norms {norms:.1e}, norm {:.1e}, logits {:.1e}, callback {callback:.1e}",
            head.norm_err, head.logits_err
        );
        assert!(rows < 1e-4, "{name}: {rows}");
        assert!(heads < 1e-2, "{name}: {heads}");
        assert!(norms < 1e-4, "{name}: {norms}");
        assert!(head.norm_err < 1e-4, "{name}: {head:?}");
        assert!(head.logits_err < 1e-2, "{name}: {head:?}");
        assert!(callback < 1e-5, "{name}: {callback}");
        assert_eq!(
            trace.data_bytes(),
            s.trace_bytes(trace.tokens.len(), &check::full())
        );
    }
}

#[test]
fn ablation_checks_hold_on_every_variant() {
    for (name, model) in variants() {
        let (_dir, mut s) = common::load_synthetic(&model);
        let trace = full_trace(&mut s);
        let last = model.n_layer as usize - 1;
        let (same, changed) = check::ablation_equivalence(&mut s, &trace.token_ids(), last);
        let single = check::single_head_ablation(&mut s, &trace, 0, 1);
        println!(
            "{name}: heads vs attn_out {same:.1e}, vs unablated {changed:.1e}, one head {single:.1e}"
        );
        assert!(same < 1e-6, "{name}: {same}");
        assert!(changed > 1e-4, "{name}: ablation changed nothing");
        assert!(single < 1e-2, "{name}: {single}");
    }
}

#[test]
fn one_session_runs_prompts_of_growing_length() {
    let (_dir, mut s) = common::load_synthetic(&SyntheticModel::default());
    let short = s.trace("the cat", &CaptureOptions::default()).unwrap();
    let long_text = "the cat sat on the mat ".repeat(20);
    let long = s.trace(&long_text, &CaptureOptions::default()).unwrap();
    assert!(
        long.tokens.len() > 64,
        "needs a bigger context than the first prompt"
    );
    let again = s.trace("the cat", &CaptureOptions::default()).unwrap();
    assert_eq!(short.logits, again.logits);
    assert_eq!(short.layers, again.layers);
    assert!(check::attention_rows(&long) < 1e-4);
}
