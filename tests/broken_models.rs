//! Well-formed GGUF files with wrong contents: every one must end `ggviz
//! run` and `ggviz build` with an error naming the file, never with a
//! signal. Each case mutates a synthetic llama model that llama.cpp loads
//! and runs as it is; the cases that once made llama.cpp abort (GGML_ASSERT)
//! or crash are kept here, and so are the ones ggviz's validation refuses
//! before llama.cpp sees the file.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::path::Path;
use std::process::{Command, Output};

use ggviz::gguf::synthetic::SyntheticModel;
use ggviz::gguf::types::GgmlType;
use ggviz::gguf::value::{Array, Value};
use ggviz::gguf::writer::GgufWriter;

/// A named way to break the synthetic model.
struct Case {
    name: &'static str,
    mutate: fn(&mut GgufWriter),
    /// Words the error must contain (besides the file's name).
    says: &'static [&'static str],
}

fn set(w: &mut GgufWriter, key: &str, value: impl Into<Value>) {
    w.set_metadata(key, value);
}

fn f32_tensor(w: &mut GgufWriter, name: &str, dims: &[u64]) {
    let n: u64 = dims.iter().product();
    w.remove_tensor(name);
    w.tensor(name, GgmlType::F32, dims, vec![0u8; 4 * n as usize])
        .unwrap();
}

