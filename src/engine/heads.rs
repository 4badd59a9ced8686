//! Per-head contributions to the residual stream.
//!
//! The attention block's output is `W_o · kqv_out` (llama.cpp's
//! `build_attn`: `kqv_out-L` then `build_lora_mm(wo, cur)`), and `kqv_out`
//! is the heads' outputs side by side, so head h's share is its slice of
//! `kqv_out` times its columns of `W_o`:
//! `c_h = W_o[:, h·d:(h+1)·d] · kqv_out[h·d:(h+1)·d]`. Summed over heads this
//! is the attention output (bias aside). `W_o` is dequantized with ggml's own
//! `to_float`, so the product uses the very weights llama.cpp's kernels use;
//! on the CPU, `kqv_out` is also rounded as the CPU kernel rounds it
//! ([`ffi::round_like_cpu_matmul`]), so the heads add up to llama.cpp's
//! attention output to float precision rather than to the activation
//! quantization's ~1e-2.
//!
//! This runs after the decode, not in the eval callback, so it can use every
//! thread the decode used, and the callback only copies.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};

use super::capture::{HeadCapture, HeadContributions, TraceDims};
use super::error::EngineError;
use super::ffi;
use crate::gguf::GgufModel;

/// The output projection's GGUF name in layer `layer`.
pub(crate) fn output_projection_name(layer: usize) -> String {
    format!("blk.{layer}.attn_output.weight")
}

/// Dequantizes a whole tensor of `gguf` to f32 with ggml's dequantizer.
pub(crate) fn dequantize_tensor(
    gguf: &GgufModel,
    name: &str,
    out: &mut Vec<f32>,
) -> Result<(), EngineError> {
    let err = |reason: String| EngineError::Tensor {
        name: name.to_string(),
        reason,
    };
    let info = gguf
        .tensor(name)
        .ok_or_else(|| err("not in the file".into()))?;
    let bytes = gguf
        .tensor_data(info)
        .ok_or_else(|| err("data outside the file".into()))?;
    let n = usize::try_from(info.n_elements).map_err(|_| err("too large".into()))?;
    out.clear();
    out.resize(n, 0.0);
    ffi::dequantize(info.ggml_type, bytes, out).map_err(err)
}

/// Buffers one thread reuses from layer to layer.
#[derive(Default)]
struct Scratch {
    /// The dequantized projection.
    w: Vec<f32>,
    /// `kqv_out`, rounded like the CPU kernel.
    x: Vec<f32>,
}

/// Computes one layer's contributions from its captured `kqv_out`
/// (`n_tokens × kqv_width`, row-major).
fn layer_contributions(
    gguf: &GgufModel,
    dims: &TraceDims,
    layer: usize,
    kqv: &[f32],
    mode: HeadCapture,
    cpu_rounding: bool,
    scratch: &mut Scratch,
) -> Result<HeadContributions, EngineError> {
    let name = output_projection_name(layer);
    let (t, e, hd, width) = (dims.n_tokens, dims.n_embd, dims.head_dim, dims.kqv_width());
    let info = gguf.tensor(&name);
    let shape = info.map(|i| i.dims.clone());
    let Some(info) = info.filter(|_| shape.as_deref() == Some(&[width as u64, e as u64][..]))
    else {
        return Err(EngineError::Tensor {
            name,
            reason: format!("shape {shape:?}, expected [{width}, {e}] (ne0 = heads × head dim)"),
        });
    };
    dequantize_tensor(gguf, &name, &mut scratch.w)?;
    scratch.x.clear();
    scratch.x.extend_from_slice(kqv);
    if cpu_rounding {
        ffi::round_like_cpu_matmul(info.ggml_type, width, &mut scratch.x)
            .map_err(|reason| EngineError::Tensor { name, reason })?;
    }
    let shape_err = |e: ndarray::ShapeError| EngineError::InvalidRequest(e.to_string());
    // ggml's [ne0 = width, ne1 = n_embd] is row-major n_embd × width.
    let w = ArrayView2::from_shape((e, width), scratch.w.as_slice()).map_err(shape_err)?;
    let x = ArrayView2::from_shape((t, width), scratch.x.as_slice()).map_err(shape_err)?;
    let head = |h: usize| {
        let cols = s![.., h * hd..(h + 1) * hd];
        (x.slice(cols), w.slice(cols))
    };
    match mode {
        HeadCapture::Full => {
            let mut data = vec![0f32; dims.n_head * t * e];
            for (h, out) in data.chunks_exact_mut(t * e).enumerate() {
                let (xh, wh) = head(h);
                let mut out = ArrayViewMut2::from_shape((t, e), out).map_err(shape_err)?;
                general_mat_mul(1.0, &xh, &wh.t(), 0.0, &mut out);
            }
            Ok(HeadContributions::Full {
                n_head: dims.n_head,
                n_tokens: t,
                n_embd: e,
                data,
            })
        }
        HeadCapture::Norms | HeadCapture::Off => {
            let mut product = Array2::<f32>::zeros((t, e));
            let mut data = Vec::with_capacity(dims.n_head * t);
            for h in 0..dims.n_head {
                let (xh, wh) = head(h);
                general_mat_mul(1.0, &xh, &wh.t(), 0.0, &mut product);
                data.extend(product.rows().into_iter().map(|r| r.dot(&r).sqrt()));
            }
            Ok(HeadContributions::Norms {
                n_head: dims.n_head,
                n_tokens: t,
                data,
            })
        }
    }
}

/// Computes every layer's contributions from the captured `kqv_out`s
/// (`None` where the layer was not captured), spreading layers over
/// `threads` threads; `cpu_rounding` when the model ran on the CPU. A layer
/// that cannot be computed (its projection is missing or oddly shaped) gets
/// `None` and a note.
pub(crate) fn contributions(
    gguf: &GgufModel,
    dims: &TraceDims,
    kqv: &[Option<Vec<f32>>],
    mode: HeadCapture,
    cpu_rounding: bool,
    threads: usize,
    notes: &mut Vec<String>,
) -> Vec<Option<HeadContributions>> {
    let threads = threads.clamp(1, kqv.len().max(1));
    let mut results: Vec<Option<Result<HeadContributions, EngineError>>> =
        (0..kqv.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || {
                    let mut scratch = Scratch::default();
                    (worker..kqv.len())
                        .step_by(threads)
                        .filter_map(|l| {
                            let x = kqv[l].as_deref()?;
                            let c = layer_contributions(
                                gguf,
                                dims,
                                l,
                                x,
                                mode,
                                cpu_rounding,
                                &mut scratch,
                            );
                            Some((l, c))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => done.into_iter().for_each(|(l, r)| results[l] = Some(r)),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
    });
    results
        .into_iter()
        .map(|r| match r? {
            Ok(c) => Some(c),
            Err(e) => {
                notes.push(format!("per-head contributions: {e}"));
                None
            }
        })
        .collect()
}
