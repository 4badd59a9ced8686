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
//! Where only the heads' norms are asked for (the default), they come from
//! each head's Gram matrix `G_h = W_hᵀ W_h`: `‖c_h‖ = √(xᵀ G_h x)`, so a
//! token costs `head_dim²` products a head instead of `head_dim · n_embd`
//! (9× fewer on the demo model), and the session keeps the matrices across
//! captures ([`HeadGrams`]).
//!
//! This runs inside the eval callback as each layer's `kqv_out` arrives, so
//! the working memory is one layer's: no layer's `kqv_out` is kept.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, s};

use super::capture::{HeadCapture, TraceDims};
use super::error::EngineError;
use super::ffi;
use crate::gguf::{GgufModel, TensorInfo};

/// The output projection's GGUF name in layer `layer`.
pub(crate) fn output_projection_name(layer: usize) -> String {
    format!("blk.{layer}.attn_output.weight")
}

/// Reads tensors' bytes from the model's files with plain positioned reads.
///
/// llama.cpp maps the same file; reading the weights ggviz needs through a
/// second mapping would make those pages count twice in the process's
/// resident memory, so they are read into one reused buffer instead. The
/// ranges were validated by the reader when the file was opened.
#[derive(Debug, Default)]
pub(crate) struct TensorBytes {
    /// One open handle per shard, opened on first use.
    files: Vec<Option<File>>,
    buf: Vec<u8>,
}

impl TensorBytes {
    pub(crate) fn read(
        &mut self,
        gguf: &GgufModel,
        info: &TensorInfo,
    ) -> Result<&[u8], EngineError> {
        let err = |reason: String| EngineError::Tensor {
            name: info.name.clone(),
            reason,
        };
        let shard = gguf
            .shards()
            .get(info.shard)
            .ok_or_else(|| err(format!("shard {} missing", info.shard)))?;
        if self.files.len() <= info.shard {
            self.files.resize_with(info.shard + 1, || None);
        }
        let file = match &mut self.files[info.shard] {
            Some(f) => f,
            slot => slot.insert(
                File::open(shard.path())
                    .map_err(|e| err(format!("cannot open {}: {e}", shard.path().display())))?,
            ),
        };
        let len = usize::try_from(info.n_bytes).map_err(|_| err("too large".into()))?;
        self.buf.resize(len, 0);
        file.seek(SeekFrom::Start(info.offset))
            .and_then(|_| file.read_exact(&mut self.buf))
            .map_err(|e| err(format!("cannot read its data: {e}")))?;
        Ok(&self.buf)
    }
}

/// Tensor `name` of `gguf`, or an error saying the file lacks it.
pub(crate) fn tensor_info<'g>(
    gguf: &'g GgufModel,
    name: &str,
) -> Result<&'g TensorInfo, EngineError> {
    gguf.tensor(name).ok_or_else(|| EngineError::Tensor {
        name: name.to_string(),
        reason: "not in the file".into(),
    })
}

/// Dequantizes tensor `name` of `gguf` to f32 with ggml's dequantizer.
pub(crate) fn dequantize_tensor(
    gguf: &GgufModel,
    name: &str,
    bytes: &mut TensorBytes,
    out: &mut Vec<f32>,
) -> Result<(), EngineError> {
    let err = |reason: String| EngineError::Tensor {
        name: name.to_string(),
        reason,
    };
    let info = tensor_info(gguf, name)?;
    let n = usize::try_from(info.n_elements).map_err(|_| err("too large".into()))?;
    let data = bytes.read(gguf, info)?;
    out.clear();
    out.resize(n, 0.0);
    ffi::dequantize(info.ggml_type, data, out).map_err(err)
}

/// Per layer and head, the Gram matrix `G_h = W_hᵀ W_h` (`head_dim ×
/// head_dim`) of the head's columns of `W_o`, so that a head's norm is
/// `‖W_h x‖ = √(xᵀ G_h x)`: `head_dim²` products a token instead of
/// `head_dim · n_embd`. Kept by the session across captures (the weights do
/// not change), up to [`HeadGrams::LIMIT`] bytes in all.
#[derive(Debug, Default)]
pub(crate) struct HeadGrams {
    /// `layers[l]`: layer `l`'s matrices side by side, head-major.
    layers: Vec<Option<Vec<f32>>>,
}

impl HeadGrams {
    /// The most memory the matrices may take (n_layer · n_head ·
    /// head_dim² floats); a model past it computes norms directly.
    pub(crate) const LIMIT: usize = 64 << 20;

