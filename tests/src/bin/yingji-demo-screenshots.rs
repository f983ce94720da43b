//! Screenshots of a running console, for the README: logs in to the console at the given address
//! (default: the demo's) and saves the main pages into `docs/screenshots/demo-*.png`.
//!
//! ```sh
//! cargo run --release --bin yingji-sim -- demo &          # wait a few minutes into the drill
//! cargo run --release -p yingji-tests --bin yingji-demo-screenshots -- http://127.0.0.1:8080
//! ```

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let browser = yingji_tests::browser::Browser::start()
        .await
        .context("Chromium and ChromeDriver are needed: apt-get install -y chromium chromium-driver")?;
    browser.login(&base, "demo", "yingji-demo").await;
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&docs)?;
    for (page, path) in [("map", "/"), ("dispatch", "/dispatch"), ("incidents", "/incidents"), ("drills", "/drills")] {
        browser.goto(&format!("{base}{path}")).await;
        browser.wait_js(Duration::from_secs(20), "the page", "return document.readyState === 'complete'").await;
        // Let the map draw its first frame from the live data.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let shot = browser.screenshot(&format!("demo-{page}")).await;
        std::fs::copy(&shot, docs.join(format!("demo-{page}.png")))?;
        println!("{}", docs.join(format!("demo-{page}.png")).display());
    }
    browser.close().await;
    Ok(())
}
