//! `hf://` models against a local stand-in for the Hugging Face Hub: the
//! download into the cache, its reuse, split models, error answers, a
//! download cut short or corrupted, and `inspect` reading only the header
//! of a 1 GiB file through range requests.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod http_mock;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use ggviz::fetch::{self, FetchError, HfRef, HfSettings};
use ggviz::gguf::synthetic::SyntheticModel;
use ggviz::gguf::{GgmlType, GgufFile, GgufModel, GgufWriter, TensorSpec};
use http_mock::{Body, Content, Request, Response, Server, parse_range};
use sha2::{Digest, Sha256};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const TOKEN: &str = "hf_test_token";

/// How the stand-in misbehaves for one file.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Close the connection halfway through each body.
    Cut,
    /// Announce the SHA-256 of other bytes.
    WrongHash,
}

struct File {
    content: Arc<Content>,
    etag: String,
    fault: Fault,
}

/// A stand-in for the Hub: `/{repo}/resolve/{revision}/{file}` with the
/// headers `hf-hub` reads (ETag, X-Repo-Commit, Content-Range) and ranges;
/// repositories under `private/` want the bearer token.
#[derive(Clone, Default)]
struct Hub {
    files: Arc<Mutex<HashMap<String, File>>>,
}

impl Hub {
    fn add(&self, repo_file: &str, content: Arc<Content>, fault: Fault) {
        let etag = if content.len == content.head.len() as u64 {
            let mut data = content.head.clone();
            if fault == Fault::WrongHash {
                data.push(0);
            }
            hex(&Sha256::digest(&data))
        } else {
            "sparse-file".to_owned()
        };
        let (repo, file) = repo_file.rsplit_once("::").unwrap();
        self.files.lock().unwrap().insert(
            format!("/{repo}/resolve/main/{file}"),
            File {
                content,
                etag,
                fault,
            },
        );
    }

    fn start(&self) -> Server {
        let hub = self.clone();
        Server::start(move |req| hub.answer(req))
    }

