//! The behaviour views (Attention, Layers over tokens, Head comparator, and
//! the head map's behaviour colourings) on the SmolLM2 page built with the
//! default prompts, and their absence on a structure-only page.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fantoccini::Locator;
use ggviz::analysis::prompts;
use ggviz::engine::SessionOptions;
use ggviz::pipeline::{self, InferenceOptions, PipelineOptions};
use ggviz::site::BuildOptions;
use serde_json::Value;

use super::harness::Browser;
use super::{common, ready, show_view, site};

/// The SmolLM2 page with behaviour, built once for the whole test binary
/// (inference and analytics are the slow part of the suite), into Cargo's
/// scratch folder for integration tests.
pub(crate) fn behaviour_page() -> &'static Path {
    static PAGE: OnceLock<PathBuf> = OnceLock::new();
    PAGE.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-behaviour-site");
        let opts = PipelineOptions {
            site: BuildOptions {
                models: vec![common::smollm2()],
                out: out.clone(),
                ..BuildOptions::default()
            },
            embeddings: None,
            inference: Some(InferenceOptions {
                prompts: prompts::defaults().expect("bundled prompts"),
                session: SessionOptions {
                    threads: common::test_threads(),
                    ..SessionOptions::default()
                },
                ablation: false,
                analytics_device: None,
            }),
            isolation: Default::default(),
            graphistry: None,
        };
        let (summary, _) = pipeline::build(&opts, &indicatif::ProgressBar::hidden())
            .expect("the SmolLM2 site builds with inference");
        out.join(&summary.models[0].path)
    })
}

/// The report embedded in a built page.
fn report(page: &Path) -> Value {
    let html = std::fs::read_to_string(page).expect("page");
    let tag = r#"id="ggviz-data">"#;
    let start = html.find(tag).expect("data block") + tag.len();
    let end = start + html[start..].find("</script>").expect("closed");
    serde_json::from_str(&html[start..end]).expect("report JSON")
}

fn unpack_u32(p: &Value) -> Vec<u32> {
    assert_eq!(p["dtype"], "u32");
    let packed: ggviz::report::packed::Packed =
        serde_json::from_value(p.clone()).expect("a packed array");
    packed.to_f64().into_iter().map(|x| x as u32).collect()
}

async fn wait_hash(b: &Browser, part: &str) {
    b.wait_for(
        &format!("the hash to hold {part}"),
        &format!("return location.hash.includes({part:?})"),
    )
    .await;
}

