//! The console in a real browser (headless Chromium through chromedriver; see
//! `yingji_tests::browser`): logging in; a report published over MQTT appearing on the map and
//! in the feed without a reload; an officer approving a proposal and watching the order go to
//! received and accepted as a team acknowledges; a viewer with no approve button whose API call
//! is refused; `<script>` in a report shown as text and run nowhere; the page working with the
//! network cut off but for the hub. Screenshots of the main pages go to `<target>/screenshots/`.

use std::time::Duration;

use serde_json::json;
use yingji_tests::browser::Browser;
use yingji_tests::{DbKind, Publisher, Subscriber, TestDb, TestHub, TestNode, spawn_embedded_broker};

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

const STOCKPILES: &str = "id,name,lat,lon,items\n\
    s1,Wenzhou depot,27.4,118.4,life_jacket=5000;tent=2000;sandbag=90000;rubber_boat=80;food_ration=90000;drinking_water=90000;quilt=9000\n";

/// A hub with the regions file, teams, and the users `duty` (officer) and `watch` (viewer).
async fn console_hub(broker: &yingji_node::config::MqttUrl, db: &TestDb, dir: &std::path::Path) -> TestHub {
    let mut config = yingji_hub::Config::for_tests(broker.clone(), db.url.clone());
    config.regions = Some(regions_file(dir));
    let hub = TestHub::spawn(config).await;
    hub.user("duty", "officer", "duty-password").await;
    hub.user("watch", "viewer", "watch-password").await;
    let admin = hub.token("admin").await;
    for (kind, body) in [("teams", TEAMS), ("stockpiles", STOCKPILES)] {
        let r = reqwest::Client::new()
            .post(hub.url(&format!("/api/v1/resources/{kind}")))
            .bearer_auth(&admin)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 200, "{kind}");
    }
    hub
}

