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

use super::BackendLibrary;

/// What `load` loaded or tried to.
static LOADED: OnceLock<Vec<BackendLibrary>> = OnceLock::new();

/// The backend libraries loaded at start-up (or tried), in order.
pub fn libraries() -> &'static [BackendLibrary] {
    LOADED.get().map(Vec::as_slice).unwrap_or_default()
}

/// The kind of a backend library from its file name (`libggml-cpu-zen4.so`
/// → `cpu`, `libggml-vulkan.so` → `vulkan`); `None` for anything else,
/// `libggml-base.so` included.
fn kind_of(file: &str) -> Option<(&str, bool)> {
    let stem = file.strip_prefix("libggml-")?.strip_suffix(".so")?;
    let (kind, variant) = match stem.split_once('-') {
        Some((kind, _)) => (kind, true),
        None => (stem, false),
    };
    let known = !kind.is_empty()
        && kind != "base"
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    known.then_some((kind, variant))
}

/// ggml's score of a backend variant on this machine (the library's
/// `ggml_backend_score`, as ggml's own loader reads it); 0 where the
/// library does not open or has no score.
fn score(path: &Path) -> i32 {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    // SAFETY: a NUL-terminated path; the handle is closed before returning;
    // `ggml_backend_score` takes nothing and returns an int
    // (ggml-backend-impl.h, GGML_BACKEND_DL_SCORE_IMPL).
    unsafe {
        let handle = libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            return 0;
        }
        let f = libc::dlsym(handle, c"ggml_backend_score".as_ptr());
        let s = if f.is_null() {
            0
        } else {
            std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> i32>(f)()
        };
        libc::dlclose(handle);
        s
    }
}

/// Loads one backend library into llama.cpp's registry.
fn load_one(kind: &str, path: &Path, score: i32) -> BackendLibrary {
    let mut lib = BackendLibrary {
        kind: kind.to_owned(),
        path: path.to_path_buf(),
        score,
        error: None,
    };
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        lib.error = Some("a NUL in its path".into());
        return lib;
    };
    super::clear_last_error();
    // SAFETY: a NUL-terminated path that lives through the call; ggml
    // checks the library's API version before registering it.
    let reg = unsafe { sys::ggml_backend_load(c.as_ptr()) };
    if reg.is_null() {
        lib.error =
            Some(super::take_last_error().unwrap_or_else(|| "llama.cpp did not load it".into()));
        tracing::warn!(
            "backend library {} did not load: {}",
            path.display(),
            lib.error.as_deref().unwrap_or_default()
        );
    } else {
        tracing::debug!("backend {kind} loaded from {}", path.display());
    }
    lib
}

/// Loads the backend libraries: for each kind (`cpu`, `vulkan`, `cuda`,
/// ...), from the first folder of [`search_dirs`] that holds it, so a
/// folder of GPU libraries alone (`GGVIZ_BACKEND_DIR=target/backends`)
/// takes the CPU backend from the next. Of a kind's variants
/// (`libggml-cpu-<variant>.so`) the one ggml scores best on this processor
/// is loaded, else the plain library; a library that fails to load is
/// recorded with llama.cpp's reason, and the next folder may still hold the
/// kind. ggml's own `ggml_backend_load_all_from_path` searches one folder,
/// is silent about failures and registers a kind twice when called for two.
pub(super) fn load() {
    let mut loaded: Vec<BackendLibrary> = Vec::new();
    let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
    let dirs = search_dirs();
    // `--backend-dir` refuses a missing folder; the variable can only warn
    // (a typo in it would otherwise leave the GPU library unloaded unsaid).
    if let Some(d) = std::env::var_os(BACKEND_DIR_ENV).map(PathBuf::from)
        && !d.is_dir()
    {
        tracing::warn!(
            "{BACKEND_DIR_ENV}={} is not a folder: no backend library loaded from it",
            d.display()
        );
    }
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        // kind → (plain library, variants)
        let mut kinds: std::collections::BTreeMap<String, (Option<PathBuf>, Vec<PathBuf>)> =
            std::collections::BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some((kind, variant)) = kind_of(name) {
                let slot = kinds.entry(kind.to_owned()).or_default();
                if variant {
                    slot.1.push(path);
                } else {
                    slot.0 = Some(path);
                }
            }
        }
        // GPU backends first, the CPU last, as ggml's own loader does.
        let mut order: Vec<_> = kinds.into_iter().collect();
        order.sort_by_key(|(kind, _)| kind == "cpu");
        for (kind, (plain, mut variants)) in order {
            if done.contains(&kind) {
                continue;
            }
            variants.sort();
            let best = variants
                .iter()
                .map(|p| (score(p), p))
                .filter(|(s, _)| *s > 0)
                .max_by_key(|(s, _)| *s);
            let lib = match (best, plain) {
                (Some((s, p)), _) => load_one(&kind, p, s),
                (None, Some(p)) => load_one(&kind, &p, 0),
                (None, None) => BackendLibrary {
                    kind: kind.clone(),
                    path: dir.clone(),
                    score: 0,
                    error: Some(format!(
                        "none of its {} variants runs on this processor",
                        variants.len()
                    )),
                },
            };
            if lib.error.is_none() {
                done.insert(kind);
            }
            loaded.push(lib);
        }
    }
    if !done.contains("cpu") {
        tracing::warn!("no CPU backend library found in {dirs:?} (set {BACKEND_DIR_ENV})");
    }
    let _ = LOADED.set(loaded);
}

/// The file libllama was loaded from (its run path picks it: the folder
/// beside ggviz first, then the build's own).
pub fn llama_library() -> Option<PathBuf> {
    // SAFETY: `dladdr` reads the address of a function of the linked
    // library and fills a struct we own; the name it returns is a
    // NUL-terminated string of the loader's.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let f = sys::llama_backend_init as *const c_void;
        if libc::dladdr(f, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let name = CStr::from_ptr(info.dli_fname)
            .to_string_lossy()
            .into_owned();
        std::fs::canonicalize(&name)
            .ok()
            .or(Some(PathBuf::from(name)))
    }
}

/// The type of `ggml_get_type_traits_cpu`.
type TraitsFn = unsafe extern "C" fn(sys::ggml_type) -> *const sys::ggml_type_traits_cpu;

/// `ggml_get_type_traits_cpu` of the CPU module [`load`] loaded (the
/// variant it recorded in [`libraries`]): `dlopen(RTLD_NOLOAD)` returns the
/// module's handle.
fn traits_fn() -> Option<TraitsFn> {
    static F: OnceLock<Option<TraitsFn>> = OnceLock::new();
    *F.get_or_init(|| {
        super::init();
        let cpu = libraries()
            .iter()
            .find(|l| l.kind == "cpu" && l.error.is_none())?;
        let path = CString::new(cpu.path.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: a NUL-terminated path of a module already loaded (NOLOAD
        // opens nothing new); the handle is only used for `dlsym` and kept
        // open (the module stays loaded for the process's life anyway); the
        // symbol has the type of `ggml_get_type_traits_cpu` (ggml-cpu.h).
        unsafe {
            let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
            if handle.is_null() {
                return None;
            }
            let f = libc::dlsym(handle, c"ggml_get_type_traits_cpu".as_ptr());
            if f.is_null() {
                return None;
            }
            tracing::debug!("CPU kernels from {}", cpu.path.display());
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
