//! What the benchmarks share: their settings from the command line and the
//! environment, and medians.
#![allow(dead_code)]

use std::path::PathBuf;

/// How a benchmark was asked to run.
pub struct Settings {
    /// `cargo bench` passes `--bench`; `cargo test` runs a quick check.
    pub benching: bool,
    /// `GGVIZ_TEST_MODEL`, else the SmolLM2 test model in the cache.
    pub model: PathBuf,
    /// `GGVIZ_BENCH_THREADS`, else 2.
    pub threads: usize,
    /// Timed runs of each kind: `GGVIZ_BENCH_RUNS`, else `default_runs`
    /// (1 under `cargo test`).
    pub runs: usize,
}

pub fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn settings(default_runs: usize) -> Settings {
    let benching = std::env::args().any(|a| a == "--bench");
    let model = std::env::var_os("GGVIZ_TEST_MODEL").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        },
        PathBuf::from,
    );
    let runs = if benching {
        env_usize("GGVIZ_BENCH_RUNS", default_runs).max(1)
    } else {
        1
    };
    Settings {
        benching,
        model,
        threads: env_usize("GGVIZ_BENCH_THREADS", 2),
        runs,
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
