//! A real browser for the console's tests: Debian's headless Chromium, driven through
//! chromedriver (WebDriver) with fantoccini.
//!
//! The browser is started with every network but the loopback cut off (a proxy that does not
//! exist for everything else, and a host resolver that resolves nothing), so a page that needed
//! anything from outside the hub would show it. When `chromium` or `chromedriver` is missing
//! the tests say why and pass, unless `YINGJI_REQUIRE_BROWSER=1` (CI), where they fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// The Chromium binary (Debian's package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The chromedriver binary (Debian's package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// A headless Chromium under chromedriver; closed (and the driver killed) on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// The width and height of the window, and of the screenshots.
pub const WINDOW: (u32, u32) = (1280, 800);

impl Browser {
    /// Starts chromedriver on a free port and a browser session in it; `None` (after saying
    /// why) when the browser is not installed and the run does not require it.
    pub async fn start() -> Option<Browser> {
        let required = std::env::var("YINGJI_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        let chromium = find(&[CHROMIUM, "/usr/bin/chromium-browser"]);
        let driver = find(&[CHROMEDRIVER, "/usr/lib/chromium/chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let why = "chromium or chromedriver is missing (apt-get install chromium chromium-driver)";
            assert!(!required, "YINGJI_REQUIRE_BROWSER=1 but {why}");
            eprintln!("skipped: {why}; CI requires it");
            return None;
        };
        crate::init_logging();
        let port = crate::free_port();
        let log = std::env::var("TEST_LOG").is_ok_and(|v| v == "1");
        let mut child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(if log { Stdio::inherit() } else { Stdio::null() })
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let up = crate::poll_until(Duration::from_secs(20), || async {
            reqwest::get(&status).await.is_ok_and(|r| r.status().is_success()).then_some(())
        })
        .await;
        if up.is_none() {
            let _ = child.kill();
            panic!("chromedriver did not answer on {url}");
        }
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-extensions".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", profile.path().display()),
            // The network is cut off but for the hub on the loopback: everything else goes to a
            // proxy that does not exist, and no name resolves.
            "--proxy-server=http://127.0.0.1:9".to_owned(),
            "--proxy-bypass-list=127.0.0.1;localhost".to_owned(),
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1".to_owned(),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({"binary": chromium.display().to_string(), "args": args}));
        caps.insert("pageLoadStrategy".into(), json!("normal"));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector).capabilities(caps).connect(&url).await {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                panic!("cannot start a Chromium session through chromedriver: {e}");
            }
        };
        // The window is as large as the viewport must be plus the browser's own frame.
        let frame = client
            .execute("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]", vec![])
            .await;
        if let Ok(serde_json::Value::Array(f)) = frame {
            let extra = |i: usize| f.get(i).and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
            let _ = client.set_window_size(WINDOW.0 + extra(0), WINDOW.1 + extra(1)).await;
        }
        Some(Browser { client, driver: child, _profile: profile })
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("GET {url} in the browser: {e}"));
    }

    /// Runs `script` (a function body; `return` a value) in the page.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something truthy (not null, false, 0 or ""), or fails
    /// after `within` saying `what` and what the page showed.
    pub async fn wait_js(&self, within: Duration, what: &str, script: &str) -> serde_json::Value {
        let found = crate::poll_until(within, || async {
            let v = self.client.execute(script, vec![]).await.unwrap_or(serde_json::Value::Null);
            let truthy = match &v {
                serde_json::Value::Null => false,
                serde_json::Value::Bool(b) => *b,
                serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                serde_json::Value::String(s) => !s.is_empty(),
                _ => true,
            };
            truthy.then_some(v)
        })
        .await;
        if let Some(v) = found {
            return v;
        }
        let text = self.js("return document.body ? document.body.innerText.slice(0, 3000) : ''").await;
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        panic!(
            "timed out after {within:?} waiting for {what} at {url}; the page shows:\n{}",
            text.as_str().unwrap_or_default()
        );
    }

    /// Logs in through the login form at `base` and waits for the page after it.
    pub async fn login(&self, base: &str, name: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        let form = self.client.form(Locator::Id("login-form")).await.expect("the login form");
        form.set_by_name("name", name).await.expect("name field");
        form.set_by_name("password", password).await.expect("password field");
        form.submit().await.expect("submit");
        self.wait_js(
            Duration::from_secs(20),
            "the console after login",
            "return document.body && document.body.dataset.page !== 'login' && document.getElementById('page-data') !== null",
        )
        .await;
    }

    /// Saves a PNG of the window as `name.png` under the screenshot directory (in the cargo
    /// target directory); with `YINGJI_UPDATE_SCREENSHOTS=1` also into `docs/screenshots/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).expect("write the screenshot");
        if std::env::var("YINGJI_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
            std::fs::create_dir_all(&docs).expect("docs/screenshots");
            std::fs::write(docs.join(format!("{name}.png")), &png).expect("write docs/screenshots");
        }
        path
    }

    /// Ends the session and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed before `close`: chromedriver's browser would outlive it. Its
        // processes are the ones started with this session's own profile directory.
        let marker = format!("--user-data-dir={}", self._profile.path().display());
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for pid in entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())) {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).split('\0').any(|arg| arg == marker) {
                    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where the tests keep their screenshots: `<target>/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    // Integration tests run from <target>/<profile>/deps/.
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for _ in 0..2 {
        if dir.file_name().is_some_and(|n| n == "deps" || n == "debug" || n == "release") {
            dir.pop();
        }
    }
    dir.join("screenshots")
}
