//! `ggviz serve` with a real page open: a content edit shows within a
//! second of saving, a broken project file shows as an overlay over the
//! last good site, and the next good build clears it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ggviz::commands::init::{InitOptions, init};
use ggviz::commands::serve::{ServeOptions, start};
use ggviz::config::Overrides;
use ggviz::gguf::synthetic::SyntheticModel;
use serde_json::Value;

use super::harness::{Browser, DEADLINE};

/// A starter project around a synthetic model, structure only.
fn project(dir: &Path) {
    std::fs::write(
        dir.join("synthetic.gguf"),
        SyntheticModel::default().writer().to_bytes(),
    )
    .expect("model");
    init(&InitOptions {
        dir: dir.to_owned(),
        models: vec!["synthetic.gguf".into()],
        force: true,
        ..InitOptions::default()
    })
    .expect("init");
    let config = dir.join("ggviz.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("no_inference = false", "no_inference = true"),
    )
    .expect("structure only");
}

async fn wait_js(b: &Browser, what: &str, js: &str) -> Duration {
    let start = Instant::now();
    loop {
        if b.js(js).await == Value::Bool(true) {
            return start.elapsed();
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_content_edit_reloads_the_open_page_within_a_second() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    project(dir);
    let server = start(
        ServeOptions {
            config: Some(dir.join("ggviz.toml")),
            overrides: Overrides::default(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            isolation: Default::default(),
            embeddings: Some(Default::default()),
        },
        Arc::new(|line| eprintln!("serve: {line}")),
    )
    .expect("serves");
    let b = Browser::start_online().await;
    b.open_url(&format!(
        "http://{}/docs/about-these-models.html",
        server.addr
    ))
    .await;
    wait_js(
        &b,
        "the live-reload connection",
        "return document.documentElement.dataset.ggvizServe === 'connected'",
    )
    .await;

    // Edit the page as an editor would: the new text, saved.
    let page = dir.join("content/about-these-models.md");
    let text = std::fs::read_to_string(&page).expect("page");
    let saved = Instant::now();
    std::fs::write(
        &page,
        text.replace("# About these models", "# Edited while serving"),
    )
    .expect("edit");
    wait_js(
        &b,
        "the edit to show",
        "return document.body.textContent.includes('Edited while serving')",
    )
    .await;
    let shown = saved.elapsed();
    eprintln!(
        "edit visible {:.0} ms after saving",
        shown.as_secs_f64() * 1e3
    );
    assert!(shown < Duration::from_secs(1), "took {shown:?}");

    // A broken project file: the last good site stays, with the error over it.
    let config = dir.join("ggviz.toml");
    let good = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("titel = \"typo\"\n{good}")).expect("break");
    wait_js(
        &b,
        "the error overlay",
        "const o = document.getElementById('ggviz-serve-error'); return !!o && o.textContent.includes('unknown key `titel`')",
    )
    .await;
    b.screenshot("serve-error-overlay").await;
    let still = b
        .js("return document.body.textContent.includes('Edited while serving')")
        .await;
    assert_eq!(still, Value::Bool(true));
    let on_disk =
        std::fs::read_to_string(dir.join("site/docs/about-these-models.html")).expect("site kept");
    assert!(on_disk.contains("Edited while serving"));

    // Fixed: the page reloads and the overlay is gone.
    std::fs::write(&config, good.replace("My models", "Fixed title")).expect("fix");
    wait_js(
        &b,
        "the overlay to clear",
        "return !document.getElementById('ggviz-serve-error') && document.title.includes('Fixed title')",
    )
    .await;
    b.assert_clean_console().await;
    b.finish().await;
    server.stop();
}
