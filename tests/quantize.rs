//! llama.cpp's quantizer through ggviz: types by name, the cache, the
//! importance-matrix gate, on a synthetic model and on the demo model.

mod common;

use ggviz::engine::{QuantType, QuantizeRequest, quantize_cached};
use ggviz::gguf::synthetic::{SyntheticModel, all_f32};
use ggviz::gguf::{GgmlType, GgufModel};

fn synthetic_f32(dir: &std::path::Path) -> std::path::PathBuf {
    let model = SyntheticModel {
        types: all_f32,
        ..SyntheticModel::default()
    };
    let path = dir.join("reference.gguf");
    model
        .writer()
        .write(&path)
        .expect("synthetic model written");
    path
}

#[test]
fn synthetic_model_quantizes_to_q8_0_and_the_cache_is_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = synthetic_f32(dir.path());
    let cache = dir.path().join("cache");
    let request = QuantizeRequest {
        reference: &reference,
        ty: QuantType::Q8_0,
        cache: &cache,
        threads: 1,
        imatrix: None,
    };
    let made = quantize_cached(&request).expect("quantized");
    assert!(!made.reused);
    assert!(made.path.starts_with(&cache), "{}", made.path.display());
    let base = GgufModel::open(&reference).expect("reference");
    let q = GgufModel::open(&made.path).expect("quantized file readable");
    // Same tensors, same shapes; the matrices are Q8_0, the norms stay F32.
    assert_eq!(base.tensors().len(), q.tensors().len());
    for t in base.tensors() {
        let u = q.tensor(&t.name).expect("tensor kept");
        assert_eq!(t.dims, u.dims, "{}", t.name);
    }
    let attn = q.tensor("blk.0.attn_q.weight").expect("attn_q");
    assert_eq!(attn.ggml_type, GgmlType::Q8_0);
    let norm = q.tensor("blk.0.attn_norm.weight").expect("norm");
    assert_eq!(norm.ggml_type, GgmlType::F32);
    assert!(q.file_size() < base.file_size());
    let again = quantize_cached(&request).expect("reused");
    assert!(again.reused);
    assert_eq!(again.path, made.path);
}

#[test]
fn an_imatrix_type_without_a_matrix_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = synthetic_f32(dir.path());
    let err = quantize_cached(&QuantizeRequest {
        reference: &reference,
        ty: QuantType::IQ3_XS,
        cache: dir.path(),
        threads: 1,
        imatrix: None,
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("IQ3_XS") && err.contains("importance matrix"),
        "{err}"
    );
}

#[test]
fn a_file_llama_cpp_cannot_read_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = dir.path().join("broken.gguf");
    std::fs::write(&reference, b"GGUF but not really").expect("write");
    let err = quantize_cached(&QuantizeRequest {
        reference: &reference,
        ty: QuantType::Q8_0,
        cache: dir.path(),
        threads: 1,
        imatrix: None,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("broken.gguf") && err.contains("Q8_0"), "{err}");
    // Nothing half-written is left for the cache to reuse.
    let leftovers: Vec<_> = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("Q8_0"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn demo_model_f16_reference_then_q8_0() {
    let demo = common::smollm2();
    let dir = tempfile::tempdir().expect("tempdir");
    let threads = common::test_threads();
    let f16 = quantize_cached(&QuantizeRequest {
        reference: &demo,
        ty: QuantType::F16,
        cache: dir.path(),
        threads,
        imatrix: None,
    })
    .expect("F16 from the Q4_1 demo (requantized)");
    let q8 = quantize_cached(&QuantizeRequest {
        reference: &f16.path,
        ty: QuantType::Q8_0,
        cache: dir.path(),
        threads,
        imatrix: None,
    })
    .expect("Q8_0 from the F16 reference");
    let f = GgufModel::open(&f16.path).expect("F16 readable");
    let q = GgufModel::open(&q8.path).expect("Q8_0 readable");
    let name = "blk.0.ffn_up.weight";
    assert_eq!(f.tensor(name).expect("f16").ggml_type, GgmlType::F16);
    assert_eq!(q.tensor(name).expect("q8").ggml_type, GgmlType::Q8_0);
    assert!(q.file_size() < f.file_size());
}
