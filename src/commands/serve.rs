//! `ggviz serve`: build the site, serve it on loopback, rebuild when a
//! source changes and reload the open pages, as `mdbook serve` and
//! `zola serve` do.
//!
//! Three parts:
//! - the [`Rebuilder`] keeps each model's analysed [`ModelEntry`] in memory,
//!   keyed by the file (path, size, modification time) and the inference
//!   settings, so a content, theme or prompt-free edit re-renders without
//!   running llama.cpp again;
//! - a watcher (notify, debounced) on the project file, the content and
//!   theme folders, the prompt file and the model files triggers rebuilds;
//! - an axum server sends the files of the site folder and, only in what it
//!   sends, adds the live-reload script and lets the page's CSP connect to
//!   its WebSocket. The files on disk stay exactly what `build` writes.
//!
//! A failed rebuild leaves the last good site on disk (the site is swapped
//! in atomically) and is shown in the open pages as an overlay, which the
//! next good build clears by reloading them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use indicatif::ProgressBar;
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};
use tokio::sync::broadcast;

use crate::analysis::embeddings::EmbeddingOptions;
use crate::config::{self, ConfigError, Overrides, Project, Resolved};
use crate::fetch::{self, FetchError};
use crate::pipeline::{self, InferenceOptions, PipelineError};
use crate::site::{self, BuildSummary, ModelEntry, Site, inline};
use crate::worker::Isolation;

/// The WebSocket the served pages connect to.
pub const LIVE_RELOAD_PATH: &str = "/__ggviz/livereload";

/// How long the watcher waits for a burst of writes to settle.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// The script `serve` adds to every HTML page it sends.
pub const LIVE_RELOAD_SCRIPT: &str = include_str!("livereload.js");

/// What `serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `--config FILE`; `None`: `./ggviz.toml` if there is one.
    pub config: Option<PathBuf>,
    /// The command line's build flags.
    pub overrides: Overrides,
    /// Where to listen (loopback by default); port 0 picks a free one.
    pub bind: SocketAddr,
    /// Where llama.cpp's work runs (the CLI: a worker process).
    pub isolation: Isolation,
    /// The embeddings view's analysis (`--no-embeddings`: `None`,
    /// `--analogies FILE` read into it).
    pub embeddings: Option<EmbeddingOptions>,
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("cannot watch {}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify_debouncer_mini::notify::Error,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("I/O error on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An error and its causes on one line each, as the CLI prints them.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str("\n  Caused by: ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What identifies a model's analysis: the file as it is and the settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    inference: String,
}

impl CacheKey {
    fn of(path: &Path, inference: &Option<InferenceOptions>) -> CacheKey {
        let meta = std::fs::metadata(path).ok();
        CacheKey {
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
            len: meta.as_ref().map_or(0, std::fs::Metadata::len),
            modified: meta.and_then(|m| m.modified().ok()),
            inference: format!("{inference:?}"),
        }
    }
}

/// One good rebuild.
#[derive(Debug)]
pub struct Rebuilt {
    pub resolved: Resolved,
    pub summary: BuildSummary,
    /// Models analysed this time (the others came from the cache).
    pub analysed: Vec<String>,
}

/// Builds the site again and again, analysing only the models whose file or
/// settings changed.
#[derive(Debug, Default)]
pub struct Rebuilder {
    config: Option<PathBuf>,
    overrides: Overrides,
    isolation: Isolation,
    embeddings: Option<EmbeddingOptions>,
    cache: HashMap<CacheKey, ModelEntry>,
}

impl Rebuilder {
    /// A rebuilder for the project file `config` (or `./ggviz.toml`) and
    /// the command line's `overrides`.
    pub fn new(config: Option<PathBuf>, overrides: Overrides) -> Rebuilder {
        Rebuilder {
            config,
            overrides,
            isolation: Isolation::InProcess,
            embeddings: Some(EmbeddingOptions::default()),
            cache: HashMap::new(),
        }
    }

    /// Runs llama.cpp's work where `isolation` says (default: in this
    /// process).
    pub fn with_isolation(mut self, isolation: Isolation) -> Rebuilder {
        self.isolation = isolation;
        self
    }

    /// Analyses the embeddings with `options` (`None`: no embeddings view).
    pub fn with_embeddings(mut self, options: Option<EmbeddingOptions>) -> Rebuilder {
        self.embeddings = options;
        self
    }

    /// Reads the project file again and builds the site.
    pub fn rebuild(&mut self, progress: &ProgressBar) -> Result<Rebuilt, ServeError> {
        let start = Instant::now();
        let project = Project::discover(self.config.as_deref())?;
        let mut resolved = config::resolve(project.as_ref(), &self.overrides)?;
        resolved.pipeline.isolation = self.isolation.clone();
        resolved.pipeline.embeddings = self.embeddings.clone();
        for model in &mut resolved.pipeline.site.models {
            *model = fetch::resolve_model_path(model)?;
        }
        let opts = &resolved.pipeline;
        let site = Site::prepare(&opts.site).map_err(PipelineError::from)?;
        let mut entries: Vec<ModelEntry> = Vec::new();
        let mut analysed = Vec::new();
        let mut used = HashSet::new();
        for (i, path) in opts.site.models.iter().enumerate() {
            let slug = site::slug_for(path, &site::slugs(&entries));
            let key = CacheKey::of(path, &opts.inference);
            let mut entry = match self.cache.get(&key) {
                Some(cached) => ModelEntry {
                    slug,
                    report: cached.report.clone(),
                },
                None => {
                    let (entry, _) = pipeline::analyse_model(path, &slug, opts, progress)?;
                    analysed.push(entry.slug.clone());
                    self.cache.insert(key.clone(), entry.clone());
                    entry
                }
            };
            used.insert(key);
            if let Some(Some(name)) = resolved.names.get(i) {
                pipeline::set_display_name(&mut entry, name);
            }
            entries.push(entry);
        }
        self.cache.retain(|k, _| used.contains(k));
        let summary = site.write(&entries, start).map_err(PipelineError::from)?;
        Ok(Rebuilt {
            resolved,
            summary,
            analysed,
        })
    }
}

/// What the open pages are told.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum LiveMessage {
    /// The site is good and current.
    Ok,
    /// A new site is on disk: reload.
    Reload,
    /// The last rebuild failed; the last good site is still served.
    Error { message: String },
}

