//! Browser tests: built pages opened in headless Chromium over `file://`
//! with the network off. Screenshots of each view land in
//! `artifacts/screenshots/` for review.

mod behaviour;
mod embeddings;
mod family;
mod graphistry;
mod harness;
#[path = "../http_mock/mod.rs"]
mod http_mock;
mod mobile;
mod serve;

use std::path::{Path, PathBuf};

use fantoccini::Locator;
use fantoccini::key::Key;
use ggviz::gguf::synthetic::SyntheticModel;
use ggviz::site::{BuildOptions, build};
use harness::Browser;
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;

/// Builds a site of `models` into a temporary folder; returns the folder
/// (kept alive by the guard) and the first model page.
fn site(models: Vec<PathBuf>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("site");
    let summary = build(&BuildOptions {
        models,
        out: out.clone(),
        ..BuildOptions::default()
    })
    .expect("site builds");
    let page = out.join(&summary.models[0].path);
    (dir, page)
}

/// Writes a synthetic model into `dir`.
fn synthetic(dir: &Path, name: &str, m: &SyntheticModel) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, m.writer().to_bytes()).expect("write model");
    path
}

/// Number of canvas pixels that differ from the background, read right
/// after a draw.
const DRAWN_PIXELS: &str = r#"
    const r = GG.views.architecture.renderer;
    r.draw();
    const gl = r.gl, w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
    const px = new Uint8Array(w * h * 4);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
    const bg = r.background.map((c) => Math.round(c * 255));
    let n = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (Math.abs(px[i] - bg[0]) + Math.abs(px[i + 1] - bg[1]) + Math.abs(px[i + 2] - bg[2]) > 24) n++;
    }
    return n;
"#;

async fn ready(b: &Browser) {
    b.wait_for(
        "the page to start",
        "return document.body.classList.contains('ready')",
    )
    .await;
}

