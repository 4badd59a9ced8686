//! The safe wrapper around llama.cpp: the only module of ggviz's engine
//! with `unsafe` (split by what it wraps: [`model`], [`context`], [`ggml`],
//! [`matmul`], [`quantize`]).
//!
//! It covers exactly what the engine needs and no more: backend start-up with
//! llama.cpp's log routed into `tracing`, model load (memory-mapped), vocab
//! and tokenizer, contexts with flash attention disabled so the attention
//! probabilities exist as a graph node (`kq_soft_max-L`), one-batch decode
//! with logits for every position, the eval callback, and ggml's own
//! dequantizers (`ggml_get_type_traits(type)->to_float`).
//!
//! Every pointer handed to llama.cpp is checked here first: token ids against
//! the vocabulary size (llama.cpp indexes its tables without checking), type
//! ids against `GGML_TYPE_COUNT` (its check is an `assert`, compiled out in
//! release builds) and tensor reads against the tensor's size (its check is a
//! `GGML_ASSERT`, which aborts the process).
#![allow(unsafe_code)]

pub mod context;
pub mod ggml;
pub mod matmul;
pub mod model;
pub mod quantize;

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_void};
use std::panic;
use std::ptr;
use std::sync::Once;

use llama_cpp_sys_2 as sys;

use super::device::Device;
use super::error::DeviceError;

pub use context::{Context, ContextParams, EvalObserver, ObservedTensor};
pub use ggml::{dequantize, round_like_cpu_matmul};
pub use matmul::DeviceMatrix;
pub use model::{Model, ModelParams};

/// A token id, as llama.cpp types it.
pub type TokenId = i32;

static INIT: Once = Once::new();

thread_local! {
    /// The last error llama.cpp logged on this thread. llama.cpp explains a
    /// failed load or context creation only in its log, and logs it on the
    /// calling thread, so the error returned to the caller can carry it.
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Starts llama.cpp's backends once per process and routes its log (and
/// ggml's, which `llama_log_set` sets too) into `tracing` under the target
/// `llama.cpp`: errors and warnings at their level, llama.cpp's chatty info
/// at `debug`, its debug output at `trace`. Every entry point calls it.
pub fn init() {
    INIT.call_once(|| {
        // SAFETY: both functions take no pointers we own; the log callback is
        // a plain function valid for the life of the process, and the user
        // data pointer is unused.
        unsafe {
            sys::llama_log_set(Some(log_to_tracing), ptr::null_mut());
            sys::llama_backend_init();
        }
    });
}

unsafe extern "C" fn log_to_tracing(
    level: sys::ggml_log_level,
    text: *const c_char,
    _: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that lives for the call.
    let text = unsafe { CStr::from_ptr(text) };
    // A panic must not unwind into C; a failed log line is not worth aborting for.
    let _ = panic::catch_unwind(|| {
        let text = text.to_string_lossy();
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        match level {
            sys::GGML_LOG_LEVEL_ERROR => {
                LAST_ERROR.with(|e| *e.borrow_mut() = Some(text.to_string()));
                tracing::error!(target: "llama.cpp", "{text}");
            }
            sys::GGML_LOG_LEVEL_WARN => tracing::warn!(target: "llama.cpp", "{text}"),
            sys::GGML_LOG_LEVEL_INFO => tracing::debug!(target: "llama.cpp", "{text}"),
            _ => tracing::trace!(target: "llama.cpp", "{text}"),
        }
    });
}

pub(super) fn clear_last_error() {
    LAST_ERROR.with(|e| e.borrow_mut().take());
}

pub(super) fn take_last_error() -> Option<String> {
    LAST_ERROR.with(|e| e.borrow_mut().take())
}

/// A compute device llama.cpp found, other than the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendDevice {
    /// ggml's name for it: `CUDA0`, `Vulkan0`, ...
    pub name: String,
    /// The driver's description (the GPU's model name).
    pub description: String,
}

/// The accelerators llama.cpp can use in this build (none in a CPU build).
pub fn accelerators() -> Vec<BackendDevice> {
    init();
    let mut out = Vec::new();
    // SAFETY: indices below `ggml_backend_dev_count()` are valid; the returned
    // strings are static for the life of the backend registry.
    unsafe {
        for i in 0..sys::ggml_backend_dev_count() {
            let dev = sys::ggml_backend_dev_get(i);
            if dev.is_null() || sys::ggml_backend_dev_type(dev) == sys::GGML_BACKEND_DEVICE_TYPE_CPU
            {
                continue;
            }
            out.push(BackendDevice {
                name: lossy(sys::ggml_backend_dev_name(dev)),
                description: lossy(sys::ggml_backend_dev_description(dev)),
            });
        }
    }
    out
}

/// Finds the llama.cpp device for `device`: `None` for the CPU.
pub(super) fn resolve_device(
    device: Device,
) -> Result<Option<sys::ggml_backend_dev_t>, DeviceError> {
    let Some(name) = device.check_supported()?.ggml_name() else {
        return Ok(None);
    };
    // SAFETY: as in `accelerators`.
    let found = unsafe {
        (0..sys::ggml_backend_dev_count())
            .map(|i| sys::ggml_backend_dev_get(i))
            .find(|&dev| !dev.is_null() && lossy(sys::ggml_backend_dev_name(dev)) == name)
    };
    found.map(Some).ok_or_else(|| DeviceError::NotFound {
        requested: device.to_string(),
        available: accelerators().into_iter().map(|d| d.name).collect(),
    })
}

/// # Safety
/// `s` is null or a NUL-terminated string.
pub(super) unsafe fn lossy(s: *const c_char) -> String {
    if s.is_null() {
        String::new()
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
    }
}
pub(super) fn to_usize(n: i32) -> usize {
    usize::try_from(n).unwrap_or(0)
}
