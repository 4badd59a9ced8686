//! Projects: `ggviz.toml`, `ggviz init`, and what `ggviz serve` writes and
//! sends. The browser side of `serve` (live reload, the error overlay) is
//! in `tests/browser/serve.rs`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ggviz::commands::init::{InitOptions, init};
use ggviz::commands::serve::{self, Rebuilder, ServeOptions};
use ggviz::config::{self, Overrides, Project};
use ggviz::gguf::synthetic::SyntheticModel;

const BIN: &str = env!("CARGO_BIN_EXE_ggviz");

/// A starter project in `dir` around a synthetic model.
fn project(dir: &Path, inference: bool) -> PathBuf {
    let model = dir.join("synthetic.gguf");
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(&model, SyntheticModel::default().writer().to_bytes()).expect("model");
    init(&InitOptions {
        dir: dir.to_owned(),
        models: vec!["synthetic.gguf".into()],
        force: true,
        ..InitOptions::default()
    })
    .expect("init");
    let config = dir.join("ggviz.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    if !inference {
        text = text.replace("no_inference = false", "no_inference = true");
    }
    // One thread, one short prompt: quick on a busy machine.
    text = text.replace("# threads = 4", "threads = 1");
    text = text.replace(
        "# prompts = [\"The capital of France is\"]",
        "prompts = [\"the cat sat on the mat\"]",
    );
    std::fs::write(&config, text).expect("config");
    model
}

/// Every file under `dir`, relative, with its bytes, sorted.
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

#[test]
fn init_then_build_works_with_no_other_argument() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("proj");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        tmp.path().join("synthetic.gguf"),
        SyntheticModel::default().writer().to_bytes(),
    )
    .expect("model");
    let init = Command::new(BIN)
        .args(["init", "proj", "--model", "../synthetic.gguf"])
        .current_dir(tmp.path())
        .output()
        .expect("runs");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    for f in [
        "ggviz.toml",
        "content/about-these-models.md",
        ".gitignore",
        ".github/workflows/pages.yml",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let again = Command::new(BIN)
        .args(["init", "proj"])
        .current_dir(tmp.path())
        .output()
        .expect("runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));

    let build = Command::new(BIN)
        .arg("build")
        .current_dir(&dir)
        .env("OMP_WAIT_POLICY", "passive")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(build.status.success(), "{stderr}");
    let page = std::fs::read_to_string(dir.join("site/synthetic/index.html")).expect("model page");
    // The run happened: the page has the behaviour section.
    assert!(page.contains("\"behaviour\":{"), "no behaviour on the page");
    let about =
        std::fs::read_to_string(dir.join("site/docs/about-these-models.html")).expect("example");
    assert!(about.contains("About these models"));
    let index = std::fs::read_to_string(dir.join("site/index.html")).expect("index");
    assert!(index.contains("My models"));
}

#[test]
fn a_misspelt_key_fails_the_build_naming_the_file_the_line_and_the_valid_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    project(dir, false);
    let config = dir.join("ggviz.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, text.replace("max_tokens = 512", "max_token = 512")).expect("typo");
    let line = std::fs::read_to_string(&config)
        .expect("config")
        .lines()
        .position(|l| l.starts_with("max_token "))
        .expect("typo line")
        + 1;
    let out = Command::new(BIN)
        .arg("build")
        .current_dir(dir)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("ggviz.toml:{line}:1: unknown key `max_token`")),
        "{stderr}"
    );
    assert!(
        stderr.contains("`max_tokens`") && stderr.contains("`threads`"),
        "{stderr}"
    );
    assert!(!dir.join("site").exists());

    // --config names another file; flags override it.
    std::fs::write(&config, text).expect("fixed");
    std::fs::rename(&config, dir.join("other.toml")).expect("move");
    let out = Command::new(BIN)
        .args([
            "build",
            "--config",
            "other.toml",
            "--out",
            "elsewhere",
            "--title",
            "Flag title",
        ])
        .current_dir(dir)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = std::fs::read_to_string(dir.join("elsewhere/index.html")).expect("index");
    assert!(index.contains("Flag title"));
    let no_models = Command::new(BIN)
        .args(["build", "--no-inference"])
        .current_dir(dir)
        .output()
        .expect("runs");
    assert!(!no_models.status.success());
    assert!(String::from_utf8_lossy(&no_models.stderr).contains("no models"));
}

fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = Vec::new();
    s.read_to_end(&mut response).expect("response");
    let text = String::from_utf8(response).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    // Small pages may come chunked: the tests only look for substrings.
    (head.to_owned(), body.to_owned())
}

#[test]
fn serve_writes_what_build_writes_and_adds_live_reload_only_on_the_wire() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    project(dir, false);
    let config = dir.join("ggviz.toml");

    let project_file = Project::discover(Some(&config)).expect("project");
    let built = dir.join("built");
    let resolved = config::resolve(
        project_file.as_ref(),
        &Overrides {
            out: Some(built.clone()),
            ..Overrides::default()
        },
    )
    .expect("resolves");
    ggviz::pipeline::build_named(
        &resolved.pipeline,
        &resolved.names,
        &indicatif::ProgressBar::hidden(),
    )
    .expect("build");

    let server = serve::start(
        ServeOptions {
            config: Some(config.clone()),
            overrides: Overrides::default(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            isolation: ggviz::worker::Isolation::Worker(ggviz::worker::WorkerCommand {
                exe: env!("CARGO_BIN_EXE_ggviz").into(),
                args: Vec::new(),
            }),
            embeddings: Some(Default::default()),
        },
        Arc::new(|_| {}),
    )
    .expect("serves");
    let site = dir.join("site");
    assert_eq!(
        files(&site),
        files(&built),
        "serve's site differs from build's"
    );

    for path in ["/", "/synthetic/", "/docs/about-these-models.html"] {
        let (head, body) = get(server.addr, path);
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            body.contains(serve::LIVE_RELOAD_PATH),
            "{path}: no live reload"
        );
        assert!(
            body.contains(&format!(
                "connect-src ws://{}{}",
                server.addr,
                serve::LIVE_RELOAD_PATH
            )),
            "{path}: CSP not opened to the WebSocket"
        );
    }
    for (rel, bytes) in files(&site) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(serve::LIVE_RELOAD_PATH),
            "{} on disk has it",
            rel.display()
        );
    }
    let (head, _) = get(server.addr, "/../ggviz.toml");
    assert!(!head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, _) = get(server.addr, "/missing.html");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    server.stop();
}

/// Marks `path` as modified now (as saving it would).
fn touch(path: &Path) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(SystemTime::now() + Duration::from_secs(2))
        .expect("set mtime");
}

#[test]
fn a_content_edit_re_renders_without_running_the_model_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let model = project(dir, true);
    let progress = indicatif::ProgressBar::hidden();
    let mut r = Rebuilder::new(Some(dir.join("ggviz.toml")), Overrides::default());
    let first = r.rebuild(&progress).expect("first build");
    assert_eq!(first.analysed, vec!["synthetic".to_owned()]);

    let page = dir.join("content/about-these-models.md");
    let text = std::fs::read_to_string(&page).expect("page");
    std::fs::write(&page, text.replace("# About these models", "# Edited")).expect("edit");
    let second = r.rebuild(&progress).expect("second build");
    assert!(
        second.analysed.is_empty(),
        "ran again: {:?}",
        second.analysed
    );
    let html =
        std::fs::read_to_string(dir.join("site/docs/about-these-models.html")).expect("page");
    assert!(html.contains("Edited"));
    let model_page = std::fs::read_to_string(dir.join("site/synthetic/index.html")).expect("model");
    assert!(
        model_page.contains("\"behaviour\":{"),
        "cached behaviour kept"
    );

    touch(&model);
    let third = r.rebuild(&progress).expect("third build");
    assert_eq!(
        third.analysed,
        vec!["synthetic".to_owned()],
        "model changed"
    );

    let config = dir.join("ggviz.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("max_tokens = 512", "max_tokens = 256"),
    )
    .expect("edit");
    let fourth = r.rebuild(&progress).expect("fourth build");
    assert_eq!(
        fourth.analysed,
        vec!["synthetic".to_owned()],
        "settings changed"
    );
}

#[test]
fn serve_refuses_to_upload_to_graphistry_on_every_rebuild() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .args(["serve", "--graphistry", "--port", "0", "missing.gguf"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("does not upload to Graphistry")
            && stderr.contains("ggviz build --graphistry"),
        "{stderr}"
    );
}
