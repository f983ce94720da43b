//! Console benchmark: how fast the pages render and how smooth the map stays with 10,000
//! markers, in headless Chromium (Debian's `chromium` and `chromium-driver`).
//!
//! ```sh
//! cargo run --release -p yingji-tests --bin yingji-bench-console
//! cargo run --release -p yingji-tests --bin yingji-bench-console -- --teams 10000 --frames 300
//! ```
//!
//! A hub (embedded broker, SQLite in a temp dir) gets a synthetic regions file (31 provinces of
//! 3,000 vertices each, 4 counties of 1,000 vertices in each: the map simplifies them for the
//! screen), `--teams` teams spread over China (one marker each) and 30 incidents with levels.
//! The browser logs in and loads each page; the figures are the Navigation Timing and Paint
//! Timing of each page (DOMContentLoaded, first contentful paint), the time until the map has
//! drawn every polygon and marker, and the time of `--frames` map frames drawn while panning
//! and zooming (`yingjiMap.bench`, which times each full redraw with `performance.now()`).

use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use yingji_tests::browser::Browser;
use yingji_tests::{DbKind, Publisher, TestDb, TestHub, spawn_embedded_broker};

/// A deterministic pseudo-random stream (no seed file, no crate).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A wobbly closed ring of `n` points around (lon, lat).
fn ring(lon: f64, lat: f64, rx: f64, ry: f64, n: usize, rng: &mut Lcg) -> Vec<[f64; 2]> {
    let phase = rng.next() * 6.0;
    let mut pts: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            let a = std::f64::consts::TAU * i as f64 / n as f64;
            let r = 1.0 + 0.06 * (a * 7.0 + phase).sin() + 0.02 * (a * 53.0).sin();
            [lon + rx * r * a.cos(), lat + ry * r * a.sin()]
        })
        .collect();
    pts.push(pts[0]);
    pts
}

fn regions(rng: &mut Lcg) -> serde_json::Value {
    let mut features = Vec::new();
    let (cols, rows) = (7, 5);
    let mut p = 0;
    for row in 0..rows {
        for col in 0..cols {
            if p == 31 {
                break;
            }
            p += 1;
            let code = format!("{}0000", 11 + p);
            let (lon, lat) = (78.0 + col as f64 * 8.0, 22.0 + row as f64 * 6.5);
            features.push(
                json!({"type": "Feature", "properties": {"code": code, "name": format!("省 {p}"), "parent": null},
                "geometry": {"type": "Polygon", "coordinates": [ring(lon, lat, 3.9, 3.2, 3000, rng)]}}),
            );
            for c in 0..4 {
                let (dx, dy) = ([-1.8, 1.8, -1.8, 1.8][c], [-1.4, -1.4, 1.4, 1.4][c]);
                let county = format!("{}{:02}01", 11 + p, c + 1);
                features.push(json!({"type": "Feature", "properties": {"code": county, "name": format!("县 {county}"), "parent": code},
                    "geometry": {"type": "Polygon", "coordinates": [ring(lon + dx, lat + dy, 1.5, 1.2, 1000, rng)]}}));
            }
        }
    }
    json!({"type": "FeatureCollection", "features": features})
}

