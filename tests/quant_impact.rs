//! The quantization-impact measurements end to end: the importance matrix
//! from ggviz's capture, llama.cpp's quantizer, llama-perplexity's output
//! statistics, on synthetic models and on the demo model.

mod common;

use ggviz::analysis::quant_impact::imatrix::{self, Imatrix, ImatrixOptions};
use ggviz::analysis::quant_impact::output::{EvalOptions, evaluate};
use ggviz::engine::{
    QuantType, QuantizeRequest, Session, SessionOptions, TokenId, quantize_cached,
};
use ggviz::family::{self, LadderOptions};
use ggviz::gguf::synthetic::{SyntheticModel, all_f32};

const WORDS: &str =
    "the cat sat on the mat and the dog sat on a cat and the capital of France is Paris ";

fn options() -> SessionOptions {
    SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    }
}

fn synthetic(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("reference.gguf");
    SyntheticModel {
        types: all_f32,
        ..SyntheticModel::default()
    }
    .writer()
    .write(&p)
    .expect("written");
    p
}

#[test]
fn imatrix_covers_every_block_product_with_one_count_per_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = synthetic(dir.path());
    let mut s = Session::load(&path, options()).expect("loaded");
    let text = WORDS.repeat(8);
    let opts = ImatrixOptions {
        chunk_size: 32,
        max_chunks: Some(2),
        dataset: "test".into(),
    };
    let m = imatrix::compute(&mut s, &text, &opts).expect("computed");
    assert_eq!((m.chunk_count, m.chunk_size), (2, 32));
    let model = SyntheticModel::default();
    let names: Vec<&str> = m.entries.iter().map(|e| e.name.as_str()).collect();
    for layer in 0..model.n_layer {
        for w in [
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_up",
            "ffn_gate",
            "ffn_down",
        ] {
            let name = format!("blk.{layer}.{w}.weight");
            assert!(
                names.contains(&name.as_str()),
                "{name} missing from {names:?}"
            );
        }
    }
    assert!(!names.iter().any(|n| !n.starts_with("blk.")), "{names:?}");
    for e in &m.entries {
        // Every product sees the 64 tokens of the two chunks once.
        assert_eq!(e.counts, vec![64.0], "{}", e.name);
        let cols = if e.name.ends_with("ffn_down.weight") {
            model.n_ff
        } else {
            model.n_embd
        };
        assert_eq!(e.in_sum2.len() as u64, cols, "{}", e.name);
        assert!(e.in_sum2.iter().all(|v| v.is_finite() && *v >= 0.0));
        assert!(e.in_sum2.iter().any(|v| *v > 0.0), "{}", e.name);
    }
    // Q, K and V read the same normed input: identical statistics.
    let get = |n: &str| m.entries.iter().find(|e| e.name == n).expect("entry");
    assert_eq!(
        get("blk.0.attn_q.weight").in_sum2,
        get("blk.0.attn_v.weight").in_sum2
    );
    let file = dir.path().join("imatrix.gguf");
    m.write(&file).expect("written");
    assert_eq!(Imatrix::read(&file).expect("read"), m);
}

#[test]
fn a_copy_of_the_reference_has_zero_divergence_and_q8_0_a_small_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = synthetic(dir.path());
    let copy = dir.path().join("copy.gguf");
    std::fs::copy(&reference, &copy).expect("copied");
    let q8 = quantize_cached(&QuantizeRequest {
        reference: &reference,
        ty: QuantType::Q8_0,
        cache: &dir.path().join("cache"),
        threads: 1,
        imatrix: None,
    })
    .expect("quantized");
    let mut base = Session::load(&reference, options()).expect("reference");
    let mut a = Session::load(&copy, options()).expect("copy");
    let mut b = Session::load(&q8.path, options()).expect("q8");
    let text = WORDS.repeat(12);
    let eval = EvalOptions {
        n_ctx: 64,
        max_tokens: None,
    };
    let out = evaluate(&mut base, &mut [&mut a, &mut b], &text, &eval).expect("evaluated");
    assert!(out.n_chunks >= 2);
    let (same, q) = (&out.members[0], &out.members[1]);
    assert_eq!(same.n_tokens, out.n_chunks * 31);
    assert_eq!(same.kld.max, 0.0);
    assert_eq!(same.ppl_ratio, 1.0);
    assert_eq!(same.same_top.value, 1.0);
    assert_eq!(same.ppl, out.reference);
    assert!(
        q.kld.mean.value > 0.0 && q.kld.mean.value < 0.05,
        "{:?}",
        q.kld
    );
    assert!(q.kld.max >= q.kld.p99 && q.kld.p99 >= q.kld.median && q.kld.median >= q.kld.min);
}

