//! Every architecture the synthetic writer imitates loads and runs in the
//! vendored llama.cpp: proof that the tensor sets and keys are the ones
//! llama.cpp asks for, and that the capture works beyond llama. The nodes
//! llama.cpp's graph offers also say how it wired each block, which the
//! architecture graph must agree with (more in `tests/graph_archs.rs`).
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use ggviz::anatomy::Anatomy;
use ggviz::engine::{CaptureOptions, Trace};
use ggviz::gguf::synthetic::{Architecture, SyntheticModel};
use ggviz::gguf::{GgmlType, GgufFile, GgufModel};
use ggviz::graph::{self, NodeKind};

const PROMPT: &str = "the cat sat on the mat and the dog sat on the cat";

fn trace(arch: Architecture) -> (SyntheticModel, Trace) {
    let model = SyntheticModel {
        architecture: arch,
        name: format!("synthetic {}", arch.name()),
        ..SyntheticModel::default()
    };
    let (_dir, mut session) = common::load_synthetic(&model);
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
fn llama_cpps_graph_agrees_with_the_architecture_graph() {
    // Node names llama.cpp's graph gives only when the block has that part
    // (`cb(…, name, il)` in src/models/<arch>.cpp).
    for arch in Architecture::ALL {
        let (model, trace) = trace(arch);
        let offered = |node: &str| trace.offered.contains_key(node);
        let file = GgufFile::from_bytes("synthetic.gguf", model.writer().to_bytes()).unwrap();
        let anatomy = Anatomy::from_model(&GgufModel::from_file(file)).unwrap();
        let g = graph::build(&anatomy);
        let name = arch.name();
        // Sequential blocks name the stream between attention and FFN
        // (`ffn_inp`, gemma's `sa_out`); parallel blocks have no such sum.
        let parallel = g.find("blk.0.attn_ffn_add").is_some();
        assert_eq!(
            parallel,
            !(offered("ffn_inp") || offered("sa_out")),
            "{name}"
        );
        assert_eq!(
            g.nodes_of(NodeKind::Router).count() > 0,
            offered("ffn_moe_logits"),
            "{name}"
        );
        assert_eq!(
            g.find("blk.0.shared_expert").is_some(),
            offered("ffn_shexp"),
            "{name}"
        );
        assert_eq!(
            g.find("blk.0.qkv_proj").is_some(),
            offered("wqkv"),
            "{name}"
        );
        assert_eq!(
            g.find("blk.0.ffn_post_norm").is_some(),
            offered("ffn_post_norm"),
            "{name}"
        );
    }
    use Architecture::*;
    let offered = |arch, node: &str| trace(arch).1.offered.contains_key(node);
    // Attention logits soft-capped (gemma2), Q/K norms (gemma3), biased
    // experts (gpt-oss), the output bias added after the head (phi2).
    assert!(offered(Gemma2, "kq_tanh"));
    assert!(offered(Gemma3, "Qcur_normed") && offered(Gemma3, "Kcur_normed"));
    assert!(offered(GptOss, "ffn_moe_up_biased"));
    assert!(offered(Phi2, "result_output_no_bias"));
}

#[test]
fn widths_that_are_no_whole_number_of_blocks_fall_back_and_still_run() {
    // 48 and 80 are no multiple of 32: those rows are stored in F16, as
    // llama.cpp's quantizer falls back (llama-quant.cpp).
    let model = SyntheticModel {
        n_embd: 48,
        n_head: 3,
        n_head_kv: 1,
        n_ff: 80,
        ..SyntheticModel::default()
    };
    let bytes = model.writer().to_bytes();
    let file = GgufFile::from_bytes("odd.gguf", bytes).unwrap();
    let f16 = file
        .tensors
        .iter()
        .filter(|t| t.ggml_type == GgmlType::F16)
        .count();
    // Every 2-D weight has rows of 48 or 80 (and the embedding is F16 by
    // choice): all of them are F16.
    assert_eq!(
        f16,
        file.tensors.iter().filter(|t| t.dims.len() == 2).count()
    );
    let (_dir, mut session) = common::load_synthetic(&model);
    let trace = session.trace(PROMPT, &CaptureOptions::default()).unwrap();
    assert!(trace.logits.data.iter().all(|x| x.is_finite()));
    let worst = row_sums(&trace)
        .iter()
        .fold(0f64, |m, s| m.max((s - 1.0).abs()));
    assert!(worst < 1e-4, "{worst}");
}