fn parse_args() -> anyhow::Result<(usize, usize)> {
    let (mut teams, mut frames) = (10_000, 300);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--teams" => teams = value()?.parse().context("--teams N")?,
            "--frames" => frames = value()?.parse().context("--frames N")?,
            "--help" | "-h" => {
                println!("yingji-bench-console [--teams N] [--frames N]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown option {other:?} (see --help)"),
        }
    }
    Ok((teams, frames))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (teams, frames) = parse_args()?;
    let mut rng = Lcg(2026);
    let dir = tempfile::tempdir()?;
    let regions_path = dir.path().join("regions.geojson");
    std::fs::write(&regions_path, regions(&mut rng).to_string())?;
    let broker = spawn_embedded_broker();
    let db = TestDb::new(DbKind::Sqlite).await;
    let mut config = yingji_hub::Config::for_tests(broker.clone(), db.url.clone());
    config.regions = Some(regions_path);
    let hub = TestHub::spawn(config).await;
    hub.user("bench", "officer", "bench-password").await;
    let admin = hub.token("admin").await;
    let mut csv = String::from("id,name,node,lat,lon,capabilities,size\n");
    for i in 0..teams {
        let (lat, lon) = (19.0 + rng.next() * 33.0, 75.0 + rng.next() * 56.0);
        csv.push_str(&format!("t{i},Team {i},n{},{lat:.4},{lon:.4},flood_rescue;medical,{}\n", i % 31, 10 + i % 40));
    }
    let r = reqwest::Client::new()
        .post(hub.url("/api/v1/resources/teams"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "importing teams: {}", r.text().await.unwrap_or_default());
    let mut node = Publisher::connect(&broker, "bench-console-node").await;
    for i in 0..30 {
        let county = format!("{}{:02}01", 12 + i % 31, 1 + i % 4);
        let e = json!({"id": format!("bn:report:u:{i}"), "node": "bn", "kind": "report", "at": "2026-09-14T08:00:00+08:00",
            "exercise": false, "region": county, "incident": format!("bench-{i}"),
            "body": {"device": "u", "id": i.to_string(), "incident": format!("bench-{i}"), "stage": "update", "hazard": "flood",
                     "observed_at": "2026-09-14T08:00:00+08:00", "region": county, "figures": {"deaths": 20 + i * 7, "affected": 5000}}});
        node.publish("yingji/v1/node/bn/event", e.to_string().into_bytes()).await;
    }
    node.wait_acked(Duration::from_secs(30)).await;
    yingji_tests::eventually(Duration::from_secs(60), "30 incidents at the hub", || async {
        let i = hub.try_get(&admin, "/api/v1/incidents").await?;
        (i["items"].as_array()?.len() == 30).then_some(())
    })
    .await;

    let browser = Browser::start()
        .await
        .context("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")?;
    let base = format!("http://{}", hub.http);
    browser.login(&base, "bench", "bench-password").await;
    println!(
        "yingji-bench-console: {teams} teams, 30 incidents, 155 division polygons (3,000 / 1,000 vertices before simplification)"
    );
    println!("{:<12} {:>10} {:>10} {:>10}", "page", "DCL ms", "FCP ms", "load ms");
    // Waits for the first contentful paint: headless Chromium may paint after the load event.
    let timing = "const n = performance.getEntriesByType('navigation')[0]; \
        const p = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint'); \
        return p && n.loadEventEnd > 0 ? [n.domContentLoadedEventEnd, p.startTime, n.loadEventEnd] : null";
    for path in ["/", "/feed", "/incidents", "/incidents/bench-3", "/dispatch", "/resources", "/nodes", "/audit"] {
        // Twice: the first load fills the browser's cache of the (immutable) assets.
        for round in 0..2 {
            browser.goto(&format!("{base}{path}")).await;
            let t = browser
                .wait_js(
                    Duration::from_secs(60),
                    "navigation timing",
                    &format!("if (document.readyState !== 'complete') return null; {timing}"),
                )
                .await;
            if round == 1 {
                let v = |i: usize| t[i].as_f64().unwrap_or(-1.0);
                println!("{path:<12} {:>10.0} {:>10.0} {:>10.0}", v(0), v(1), v(2));
            }
        }
    }
    browser.goto(&format!("{base}/")).await;
    let ready = browser
        .wait_js(
            Duration::from_secs(60),
            "the map with every marker",
            "return document.getElementById('map').dataset.ready === '1' && yingjiMap.stats()",
        )
        .await;
    println!(
        "map: {} polygons, {} markers, drawn and ready {:.0} ms after navigation start",
        ready["features"],
        ready["markers"],
        ready["readyMs"].as_f64().unwrap_or(-1.0)
    );
    for (what, setup) in [
        ("whole map", "document.getElementById('zoom-reset').click(); return 1"),
        ("zoomed in 4x", "for (let i = 0; i < 3; i++) document.getElementById('zoom-in').click(); return 1"),
    ] {
        browser.js(setup).await;
        let b = browser.js(&format!("return yingjiMap.bench({frames})")).await;
        println!(
            "map frames, {what}: {} frames, {} markers ({} visible): mean {:.2} ms, p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            b["frames"],
            b["markers"],
            b["visible"],
            b["mean"].as_f64().unwrap_or(-1.0),
            b["p50"].as_f64().unwrap_or(-1.0),
            b["p95"].as_f64().unwrap_or(-1.0),
            b["max"].as_f64().unwrap_or(-1.0)
        );
    }
    let a = browser.js("document.getElementById('zoom-reset').click(); return yingjiMap.animate(240)").await;
    println!(
        "map animation, whole map: {} frames panned with requestAnimationFrame at {:.1} frames/s ({:.1} ms a frame)",
        a["frames"],
        a["fps"].as_f64().unwrap_or(-1.0),
        a["ms_per_frame"].as_f64().unwrap_or(-1.0)
    );
    browser.screenshot("bench-map-10000").await;
    browser.close().await;
    hub.shutdown().await;
    Ok(())
}