/// A node's warning and station events straight to the hub (as a node would send them), so
/// that the map has every kind of marker.
async fn warnings_and_stations(broker: &yingji_node::config::MqttUrl) {
    let mut node = Publisher::connect(broker, "browser-fake-node").await;
    let at = chrono::Utc::now().to_rfc3339();
    let events = [
        json!({"id": "gw:warning:1", "node": "gw", "kind": "warning", "at": at, "exercise": false, "region": "330303",
               "body": {"station": "rain-7", "metric": {"kind": "rain", "window_h": 3}, "from": null, "to": "orange",
                        "colour": "orange", "cleared": false, "value": 62.5, "threshold": 50.0, "episode": 1,
                        "rise_m_per_h": null, "observed_at": at}}),
        json!({"id": "gw:device:1", "node": "gw", "kind": "device", "at": at, "exercise": false, "region": "330303",
               "body": {"station": "rain-7", "online": true}}),
        json!({"id": "gw:device:2", "node": "gw", "kind": "device", "at": at, "exercise": false, "region": "330302",
               "body": {"station": "level-2", "online": false, "silent_for_s": 1800}}),
    ];
    for e in events {
        node.publish("yingji/v1/node/gw/event", e.to_string().into_bytes()).await;
    }
    node.wait_acked(WAIT).await;
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
    warnings_and_stations(&broker).await;
    browser
        .wait_js(
            WAIT,
            "the warning and stations on the map",
            "return yingjiMap.markers().filter(m => m.kind === 'warning' || m.kind === 'station').length === 3",
        )
        .await;

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

/// Writes the hub's public key where a node can trust it.
async fn hub_key_file(hub: &TestHub, dir: &std::path::Path) -> std::path::PathBuf {
    let keys: serde_json::Value = reqwest::get(hub.url("/api/v1/keys")).await.expect("GET").json().await.expect("json");
    let public = keys["keys"][0]["public_key"].as_str().expect("key").to_owned();
    let path = dir.join("hub.key");
    std::fs::write(&path, format!("{public}\n")).expect("key file");
    path
}

/// The status shown on the board for `team`'s order, if there is one.
const ORDER_STATUS_OF_T_NEAR: &str = "const row = Array.from(document.querySelectorAll('#orders-body tr[data-order]')) \
     .find(tr => tr.children[1] && tr.children[1].textContent === 't-near'); return row ? row.dataset.status : null";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_approves_and_sees_the_team_acknowledge_while_a_viewer_cannot_approve() {
    let Some(browser) = Browser::start().await else { return };
    let broker = spawn_embedded_broker();
    let db = TestDb::new(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = console_hub(&broker, &db, dir.path()).await;
    let node_db = TestDb::new(DbKind::Sqlite).await;
    let mut node_config = yingji_node::config::Config::for_tests("zj", broker.clone(), node_db.url.clone());
    node_config.hub_key = Some(hub_key_file(&hub, dir.path()).await);
    let node = TestNode::spawn(node_config).await;
    let base = base(&hub);
    // The team listens for its orders on its node's broker.
    let mut team = Subscriber::connect(&broker, "team-t-near", "yingji/v1/dispatch/t-near").await;
    let mut unit = Publisher::connect(&broker, "browser-unit-2").await;
    unit.publish("yingji/v1/report/unit-9", field_report("d1", "flood-board", "330302", 30, "村庄被淹")).await;

    // A viewer sees the proposal but no approve button, and the API refuses the action.
    browser.login(&base, "watch", "watch-password").await;
    browser.goto(&format!("{base}/dispatch")).await;
    browser
        .wait_js(WAIT, "the proposal on the board", "return document.querySelectorAll('article.proposal').length")
        .await;
    let buttons =
        browser.js("return document.querySelectorAll('button.approve, button.reject, button.edit').length").await;
    assert_eq!(buttons, 0, "a viewer gets no buttons");
    let refused = browser
        .js("const p = document.querySelector('article.proposal').dataset.proposal; \
             const csrf = JSON.parse(document.getElementById('page-data').textContent).csrf; \
             return fetch('/api/v1/proposals/' + p + '/approve', {method: 'POST', headers: {'X-CSRF-Token': csrf}}) \
               .then(r => r.status)")
        .await;
    assert_eq!(refused, 403, "the API refuses a viewer");
    browser.client.find(fantoccini::Locator::Id("logout")).await.expect("logout").click().await.expect("click");
    browser.wait_js(WAIT, "the login page", "return document.body.dataset.page === 'login'").await;

    // An officer approves; the board follows the order as the team acknowledges.
    browser.login(&base, "duty", "duty-password").await;
    browser.goto(&format!("{base}/dispatch")).await;
    browser.wait_js(WAIT, "the approve button", "return document.querySelectorAll('button.approve').length").await;
    browser.js("window.__sameDocument = 'board'; return 1").await;
    browser.screenshot("dispatch-proposal").await;
    browser
        .client
        .find(fantoccini::Locator::Css("button.approve"))
        .await
        .expect("approve")
        .click()
        .await
        .expect("click");
    let issued = browser.wait_js(WAIT, "the order on the board", ORDER_STATUS_OF_T_NEAR).await;
    assert!(issued == "issued" || issued == "received", "{issued}");
    let (_, payload) = team.next(WAIT).await.expect("the order reaches the team through its node");
    let keys: serde_json::Value = reqwest::get(hub.url("/api/v1/keys")).await.expect("GET").json().await.expect("json");
    let key = yingji_proto::sign::parse_public_key(keys["keys"][0]["public_key"].as_str().expect("key")).expect("key");
    let order = yingji_proto::sign::verify_order(&payload, &[key], chrono::Utc::now(), &Default::default())
        .expect("the team verifies the hub's signature");
    for (n, status) in ["received", "accepted"].iter().enumerate() {
        let ack = json!({"id": format!("ack-{n}"), "dispatch": order.id, "team": "t-near", "status": status,
                         "at": chrono::Utc::now().to_rfc3339()});
        unit.publish("yingji/v1/ack/t-near", ack.to_string().into_bytes()).await;
        let script = format!("{ORDER_STATUS_OF_T_NEAR}; ");
        browser
            .wait_js(
                WAIT,
                &format!("the order {status} on the board"),
                &format!("return (function () {{ {script} }})() === '{status}'"),
            )
            .await;
    }
    assert_eq!(browser.js("return window.__sameDocument").await, "board", "no reload");
    let class = browser
        .js("const row = document.querySelector('#orders-body tr[data-status=accepted]'); return row.className")
        .await;
    assert!(class.as_str().is_some_and(|c| c.contains("ok")), "an accepted order is shown as fine: {class}");
    browser.screenshot("dispatch").await;

    // Resources and nodes pages, for the record.
    browser.goto(&format!("{base}/resources")).await;
    browser.wait_js(WAIT, "the teams table", "return document.querySelectorAll('#teams tbody tr').length === 3").await;
    let status = browser
        .js("return Array.from(document.querySelectorAll('#teams tbody tr')).map(tr => tr.innerText).join('\\n')")
        .await;
    assert!(status.as_str().is_some_and(|s| s.contains("t-near")));
    browser.screenshot("resources").await;
    browser.goto(&format!("{base}/nodes")).await;
    browser.wait_js(WAIT, "the node in the table", "return document.querySelector('#nodes tbody tr') !== null").await;
    browser.screenshot("nodes").await;
    browser.close().await;
    node.shutdown().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_in_a_report_is_shown_as_text_and_runs_nowhere() {
    let Some(browser) = Browser::start().await else { return };
    let broker = spawn_embedded_broker();
    let db = TestDb::new(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = console_hub(&broker, &db, dir.path()).await;
    let node_db = TestDb::new(DbKind::Sqlite).await;
    let node = TestNode::start("zj", &broker, &node_db).await;
    let base = base(&hub);
    let hostile = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">";
    browser.login(&base, "duty", "duty-password").await;
    browser.goto(&format!("{base}/feed")).await;
    browser.wait_js(WAIT, "the live feed connected", "return document.querySelector('#live.on') !== null").await;
    let mut unit = Publisher::connect(&broker, "browser-unit-3").await;
    unit.publish("yingji/v1/report/unit-x", field_report("x1", "flood-xss", "330302", 1, hostile)).await;
    let check = format!(
        "return Array.from(document.querySelectorAll('#feed-body td.detail')).some(td => td.textContent.includes({}))",
        serde_json::to_string(hostile).expect("json")
    );
    browser.wait_js(WAIT, "the report's text, as text, in the live feed", &check).await;
    let ran = browser
        .js("return [window.__xss === undefined, document.querySelectorAll('img[src=x], #feed-body script').length]")
        .await;
    assert_eq!(ran, json!([true, 0]), "nothing from the field ran or became an element");
    // The server-rendered incident page shows it as text too.
    browser.goto(&format!("{base}/incidents/flood-xss")).await;
    let shown = browser.wait_js(WAIT, "the report's text on the incident page", "return document.querySelector('blockquote.field-text') && document.querySelector('blockquote.field-text').textContent").await;
    assert_eq!(shown, hostile);
    let ran = browser
        .js("return [window.__xss === undefined, document.querySelectorAll('img[src=x], main script').length]")
        .await;
    assert_eq!(ran, json!([true, 0]));
    browser.close().await;
    node.shutdown().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_with_the_network_cut_off_but_for_the_hub() {
    let Some(browser) = Browser::start().await else { return };
    let broker = spawn_embedded_broker();
    let db = TestDb::new(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = console_hub(&broker, &db, dir.path()).await;
    let base = base(&hub);
    // The cut is real: a name outside resolves to nothing and nothing is fetched.
    let outside = browser.client.goto("http://yingji-outside.invalid/").await;
    let error = outside.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("ERR_PROXY_CONNECTION_FAILED") || error.contains("ERR_NAME_NOT_RESOLVED"), "{error}");

    browser.login(&base, "duty", "duty-password").await;
    for path in ["/", "/feed", "/incidents", "/dispatch", "/resources", "/nodes", "/audit", "/drills"] {
        browser.goto(&format!("{base}{path}")).await;
        browser
            .wait_js(
                WAIT,
                &format!("{path} loaded"),
                "return document.readyState === 'complete' && document.getElementById('page-data') !== null",
            )
            .await;
        let outside = browser
            .js("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin + '/'))")
            .await;
        assert_eq!(outside, json!([]), "{path} asked for nothing but the hub");
    }
    // The map works: polygons and markers drawn, zoom and pan change the view.
    browser.goto(&format!("{base}/")).await;
    browser
        .wait_js(
            WAIT,
            "the map ready",
            "return document.getElementById('map').dataset.ready === '1' && yingjiMap.stats().frames > 0",
        )
        .await;
    let stats = browser.js("return yingjiMap.stats()").await;
    assert_eq!((stats["features"].as_u64(), stats["markers"].as_u64()), (Some(5), Some(3)), "{stats}");
    let before = browser.js("return yingjiMap.toLonLat(640, 400)").await;
    browser.client.find(fantoccini::Locator::Id("zoom-in")).await.expect("zoom in").click().await.expect("click");
    browser
        .wait_js(WAIT, "a redraw after zooming", &format!("return yingjiMap.stats().frames > {}", stats["frames"]))
        .await;
    let first_paint = browser
        .js("const n = performance.getEntriesByType('navigation')[0]; \
             const p = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint'); \
             return {dom_content_loaded_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd, first_contentful_paint_ms: p ? p.startTime : null}")
        .await;
    eprintln!("console map page, navigation timing in headless Chromium (debug build of the hub): {first_paint}");
    assert!(before.is_array());
    // Two tabs' worth of stream clients are fine; the language switch works offline too.
    browser.client.find(fantoccini::Locator::Id("lang-switch")).await.expect("lang").click().await.expect("click");
    browser.wait_js(WAIT, "English", "return document.documentElement.lang === 'en'").await;
    browser.wait_js(WAIT, "the map again", "return window.yingjiMap && yingjiMap.stats().features === 5").await;
    browser.screenshot("map-en").await;
    browser.close().await;
    hub.shutdown().await;
}
