//! The simulator's pure core against the shipped scenarios and data: the data is what the
//! generator makes, every scenario loads, every message of a drill passes contract v1
//! validation, drills are deterministic, and the ground truth equals what the node's own
//! statistics and warning code make of the drill's messages.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use yingji_simulator::model::{OutKind, Outgoing, World};
use yingji_simulator::scenario::Scenario;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const SCENARIOS: [&str; 4] = ["short", "typhoon", "flood", "earthquake"];

fn load(name: &str) -> Scenario {
    let path = crate_dir().join("scenarios").join(format!("{name}.toml"));
    match Scenario::load(&path) {
        Ok(s) => s,
        Err(e) => panic!("{name}: {e:#}"),
    }
}

fn epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-09-14T00:00:00Z").map(|t| t.to_utc()).unwrap_or_default()
}

/// Runs a whole drill in steps of `step_ms`.
fn run(world: &mut World, step_ms: u64) -> Vec<Outgoing> {
    let mut out = Vec::new();
    let mut t = 0;
    while t < world.duration_ms() {
        t = (t + step_ms).min(world.duration_ms());
        out.extend(world.advance(t, epoch()));
    }
    out
}

#[test]
fn shipped_data_is_what_the_generator_makes() {
    let files = yingji_simulator::geography::sample_files(1);
    let update = std::env::var_os("UPDATE_DATA").is_some();
    let mut stale = Vec::new();
    for (path, contents) in &files {
        let full = crate_dir().join(path);
        if update {
            if let Some(dir) = full.parent() {
                std::fs::create_dir_all(dir).expect("create the data directory");
            }
            std::fs::write(&full, contents).expect("write a data file");
        } else if std::fs::read_to_string(&full).ok().as_deref() != Some(contents.as_str()) {
            stale.push(path.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "these files differ from what the generator makes: {stale:?}\n\
         regenerate with UPDATE_DATA=1 cargo test -p yingji-simulator --test core"
    );
    let total: usize = files.iter().map(|(_, c)| c.len()).sum();
    assert!(total < 4 * 1024 * 1024, "the shipped data is {total} bytes");
}

#[test]
fn every_message_of_every_shipped_scenario_is_valid_contract_v1() {
    let limits = yingji_proto::Limits::default();
    for name in SCENARIOS {
        let scenario = load(name);
        let mut world = World::new(&scenario, 1).expect("world");
        let started = std::time::Instant::now();
        let messages = run(&mut world, 60_000);
        let elapsed = started.elapsed();
        // The node judges times against its clock: say the drill has just ended.
        let now = epoch() + TimeDelta::milliseconds(world.duration_ms() as i64) + TimeDelta::seconds(1);
        let mut counts: BTreeMap<OutKind, usize> = BTreeMap::new();
        let nodes: Vec<&str> = scenario.nodes.iter().map(|n| n.id.as_str()).collect();
        for m in &messages {
            *counts.entry(m.kind).or_default() += 1;
            assert!(nodes.contains(&m.node.as_str()), "{name}: {} goes to unknown node {}", m.key, m.node);
            let topic = yingji_proto::topic::FieldTopic::parse(&m.topic)
                .unwrap_or_else(|e| panic!("{name}: topic {}: {}", m.topic, e.reason));
            let device = topic.device().to_owned();
            let text = String::from_utf8_lossy(&m.payload);
            let checked = match (m.kind, &topic) {
                (OutKind::Report, yingji_proto::topic::FieldTopic::Report { .. }) => {
                    yingji_proto::report::FieldReport::parse(&m.payload, &device, now, &limits).map(|r| {
                        assert!(r.exercise, "{name}: report {} is not marked exercise", m.key);
                    })
                }
                (OutKind::Reading, yingji_proto::topic::FieldTopic::Senml { .. }) => {
                    yingji_proto::senml::parse_pack(&m.payload, &device, now, &limits).map(|readings| {
                        assert!(!readings.is_empty());
                        assert!(text.contains(r#""exercise":true"#), "{name}: {text}");
                    })
                }
                (OutKind::Status, yingji_proto::topic::FieldTopic::Status { .. }) => {
                    yingji_proto::status::DeviceStatus::parse(&m.payload, &device, now, &limits).map(|_| ())
                }
                _ => panic!("{name}: {:?} on topic {}", m.kind, m.topic),
            };
            if let Err(e) = checked {
                panic!("{name}: {} refused ({:?}): {}\n{text}", m.key, e.code, e.reason);
            }
        }
        let truth = world.truth();
        assert_eq!(counts.get(&OutKind::Report).copied().unwrap_or(0) as u64, truth.messages.reports, "{name}");
        assert_eq!(counts.get(&OutKind::Reading).copied().unwrap_or(0) as u64, truth.messages.readings, "{name}");
        assert_eq!(counts.get(&OutKind::Status).copied().unwrap_or(0) as u64, truth.messages.statuses, "{name}");
        assert!(truth.messages.reports > 0, "{name}: no reports");
        let minutes = world.duration_ms() as f64 / 60_000.0;
        let mut colours: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for w in &truth.warnings {
            *colours.entry((w.metric.as_str(), w.colour.as_str())).or_default() += 1;
        }
        println!(
            "{name}: {} stations, {} nodes, {} teams, {:.0} min; {counts:?}; {:.0} messages per scenario-minute; \
             World::advance {:.2} ms per scenario-minute; warnings {colours:?}; outages {}",
            world.stations(),
            nodes.len(),
            world.teams().len(),
            minutes,
            messages.len() as f64 / minutes,
            elapsed.as_secs_f64() * 1000.0 / minutes,
            truth.outages.len()
        );
        for i in &truth.incidents {
            let provinces: Vec<String> = i
                .divisions
                .iter()
                .filter(|(k, _)| k.ends_with("0000"))
                .map(|(k, f)| {
                    format!(
                        "{k}: deaths+missing {}, relocated+needing aid {}",
                        f.deaths.unwrap_or(0) + f.missing.unwrap_or(0),
                        f.relocated.unwrap_or(0) + f.needing_aid.unwrap_or(0)
                    )
                })
                .collect();
            println!(
                "  {}: {} counties report, {} reports; {provinces:?}",
                i.id,
                i.divisions_reporting.len(),
                i.reports.len()
            );
        }
    }
}

#[test]
fn the_typhoon_drill_has_about_ten_thousand_stations_over_three_nodes() {
    let scenario = load("typhoon");
    let world = World::new(&scenario, 1).expect("world");
    assert!((9_000..=11_000).contains(&world.stations()), "{} stations", world.stations());
    let ids: Vec<&str> = scenario.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["n93", "n92", "slt"]);
    let truth = world.truth();
    let provinces: std::collections::BTreeSet<&str> =
        truth.incidents[0].divisions_reporting.iter().map(|c| &c[..2]).collect();
    assert_eq!(provinces.into_iter().collect::<Vec<_>>(), ["92", "93"], "the typhoon reaches both provinces");
}

/// Topic and payload of every message, for comparing runs.
fn bytes(messages: &[Outgoing]) -> Vec<(u64, String, Vec<u8>)> {
    messages.iter().map(|m| (m.at_ms, m.topic.clone(), m.payload.clone())).collect()
}

#[test]
fn the_same_seed_gives_the_same_bytes_however_time_is_sliced() {
    for name in ["short", "earthquake"] {
        let scenario = load(name);
        let once = bytes(&run(&mut World::new(&scenario, 1).expect("world"), 60_000));
        let again = bytes(&run(&mut World::new(&scenario, 1).expect("world"), 60_000));
        assert!(once == again, "{name}: two runs with seed 1 differ");
        let sliced = bytes(&run(&mut World::new(&scenario, 1).expect("world"), 7_777));
        assert!(once == sliced, "{name}: slicing time differently changed the messages");
        let other = bytes(&run(&mut World::new(&scenario, 2).expect("world"), 60_000));
        assert!(once != other, "{name}: seed 2 gives the same messages as seed 1");
        let keys: Vec<(u64, String)> =
            run(&mut World::new(&scenario, 1).expect("world"), 60_000).into_iter().map(|m| (m.at_ms, m.key)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted, "{name}: messages are sorted by time and key, and keys are unique");
    }
}

#[test]
fn adding_a_station_changes_no_other_station() {
    let scenario = load("short");
    let mut bigger = scenario.clone();
    let mut extra = bigger.nodes[0].stations[0].clone();
    extra.id = "rg91s-99999".into();
    bigger.nodes[0].stations.push(extra);
    let base = bytes(&run(&mut World::new(&scenario, 1).expect("world"), 60_000));
    let with: Vec<_> = bytes(&run(&mut World::new(&bigger, 1).expect("world"), 60_000))
        .into_iter()
        .filter(|(_, topic, _)| !topic.ends_with("/rg91s-99999"))
        .collect();
    assert!(base == with, "adding a station changed other messages");
}

fn parse_reports(messages: &[Outgoing], now: DateTime<Utc>) -> Vec<(String, yingji_proto::report::FieldReport)> {
    let limits = yingji_proto::Limits::default();
    messages
        .iter()
        .filter(|m| m.kind == OutKind::Report)
        .map(|m| {
            let device = m.topic.rsplit('/').next().unwrap_or_default().to_owned();
            let report = yingji_proto::report::FieldReport::parse(&m.payload, &device, now, &limits)
                .unwrap_or_else(|e| panic!("{}: {}", m.key, e.reason));
            (device, report)
        })
        .collect()
}

#[test]
fn the_truth_equals_the_node_statistics_of_the_report_stream_duplicated_and_shuffled() {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    use yingji_node::stats;

    for name in SCENARIOS {
        let scenario = load(name);
        let mut world = World::new(&scenario, 1).expect("world");
        let messages: Vec<Outgoing> =
            run(&mut world, 600_000).into_iter().filter(|m| m.kind == OutKind::Report).collect();
        let truth = world.truth();
        let now = epoch() + TimeDelta::milliseconds(world.duration_ms() as i64);
        // Every third report arrives twice, and everything arrives in a seeded random order.
        let mut stream: Vec<(String, yingji_proto::report::FieldReport)> = parse_reports(&messages, now);
        let again: Vec<_> = stream.iter().step_by(3).cloned().collect();
        stream.extend(again);
        stream.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
        let facts: Vec<stats::Fact> = stream
            .iter()
            .map(|(device, r)| stats::Fact {
                incident: r.incident.clone(),
                region: r.region.clone().unwrap_or_default(),
                device: device.clone(),
                id: r.id.clone(),
                observed_at_ms: r.observed_at.timestamp_millis(),
                figures: r.figures,
            })
            .collect();
        let regions = yingji_node::regions::Regions::load(&scenario.hub_regions).expect("regions");
        let hierarchy = yingji_hub::picture::HubHierarchy(&regions);
        let by_incident = stats::by_incident(&facts);
        assert_eq!(by_incident.len(), truth.incidents.iter().filter(|i| !i.reports.is_empty()).count(), "{name}");
        for incident in &truth.incidents {
            let Some(facts) = by_incident.get(&incident.id) else {
                assert!(incident.reports.is_empty(), "{name}: {} has reports but none arrived", incident.id);
                continue;
            };
            let rolled = stats::rollup(&stats::latest(facts.iter().copied(), None), &hierarchy);
            let got: BTreeMap<&str, serde_json::Value> =
                rolled.iter().map(|(k, d)| (k.as_str(), serde_json::to_value(d.totals).expect("json"))).collect();
            let want: BTreeMap<&str, serde_json::Value> =
                incident.divisions.iter().map(|(k, f)| (k.as_str(), serde_json::to_value(f).expect("json"))).collect();
            assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{name}: divisions");
            for (code, value) in &want {
                assert_eq!(&got[code], value, "{name}: {} division {code}", incident.id);
            }
            for (code, r) in &incident.reporting {
                let d = &rolled[code];
                assert_eq!(d.reporting_regions, r.reporting_regions, "{name}: {code}");
                assert_eq!(
                    d.last_observed_at_ms,
                    epoch().timestamp_millis() + r.last_observed_at_ms as i64,
                    "{name}: {code}"
                );
            }
            assert!(want.contains_key(yingji_simulator::truth::NATION), "{name}: the nation is in the truth");
        }
        if name == "short" {
            let province = &truth.divisions["910000"];
            let relief = province.relocated.unwrap_or(0) + province.needing_aid.unwrap_or(0);
            assert!(relief >= 100_000, "short: relocated + needing aid {relief} reaches no response level");
        }
    }
}

#[test]
fn cumulative_figures_never_go_down_and_stages_run_in_order() {
    for name in SCENARIOS {
        let world = World::new(&load(name), 1).expect("world");
        for incident in world.truth().incidents {
            let mut last: BTreeMap<&str, &yingji_simulator::truth::ReportTruth> = BTreeMap::new();
            for r in &incident.reports {
                if let Some(prev) = last.get(r.unit.as_str()) {
                    assert!(r.at_ms > prev.at_ms, "{name}: {} files twice at once", r.unit);
                    for ((field, a), (_, b)) in prev.figures.counts().into_iter().zip(r.figures.counts()) {
                        assert!(a <= b, "{name}: {} {field} went from {a:?} to {b:?}", r.unit);
                    }
                    assert_ne!(r.stage, "initial", "{name}: {} files a second initial report", r.unit);
                    assert_ne!(prev.stage, "final", "{name}: {} files after its final report", r.unit);
                } else {
                    assert_eq!(r.stage, "initial", "{name}: {}'s first report", r.unit);
                }
                last.insert(&r.unit, r);
            }
        }
    }
}

#[test]
fn expected_warnings_are_those_the_node_raises_from_the_readings() {
    use yingji_node::monitor::{self, StationInfo, StationState, Thresholds, Transition};

    let limits = yingji_proto::Limits::default();
    for name in ["short", "flood"] {
        let scenario = load(name);
        let mut world = World::new(&scenario, 1).expect("world");
        let now = epoch() + TimeDelta::milliseconds(world.duration_ms() as i64) + TimeDelta::seconds(1);
        let devices: BTreeMap<&str, &yingji_node::devices::Device> =
            scenario.nodes.iter().flat_map(|n| n.stations.iter()).map(|d| (d.id.as_str(), d)).collect();
        let thresholds = Thresholds::default();
        let mut states: BTreeMap<String, StationState> = BTreeMap::new();
        // (station, metric, colour) → first time raised, ms.
        let mut raised: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for m in run(&mut world, 60_000).iter().filter(|m| m.kind == OutKind::Reading) {
            let device = m.topic.rsplit('/').next().unwrap_or_default().to_owned();
            let info = devices.get(device.as_str()).map(|d| StationInfo::from(*d)).unwrap_or_default();
            let state = states.entry(device.clone()).or_default();
            for r in yingji_proto::senml::parse_pack(&m.payload, &device, now, &limits).expect("valid") {
                let Some(yingji_proto::senml::Value::Number(v)) = r.value else { continue };
                for t in monitor::observe(state, &r.name, r.time_us, v, &info, &thresholds) {
                    if let Transition::Warning { metric, to: Some(to), .. } = t {
                        let metric = match metric {
                            monitor::Metric::Rain { .. } => "rain",
                            monitor::Metric::WaterLevel => "water_level",
                        };
                        let at = (r.time_us / 1000 - epoch().timestamp_millis()) as u64;
                        for colour in monitor::Colour::ALL.into_iter().filter(|c| *c <= to) {
                            raised.entry((device.clone(), metric.to_owned(), colour.as_str().to_owned())).or_insert(at);
                        }
                    }
                }
            }
        }
        let expected: BTreeMap<(String, String, String), u64> = world
            .truth()
            .warnings
            .into_iter()
            .map(|w| ((w.station, w.metric, w.colour), w.first_crossing_ms))
            .collect();
        assert_eq!(raised, expected, "{name}: the node's warnings differ from the truth");
        println!(
            "{name}: {} expected warnings, all raised by the node's monitor at the expected times",
            expected.len()
        );
    }
}

#[test]
fn teams_answer_deterministically_with_the_configured_mix() {
    let scenario = load("typhoon");
    let world = World::new(&scenario, 1).expect("world");
    let mut counts = [0usize; 3];
    for team in world.teams() {
        for k in 0..50 {
            let order = format!("order-{k}");
            let plan = team.respond(&order, 1);
            assert_eq!(plan, team.respond(&order, 1), "{} answers {order} twice alike", team.id);
            match plan {
                yingji_simulator::model::TeamPlan::Accept { ack_after_s, arrive_after_s, done_after_s } => {
                    assert!(ack_after_s > 0.0 && ack_after_s < arrive_after_s && arrive_after_s < done_after_s);
                    counts[0] += 1;
                }
                yingji_simulator::model::TeamPlan::Decline { after_s, reason } => {
                    assert!(after_s > 0.0 && !reason.is_empty());
                    counts[1] += 1;
                }
                yingji_simulator::model::TeamPlan::NoShow => counts[2] += 1,
            }
        }
        match team.id.as_str() {
            "t93-02" => assert!((0..50).all(|k| matches!(
                team.respond(&format!("order-{k}"), 1),
                yingji_simulator::model::TeamPlan::Decline { .. }
            ))),
            "t92-05" => assert!(
                (0..50).all(|k| team.respond(&format!("order-{k}"), 1) == yingji_simulator::model::TeamPlan::NoShow)
            ),
            _ => {}
        }
    }
    let total: usize = counts.iter().sum();
    let share = |n: usize| n as f64 / total as f64;
    assert!(share(counts[0]) > 0.65 && share(counts[1]) > 0.1 && share(counts[2]) > 0.05, "{counts:?}");
    let near = world.teams()[0].respond_to("o", 1, Some(world.teams()[0].home));
    let far = world.teams()[0].respond_to("o", 1, Some(yingji_simulator::hazard::LatLon { lat: 30.0, lon: 110.0 }));
    if let (
        yingji_simulator::model::TeamPlan::Accept { arrive_after_s: a, .. },
        yingji_simulator::model::TeamPlan::Accept { arrive_after_s: b, .. },
    ) = (near, far)
    {
        assert!(b > a + 3600.0, "a far destination takes longer: {a} vs {b}");
    }
}
