//! The embeddings analysis on the SmolLM2 demo model and on synthetic
//! models: the approximate neighbour search's recall against an exact
//! search, the page's size budget, and the view's section in a
//! `--no-inference` build; under-trained verification through llama.cpp.

mod common;

use std::path::Path;

use ggviz::analysis::embeddings::matrix::{Matrix, dot};
use ggviz::analysis::embeddings::neighbours::top_k_by_dot;
use ggviz::analysis::embeddings::{self, EmbeddingOptions, undertrained};
use ggviz::gguf::GgufModel;
use ggviz::gguf::synthetic::SyntheticModel;
use ggviz::pipeline::{self, PipelineOptions};
use ggviz::report::embeddings::EmbeddingsSection;
use ggviz::site::BuildOptions;

/// Builds `model`'s page without inference; returns its size and section.
fn build_page(model: &Path, out: &Path) -> (u64, EmbeddingsSection) {
    let opts = PipelineOptions {
        site: BuildOptions {
            models: vec![model.to_owned()],
            out: out.to_owned(),
            ..BuildOptions::default()
        },
        inference: None,
        embeddings: Some(EmbeddingOptions::default()),
        ..Default::default()
    };
    let (summary, times) =
        pipeline::build(&opts, &indicatif::ProgressBar::hidden()).expect("the site builds");
    eprintln!("stage times: {:?}", times[0].stages);
    let page = out.join(&summary.models[0].path);
    let html = std::fs::read_to_string(&page).expect("page");
    let tag = r#"id="ggviz-data">"#;
    let start = html.find(tag).expect("data block") + tag.len();
    let end = start + html[start..].find("</script>").expect("closed");
    let json = html[start..end].replace("\\u003c", "<");
    let report: serde_json::Value = serde_json::from_str(&json).expect("report JSON");
    let section: EmbeddingsSection =
        serde_json::from_value(report["embeddings"].clone()).expect("embeddings section");
    (std::fs::metadata(&page).expect("page").len(), section)
}

#[test]
fn demo_model_page_fits_and_its_neighbours_reach_the_recall_target() {
    let dir = tempfile::tempdir().expect("dir");
    let (size, e) = build_page(&common::smollm2(), &dir.path().join("site"));
    eprintln!("page: {size} bytes");
    assert!(size < 4_000_000, "the demo page is {size} bytes");
    assert_eq!(e.n_vocab, 49152);
    assert!(e.tied);
    let m = &e.matrices[0];
    assert_ne!(m.method, "exact", "49,152 tokens take the all-pairs search");
    let found = m.neighbour_ids();
    assert_eq!(found.len(), 49152 * 10);

    // Exact neighbours of 1,000 tokens spread over the vocabulary, by brute
    // force over the dequantized rows in f32 (another code path: one
    // ndarray product per block, no 8-bit estimate, no re-ranking).
    let gguf = GgufModel::open(common::smollm2()).expect("model");
    let unit = Matrix::load(&gguf, "token_embd.weight")
        .expect("embeddings")
        .unit_rows();
    let sample: Vec<usize> = (0..1000).map(|i| i * 49152 / 1000 + 7).collect();
    let rows: Vec<f32> = sample.iter().flat_map(|&i| unit.row(i).to_vec()).collect();
    let queries = Matrix::new(sample.len(), unit.dim, rows).expect("queries");
    let truth = top_k_by_dot(&queries, &unit, 11, false);
    let (mut hits, mut total) = (0, 0);
    for (q, &i) in sample.iter().enumerate() {
        let exact: Vec<(f32, u32)> = truth[q]
            .iter()
            .copied()
            .filter(|&(_, j)| j as usize != i)
            .take(10)
            .collect();
        let kth = exact.last().map_or(f32::NEG_INFINITY, |p| p.0);
        let got = &found[i * 10..(i + 1) * 10];
        // A listed token counts when it is a true neighbour, or ties the
        // true 10th (identical rows of unused tokens).
        hits += got
            .iter()
            .filter(|&&j| {
                exact.iter().any(|&(_, e)| e == j)
                    || dot(unit.row(i), unit.row(j as usize)) >= kth - 1e-6
            })
            .count()
            .min(10);
        total += exact.len();
    }
    let recall = hits as f64 / total as f64;
    eprintln!(
        "recall@10 on 1,000 demo tokens: {recall:.4}; the page's own estimate {:.4} on {}",
        m.recall, m.recall_sample
    );
    // The issue's target, on 1,000 tokens against exact.
    assert!(recall >= 0.95, "recall@10 {recall}");
    // The page states the recall it measured; it must agree with this
    // independent measurement.
    assert!(m.recall_sample >= 1000);
    assert!(
        (f64::from(m.recall) - recall).abs() < 0.02,
        "{} vs {recall}",
        m.recall
    );

    // The page holds the rest of the view's data.
    assert!(m.quality.pca3 > 0.0 && m.quality.pca3 <= 1.0);
    // UMAP keeps far more of the neighbours than PCA's three axes do.
    let (u3, u2) = (
        m.quality.umap3.expect("umap"),
        m.quality.umap2.expect("umap"),
    );
    eprintln!(
        "kNN preservation: PCA 3D {:.3} 2D {:.3}, UMAP 3D {u3:.3} 2D {u2:.3}",
        m.quality.pca3, m.quality.pca2
    );
    assert!(u3 > m.quality.pca3 && u2 > m.quality.pca2);
    let umap = m.umap.as_ref().expect("umap layouts");
    assert_eq!((umap.coords3.len(), umap.coords2.len()), (3, 2));
    assert_eq!(umap.coords3[0].dequantize().len(), 49152);
    assert!(m.explained.iter().sum::<f32>() < 1.0);
    assert!(!m.clusters.is_empty());
    assert!(e.analogies.results.len() >= 20);
    assert!(e.analogies.scored >= 10, "{} scored", e.analogies.scored);
    assert!(!e.undertrained.verified);
    assert!(!e.undertrained.candidates.is_empty());
}