impl LiveMessage {
    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{\"type\":\"ok\"}".to_owned())
    }
}

struct Shared {
    out: PathBuf,
    addr: SocketAddr,
    /// The last rebuild's error, shown to pages that connect meanwhile.
    error: Mutex<Option<String>>,
    events: broadcast::Sender<String>,
}

/// The watched files and folders, absolute, and the watcher's roots.
#[derive(Debug, Default, PartialEq)]
struct WatchSet {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

fn absolute(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })
        .map_or_else(|_| p.to_owned(), |d| d.join(name)),
        _ => p.to_owned(),
    }
}

impl WatchSet {
    fn of(paths: &[PathBuf]) -> WatchSet {
        let mut set = WatchSet::default();
        for p in paths {
            if p.is_dir() {
                set.dirs.push(absolute(p));
            } else {
                set.files.push(absolute(p));
            }
        }
        set
    }

    /// The folders to watch: each folder, and the parent of each file (an
    /// editor that saves by renaming would end a watch on the file itself).
    fn roots(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut roots: Vec<(PathBuf, RecursiveMode)> = self
            .dirs
            .iter()
            .map(|d| (d.clone(), RecursiveMode::Recursive))
            .collect();
        for f in &self.files {
            if let Some(parent) = f.parent() {
                let root = (parent.to_owned(), RecursiveMode::NonRecursive);
                if !roots.iter().any(|(p, _)| p == parent) {
                    roots.push(root);
                }
            }
        }
        roots
    }

    fn matches(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f == path) || self.dirs.iter().any(|d| path.starts_with(d))
    }

    /// The size and modification time of every watched file (folders:
    /// every file inside). Reading a file raises watch events too (inotify
    /// reports opens), so a rebuild happens only when this changed; else
    /// each rebuild, reading its sources, would start the next.
    fn fingerprint(&self) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
        let stat = |p: &Path| {
            let meta = std::fs::metadata(p).ok();
            (
                p.to_owned(),
                meta.as_ref().map_or(0, std::fs::Metadata::len),
                meta.and_then(|m| m.modified().ok()),
            )
        };
        let mut fp: Vec<_> = self.files.iter().map(|f| stat(f)).collect();
        for d in &self.dirs {
            let mut inside: Vec<_> = walkdir::WalkDir::new(d)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .map(|e| stat(e.path()))
                .collect();
            inside.sort();
            fp.extend(inside);
        }
        fp
    }
}

/// A running server; dropping it does not stop it, [`Server::stop`] does.
#[derive(Debug)]
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    http: Option<std::thread::JoinHandle<()>>,
    builder: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Stops serving and watching, and waits for both to end.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for handle in [self.http.take(), self.builder.take()]
            .into_iter()
            .flatten()
        {
            let _ = handle.join();
        }
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(h) = self.http.take() {
            let _ = h.join();
        }
    }
}