    /// Whether a model of this shape keeps its matrices.
    fn fits(dims: &TraceDims) -> bool {
        dims.n_layer
            .saturating_mul(dims.kqv_width())
            .saturating_mul(dims.head_dim)
            .saturating_mul(std::mem::size_of::<f32>())
            <= Self::LIMIT
    }
}

/// Computes per-head contributions one layer at a time, from inside the
/// eval callback as each `kqv_out-L` arrives, so no layer's `kqv_out` is
/// kept and the working memory is one layer's projection.
#[derive(Debug)]
pub(crate) struct HeadProjector<'a> {
    gguf: &'a GgufModel,
    dims: TraceDims,
    full: bool,
    cpu_rounding: bool,
    /// The session's Gram matrices (norms only, when the model fits).
    grams: Option<&'a mut HeadGrams>,
    /// The layer's dequantized projection, `n_embd × kqv_width`.
    w: Vec<f32>,
    /// Its bytes, as stored.
    bytes: TensorBytes,
    /// One head's product: `n_tokens × n_embd` (norms computed directly)
    /// or `n_tokens × head_dim` (through the Gram matrix).
    product: Vec<f32>,
}

impl<'a> HeadProjector<'a> {
    /// A projector keeping full vectors (`full`) or norms; `cpu_rounding`
    /// when the model runs on the CPU; `grams`, the session's cache of
    /// Gram matrices, used for norms.
    pub(crate) fn new(
        gguf: &'a GgufModel,
        dims: TraceDims,
        full: bool,
        cpu_rounding: bool,
        grams: &'a mut HeadGrams,
    ) -> HeadProjector<'a> {
        let grams = (!full && HeadGrams::fits(&dims)).then_some(grams);
        HeadProjector {
            gguf,
            dims,
            full,
            cpu_rounding,
            grams,
            w: Vec::new(),
            bytes: TensorBytes::default(),
            product: Vec::new(),
        }
    }

    /// Floats one layer's result takes.
    pub(crate) fn layer_len(dims: &TraceDims, mode: HeadCapture) -> usize {
        match mode {
            HeadCapture::Off => 0,
            HeadCapture::Norms => dims.n_head * dims.n_tokens,
            HeadCapture::Full => dims.n_head * dims.n_tokens * dims.n_embd,
        }
    }

    /// Writes layer `layer`'s contributions into `out` (head-major: full
    /// vectors `n_head × n_tokens × n_embd`, or norms `n_head × n_tokens`)
    /// from its `kqv_out` (`n_tokens × kqv_width`, row-major), which is
    /// rounded in place on the CPU.
    pub(crate) fn project(
        &mut self,
        layer: usize,
        kqv: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), EngineError> {
        let dims = self.dims;
        let name = output_projection_name(layer);
        let (t, e, hd, width) = (dims.n_tokens, dims.n_embd, dims.head_dim, dims.kqv_width());
        let info = self.gguf.tensor(&name);
        let shape = info.map(|i| i.dims.clone());
        let Some(info) = info.filter(|_| shape.as_deref() == Some(&[width as u64, e as u64][..]))
        else {
            return Err(EngineError::Tensor {
                name,
                reason: format!(
                    "shape {shape:?}, expected [{width}, {e}] (ne0 = heads × head dim)"
                ),
            });
        };
        if self.cpu_rounding {
            ffi::round_like_cpu_matmul(info.ggml_type, width, kqv).map_err(|reason| {
                EngineError::Tensor {
                    name: name.clone(),
                    reason,
                }
            })?;
        }
        let shape_err = |e: ndarray::ShapeError| EngineError::InvalidRequest(e.to_string());
        let x = ArrayView2::from_shape((t, width), &*kqv).map_err(shape_err)?;
        if let Some(grams) = self.grams.as_deref_mut() {
            if grams.layers.len() <= layer {
                grams.layers.resize_with(layer + 1, || None);
            }
            let gram = match &mut grams.layers[layer] {
                Some(g) => g,
                slot => {
                    dequantize_tensor(self.gguf, &name, &mut self.bytes, &mut self.w)?;
                    slot.insert(gram_matrices(&self.w, e, hd, dims.n_head).map_err(shape_err)?)
                }
            };
            self.product.resize(t * hd, 0.0);
            let mut y = ArrayViewMut2::from_shape((t, hd), self.product.as_mut_slice())
                .map_err(shape_err)?;
            for ((h, norms), g) in out
                .chunks_exact_mut(t)
                .take(dims.n_head)
                .enumerate()
                .zip(gram.chunks_exact(hd * hd))
            {
                let xh = x.slice(s![.., h * hd..(h + 1) * hd]);
                let g = ArrayView2::from_shape((hd, hd), g).map_err(shape_err)?;
                general_mat_mul(1.0, &xh, &g, 0.0, &mut y);
                for ((n, yr), xr) in norms.iter_mut().zip(y.rows()).zip(xh.rows()) {
                    *n = yr.dot(&xr).max(0.0).sqrt();
                }
            }
            return Ok(());
        }
        dequantize_tensor(self.gguf, &name, &mut self.bytes, &mut self.w)?;
        // ggml's [ne0 = width, ne1 = n_embd] is row-major n_embd × width.
        let w = ArrayView2::from_shape((e, width), self.w.as_slice()).map_err(shape_err)?;
        let head = |h: usize| {
            let cols = s![.., h * hd..(h + 1) * hd];
            (x.slice(cols), w.slice(cols))
        };
        if self.full {
            for (h, out) in out.chunks_exact_mut(t * e).take(dims.n_head).enumerate() {
                let (xh, wh) = head(h);
                let mut out = ArrayViewMut2::from_shape((t, e), out).map_err(shape_err)?;
                general_mat_mul(1.0, &xh, &wh.t(), 0.0, &mut out);
            }
        } else {
            self.product.resize(t * e, 0.0);
            let mut product = ArrayViewMut2::from_shape((t, e), self.product.as_mut_slice())
                .map_err(shape_err)?;
            for (h, norms) in out.chunks_exact_mut(t).take(dims.n_head).enumerate() {
                let (xh, wh) = head(h);
                general_mat_mul(1.0, &xh, &wh.t(), 0.0, &mut product);
                for (n, row) in norms.iter_mut().zip(product.rows()) {
                    *n = row.dot(&row).sqrt();
                }
            }
        }
        Ok(())
    }
}