    fn answer(&self, req: &Request) -> Response {
        if req.path.starts_with("/private/")
            && req.header("authorization") != Some(&format!("Bearer {TOKEN}"))
        {
            return Response::new(401, b"Invalid credentials".to_vec())
                .header("X-Error-Code", "RepoNotFound");
        }
        let files = self.files.lock().unwrap();
        let Some(file) = files.get(&req.path) else {
            return Response::new(404, b"Entry not found".to_vec())
                .header("X-Error-Code", "EntryNotFound");
        };
        let len = file.content.len;
        let common = |r: Response| {
            r.header("ETag", format!("\"{}\"", file.etag))
                .header("X-Repo-Commit", COMMIT)
                .header("Accept-Ranges", "bytes")
        };
        let Some(range) = req.header("range") else {
            return common(Response {
                status: 200,
                headers: Vec::new(),
                body: Body::Slice {
                    content: file.content.clone(),
                    start: 0,
                    end: len,
                },
                cut_after: None,
            });
        };
        let Some((start, end)) = parse_range(range, len) else {
            return Response::new(416, Vec::new())
                .header("Content-Range", format!("bytes */{len}"));
        };
        let cut = (file.fault == Fault::Cut && end - start > 1).then_some((end - start) / 2);
        common(Response {
            status: 206,
            headers: vec![(
                "Content-Range".into(),
                format!("bytes {start}-{}/{len}", end - 1),
            )],
            body: Body::Slice {
                content: file.content.clone(),
                start,
                end,
            },
            cut_after: cut,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn settings(server: &Server, cache: &Path, token: Option<&str>) -> HfSettings {
    HfSettings {
        endpoint: server.url(),
        cache_dir: cache.to_path_buf(),
        token: token.map(str::to_owned),
    }
}

fn download(reference: &str, settings: &HfSettings) -> Result<std::path::PathBuf, FetchError> {
    let r = HfRef::parse(reference).unwrap();
    fetch::hf::download(&r, settings, &indicatif::ProgressBar::hidden())
}

fn model_bytes() -> Vec<u8> {
    SyntheticModel::default().writer().to_bytes()
}

#[test]
fn downloads_into_the_hf_cache_and_reuses_it() {
    let bytes = model_bytes();
    let hub = Hub::default();
    hub.add(
        "org/tiny::tiny.Q8_0.gguf",
        Content::bytes(bytes.clone()),
        Fault::None,
    );
    let server = hub.start();
    let cache = tempfile::tempdir().unwrap();
    let s = settings(&server, cache.path(), None);

    let path = download("hf://org/tiny/tiny.Q8_0.gguf", &s).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // The standard layout: the snapshot links to a blob named by the ETag.
    let repo = cache.path().join("models--org--tiny");
    assert_eq!(
        path,
        repo.join("snapshots").join(COMMIT).join("tiny.Q8_0.gguf")
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    let blob = std::fs::canonicalize(&path).unwrap();
    assert_eq!(
        blob.parent().unwrap(),
        std::fs::canonicalize(repo.join("blobs")).unwrap()
    );
    let gets = server.log();
    assert!(
        gets.iter()
            .all(|e| e.request.path == "/org/tiny/resolve/main/tiny.Q8_0.gguf"),
        "{gets:?}"
    );
    assert!(server.body_bytes_sent() >= bytes.len() as u64);
    GgufModel::open(&path).unwrap();

    // A second resolution is served by the cache: not one request.
    server.clear_log();
    assert_eq!(download("hf://org/tiny/tiny.Q8_0.gguf", &s).unwrap(), path);
    assert!(server.log().is_empty(), "{:?}", server.log());
}

#[test]
fn split_models_fetch_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    let model = SyntheticModel::default();
    // Two shards made the way gguf-split names and tags them.
    let full = GgufFile::from_bytes("m.gguf", model.writer().to_bytes()).unwrap();
    let names: Vec<String> = full.tensors.iter().map(|t| t.name.clone()).collect();
    let hub = Hub::default();
    let half = names.len() / 2;
    for (no, range) in [(0u16, 0..half), (1, half..names.len())] {
        let mut shard = GgufWriter::new();
        if no == 0 {
            for (k, v) in &full.metadata {
                shard.metadata(k.clone(), v.clone());
            }
        }
        shard.metadata("split.no", no);
        shard.metadata("split.count", 2u16);
        shard.metadata("split.tensors.count", names.len() as i32);
        for name in &names[range] {
            let t = full.tensor(name).unwrap();
            shard.raw_tensor(TensorSpec {
                name: name.clone(),
                dims: t.dims.clone(),
                type_id: t.ggml_type.id(),
                data: full.tensor_data(t).unwrap().to_vec(),
                offset: None,
            });
        }
        let name = format!("m-{:05}-of-00002.gguf", no + 1);
        hub.add(
            &format!("org/split::q8/{name}"),
            Content::bytes(shard.to_bytes()),
            Fault::None,
        );
        shard.write(dir.path().join(name)).unwrap();
    }
    let local = GgufModel::open(dir.path().join("m-00001-of-00002.gguf")).unwrap();
    let server = hub.start();
    let cache = tempfile::tempdir().unwrap();
    let path = download(
        "hf://org/split/q8/m-00002-of-00002.gguf",
        &settings(&server, cache.path(), None),
    )
    .unwrap();
    assert!(
        path.ends_with("q8/m-00002-of-00002.gguf"),
        "{}",
        path.display()
    );
    assert!(path.with_file_name("m-00001-of-00002.gguf").is_file());
    let model = GgufModel::open(&path).unwrap();
    assert_eq!(model.shards().len(), 2);
    assert_eq!(model.tensors().len(), local.tensors().len());
}

#[test]
fn missing_file_and_missing_token_are_clear_errors() {
    let hub = Hub::default();
    hub.add(
        "private/gated::m.gguf",
        Content::bytes(model_bytes()),
        Fault::None,
    );
    let server = hub.start();
    let cache = tempfile::tempdir().unwrap();

    let err = download(
        "hf://org/none/m.gguf",
        &settings(&server, cache.path(), None),
    )
    .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("hf://org/none/m.gguf") && msg.contains("does not exist"),
        "{msg}"
    );

    let err = download(
        "hf://private/gated/m.gguf",
        &settings(&server, cache.path(), None),
    )
    .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(err.to_string().contains("HF_TOKEN"), "{err}");

    let ok = download(
        "hf://private/gated/m.gguf",
        &settings(&server, cache.path(), Some(TOKEN)),
    )
    .unwrap();
    GgufModel::open(ok).unwrap();
    // The token goes only where it was asked for, as a bearer token.
    let log = server.log();
    let last = log.last().unwrap();
    assert_eq!(
        last.request.header("authorization"),
        Some("Bearer hf_test_token")
    );
}

#[test]
fn a_download_cut_short_is_never_used() {
    let bytes = model_bytes();
    let hub = Hub::default();
    hub.add("org/cut::m.gguf", Content::bytes(bytes.clone()), Fault::Cut);
    hub.add(
        "org/bad::m.gguf",
        Content::bytes(bytes.clone()),
        Fault::WrongHash,
    );
    let server = hub.start();
    let cache = tempfile::tempdir().unwrap();
    let s = settings(&server, cache.path(), None);

    let err = download("hf://org/cut/m.gguf", &s).unwrap_err();
    assert!(matches!(err, FetchError::Request { .. }), "{err:?}");
    let snapshot = cache.path().join("models--org--cut/snapshots").join(COMMIT);
    assert!(
        !snapshot.join("m.gguf").exists(),
        "a cut download was linked"
    );

    let err = download("hf://org/bad/m.gguf", &s).unwrap_err();
    assert!(matches!(err, FetchError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    let snapshot = cache.path().join("models--org--bad/snapshots").join(COMMIT);
    assert!(
        !snapshot.join("m.gguf").exists(),
        "a corrupt download was kept"
    );
    // Nothing usable is left behind: the next attempt asks the server again.
    server.clear_log();
    download("hf://org/bad/m.gguf", &s).unwrap_err();
    assert!(!server.log().is_empty());
}

/// A 1 GiB file: a synthetic model's header and tensors, then one 1 GiB
/// tensor whose bytes the server makes up as zeros.
fn sparse_gib_model() -> Arc<Content> {
    let mut w = SyntheticModel::default().writer();
    let (bytes, spans) = w.to_bytes_with_layout();
    let data_start = spans.iter().find(|s| s.field == "padding").unwrap().end;
    let used = (bytes.len() as u64 - data_start).div_ceil(32) * 32;
    w.raw_tensor(TensorSpec {
        name: "ggviz_padding.weight".into(),
        dims: vec![1 << 28],
        type_id: GgmlType::F32.id(),
        data: Vec::new(),
        offset: Some(used),
    });
    let head = w.to_bytes();
    let len = head.len() as u64 + (1 << 30);
    Arc::new(Content { head, len })
}

#[test]
fn inspect_reads_a_1_gib_remote_file_with_a_few_mib() {
    let content = sparse_gib_model();
    let len = content.len;
    let hub = Hub::default();
    hub.add("org/big::big.gguf", content, Fault::None);
    let server = hub.start();
    let cache = tempfile::tempdir().unwrap();
    let r = HfRef::parse("hf://org/big/big.gguf").unwrap();
    let remote = fetch::remote::open(&r, &settings(&server, cache.path(), None)).unwrap();
    assert_eq!(remote.model.file_size(), len);
    assert!(remote.model.tensor("ggviz_padding.weight").is_some());
    let sent = server.body_bytes_sent();
    assert!(sent < 10 * 1024 * 1024, "{sent} bytes sent");
    assert_eq!(sent, remote.bytes_transferred);
    // One range request of the first slice: the header fits in it.
    assert_eq!((remote.requests, sent), (1, fetch::remote::FIRST_FETCH));
    assert!(
        server
            .log()
            .iter()
            .all(|e| e.request.header("range").is_some()),
        "every request is a range request"
    );

    // The binary, configured through the HF_* variables alone.
    server.clear_log();
    let out = Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .args(["inspect", "hf://org/big/big.gguf", "--json"])
        .env("HF_ENDPOINT", server.url())
        .env("HF_HUB_CACHE", cache.path())
        .env_remove("HF_TOKEN")
        .env("HF_HOME", cache.path().join("home"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["files"][0]["bytes"], len, "{json}");
    assert!(server.body_bytes_sent() < 10 * 1024 * 1024);
    // Nothing was downloaded into the cache.
    assert!(!cache.path().join("models--org--big").exists());
}

#[test]
fn a_header_longer_than_the_first_fetch_takes_more_ranges() {
    // 3 MiB of metadata: past the first 2 MiB range.
    let mut w = SyntheticModel::default().writer();
    w.metadata("ggviz.test.long", "x".repeat(3 << 20));
    let bytes = w.to_bytes();
    let hub = Hub::default();
    hub.add(
        "org/long::long.gguf",
        Content::bytes(bytes.clone()),
        Fault::None,
    );
    let server = hub.start();
    let cache = tempfile::tempdir().unwrap();
    let r = HfRef::parse("hf://org/long/long.gguf").unwrap();
    let remote = fetch::remote::open(&r, &settings(&server, cache.path(), None)).unwrap();
    assert!(remote.requests >= 2, "{}", remote.requests);
    let local = GgufFile::from_bytes("long.gguf", bytes).unwrap();
    assert_eq!(remote.model.metadata(), &local.metadata);
    assert_eq!(remote.model.tensors(), &local.tensors[..]);

    let err = fetch::remote::open(
        &HfRef::parse("hf://org/long/nope.gguf").unwrap(),
        &settings(&server, cache.path(), None),
    )
    .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
}

#[test]
fn the_cli_downloads_hf_models_for_run_and_build() {
    let hub = Hub::default();
    hub.add(
        "org/tiny::tiny.gguf",
        Content::bytes(model_bytes()),
        Fault::None,
    );
    let server = hub.start();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .args(["build", "hf://org/tiny/tiny.gguf", "--no-inference", "-o"])
        .arg(dir.path().join("site"))
        .env("HF_ENDPOINT", server.url())
        .env("HF_HOME", dir.path().join("hf"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.path()
            .join("hf/hub/models--org--tiny/snapshots")
            .join(COMMIT)
            .join("tiny.gguf")
            .is_file()
    );
    assert!(dir.path().join("site/index.html").is_file());
}
