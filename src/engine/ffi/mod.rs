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

#[cfg(feature = "dynamic-backends")]
pub mod backends;
pub mod context;
pub mod ggml;
pub mod matmul;
pub mod model;
pub mod quantize;

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_void};
use std::panic;
use std::ptr;
use std::sync::{Once, OnceLock};

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

/// The folder of backend libraries named on the command line
/// (`--backend-dir`), searched first.
static BACKEND_DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

/// Names the folder llama.cpp's backend libraries are loaded from (before
/// anything starts llama.cpp). Only a build with the `dynamic-backends`
/// feature loads backends at run time; the default build links them.
pub fn set_backend_dir(dir: std::path::PathBuf) -> Result<(), String> {
    if !cfg!(feature = "dynamic-backends") {
        return Err(format!(
            "--backend-dir {}: this ggviz links llama.cpp's backends statically \
             (build it with `--features dynamic-backends` to load them at run time)",
            dir.display()
        ));
    }
    if !dir.is_dir() {
        return Err(format!("--backend-dir {}: no such folder", dir.display()));
    }
    if INIT.is_completed() {
        return Err("the backend folder must be set before llama.cpp starts".into());
    }
    BACKEND_DIR
        .set(dir)
        .map_err(|_| "the backend folder is already set".to_string())
}

/// The folder given to [`set_backend_dir`], if any.
pub fn backend_dir() -> Option<&'static std::path::Path> {
    BACKEND_DIR.get().map(|p| p.as_path())
}

thread_local! {
    /// The errors llama.cpp logged on this thread since the last
    /// [`clear_last_error`]. llama.cpp explains a failed load or context
    /// creation only in its log, and logs it on the calling thread, so the
    /// error returned to the caller can carry it.
    static LAST_ERROR: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// At most this many error lines are kept between two clears.
const KEPT_ERRORS: usize = 8;

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
        }
        // Built with dynamic backends: load them (the best CPU variant, GPU
        // libraries) before llama.cpp looks for any.
        #[cfg(feature = "dynamic-backends")]
        backends::load();
        // SAFETY: takes no arguments; the backends are registered above or
        // linked in.
        unsafe {
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
                LAST_ERROR.with(|e| {
                    let mut e = e.borrow_mut();
                    if e.len() == KEPT_ERRORS {
                        e.remove(0);
                    }
                    e.push(text.to_string());
                });
                // Every engine error that follows a failed llama.cpp call
                // carries these lines in its chain (`take_last_error`), so
                // the log keeps them for -v rather than print them twice.
                tracing::info!(target: "llama.cpp", "error: {text}");
            }
            sys::GGML_LOG_LEVEL_WARN => tracing::warn!(target: "llama.cpp", "{text}"),
            sys::GGML_LOG_LEVEL_INFO => tracing::debug!(target: "llama.cpp", "{text}"),
            _ => tracing::trace!(target: "llama.cpp", "{text}"),
        }
    });
}

pub(super) fn clear_last_error() {
    LAST_ERROR.with(|e| e.borrow_mut().clear());
}

/// What llama.cpp logged as errors since the last clear, as one reason.
/// Its closing "failed to load model" line says nothing the caller's error
/// does not, so the lines before it (the cause: `error loading model:
/// missing tensor 'x'`) are what the reason holds.
pub(super) fn take_last_error() -> Option<String> {
    let lines = LAST_ERROR.with(|e| std::mem::take(&mut *e.borrow_mut()));
    let telling: Vec<&str> = lines
        .iter()
        .map(|l| strip_function(l))
        .filter(|l| !l.starts_with("failed to load model") && !l.starts_with("failed to"))
        .collect();
    if telling.is_empty() {
        lines.last().map(|l| strip_function(l).to_owned())
    } else {
        Some(telling.join("; "))
    }
}

/// `llama_model_load: error loading model: x` → `error loading model: x`.
fn strip_function(line: &str) -> &str {
    match line.split_once(": ") {
        Some((f, rest))
            if !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            rest
        }
        _ => line,
    }
}

/// What to do with ggml's message when it aborts the process.
static ABORT_HOOK: OnceLock<fn(&str)> = OnceLock::new();

/// Hands the message of any later `GGML_ASSERT` / `GGML_ABORT` to `hook`
/// just before ggml aborts the process (instead of ggml printing it and a
/// backtrace to stderr). The worker process uses it to tell the parent why
/// it died; the process still ends by `abort()`, so the hook must only
/// report. The first hook set wins.
pub fn on_abort(hook: fn(&str)) {
    if ABORT_HOOK.set(hook).is_ok() {
        // SAFETY: the callback is a plain function valid for the life of the
        // process; ggml calls it with a NUL-terminated message.
        unsafe {
            sys::ggml_set_abort_callback(Some(abort_to_hook));
        }
    }
}

unsafe extern "C" fn abort_to_hook(message: *const c_char) {
    // SAFETY: ggml passes a NUL-terminated buffer that lives for the call.
    let text = unsafe { lossy(message) };
    // The process is about to abort; a panic here must not unwind into C.
    let _ = panic::catch_unwind(|| {
        if let Some(hook) = ABORT_HOOK.get() {
            hook(&text);
        }
    });
}