#[test]
fn an_imatrix_type_is_made_with_the_matrix_from_the_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = synthetic(dir.path());
    // IQ2_XS needs rows of 256: a wider synthetic model.
    let wide = SyntheticModel {
        types: all_f32,
        n_embd: 256,
        n_ff: 256,
        n_head: 4,
        n_head_kv: 2,
        ..SyntheticModel::default()
    };
    let wide_path = dir.path().join("wide.gguf");
    wide.writer().write(&wide_path).expect("written");
    let _ = reference;
    let ladder = family::make_ladder(
        &wide_path,
        &LadderOptions {
            types: vec![QuantType::IQ2_XS],
            imatrix: false,
            calibration: Some(WORDS.repeat(40)),
            calibration_chunks: Some(2),
            cache: dir.path().join("cache"),
            session: options(),
        },
    )
    .expect("IQ2_XS made with a computed matrix");
    assert!(ladder.imatrix.as_ref().is_some_and(|p| p.is_file()));
    let made = &ladder.made[0];
    assert!(made.with_imatrix && !made.reused);
    let q = ggviz::gguf::GgufModel::open(&made.path).expect("readable");
    let t = q.tensor("blk.0.ffn_up.weight").expect("ffn_up");
    assert_eq!(t.ggml_type, ggviz::gguf::GgmlType::Iq2Xs);
}

/// A mixture of experts: each expert's weights get their own sums and
/// count from the tokens the router sent them (llama-imatrix's
/// `MUL_MAT_ID` branch), and the quantizer takes the per-expert matrix.
#[test]
fn imatrix_of_a_mixture_of_experts_has_a_matrix_per_expert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = SyntheticModel {
        architecture: ggviz::gguf::synthetic::Architecture::Qwen2Moe,
        types: all_f32,
        n_embd: 256,
        n_ff: 256,
        n_head: 4,
        n_head_kv: 2,
        ..SyntheticModel::default()
    };
    let path = dir.path().join("moe.gguf");
    model.writer().write(&path).expect("written");
    let (n_expert, n_used) = (model.n_expert as usize, model.n_expert_used as usize);
    let mut s = Session::load(&path, options()).expect("loaded");
    let opts = ImatrixOptions {
        chunk_size: 32,
        max_chunks: Some(2),
        dataset: "test".into(),
    };
    let m = imatrix::compute(&mut s, &WORDS.repeat(8), &opts).expect("computed");
    let get = |n: &str| {
        m.entries
            .iter()
            .find(|e| e.name == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    for layer in 0..model.n_layer {
        for w in ["ffn_up_exps", "ffn_gate_exps", "ffn_down_exps"] {
            let e = get(&format!("blk.{layer}.{w}.weight"));
            assert_eq!(e.counts.len(), n_expert, "{}", e.name);
            // Every token goes to `n_used` experts: 64 tokens in all.
            let total: f32 = e.counts.iter().sum();
            assert_eq!(total, (64 * n_used) as f32, "{}: {:?}", e.name, e.counts);
            assert_eq!(e.cols(), 256, "{}", e.name);
            // An expert's sums are zero exactly when no token chose it.
            for (x, &c) in e.counts.iter().enumerate() {
                let sums = &e.in_sum2[x * 256..(x + 1) * 256];
                assert_eq!(
                    sums.iter().any(|v| *v > 0.0),
                    c > 0.0,
                    "{} expert {x}",
                    e.name
                );
            }
        }
        // Up and gate read the same routed input.
        assert_eq!(
            get(&format!("blk.{layer}.ffn_up_exps.weight")),
            &ggviz::analysis::quant_impact::imatrix::ImatrixEntry {
                name: format!("blk.{layer}.ffn_up_exps.weight"),
                ..get(&format!("blk.{layer}.ffn_gate_exps.weight")).clone()
            }
        );
    }
    let file = dir.path().join("moe-imatrix.gguf");
    m.write(&file).expect("written");
    assert_eq!(Imatrix::read(&file).expect("read"), m);
    // llama.cpp's quantizer accepts the per-expert matrix (it checks the
    // length against columns × experts) for a type that needs one.
    let ladder = family::make_ladder(
        &path,
        &LadderOptions {
            types: vec![QuantType::IQ2_XS],
            imatrix: false,
            calibration: Some(WORDS.repeat(40)),
            calibration_chunks: Some(2),
            cache: dir.path().join("cache"),
            session: options(),
        },
    )
    .expect("IQ2_XS made with a per-expert matrix");
    let q = ggviz::gguf::GgufModel::open(&ladder.made[0].path).expect("readable");
    let t = q.tensor("blk.0.ffn_up_exps.weight").expect("experts");
    assert_eq!(t.ggml_type, ggviz::gguf::GgmlType::Iq2Xs);
}

/// Chunks start with BOS only where the vocabulary adds one, as
/// llama-perplexity's and llama-imatrix's do: the synthetic vocabulary adds
/// it, SmolLM2's does not (its chunks keep the text's own first token).
#[test]
fn chunks_start_with_bos_only_where_the_vocabulary_adds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = WORDS.repeat(12);
    let eval = EvalOptions {
        n_ctx: 64,
        max_tokens: None,
    };
    let synthetic = Session::load(synthetic(dir.path()), options()).expect("synthetic");
    let bos = synthetic.bos().expect("a BOS token");
    assert_eq!(synthetic.chunk_bos(), Some(bos));
    let plan = ggviz::analysis::quant_impact::output::plan(&synthetic, &text, &eval).expect("plan");
    assert!(plan.len() >= 2 && plan.iter().all(|c| c[0] == bos));

    let demo = Session::load(common::smollm2(), options()).expect("demo");
    assert!(demo.bos().is_some(), "SmolLM2 has a BOS token");
    assert_eq!(demo.chunk_bos(), None, "but does not add it");
    let ids: Vec<TokenId> = demo
        .tokenize(&text)
        .expect("tokens")
        .iter()
        .map(|t| t.id)
        .collect();
    let plan = ggviz::analysis::quant_impact::output::plan(&demo, &text, &eval).expect("plan");
    for (k, chunk) in plan.iter().enumerate() {
        assert_eq!(chunk[..], ids[k * 64..(k + 1) * 64], "chunk {k}");
    }
}

