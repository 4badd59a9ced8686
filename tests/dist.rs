//! `scripts/dist.sh`: the folder to copy to other machines runs from
//! wherever it lies, with the llama.cpp libraries and CPU backends it
//! carries (not the build's), and the best CPU variant for this processor.
#![cfg(feature = "dynamic-backends")]
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_dist_folder_runs_on_its_own_libraries() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(root.join("scripts/dist.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_ggviz"), "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let folder = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap();
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(folder.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names("lib"),
        ["libggml-base.so.0", "libggml.so.0", "libllama.so.0"]
    );
    let cpu: Vec<String> = names("backends")
        .into_iter()
        .filter(|n| n.starts_with("libggml-cpu-"))
        .collect();
    assert!(
        cpu.len() >= 2 && cpu.contains(&"libggml-cpu-x64.so".to_string()),
        "{cpu:?}"
    );

    // Moved elsewhere and run with no folder named and no library path (cargo
    // sets one for its tests, a user has none): the binary's run path
    // ($ORIGIN/lib) and the backends beside it are what it uses.
    let moved = tmp.path().join("elsewhere");
    std::fs::rename(&folder, &moved).unwrap();
    let devices = Command::new(moved.join("ggviz"))
        .args(["devices", "--json"])
        .env_remove("GGVIZ_BACKEND_DIR")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        devices.status.success(),
        "{}",
        String::from_utf8_lossy(&devices.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&devices.stdout).unwrap();
    let moved = moved.canonicalize().unwrap();
    let llama = report["llama_library"].as_str().unwrap();
    assert!(
        llama.starts_with(moved.join("lib").to_str().unwrap()),
        "{llama}"
    );
    let cpu = report["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "cpu" && l["error"].is_null())
        .unwrap();
    let path = cpu["path"].as_str().unwrap();
    assert!(
        path.starts_with(moved.join("backends").to_str().unwrap()),
        "{path}"
    );
    assert!(cpu["score"].as_i64().unwrap() > 0, "{cpu}");

    // And it runs the model there.
    let run = Command::new(moved.join("ggviz"))
        .arg("run")
        .arg(common::smollm2())
        .args(["-p", "The capital of France is"])
        .env_remove("GGVIZ_BACKEND_DIR")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(text.contains(" Paris"), "{text}");
}
