//! Risk rules throughput: `RuleSet::evaluate` with the default rule set over a realistic mix of
//! events (design §5: ≥ 100,000 events/s). Run: `cargo bench -p yingji-hub --bench rules`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use yingji_hub::rules::{EventView, IncidentView, Input, RuleSet, Scope, ScopeStats};
use yingji_node::stats::Totals;

fn incident(id: &str, hazard: &str) -> Option<IncidentView> {
    Some(IncidentView {
        id: id.to_owned(),
        hazard: Some(hazard.to_owned()),
        exercise: false,
        level: None,
        regions: vec!["330302".to_owned(), "330303".to_owned()],
    })
}

fn scopes(i: i64) -> BTreeMap<Scope, ScopeStats> {
    let totals = |k: i64| Totals {
        affected: Some(12_000 * k + i),
        deaths: Some((i * 7) % 260 / k),
        missing: Some((i * 3) % 40 / k),
        injured: Some(30 * k),
        relocated: Some(((i * 9_973) % 2_500_000) / k),
        needing_aid: Some(((i * 337) % 300_000) / k),
        houses_collapsed: Some(((i * 131) % 250_000) / k),
        houses_severely_damaged: Some(((i * 17) % 80_000) / k),
        houses_damaged: Some(4_000 / k),
        crop_area_ha: Some(125.5 * k as f64),
        crop_failure_ha: None,
        direct_loss_cny: Some((i as f64) * 1.0e6),
    };
    BTreeMap::from([
        (Scope::County, ScopeStats { code: "330302".into(), name: "鹿城区".into(), totals: totals(20) }),
        (Scope::Prefecture, ScopeStats { code: "330300".into(), name: "温州市".into(), totals: totals(4) }),
        (Scope::Province, ScopeStats { code: "330000".into(), name: "浙江省".into(), totals: totals(1) }),
    ])
}

fn report_body(i: i64) -> serde_json::Value {
    json!({
        "device": format!("unit-{}", i % 50), "id": format!("r-{i}"), "incident": "typhoon-2026-14",
        "stage": "update", "hazard": "typhoon", "observed_at": "2026-09-14T08:00:00+08:00",
        "location": {"lat": 28.02, "lon": 120.65}, "region": "330302", "region_source": "given",
        "region_path": ["330302", "330300", "330000"],
        "figures": {"affected": 1200, "deaths": i % 3, "missing": 0, "injured": 3, "relocated": 300,
                    "needing_aid": 150, "houses_collapsed": 2, "houses_severely_damaged": 5,
                    "houses_damaged": 40, "crop_area_ha": 12.5, "crop_failure_ha": 0.0,
                    "direct_loss_cny": 1_200_000},
        "text": "村口道路积水约半米，已组织转移低洼地带群众。",
        "received_at": "2026-09-14T08:00:03+08:00",
    })
}

fn warning_body(i: i64) -> serde_json::Value {
    let colours = ["blue", "yellow", "orange", "red"];
    let cleared = i % 5 == 0;
    let colour = (!cleared).then(|| colours[(i % 4) as usize]);
    let metric = if i % 2 == 0 { json!({"kind": "rain", "window_h": 3}) } else { json!({"kind": "water_level"}) };
    json!({
        "station": format!("st-{}", i % 200), "metric": metric, "from": null, "to": colour,
        "colour": colour, "cleared": cleared, "value": 105.5, "threshold": 100.0, "episode": 1,
        "rise_m_per_h": null, "observed_at": "2026-09-14T08:00:00+08:00",
    })
}

/// 30 % stats, 25 % reports, 25 % warnings, 20 % device events; hazards varied.
fn mix(n: i64) -> Vec<Input> {
    let hazards = ["typhoon", "flood", "earthquake", "landslide", "wildfire", "hazmat", "rainstorm", "snow"];
    (0..n)
        .map(|i| {
            let hazard = hazards[(i % hazards.len() as i64) as usize];
            let event = |kind: &str, body: serde_json::Value, incident: Option<&str>| EventView {
                id: format!("node-1:{kind}:{i}"),
                kind: kind.to_owned(),
                node: "node-1".to_owned(),
                region: "330302".to_owned(),
                exercise: false,
                incident: incident.map(str::to_owned),
                body,
            };
            match i % 20 {
                0..=5 => Input {
                    event: event("stats", json!({"division": "330000", "level": "province"}), Some("inc-1")),
                    incident: incident("inc-1", hazard),
                    scopes: scopes(i),
                },
                6..=10 => {
                    let mut body = report_body(i);
                    if hazard == "earthquake" {
                        body["magnitude"] = json!(4.0 + (i % 40) as f64 / 10.0);
                    }
                    Input {
                        event: event("report", body, Some("inc-1")),
                        incident: incident("inc-1", hazard),
                        scopes: scopes(i),
                    }
                }
                11..=15 => {
                    Input { event: event("warning", warning_body(i), None), incident: None, scopes: BTreeMap::new() }
                }
                _ => Input {
                    event: event("device", json!({"station": "st-1", "online": i % 2 == 0}), None),
                    incident: None,
                    scopes: BTreeMap::new(),
                },
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rules = RuleSet::defaults().expect("the default rules load");
    let inputs = mix(1_000);
    let matched: usize = inputs.iter().map(|i| rules.evaluate(i).matched.len()).sum();
    let errors: usize = inputs.iter().map(|i| rules.evaluate(i).errors.len()).sum();
    println!("{} rules; over {} events: {matched} matches, {errors} errors", rules.len(), inputs.len());

    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.bench_function("evaluate_default_mix", |b| {
        b.iter(|| {
            for input in &inputs {
                black_box(rules.evaluate(black_box(input)));
            }
        })
    });
    for (name, kind) in [("stats", "stats"), ("report", "report"), ("warning", "warning"), ("device", "device")] {
        let only: Vec<&Input> = inputs.iter().filter(|i| i.event.kind == kind).collect();
        group.throughput(Throughput::Elements(only.len() as u64));
        group.bench_function(format!("evaluate_{name}"), |b| {
            b.iter(|| {
                for input in &only {
                    black_box(rules.evaluate(black_box(input)));
                }
            })
        });
    }
    group.finish();

    // One plain figure for the record: events per second through `evaluate` on one core.
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        for input in &inputs {
            black_box(rules.evaluate(black_box(input)));
        }
        n += inputs.len() as u64;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("rules: {rate:.0} events/s through RuleSet::evaluate (default rules, mixed events, one thread)");
}

criterion_group!(benches, bench);
criterion_main!(benches);
