//! The family page: a synthetic reference, a byte copy with a hostile file
//! name and its Q8_0 form, built with family measurements; the page draws
//! offline, selects members through the table and the hash, escapes names,
//! and is linked from the index and from each member's page.

use std::path::{Path, PathBuf};

use fantoccini::Locator;
use ggviz::analysis::quant_impact::output::EvalOptions;
use ggviz::engine::{QuantType, QuantizeRequest, SessionOptions, quantize_cached};
use ggviz::gguf::synthetic::{SyntheticModel, all_f32};
use ggviz::pipeline::{self, FamilyOptions, PipelineOptions};
use ggviz::site::BuildOptions;

use super::harness::Browser;
use super::synthetic;

const WORDS: &str =
    "the cat sat on the mat and the dog sat on a cat and the capital of France is Paris ";
const HOSTILE: &str = "copy<img src=x onerror=alert(1)>.gguf";
const HOSTILE_PROMPT: &str = "the cat <img src=x onerror=alert(2)> sat";

fn family_site(dir: &Path) -> PathBuf {
    let reference = synthetic(
        dir,
        "reference.gguf",
        &SyntheticModel {
            types: all_f32,
            ..SyntheticModel::default()
        },
    );
    let copy = dir.join(HOSTILE);
    std::fs::copy(&reference, &copy).expect("copied");
    let q8 = quantize_cached(&QuantizeRequest {
        reference: &reference,
        ty: QuantType::Q8_0,
        cache: &dir.join("cache"),
        threads: 1,
        imatrix: None,
    })
    .expect("Q8_0");
    let session = SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    };
    let out = dir.join("site");
    let opts = PipelineOptions {
        site: BuildOptions {
            models: vec![reference.clone(), copy, q8.path.clone()],
            out: out.clone(),
            ..BuildOptions::default()
        },
        inference: None,
        ..Default::default()
    };
    let families = FamilyOptions {
        reference: Some(reference),
        eval_text: WORDS.repeat(12),
        eval_source: "a test text".into(),
        eval: EvalOptions {
            n_ctx: 64,
            max_tokens: None,
        },
        prompts: vec!["the cat sat on the mat".into(), HOSTILE_PROMPT.into()],
        session,
        analytics_device: None,
        made: vec![(q8.path, QuantType::Q8_0)],
        reference_note: None,
        stages: Vec::new(),
    };
    let (summary, _) = pipeline::build_with_families(
        &opts,
        &[],
        Some(&families),
        &indicatif::ProgressBar::hidden(),
    )
    .expect("the family site builds");
    let page = summary
        .other
        .iter()
        .find(|p| p.path.starts_with("families/"))
        .expect("a family page");
    assert!(page.bytes < 4_000_000);
    out.join(&page.path)
}