#[test]
fn synthetic_build_without_inference_has_exact_neighbours() {
    let dir = tempfile::tempdir().expect("dir");
    let m = SyntheticModel::default();
    let path = dir.path().join("s.gguf");
    std::fs::write(&path, m.writer().to_bytes()).expect("model");
    let (_, e) = build_page(&path, &dir.path().join("site"));
    assert_eq!(e.n_vocab as u64, m.n_vocab());
    assert!(!e.tied);
    assert_eq!(e.matrices.len(), 2, "input and output matrices");
    assert_eq!(e.matrices[0].method, "exact");
    let pieces: Vec<String> =
        serde_json::from_slice(&e.pieces.inflate()).expect("pieces are a JSON array");
    assert_eq!(pieces[1], "<s>");
    assert_eq!(pieces.last().map(String::as_str), Some(" dog"));
}

#[test]
fn undertrained_candidates_are_verified_through_llama_cpp() {
    let m = SyntheticModel::default();
    let (dir, mut session) = common::load_synthetic(&m);
    let gguf = GgufModel::open(dir.path().join("synthetic.gguf")).expect("model");
    let (e, _) = embeddings::analyse(&gguf, &EmbeddingOptions::default()).expect("analysis");
    let ids: Vec<u32> = e.undertrained.candidates.iter().map(|c| c.id).collect();
    assert!(!ids.is_empty());
    let p = undertrained::verify(&mut session, &ids).expect("verification");
    assert_eq!(p.len(), ids.len());
    assert!(p.iter().all(|p| (0.0..=1.0).contains(p)), "{p:?}");
}

