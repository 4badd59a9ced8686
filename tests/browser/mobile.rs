//! Pages that travel: the model page at phone size (420 × 860 CSS pixels).
//! For every view tab the page has, no two panels overlap and nothing runs
//! off the side of the page; the statistics panel is still reachable; two
//! fingers pinch-zoom the WebGL graph. Screenshots: `mobile-<view>.png`.

use fantoccini::Locator;
use serde_json::Value;

use super::behaviour::behaviour_page;
use super::harness::{Browser, WINDOW};
use super::ready;

/// The phone-sized window, in CSS pixels.
const PHONE: (u32, u32) = (420, 860);

/// The boxes that must not overlap: panels, cards, toolbars, legends, the
/// tab bar and the top bar's parts. Each is measured as it is seen, that is
/// clipped by every scrolling or clipping ancestor; boxes nested in one
/// another are not compared.
const LAYOUT_PROBLEMS: &str = r#"
    const selectors = ['.panel', '.toolbar', '.legend', '.layer-panel', '.attn-focus', '.attn-pane',
      '.lens-detail', '.lens-box', '.heat-box', '.cmp-card', '.head-card', '.type-card',
      '#view-tabs', '.search', '#model-name', '.topbar .brand'];
    const W = document.documentElement.clientWidth;
    const seen = (el) => {
      let r = el.getBoundingClientRect();
      let box = { l: r.left, t: r.top, r: r.right, b: r.bottom };
      if (r.width === 0 || r.height === 0) return null;
      for (let a = el.parentElement; a; a = a.parentElement) {
        const s = getComputedStyle(a);
        if (s.display === 'none' || s.visibility === 'hidden') return null;
        if (s.overflowX !== 'visible' || s.overflowY !== 'visible') {
          const c = a.getBoundingClientRect();
          box = { l: Math.max(box.l, c.left), t: Math.max(box.t, c.top), r: Math.min(box.r, c.right), b: Math.min(box.b, c.bottom) };
        }
      }
      return box.r - box.l > 1 && box.b - box.t > 1 ? box : null;
    };
    const name = (el) => el.id ? '#' + el.id : el.tagName.toLowerCase() + '.' + [...el.classList].join('.');
    const boxes = [];
    for (const el of document.querySelectorAll(selectors.join(','))) {
      if (el.closest('[hidden]')) continue;
      const box = seen(el);
      if (box) boxes.push({ el, box });
    }
    const problems = [];
    const docW = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
    if (docW > W + 1) problems.push(`the page is ${docW} px wide in a ${W} px window`);
    for (const { el } of boxes) {
      const r = el.getBoundingClientRect();
      if (r.left < -1 || r.right > W + 1) problems.push(`${name(el)} spans ${Math.round(r.left)}..${Math.round(r.right)} px`);
    }
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
        const w = Math.min(a.box.r, b.box.r) - Math.max(a.box.l, b.box.l);
        const h = Math.min(a.box.b, b.box.b) - Math.max(a.box.t, b.box.t);
        if (w > 1 && h > 1) problems.push(`${name(a.el)} overlaps ${name(b.el)} by ${Math.round(w)} × ${Math.round(h)} px`);
      }
    }
    return problems;
"#;

