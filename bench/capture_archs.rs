//! Capture overhead on every architecture ggviz synthesises: the capture
//! pass (the CLI default, head norms) against llama.cpp's plain decode of
//! the same tokens, in one run, alternating the two so both see the same
//! load. The target (issue 12) is at most 1.5× on each.
//!
//! The models are synthetic but not tiny (6 layers, 512 wide, 8 heads of
//! 64, FFN 1,536), so the decode does real work; one more model has a
//! Gemma-class shape: a 262,144-token vocabulary, heads of 256 and
//! sliding-window layers (gemma3).
//!
//! `cargo bench --bench capture_archs` prints a line per model. Under
//! `cargo test` it only checks that every model runs both paths on a few
//! tokens. `GGVIZ_BENCH_RUNS` sets the timed runs (default 5),
//! `GGVIZ_BENCH_THREADS` the threads (2); `GGVIZ_BENCH_KEEP=DIR` keeps the
//! model files there (`m10.gguf` is the Gemma-class one).

mod common;

use std::process::ExitCode;
use std::time::Instant;

use ggviz::engine::{CaptureOptions, Session, SessionOptions, TokenId};
use ggviz::gguf::synthetic::{Architecture, SyntheticModel, mixed_types};

/// Tokens of the prompt, taken from the vocabulary's normal tokens.
const TOKENS: usize = 128;

/// Token names for a vocabulary of exactly `n_vocab` tokens: SentencePiece
/// words `▁xyz` over a 64-letter alphabet, whose prefixes `▁x`, `▁xy` are
/// pieces of their own (see [`SyntheticModel::word_pieces`]).
fn words_for(n_vocab: usize) -> Vec<String> {
    const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let letters: Vec<char> = ALPHABET.chars().collect();
    // 3 control tokens, 256 byte tokens and "▁" come first.
    let mut left = n_vocab.saturating_sub(3 + 256 + 1);
    let mut pieces = std::collections::HashSet::new();
    let mut words = Vec::new();
    for &x in &letters {
        for &y in &letters {
            for &z in &letters {
                if left == 0 {
                    return words;
                }
                let new: Vec<String> = [format!("▁{x}"), format!("▁{x}{y}"), format!("▁{x}{y}{z}")]
                    .into_iter()
                    .filter(|p| !pieces.contains(p))
                    .collect();
                // A word adds itself and whichever of its prefixes are new.
                if new.len() <= left {
                    left -= new.len();
                    words.push(format!("▁{x}{y}{z}"));
                    pieces.extend(new);
                }
            }
        }
    }
    words
}

fn model(arch: Architecture) -> SyntheticModel {
    SyntheticModel {
        architecture: arch,
        name: format!("synthetic {}", arch.name()),
        n_layer: 6,
        n_head: 8,
        n_head_kv: 4,
        n_embd: 512,
        n_ff: 1536,
        n_expert: 4,
        n_expert_used: 2,
        types: mixed_types,
        ..SyntheticModel::default()
    }
}

/// A Gemma-class shape: 262,144 tokens, heads of 256, sliding windows.
fn gemma_class(benching: bool) -> SyntheticModel {
    let n_vocab = if benching { 262_144 } else { 4_096 };
    SyntheticModel {
        architecture: Architecture::Gemma3,
        name: format!("gemma3, {n_vocab} tokens, head dim 256"),
        n_layer: 6,
        n_head: 4,
        n_head_kv: 2,
        n_embd: 1024,
        n_ff: 2048,
        extra_tokens: words_for(n_vocab),
        tied_embeddings: true,
        context_length: 4096,
        types: mixed_types,
        ..SyntheticModel::default()
    }
}

/// Medians over `runs` rounds, ms.
struct Timing {
    plain: f64,
    capture: f64,
    /// Of the capture: time in the eval callback, and the part of it spent
    /// on per-head norms.
    callback: f64,
    heads: f64,
}

/// Times the plain decode and the capture, alternately, over `runs` rounds.
fn time(session: &mut Session, ids: &[TokenId], runs: usize) -> Result<Timing, String> {
    let capture = CaptureOptions::default();
    let (mut plain, mut captured) = (Vec::new(), Vec::new());
    let (mut callback, mut heads) = (Vec::new(), Vec::new());
    for round in 0..=runs {
        let start = Instant::now();
        session.logits(ids).map_err(|e| e.to_string())?;
        let p = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        let trace = session
            .trace_ids(ids, &capture)
            .map_err(|e| e.to_string())?;
        let c = start.elapsed().as_secs_f64() * 1e3;
        // Round 0 warms the contexts and the page cache.
        if round > 0 {
            plain.push(p);
            captured.push(c);
            callback.push(trace.timing.callback_ms);
            heads.push(trace.timing.heads_ms);
        }
    }
    Ok(Timing {
        plain: common::median(plain),
        capture: common::median(captured),
        callback: common::median(callback),
        heads: common::median(heads),
    })
}

fn main() -> ExitCode {
    let settings = common::settings(5);
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("no temporary folder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut models: Vec<SyntheticModel> = Architecture::ALL.into_iter().map(model).collect();
    models.push(gemma_class(settings.benching));
    let n_tokens = if settings.benching { TOKENS } else { 8 };
    let mut worst: f64 = 0.0;
    for (i, m) in models.iter().enumerate() {
        // `GGVIZ_BENCH_KEEP=DIR` keeps the files there (to build pages of
        // them, as the README's 262,144-token figure does).
        let keep = std::env::var_os("GGVIZ_BENCH_KEEP").map(std::path::PathBuf::from);
        let path = keep
            .as_deref()
            .unwrap_or(dir.path())
            .join(format!("m{i}.gguf"));
        if let Err(e) = m.writer().write(&path) {
            eprintln!("{}: cannot write: {e}", m.name);
            return ExitCode::FAILURE;
        }
        let options = SessionOptions {
            threads: settings.threads,
            ..SessionOptions::default()
        };
        let mut session = match Session::load(&path, options) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: {e}", m.name);
                return ExitCode::FAILURE;
            }
        };
        // BOS, then normal tokens (ids past the control and byte tokens).
        let n_vocab = session.dims(1).n_vocab as TokenId;
        let mut ids: Vec<TokenId> = session.bos().into_iter().collect();
        ids.extend((0..n_tokens as TokenId).map(|k| 259 + (k * 7919) % (n_vocab - 259)));
        match time(&mut session, &ids, settings.runs) {
            Ok(t) => {
                let ratio = t.capture / t.plain;
                worst = worst.max(ratio);
                if settings.benching {
                    println!(
                        "{:<36} vocab {:>7}  plain {:>8.1} ms  capture {:>8.1} ms (callback {:>6.1}, head norms {:>6.1})  ratio {ratio:.2}",
                        m.name, n_vocab, t.plain, t.capture, t.callback, t.heads
                    );
                }
            }
            Err(e) => {
                eprintln!("{}: {e}", m.name);
                return ExitCode::FAILURE;
            }
        }
    }
    if settings.benching {
        println!(
            "{} tokens, {} threads, medians of {} runs; worst ratio {worst:.2} (target ≤ 1.5)",
            n_tokens + 1,
            settings.threads,
            settings.runs
        );
    } else {
        println!("capture_archs: every model ran both paths (use `cargo bench` to time them)");
    }
    ExitCode::SUCCESS
}
