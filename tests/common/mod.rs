//! Shared helpers for integration tests. Each test binary includes this with
//! `mod common;` and uses what it needs.
#![allow(dead_code)]

use std::path::PathBuf;

/// The SmolLM2 test model, fetched by `scripts/fetch-test-model.sh` (which
/// `make test` and `.ci/run` call first). `GGVIZ_TEST_MODEL` overrides it.
pub fn smollm2() -> PathBuf {
    if let Some(p) = std::env::var_os("GGVIZ_TEST_MODEL") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "test model missing at {}: run scripts/fetch-test-model.sh (make test does)",
        p.display()
    );
    p
}

/// Threads for engine tests: `GGVIZ_TEST_THREADS`, else 2 (the CI machine's
/// cores; the engine tests of one binary share one model and run one at a
/// time).
pub fn test_threads() -> usize {
    std::env::var("GGVIZ_TEST_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}
