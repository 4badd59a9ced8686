//! Site builds on disk: layout, self-containment, CSP, atomicity, theme and
//! content overrides, the CLI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ggviz::site::{BuildOptions, SiteError, build, inline};

fn opts(out: &Path) -> BuildOptions {
    BuildOptions {
        models: vec![common::smollm2()],
        out: out.to_owned(),
        ..BuildOptions::default()
    }
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

/// A page with minijinja's escaped slashes (`&#x2f;`, which browsers read as
/// `/`) written plainly, so links can be compared.
fn read_links(p: impl AsRef<Path>) -> String {
    read(p).replace("&#x2f;", "/")
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).expect("inside").to_owned();
            (rel, std::fs::read(e.path()).expect("read"))
        })
        .collect();
    v.sort();
    v
}

/// The text of every inline executable `<script>` of a page.
fn inline_scripts(html: &str) -> Vec<&str> {
    html.split("<script>")
        .skip(1)
        .map(|s| s.split("</script>").next().expect("closed"))
        .collect()
}

#[test]
fn smollm2_site_has_its_pages_and_each_is_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("site");
    let summary = build(&opts(&out)).unwrap();
    let slug = "smollm2-135m-instruct-q4-1";
    for f in [
        "index.html".to_owned(),
        format!("{slug}/index.html"),
        "docs/about.html".into(),
        "docs/glossary.html".into(),
        "docs/views/quant.html".into(),
        ".nojekyll".into(),
    ] {
        assert!(out.join(&f).is_file(), "{f} missing");
    }
    assert_eq!(summary.models[0].path, format!("{slug}/index.html"));

    // The index links to the page relatively and shows the card's facts.
    let index = read_links(out.join("index.html"));
    assert!(index.contains(&format!("href=\"{slug}/index.html\"")));
    for fact in [
        "llama",
        "134.5M",
        "93.8 MiB",
        "9 heads, 3 KV heads",
        "Q4_1",
        "Q8_0",
    ] {
        assert!(index.contains(fact), "index lacks {fact}");
    }
    let page = read(out.join(slug).join("index.html"));
    // Under 1.5 MB, with nothing loaded from anywhere.
    assert!(page.len() < 1_500_000, "model page is {} bytes", page.len());
    for needle in ["<link", " src=", "url(", "http://", "https://", "@import"] {
        assert!(!page.contains(needle), "page contains {needle:?}");
    }
    assert!(page.contains("connect-src 'none'") && page.contains("default-src 'none'"));

    // Every inline script's hash is in the CSP, and the CSP allows no other.
    let csp = page
        .split("Content-Security-Policy\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let scripts = inline_scripts(&page);
    assert!(scripts.len() >= 10);
    for s in &scripts {
        assert!(
            csp.contains(&inline::script_hash(s)),
            "a script's hash is missing"
        );
    }
    assert_eq!(csp.matches("'sha256-").count(), scripts.len());

    // The data block parses as the report.
    let data = page
        .split("<script type=\"application/json\" id=\"ggviz-data\">")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(report["model"]["hparams"]["n_layer"], 30);
    assert_eq!(report["tensors"]["name"].as_array().unwrap().len(), 272);
}

#[test]
fn report_json_has_the_documented_top_level_shape() {
    let r = ggviz::site::model_report(&common::smollm2()).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    // docs/report.md documents these; a change here is a format change.
    assert_eq!(
        keys(&v),
        [
            "format",
            "generator",
            "model",
            "types",
            "tensors",
            "layers",
            "graph",
            "heads"
        ]
    );
    assert_eq!(
        keys(&v["graph"]),
        [
            "kinds",
            "edge_kinds",
            "nodes",
            "edges",
            "bands",
            "center_x",
            "metrics"
        ]
    );
    assert_eq!(
        keys(&v["heads"]),
        [
            "n_head",
            "n_head_kv",
            "offsets",
            "count",
            "node",
            "kv_group",
            "metrics"
        ]
    );
    assert_eq!(v["heads"]["count"], 270);
    assert_eq!(v["graph"]["nodes"]["x"]["dtype"], "f32");
    let doc = read(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.md"));
    for k in keys(&v)
        .iter()
        .chain(&keys(&v["graph"]))
        .chain(&keys(&v["heads"]))
    {
        assert!(
            doc.contains(&format!("`{k}`")),
            "docs/report.md does not document `{k}`"
        );
    }
}

#[test]
fn a_failed_build_leaves_the_previous_site_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("site");
    build(&opts(&out)).unwrap();
    let before = files(&out);

    let theme = dir.path().join("broken-theme/templates");
    std::fs::create_dir_all(&theme).unwrap();
    std::fs::write(
        theme.join("model.html"),
        "{% extends \"base.html\" %}{% block body %}{% if %}{% endblock %}",
    )
    .unwrap();
    let err = build(&BuildOptions {
        theme: Some(dir.path().join("broken-theme")),
        ..opts(&out)
    })
    .unwrap_err();
    assert!(
        matches!(err, SiteError::Template { ref template, .. } if template == "model.html"),
        "{err:?}"
    );
    assert_eq!(files(&out), before);
    // No temporary folder is left beside the site.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // A model that is not GGUF fails the same way.
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"not a gguf file at all").unwrap();
    let err = build(&BuildOptions {
        models: vec![common::smollm2(), bad],
        ..opts(&out)
    })
    .unwrap_err();
    assert!(matches!(err, SiteError::Model { .. }), "{err:?}");
    assert_eq!(files(&out), before);
}

