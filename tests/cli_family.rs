//! Families and importance matrices through the CLI. The quantizer, the
//! importance matrix and a family's measurements run in ggviz's worker
//! process, like the model pages: llama.cpp aborting there ends the build
//! with an error naming the file, and no site is written.
// Tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use ggviz::gguf::GgufModel;
use ggviz::gguf::synthetic::SyntheticModel;

const WORDS: &str =
    "the cat sat on the mat and the dog sat on a cat and the capital of France is Paris ";

fn ggviz(dir: &Path, args: &[&str], abort_job: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ggviz"));
    cmd.args(args).current_dir(dir);
    #[cfg(debug_assertions)]
    if let Some(kind) = abort_job {
        cmd.env(ggviz::worker::TEST_ABORT_ENV, "GGML_ASSERT(test) failed")
            .env(ggviz::worker::TEST_ABORT_JOB_ENV, kind);
    }
    #[cfg(not(debug_assertions))]
    let _ = abort_job;
    cmd.output().unwrap()
}

/// A synthetic model and a byte copy of it (a family of two), and a text.
fn family(dir: &Path) {
    SyntheticModel::default()
        .writer()
        .write(dir.join("a.gguf"))
        .unwrap();
    std::fs::copy(dir.join("a.gguf"), dir.join("b.gguf")).unwrap();
    std::fs::write(dir.join("words.txt"), WORDS.repeat(40)).unwrap();
}

const BUILD: &[&str] = &[
    "build",
    "--threads",
    "1",
    "--prompt",
    "the cat",
    "--no-embeddings",
    "--eval-text",
    "words.txt",
    "-o",
    "site",
    "a.gguf",
    "b.gguf",
];

#[test]
fn a_family_is_measured_in_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    family(dir.path());
    let out = ggviz(dir.path(), BUILD, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let families = dir.path().join("site/families");
    let pages: Vec<_> = std::fs::read_dir(&families)
        .unwrap()
        .map(|e| e.unwrap().path().join("index.html"))
        .collect();
    assert_eq!(pages.len(), 1, "one family page: {pages:?}");
    let page = std::fs::read_to_string(&pages[0]).unwrap();
    // The copy's statistics came back from the worker: both members are on
    // the page with the evaluation's stage time.
    assert!(page.contains("b.gguf") && page.contains("\"evaluation\""));
}

#[cfg(debug_assertions)]
#[test]
fn llama_cpp_aborting_in_a_family_job_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    family(dir.path());
    let out = ggviz(dir.path(), BUILD, Some("family"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("llama.cpp aborted on")
            && stderr.contains("a.gguf")
            && stderr.contains("GGML_ASSERT(test) failed"),
        "{stderr}"
    );
    assert!(!dir.path().join("site").exists(), "no site was written");

    // The quantizer's job too.
    let mut args = BUILD[..BUILD.len() - 1].to_vec();
    args.extend(["--quantize", "Q8_0", "--quant-cache", "cache"]);
    let out = ggviz(dir.path(), &args, Some("ladder"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot quantize") && stderr.contains("llama.cpp aborted on"),
        "{stderr}"
    );
    assert!(!dir.path().join("site").exists(), "no site was written");
}

#[test]
fn imatrix_writes_llama_cpp_s_format_from_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    family(dir.path());
    let args = [
        "imatrix",
        "--threads",
        "1",
        "a.gguf",
        "-o",
        "m.gguf",
        "--calibration",
        "words.txt",
        "--chunk-size",
        "32",
        "--chunks",
        "2",
    ];
    let out = ggviz(dir.path(), &args, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2 chunks of 32 tokens"), "{stderr}");
    let m = GgufModel::open(dir.path().join("m.gguf")).unwrap();
    assert_eq!(
        m.get("general.type").and_then(|v| v.as_str()),
        Some("imatrix")
    );
    assert!(m.tensor("blk.0.ffn_down.weight.in_sum2").is_some());

    #[cfg(debug_assertions)]
    {
        let out = ggviz(dir.path(), &args, Some("imatrix"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("llama.cpp aborted on"), "{stderr}");
    }
}
