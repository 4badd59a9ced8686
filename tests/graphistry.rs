//! Graphistry uploads against a local stand-in for its REST API: the login
//! (personal key and password), the bindings, every node and edge of both
//! graphs, the links in the page, no request without the flag, and a 401
//! and a 500 as a warning (`auto`) or an error (`required`).
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod http_mock;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ggviz::analysis::prompts;
use ggviz::engine::SessionOptions;
use ggviz::fetch::graphistry::{self, Credentials, Mode, Secret};
use ggviz::gguf::synthetic::SyntheticModel;
use ggviz::pipeline::{self, InferenceOptions, PipelineError, PipelineOptions};
use ggviz::site::BuildOptions;
use http_mock::{Request, Response, Server};
use serde_json::{Value, json};

const JWT: &str = "jwt-for-tests";

/// Which step the stand-in fails, and how.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fail {
    Nothing,
    Login401,
    Nodes500,
}

fn graphistry_mock(fail: Fail) -> Server {
    let next = Arc::new(AtomicUsize::new(1));
    Server::start(move |req: &Request| {
        let ok = || Response::json(200, &json!({"success": true}));
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/v2/auth/pkey/jwt/") => {
                if fail == Fail::Login401
                    || req.header("authorization") != Some("PersonalKey kid:ksecret")
                {
                    return Response::json(401, &json!({"detail": "Invalid personal key"}));
                }
                Response::json(200, &json!({"token": JWT}))
            }
            ("POST", "/api-token-auth/") => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                if body != json!({"username": "ada", "password": "pw"}) {
                    return Response::json(401, &json!({"detail": "bad credentials"}));
                }
                Response::json(200, &json!({"token": JWT}))
            }
            _ if req.header("authorization") != Some(&format!("Bearer {JWT}")) => {
                Response::json(401, &json!({"detail": "no token"}))
            }
            ("POST", "/api/v2/upload/datasets/") => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                Response::json(
                    200,
                    &json!({"success": true, "data": {"dataset_id": format!("ds{n}")}}),
                )
            }
            ("POST", p) if p.ends_with("/nodes/json") && fail == Fail::Nodes500 => {
                Response::new(500, b"upload worker crashed".to_vec())
            }
            ("POST", p) if p.ends_with("/edges/json") || p.ends_with("/nodes/json") => ok(),
            _ => Response::new(404, Vec::new()),
        }
    })
}

fn personal_key(server: &Server) -> Credentials {
    Credentials {
        server: server.url(),
        secret: Secret::PersonalKey {
            id: "kid".into(),
            secret: "ksecret".into(),
        },
    }
}

