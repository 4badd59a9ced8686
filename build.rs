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
    if let Some(backends) = std::env::var_os("DEP_LLAMA_BACKENDS_DIR") {
        let lib = std::path::Path::new(&backends).with_file_name("lib");
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", lib.display());
    }
}