/// Builds the site, starts serving it and watching its sources. `log`
/// receives one line per rebuild (and per failed one).
pub fn start(
    opts: ServeOptions,
    log: Arc<dyn Fn(String) + Send + Sync>,
) -> Result<Server, ServeError> {
    let mut rebuilder = Rebuilder::new(opts.config.clone(), opts.overrides.clone())
        .with_isolation(opts.isolation.clone())
        .with_embeddings(opts.embeddings.clone());
    let progress = ProgressBar::new_spinner();
    progress.enable_steady_tick(Duration::from_millis(120));
    let first = rebuilder.rebuild(&progress);
    progress.finish_and_clear();
    let first = first?;
    let out = absolute(&first.summary.out);

    let std_listener =
        std::net::TcpListener::bind(opts.bind).map_err(|source| ServeError::Bind {
            addr: opts.bind,
            source,
        })?;
    let io_err = |source| ServeError::Bind {
        addr: opts.bind,
        source,
    };
    std_listener.set_nonblocking(true).map_err(io_err)?;
    let addr = std_listener.local_addr().map_err(io_err)?;
    let (events, _) = broadcast::channel(16);
    let shared = Arc::new(Shared {
        out,
        addr,
        error: Mutex::new(None),
        events,
    });

    let (tx, rx) = std::sync::mpsc::channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(DEBOUNCE, tx).map_err(|source| ServeError::Watch {
        path: PathBuf::from("."),
        source,
    })?;
    let mut watched = WatchSet::default();
    rewatch(&mut debouncer, &mut watched, &first.resolved, &*log);

    let stop = Arc::new(AtomicBool::new(false));
    let builder = {
        let (stop, shared, log) = (Arc::clone(&stop), Arc::clone(&shared), Arc::clone(&log));
        std::thread::spawn(move || {
            let hidden = ProgressBar::hidden();
            let mut built_from = watched.fingerprint();
            while !stop.load(Ordering::SeqCst) {
                let events = match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(Ok(events)) => events,
                    Ok(Err(e)) => {
                        log(format!("watch error: {e}"));
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let Some(changed) = events.iter().find(|e| watched.matches(&e.path)) else {
                    continue;
                };
                let changed = changed.path.display().to_string();
                let now = watched.fingerprint();
                if now == built_from {
                    continue;
                }
                built_from = now;
                let t = Instant::now();
                let message = match rebuilder.rebuild(&hidden) {
                    Ok(done) => {
                        if rewatch(&mut debouncer, &mut watched, &done.resolved, &*log) {
                            built_from = watched.fingerprint();
                        }
                        let analysed = if done.analysed.is_empty() {
                            "no model analysed again".to_owned()
                        } else {
                            format!("analysed {}", done.analysed.join(", "))
                        };
                        log(format!(
                            "{changed} changed: rebuilt in {:.0} ms ({analysed})",
                            t.elapsed().as_secs_f64() * 1e3
                        ));
                        *shared.error.lock().unwrap_or_else(PoisonError::into_inner) = None;
                        LiveMessage::Reload
                    }
                    Err(e) => {
                        let text = error_chain(&e);
                        log(format!(
                            "{changed} changed: rebuild failed, still serving the last good site\nerror: {text}"
                        ));
                        *shared.error.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some(text.clone());
                        LiveMessage::Error { message: text }
                    }
                };
                let _ = shared.events.send(message.json());
            }
        })
    };

    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let http = {
        let shared = Arc::clone(&shared);
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return log(format!("cannot start the server: {e}")),
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => return log(format!("cannot listen on {addr}: {e}")),
                };
                let app = Router::new()
                    .route(LIVE_RELOAD_PATH, get(live_reload))
                    .fallback(get(file))
                    .with_state(shared);
                let served = axum::serve(listener, app).with_graceful_shutdown(async {
                    let _ = shutdown_rx.await;
                });
                if let Err(e) = served.await {
                    log(format!("server error: {e}"));
                }
            });
        })
    };
    Ok(Server {
        addr,
        stop,
        shutdown: Some(shutdown_tx),
        http: Some(http),
        builder: Some(builder),
    })
}

/// Points the watcher at what `resolved` reads, if that changed; says
/// whether it did.
fn rewatch(
    debouncer: &mut notify_debouncer_mini::Debouncer<
        notify_debouncer_mini::notify::RecommendedWatcher,
    >,
    watched: &mut WatchSet,
    resolved: &Resolved,
    log: &dyn Fn(String),
) -> bool {
    let next = WatchSet::of(&resolved.watched());
    if next == *watched {
        return false;
    }
    let watcher = debouncer.watcher();
    for (root, _) in watched.roots() {
        let _ = watcher.unwatch(&root);
    }
    for (root, mode) in next.roots() {
        if let Err(e) = watcher.watch(&root, mode) {
            log(format!("cannot watch {}: {e}", root.display()));
        }
    }
    *watched = next;
    true
}

