//! Sensor monitoring through a running node: readings crossing a gauge's lines and a rain
//! window raise warnings at the hub side with the national colours, once per episode; a
//! station that goes silent goes offline and comes back when it speaks.

use std::time::Duration;

use yingji_node::config::Config;
use yingji_tests::{
    DbKind, HubReceiver, Publisher, TestDb, TestNode, eventually, get_json, recent_t0, spawn_embedded_broker,
};

fn warnings(receiver: &HubReceiver, station: &str) -> Vec<serde_json::Value> {
    let mut w: Vec<serde_json::Value> =
        receiver.events().into_iter().filter(|e| e["kind"] == "warning" && e["body"]["station"] == station).collect();
    w.sort_by_key(|e| e["id"].as_str().unwrap_or_default().to_owned());
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_and_rain_windows_raise_warnings_and_silence_takes_a_station_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let devices = dir.path().join("devices.csv");
    std::fs::write(
        &devices,
        "id,kind,name,lat,lon,region,warning_level,guarantee_level,historic_max,interval_s\n\
         gauge-1,water_level_gauge,Gauge 1,28.0,120.6,330302,4.5,5.2,6.0,\n\
         rain-1,rain_gauge,Rain 1,28.1,120.7,330302,,,,1\n",
    )
    .expect("devices");
    let broker = spawn_embedded_broker();
    let receiver = HubReceiver::start(&broker, "monitor-hub", None).await;
    let db = TestDb::new(DbKind::Sqlite).await;
    let mut config = Config::for_tests("monitor-node", broker.clone(), db.url.clone());
    config.devices = Some(devices);
    let node = TestNode::spawn(config).await;
    let mut publisher = Publisher::connect(&broker, "monitor-pub").await;

    // The water level rises through the warning line (yellow) and the guarantee line (orange),
    // wobbling around the warning line on the way without a second warning.
    let t0 = recent_t0();
    let levels = [4.0, 4.3, 4.5, 4.49, 4.52, 4.49, 4.6, 5.3];
    for (i, level) in levels.iter().enumerate() {
        let pack =
            format!(r#"[{{"bn":"gauge-1:","bt":{},"n":"water_level","u":"m","v":{level}}}]"#, t0 + i as f64 * 60.0);
        publisher.publish("yingji/v1/senml/gauge-1", pack.into_bytes()).await;
    }
    // 60 mm of rain in 20 minutes: ≥ 50 mm in 3 h is orange.
    for i in 0..20 {
        let pack = format!(r#"[{{"bn":"rain-1:","bt":{},"n":"rain","u":"mm","v":3}}]"#, t0 + i as f64 * 60.0);
        publisher.publish("yingji/v1/senml/rain-1", pack.into_bytes()).await;
    }
    publisher.wait_acked(Duration::from_secs(30)).await;

    let flood = eventually(Duration::from_secs(30), "flood warnings blue, yellow, orange", || async {
        let w = warnings(&receiver, "gauge-1");
        (w.iter().any(|e| e["body"]["to"] == "orange")).then_some(w)
    })
    .await;
    let colours: Vec<&str> = flood.iter().filter_map(|e| e["body"]["to"].as_str()).collect();
    assert_eq!(colours, ["blue", "yellow", "orange"], "one raise per level, no flapping: {flood:#?}");
    assert!(flood.iter().all(|e| e["body"]["episode"] == 1 && e["region"] == "330302"));

    let rain = eventually(Duration::from_secs(30), "an orange rainstorm warning", || async {
        let w = warnings(&receiver, "rain-1");
        (w.iter().any(|e| e["body"]["to"] == "orange")).then_some(w)
    })
    .await;
    assert_eq!(rain.last().map(|e| e["body"]["metric"]["window_h"].clone()), Some(serde_json::json!(3)), "{rain:#?}");

    let stations = get_json(&node.url("/api/v1/stations")).await;
    let gauge =
        stations["items"].as_array().expect("items").iter().find(|s| s["station"] == "gauge-1").expect("gauge").clone();
    assert_eq!((gauge["flood_colour"].as_str(), gauge["water_level_m"].as_f64()), (Some("orange"), Some(5.3)));

    // rain-1 reports every second; silent for 3 s it is offline (checked every 10 s).
    let offline = eventually(Duration::from_secs(40), "rain-1 offline", || async {
        receiver
            .events()
            .into_iter()
            .find(|e| e["kind"] == "device" && e["body"]["station"] == "rain-1" && e["body"]["online"] == false)
    })
    .await;
    assert!(offline["body"]["silent_for_s"].as_f64().is_some_and(|s| s > 3.0));
    let pack = format!(r#"[{{"bn":"rain-1:","bt":{},"n":"rain","u":"mm","v":0}}]"#, chrono::Utc::now().timestamp());
    publisher.publish("yingji/v1/senml/rain-1", pack.into_bytes()).await;
    eventually(Duration::from_secs(30), "rain-1 back online", || async {
        receiver
            .events()
            .into_iter()
            .any(|e| e["kind"] == "device" && e["body"]["station"] == "rain-1" && e["body"]["online"] == true)
            .then_some(())
    })
    .await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rain_windows_survive_a_restart() {
    let broker = spawn_embedded_broker();
    let receiver = HubReceiver::start(&broker, "restart-hub", None).await;
    let db = TestDb::new(DbKind::Sqlite).await;
    let t0 = recent_t0();
    let rain = |minute: usize| {
        format!(r#"[{{"bn":"rain-9:","bt":{},"n":"rain","u":"mm","v":10}}]"#, t0 + minute as f64 * 60.0).into_bytes()
    };
    // 40 mm before the restart: below every signal.
    let node = TestNode::start("restart-monitor", &broker, &db).await;
    let mut publisher = Publisher::connect(&broker, "restart-pub").await;
    for m in 0..4 {
        publisher.publish("yingji/v1/senml/rain-9", rain(m)).await;
    }
    publisher.wait_acked(Duration::from_secs(30)).await;
    eventually(Duration::from_secs(30), "40 mm stored", || async {
        (node.store.counts().await.ok()?.readings == 4).then_some(())
    })
    .await;
    node.shutdown().await;
    assert!(warnings(&receiver, "rain-9").is_empty());

    // 20 mm more after it: the first 10 mm make 50 mm within 3 h — orange — only if the
    // window kept the first 40.
    let node = TestNode::start("restart-monitor", &broker, &db).await;
    for m in 4..6 {
        publisher.publish("yingji/v1/senml/rain-9", rain(m)).await;
    }
    publisher.wait_acked(Duration::from_secs(30)).await;
    let w = eventually(Duration::from_secs(30), "an orange warning from 50 mm across the restart", || async {
        let w = warnings(&receiver, "rain-9");
        (!w.is_empty()).then_some(w)
    })
    .await;
    assert_eq!(w[0]["body"]["to"], "orange", "{w:#?}");
    assert_eq!(w[0]["body"]["value"], 50.0);
    node.shutdown().await;
}