#[tokio::test(flavor = "current_thread")]
async fn family_page_draws_selects_members_and_escapes_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = family_site(dir.path());
    let b = Browser::start().await;
    b.open(&page, "").await;
    b.wait_for(
        "the statistics table",
        "return document.querySelectorAll('#stats-table tbody tr').length === 3",
    )
    .await;
    b.screenshot("family").await;
    // The reference and the byte copy: KLD 0; Q8_0 above 0; all on the page.
    let kld = b
        .js("return GG.family.data.members.map((m) => m.stats.kld.mean.value)")
        .await;
    let kld: Vec<f64> = kld
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect();
    assert_eq!(kld[0], 0.0);
    assert_eq!(kld[1], 0.0);
    assert!(kld[2] > 0.0);
    // The hostile file name is text, never markup.
    assert_eq!(
        b.js("return document.querySelectorAll('img').length").await,
        0
    );
    let cell = b
        .js("return document.querySelector('#stats-table tbody tr[data-member=\"1\"] td').textContent")
        .await;
    assert_eq!(cell.as_str(), Some(HOSTILE));
    // A click on a row selects the member, into the hash and the detail.
    b.client
        .find(Locator::Css("#stats-table tbody tr[data-member='2']"))
        .await
        .expect("row")
        .click()
        .await
        .expect("click");
    b.wait_for("the hash", "return location.hash === '#member=2'")
        .await;
    let title = b
        .js("return document.getElementById('detail-title').textContent")
        .await;
    assert!(
        title.as_str().is_some_and(|t| t.starts_with("Q8_0")),
        "{title}"
    );
    // The chart drew something.
    let drawn = b
        .js("const c = document.getElementById('tradeoff'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n")
        .await;
    assert!(drawn.as_u64().is_some_and(|n| n > 500), "{drawn}");
    // The per-layer curves and the head map draw for the selected member.
    for id in ["layer-curves", "head-map"] {
        let n = b
            .js(&format!("const c = document.getElementById('{id}'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n"))
            .await;
        assert!(n.as_u64().is_some_and(|n| n > 200), "{id}: {n}");
    }
    let heads = b
        .js("return GG.family.data.members[2].layers.layers[0].heads.length")
        .await;
    assert_eq!(heads, 4);
    // The weight-error table lists the Q8_0 member's tensors, largest first,
    // and the copy's errors are all 0.
    let first = b
        .js("return Number(document.querySelector('#weights-table tbody tr td:last-child').textContent)")
        .await;
    assert!(first.as_f64().is_some_and(|e| e > 0.0), "{first}");
    let copy_max = b
        .js("return Math.max(...GG.family.data.members[1].weights.map((t) => t.rel_rms))")
        .await;
    assert_eq!(copy_max.as_f64(), Some(0.0));
    // The logit-lens curves draw (the Q8_0 member's KL is above 0; the
    // copy's is 0 at every layer).
    let n = b
        .js("const c = document.getElementById('lens-curves'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n")
        .await;
    assert!(n.as_u64().is_some_and(|n| n > 200), "lens-curves: {n}");
    let copy_kl = b
        .js("return GG.family.data.members[1].layers.layers.map((l) => l.lens_kl)")
        .await;
    assert!(
        copy_kl
            .as_array()
            .is_some_and(|v| !v.is_empty() && v.iter().all(|x| x.as_f64() == Some(0.0))),
        "{copy_kl}"
    );
    // Generations side by side: two prompts × three members; the copy never
    // departs; the prompt with markup is shown as text.
    assert_eq!(
        b.js("return document.querySelectorAll('#generations-panel tr.gen').length")
            .await,
        6
    );
    let copy_gen = b
        .js("return document.querySelector('#generations-panel tr.gen[data-member=\"1\"] td.where').textContent")
        .await;
    assert_eq!(copy_gen.as_str(), Some("same as the reference"));
    let shown = b
        .js("return [...document.querySelectorAll('#generations-panel h3.gen-prompt')].map((h) => h.textContent)")
        .await;
    assert_eq!(shown[1].as_str(), Some(HOSTILE_PROMPT));
    assert_eq!(
        b.js("return document.querySelectorAll('#generations-panel .tok').length === 0 ? 0 : 1")
            .await,
        1
    );
    // Speed bars and the table: positive numbers for every member.
    let pp = b
        .js("return GG.family.data.members.map((m) => m.speed.prompt_tok_s)")
        .await;
    assert!(
        pp.as_array()
            .is_some_and(|v| v.len() == 3 && v.iter().all(|x| x.as_f64().is_some_and(|x| x > 0.0))),
        "{pp}"
    );
    let n = b
        .js("const c = document.getElementById('speed-bars'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n")
        .await;
    assert!(n.as_u64().is_some_and(|n| n > 200), "speed-bars: {n}");
    // Neighbour overlap: the copy keeps every neighbour.
    assert_eq!(
        b.js("return GG.family.data.members[1].neighbours.mean")
            .await,
        1.0
    );
    assert_eq!(
        b.js("return document.querySelectorAll('#neighbours-table tbody tr').length")
            .await,
        3
    );
    // A hash opens the page on that member.
    b.open(&page, "#member=1").await;
    b.wait_for(
        "the selected row",
        "return document.querySelector('#stats-table tr.selected')?.dataset.member === '1'",
    )
    .await;
    b.assert_offline_and_clean().await;
    // Linked from the index and from a member's page.
    let root = page.ancestors().nth(3).expect("site root");
    b.open(&root.join("index.html"), "").await;
    let href = b
        .js("return document.querySelector('a.family-card').getAttribute('href')")
        .await;
    assert_eq!(
        href.as_str().map(|h| root.join(h)),
        Some(page.clone()),
        "{href}"
    );
    let member = std::fs::read_to_string(root.join("reference/index.html")).expect("member page");
    assert!(member.contains("class=\"family-link\""));
    b.finish().await;
}
