//! Regions and the device registry through a running node: reports without a region are placed
//! by point in polygon, points outside every division are kept as `unknown`, and readings from
//! unregistered devices are kept, flagged and counted.

use std::time::Duration;

use serde_json::json;
use yingji_node::config::Config;
use yingji_tests::{DbKind, Publisher, TestDb, TestNode, eventually, get_json, spawn_embedded_broker};

fn square(code: &str, parent: Option<&str>, x0: f64, y0: f64, size: f64) -> serde_json::Value {
    let ring = json!([[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]);
    json!({"type": "Feature", "properties": {"code": code, "name": format!("n{code}"), "parent": parent},
           "geometry": {"type": "Polygon", "coordinates": [ring]}})
}

fn report_at(id: &str, lat: f64, lon: f64) -> Vec<u8> {
    json!({"id": id, "incident": "placement", "stage": "initial", "hazard": "flood",
           "observed_at": "2026-09-14T08:00:00+08:00", "location": {"lat": lat, "lon": lon}, "figures": {"affected": 1}})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_placed_and_unregistered_readings_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let regions = dir.path().join("regions.geojson");
    let features = vec![
        square("330000", None, 118.0, 27.0, 4.0),
        square("330300", Some("330000"), 120.0, 27.0, 2.0),
        square("330302", Some("330300"), 120.0, 27.0, 1.0),
    ];
    std::fs::write(&regions, json!({"type": "FeatureCollection", "features": features}).to_string()).expect("regions");
    let devices = dir.path().join("devices.csv");
    std::fs::write(
        &devices,
        "id,kind,name,lat,lon,region,warning_level,guarantee_level\nknown-gauge,water_level_gauge,Gauge,27.5,120.5,330302,4.5,5.2\n",
    )
    .expect("devices");

    let broker = spawn_embedded_broker();
    let db = TestDb::new(DbKind::Sqlite).await;
    let mut config = Config::for_tests("placement", broker.clone(), db.url.clone());
    config.regions = Some(regions);
    config.devices = Some(devices);
    let node = TestNode::spawn(config).await;
    let mut publisher = Publisher::connect(&broker, "placement-pub").await;

    publisher.publish("yingji/v1/report/u1", report_at("in-county", 27.5, 120.5)).await;
    publisher.publish("yingji/v1/report/u1", report_at("in-prefecture", 28.5, 120.5)).await;
    publisher.publish("yingji/v1/report/u1", report_at("outside", 10.0, 10.0)).await;
    let t0 = yingji_tests::recent_t0();
    let pack =
        |device: &str| format!(r#"[{{"bn":"{device}:","bt":{t0},"n":"water_level","u":"m","v":4.1}}]"#).into_bytes();
    publisher.publish("yingji/v1/senml/known-gauge", pack("known-gauge")).await;
    publisher.publish("yingji/v1/senml/stray-gauge", pack("stray-gauge")).await;
    publisher.wait_acked(Duration::from_secs(30)).await;

    let reports = eventually(Duration::from_secs(30), "three reports", || async {
        let page = get_json(&node.url("/api/v1/reports?incident=placement")).await;
        (page["items"].as_array()?.len() == 3).then_some(page)
    })
    .await;
    let placed: Vec<(String, String, String)> = reports["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_owned(),
                r["region"].as_str().unwrap_or_default().to_owned(),
                r["region_source"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> =
        [("in-county", "330302", "located"), ("in-prefecture", "330300", "located"), ("outside", "unknown", "unknown")]
            .iter()
            .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
            .collect();
    assert_eq!(placed, want);

    let readings = eventually(Duration::from_secs(30), "two readings", || async {
        let page = get_json(&node.url("/api/v1/readings?name=water_level")).await;
        (page["items"].as_array()?.len() == 2).then_some(page)
    })
    .await;
    let flags: Vec<(String, bool)> = readings["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| (r["device"].as_str().unwrap_or_default().to_owned(), r["registered"].as_bool().unwrap_or_default()))
        .collect();
    assert_eq!(flags, vec![("known-gauge".to_owned(), true), ("stray-gauge".to_owned(), false)]);

    let devices = get_json(&node.url("/api/v1/devices")).await;
    let known =
        devices["items"].as_array().expect("items").iter().find(|d| d["device"] == "known-gauge").expect("known");
    assert_eq!(known["registry"]["warning_level"], 4.5, "the registry entry is shown with the device");

    let metrics = reqwest::get(node.url("/metrics")).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("yingji_node_unregistered_readings_total 1"), "{metrics}");
    assert!(metrics.contains("yingji_node_unknown_region_reports_total 1"), "{metrics}");
    node.shutdown().await;
}
