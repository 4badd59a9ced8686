//! With the `dynamic-backends` feature, llama.cpp is a set of shared
//! libraries: the binaries find them through an rpath, first next to
//! themselves (`$ORIGIN`, `$ORIGIN/lib`: a folder copied elsewhere), then in
//! the build's own output folder (so `target/release/ggviz` runs as built).
//! Without the feature llama.cpp is linked statically and nothing is done.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_DYNAMIC_BACKENDS").is_none() {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN:$ORIGIN/lib");
    // llama-cpp-sys-2 (`links = "llama"`) exports its backends folder; the
    // shared libraries sit in `lib/` beside it.
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_BACKENDS_DIR");
    if let Some(backends) = std::env::var_os("DEP_LLAMA_BACKENDS_DIR") {
        let lib = std::path::Path::new(&backends).with_file_name("lib");
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", lib.display());
    }
    remove_dangling_links();
}

/// llama-cpp-sys-2's build script hard-links its `lib*.so` files into the
/// profile folder (`target/release`, its `deps/` and `examples/`), but those
/// are symbolic links to `lib*.so.0`, which it does not copy: they dangle.
/// When the crate is built again with another hash (another feature set or
/// profile sharing the folder), its `dst.exists()` (which follows the link)
/// says no, the hard link fails on the existing name, and the build panics
/// ("File exists"). Nothing uses those links (cargo puts the real folder on
/// the library path, the binaries' run path names it), so the dangling ones
/// are removed after each of its builds.
fn remove_dangling_links() {
    let Some(out) = std::env::var_os("OUT_DIR") else {
        return;
    };
    // OUT_DIR = <profile>/build/ggviz-<hash>/out
    let Some(profile) = std::path::Path::new(&out).ancestors().nth(3) else {
        return;
    };
    for dir in [
        profile.to_path_buf(),
        profile.join("deps"),
        profile.join("examples"),
    ] {
        for name in ["libllama.so", "libggml.so", "libggml-base.so"] {
            let link = dir.join(name);
            let dangling = std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_symlink())
                && std::fs::metadata(&link).is_err();
            if dangling {
                let _ = std::fs::remove_file(&link);
            }
        }
    }
}