#[test]
fn theme_files_override_the_default_by_path_and_views_can_be_added() {
    let dir = tempfile::tempdir().unwrap();
    let theme = dir.path().join("theme");
    std::fs::create_dir_all(theme.join("css")).unwrap();
    std::fs::create_dir_all(theme.join("js/views")).unwrap();
    std::fs::write(
        theme.join("css/base.css"),
        "/* my-theme */ body { color: #123456 }",
    )
    .unwrap();
    std::fs::write(
        theme.join("js/views/zz-notes.js"),
        "window.__myView = true;",
    )
    .unwrap();
    let out = dir.path().join("site");
    let summary = build(&BuildOptions {
        theme: Some(theme),
        ..opts(&out)
    })
    .unwrap();
    let index = read(out.join("index.html"));
    assert!(index.contains("/* my-theme */"));
    let page = read(out.join(&summary.models[0].path));
    assert!(page.contains("/* my-theme */"));
    // The added view is inlined after the default views and its hash allowed.
    let scripts = inline_scripts(&page);
    let at = scripts
        .iter()
        .position(|s| *s == "window.__myView = true;")
        .unwrap();
    let quant = scripts
        .iter()
        .position(|s| s.contains("id: 'quant'"))
        .unwrap();
    assert!(at > quant);
    assert!(page.contains(&inline::script_hash("window.__myView = true;")));
    // Files not overridden still come from the default theme.
    assert!(page.contains("GraphRenderer"));
}

#[test]
fn content_pages_are_added_and_replace_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir_all(content.join("views")).unwrap();
    std::fs::create_dir_all(content.join("notes")).unwrap();
    std::fs::write(
        content.join("about.md"),
        "+++\ntitle = \"About us\"\n+++\nOur *own* words.\n",
    )
    .unwrap();
    std::fs::write(
        content.join("views/quant.md"),
        "+++\ntitle = \"Our quantization notes\"\nview = \"quant\"\n+++\nCustom explanation.\n",
    )
    .unwrap();
    std::fs::write(
        content.join("notes/team.md"),
        "+++\ntitle = \"Team notes\"\norder = 5\n+++\nHello.\n",
    )
    .unwrap();
    let out = dir.path().join("site");
    let summary = build(&BuildOptions {
        content: Some(content),
        title: Some("Our models".into()),
        ..opts(&out)
    })
    .unwrap();
    let about = read(out.join("docs/about.html"));
    assert!(about.contains("<em>own</em>") && about.contains("About us"));
    let notes = read_links(out.join("docs/notes/team.html"));
    assert!(
        notes.contains("href=\"../../index.html\""),
        "nested pages link back relatively"
    );
    let index = read_links(out.join("index.html"));
    assert!(index.contains("Our models") && index.contains("href=\"docs/notes/team.html\""));
    let page = read(out.join(&summary.models[0].path));
    assert!(page.contains("Custom explanation.") && page.contains("data-view=\"quant\""));
    assert!(!page.contains("Quantized types store weights in"));
}

#[test]
fn the_cli_builds_a_site_and_reports_failures_with_causes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("site");
    let bin = env!("CARGO_BIN_EXE_ggviz");
    let ok = Command::new(bin)
        .args(["build", "-o"])
        .arg(&out)
        .arg(common::smollm2())
        .args(["--title", "CLI site", "--no-inference", "--no-embeddings"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(
        stderr.contains("smollm2-135m-instruct-q4-1/index.html"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("structure only"),
        "--no-inference needs no note"
    );
    assert!(read(out.join("index.html")).contains("CLI site"));

    let missing = Command::new(bin)
        .args(["build", "-o"])
        .arg(&out)
        .arg(dir.path().join("missing.gguf"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("error: cannot build the site") && stderr.contains("Caused by"),
        "{stderr}"
    );
    assert!(
        out.join("index.html").is_file(),
        "the previous site is kept"
    );

    // An analytics device this build or machine does not have is refused
    // (by the argument parser without the cuda feature, at load with it).
    let far = Command::new(bin)
        .args(["build", "-o"])
        .arg(&out)
        .arg(common::smollm2())
        .args(["--prompt", "Hi", "--analytics-device", "cuda:9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&far.stderr);
    if cfg!(any(feature = "cuda", feature = "dynamic-backends")) {
        assert_eq!(far.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("`cuda:9` not found"), "{stderr}");
    } else {
        assert_eq!(far.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--analytics-device") && stderr.contains("built without it"),
            "{stderr}"
        );
    }
    assert!(read(out.join("index.html")).contains("CLI site"));
}
