//! The logit lens's matrix product on SmolLM2: real hidden states (30 layers
//! × the first 32 tokens of `prompt-128.txt` = 960 rows of 576, through the
//! output norm) times the 49152-row output head, in batches of 64 rows as the
//! analyser takes them, two ways in one run:
//!
//! - ggml: the head as stored in the file (Q8_0, 28.7 MiB) on the analytics
//!   device (`DeviceMatrix`, CPU here), multiplied by ggml's own `mul_mat`,
//!   the kernel llama.cpp uses for the model's real output;
//! - f32 sgemm: the head dequantized to f32 (108 MiB) and multiplied with
//!   matrixmultiply's sgemm through ndarray, as a numpy notebook does (and as
//!   ggviz did before the analytics device).
//!
//! matrixmultiply takes its thread count from `MATMUL_NUM_THREADS` (else
//! the physical cores); `bench/run-all.sh` sets it to the same 2 threads.
//!
//! `cargo bench --bench lens_product` prints both medians, their ratio and
//! how far the two products are apart. Under `cargo test` (no `--bench`) it
//! runs one batch of each. Both modes check that the two agree and that
//! ggml's last-layer rows reproduce llama.cpp's logits. `GGVIZ_TEST_MODEL`
//! overrides the model, `GGVIZ_BENCH_THREADS` the threads (default 2) and
//! `GGVIZ_BENCH_RUNS` the timed runs of each.

mod common;

use std::process::ExitCode;
use std::time::Instant;

use ggviz::analysis::lens::{NormKind, OutputHead};
use ggviz::engine::{CaptureOptions, Device, Session, SessionOptions, TokenId};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

const BATCH: usize = 64;
const PROMPT: &str = include_str!("prompt-128.txt");

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1048576.0
}

fn run() -> Result<(), String> {
    let common::Settings {
        benching,
        model,
        threads,
        runs,
    } = common::settings(5);
    let options = SessionOptions {
        threads,
        ..SessionOptions::default()
    };
    let mut session = Session::load(&model, options).map_err(|e| e.to_string())?;
    // Real hidden states: the first 32 tokens of the 128-token prompt.
    let tokens = session
        .tokenize(PROMPT.trim_end())
        .map_err(|e| e.to_string())?;
    let ids: Vec<TokenId> = tokens.iter().take(32).map(|t| t.id).collect();
    let capture = CaptureOptions {
        hidden: true,
        ..CaptureOptions::logits_only()
    };
    let trace = session
        .trace_ids(&ids, &capture)
        .map_err(|e| e.to_string())?;
    let name = session.output_weight_name();
    let info = session.gguf().tensor(name).ok_or("no output head")?;
    let (ggml_type, stored_bytes) = (info.ggml_type, info.n_bytes as usize);
    let dims = session.dims(1);
    let (e, v) = (dims.n_embd, dims.n_vocab);
    let norm = session
        .dequantize("output_norm.weight")
        .map_err(|e| e.to_string())?;
    let matrix = session
        .device_matrix(name, Device::Cpu, e, v)
        .map_err(|e| e.to_string())?;
    // The output norm (RMS, SmolLM2's epsilon), applied by the lens's own code.
    let mut head = OutputHead {
        product: matrix,
        norm_weight: &norm,
        norm_bias: None,
        norm: NormKind::Rms,
        eps: 1e-5,
        softcap: None,
    };
    let mut x = vec![0f32; trace.layers.len() * ids.len() * e];
    let mut rows_out = x.chunks_exact_mut(e);
    for layer in &trace.layers {
        let hidden = layer.hidden.as_ref().ok_or("no hidden state captured")?;
        for (r, dst) in (0..ids.len()).zip(&mut rows_out) {
            head.normalise(hidden.row(r), dst);
        }
    }
    let layers = trace.layers.len();
    let x = if benching {
        x
    } else {
        x[x.len() - BATCH * e..].to_vec()
    };
    let rows = x.len() / e;
    let dense = session.dequantize(name).map_err(|e| e.to_string())?;
    let weight = ArrayView2::from_shape((v, e), &dense).map_err(|e| e.to_string())?;
    let (mut out_ggml, mut out_dense) = (vec![0f32; BATCH * v], vec![0f32; BATCH * v]);
    let (mut t_ggml, mut t_dense) = (Vec::new(), Vec::new());
    let (mut diff, mut total) = (0f64, 0f64);
    let mut vs_llama = [0f64; 2];
    for run in 0..runs {
        let start = Instant::now();
        for chunk in x.chunks(BATCH * e) {
            head.product
                .product(chunk, &mut out_ggml)
                .map_err(|e| e.to_string())?;
        }
        t_ggml.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        for chunk in x.chunks(BATCH * e) {
            let n = chunk.len() / e;
            let a = ArrayView2::from_shape((n, e), chunk).map_err(|e| e.to_string())?;
            let mut c = ArrayViewMut2::from_shape((n, v), &mut out_dense[..n * v])
                .map_err(|e| e.to_string())?;
            general_mat_mul(1.0, &a, &weight.t(), 0.0, &mut c);
        }
        t_dense.push(start.elapsed().as_secs_f64() * 1e3);
        if run == 0 {
            // The last batch of each: the last two layers' rows, compared
            // with each other, and the last layer's with llama.cpp's logits.
            for (a, b) in out_ggml.iter().zip(&out_dense) {
                diff += f64::from(a - b).powi(2);
                total += f64::from(*b).powi(2);
            }
            let last = &trace.logits.data[..ids.len() * v];
            let tail = (BATCH - ids.len()) * v..BATCH * v;
            vs_llama = [&out_ggml[tail.clone()], &out_dense[tail]].map(|ours| {
                let d: f64 = ours
                    .iter()
                    .zip(last)
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum();
                let n: f64 = last.iter().map(|b| f64::from(*b).powi(2)).sum();
                (d / n).sqrt()
            });
        }
    }
    let rel = (diff / total).sqrt();
    println!(
        "lens product, {rows} rows ({layers} layers × {} tokens, real hidden states) × {name} [{e}, {v}] {}, batches of {BATCH}, {threads} threads",
        ids.len(),
        ggml_type.name()
    );
    println!(
        "  ggml mul_mat, stored type on the CPU backend: {:>8.1} ms  (weights {:.1} MiB)",
        common::median(t_ggml.clone()),
        mib(stored_bytes)
    );
    println!(
        "  f32 sgemm over the dequantized head:          {:>8.1} ms  (weights {:.1} MiB)",
        common::median(t_dense.clone()),
        mib(dense.len() * 4)
    );
    println!(
        "  ggml is {:.2}× faster; ‖ggml − f32‖/‖f32‖ = {rel:.2e} (ggml rounds the activations as llama.cpp does)",
        common::median(t_dense) / common::median(t_ggml)
    );
    println!(
        "  last layer vs llama.cpp's own logits: ggml {:.2e}, f32 sgemm {:.2e}",
        vs_llama[0], vs_llama[1]
    );
    // Activation rounding moves logits by well under 1%; anything larger is a
    // wrong product.
    if rel.is_nan() || rel >= 1e-2 {
        return Err(format!("the two products disagree: {rel:.3e}"));
    }
    // ggml's product is llama.cpp's own: the last layer reproduces its logits.
    if vs_llama[0].is_nan() || vs_llama[0] >= 1e-3 {
        return Err(format!(
            "ggml's lens is {:.3e} from llama.cpp's logits",
            vs_llama[0]
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lens_product: {e}");
            ExitCode::FAILURE
        }
    }
}
