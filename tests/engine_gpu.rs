//! The capture on a GPU backend (CUDA, or Vulkan, also Mesa's software
//! Vulkan driver lavapipe in CI) against the same capture on the CPU, and
//! the analytics device on it. Built wherever ggviz can drive a GPU: with
//! dynamic backends (the default: the backend library is loaded at run
//! time) or the static `cuda` feature.
//!
//! The device is `GGVIZ_TEST_DEVICE` (`vulkan:0`, `cuda:0`; then it must
//! exist: `make test` sets it after building the Vulkan library), else the
//! first CUDA or Vulkan device llama.cpp sees. Where it sees none, each test
//! says so on stderr and passes, unless `GGVIZ_REQUIRE_GPU=1` is set (as on
//! the GPU machine, see the README's GPU section): then it fails.
#![cfg(any(feature = "cuda", feature = "dynamic-backends"))]
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;
mod engine_checks;

use engine_checks as check;
use ggviz::engine::ffi::accelerators;
use ggviz::engine::{Device, Session, SessionOptions, Trace};

const PROMPT: &str = "The quick brown fox jumps over the lazy dog because it was tired.";

/// The device under test, when llama.cpp sees it.
fn gpu() -> Option<Device> {
    let found = accelerators();
    let named = std::env::var("GGVIZ_TEST_DEVICE")
        .ok()
        .filter(|v| !v.is_empty());
    if let Some(name) = named {
        let device: Device = name.parse().unwrap();
        let ggml = device.ggml_name().unwrap();
        assert!(
            found.iter().any(|d| d.name == ggml),
            "GGVIZ_TEST_DEVICE={name} but llama.cpp sees {found:?} (backends: {:?})",
            ggviz::engine::ffi::system_report().libraries
        );
        eprintln!("device under test: {name} of {found:?}");
        return Some(device);
    }
    for device in [Device::Cuda(0), Device::Vulkan(0)] {
        if found
            .iter()
            .any(|d| Some(&d.name) == device.ggml_name().as_ref())
        {
            eprintln!("device under test: {device} of {found:?}");
            return Some(device);
        }
    }
    let require = std::env::var("GGVIZ_REQUIRE_GPU").is_ok_and(|v| v == "1");
    assert!(!require, "GGVIZ_REQUIRE_GPU=1 but llama.cpp sees no GPU");
    eprintln!("skipped: llama.cpp sees no CUDA or Vulkan device");
    None
}

fn load(device: Device) -> Session {
    load_file(&common::smollm2(), device)
}

fn load_file(path: &std::path::Path, device: Device) -> Session {
    let options = SessionOptions {
        device,
        threads: common::test_threads(),
        ..SessionOptions::default()
    };
    Session::load(path, options).unwrap()
}

/// Relative difference of one captured array at every layer.
fn per_layer(a: &Trace, b: &Trace, pick: impl Fn(&Trace, usize) -> Option<Vec<f32>>) -> Vec<f64> {
    (0..a.layers.len())
        .map(|l| check::rel_err(&pick(a, l).unwrap(), &pick(b, l).unwrap()))
        .collect()
}

/// How far the device's trace of `path` is from the CPU's.
#[derive(Debug)]
struct Gap {
    /// Worst layer of attention, hidden, attn_out, ffn_out; then logits.
    worst: [(&'static str, f64); 5],
    hidden_by_layer: Vec<f64>,
    same_top: usize,
    tokens: usize,
    last_top_agrees: bool,
}

/// A list of errors printed short.
struct Errs<'a>(&'a [f64]);

impl std::fmt::LowerExp for Errs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|e| format!("{e:.1e}")).collect();
        write!(f, "[{}]", parts.join(" "))
    }
}

fn gap(path: &std::path::Path, device: Device) -> Gap {
    let cpu = load_file(path, Device::Cpu)
        .trace(PROMPT, &check::full())
        .unwrap();
    let gpu = load_file(path, device)
        .trace(PROMPT, &check::full())
        .unwrap();
    assert_eq!(cpu.token_ids(), gpu.token_ids());
    assert!(gpu.missing.is_empty(), "{:?}", gpu.missing);
    // The device's trace passes the same self-checks as the CPU's.
    let rows = check::attention_rows(&gpu);
    let heads = check::head_sums(&gpu);
    assert!(rows < 1e-4, "{rows}");
    assert!(heads < 1e-2, "{heads}");
    let max = |v: Vec<f64>| v.into_iter().fold(0.0, f64::max);
    let hidden_by_layer = per_layer(&gpu, &cpu, |t, l| {
        t.layers[l].hidden.as_ref().map(|m| m.data.clone())
    });
    let worst = [
        (
            "attention",
            max(per_layer(&gpu, &cpu, |t, l| {
                t.layers[l].attention.as_ref().map(|a| a.data.clone())
            })),
        ),
        ("hidden", max(hidden_by_layer.clone())),
        (
            "attn_out",
            max(per_layer(&gpu, &cpu, |t, l| {
                t.layers[l].attn_out.as_ref().map(|m| m.data.clone())
            })),
        ),
        (
            "ffn_out",
            max(per_layer(&gpu, &cpu, |t, l| {
                t.layers[l].ffn_out.as_ref().map(|m| m.data.clone())
            })),
        ),
        ("logits", check::rel_err(&gpu.logits.data, &cpu.logits.data)),
    ];
    let t = cpu.tokens.len();
    let same_top = (0..t)
        .filter(|&i| check::argmax(gpu.logits.row(i)) == check::argmax(cpu.logits.row(i)))
        .count();
    let gap = Gap {
        worst,
        hidden_by_layer,
        same_top,
        tokens: t,
        last_top_agrees: check::argmax(gpu.logits.row(t - 1))
            == check::argmax(cpu.logits.row(t - 1)),
    };
    println!(
        "{device} vs CPU on {}: {:?} (relative, worst layer); same top token at {}/{t}; \
         hidden by layer {:.1e}; device self-checks: attention rows {rows:.2e}, head sums \
         vs attn_out {heads:.2e}",
        path.display(),
        gap.worst,
        gap.same_top,
        Errs(&gap.hidden_by_layer)
    );
    gap
}