/// The demo model's family in small: the F16 form of the Q4_1 demo as the
/// reference, a byte copy of it, Q8_0 and Q2_K; one 512-token chunk.
#[test]
fn demo_family_orders_divergence_by_bits() {
    let demo = common::smollm2();
    let dir = tempfile::tempdir().expect("tempdir");
    let threads = common::test_threads();
    let cache = dir.path().join("cache");
    let f16 = quantize_cached(&QuantizeRequest {
        reference: &demo,
        ty: QuantType::F16,
        cache: &cache,
        threads,
        imatrix: None,
    })
    .expect("F16");
    let copy = dir.path().join("copy.gguf");
    std::fs::copy(&f16.path, &copy).expect("copied");
    let session = SessionOptions {
        threads,
        ..SessionOptions::default()
    };
    let ladder = family::make_ladder(
        &f16.path,
        &LadderOptions {
            types: vec![QuantType::Q8_0, QuantType::Q2_K],
            imatrix: false,
            calibration: None,
            calibration_chunks: None,
            cache: cache.clone(),
            session,
        },
    )
    .expect("ladder");
    let mut paths = vec![f16.path.clone(), copy];
    paths.extend(ladder.made.iter().map(|m| m.path.clone()));
    let fams = family::group(&paths, None).expect("grouped");
    assert_eq!(fams.len(), 1);
    let fam = &fams[0];
    assert_eq!(fam.members[fam.reference].path, f16.path);
    let eval = EvalOptions {
        n_ctx: 512,
        max_tokens: Some(512),
    };
    let m = family::measure(
        fam,
        ggviz::analysis::quant_impact::output::EVALUATION_TEXT,
        &["The capital of France is".to_string()],
        &eval,
        session,
    )
    .expect("measured");
    let by = |i: usize| &m.outputs.members[i];
    assert_eq!(m.outputs.n_chunks, 1);
    assert_eq!(by(0).kld.max, 0.0, "the reference against itself");
    assert_eq!(by(1).kld.max, 0.0, "a byte copy");
    let (q8, q2) = (by(2), by(3));
    eprintln!(
        "PPL F16 {:.3}; Q8_0 KLD {:.5} same-top {:.3}; Q2_K KLD {:.4} same-top {:.3}",
        m.outputs.reference.ppl,
        q8.kld.mean.value,
        q8.same_top.value,
        q2.kld.mean.value,
        q2.same_top.value
    );
    assert!(q8.kld.mean.value > 0.0);
    assert!(
        q8.kld.mean.value * 10.0 < q2.kld.mean.value,
        "{} vs {}",
        q8.kld.mean.value,
        q2.kld.mean.value
    );
    assert!(q8.same_top.value > q2.same_top.value);
    // Layer by layer: the reference against itself is exactly 0 everywhere;
    // Q2_K's residual stream departs more than Q8_0's at the last layer.
    for l in &m.layers[0].layers {
        let h = l.hidden.expect("hidden captured");
        assert_eq!(h.rel_err_mean, 0.0);
        assert!(l.heads.as_ref().expect("heads").iter().all(|&s| s == 1.0));
    }
    let last = |i: usize| {
        m.layers[i]
            .layers
            .last()
            .and_then(|l| l.hidden)
            .expect("last layer")
    };
    assert!(last(2).rel_err_mean > 0.0);
    assert!(last(2).rel_err_mean < last(3).rel_err_mean);
    // The logit lens: the reference against itself and a byte copy is 0
    // exactly at every layer; Q2_K's last-layer lens drifts more than Q8_0's.
    for i in [0, 1] {
        for (l, layer) in m.layers[i].layers.iter().enumerate() {
            assert_eq!(layer.lens_kl, Some(0.0), "member {i} layer {l}");
        }
    }
    let lens_last = |i: usize| {
        m.layers[i]
            .layers
            .last()
            .and_then(|l| l.lens_kl)
            .expect("lens KL")
    };
    eprintln!(
        "last-layer lens KL: Q8_0 {:.5}, Q2_K {:.4}",
        lens_last(2),
        lens_last(3)
    );
    assert!(lens_last(2) > 0.0);
    assert!(lens_last(3) > lens_last(2));
    // Generations: the reference and its copy never depart from the
    // reference's continuation; 32 tokens unless an end token came first.
    assert_eq!(m.generations.len(), 1);
    let g = &m.generations[0];
    assert_eq!(g.members.len(), 4);
    for c in &g.members[..2] {
        assert_eq!(c.diverges_at, None);
        assert_eq!(c.ids, g.members[0].ids);
    }
    let n = g.members[0].ids.len();
    assert!(n > 0 && n <= 32);
    assert_eq!(g.members[0].pieces.len(), n);
    eprintln!(
        "F16 continues {:?}; Q2_K departs at {:?}",
        g.members[0].pieces.concat(),
        g.members[3].diverges_at
    );
    // Token-embedding neighbours: the reference and its copy keep all.
    let nb = |i: usize| m.neighbours[i].as_ref().expect("neighbours");
    assert_eq!(nb(0).mean, 1.0);
    assert_eq!(nb(1).mean, 1.0);
    assert!(nb(0).moved.is_empty());
    assert_eq!(nb(0).sample, 1000);
    // (llama.cpp keeps the tied token_embd/output matrix at a high-bit type
    // even in Q2_K, so the quantized members keep nearly all.)
    for i in [2, 3] {
        assert!(nb(i).mean > 0.5 && nb(i).mean <= 1.0, "{}", nb(i).mean);
    }
    eprintln!("neighbours kept: Q8_0 {}, Q2_K {}", nb(2).mean, nb(3).mean);
    // Speed and memory: present and positive; the smaller file holds the
    // smaller buffer.
    assert_eq!(m.speed.len(), 4);
    for s in &m.speed {
        assert!(s.prompt_tok_s > 0.0 && s.gen_tok_s > 0.0, "{s:?}");
        assert!(s.model_bytes > 0 && s.prompt_tokens == 128 && s.runs == 3);
        // The CPU's memory is the process's: no device figure.
        assert_eq!(s.device_memory, None, "{s:?}");
    }
    let size = |i: usize| fam.members[i].file_size;
    assert!(size(3) < size(2) && m.speed[3].model_bytes < m.speed[2].model_bytes);
    eprintln!(
        "speed (pp tok/s, tg tok/s, model MiB, RSS+ MiB): {:?}; generation {:.0} ms, neighbours {:.0} ms, speed {:.0} ms, capture {:.0} ms",
        m.speed
            .iter()
            .map(|s| (
                s.prompt_tok_s.round(),
                s.gen_tok_s.round(),
                s.model_bytes >> 20,
                s.rss_increase.map(|b| b >> 20)
            ))
            .collect::<Vec<_>>(),
        m.generation_ms,
        m.neighbours_ms,
        m.speed_ms,
        m.capture_ms
    );
}