/// Every behaviour view draws, offline and without console errors; the
/// screenshots are the views' review copies.
#[tokio::test(flavor = "current_thread")]
async fn behaviour_views_render_without_errors() {
    let page = behaviour_page();
    let b = Browser::start().await;
    b.open(page, "#view=attention&prompt=2&layer=18&head=6")
        .await;
    ready(&b).await;
    let tabs = b
        .js("return Array.from(document.querySelectorAll('#view-tabs .tab')).map((t) => t.dataset.view)")
        .await;
    for v in ["attention", "tracker", "comparator"] {
        assert!(tabs.as_array().unwrap().contains(&Value::from(v)), "{tabs}");
    }
    // The induction head on the repeated tokens: a heatmap, ten small
    // multiples (the average and nine heads) and the token panel.
    b.wait_for(
        "the attention heatmap",
        "return document.querySelectorAll('#attn-panes canvas').length === 1 && \
         document.querySelectorAll('#attn-multiples .mult').length === 10 && \
         document.querySelectorAll('#attn-text .tchip').length === 51",
    )
    .await;
    let selected = b
        .js("return document.querySelector('#attn-multiples .mult.selected').dataset.head")
        .await;
    assert_eq!(selected, Value::from("6"));
    // Hovering a cell shows its value: token 35 (the second copy of token
    // 10) looking at token 11, the one that followed its first occurrence.
    let at = b.js("return GG.views.attention.screenOfCell(35, 11)").await;
    b.hover_at(at[0].as_f64().unwrap(), at[1].as_f64().unwrap())
        .await;
    b.wait_for(
        "the cell's tooltip",
        "const t = document.getElementById('tooltip'); \
         return !t.hidden && t.textContent.startsWith('35 ‘') && t.textContent.includes('→ 11 ‘')",
    )
    .await;
    b.screenshot("attention").await;

    // Two heads side by side.
    b.client
        .find(Locator::Id("attn-compare"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_hash(&b, "vs=18.7").await;
    b.wait_for(
        "two panes",
        "return document.querySelectorAll('#attn-panes .attn-pane').length === 2",
    )
    .await;
    b.screenshot("attention-side-by-side").await;

    show_view(&b, "tracker").await;
    b.wait_for(
        "the lens table",
        "return document.querySelectorAll('#lens-table tbody tr').length === 31",
    )
    .await;
    b.screenshot("tracker").await;
    show_view(&b, "comparator").await;
    b.wait_for(
        "the head table",
        "return document.querySelectorAll('#cmp-table tbody tr').length === 270",
    )
    .await;
    b.screenshot("comparator").await;
    show_view(&b, "heads").await;
    // With behaviour the head map opens coloured by cluster, named.
    let metric = b
        .js("return document.getElementById('heads-metric').value")
        .await;
    assert_eq!(metric, Value::from("cluster"));
    let card = b
        .js("return document.querySelector('#head-card .hc-head b').textContent")
        .await;
    assert_eq!(card, Value::from("L18 H6"));
    b.screenshot("heads-clusters").await;
    b.assert_offline_and_clean().await;
    b.finish().await;
}

/// Changing the head changes what the heatmap draws.
#[tokio::test(flavor = "current_thread")]
async fn attention_pixels_change_with_the_selected_head() {
    let page = behaviour_page();
    let b = Browser::start().await;
    b.open(page, "#view=attention&prompt=2&layer=18&head=0")
        .await;
    ready(&b).await;
    b.wait_for("the heatmap", "return !!GG.views.attention.pixels()")
        .await;
    b.js("window.__before = GG.views.attention.pixels().slice(); return 1")
        .await;
    b.client
        .find(Locator::Css("#attn-multiples .mult[data-head='6']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_hash(&b, "head=6").await;
    b.wait_for(
        "the new pane",
        "return document.querySelector('#attn-panes .attn-pane').dataset.head === '6'",
    )
    .await;
    let changed = b
        .js(r#"
            const a = window.__before, c = GG.views.attention.pixels();
            if (a.length !== c.length) return -1;
            let n = 0;
            for (let i = 0; i < a.length; i += 4) {
              if (a[i] !== c[i] || a[i + 1] !== c[i + 1] || a[i + 2] !== c[i + 2]) n++;
            }
            return n;
        "#)
        .await
        .as_i64()
        .unwrap();
    assert!(changed > 5_000, "{changed} pixels changed");
    // The arrow keys step the layer; back returns to the head.
    b.press(fantoccini::key::Key::Up.into()).await;
    wait_hash(&b, "layer=17").await;
    b.client.back().await.unwrap();
    wait_hash(&b, "layer=18").await;
    b.assert_clean_console().await;
    b.finish().await;
}

/// Picking a head in the comparator selects it everywhere: the hash, the
/// attention view, the head map and the graph.
#[tokio::test(flavor = "current_thread")]
async fn selecting_a_head_in_the_comparator_updates_the_hash_and_attention() {
    let page = behaviour_page();
    let b = Browser::start().await;
    b.open(page, "#view=comparator").await;
    ready(&b).await;
    let features = click_loneliest_head(&b).await;

    // Placed by attention patterns instead, the heads move, and a click
    // still selects the head under it.
    b.js(
        "const s = document.getElementById('cmp-place'); s.value = 'similarity'; \
          s.dispatchEvent(new Event('change')); return 1",
    )
    .await;
    let patterns = click_loneliest_head(&b).await;
    assert_ne!(features, patterns, "the placement did not change");
    b.screenshot("comparator-by-patterns").await;

    // A row of the table: layer 5, head 3, followed by every view. The
    // row is scrolled clear of the table's sticky header first.
    show_view(&b, "comparator").await;
    b.js("document.querySelector(\"#cmp-table tr[data-head='5.3']\").scrollIntoView({ block: 'center' }); return 1")
        .await;
    b.client
        .find(Locator::Css("#cmp-table tr[data-head='5.3']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_hash(&b, "layer=5&head=3").await;
    show_view(&b, "attention").await;
    b.wait_for(
        "head 3 of layer 5",
        "return document.querySelector('#attn-panes .attn-pane').dataset.layer === '5' && \
         document.querySelector('#attn-multiples .mult.selected').dataset.head === '3'",
    )
    .await;
    show_view(&b, "heads").await;
    let card = b
        .js("return document.querySelector('#head-card .hc-head b').textContent")
        .await;
    assert_eq!(card, Value::from("L5 H3"));
    show_view(&b, "architecture").await;
    b.wait_for(
        "the head in the graph",
        "return GG.views.architecture.screenOf('blk.5.head.3') !== null && \
         document.querySelector('#selection-panel .sel-key').textContent === 'blk.5.head.3'",
    )
    .await;
    b.assert_clean_console().await;
    b.finish().await;
}

/// Clicks the head drawn furthest from any other in the comparator's plane
/// (so the click can only mean it), checks that the hash and the attention
/// view follow, comes back, and returns every head's place on screen.
async fn click_loneliest_head(b: &Browser) -> Value {
    let found = b
        .js(r#"
            const H = GG.report.heads, v = GG.views.comparator;
            let best = null, far = -1;
            const places = [];
            for (let l = 0; l < H.nHead.length; l++) for (let h = 0; h < H.nHead[l]; h++) {
              const [x, y] = v.screenOf(l, h);
              places.push([Math.round(x), Math.round(y)]);
              let near = Infinity;
              for (let m = 0; m < H.nHead.length; m++) for (let k = 0; k < H.nHead[m]; k++) {
                if (m === l && k === h) continue;
                const [x2, y2] = v.screenOf(m, k);
                near = Math.min(near, Math.hypot(x - x2, y - y2));
              }
              if (near > far) { far = near; best = [l, h, x, y]; }
            }
            return [best, places];
        "#)
        .await;
    let t = &found[0];
    let num = |i: usize| t[i].as_f64().expect("a head and its place");
    let (l, h) = (num(0) as u64, num(1) as u64);
    b.click_at(num(2), num(3)).await;
    wait_hash(b, &format!("layer={l}&head={h}")).await;
    assert!(b.hash().await.contains(&format!("node=blk.{l}.head.{h}")));
    show_view(b, "attention").await;
    let shown = b
        .js("const p = document.querySelector('#attn-panes .attn-pane'); return [p.dataset.layer, p.dataset.head]")
        .await;
    assert_eq!(shown, serde_json::json!([l.to_string(), h.to_string()]));
    show_view(b, "comparator").await;
    found[1].clone()
}

/// The logit lens's last layer is the model's own prediction, cell by cell,
/// and the page says how closely it reproduces llama.cpp's logits.
#[tokio::test(flavor = "current_thread")]
async fn the_lens_tables_last_row_is_the_model_prediction() {
    let page = behaviour_page();
    let r = report(page);
    let b = Browser::start().await;
    b.open(page, "#view=tracker&prompt=0").await;
    ready(&b).await;
    b.wait_for(
        "the lens table",
        "return document.querySelectorAll('#lens-table tbody tr').length === 31",
    )
    .await;
    let row = |sel: &str| {
        format!(
            "return Array.from(document.querySelectorAll('#lens-table tr[data-layer=\"{sel}\"] td')).map((td) => [Number(td.dataset.id), td.querySelector('.pc').textContent])"
        )
    };
    let last = b.js(&row("29")).await;
    let model = b.js(&row("model")).await;
    let p = &r["behaviour"]["prompts"][0];
    let t = p["n_tokens"].as_u64().unwrap() as usize;
    assert_eq!(last.as_array().unwrap().len(), t);
    assert_eq!(last, model);
    let predicted = unpack_u32(&p["prediction"]["top_ids"]);
    for (i, cell) in model.as_array().unwrap().iter().enumerate() {
        assert_eq!(cell[0].as_u64().unwrap(), u64::from(predicted[5 * i]));
    }
    // "The capital of Italy is" → " Rome", shown with its space.
    assert_eq!(model[t - 1][1], Value::from("␣Rome"));
    let check = b
        .js("return document.getElementById('lens-check').textContent")
        .await;
    assert!(
        check
            .as_str()
            .unwrap()
            .starts_with("Lens check: the last layer reproduces llama.cpp’s logits to"),
        "{check}"
    );

    // A cell's details: its top 5 and the final prediction's rank there.
    b.client
        .find(Locator::Css(
            "#lens-table td[data-layer='29'][data-pos='5']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_hash(&b, "layer=29").await;
    assert!(b.hash().await.contains("token=5"));
    let detail = b
        .js("return [document.querySelectorAll('#lens-detail ol.top5 li').length, document.querySelector('#lens-detail .rank-line').textContent]")
        .await;
    assert_eq!(detail[0], Value::from(5));
    assert!(
        detail[1].as_str().unwrap().contains("is ranked 1 here"),
        "{detail}"
    );
    b.assert_clean_console().await;
    b.finish().await;
}

/// Without inference the behaviour views are not on the page, and a link
/// made on a page that has them opens without errors.
#[tokio::test(flavor = "current_thread")]
async fn a_structure_only_page_has_no_behaviour_views() {
    let (_dir, page) = site(vec![common::smollm2()]);
    let b = Browser::start().await;
    b.open(
        &page,
        "#view=attention&layer=5&head=3&prompt=2&token=7&vs=6.1",
    )
    .await;
    ready(&b).await;
    let tabs = b
        .js("return Array.from(document.querySelectorAll('#view-tabs .tab')).map((t) => t.dataset.view)")
        .await;
    assert_eq!(
        tabs,
        serde_json::json!(["architecture", "layer", "heads", "quant"])
    );
    let behaviour = b
        .js("return [document.querySelectorAll('[id^=view-attention], [id^=view-tracker], [id^=view-comparator]').length, GG.behaviour(GG.report)]")
        .await;
    assert_eq!(behaviour, serde_json::json!([0, null]));
    // The first view shows instead, with the head selected.
    let visible = b
        .js("return !document.getElementById('view-architecture').hidden")
        .await;
    assert_eq!(visible, Value::Bool(true));
    show_view(&b, "heads").await;
    let heads = b
        .js("return [document.getElementById('heads-metric').value, !!document.getElementById('head-card')]")
        .await;
    assert_eq!(heads, serde_json::json!(["kv_group", false]));
    b.assert_clean_console().await;
    b.finish().await;
}