const CASES: &[Case] = &[
    Case {
        name: "zero layers",
        mutate: |w| set(w, "llama.block_count", 0u32),
        says: &["layer"],
    },
    Case {
        name: "more layers than tensors",
        mutate: |w| set(w, "llama.block_count", 5u32),
        says: &["blk.2"],
    },
    Case {
        name: "zero heads",
        mutate: |w| set(w, "llama.attention.head_count", 0u32),
        says: &["head"],
    },
    Case {
        name: "zero KV heads",
        mutate: |w| set(w, "llama.attention.head_count_kv", 0u32),
        says: &["KV head"],
    },
    Case {
        name: "KV heads that do not divide the heads",
        mutate: |w| set(w, "llama.attention.head_count_kv", 3u32),
        says: &["KV head"],
    },
    Case {
        name: "more KV heads than heads",
        mutate: |w| set(w, "llama.attention.head_count_kv", 8u32),
        says: &["KV head"],
    },
    Case {
        // Found by tests/metadata_sweep.rs: the structure stage drew a graph
        // node per claimed head (the out-of-memory killer at u32::MAX).
        name: "more heads than the embedding is wide",
        mutate: |w| set(w, "llama.attention.head_count", u32::MAX),
        says: &["head_count", "no key or value width"],
    },
    Case {
        name: "negative norm epsilon",
        mutate: |w| set(w, "llama.attention.layer_norm_rms_epsilon", -1f32),
        says: &["epsilon"],
    },
    Case {
        name: "NaN norm epsilon",
        mutate: |w| set(w, "llama.attention.layer_norm_rms_epsilon", f32::NAN),
        says: &["epsilon"],
    },
    Case {
        name: "infinite norm epsilon",
        mutate: |w| set(w, "llama.attention.layer_norm_rms_epsilon", f32::INFINITY),
        says: &["epsilon"],
    },
    Case {
        name: "zero RoPE base",
        mutate: |w| set(w, "llama.rope.freq_base", 0f32),
        says: &["RoPE"],
    },
    Case {
        name: "NaN RoPE base",
        mutate: |w| set(w, "llama.rope.freq_base", f32::NAN),
        says: &["RoPE"],
    },
    Case {
        name: "RoPE wider than a head",
        mutate: |w| set(w, "llama.rope.dimension_count", 64u32),
        says: &["RoPE"],
    },
    Case {
        name: "odd RoPE dimensions",
        mutate: |w| set(w, "llama.rope.dimension_count", 7u32),
        says: &["RoPE"],
    },
    Case {
        name: "zero context length",
        mutate: |w| set(w, "llama.context_length", 0u32),
        says: &["context"],
    },
    Case {
        name: "embedding width that disagrees with the tensors",
        mutate: |w| set(w, "llama.embedding_length", 96u32),
        says: &["token_embd"],
    },
    Case {
        name: "zero embedding width",
        mutate: |w| set(w, "llama.embedding_length", 0u32),
        says: &["embedding"],
    },
    Case {
        name: "zero FFN width",
        mutate: |w| set(w, "llama.feed_forward_length", 0u32),
        says: &["FFN"],
    },
    Case {
        name: "key length that disagrees with the heads",
        mutate: |w| set(w, "llama.attention.key_length", 32u32),
        says: &["attn_q"],
    },
    Case {
        name: "zero key length",
        mutate: |w| set(w, "llama.attention.key_length", 0u32),
        says: &["key"],
    },
    Case {
        name: "BOS token outside the vocabulary",
        mutate: |w| set(w, "tokenizer.ggml.bos_token_id", 100_000u32),
        says: &["bos_token_id"],
    },
    Case {
        name: "EOS token outside the vocabulary",
        mutate: |w| set(w, "tokenizer.ggml.eos_token_id", u32::MAX),
        says: &["eos_token_id"],
    },
    Case {
        name: "unknown architecture",
        mutate: |w| set(w, "general.architecture", "nonesuch"),
        says: &["nonesuch", "general.architecture"],
    },
    Case {
        name: "unknown tokenizer model",
        mutate: |w| set(w, "tokenizer.ggml.model", "nonesuch"),
        says: &["tokenizer"],
    },
    Case {
        name: "no vocabulary",
        mutate: |w| {
            w.remove_metadata("tokenizer.ggml.tokens");
        },
        says: &["tokenizer.ggml.tokens"],
    },
    Case {
        name: "token types shorter than the vocabulary",
        mutate: |w| set(w, "tokenizer.ggml.token_type", Array::I32(vec![1, 3, 3])),
        says: &["token_type"],
    },
    Case {
        name: "scores shorter than the vocabulary",
        mutate: |w| set(w, "tokenizer.ggml.scores", Array::F32(vec![0.0; 5])),
        says: &["scores"],
    },
    Case {
        name: "experts on a dense model",
        mutate: |w| {
            set(w, "llama.expert_count", 4u32);
            set(w, "llama.expert_used_count", 2u32);
        },
        says: &["expert"],
    },
    Case {
        name: "more experts used than there are",
        mutate: |w| {
            set(w, "llama.expert_count", 2u32);
            set(w, "llama.expert_used_count", 4u32);
        },
        says: &["expert"],
    },
    Case {
        name: "attn_q with a shape that disagrees with the heads",
        mutate: |w| f32_tensor(w, "blk.0.attn_q.weight", &[64, 32]),
        says: &["blk.0.attn_q.weight"],
    },
    Case {
        name: "transposed token embedding",
        mutate: |w| {
            let n_vocab = SyntheticModel::default().n_vocab();
            f32_tensor(w, "token_embd.weight", &[n_vocab, 64]);
        },
        says: &["token_embd"],
    },
    Case {
        // Found by tests/input_sweep.rs: the NaN reached the worker's JSON
        // as `null` and the parent could not read the reply.
        name: "NaN weights",
        mutate: |w| {
            let dims = [64u64, 64];
            w.remove_tensor("blk.1.attn_output.weight");
            let nan: Vec<u8> = (0..64 * 64).flat_map(|_| f32::NAN.to_le_bytes()).collect();
            w.tensor("blk.1.attn_output.weight", GgmlType::F32, &dims, nan)
                .unwrap();
        },
        says: &["not finite", "layer 1's attention output"],
    },
    Case {
        name: "missing output norm",
        mutate: |w| {
            w.remove_tensor("output_norm.weight");
        },
        says: &["output_norm"],
    },
];

