//! Every architecture the synthetic writer imitates loads and runs in the
//! vendored llama.cpp: proof that the tensor sets and keys are the ones
//! llama.cpp asks for, and that the capture works beyond llama. The nodes
//! llama.cpp's graph offers also say how it wired each block, which the
//! architecture graph must agree with (see `tests/graph_archs.rs`).
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use ggviz::engine::{CaptureOptions, Session, SessionOptions, Trace};
use ggviz::gguf::synthetic::{Architecture, SyntheticModel};

const PROMPT: &str = "the cat sat on the mat and the dog sat on the cat";

fn trace(arch: Architecture) -> (SyntheticModel, Trace) {
    let model = SyntheticModel {
        architecture: arch,
        name: format!("synthetic {}", arch.name()),
        ..SyntheticModel::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.gguf");
    model.writer().write(&path).unwrap();
    let options = SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    };
    let mut session = Session::load(&path, options)
        .unwrap_or_else(|e| panic!("llama.cpp refused {arch:?}: {e:#}"));
    assert_eq!(session.architecture(), arch.name());
    let trace = session.trace(PROMPT, &CaptureOptions::default()).unwrap();
    (model, trace)
}

/// Per row, the attention mass over the causal span j ≤ i.
fn row_sums(trace: &Trace) -> Vec<f64> {
    let t = trace.tokens.len();
    let mut sums = Vec::new();
    for layer in &trace.layers {
        let a = layer.attention.as_ref().expect("attention captured");
        for h in 0..a.n_head {
            for i in 0..t {
                let row = a.row(h, i);
                assert!(row[i + 1..].iter().all(|&p| p == 0.0), "masked entry");
                sums.push(row[..=i].iter().map(|&p| f64::from(p)).sum());
            }
        }
    }
    sums
}

#[test]
fn every_architecture_loads_and_runs_in_llama_cpp() {
    for arch in Architecture::ALL {
        let (model, trace) = trace(arch);
        let name = arch.name();
        assert_eq!(trace.layers.len(), model.n_layer as usize, "{name}");
        assert!(trace.tokens.len() > 5, "{name}");
        assert!(
            trace.logits.data.iter().all(|x| x.is_finite()),
            "{name}: logits not finite"
        );
        let first = trace.logits.row(0)[0];
        assert!(
            trace.logits.data.iter().any(|&x| x != first),
            "{name}: constant logits"
        );
        for layer in &trace.layers {
            let hidden = layer.hidden.as_ref().unwrap();
            assert!(hidden.data.iter().all(|x| x.is_finite()), "{name}");
        }
        let sums = row_sums(&trace);
        let worst = sums.iter().fold(0f64, |m, s| m.max((s - 1.0).abs()));
        println!(
            "{name:>8} {:<32} rows off 1 by ≤ {worst:.1e}, missing {:?}",
            format!("{arch:?}"),
            trace.missing
        );
        if arch == Architecture::GptOss {
            // A sink takes part of each row's mass (llama.cpp's
            // `ggml_soft_max_add_sinks`): rows sum to at most 1.
            assert!(sums.iter().all(|&s| s > 0.0 && s <= 1.0 + 1e-5), "{name}");
            assert!(worst > 1e-3, "{name}: the sinks took no mass");
        } else {
            assert!(worst < 1e-4, "{name}: {worst}");
        }
    }
}

#[test]
fn llama_cpp_wires_each_architecture_as_its_file_says() {
    // Node names that llama.cpp's graph gives only when the block has that
    // part (`cb(…, name, il)` in src/models/<arch>.cpp).
    let has = |arch: Architecture, node: &str| {
        let (_, trace) = trace(arch);
        trace.offered.contains_key(node)
    };
    use Architecture::*;
    // Sequential blocks name the stream between attention and FFN
    // (`ffn_inp`, or gemma's `sa_out`); parallel blocks have none.
    for arch in [Llama, Qwen2, Qwen2Moe, GptOss] {
        assert!(has(arch, "ffn_inp"), "{arch:?}");
    }
    for arch in [Gemma2, Gemma3] {
        assert!(
            has(arch, "sa_out") && has(arch, "attn_post_norm"),
            "{arch:?}"
        );
        assert!(has(arch, "ffn_post_norm"), "{arch:?}");
    }
    assert!(has(
        GptNeoX {
            parallel_residual: false
        },
        "ffn_inp"
    ));
    for arch in [
        Phi2,
        GptNeoX {
            parallel_residual: true,
        },
    ] {
        assert!(!has(arch, "ffn_inp") && !has(arch, "sa_out"), "{arch:?}");
        assert!(has(arch, "wqkv") && has(arch, "wqkv_b"), "{arch:?}");
    }
    // Attention logits soft-capped (gemma2), Q/K norms (gemma3).
    assert!(has(Gemma2, "kq_tanh"));
    assert!(has(Gemma3, "Qcur_normed") && has(Gemma3, "Kcur_normed"));
    // The router, and qwen2moe's gated shared expert.
    assert!(has(Qwen2Moe, "ffn_moe_logits") && has(Qwen2Moe, "ffn_shexp_gate"));
    assert!(has(GptOss, "ffn_moe_logits") && has(GptOss, "ffn_moe_up_biased"));
    // phi2 adds its output bias after the head.
    assert!(has(Phi2, "result_output_no_bias"));
}
