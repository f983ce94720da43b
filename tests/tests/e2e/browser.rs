//! The console in a real browser (headless Chromium through chromedriver; see
//! `yingji_tests::browser`): logging in; a report published over MQTT appearing on the map and
//! in the feed without a reload; an officer approving a proposal and watching the order go to
//! received and accepted as a team acknowledges; a viewer with no approve button whose API call
//! is refused; `<script>` in a report shown as text and run nowhere; the page working with the
//! network cut off but for the hub. Screenshots of the main pages go to `<target>/screenshots/`.

use std::time::Duration;

use serde_json::json;
use yingji_tests::browser::Browser;
use yingji_tests::{DbKind, Publisher, TestDb, TestHub, TestNode, spawn_embedded_broker};

const WAIT: Duration = Duration::from_secs(30);

fn square(code: &str, name: &str, parent: Option<&str>, lon: f64, lat: f64, size: f64) -> serde_json::Value {
    json!({"type": "Feature", "properties": {"code": code, "name": name, "parent": parent},
           "geometry": {"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size],
                                                            [lon, lat + size], [lon, lat]]]}})
}

/// Two neighbouring provinces with a prefecture and two counties.
pub fn regions_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("regions.geojson");
    let features = vec![
        square("330000", "浙江省", None, 118.0, 27.0, 4.0),
        square("330300", "温州市", Some("330000"), 118.0, 27.0, 2.0),
        square("330302", "鹿城区", Some("330300"), 118.0, 27.0, 1.0),
        square("330303", "龙湾区", Some("330300"), 119.0, 27.0, 1.0),
        square("350000", "福建省", None, 114.0, 27.0, 4.0),
    ];
    std::fs::write(&path, json!({"type": "FeatureCollection", "features": features}).to_string()).expect("regions");
    path
}

const TEAMS: &str = "id,name,node,lat,lon,capabilities,size\n\
    t-near,Near flood team,zj,27.6,118.6,flood_rescue;evacuation,30\n\
    t-far,Far flood team,zj,30.5,121.5,flood_rescue,20\n\
    t-nb,Neighbour flood team,fj,27.5,117.5,flood_rescue;evacuation,25\n";

/// A hub with the regions file, teams, and the users `duty` (officer) and `watch` (viewer).
async fn console_hub(broker: &yingji_node::config::MqttUrl, db: &TestDb, dir: &std::path::Path) -> TestHub {
    let mut config = yingji_hub::Config::for_tests(broker.clone(), db.url.clone());
    config.regions = Some(regions_file(dir));
    let hub = TestHub::spawn(config).await;
    hub.user("duty", "officer", "duty-password").await;
    hub.user("watch", "viewer", "watch-password").await;
    let admin = hub.token("admin").await;
    let r = reqwest::Client::new()
        .post(hub.url("/api/v1/resources/teams"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(TEAMS)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    hub
}

fn base(hub: &TestHub) -> String {
    format!("http://{}", hub.http)
}

fn field_report(id: &str, incident: &str, region: &str, deaths: i64, text: &str) -> Vec<u8> {
    json!({"id": id, "incident": incident, "stage": "initial", "hazard": "flood",
           "observed_at": chrono::Utc::now().to_rfc3339(), "location": {"lat": 27.5, "lon": 118.5}, "region": region,
           "figures": {"deaths": deaths, "affected": 1200 + deaths, "injured": 3}, "text": text})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_over_mqtt_appears_on_the_map_and_in_the_feed_without_a_reload() {
    let Some(browser) = Browser::start().await else { return };
    let broker = spawn_embedded_broker();
    let db = TestDb::new(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = console_hub(&broker, &db, dir.path()).await;
    let node_db = TestDb::new(DbKind::Sqlite).await;
    let node = TestNode::start("zj", &broker, &node_db).await;
    let base = base(&hub);

    // Not logged in: the console sends the browser to the login page.
    browser.goto(&format!("{base}/")).await;
    browser.wait_js(WAIT, "the login page", "return document.body.dataset.page === 'login'").await;
    browser.screenshot("login").await;
    browser.login(&base, "duty", "duty-password").await;
    assert_eq!(browser.js("return document.documentElement.lang").await, "zh-CN", "Chinese by default");
    browser
        .wait_js(
            WAIT,
            "the division polygons on the map",
            "return window.yingjiMap && yingjiMap.stats().features === 5",
        )
        .await;
    browser.js("window.__sameDocument = 'yes'; return 1").await;

    // A field unit reports to the node; the node forwards to the hub; the map shows it.
    let mut unit = Publisher::connect(&broker, "browser-unit-1").await;
    unit.publish("yingji/v1/report/unit-1", field_report("r1", "flood-live", "330302", 25, "堤坝渗水")).await;
    browser
        .wait_js(
            WAIT,
            "the incident marker on the map",
            "return yingjiMap.markers().some(m => m.kind === 'incident' && m.id === 'flood-live')",
        )
        .await;
    browser
        .wait_js(WAIT, "the province coloured by its level", "return yingjiMap.stats().levels['330000'] === 4")
        .await;
    assert_eq!(browser.js("return window.__sameDocument").await, "yes", "no reload");
    let frames = browser.js("return yingjiMap.stats().frames").await;
    assert!(frames.as_u64().unwrap_or(0) >= 1, "the map drew");
    browser.screenshot("map").await;

    // The feed: a second report appears in it as it arrives.
    browser.goto(&format!("{base}/feed")).await;
    browser
        .wait_js(
            WAIT,
            "the first report in the feed",
            "return document.querySelectorAll('#feed-body tr.k-report').length >= 1",
        )
        .await;
    browser.js("window.__sameDocument = 'feed'; return 1").await;
    unit.publish("yingji/v1/report/unit-2", field_report("r2", "flood-live", "330303", 2, "道路中断")).await;
    browser
        .wait_js(
            WAIT,
            "the second report in the feed",
            "return Array.from(document.querySelectorAll('#feed-body td.detail')).some(td => td.textContent.includes('道路中断'))",
        )
        .await;
    assert_eq!(browser.js("return window.__sameDocument").await, "feed", "no reload");
    // Filter by kind: only reports stay.
    browser.js("const s = document.getElementById('f-kind'); s.value = 'report'; s.dispatchEvent(new Event('change')); return 1").await;
    browser
        .wait_js(WAIT, "only reports after filtering", "return Array.from(document.querySelectorAll('#feed-body tr')).every(tr => tr.classList.contains('k-report'))")
        .await;
    browser.screenshot("feed").await;

    // The incident's page: statistics, chart and timeline.
    browser.goto(&format!("{base}/incidents/flood-live")).await;
    browser.wait_js(WAIT, "the incident page", "return document.getElementById('timeline') !== null").await;
    let stats = browser.js("return document.getElementById('stats').innerText").await;
    assert!(stats.as_str().is_some_and(|s| s.contains("27")), "deaths rolled up: {stats}");
    assert!(browser.js("return document.querySelectorAll('#chart-people polyline').length").await.as_u64() >= Some(1));
    browser.screenshot("incident").await;

    browser.close().await;
    node.shutdown().await;
    hub.shutdown().await;
}