/// Triggers ggml's own abort path (`ggml_abort`) with `message`, as a
/// failed `GGML_ASSERT` would: for tests of the worker's isolation only.
#[doc(hidden)]
pub fn ggml_abort_for_test(message: &str) -> ! {
    let file = c"ggviz-test";
    let text = std::ffi::CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: all three strings are NUL-terminated and outlive the call;
    // "%s" consumes exactly the one vararg given.
    unsafe { sys::ggml_abort(file.as_ptr(), 0, c"%s".as_ptr(), text.as_ptr()) };
    // ggml_abort does not return; the bindings just do not say so.
    std::process::abort()
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

/// One backend library ggviz tried to load.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendLibrary {
    /// The kind, from the file name: `cpu`, `vulkan`, `cuda`, ...
    pub kind: String,
    pub path: std::path::PathBuf,
    /// ggml's score of a CPU variant against this processor (0 where the
    /// library has no score function).
    pub score: i32,
    /// Why it did not load (llama.cpp's own message where it gave one).
    pub error: Option<String>,
}

/// What llama.cpp sees on this machine: its backends, its devices with
/// their memory, and the CPU features its CPU backend was built with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SystemReport {
    /// Registered backends (`CPU`, `CUDA`, ...), with how many devices each.
    pub backends: Vec<(String, usize)>,
    /// The backend libraries loaded at start-up (or tried), with the CPU
    /// variant chosen; empty where llama.cpp is linked statically.
    pub libraries: Vec<BackendLibrary>,
    /// The shared libllama in use (`None` where it is linked statically).
    pub llama_library: Option<std::path::PathBuf>,
    pub devices: Vec<DeviceReport>,
    /// `llama_print_system_info()`: the CPU backend's features (`AVX2 = 1 |
    /// AVX512 = 0 | ...`) as this build of llama.cpp has them.
    pub system_info: String,
}

/// One device llama.cpp can compute on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceReport {
    /// ggml's name for it: `CPU`, `CUDA0`, ...
    pub name: String,
    pub description: String,
    /// `cpu`, `gpu`, `igpu` or `accel`.
    pub kind: String,
    /// The backend it belongs to.
    pub backend: String,
    pub memory_free: u64,
    pub memory_total: u64,
}

/// What llama.cpp sees (for `ggviz devices`).
pub fn system_report() -> SystemReport {
    init();
    // SAFETY: indices below the counts are valid; names and descriptions
    // are static strings of the backend registry; `ggml_backend_dev_memory`
    // writes two integers we own.
    unsafe {
        let backends = (0..sys::ggml_backend_reg_count())
            .map(|i| sys::ggml_backend_reg_get(i))
            .filter(|r| !r.is_null())
            .map(|r| {
                (
                    lossy(sys::ggml_backend_reg_name(r)),
                    sys::ggml_backend_reg_dev_count(r),
                )
            })
            .collect();
        let mut devices = Vec::new();
        for i in 0..sys::ggml_backend_dev_count() {
            let dev = sys::ggml_backend_dev_get(i);
            if dev.is_null() {
                continue;
            }
            let (mut free, mut total) = (0usize, 0usize);
            sys::ggml_backend_dev_memory(dev, &mut free, &mut total);
            let reg = sys::ggml_backend_dev_backend_reg(dev);
            devices.push(DeviceReport {
                name: lossy(sys::ggml_backend_dev_name(dev)),
                description: lossy(sys::ggml_backend_dev_description(dev)),
                kind: match sys::ggml_backend_dev_type(dev) {
                    sys::GGML_BACKEND_DEVICE_TYPE_CPU => "cpu",
                    sys::GGML_BACKEND_DEVICE_TYPE_GPU => "gpu",
                    sys::GGML_BACKEND_DEVICE_TYPE_IGPU => "igpu",
                    _ => "accel",
                }
                .to_owned(),
                backend: if reg.is_null() {
                    String::new()
                } else {
                    lossy(sys::ggml_backend_reg_name(reg))
                },
                memory_free: free as u64,
                memory_total: total as u64,
            });
        }
        #[cfg(feature = "dynamic-backends")]
        let libraries = backends::libraries().to_vec();
        #[cfg(not(feature = "dynamic-backends"))]
        let libraries = Vec::new();
        #[cfg(feature = "dynamic-backends")]
        let llama_library = backends::llama_library();
        #[cfg(not(feature = "dynamic-backends"))]
        let llama_library = None;
        SystemReport {
            backends,
            libraries,
            llama_library,
            devices,
            system_info: lossy(sys::llama_print_system_info()).trim().to_owned(),
        }
    }
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
        hint: missing_device_hint(device),
    })
}

/// Where a missing device's backend would come from: with dynamic backends,
/// whether its library was found and why it did not load.
fn missing_device_hint(device: Device) -> String {
    #[cfg(feature = "dynamic-backends")]
    {
        let kind = match device {
            Device::Cuda(_) => "cuda",
            Device::Vulkan(_) => "vulkan",
            Device::Cpu => return String::new(),
        };
        let tried: Vec<&BackendLibrary> = backends::libraries()
            .iter()
            .filter(|l| l.kind == kind)
            .collect();
        match tried.iter().find(|l| l.error.is_none()) {
            Some(lib) => format!(
                " (libggml-{kind}.so loaded from {} but reports no such device)",
                lib.path.display()
            ),
            None if tried.is_empty() => format!(
                " (no libggml-{kind}.so in {}: build it with `scripts/build-backend.sh {kind}` \
                 and name its folder with --backend-dir or {})",
                backends::search_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                backends::BACKEND_DIR_ENV
            ),
            None => format!(
                " ({} did not load: {})",
                tried[0].path.display(),
                tried[0].error.as_deref().unwrap_or_default()
            ),
        }
    }
    #[cfg(not(feature = "dynamic-backends"))]
    {
        let _ = device;
        String::new()
    }
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