/// Builds the synthetic model's site with one prompt and the upload asked
/// for; returns the build's result and the page's report.
fn build(
    dir: &Path,
    request: Option<graphistry::Request>,
) -> (Result<(), PipelineError>, Option<Value>) {
    let model = dir.join("tiny.gguf");
    SyntheticModel::default().writer().write(&model).unwrap();
    let out = dir.join("site");
    let opts = PipelineOptions {
        site: BuildOptions {
            models: vec![model],
            out: out.clone(),
            ..BuildOptions::default()
        },
        inference: Some(InferenceOptions {
            prompts: prompts::select(&["the cat sat on the mat and the dog".into()], None).unwrap(),
            session: SessionOptions {
                threads: 1,
                ..SessionOptions::default()
            },
            ablation: false,
            analytics_device: None,
        }),
        isolation: Default::default(),
        graphistry: request,
        ..Default::default()
    };
    let result = pipeline::build(&opts, &indicatif::ProgressBar::hidden());
    let report = result.as_ref().ok().map(|(summary, _)| {
        let page = std::fs::read_to_string(out.join(&summary.models[0].path)).unwrap();
        let start = page.find(r#"id="ggviz-data">"#).unwrap() + r#"id="ggviz-data">"#.len();
        let end = start + page[start..].find("</script>").unwrap();
        serde_json::from_str(&page[start..end]).unwrap()
    });
    (result.map(|_| ()), report)
}

fn columns(body: &[u8]) -> serde_json::Map<String, Value> {
    serde_json::from_slice::<Value>(body)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn column_len(c: &serde_json::Map<String, Value>, name: &str) -> usize {
    c[name].as_array().unwrap().len()
}

#[test]
fn both_graphs_arrive_whole_and_the_page_links_them() {
    let server = graphistry_mock(Fail::Nothing);
    let dir = tempfile::tempdir().unwrap();
    let request = graphistry::Request {
        mode: Mode::Required,
        credentials: Some(personal_key(&server)),
        // Every pair of heads becomes an edge.
        head_threshold: 0.0,
    };
    let (result, report) = build(dir.path(), Some(request));
    result.unwrap();
    let report = report.unwrap();
    let log = server.log();
    let paths: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.request.method.as_str(), e.request.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET", "/api/v2/auth/pkey/jwt/"),
            ("POST", "/api/v2/upload/datasets/"),
            ("POST", "/api/v2/upload/datasets/ds1/edges/json"),
            ("POST", "/api/v2/upload/datasets/ds1/nodes/json"),
            ("POST", "/api/v2/upload/datasets/"),
            ("POST", "/api/v2/upload/datasets/ds2/edges/json"),
            ("POST", "/api/v2/upload/datasets/ds2/nodes/json"),
        ]
    );
    assert!(log.iter().all(|e| e.status == 200), "{log:?}");
    assert_eq!(
        log[0].request.header("authorization"),
        Some("PersonalKey kid:ksecret")
    );
    for e in &log[1..] {
        assert_eq!(
            e.request.header("authorization"),
            Some("Bearer jwt-for-tests")
        );
    }

    // The architecture graph: bindings, every node and edge, its columns.
    let create: Value = serde_json::from_slice(&log[1].request.body).unwrap();
    assert_eq!(
        create["node_encodings"]["bindings"],
        json!({"node": "n", "node_title": "label", "node_label": "key",
               "node_color": "color", "node_x": "x", "node_y": "y"})
    );
    assert_eq!(
        create["edge_encodings"]["bindings"],
        json!({"source": "s", "destination": "d"})
    );
    let n_nodes = report["graph"]["nodes"]["count"].as_u64().unwrap() as usize;
    let n_edges = report["graph"]["edges"]["count"].as_u64().unwrap() as usize;
    let edges = columns(&log[2].request.body);
    let nodes = columns(&log[3].request.body);
    assert_eq!(column_len(&edges, "s"), n_edges);
    assert_eq!(column_len(&edges, "d"), n_edges);
    assert_eq!(column_len(&edges, "kind"), n_edges);
    for col in [
        "n", "key", "label", "kind", "color", "layer", "head", "tensor", "type", "bytes", "params",
        "pagerank", "x", "y",
    ] {
        assert_eq!(column_len(&nodes, col), n_nodes, "{col}");
    }
    let keys = nodes["key"].as_array().unwrap();
    assert_eq!(keys, report["graph"]["nodes"]["key"].as_array().unwrap());
    let tensor_at = keys
        .iter()
        .position(|k| k == "blk.0.attn_q.weight")
        .unwrap();
    assert_eq!(nodes["tensor"][tensor_at], "blk.0.attn_q.weight");
    assert_eq!(nodes["kind"][tensor_at], "tensor");

    // The head graph: one node per head, every pair above the threshold.
    let n_heads = report["heads"]["count"].as_u64().unwrap() as usize;
    let create: Value = serde_json::from_slice(&log[4].request.body).unwrap();
    assert_eq!(
        create["edge_encodings"]["bindings"]["edge_weight"],
        "similarity"
    );
    assert_eq!(
        create["node_encodings"]["bindings"]["node_color"],
        "cluster"
    );
    let edges = columns(&log[5].request.body);
    let nodes = columns(&log[6].request.body);
    assert_eq!(column_len(&nodes, "n"), n_heads);
    assert_eq!(
        nodes["label"][n_heads - 1],
        format!("L1.H{}", n_heads / 2 - 1)
    );
    assert_eq!(column_len(&edges, "s"), n_heads * (n_heads - 1) / 2);

    // The page's report links both; the secrets are nowhere in the site.
    let links = &report["graphistry"];
    assert_eq!(
        links["architecture"]["url"],
        format!("{}/graph/graph.html?dataset=ds1&play=0", server.url())
    );
    assert_eq!(links["architecture"]["nodes"], n_nodes);
    assert_eq!(
        links["heads"]["url"],
        format!("{}/graph/graph.html?dataset=ds2&play=0", server.url())
    );
    for entry in walk(&dir.path().join("site")) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        assert!(
            !text.contains("ksecret") && !text.contains(JWT),
            "secret in {}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn password_login_posts_the_credentials() {
    let server = graphistry_mock(Fail::Nothing);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    SyntheticModel::default().writer().write(&model).unwrap();
    let report = ggviz::site::model_report(&model).unwrap();
    let credentials = Credentials {
        server: server.url(),
        secret: Secret::Password {
            username: "ada".into(),
            password: "pw".into(),
        },
    };
    let links = graphistry::upload(&credentials, &report, 0.5).unwrap();
    assert_eq!(links.architecture.dataset, "ds1");
    assert_eq!(links.heads, None, "no head graph without inference");
    let log = server.log();
    assert_eq!(log[0].request.path, "/api-token-auth/");
    assert_eq!(log.len(), 4);
}

#[test]
fn failures_warn_or_fail_by_mode() {
    for fail in [Fail::Login401, Fail::Nodes500] {
        let server = graphistry_mock(fail);
        let request = |mode| graphistry::Request {
            mode,
            credentials: Some(personal_key(&server)),
            head_threshold: 0.5,
        };
        // auto: the site is built, without a link.
        let dir = tempfile::tempdir().unwrap();
        let (result, report) = build(dir.path(), Some(request(Mode::Auto)));
        result.unwrap();
        assert!(report.unwrap().get("graphistry").is_none());

        // required: the build fails, naming the step and the status.
        let dir = tempfile::tempdir().unwrap();
        let (result, _) = build(dir.path(), Some(request(Mode::Required)));
        let err = result.unwrap_err();
        let PipelineError::Graphistry { source, .. } = &err else {
            panic!("{err:?}");
        };
        let msg = source.to_string();
        match fail {
            Fail::Login401 => {
                assert_eq!(source.status(), Some(401));
                assert!(msg.contains("log in") && msg.contains("HTTP 401"), "{msg}");
            }
            _ => {
                assert_eq!(source.status(), Some(500));
                assert!(
                    msg.contains("upload the nodes") && msg.contains("HTTP 500"),
                    "{msg}"
                );
            }
        }
        assert!(!msg.contains("ksecret"), "{msg}");
        assert!(
            !dir.path().join("site").exists(),
            "no site after a failed build"
        );
    }
}

#[test]
fn no_flag_means_no_request_and_required_needs_credentials() {
    let server = graphistry_mock(Fail::Nothing);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    SyntheticModel::default().writer().write(&model).unwrap();
    let ggviz = |extra: &[&str], creds: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ggviz"));
        cmd.arg("build")
            .arg(&model)
            .args(["--no-inference", "-o"])
            .arg(dir.path().join("site"))
            .args(extra)
            .env("GRAPHISTRY_SERVER", server.url());
        for k in [
            "GRAPHISTRY_USERNAME",
            "GRAPHISTRY_PASSWORD",
            "GRAPHISTRY_PERSONAL_KEY_ID",
            "GRAPHISTRY_PERSONAL_KEY_SECRET",
        ] {
            cmd.env_remove(k);
        }
        if creds {
            cmd.env("GRAPHISTRY_PERSONAL_KEY_ID", "kid")
                .env("GRAPHISTRY_PERSONAL_KEY_SECRET", "ksecret");
        }
        cmd.output().unwrap()
    };
    let out = ggviz(&[], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.log().is_empty(), "no flag, no request");

    let out = ggviz(&["--graphistry"], false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.log().is_empty(), "no credentials, no request");

    let out = ggviz(&["--graphistry=required"], false);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("GRAPHISTRY_PERSONAL_KEY_ID"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = ggviz(&["--graphistry=required"], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server.log().len(),
        4,
        "login and one dataset (no inference)"
    );
}

#[test]
fn a_failed_upload_is_a_warning_naming_step_and_status() {
    let server = graphistry_mock(Fail::Login401);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    SyntheticModel::default().writer().write(&model).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .arg("build")
        .arg(&model)
        .args(["--no-inference", "--graphistry", "-o"])
        .arg(dir.path().join("site"))
        .env("GRAPHISTRY_SERVER", server.url())
        .env("GRAPHISTRY_PERSONAL_KEY_ID", "kid")
        .env("GRAPHISTRY_PERSONAL_KEY_SECRET", "ksecret")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains("log in") && stderr.contains("HTTP 401"),
        "{stderr}"
    );
    assert!(!stderr.contains("ksecret"), "{stderr}");
    assert!(dir.path().join("site/index.html").is_file());
}
