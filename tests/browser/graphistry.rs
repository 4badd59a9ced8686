//! "Open in Graphistry" links: a page built with an upload (to a local
//! stand-in for Graphistry) shows them beside the Architecture and Head
//! comparator views as plain links, and still fetches nothing by itself.

use fantoccini::Locator;
use ggviz::analysis::prompts;
use ggviz::engine::SessionOptions;
use ggviz::fetch::graphistry::{self, Credentials, Mode, Secret};
use ggviz::gguf::synthetic::SyntheticModel;
use ggviz::pipeline::{self, InferenceOptions, PipelineOptions};
use ggviz::site::BuildOptions;
use serde_json::json;

use super::harness::Browser;
use super::http_mock::{Request, Response, Server};
use super::{ready, show_view};

/// Graphistry's endpoints, answering every upload with dataset `ds-N`.
fn stand_in() -> Server {
    let next = std::sync::atomic::AtomicUsize::new(1);
    Server::start(move |req: &Request| match req.path.as_str() {
        "/api/v2/auth/pkey/jwt/" => Response::json(200, &json!({"token": "t"})),
        "/api/v2/upload/datasets/" => {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Response::json(
                200,
                &json!({"success": true, "data": {"dataset_id": format!("ds-{n}")}}),
            )
        }
        _ => Response::json(200, &json!({"success": true})),
    })
}

#[tokio::test(flavor = "current_thread")]
async fn the_page_links_both_graphs_and_stays_offline() {
    let server = stand_in();
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("tiny.gguf");
    SyntheticModel::default()
        .writer()
        .write(&model)
        .expect("model written");
    let out = dir.path().join("site");
    let opts = PipelineOptions {
        site: BuildOptions {
            models: vec![model],
            out: out.clone(),
            ..BuildOptions::default()
        },
        inference: Some(InferenceOptions {
            prompts: prompts::select(&["the cat sat on the mat and the dog".into()], None)
                .expect("prompt"),
            session: SessionOptions {
                threads: 1,
                ..SessionOptions::default()
            },
            ablation: false,
            analytics_device: None,
        }),
        isolation: Default::default(),
        graphistry: Some(graphistry::Request {
            mode: Mode::Required,
            credentials: Some(Credentials {
                server: server.url(),
                secret: Secret::PersonalKey {
                    id: "kid".into(),
                    secret: "ksecret".into(),
                },
            }),
            head_threshold: 0.5,
        }),
        ..Default::default()
    };
    // The upload uses blocking HTTP, which must not run on the test's async
    // runtime (as `ggviz build` never does).
    let (summary, _) =
        std::thread::spawn(move || pipeline::build(&opts, &indicatif::ProgressBar::hidden()))
            .join()
            .expect("build thread")
            .expect("site with links");
    drop(server);
    let page = out.join(&summary.models[0].path);

    let b = Browser::start().await;
    b.open(&page, "").await;
    ready(&b).await;
    let link = |id: &'static str| {
        let b = &b;
        async move {
            let a = b
                .client
                .find(Locator::Css(&format!("a#{id}")))
                .await
                .unwrap_or_else(|_| panic!("link #{id}"));
            let href = a.attr("href").await.expect("href").expect("an href");
            let text = a.text().await.expect("text");
            let target = a.attr("target").await.expect("target");
            (href, text, target)
        }
    };
    let (href, text, target) = link("arch-graphistry").await;
    assert!(
        href.ends_with("/graph/graph.html?dataset=ds-1&play=0"),
        "{href}"
    );
    assert_eq!(text, "Open in Graphistry");
    assert_eq!(target.as_deref(), Some("_blank"));
    show_view(&b, "comparator").await;
    let (href, _, _) = link("cmp-graphistry").await;
    assert!(
        href.ends_with("/graph/graph.html?dataset=ds-2&play=0"),
        "{href}"
    );
    b.screenshot("graphistry-links").await;
    b.assert_offline_and_clean().await;
    b.finish().await;
}
