//! `ggviz run` as a user sees it: text and JSON output of the binary, and
//! its refusals.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::process::{Command, Output};

use ggviz::engine::{Session, SessionOptions, TokenId};

fn ggviz(args: &[&str]) -> Output {
    let threads = common::test_threads().to_string();
    let model = common::smollm2();
    Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .arg("run")
        .arg(&model)
        .args(["--threads", &threads])
        .args(args)
        .output()
        .unwrap()
}

fn stdout_json(args: &[&str]) -> serde_json::Value {
    let out = ggviz(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "not quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_shows_paris_as_llama_cpp_does() {
    let prompt = "The capital of France is";
    let json = stdout_json(&["--prompt", prompt, "--json", "--top-k", "5"]);
    assert_eq!(json["ggviz_run_version"], 1);
    let tokens = json["tokens"].as_array().unwrap();
    let pieces: Vec<&str> = tokens
        .iter()
        .map(|t| t["piece"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, ["The", " capital", " of", " France", " is"]);
    let positions = json["positions"].as_array().unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0]["index"], 4);
    let top = positions[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    assert_eq!(top[0]["piece"], " Paris");
    let probs: Vec<f64> = top.iter().map(|c| c["prob"].as_f64().unwrap()).collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
    assert!(
        probs[0] > 0.5 && probs.iter().sum::<f64>() <= 1.0 + 1e-9,
        "{probs:?}"
    );
    for key in [
        "load_ms",
        "tokenize_ms",
        "decode_ms",
        "capture_ms",
        "total_ms",
    ] {
        assert!(json["timing"][key].as_f64().unwrap() >= 0.0, "{key}");
    }
    assert_eq!(json["capture"]["heads"], "norms");
    assert_eq!(json["capture"]["missing"].as_array().unwrap().len(), 0);

    // The same top token from llama.cpp's plain path (no eval callback).
    let mut session = Session::load(common::smollm2(), SessionOptions::default()).unwrap();
    let ids: Vec<TokenId> = tokens
        .iter()
        .map(|t| t["id"].as_i64().unwrap() as TokenId)
        .collect();
    let logits = session.logits(&ids).unwrap();
    let plain_top = ggviz::run::top_k(logits.row(ids.len() - 1), 1)[0];
    assert_eq!(top[0]["id"].as_i64().unwrap(), plain_top.0 as i64);
    assert!((top[0]["prob"].as_f64().unwrap() - plain_top.1).abs() < 1e-6);
}

#[test]
fn all_positions_lists_every_position() {
    let json = stdout_json(&[
        "-p",
        "One two three",
        "--json",
        "--all-positions",
        "--top-k",
        "2",
    ]);
    let n = json["tokens"].as_array().unwrap().len();
    let positions = json["positions"].as_array().unwrap();
    assert_eq!(positions.len(), n);
    for (i, p) in positions.iter().enumerate() {
        assert_eq!(p["index"], i);
        assert_eq!(p["top"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn text_output_shows_tokens_candidates_and_timing() {
    let out = ggviz(&["-p", "The capital of France is", "--top-k", "3"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("tokens (5)"), "{text}");
    assert!(
        text.contains("next token after position 4 \" is\""),
        "{text}"
    );
    let mut after = text
        .lines()
        .skip_while(|l| !l.starts_with("next token after"));
    let first = after.nth(1).unwrap();
    assert!(first.ends_with("\" Paris\""), "{first}");
    assert!(text.contains("timing  load"), "{text}");
}

#[test]
fn refusals_are_clear() {
    let long = "word ".repeat(600);
    let out = ggviz(&["-p", &long]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("more than the limit of 512") && err.contains("--max-tokens"),
        "{err}"
    );

    let out = ggviz(&["-p", "Hi there", "--max-tokens", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 tokens long"));

    let out = ggviz(&["-p", "Hi", "--gpu-layers", "4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--device cuda:N"));

    let out = ggviz(&["-p", "Hi", "--device", "tpu"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected `cpu`, `cuda:N` or `vulkan:N`")
    );

    if !cfg!(any(feature = "cuda", feature = "dynamic-backends")) {
        let out = ggviz(&["-p", "Hi", "--device", "cuda:0"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("built without it"));
    } else if !ggviz::engine::ffi::accelerators()
        .iter()
        .any(|d| d.name == "CUDA0")
    {
        // With dynamic backends a missing CUDA library is a run-time error
        // that says where the library would come from.
        let out = ggviz(&["-p", "Hi", "--device", "cuda:0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("`cuda:0` not found") && err.contains("libggml-cuda.so"),
            "{err}"
        );
    }

    if !cfg!(feature = "dynamic-backends") {
        let out = ggviz(&["-p", "Hi", "--device", "vulkan:0"]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("scripts/build-backend.sh vulkan"), "{err}");
    }

    // A backend folder: refused where the backends are linked in, and a
    // missing folder is refused either way.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    let out = ggviz(&["-p", "Hi", "--backend-dir", dir]);
    let err = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "dynamic-backends") {
        assert!(out.status.success(), "{err}");
    } else {
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("links llama.cpp's backends statically"),
            "{err}"
        );
    }
    let out = ggviz(&["-p", "Hi", "--backend-dir", "/no/such/folder"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The variable cannot be refused like the flag (it may be set for other
/// runs), but a folder that is not there is said, not skipped silently.
#[test]
fn a_backend_dir_variable_naming_no_folder_is_a_warning() {
    let out = Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .arg("devices")
        .env("GGVIZ_BACKEND_DIR", "/no/such/folder")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("GGVIZ_BACKEND_DIR=/no/such/folder is not a folder"),
        "{err}"
    );
    // The CPU backend still comes from the next folder.
    assert!(String::from_utf8_lossy(&out.stdout).contains("CPU"));
}

#[test]
fn devices_lists_the_cpu_and_its_features() {
    let out = Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .args(["devices", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let devices = json["devices"].as_array().unwrap();
    assert!(
        devices
            .iter()
            .any(|d| d["kind"] == "cpu" && d["backend"] == "CPU"),
        "{json}"
    );
    let backends = json["backends"].as_array().unwrap();
    assert!(backends.iter().any(|b| b[0] == "CPU"), "{json}");
    // The features the CPU backend was built with, as llama.cpp prints them.
    assert!(
        json["system_info"].as_str().unwrap().contains("CPU"),
        "{json}"
    );
    let text = Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .arg("devices")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with("backends\n") && text.contains("\ndevices\n"),
        "{text}"
    );
}

#[test]
fn json_reports_the_gap_to_llama_cpp_as_people_run_it() {
    let json = stdout_json(&["--prompt", "The capital of France is", "--json"]);
    let k = &json["kernels"];
    assert_eq!(k["positions"], 5, "{k}");
    let kl = k["kl_mean"].as_f64().unwrap();
    let dp = k["max_prob_diff"].as_f64().unwrap();
    // Flash attention changes the order of the sums, not the model: the
    // distributions stay close (on SmolLM2 Q4_1, CPU: KL 4.7e-3 nats,
    // largest Δp 0.07, same top token everywhere), but they differ.
    assert!(kl > 0.0 && kl < 5e-2, "{k}");
    assert!(dp > 0.0 && dp < 0.25, "{k}");
    assert!(k["top1_agreement"].as_f64().unwrap() >= 0.8, "{k}");
}