#[tokio::test(flavor = "current_thread")]
async fn every_view_fits_a_phone_without_overlaps() {
    let page = behaviour_page();
    let b = Browser::start().await;
    b.client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("phone-sized window");
    b.open(page, "").await;
    ready(&b).await;
    let width = b.js("return document.documentElement.clientWidth").await;
    assert!(
        width.as_u64().is_some_and(|w| w <= u64::from(PHONE.0)),
        "window {width}"
    );

    let views = b
        .js("return [...document.querySelectorAll('#view-tabs [data-view]')].filter((t) => !t.hidden && !t.disabled).map((t) => t.dataset.view)")
        .await;
    let views: Vec<String> = views
        .as_array()
        .expect("tabs")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert!(views.len() >= 7, "view tabs: {views:?}");
    let mut failures = Vec::new();
    for view in &views {
        let tab = b
            .client
            .find(Locator::Css(&format!("#view-tabs [data-view='{view}']")))
            .await
            .expect("tab");
        // A tab a finger cannot reach is a failure; the check goes on.
        if let Err(e) = tab.click().await.map_err(|e| e.to_string()) {
            failures.push(format!("{view}: its tab cannot be clicked ({e:.60})"));
            b.js(&format!(
                "document.querySelector(\"#view-tabs [data-view='{view}']\").click()"
            ))
            .await;
        }
        b.wait_for(
            view,
            &format!("return !document.getElementById('view-{view}').hidden"),
        )
        .await;
        b.js("return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))")
            .await;
        b.screenshot(&format!("mobile-{view}")).await;
        let problems = b.js(LAYOUT_PROBLEMS).await;
        if let Some(list) = problems.as_array().filter(|l| !l.is_empty()) {
            failures.push(format!("{view}: {list:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "at {PHONE:?}:\n{}",
        failures.join("\n")
    );

    // The statistics panel is below the views, not hidden.
    let stats = b
        .js("const s = document.getElementById('stats-panel'); const r = s.getBoundingClientRect(); \
             return getComputedStyle(document.getElementById('side')).display !== 'none' && r.height > 50 && s.textContent.includes('Layers')")
        .await;
    assert_eq!(stats, Value::Bool(true), "statistics panel not shown");
    b.js("document.getElementById('stats-panel').scrollIntoView()")
        .await;
    b.screenshot("mobile-stats").await;
    b.assert_clean_console().await;

    // The site's index and a content page fit too.
    let site = page.parent().and_then(|p| p.parent()).expect("site folder");
    for (name, file) in [
        ("index", site.join("index.html")),
        ("about", site.join("docs/about.html")),
    ] {
        b.open(&file, "").await;
        let wide = b
            .js("return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - document.documentElement.clientWidth")
            .await;
        assert!(
            wide.as_f64().is_some_and(|w| w <= 1.0),
            "{name} is {wide} px wider than the window"
        );
        b.screenshot(&format!("mobile-{name}")).await;
    }
    b.client
        .set_window_size(WINDOW.0, WINDOW.1)
        .await
        .expect("window back");
    b.finish().await;
}

/// Two touch pointers moving apart zoom the architecture graph in about
/// their midpoint; one touch pointer drags it.
#[tokio::test(flavor = "current_thread")]
async fn touch_pinch_zooms_and_drag_pans_the_graph() {
    let page = behaviour_page();
    let b = Browser::start().await;
    b.client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("phone-sized window");
    b.open(page, "").await;
    ready(&b).await;
    let result = b
        .js(r#"
        const r = GG.views.architecture.renderer;
        const c = r.canvas, box = c.getBoundingClientRect();
        const cx = box.left + box.width / 2, cy = box.top + box.height / 2;
        const fire = (type, id, x, y) => c.dispatchEvent(new PointerEvent(type, {
          pointerId: id, pointerType: 'touch', isPrimary: id === 1, button: type === 'pointermove' ? -1 : 0,
          buttons: type === 'pointerup' ? 0 : 1, clientX: x, clientY: y, bubbles: true, cancelable: true }));
        const k0 = r.cam.k;
        fire('pointerdown', 1, cx - 20, cy);
        fire('pointerdown', 2, cx + 20, cy);
        for (let s = 1; s <= 10; s++) {
          fire('pointermove', 1, cx - 20 - 4 * s, cy);
          fire('pointermove', 2, cx + 20 + 4 * s, cy);
        }
        fire('pointerup', 1, cx - 60, cy);
        fire('pointerup', 2, cx + 60, cy);
        const k1 = r.cam.k, x1 = r.cam.x;
        fire('pointerdown', 3, cx, cy);
        for (let s = 1; s <= 5; s++) fire('pointermove', 3, cx + 10 * s, cy);
        fire('pointerup', 3, cx + 50, cy);
        return { zoom: k1 / k0, panned: (x1 - r.cam.x) * r.cam.k };
        "#)
        .await;
    let zoom = result["zoom"].as_f64().expect("zoom");
    let panned = result["panned"].as_f64().expect("pan");
    // Fingers 40 px apart moving to 120 px apart: three times closer.
    assert!((zoom - 3.0).abs() < 0.05, "pinch zoom {zoom}");
    assert!((panned - 50.0).abs() < 0.5, "drag moved {panned} px");
    b.assert_clean_console().await;
    b.finish().await;
}
