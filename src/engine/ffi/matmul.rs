//! Matrix products on a ggml backend of ggviz's choosing: the analytics
//! device.
//!
//! The heavy part of ggviz's analytics is the logit lens: every layer's
//! hidden state at every position times the output head, `n_layer × n_tokens`
//! rows against `n_vocab × n_embd` weights. [`DeviceMatrix`] keeps one weight
//! matrix, *as stored in the file* (Q8_0, Q6_K, F16, ...), in the memory of a
//! ggml backend (the CPU, or a CUDA GPU that need not be the one the model
//! runs on) and multiplies f32 rows by it with ggml's own `mul_mat`, the
//! kernel llama.cpp uses for the model's real output. So the lens computes
//! what llama.cpp computes on that device, activation rounding included, and
//! no dequantized f32 copy of the head is ever made.
//!
//! Every shape is checked here before ggml sees it: ggml's own checks are
//! `GGML_ASSERT`s, which abort the process.

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use llama_cpp_sys_2 as sys;

use super::{init, lossy, resolve_device};
use crate::engine::device::Device;
use crate::engine::error::EngineError;
use crate::gguf::GgmlType;

/// A weight matrix of `n_out` rows of `n_in` values held by a ggml backend,
/// and the product of f32 rows with it.
#[derive(Debug)]
pub struct DeviceMatrix {
    backend: NonNull<sys::ggml_backend>,
    /// The context that describes `weight` (no data of its own).
    ctx: NonNull<sys::ggml_context>,
    /// The backend memory that holds `weight`'s data.
    buffer: NonNull<sys::ggml_backend_buffer>,
    weight: NonNull<sys::ggml_tensor>,
    n_in: usize,
    n_out: usize,
    name: String,
    device: String,
    /// The graph for the last batch size, kept for the next batch.
    work: Option<Work>,
}

/// One `y = W·x` graph for batches of `rows` rows, with its memory.
#[derive(Debug)]
struct Work {
    rows: usize,
    ctx: NonNull<sys::ggml_context>,
    buffer: NonNull<sys::ggml_backend_buffer>,
    graph: NonNull<sys::ggml_cgraph>,
    x: NonNull<sys::ggml_tensor>,
    y: NonNull<sys::ggml_tensor>,
}

// SAFETY: a DeviceMatrix owns its backend, contexts and buffers outright; no
// other handle to them exists, so moving it to another thread moves them all.
// It is not Sync: a ggml backend must not compute two graphs at once.
unsafe impl Send for DeviceMatrix {}

/// A context that only describes tensors (their data lives in a backend
/// buffer), with room for `n_tensors` and, if `graph`, one graph.
fn describing_context(n_tensors: usize, graph: bool) -> Option<NonNull<sys::ggml_context>> {
    // SAFETY: plain size queries and a context that allocates its own
    // bookkeeping memory (mem_buffer null, no tensor data).
    unsafe {
        let mut size = n_tensors * sys::ggml_tensor_overhead();
        if graph {
            size += sys::ggml_graph_overhead();
        }
        NonNull::new(sys::ggml_init(sys::ggml_init_params {
            mem_size: size,
            mem_buffer: ptr::null_mut(),
            no_alloc: true,
        }))
    }
}