async fn live_reload(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    ws.on_upgrade(move |socket| live(socket, shared))
}

async fn live(mut socket: WebSocket, shared: Arc<Shared>) {
    let mut events = shared.events.subscribe();
    let now = match shared
        .error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
    {
        Some(message) => LiveMessage::Error { message },
        None => LiveMessage::Ok,
    };
    if socket.send(Message::Text(now.json().into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
}

/// The file of the site folder a request path names, if it stays inside.
fn site_file(out: &Path, uri_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(uri_path)?;
    let mut path = out.to_owned();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if path.is_dir() {
        path.push("index.html");
    }
    Some(path)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The host the page was asked from, if it is a plain `host[:port]`.
fn request_host(headers: &HeaderMap, fallback: SocketAddr) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        })
        .map_or_else(|| fallback.to_string(), str::to_owned)
}

/// A page as `serve` sends it: the live-reload script added before
/// `</body>`, its hash allowed in the CSP, and the CSP's `connect-src`
/// opened to this server's WebSocket only.
pub fn inject_live_reload(html: &str, host: &str) -> String {
    let text = inline::script_text(LIVE_RELOAD_SCRIPT);
    let hash = inline::script_hash(&text);
    let mut page = if html.contains("script-src 'none'") {
        html.replacen("script-src 'none'", &format!("script-src {hash}"), 1)
    } else {
        html.replacen("script-src ", &format!("script-src {hash} "), 1)
    };
    page = page.replacen(
        "connect-src 'none'",
        &format!("connect-src ws://{host}{LIVE_RELOAD_PATH}"),
        1,
    );
    let script = format!("<script>{text}</script>");
    match page.rfind("</body>") {
        Some(at) => page.insert_str(at, &script),
        None => page.push_str(&script),
    }
    page
}

async fn file(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(path) = site_file(&shared.out, uri.path()) else {
        return (StatusCode::BAD_REQUEST, "bad path").into_response();
    };
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    let kind = content_type(&path);
    let no_store = (header::CACHE_CONTROL, "no-store");
    if kind.starts_with("text/html") {
        let html = String::from_utf8_lossy(&bytes);
        let page = inject_live_reload(&html, &request_host(&headers, shared.addr));
        return ([(header::CONTENT_TYPE, kind), no_store], page).into_response();
    }
    ([(header::CONTENT_TYPE, kind), no_store], bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_site() {
        let out = Path::new("/srv/site");
        assert_eq!(
            site_file(out, "/m/index.html"),
            Some(PathBuf::from("/srv/site/m/index.html"))
        );
        assert_eq!(
            site_file(out, "/docs/a%20b.html"),
            Some(PathBuf::from("/srv/site/docs/a b.html"))
        );
        assert_eq!(site_file(out, "/../etc/passwd"), None);
        assert_eq!(site_file(out, "/%2e%2e/etc/passwd"), None);
    }

    #[test]
    fn only_served_pages_get_the_script_and_a_websocket_allowed() {
        let page = format!(
            "<html><head>{}</head><body><p>x</p></body></html>",
            inline::csp_meta(&["'sha256-abc'".to_owned()])
        );
        let served = inject_live_reload(&page, "127.0.0.1:3000");
        let hash = inline::script_hash(&inline::script_text(LIVE_RELOAD_SCRIPT));
        assert!(served.contains(&format!("script-src {hash} 'sha256-abc'")));
        assert!(served.contains("connect-src ws://127.0.0.1:3000/__ggviz/livereload;"));
        assert!(!served.contains("connect-src 'none'"));
        assert!(served.ends_with("</script></body></html>"));
        let no_scripts = format!("<head>{}</head><body></body>", inline::csp_meta(&[]));
        assert!(inject_live_reload(&no_scripts, "h:1").contains(&format!("script-src {hash};")));
    }

    #[test]
    fn a_hostile_host_header_is_not_written_into_the_page() {
        let mut h = HeaderMap::new();
        let fallback: SocketAddr = "127.0.0.1:3000".parse().expect("addr");
        h.insert(header::HOST, "evil\"><script>".parse().expect("header"));
        assert_eq!(request_host(&h, fallback), "127.0.0.1:3000");
        h.insert(header::HOST, "localhost:3000".parse().expect("header"));
        assert_eq!(request_host(&h, fallback), "localhost:3000");
    }
}