/// The repetition prompts of the under-trained verification run as
/// sequences of one batch; each must get what it gets decoded alone.
#[test]
fn batched_verification_matches_one_prompt_at_a_time() {
    let options = ggviz::engine::SessionOptions {
        threads: common::test_threads(),
        ..Default::default()
    };
    let mut session =
        ggviz::engine::Session::load(common::smollm2(), options).expect("the demo model loads");
    // Two ordinary words, two byte tokens, two from the far end.
    let ids = [1_000u32, 5_000, 60, 200, 49_000, 49_100];
    let start = std::time::Instant::now();
    let batched = undertrained::verify(&mut session, &ids).expect("verification");
    let batched_ms = start.elapsed().as_secs_f64() * 1e3;
    let head = session
        .tokenize("Please repeat the string: \"")
        .expect("tokens");
    let start = std::time::Instant::now();
    for (&c, &p) in ids.iter().zip(&batched) {
        let seq = undertrained::prompt(&session, c).expect("prompt");
        assert_eq!(
            seq[..head.len()],
            head.iter().map(|t| t.id).collect::<Vec<_>>()[..]
        );
        let logits = session.logits(&seq).expect("decode");
        let last = &logits.data[logits.data.len() - logits.cols..];
        let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = last.iter().map(|&l| (l - max).exp()).sum();
        let alone = (last[c as usize] - max).exp() / sum;
        // Alone, the decode takes other kernels (a batch of 20 rows, not
        // 120): on this Q4_1 model that moves small probabilities by up to
        // ~20 % (the kernel gap of the model pages is of that order).
        assert!(
            (alone - p).abs() < 5e-3 + 0.25 * alone,
            "token {c}: batched {p}, alone {alone}"
        );
    }
    // No sequence sees another: the first prompt's logits are the same
    // whichever prompt shares its batch.
    let a = undertrained::prompt(&session, 1_000).expect("prompt");
    let b = undertrained::prompt(&session, 2_000).expect("prompt");
    let c = undertrained::prompt(&session, 49_000).expect("prompt");
    assert_eq!(b.len(), c.len());
    let with_b = session.last_logits(&[&a, &b]).expect("decode");
    let with_c = session.last_logits(&[&a, &c]).expect("decode");
    let diff = with_b[0]
        .iter()
        .zip(&with_c[0])
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-4, "the neighbour changed the logits by {diff}");
    let other = with_b[1]
        .iter()
        .zip(&with_c[1])
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(other > 1e-2, "different prompts, different logits");
    // The shared head decoded once (its cache cells copied to every
    // sequence) gives what decoding each whole prompt gives.
    let n = head.len();
    let shared = session
        .last_logits_after(&a[..n], &[&a[n..], &b[n..], &c[n..]])
        .expect("decode");
    let whole = session.last_logits(&[&a, &b, &c]).expect("decode");
    for (s, w) in shared.iter().zip(&whole) {
        let top = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j]));
        assert_eq!(top(s), top(w), "the same next token");
        let diff = s
            .iter()
            .zip(w)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let softmax = |v: &[f32]| {
            let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = v.iter().map(|&x| (x - m).exp()).collect();
            let sum: f32 = e.iter().sum();
            e.into_iter().map(|x| x / sum).collect::<Vec<_>>()
        };
        let dp = softmax(s)
            .iter()
            .zip(softmax(w))
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "shared head vs whole prompt: max logit difference {diff}, max probability difference {dp}"
        );
        // Other batch shapes take other kernels (see above): of the order
        // of the model pages' kernel gap (measured: up to 0.35 in a logit
        // and 0.004 in a probability with AVX2 kernels, 0.47 and 0.025
        // with AVX-512 ones), far below what decides a token.
        assert!(diff < 1.0 && dp < 0.05, "{diff} {dp}");
    }
    eprintln!(
        "{} prompts: batched {batched_ms:.0} ms, one at a time {:.0} ms",
        ids.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
}

/// A tied synthetic model marks no token unused (token_type 5): the
/// under-trained indicator's reference set is then the tokens whose
/// decode→encode round trip through llama.cpp does not give them back.
#[test]
fn tied_model_without_unused_marks_uses_the_round_trip() {
    use ggviz::analysis::embeddings::tokens::Vocabulary;
    use ggviz::analysis::embeddings::undertrained::Indicator;
    use ggviz::engine::ffi::Model;
    let dir = tempfile::tempdir().expect("dir");
    let m = SyntheticModel {
        tied_embeddings: true,
        ..SyntheticModel::default()
    };
    let path = dir.path().join("tied.gguf");
    std::fs::write(&path, m.writer().to_bytes()).expect("model");
    let gguf = GgufModel::open(&path).expect("model");
    assert!(embeddings::needs_round_trip(&gguf));
    let model = Model::load_vocab(&path).expect("vocabulary-only load");
    let vocab = Vocabulary::from_gguf(&gguf, m.n_vocab() as usize);
    let failed = undertrained::round_trip_failures(&model, &vocab);
    // Checked by hand, token by token, against the same tokenizer.
    let mut expected = Vec::new();
    for i in 0..vocab.pieces.len() {
        if !vocab.reachable(i) {
            continue;
        }
        let id = i as i32;
        let text = model.detokenize(&[id], false, false);
        let back = text.map(|t| model.tokenize(&t, false, false).expect("tokenize"));
        if back.map_or(true, |b| b != [id]) {
            expected.push(i as u32);
        }
    }
    eprintln!(
        "round-trip failures: {:?}",
        failed
            .iter()
            .map(|&i| &vocab.pieces[i as usize])
            .collect::<Vec<_>>()
    );
    assert_eq!(failed, expected);
    assert!(!failed.is_empty(), "the lone `▁` piece does not come back");
    // Whole words do come back.
    let paris = vocab
        .pieces
        .iter()
        .position(|p| p == " Paris")
        .expect("Paris");
    assert!(!failed.contains(&(paris as u32)));
    // The build uses them as the reference set and says so.
    let (e, _) = pipeline::analyse_embeddings(&path, &EmbeddingOptions::default())
        .expect("embeddings stage");
    assert_eq!(e.undertrained.indicator, Indicator::UnusedDistance);
    assert!(
        e.undertrained
            .notes
            .iter()
            .any(|n| n.contains("round trip")),
        "{:?}",
        e.undertrained.notes
    );
    assert!(
        e.undertrained
            .candidates
            .iter()
            .all(|c| !failed.contains(&c.id)),
        "reference tokens are not candidates"
    );
}