impl DeviceMatrix {
    /// Copies tensor `name`'s `bytes` (`n_out` rows of `n_in` values of
    /// type `ggml_type`, as stored in the GGUF file) to `device`. `threads`
    /// is the CPU backend's thread count (ignored on a GPU).
    pub fn upload(
        device: Device,
        name: &str,
        ggml_type: GgmlType,
        bytes: &[u8],
        n_in: usize,
        n_out: usize,
        threads: usize,
    ) -> Result<DeviceMatrix, EngineError> {
        init();
        let err = |reason: String| EngineError::Tensor {
            name: name.to_string(),
            reason,
        };
        let id = ggml_type.id();
        if id >= sys::GGML_TYPE_COUNT {
            return Err(err(format!(
                "type {} is unknown to this llama.cpp",
                ggml_type.name()
            )));
        }
        // SAFETY: the id indexes ggml's static type table (checked above).
        let block =
            usize::try_from(unsafe { (*sys::ggml_get_type_traits(id)).blck_size }).unwrap_or(0);
        let (Ok(ne0), Ok(ne1)) = (i64::try_from(n_in), i64::try_from(n_out)) else {
            return Err(err("too large".into()));
        };
        if block == 0 || n_in == 0 || n_out == 0 || !n_in.is_multiple_of(block) {
            return Err(err(format!(
                "{n_out} rows of {n_in} {} values cannot be multiplied by ggml",
                ggml_type.name()
            )));
        }
        // SAFETY: n_in is a whole number of blocks of a known type.
        let row = unsafe { sys::ggml_row_size(id, ne0) };
        if row.checked_mul(n_out) != Some(bytes.len()) {
            return Err(err(format!(
                "{} bytes do not hold {n_out} rows of {n_in} {} values",
                bytes.len(),
                ggml_type.name()
            )));
        }
        let dev = match resolve_device(device)? {
            Some(dev) => dev,
            // SAFETY: the registry is initialised (init above).
            None => unsafe { sys::ggml_backend_dev_by_type(sys::GGML_BACKEND_DEVICE_TYPE_CPU) },
        };
        if dev.is_null() {
            return Err(err("llama.cpp has no CPU backend".into()));
        }
        super::clear_last_error();
        // SAFETY: `dev` is a device of the registry; null params is allowed.
        let backend = NonNull::new(unsafe { sys::ggml_backend_dev_init(dev, ptr::null()) })
            .ok_or_else(|| {
                err(format!(
                    "cannot start {device}{}",
                    super::take_last_error()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ))
            })?;
        // SAFETY: `backend` was just created and is ours.
        let device_name = unsafe { lossy(sys::ggml_backend_name(backend.as_ptr())) };
        let free_backend = |e: EngineError| {
            // SAFETY: nothing else refers to the backend yet.
            unsafe { sys::ggml_backend_free(backend.as_ptr()) };
            e
        };
        set_threads(backend, threads);
        let ctx = describing_context(1, false)
            .ok_or_else(|| free_backend(err("ggml could not create a context".into())))?;
        // SAFETY: the context has room for one tensor; the shape is a whole
        // number of blocks (checked above).
        let weight = unsafe {
            let t = sys::ggml_new_tensor_2d(ctx.as_ptr(), id, ne0, ne1);
            NonNull::new(t)
        };
        let allocated = weight.and_then(|_| {
            // SAFETY: allocates backend memory for the context's one tensor.
            NonNull::new(unsafe {
                sys::ggml_backend_alloc_ctx_tensors(ctx.as_ptr(), backend.as_ptr())
            })
        });
        let (Some(weight), Some(buffer)) = (weight, allocated) else {
            // SAFETY: the context and backend are ours and unused.
            unsafe { sys::ggml_free(ctx.as_ptr()) };
            return Err(free_backend(err(format!(
                "cannot allocate {:.1} MiB on {device_name}",
                bytes.len() as f64 / 1048576.0
            ))));
        };
        // SAFETY: `weight` has exactly `bytes.len()` bytes (its row size
        // times n_out, checked above) in a buffer of `backend`.
        unsafe {
            sys::ggml_backend_tensor_set(
                weight.as_ptr(),
                bytes.as_ptr().cast::<c_void>(),
                0,
                bytes.len(),
            );
        }
        Ok(DeviceMatrix {
            backend,
            ctx,
            buffer,
            weight,
            n_in,
            n_out,
            name: name.to_string(),
            device: device_name,
            work: None,
        })
    }

    /// Values per input row.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Values per output row.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// ggml's name for the backend that holds the matrix (`CPU`, `CUDA1`).
    pub fn device_name(&self) -> &str {
        &self.device
    }

    /// `out = x · Wᵀ`: for each row of `x` (`rows × n_in`), the `n_out` dot
    /// products with the matrix's rows, written to `out` (`rows × n_out`).
    pub fn product(&mut self, x: &[f32], out: &mut [f32]) -> Result<(), EngineError> {
        let rows = x.len() / self.n_in;
        if rows == 0 || !x.len().is_multiple_of(self.n_in) || out.len() < rows * self.n_out {
            return Err(EngineError::InvalidRequest(format!(
                "product with {}: {} inputs and room for {} outputs do not fit rows of {} → {}",
                self.name,
                x.len(),
                out.len(),
                self.n_in,
                self.n_out
            )));
        }
        // The graph of the last batch serves again if it had as many rows;
        // an old one is freed before its replacement is allocated.
        let work = match self.work.take() {
            Some(w) if w.rows == rows => w,
            old => {
                drop(old);
                self.new_work(rows)?
            }
        };
        let (x_t, y_t, graph) = (work.x, work.y, work.graph);
        self.work = Some(work);
        let fail = |what: &str| EngineError::Tensor {
            name: self.name.clone(),
            reason: format!("{what} on {}", self.device),
        };
        // SAFETY: `x_t` holds rows × n_in f32 and `y_t` rows × n_out f32 in
        // the work buffer (shapes made in `new_work`); the slices are at
        // least that long (checked above); the graph belongs to this backend.
        unsafe {
            sys::ggml_backend_tensor_set(
                x_t.as_ptr(),
                x.as_ptr().cast::<c_void>(),
                0,
                std::mem::size_of_val(x),
            );
            let status = sys::ggml_backend_graph_compute(self.backend.as_ptr(), graph.as_ptr());
            if status != sys::GGML_STATUS_SUCCESS {
                return Err(fail(&format!("the product failed (ggml status {status})")));
            }
            sys::ggml_backend_tensor_get(
                y_t.as_ptr(),
                out.as_mut_ptr().cast::<c_void>(),
                0,
                rows * self.n_out * std::mem::size_of::<f32>(),
            );
        }
        Ok(())
    }