async fn show_view(b: &Browser, view: &str) {
    b.client
        .find(Locator::Css(&format!("#view-tabs [data-view='{view}']")))
        .await
        .expect("tab")
        .click()
        .await
        .expect("click tab");
    b.wait_for(
        view,
        &format!("return !document.getElementById('view-{view}').hidden && location.hash.includes('view={view}')"),
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn smollm2_page_draws_every_view_offline_without_errors() {
    let (_dir, page) = site(vec![common::smollm2()]);
    let b = Browser::start().await;
    b.open(&page, "").await;
    ready(&b).await;

    // The graph drew nodes and edges, not just the background.
    let drawn = b.js(DRAWN_PIXELS).await.as_u64().unwrap();
    assert!(
        drawn > 2_000,
        "only {drawn} pixels differ from the background"
    );
    b.screenshot("architecture").await;

    show_view(&b, "layer").await;
    b.screenshot("layer").await;
    show_view(&b, "heads").await;
    b.screenshot("heads").await;
    show_view(&b, "quant").await;
    b.screenshot("quant").await;

    // The quantization map lists every tensor of the file, by name.
    let listed = b
        .js("return Array.from(document.querySelectorAll('#quant-table tbody tr')).map((r) => r.dataset.tensor)")
        .await;
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let model = ggviz::gguf::GgufModel::open(common::smollm2()).unwrap();
    let names: Vec<&str> = model.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(listed.len(), 272);
    assert_eq!(listed, names);

    // The site index links to the page, relatively.
    let index = page
        .parent()
        .and_then(Path::parent)
        .expect("site root")
        .join("index.html");
    b.open(&index, "").await;
    b.screenshot("index").await;
    b.client
        .find(Locator::Css(".card h2 a"))
        .await
        .expect("a model card")
        .click()
        .await
        .expect("follow the card");
    ready(&b).await;
    let url = b.client.current_url().await.expect("url");
    assert!(
        url.as_str()
            .ends_with("/smollm2-135m-instruct-q4-1/index.html"),
        "{url}"
    );
    b.assert_offline_and_clean().await;
    b.finish().await;
}

#[tokio::test(flavor = "current_thread")]
async fn search_finds_a_tensor_and_selects_it() {
    let (_dir, page) = site(vec![common::smollm2()]);
    let b = Browser::start().await;
    b.open(&page, "").await;
    ready(&b).await;
    let search = b.client.find(Locator::Id("search")).await.unwrap();
    search.send_keys("blk.5.attn_q").await.unwrap();
    b.wait_for(
        "search results",
        "return !!document.querySelector('#search-results li[data-key=\"blk.5.attn_q.weight\"]')",
    )
    .await;
    b.screenshot("search").await;
    b.press(Key::Enter.into()).await;
    // The selection panel and the graph follow.
    b.wait_for(
        "the selection",
        "return location.hash.includes('tensor=blk.5.attn_q.weight') && \
         document.querySelector('#selection-panel .sel-key')?.textContent === 'blk.5.attn_q.weight'",
    )
    .await;
    let on_screen = b
        .js("return GG.views.architecture.screenOf('blk.5.attn_q.weight') !== null")
        .await;
    assert_eq!(on_screen, Value::Bool(true));
    b.assert_clean_console().await;
    b.finish().await;
}

#[tokio::test(flavor = "current_thread")]
async fn clicking_a_layer_in_the_graph_selects_it_in_every_view() {
    let (_dir, page) = site(vec![common::smollm2()]);
    let b = Browser::start().await;
    b.open(&page, "").await;
    ready(&b).await;
    for id in ["arch-collapse", "arch-fit"] {
        b.client
            .find(Locator::Id(id))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    b.wait_for(
        "the collapsed layout",
        "return GG.views.architecture.screenOf('blk.3') !== null",
    )
    .await;
    let at = b.js("return GG.views.architecture.screenOf('blk.3')").await;
    let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    b.click_at(x, y).await;
    b.wait_for("the hash", "return location.hash.includes('layer=3')")
        .await;
    assert!(b.hash().await.contains("node=blk.3"));
    show_view(&b, "layer").await;
    let label = b
        .js("return document.getElementById('layer-label').textContent")
        .await;
    assert_eq!(label, Value::from("Layer 3 of 30"));
    let shown = b
        .js("return document.querySelector('#layer-panels .layer-panel').dataset.layer")
        .await;
    assert_eq!(shown, Value::from("3"));
    b.assert_clean_console().await;
    b.finish().await;
}

#[tokio::test(flavor = "current_thread")]
async fn arrow_keys_step_layers_and_back_returns() {
    let (_dir, page) = site(vec![common::smollm2()]);
    let b = Browser::start().await;
    b.open(&page, "#view=layer&layer=5").await;
    ready(&b).await;
    // The hash changes at once and the view follows on `hashchange`, so
    // wait for the view.
    let shows = |l: u32| {
        format!(
            "return document.getElementById('layer-label').textContent === 'Layer {l} of 30' \
             && location.hash.includes('layer={l}')"
        )
    };
    b.wait_for("layer 5", &shows(5)).await;
    b.press(Key::Right.into()).await;
    b.wait_for("layer 6", &shows(6)).await;
    b.press(Key::Left.into()).await;
    b.press(Key::Left.into()).await;
    b.wait_for("layer 4", &shows(4)).await;
    // Each step is a history entry: back returns to layer 5.
    b.client.back().await.unwrap();
    b.wait_for("back to layer 5", &shows(5)).await;
    // Side by side: two panels, with the second layer's slider.
    b.client
        .find(Locator::Id("layer-compare"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for(
        "two panels",
        "return document.querySelectorAll('#layer-panels .layer-panel').length === 2",
    )
    .await;
    b.screenshot("layer-side-by-side").await;
    b.assert_clean_console().await;
    b.finish().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_copied_link_restores_the_selection() {
    let (_dir, page) = site(vec![common::smollm2()]);
    let b = Browser::start().await;
    b.open(&page, "#view=heads&layer=7&head=2&node=blk.7.head.2")
        .await;
    ready(&b).await;
    let visible = b
        .js("return !document.getElementById('view-heads').hidden")
        .await;
    assert_eq!(visible, Value::Bool(true));
    let key = b
        .js("return document.querySelector('#selection-panel .sel-key').textContent")
        .await;
    assert_eq!(key, Value::from("blk.7.head.2"));
    b.screenshot("heads-selected").await;
    b.assert_clean_console().await;
    b.finish().await;
}

#[tokio::test(flavor = "current_thread")]
async fn hostile_strings_in_the_model_are_shown_as_text_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let name = "</script><script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";
    let template = "{% for m in messages %}</script><script>window.__pwned=3</script><img src=x onerror=window.__pwned=4>{{ m.content }}{% endfor %}";
    let model = synthetic(
        dir.path(),
        "hostile.gguf",
        &SyntheticModel {
            name: name.into(),
            chat_template: Some(template.into()),
            ..SyntheticModel::default()
        },
    );
    let (_site, page) = site(vec![model]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script>window.__pwned"));
    assert!(!html.contains("<img src=x"));

    let b = Browser::start().await;
    b.open(&page, "").await;
    ready(&b).await;
    let pwned = b
        .js("return window.__pwned === undefined && document.images.length === 0")
        .await;
    assert_eq!(pwned, Value::Bool(true), "injected markup ran");
    let shown = b
        .js("return document.getElementById('model-name').textContent")
        .await;
    assert_eq!(shown, Value::from(name));
    let title = b.js("return document.title").await;
    assert!(title.as_str().unwrap().starts_with(name));
    let panel = b
        .js("return document.querySelector('#stats-panel .stat-name').textContent")
        .await;
    assert_eq!(panel, Value::from(name));
    let tpl = b
        .js("return document.querySelector('.chat-template pre').textContent")
        .await;
    assert_eq!(tpl, Value::from(template));
    b.screenshot("hostile-strings").await;
    b.assert_clean_console().await;
    b.finish().await;
}

/// The large model of the frame-rate figure, written into `dir`.
fn large_model(dir: &Path) -> PathBuf {
    synthetic(dir, "large-80x64.gguf", &common::large_model())
}

/// Expands every layer, optionally zooms out to the whole model, then pans
/// and zooms with wheel and pointer events on the canvas for `ms`
/// milliseconds; returns frames drawn per second.
const PAN_ZOOM_FPS: &str = r#"
    const done = arguments[arguments.length - 1];
    const v = GG.views.architecture;
    v.expandAll();
    const c = document.getElementById('arch-canvas');
    const b = c.getBoundingClientRect();
    const cx = b.left + b.width / 2, cy = b.top + b.height / 2;
    const ms = arguments[0];
    const r = v.renderer;
    if (arguments[1]) {
      const n = r.nodes;
      let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
      for (let i = 0; i < n.n; i++) {
        x0 = Math.min(x0, n.x[i]); x1 = Math.max(x1, n.x[i]);
        y0 = Math.min(y0, n.y[i]); y1 = Math.max(y1, n.y[i]);
      }
      r.fit(x0, y0, x1, y1);
    }
    requestAnimationFrame(() => {
      const f0 = r.stats.frames, t0 = performance.now();
      let i = 0;
      const step = () => {
        const t = performance.now() - t0;
        if (t >= ms) { done([(r.stats.frames - f0) / (t / 1000), r.nodes.n, r.edgeCount]); return; }
        i++;
        if (i % 2) {
          c.dispatchEvent(new WheelEvent('wheel', { deltaY: Math.sin(i / 12) * 60, clientX: cx, clientY: cy, bubbles: true, cancelable: true }));
        } else {
          const dx = Math.cos(i / 20) * 14, dy = Math.sin(i / 16) * 14;
          c.dispatchEvent(new PointerEvent('pointerdown', { button: 0, clientX: cx, clientY: cy, pointerId: 1, bubbles: true }));
          c.dispatchEvent(new PointerEvent('pointermove', { clientX: cx + dx, clientY: cy + dy, pointerId: 1, bubbles: true }));
          c.dispatchEvent(new PointerEvent('pointerup', { clientX: cx + dx, clientY: cy + dy, pointerId: 1, bubbles: true }));
        }
        requestAnimationFrame(step);
      };
      requestAnimationFrame(step);
    });
"#;

async fn measure_fps(b: &Browser, ms: u64, whole: bool) -> (f64, u64, u64) {
    let v = b
        .client
        .execute_async(PAN_ZOOM_FPS, vec![Value::from(ms), Value::from(whole)])
        .await
        .expect("fps script");
    (
        v[0].as_f64().expect("fps"),
        v[1].as_u64().expect("nodes"),
        v[2].as_u64().expect("edges"),
    )
}

#[tokio::test(flavor = "current_thread")]
async fn the_80_layer_64_head_model_draws_every_head() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, page) = site(vec![large_model(dir.path())]);
    let b = Browser::start().await;
    b.open(&page, "").await;
    ready(&b).await;
    let (_, nodes, edges) = measure_fps(&b, 300, false).await;
    assert!(nodes > 80 * 64 + 80 * 8, "{nodes} nodes drawn");
    assert!(edges > 80 * 64 * 3, "{edges} edges drawn");
    let drawn = b.js(DRAWN_PIXELS).await.as_u64().unwrap();
    assert!(
        drawn > 2_000,
        "only {drawn} pixels differ from the background"
    );
    b.screenshot("large-model").await;
    b.assert_clean_console().await;
    b.finish().await;
}

/// The frame-rate figure for the README: `bench/fps.sh` runs it. Ignored in
/// the normal suite, because a frame rate on a busy shared machine is a
/// measurement, not a pass/fail fact.
#[tokio::test(flavor = "current_thread")]
#[ignore]
async fn fps_pan_zoom_80_layers_64_heads() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, page) = site(vec![large_model(dir.path())]);
    let b = Browser::start().await;
    b.open(&page, "").await;
    ready(&b).await;
    // Warm up, then measure at the page's opening zoom (the top of the
    // model, labels readable) and with the whole model on screen.
    measure_fps(&b, 1000, false).await;
    let (fps, nodes, edges) = measure_fps(&b, 5000, false).await;
    println!("fps: {fps:.1} at the opening zoom ({nodes} nodes, {edges} edges)");
    let (whole, _, _) = measure_fps(&b, 5000, true).await;
    println!("fps: {whole:.1} with all 80 layers on screen");
    b.assert_clean_console().await;
    b.finish().await;
    assert!(
        fps.min(whole) >= 30.0,
        "{fps:.1} / {whole:.1} fps is below 30"
    );
}

/// The console check above is only worth something if it sees errors.
#[tokio::test(flavor = "current_thread")]
async fn the_console_check_sees_errors_and_blocked_requests() {
    let (_dir, page) = site(vec![common::smollm2()]);
    let b = Browser::start().await;
    b.open(&page, "").await;
    ready(&b).await;
    b.js(
        "console.error('planted error'); fetch('https://example.com/x').catch(() => {}); return 1",
    )
    .await;
    b.wait_for("the fetch to fail", "return true").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = b.console().await;
    assert!(
        log.iter()
            .any(|(level, m)| level == "SEVERE" && m.contains("planted error")),
        "{log:#?}"
    );
    // The CSP refuses the request before it reaches the network.
    assert!(
        log.iter()
            .any(|(_, m)| m.contains("Content Security Policy")),
        "{log:#?}"
    );
    b.finish().await;
}