fn ggviz(args: &[&str], file: &Path, dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .args(args)
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Exit code 1 or 2 (never a signal) and an error that names the file and
/// says what is wrong.
fn check(case: &Case, what: &str, out: &Output, file_name: &str) -> Result<(), String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    if !matches!(code, Some(1 | 2)) {
        return Err(format!(
            "{}: {what} ended with {:?} (signal or success):\n{stderr}",
            case.name, out.status
        ));
    }
    let error = stderr
        .lines()
        .skip_while(|l| !l.starts_with("error:"))
        .collect::<Vec<_>>()
        .join("\n");
    if !error.contains(file_name) {
        return Err(format!(
            "{}: {what}: the error does not name {file_name}:\n{stderr}",
            case.name
        ));
    }
    for word in case.says {
        if !error.to_lowercase().contains(&word.to_lowercase()) {
            return Err(format!(
                "{}: {what}: the error does not say `{word}`:\n{error}",
                case.name
            ));
        }
    }
    if stderr.contains("gdb") || stderr.contains("backtrace") {
        return Err(format!(
            "{}: {what}: a backtrace reached the user:\n{stderr}",
            case.name
        ));
    }
    Ok(())
}

#[test]
fn broken_models_end_with_an_error_never_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let base = SyntheticModel::default();
    // The unbroken model runs, so every failure below is the mutation's.
    let good = dir.path().join("good.gguf");
    base.writer().write(&good).unwrap();
    let out = ggviz(
        &["run", "--threads", "1", "--prompt", "the cat"],
        &good,
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let mut w = base.writer();
        (case.mutate)(&mut w);
        let file_name = format!("broken-{i}.gguf");
        let file = dir.path().join(&file_name);
        w.write(&file).unwrap();
        let run = ggviz(
            &["run", "--threads", "1", "--prompt", "the cat"],
            &file,
            dir.path(),
        );
        if std::env::var_os("GGVIZ_SHOW_ERRORS").is_some() {
            eprintln!("== {}\n{}", case.name, String::from_utf8_lossy(&run.stderr));
        }
        if let Err(e) = check(case, "run", &run, &file_name) {
            failures.push(e);
        }
        let site = dir.path().join(format!("site-{i}"));
        let build = ggviz(
            &[
                "build",
                "--threads",
                "1",
                "--prompt",
                "the cat",
                "-o",
                site.to_str().unwrap(),
            ],
            &file,
            dir.path(),
        );
        if let Err(e) = check(case, "build", &build, &file_name) {
            failures.push(e);
        }
        assert!(!site.exists(), "{}: a failed build wrote a site", case.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n\n{}",
        failures.len(),
        2 * CASES.len(),
        failures.join("\n\n")
    );
}

#[cfg(debug_assertions)]
#[test]
fn an_abort_in_llama_cpp_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fine.gguf");
    SyntheticModel::default().writer().write(&file).unwrap();
    for args in [
        &["run", "--threads", "1", "--prompt", "the cat"][..],
        &[
            "build",
            "--threads",
            "1",
            "--prompt",
            "the cat",
            "-o",
            "site",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ggviz"))
            .args(args)
            .arg(&file)
            .current_dir(dir.path())
            .env(
                ggviz::worker::TEST_ABORT_ENV,
                "GGML_ASSERT(n_dims <= ne0) failed",
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("llama.cpp aborted on")
                && stderr.contains("fine.gguf")
                && stderr.contains("GGML_ASSERT(n_dims <= ne0) failed"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("backtrace"), "{stderr}");
    }
    assert!(!dir.path().join("site").exists());
}

#[test]
fn a_failing_model_in_a_multi_model_build_keeps_the_old_site() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.gguf");
    SyntheticModel::default().writer().write(&good).unwrap();
    // Well-formed, passes ggviz's checks, and llama.cpp refuses it at load.
    let mut w = SyntheticModel::default().writer();
    w.remove_tensor("output_norm.weight");
    let bad = dir.path().join("bad.gguf");
    w.write(&bad).unwrap();
    let build = |models: &[&Path]| {
        Command::new(env!("CARGO_BIN_EXE_ggviz"))
            .args([
                "build",
                "--threads",
                "1",
                "--prompt",
                "the cat",
                "-o",
                "site",
            ])
            .args(models)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let first = build(&[&good]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let index = std::fs::read(dir.path().join("site/index.html")).unwrap();
    let second = build(&[&good, &bad]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot analyse") && stderr.contains("bad.gguf"),
        "the error names the model: {stderr}"
    );
    assert!(stderr.contains("output_norm.weight"), "and why: {stderr}");
    assert_eq!(
        std::fs::read(dir.path().join("site/index.html")).unwrap(),
        index,
        "the previous site is untouched"
    );
}
