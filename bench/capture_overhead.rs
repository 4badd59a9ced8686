//! Capture overhead: the capture pass over a 128-token prompt on SmolLM2
//! (CPU, 2 threads) against the same decode with no eval callback, in one
//! run, alternating the two so both see the same machine load.
//!
//! `cargo bench --bench capture_overhead` prints both medians and their
//! ratio (target: at most 1.5×). Under `cargo test` (no `--bench`
//! argument) it only checks that both paths run, on a few tokens.
//! `GGVIZ_TEST_MODEL` overrides the model, `GGVIZ_BENCH_THREADS` the threads
//! and `GGVIZ_BENCH_RUNS` the number of timed runs of each kind.

mod common;

use std::process::ExitCode;
use std::time::Instant;

use ggviz::engine::{CaptureOptions, HeadCapture, Session, SessionOptions, TokenId};

const PROMPT: &str = include_str!("prompt-128.txt");

fn main() -> ExitCode {
    let common::Settings {
        benching,
        model,
        threads,
        runs,
    } = common::settings(7);
    let options = SessionOptions {
        threads,
        ..SessionOptions::default()
    };
    let mut session = match Session::load(&model, options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot load {}: {e}", model.display());
            return ExitCode::FAILURE;
        }
    };
    let mut ids: Vec<TokenId> = match session.tokenize(PROMPT.trim_end()) {
        Ok(tokens) => tokens.iter().map(|t| t.id).collect(),
        Err(e) => {
            eprintln!("cannot tokenize the prompt: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !benching {
        ids.truncate(8);
    }
    let kinds = [
        (
            "capture, CLI default (head norms)",
            CaptureOptions::default(),
        ),
        (
            "capture, full head vectors",
            CaptureOptions {
                heads: HeadCapture::Full,
                ..CaptureOptions::default()
            },
        ),
        (
            "callback on, nothing captured",
            CaptureOptions::logits_only(),
        ),
    ];
    let mut plain = Vec::new();
    let mut captured: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    // The CLI default's own breakdown, per timed round.
    let mut parts = Vec::new();
    // One untimed round warms the contexts, the page cache and the threads.
    for round in 0..=runs {
        let start = Instant::now();
        if let Err(e) = session.logits(&ids) {
            eprintln!("plain decode failed: {e}");
            return ExitCode::FAILURE;
        }
        let plain_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut times = Vec::new();
        for (k, (_, opts)) in kinds.iter().enumerate() {
            let start = Instant::now();
            match session.trace_ids(&ids, opts) {
                Ok(trace) => {
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                    if k == 0 && round > 0 {
                        parts.push(trace.timing);
                    }
                }
                Err(e) => {
                    eprintln!("captured decode failed: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        if round > 0 {
            plain.push(plain_ms);
            for (all, t) in captured.iter_mut().zip(times) {
                all.push(t);
            }
        }
    }
    if !benching {
        println!("capture_overhead: both paths ran (use `cargo bench` to time them)");
        return ExitCode::SUCCESS;
    }
    let plain = common::median(plain);
    println!(
        "{} tokens, {} threads, {}, median of {runs} runs",
        ids.len(),
        session.threads(),
        model.display()
    );
    println!("{:<40} {:>9.1} ms", "plain decode (no callback)", plain);
    for ((name, opts), times) in kinds.iter().zip(captured) {
        let t = common::median(times);
        let bytes = session.trace_bytes(ids.len(), opts) as f64 / (1024.0 * 1024.0);
        println!(
            "{name:<40} {t:>9.1} ms  ratio {:.2}  trace {bytes:.1} MiB",
            t / plain
        );
    }
    let part =
        |f: fn(&ggviz::engine::CaptureTiming) -> f64| common::median(parts.iter().map(f).collect());
    println!(
        "CLI default, inside the decode: callback {:.1} ms, of which per-head contributions {:.1} ms",
        part(|t| t.callback_ms),
        part(|t| t.heads_ms)
    );
    ExitCode::SUCCESS
}
