//! The Embeddings view on a structure-only (`--no-inference`) page of a
//! synthetic model whose vocabulary holds an HTML-injection piece: the
//! cloud draws, hover and click select a token, the hash round-trips, the
//! neighbour list appears, search finds a token by piece, and the hostile
//! piece is shown as text.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fantoccini::Locator;
use ggviz::gguf::synthetic::SyntheticModel;
use ggviz::pipeline::{self, PipelineOptions};
use ggviz::site::BuildOptions;

use super::harness::Browser;
use super::ready;

const HOSTILE: &str = "▁</script><img src=x onerror=alert(1)>";

fn page() -> &'static Path {
    static PAGE: OnceLock<PathBuf> = OnceLock::new();
    PAGE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-embeddings");
        std::fs::create_dir_all(&dir).expect("dir");
        let mut m = SyntheticModel {
            name: "embeddings view".into(),
            ..SyntheticModel::default()
        };
        m.extra_tokens.push(HOSTILE.into());
        let model = dir.join("embeddings-view.gguf");
        std::fs::write(&model, m.writer().to_bytes()).expect("model");
        let opts = PipelineOptions {
            site: BuildOptions {
                models: vec![model],
                out: dir.join("site"),
                ..BuildOptions::default()
            },
            inference: None,
            embeddings: Some(Default::default()),
            ..Default::default()
        };
        let (summary, _) = pipeline::build(&opts, &indicatif::ProgressBar::hidden())
            .expect("the site builds without inference");
        dir.join("site").join(&summary.models[0].path)
    })
}

/// Pixels of the cloud's canvas that differ from the background, read
/// right after a draw.
const DRAWN: &str = r#"
    GG.embeddings.orbit(0);
    const gl = GG.embeddings.gl(), w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
    const px = new Uint8Array(w * h * 4);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
    let n = 0;
    for (let i = 0; i < px.length; i += 4) if (Math.abs(px[i] - 14) + Math.abs(px[i + 1] - 16) + Math.abs(px[i + 2] - 21) > 24) n++;
    return n;
"#;

