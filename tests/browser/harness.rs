//! A headless Chromium driven through chromedriver (WebDriver), for tests
//! that open built pages over `file://`.
//!
//! Robust on a shared 2-core CI machine: chromedriver listens on a free
//! port, every wait has a deadline, one browser runs at a time per test
//! binary, and chromedriver's whole process group is killed when the
//! harness is dropped, even after a failed assertion. The network is off:
//! Chromium gets a dead proxy and no background services, and WebDriver
//! switches the page to offline.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// One browser at a time: parallel Chromiums starve a 2-core machine. An
/// async mutex, since each test holds it across its whole run.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long any wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The browser window, in CSS pixels.
pub const WINDOW: (u32, u32) = (1440, 900);

fn program(env: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    for name in names {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{} not found: install Chromium and ChromeDriver (scripts/setup.sh does) or set {env}",
        names[0]
    );
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free local port")
}

/// chromedriver's console log endpoint (`POST /session/{id}/se/log`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// chromedriver's network emulation, used to switch the network off.
#[derive(Debug)]
struct Offline;

impl WebDriverCompatibleCommand for Offline {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/chromium/network_conditions",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"network_conditions": {
            "offline": true, "latency": 0, "download_throughput": 0, "upload_throughput": 0
        }});
        (http::Method::POST, Some(body.to_string()))
    }
}

/// A running chromedriver with one Chromium session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, network off.
    pub async fn start() -> Browser {
        Browser::start_with(true).await
    }

    /// Starts a headless Chromium that may reach loopback servers (for
    /// pages served by `ggviz serve`); other addresses still go to a dead
    /// proxy.
    pub async fn start_online() -> Browser {
        Browser::start_with(false).await
    }

    async fn start_with(offline: bool) -> Browser {
        let turn = ONE_AT_A_TIME.lock().await;
        let chromium = program(
            "GGVIZ_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let chromedriver = program("GGVIZ_CHROMEDRIVER", &["chromedriver"]);
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop can end it with its browsers.
            .process_group(0)
            .spawn()
            .expect("cannot start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let start = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(
                start.elapsed() < DEADLINE,
                "chromedriver did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--enable-unsafe-swiftshader".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-default-apps".into(),
            "--disable-extensions".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--hide-scrollbars".into(),
            "--proxy-server=127.0.0.1:9".into(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let browser = Browser {
            client: ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .expect("cannot start a Chromium session"),
            driver,
            _profile: profile,
            _turn: turn,
        };
        if offline {
            browser
                .client
                .issue_cmd(Offline)
                .await
                .expect("cannot switch the network off");
        }
        browser
            .client
            .set_window_size(WINDOW.0, WINDOW.1)
            .await
            .expect("cannot size the window");
        browser
    }

    /// Opens a local file.
    pub async fn open(&self, path: &Path, hash: &str) {
        let url = url::Url::from_file_path(path).expect("absolute path");
        self.client
            .goto(&format!("{url}{hash}"))
            .await
            .expect("cannot open the page");
    }

    /// Opens a URL (a page served over HTTP).
    pub async fn open_url(&self, url: &str) {
        self.client.goto(url).await.expect("cannot open the page");
    }

    /// Runs `js` (a function body; `arguments` as usual) and returns its value.
    pub async fn js(&self, js: &str) -> Value {
        self.client
            .execute(js, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{js}"))
    }

    /// Waits until `js` returns true.
    pub async fn wait_for(&self, what: &str, js: &str) {
        let start = Instant::now();
        loop {
            if self.js(js).await == Value::Bool(true) {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The console messages since the last call, as (level, message).
    pub async fn console(&self) -> Vec<(String, String)> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("cannot read the browser console");
        log.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or_default().to_owned(),
                            e["message"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails if the console has any error or warning since the last call,
    /// ignoring SwiftShader's notes about its own speed.
    pub async fn assert_clean_console(&self) {
        let bad: Vec<_> = self
            .console()
            .await
            .into_iter()
            .filter(|(level, msg)| {
                level != "INFO" && level != "DEBUG" && !msg.contains("GL Driver Message")
            })
            .collect();
        assert!(bad.is_empty(), "console errors: {bad:#?}");
    }

    /// The page fetched nothing (no resource entries at all) and logged no
    /// error.
    pub async fn assert_offline_and_clean(&self) {
        let fetched = self
            .js("return performance.getEntriesByType('resource').length")
            .await;
        assert_eq!(fetched, Value::from(0), "resources fetched");
        self.assert_clean_console().await;
    }

    /// Saves a screenshot as `artifacts/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/screenshots");
        std::fs::create_dir_all(&dir).expect("artifacts dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Presses and releases `key` (a char or a WebDriver key code).
    pub async fn press(&self, key: char) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.expect("key press");
    }

    /// Clicks with the mouse at a point of the window (CSS pixels).
    pub async fn click_at(&self, x: f64, y: f64) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let mouse = MouseActions::new("mouse".into())
            .then(PointerAction::MoveTo {
                duration: None,
                x: x.round(),
                y: y.round(),
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        self.client
            .perform_actions(mouse)
            .await
            .expect("mouse click");
    }

    /// Moves the mouse to a point of the window (CSS pixels).
    pub async fn hover_at(&self, x: f64, y: f64) {
        use fantoccini::actions::{InputSource, MouseActions, PointerAction};
        let mouse = MouseActions::new("mouse".into()).then(PointerAction::MoveTo {
            duration: None,
            x: x.round(),
            y: y.round(),
        });
        self.client
            .perform_actions(mouse)
            .await
            .expect("mouse move");
    }

    /// The page's location hash.
    pub async fn hash(&self) -> String {
        self.js("return location.hash")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Ends the session and chromedriver.
    pub async fn finish(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        self.kill();
    }

    fn kill(&mut self) {
        // The negative id names the process group: chromedriver and the
        // browser processes it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}