/// On the quantized demo model the backends' kernels differ the most: the
/// CPU multiplies Q4_1 weights by activations rounded to Q8_1, a GPU backend
/// by its own scheme (Vulkan on lavapipe: f32/f16 shaders; CUDA: MMQ with
/// Q8_1). Close, not identical.
#[test]
fn the_gpu_trace_matches_the_cpu_trace() {
    let Some(device) = gpu() else { return };
    let gap = gap(&common::smollm2(), device);
    for (what, err) in gap.worst {
        assert!(err < 0.15, "{what}: {err}");
    }
    assert!(gap.same_top * 10 >= gap.tokens * 8, "{gap:?}");
    assert!(gap.last_top_agrees, "{gap:?}");
    let mut session = load(device);
    let paris = session
        .trace("The capital of France is", &check::full())
        .unwrap();
    let top = check::argmax(paris.logits.row(paris.tokens.len() - 1));
    assert_eq!(session.token(top as i32).unwrap().piece, " Paris");
}

/// On an F32 copy of the demo model no backend rounds weights or
/// activations, so what is left is summation order: the capture on the
/// device must then agree with the CPU's closely, array by array (a
/// capture that read the wrong tensor or a stale buffer would not).
#[test]
fn on_f32_weights_the_gpu_trace_matches_the_cpu_trace_closely() {
    let Some(device) = gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let f32_copy = dir.path().join("smollm2-f32.gguf");
    ggviz::engine::ffi::quantize::quantize_file(
        &common::smollm2(),
        &f32_copy,
        ggviz::engine::quantize::QuantType::F32,
        common::test_threads(),
        None,
    )
    .unwrap();
    let gap = gap(&f32_copy, device);
    for (what, err) in gap.worst {
        assert!(err < 1e-2, "{what}: {err}");
    }
    assert_eq!(gap.same_top, gap.tokens, "{gap:?}");
}

#[test]
fn the_lens_on_the_gpu_reproduces_the_gpu_logits() {
    let Some(device) = gpu() else { return };
    let mut session = load(device);
    let trace = session.trace(PROMPT, &check::full()).unwrap();
    let normed = trace.final_norm.as_ref().unwrap();
    let name = session.output_weight_name();
    let dims = session.dims(1);
    let mut head = session
        .device_matrix(name, device, dims.n_embd, dims.n_vocab)
        .unwrap();
    assert_eq!(head.device_name(), device.ggml_name().unwrap());
    let mut logits = vec![0f32; normed.rows * dims.n_vocab];
    head.product(&normed.data, &mut logits).unwrap();
    let err = check::rel_err(&logits, &trace.logits.data);
    println!(
        "lens product on {}: vs llama.cpp's logits {err:.2e}",
        head.device_name()
    );
    assert!(err < 1e-2, "{err}");
    // The same product on the CPU backend: the analytics device may differ
    // from the model's.
    let mut cpu_head = session
        .device_matrix(name, Device::Cpu, dims.n_embd, dims.n_vocab)
        .unwrap();
    let mut on_cpu = vec![0f32; logits.len()];
    cpu_head.product(&normed.data, &mut on_cpu).unwrap();
    let across = check::rel_err(&on_cpu, &logits);
    println!("lens product, CPU backend vs GPU backend: {across:.2e}");
    assert!(across < 1e-2, "{across}");
}

/// `ggviz run --device D --json` end to end (the worker
/// process loads the backend library too): the same tokens and top token as
/// on the CPU, probabilities within the kernels' differences.
#[test]
fn the_cli_runs_the_demo_model_on_the_gpu() {
    let Some(device) = gpu() else { return };
    let dev = device.to_string();
    let run = |extra: &[&str]| -> serde_json::Value {
        let out = std::process::Command::new(common::ggviz_bin())
            .arg("run")
            .arg(common::smollm2())
            .args(["-p", "The capital of France is", "--json"])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let cpu = run(&[]);
    let start = std::time::Instant::now();
    let gpu = run(&["--device", &dev]);
    assert_eq!(gpu["device"], dev.as_str());
    assert_eq!(gpu["tokens"], cpu["tokens"]);
    let top = |v: &serde_json::Value| v["positions"][0]["top"][0].clone();
    let (c, g) = (top(&cpu), top(&gpu));
    assert_eq!(g["piece"], " Paris");
    assert_eq!(g["id"], c["id"]);
    let diff = (g["prob"].as_f64().unwrap() - c["prob"].as_f64().unwrap()).abs();
    println!(
        "ggviz run on {dev}: p(Paris) {} vs {} on the CPU (difference {diff:.4}); \
         kernel gap on the device {}; {:.1} s",
        g["prob"],
        c["prob"],
        gpu["kernels"],
        start.elapsed().as_secs_f64()
    );
    assert!(diff < 0.02, "{diff}");
    assert!(gpu["capture"]["missing"].as_array().unwrap().is_empty());
}
