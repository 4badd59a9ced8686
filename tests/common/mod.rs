//! Shared helpers for integration tests. Each test binary includes this with
//! `mod common;` and uses what it needs.
#![allow(dead_code)]

use std::path::PathBuf;

use ggviz::engine::{Session, SessionOptions};
use ggviz::gguf::synthetic::SyntheticModel;
use ggviz::gguf::{GgufFile, GgufWriter, TensorSpec};

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

/// The ggviz binary under test: Cargo's, or `GGVIZ_TEST_BIN` where the test
/// binary runs away from its build (the GPU machine, `scripts/gpu-check.sh`).
pub fn ggviz_bin() -> PathBuf {
    std::env::var_os("GGVIZ_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ggviz")))
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

/// Writes `model` to a temporary file and loads it in llama.cpp on one
/// thread; the folder lives as long as the returned guard.
pub fn load_synthetic(model: &SyntheticModel) -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("synthetic.gguf");
    model
        .writer()
        .write(&path)
        .expect("synthetic model written");
    let options = SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    };
    let session = Session::load(&path, options)
        .unwrap_or_else(|e| panic!("llama.cpp refused {}: {e:#}", model.architecture.name()));
    (dir, session)
}

/// The synthetic 80-layer, 64-head model (5,120 query heads, 8 KV heads a
/// layer) of the large-model tests and the frame-rate figure; head dim 2
/// keeps the file small, the graph is full size.
pub fn large_model() -> SyntheticModel {
    SyntheticModel {
        name: "synthetic 80 layers × 64 heads".into(),
        n_layer: 80,
        n_head: 64,
        n_head_kv: 8,
        n_embd: 128,
        n_ff: 128,
        ..SyntheticModel::default()
    }
}

/// A writer holding `file`'s metadata in order and its tensors byte for
/// byte at their offsets (the weights are not decoded): written as it is,
/// the same file; changed first, the file with that change.
pub fn writer_of(file: &GgufFile) -> GgufWriter {
    let mut w = GgufWriter::new();
    for (k, v) in &file.metadata {
        w.metadata(k.as_str(), v.clone());
    }
    for t in &file.tensors {
        w.raw_tensor(TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            type_id: t.ggml_type.id(),
            data: file
                .tensor_data(t)
                .expect("tensor data in the file")
                .to_vec(),
            offset: Some(t.relative_offset),
        });
    }
    w
}