/// `W_hᵀ W_h` for every head of `w` (row-major `n_embd × n_head·head_dim`),
/// head-major.
fn gram_matrices(
    w: &[f32],
    e: usize,
    hd: usize,
    n_head: usize,
) -> Result<Vec<f32>, ndarray::ShapeError> {
    let w = ArrayView2::from_shape((e, n_head * hd), w)?;
    let mut out = vec![0f32; n_head * hd * hd];
    for (h, g) in out.chunks_exact_mut(hd * hd).enumerate() {
        let wh = w.slice(s![.., h * hd..(h + 1) * hd]);
        let mut g = ArrayViewMut2::from_shape((hd, hd), g)?;
        general_mat_mul(1.0, &wh.t(), &wh, 0.0, &mut g);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The norm through the Gram matrix is the norm of the product.
    #[test]
    fn gram_norms_equal_direct_norms() {
        let (e, hd, n_head, t) = (48, 8, 3, 5);
        let w: Vec<f32> = (0..e * n_head * hd)
            .map(|i| ((i * 7919 % 257) as f32 / 128.0) - 1.0)
            .collect();
        let x: Vec<f32> = (0..t * n_head * hd)
            .map(|i| ((i * 104_729 % 113) as f32 / 56.0) - 1.0)
            .collect();
        let grams = gram_matrices(&w, e, hd, n_head).expect("shapes");
        let wv = ArrayView2::from_shape((e, n_head * hd), &w[..]).expect("shape");
        let xv = ArrayView2::from_shape((t, n_head * hd), &x[..]).expect("shape");
        for h in 0..n_head {
            let xh = xv.slice(s![.., h * hd..(h + 1) * hd]);
            let wh = wv.slice(s![.., h * hd..(h + 1) * hd]);
            let direct = xh.dot(&wh.t());
            let g = ArrayView2::from_shape((hd, hd), &grams[h * hd * hd..(h + 1) * hd * hd])
                .expect("shape");
            let y = xh.dot(&g);
            for i in 0..t {
                let a = direct.row(i).dot(&direct.row(i)).sqrt();
                let b = y.row(i).dot(&xh.row(i)).sqrt();
                assert!(
                    (a - b).abs() <= 1e-4 * a.max(1.0),
                    "head {h} token {i}: {a} vs {b}"
                );
            }
        }
    }
}