async fn open(b: &Browser, hash: &str) {
    b.open(page(), hash).await;
    ready(b).await;
    b.wait_for(
        "the embeddings to decode",
        "return document.getElementById('view-embeddings').dataset.ready === '1'",
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn embeddings_view_selects_searches_and_escapes() {
    let b = Browser::start().await;
    open(&b, "#view=embeddings").await;
    let drawn = b.js(DRAWN).await.as_u64().unwrap_or(0);
    assert!(
        drawn > 200,
        "only {drawn} pixels differ from the background"
    );
    b.screenshot("embeddings").await;

    // Hover over a token's point shows its piece; a click selects it.
    let target = 270u64;
    let at = b
        .js(&format!("return GG.embeddings.screenOf({target})"))
        .await;
    let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    b.hover_at(x, y).await;
    b.wait_for(
        "the tooltip",
        "return !document.getElementById('tooltip').hidden",
    )
    .await;
    let hovered = b
        .js("return Number(document.getElementById('view-embeddings').dataset.hover)")
        .await
        .as_u64()
        .unwrap();
    b.click_at(x, y).await;
    b.wait_for("a selection", "return location.hash.includes('tok=')")
        .await;
    let hash = b.hash().await;
    assert!(hash.contains(&format!("tok={hovered}")), "{hash}");
    let listed = b
        .js("return document.querySelectorAll('#emb-neighbours li').length")
        .await;
    assert_eq!(listed, 10);

    // The neighbour list decodes to the analysis's own ids (ranked table,
    // byte planes, base85 on the page): the first neighbour listed is a
    // token other than the selected one, with a similarity in [-1, 1].
    let first = b
        .js("const li = document.querySelector('#emb-neighbours li code'); return li ? li.textContent : ''")
        .await;
    assert!(first.as_str().is_some_and(|t| !t.is_empty()), "{first}");
    // Every list the page decoded (coded by reference to earlier rows) is
    // the analysis's own: a checksum over all n × k ids against the Rust
    // decoder's.
    let js = b
        .js("let h = 0; for (const x of GG.embeddings.neighbours()) h = (Math.imul(h, 31) + x) >>> 0; return h")
        .await
        .as_u64()
        .expect("a checksum");
    let html = std::fs::read_to_string(page()).expect("page");
    let tag = r#"id="ggviz-data">"#;
    let start = html.find(tag).expect("data block") + tag.len();
    let end = start + html[start..].find("</script>").expect("closed");
    let report: serde_json::Value =
        serde_json::from_str(&html[start..end].replace("\\u003c", "<")).expect("report JSON");
    let section: ggviz::report::embeddings::EmbeddingsSection =
        serde_json::from_value(report["embeddings"].clone()).expect("embeddings section");
    let ids = section.matrices[0].neighbour_ids();
    assert_eq!(ids.len(), section.n_vocab * section.matrices[0].k);
    let rust = ids
        .iter()
        .fold(0u32, |h, &x| h.wrapping_mul(31).wrapping_add(x));
    assert_eq!(
        js,
        u64::from(rust),
        "the page decodes the neighbours the build wrote"
    );

    // The layout switch: UMAP by default, PCA on demand, both drawn, and
    // both qualities stated.
    let proj = b
        .js("return document.getElementById('emb-proj').value")
        .await;
    assert_eq!(proj, "umap");
    let quality = b
        .js("return document.getElementById('emb-quality').textContent")
        .await;
    let quality = quality.as_str().unwrap_or_default().to_owned();
    assert!(
        quality.contains("UMAP") && quality.contains("PCA"),
        "{quality}"
    );
    b.js("const s = document.getElementById('emb-proj'); s.value = 'pca'; s.dispatchEvent(new Event('change')); return 1")
        .await;
    let drawn_pca = b.js(DRAWN).await.as_u64().unwrap_or(0);
    assert!(drawn_pca > 200, "PCA: only {drawn_pca} pixels drawn");
    b.js("document.getElementById('emb-dims').click(); return 1")
        .await;
    let drawn_2d = b.js(DRAWN).await.as_u64().unwrap_or(0);
    assert!(drawn_2d > 200, "PCA 2D: only {drawn_2d} pixels drawn");
    b.js("const s = document.getElementById('emb-proj'); s.value = 'umap'; s.dispatchEvent(new Event('change')); return 1")
        .await;
    let drawn_u2 = b.js(DRAWN).await.as_u64().unwrap_or(0);
    assert!(drawn_u2 > 200, "UMAP 2D: only {drawn_u2} pixels drawn");

    // The script-drawn path (what software WebGL uses above 65,536
    // tokens), forced on this page: it draws about the pixels GL_POINTS
    // draws, and hands back to GL_POINTS.
    assert_eq!(
        b.js("return GG.embeddings.renderer('splat')").await,
        "splat"
    );
    let drawn_splat = b.js(DRAWN).await.as_u64().unwrap_or(0);
    assert!(
        drawn_splat * 2 > drawn_u2 && drawn_splat < drawn_u2 * 2,
        "script-drawn: {drawn_splat} pixels, GL_POINTS {drawn_u2}"
    );
    assert_eq!(
        b.js("return GG.embeddings.renderer('points')").await,
        "points"
    );

    // The hash round-trips: a copied link opens the same token.
    open(&b, &format!("#view=embeddings&tok={target}")).await;
    let selected = b
        .js("return document.getElementById('view-embeddings').dataset.selected")
        .await;
    assert_eq!(selected, target.to_string());

    // `/` reaches the view's search; the hostile piece is found and shown
    // as text, never as markup.
    b.press('/').await;
    let focused = b.js("return document.activeElement.id").await;
    assert_eq!(focused, "emb-search");
    b.client
        .find(Locator::Id("emb-search"))
        .await
        .expect("search box")
        .send_keys("(1)>")
        .await
        .expect("type");
    b.wait_for(
        "a search result",
        "return document.querySelectorAll('#emb-results button').length === 1",
    )
    .await;
    b.js("document.querySelector('#emb-results button').click()")
        .await;
    b.wait_for(
        "the hostile token selected",
        "return (document.getElementById('emb-selected') || {}).textContent?.includes('onerror')",
    )
    .await;
    let shown = b
        .js("return document.getElementById('emb-selected').textContent")
        .await;
    assert!(
        shown
            .as_str()
            .unwrap()
            // Spaces show as ␣, as every view shows pieces.
            .contains("</script><img␣src=x␣onerror=alert(1)>"),
        "{shown}"
    );
    let images = b.js("return document.querySelectorAll('img').length").await;
    assert_eq!(images, 0);
    // Structure only: the under-trained candidates say why they are not
    // verified.
    let note = b
        .js("return document.getElementById('emb-side').textContent")
        .await;
    assert!(note.as_str().unwrap().contains("--no-inference"), "{note}");
    b.assert_offline_and_clean().await;
    b.finish().await;
}

/// A tied synthetic model with exactly `n_vocab` tokens (hex words, with
/// the prefixes SentencePiece needs).
fn vocabulary_model(n_vocab: u64) -> SyntheticModel {
    let base = SyntheticModel {
        name: "large vocabulary".into(),
        n_layer: 1,
        tied_embeddings: true,
        extra_tokens: Vec::new(),
        ..SyntheticModel::default()
    };
    let with = |n: usize| SyntheticModel {
        extra_tokens: (0..n).map(|i| format!("▁{i:05x}")).collect(),
        ..base.clone()
    };
    // Pieces grow by one or more per word: the largest word count that
    // stays within the target, then single pieces to fill up.
    let (mut lo, mut hi) = (0usize, n_vocab as usize);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if with(mid).n_vocab() <= n_vocab {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut m = with(lo);
    let mut k = 0;
    while m.n_vocab() < n_vocab {
        m.extra_tokens.push(format!("▁z{k:06x}"));
        k += 1;
    }
    m
}

/// The frame-rate figure for the README (`bench/fps_embeddings.sh`): the
/// whole cloud of a 262,144-token vocabulary orbiting for 5 seconds after
/// a 1-second warm-up on SwiftShader. Ignored in the normal suite (a
/// measurement, and its build takes minutes on two cores).
#[tokio::test(flavor = "current_thread")]
#[ignore]
async fn fps_orbit_262144_tokens() {
    let dir = tempfile::tempdir().expect("dir");
    let m = vocabulary_model(262_144);
    assert_eq!(m.n_vocab(), 262_144);
    let model = dir.path().join("vocab-262144.gguf");
    std::fs::write(&model, m.writer().to_bytes()).expect("model");
    let start = std::time::Instant::now();
    let opts = PipelineOptions {
        site: BuildOptions {
            models: vec![model],
            out: dir.path().join("site"),
            ..BuildOptions::default()
        },
        inference: None,
        // The synthetic rows are noise in 64 dimensions: a few reduced
        // dimensions are enough for its clusters.
        embeddings: Some(ggviz::analysis::embeddings::EmbeddingOptions {
            reduced_dims: 4,
            ..Default::default()
        }),
        ..Default::default()
    };
    let (summary, times) =
        pipeline::build(&opts, &indicatif::ProgressBar::hidden()).expect("site builds");
    let page = dir.path().join("site").join(&summary.models[0].path);
    println!(
        "build: {:.1} s, stages {:?}",
        start.elapsed().as_secs_f64(),
        times[0].stages
    );
    println!(
        "page: {} bytes for 262,144 tokens",
        std::fs::metadata(&page).expect("page").len()
    );
    // Keeps the page for work on the view (GGVIZ_FPS_PAGE=/path/page.html).
    if let Ok(keep) = std::env::var("GGVIZ_FPS_PAGE") {
        std::fs::copy(&page, keep).expect("page kept");
    }
    let b = Browser::start().await;
    b.open(&page, "#view=embeddings").await;
    ready(&b).await;
    b.wait_for(
        "the embeddings to decode",
        "return document.getElementById('view-embeddings').dataset.ready === '1'",
    )
    .await;
    let fps = |ms: u64| {
        format!(
            "const done = arguments[arguments.length - 1];
             const t0 = performance.now(); let n = 0;
             function step() {{
               GG.embeddings.orbit(0.01); GG.embeddings.gl().finish(); n++;
               if (performance.now() - t0 < {ms}) requestAnimationFrame(step);
               else done(n * 1000 / (performance.now() - t0));
             }}
             requestAnimationFrame(step);"
        )
    };
    b.client
        .execute_async(&fps(1000), vec![])
        .await
        .expect("warm-up");
    let v = b
        .client
        .execute_async(&fps(5000), vec![])
        .await
        .expect("fps");
    let fps = v.as_f64().expect("fps");
    println!("fps: {fps:.1} orbiting 262,144 points");
    b.assert_clean_console().await;
    b.finish().await;
    assert!(fps >= 30.0, "{fps:.1} fps is below 30");
}
