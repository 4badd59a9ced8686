//! llama.cpp's backends loaded at run time (the `dynamic-backends` feature:
//! ggml built with `GGML_BACKEND_DL` and `GGML_CPU_ALL_VARIANTS`).
//!
//! At start-up ggviz loads every backend library of the first folder that
//! exists among `--backend-dir`, `GGVIZ_BACKEND_DIR`, `<ggviz's
//! folder>/backends` and the build's own backends folder: ggml scores each CPU variant
//! (`libggml-cpu-<variant>.so`) against this processor and loads the best,
//! and loads GPU libraries (`libggml-cuda.so`, `libggml-vulkan.so`) found
//! there. The CPU kernels' type table (`ggml_get_type_traits_cpu`, which the
//! rounding of activations needs) then lives in the loaded CPU module, not
//! in a linked library: [`cpu_type_traits`] finds it there.

use std::ffi::{CStr, CString, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use llama_cpp_sys_2 as sys;

/// The environment variable naming a folder of backend libraries.
pub const BACKEND_DIR_ENV: &str = "GGVIZ_BACKEND_DIR";

/// The folders searched, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = super::backend_dir()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    if let Some(d) = std::env::var_os(BACKEND_DIR_ENV) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("backends"));
    }
    if let Some(d) = sys::BACKENDS_DIR {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// The folder the backends were loaded from (`None` when none existed).
static LOADED_FROM: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Where the backends came from, once [`load`] ran.
pub fn loaded_from() -> Option<&'static Path> {
    LOADED_FROM.get().and_then(|p| p.as_deref())
}

/// Loads the backends of the first existing folder of [`search_dirs`].
pub(super) fn load() {
    let dir = search_dirs().into_iter().find(|d| d.is_dir());
    if let Some(d) = &dir {
        match CString::new(d.as_os_str().as_encoded_bytes()) {
            // SAFETY: a NUL-terminated path that lives through the call.
            Ok(c) => unsafe { sys::ggml_backend_load_all_from_path(c.as_ptr()) },
            Err(_) => tracing::warn!("backend folder {} has a NUL in its name", d.display()),
        }
        tracing::debug!("backends loaded from {}", d.display());
    } else {
        tracing::warn!(
            "no backend folder found (set {BACKEND_DIR_ENV}); llama.cpp will search its own paths"
        );
    }
    let _ = LOADED_FROM.set(dir);
}

/// The type of `ggml_get_type_traits_cpu`.
type TraitsFn = unsafe extern "C" fn(sys::ggml_type) -> *const sys::ggml_type_traits_cpu;

/// `ggml_get_type_traits_cpu` of the CPU module llama.cpp loaded, found
/// through a function the module hands out (its thread-count entry point):
/// `dladdr` names the module, `dlopen(RTLD_NOLOAD)` returns its handle.
fn traits_fn() -> Option<TraitsFn> {
    static F: OnceLock<Option<TraitsFn>> = OnceLock::new();
    *F.get_or_init(|| {
        super::init();
        // SAFETY: registry lookups with static names; `dladdr` fills a
        // struct we own; the handle is only used for `dlsym` and kept open
        // (the module stays loaded for the process's life anyway); the
        // symbol has the type of `ggml_get_type_traits_cpu` (ggml-cpu.h).
        unsafe {
            let reg = sys::ggml_backend_reg_by_name(c"CPU".as_ptr());
            if reg.is_null() {
                return None;
            }
            let entry =
                sys::ggml_backend_reg_get_proc_address(reg, c"ggml_backend_set_n_threads".as_ptr());
            if entry.is_null() {
                return None;
            }
            let mut info: libc::Dl_info = std::mem::zeroed();
            if libc::dladdr(entry as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
                return None;
            }
            let handle = libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NOLOAD);
            if handle.is_null() {
                return None;
            }
            let f = libc::dlsym(handle, c"ggml_get_type_traits_cpu".as_ptr());
            if f.is_null() {
                return None;
            }
            tracing::debug!(
                "CPU kernels from {}",
                CStr::from_ptr(info.dli_fname).to_string_lossy()
            );
            Some(std::mem::transmute::<*mut c_void, TraitsFn>(f))
        }
    })
}

/// The loaded CPU module's kernel traits of `ty` (null where it has none or
/// no CPU module is loaded).
pub fn cpu_type_traits(ty: sys::ggml_type) -> *const sys::ggml_type_traits_cpu {
    match traits_fn() {
        // SAFETY: the caller checked `ty` against GGML_TYPE_COUNT.
        Some(f) => unsafe { f(ty) },
        None => std::ptr::null(),
    }
}