    fn new_work(&self, rows: usize) -> Result<Work, EngineError> {
        let err = |reason: String| EngineError::Tensor {
            name: self.name.clone(),
            reason,
        };
        let n_rows = i64::try_from(rows).map_err(|_| err("too many rows".into()))?;
        let ctx = describing_context(2, true)
            .ok_or_else(|| err("ggml could not create a context".into()))?;
        // SAFETY: the context has room for two tensors and a graph; `x` has
        // n_in values per row like the weight, which `ggml_mul_mat` asserts.
        let made = unsafe {
            let x = sys::ggml_new_tensor_2d(
                ctx.as_ptr(),
                sys::GGML_TYPE_F32,
                (*self.weight.as_ptr()).ne[0],
                n_rows,
            );
            let y = if x.is_null() {
                ptr::null_mut()
            } else {
                sys::ggml_mul_mat(ctx.as_ptr(), self.weight.as_ptr(), x)
            };
            let graph = if y.is_null() {
                ptr::null_mut()
            } else {
                sys::ggml_new_graph(ctx.as_ptr())
            };
            if !graph.is_null() {
                sys::ggml_build_forward_expand(graph, y);
            }
            (NonNull::new(x), NonNull::new(y), NonNull::new(graph))
        };
        let free_ctx = || {
            // SAFETY: nothing refers to the context's tensors yet.
            unsafe { sys::ggml_free(ctx.as_ptr()) }
        };
        let (Some(x), Some(y), Some(graph)) = made else {
            free_ctx();
            return Err(err("ggml could not build the product".into()));
        };
        // SAFETY: `y` is a live tensor of this context.
        if !unsafe { sys::ggml_backend_supports_op(self.backend.as_ptr(), y.as_ptr()) } {
            free_ctx();
            return Err(err(format!("{} cannot multiply by this type", self.device)));
        }
        // SAFETY: allocates the context's two tensors in backend memory.
        let Some(buffer) = NonNull::new(unsafe {
            sys::ggml_backend_alloc_ctx_tensors(ctx.as_ptr(), self.backend.as_ptr())
        }) else {
            free_ctx();
            return Err(err(format!(
                "cannot allocate {:.1} MiB on {} for {rows} rows",
                (rows * (self.n_in + self.n_out) * 4) as f64 / 1048576.0,
                self.device
            )));
        };
        Ok(Work {
            rows,
            ctx,
            buffer,
            graph,
            x,
            y,
        })
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        // SAFETY: the buffer and context are this Work's alone.
        unsafe {
            sys::ggml_backend_buffer_free(self.buffer.as_ptr());
            sys::ggml_free(self.ctx.as_ptr());
        }
    }
}

impl Drop for DeviceMatrix {
    fn drop(&mut self) {
        // The work graph refers to the weight: free it first.
        self.work = None;
        // SAFETY: the buffer, context and backend are this matrix's alone,
        // and the backend is freed last.
        unsafe {
            sys::ggml_backend_buffer_free(self.buffer.as_ptr());
            sys::ggml_free(self.ctx.as_ptr());
            sys::ggml_backend_free(self.backend.as_ptr());
        }
    }
}

