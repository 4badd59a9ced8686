//! The capture on a CUDA GPU against the same capture on the CPU, and the
//! analytics device on the GPU. Built only with `--features cuda`.
//!
//! Needs a CUDA device that llama.cpp can see. Where it sees none, each test
//! says so on stderr and passes, unless `GGVIZ_REQUIRE_GPU=1` is set (as on
//! the GPU machine, see the README's CUDA section): then it fails.
#![cfg(feature = "cuda")]
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;
mod engine_checks;

use engine_checks as check;
use ggviz::engine::ffi::accelerators;
use ggviz::engine::{Device, Session, SessionOptions, Trace};

const PROMPT: &str = "The quick brown fox jumps over the lazy dog because it was tired.";

/// `cuda:0` when llama.cpp sees it.
fn gpu() -> Option<Device> {
    let found = accelerators();
    if found.iter().any(|d| d.name == "CUDA0") {
        eprintln!("GPU: {found:?}");
        return Some(Device::Cuda(0));
    }
    let require = std::env::var("GGVIZ_REQUIRE_GPU").is_ok_and(|v| v == "1");
    assert!(
        !require,
        "GGVIZ_REQUIRE_GPU=1 but llama.cpp sees no CUDA device"
    );
    eprintln!("skipped: llama.cpp sees no CUDA device");
    None
}

fn load(device: Device) -> Session {
    let options = SessionOptions {
        device,
        threads: common::test_threads(),
        ..SessionOptions::default()
    };
    Session::load(common::smollm2(), options).unwrap()
}

/// Largest relative difference over the layers of one captured array.
fn worst(a: &Trace, b: &Trace, pick: impl Fn(&Trace, usize) -> Option<Vec<f32>>) -> f64 {
    (0..a.layers.len())
        .map(|l| check::rel_err(&pick(a, l).unwrap(), &pick(b, l).unwrap()))
        .fold(0.0, f64::max)
}

#[test]
fn the_gpu_trace_matches_the_cpu_trace() {
    let Some(device) = gpu() else { return };
    let cpu = load(Device::Cpu).trace(PROMPT, &check::full()).unwrap();
    let mut gpu_session = load(device);
    let gpu = gpu_session.trace(PROMPT, &check::full()).unwrap();
    assert_eq!(cpu.token_ids(), gpu.token_ids());
    assert!(gpu.missing.is_empty(), "{:?}", gpu.missing);

    // The GPU trace passes the same self-checks as the CPU's.
    let rows = check::attention_rows(&gpu);
    let heads = check::head_sums(&gpu);
    // And agrees with the CPU's, array by array.
    let attention = worst(&gpu, &cpu, |t, l| {
        t.layers[l].attention.as_ref().map(|a| a.data.clone())
    });
    let hidden = worst(&gpu, &cpu, |t, l| {
        t.layers[l].hidden.as_ref().map(|m| m.data.clone())
    });
    let attn_out = worst(&gpu, &cpu, |t, l| {
        t.layers[l].attn_out.as_ref().map(|m| m.data.clone())
    });
    let ffn_out = worst(&gpu, &cpu, |t, l| {
        t.layers[l].ffn_out.as_ref().map(|m| m.data.clone())
    });
    let logits = check::rel_err(&gpu.logits.data, &cpu.logits.data);
    let t = cpu.tokens.len();
    let same_top = (0..t)
        .filter(|&i| check::argmax(gpu.logits.row(i)) == check::argmax(cpu.logits.row(i)))
        .count();
    println!(
        "GPU vs CPU, {t} tokens: attention {attention:.2e}, hidden {hidden:.2e}, \
         attn_out {attn_out:.2e}, ffn_out {ffn_out:.2e}, logits {logits:.2e} (relative, \
         worst layer); same top token at {same_top}/{t} positions. GPU self-checks: \
         attention rows {rows:.2e}, head sums vs attn_out {heads:.2e}"
    );
    assert!(rows < 1e-4, "{rows}");
    assert!(heads < 1e-2, "{heads}");
    // Different kernels (cuBLAS, MMQ with Q8_1 activations) on the same
    // weights: close, not identical.
    for (what, err) in [
        ("attention", attention),
        ("hidden", hidden),
        ("attn_out", attn_out),
        ("ffn_out", ffn_out),
        ("logits", logits),
    ] {
        assert!(err < 5e-2, "{what}: {err}");
    }
    assert!(same_top * 10 >= t * 9, "{same_top}/{t}");
    assert_eq!(
        check::argmax(gpu.logits.row(t - 1)),
        check::argmax(cpu.logits.row(t - 1))
    );
    let paris = gpu_session
        .trace("The capital of France is", &check::full())
        .unwrap();
    let top = check::argmax(paris.logits.row(paris.tokens.len() - 1));
    assert_eq!(gpu_session.token(top as i32).unwrap().piece, " Paris");
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
    assert!(
        head.device_name().starts_with("CUDA"),
        "{}",
        head.device_name()
    );
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
