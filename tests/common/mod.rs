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