/// Gives `backend` `threads` threads where its backend takes a thread count
/// (the CPU and BLAS backends do), through the registry's
/// `ggml_backend_set_n_threads` entry point as llama.cpp's own context does,
/// not the CPU backend's direct call: the entry point exists whether the
/// backend is linked in or loaded at run time.
fn set_threads(backend: NonNull<sys::ggml_backend>, threads: usize) {
    let n = i32::try_from(threads.max(1)).unwrap_or(i32::MAX);
    // SAFETY: `backend` is live, so are its device and registry; the entry
    // point, when the registry has one, has the type
    // `ggml_backend_set_n_threads_t` (ggml-backend.h).
    unsafe {
        let dev = sys::ggml_backend_get_device(backend.as_ptr());
        let reg = if dev.is_null() {
            ptr::null_mut()
        } else {
            sys::ggml_backend_dev_backend_reg(dev)
        };
        if reg.is_null() {
            return;
        }
        let f = sys::ggml_backend_reg_get_proc_address(reg, c"ggml_backend_set_n_threads".as_ptr());
        if f.is_null() {
            return;
        }
        let set: unsafe extern "C" fn(sys::ggml_backend_t, std::os::raw::c_int) =
            std::mem::transmute(f);
        set(backend.as_ptr(), n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn f32_product_is_exact() {
        // W: 3 rows of 4.
        let w = [
            1.0f32, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0,
        ];
        let mut m =
            DeviceMatrix::upload(Device::Cpu, "w", GgmlType::F32, &f32_bytes(&w), 4, 3, 1).unwrap();
        assert_eq!(m.device_name(), "CPU");
        let x = [1.0f32, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 0.0];
        let mut out = [0f32; 6];
        m.product(&x, &mut out).unwrap();
        assert_eq!(out, [1.0, 4.0, 10.0, -1.0, 1.0, -0.5]);
        // Another batch size rebuilds the graph.
        let mut one = [0f32; 3];
        m.product(&x[..4], &mut one).unwrap();
        assert_eq!(one, [1.0, 4.0, 10.0]);
    }

    #[test]
    fn q8_0_product_matches_the_dequantized_weights() {
        // 2 rows of 64 values. Q8_0 blocks are an f16 scale and 32 signed
        // bytes; scale 1/64 makes every weight exact in f32.
        let mut bytes = Vec::new();
        let mut dense = Vec::new();
        for r in 0..2 {
            for _block in 0..2 {
                bytes.extend_from_slice(&half::f16::from_f32(1.0 / 64.0).to_le_bytes());
                for i in 0..32i32 {
                    let q = (i - 16) * (r * 2 - 1);
                    bytes.push(q as i8 as u8);
                    dense.push(q as f32 / 64.0);
                }
            }
        }
        let mut m =
            DeviceMatrix::upload(Device::Cpu, "w", GgmlType::Q8_0, &bytes, 64, 2, 2).unwrap();
        let x: Vec<f32> = (0..64).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        let mut out = [0f32; 2];
        m.product(&x, &mut out).unwrap();
        // ggml's CPU kernel rounds the activations to Q8_0 first.
        let mut rounded = x.clone();
        super::super::round_like_cpu_matmul(GgmlType::Q8_0, 64, &mut rounded).unwrap();
        for r in 0..2 {
            let dot = |x: &[f32]| -> f32 {
                dense[r * 64..(r + 1) * 64]
                    .iter()
                    .zip(x)
                    .map(|(w, x)| w * x)
                    .sum()
            };
            let (expect, unrounded) = (dot(&rounded), dot(&x));
            assert!(
                (out[r] - expect).abs() < 1e-5,
                "row {r}: {} vs {expect}",
                out[r]
            );
            assert!(
                (out[r] - unrounded).abs() > 1e-4,
                "the activations were not rounded"
            );
        }
    }

    #[test]
    fn bad_shapes_are_errors_not_aborts() {
        let w = f32_bytes(&[1.0; 8]);
        // Wrong byte count.
        assert!(DeviceMatrix::upload(Device::Cpu, "w", GgmlType::F32, &w, 4, 3, 1).is_err());
        // Q8_0 rows must be whole blocks of 32.
        assert!(
            DeviceMatrix::upload(Device::Cpu, "w", GgmlType::Q8_0, &[0; 34], 16, 1, 1).is_err()
        );
        let mut m = DeviceMatrix::upload(Device::Cpu, "w", GgmlType::F32, &w, 4, 2, 1).unwrap();
        let mut out = [0f32; 2];
        assert!(m.product(&[1.0; 3], &mut out).is_err());
        assert!(m.product(&[1.0; 8], &mut out).is_err());
        assert!(m.product(&[], &mut out).is_err());
    }

    #[test]
    fn missing_devices_are_reported() {
        let w = f32_bytes(&[1.0; 4]);
        let e = DeviceMatrix::upload(Device::Cuda(7), "w", GgmlType::F32, &w, 4, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cuda:7"), "{e}");
    }
}
