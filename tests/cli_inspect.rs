//! `ggviz inspect` as a user sees it: text and JSON output of the binary.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::process::Command;

use ggviz::gguf::synthetic::{Architecture, SyntheticModel};

fn ggviz(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .args(args)
        .output()
        .expect("run ggviz")
}

fn synthetic_file(dir: &std::path::Path) -> String {
    let path = dir.join("tiny.gguf");
    SyntheticModel::default().writer().write(&path).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn text_summary_of_a_synthetic_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = ggviz(&["inspect", &synthetic_file(dir.path()), "--tensors"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap());
}

#[test]
fn text_summary_names_residual_form_experts_and_soft_capping() {
    let dir = tempfile::tempdir().unwrap();
    let summary = |arch: Architecture| {
        let path = dir.path().join(format!("{}.gguf", arch.name()));
        let m = SyntheticModel {
            architecture: arch,
            ..SyntheticModel::default()
        };
        m.writer().write(&path).unwrap();
        let out = ggviz(&["inspect", path.to_str().unwrap()]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let phi2 = summary(Architecture::Phi2);
    assert!(
        phi2.contains("  residual       attention and FFN in parallel, one add (every layer)\n")
    );
    assert!(
        phi2.contains("  norm           LayerNorm, eps 1e-5\n"),
        "{phi2}"
    );
    assert!(!summary(Architecture::Llama).contains("residual"));
    let moe = summary(Architecture::Qwen2Moe);
    assert!(
        moe.contains("  experts        4 (2 used per token), 128 wide; shared expert 128 wide\n"),
        "{moe}"
    );
    let gemma2 = summary(Architecture::Gemma2);
    assert!(
        gemma2.contains("  soft-capping   attention logits at 50, final logits at 30\n"),
        "{gemma2}"
    );
    assert!(gemma2.contains("  sliding window 4096\n"), "{gemma2}");
}

#[test]
fn json_has_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let file = synthetic_file(dir.path());
    let out = ggviz(&["inspect", &file, "--json"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ggviz_inspect_version"], 1);
    assert_eq!(doc["metadata"]["general.architecture"], "llama");
    assert_eq!(doc["metadata"]["llama.block_count"], 2);
    // Token lists are summarised, never dumped.
    assert_eq!(
        doc["metadata"]["tokenizer.ggml.tokens"],
        serde_json::json!({"type": "string", "len": SyntheticModel::default().n_vocab()})
    );
    let tensors = doc["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 21);
    let q = tensors
        .iter()
        .find(|t| t["name"] == "blk.1.attn_q.weight")
        .unwrap();
    assert_eq!(q["type"], "Q8_0");
    assert_eq!(q["shape"], serde_json::json!([64, 64]));
    assert_eq!(q["bytes"], 64 * 64 / 32 * 34);
    let offset = q["offset"].as_u64().unwrap();
    assert_eq!(offset % 32, 0);
    // The offset is absolute: the bytes there are the tensor's data.
    let bytes = std::fs::read(&file).unwrap();
    let model = ggviz::gguf::GgufModel::open(&file).unwrap();
    let info = model.tensor("blk.1.attn_q.weight").unwrap();
    assert_eq!(
        &bytes[offset as usize..offset as usize + info.n_bytes as usize],
        model.tensor_data(info).unwrap()
    );
}

#[test]
fn errors_name_the_file_field_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.gguf");
    let full = SyntheticModel::default().writer().to_bytes();
    std::fs::write(&path, &full[..20]).unwrap();
    let out = ggviz(&["inspect", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("cut.gguf"), "{err}");
    assert!(err.contains("header.kv_count at byte offset 16"), "{err}");
}

#[test]
fn real_model_summary_names_its_shape() {
    let out = ggviz(&["inspect", common::smollm2().to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "architecture   llama (Q4_1)",
        "heads          9 query, 3 KV (GQA, 3 query heads per KV head)",
        "tied to the token embedding",
        "blk.0-29",
        "Q4_1       5.00 bpw   210 tensors",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}
