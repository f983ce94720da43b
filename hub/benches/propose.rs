//! Dispatch proposals over 100,000 teams and 100,000 stockpiles (design §5: ≤ 1 ms p99 per
//! proposal). Run: `cargo bench -p yingji-hub --bench propose`.
//!
//! Teams and stockpiles are spread over four provinces (boxes around Zhejiang, Fujian, Jiangsu and
//! Anhui) with a realistic capability mix (1–3 capabilities a team; 70 % available, 25 % assigned,
//! 5 % unavailable) and 3–6 relief items a stockpile. Each request asks for 3 capabilities × 2–5
//! teams and 3 items, at a random destination in a random province; some exclude a team.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yingji_hub::dispatch::propose::{Neighbours, Request, Resources, Settings, Stockpile, Team, TeamStatus, propose};
use yingji_hub::rules::Action;

const TEAMS: usize = 100_000;
const STOCKPILES: usize = 100_000;
const MEASURED: usize = 10_000;

/// A province: code, latitude range, longitude range.
type Province = (&'static str, (f64, f64), (f64, f64));

const PROVINCES: [Province; 4] = [
    ("330000", (27.2, 31.1), (118.1, 122.8)),
    ("350000", (23.6, 28.3), (115.9, 120.6)),
    ("320000", (30.8, 35.1), (116.4, 121.9)),
    ("340000", (29.4, 34.6), (114.9, 119.6)),
];

/// Capability and its weight (share of teams having it, roughly).
const CAPABILITIES: [(&str, u32); 11] = [
    ("flood_rescue", 25),
    ("search_rescue", 15),
    ("mountain_rescue", 8),
    ("medical", 20),
    ("fire", 15),
    ("hazmat", 4),
    ("evacuation", 20),
    ("engineering", 12),
    ("comms", 8),
    ("logistics", 10),
    ("aviation", 2),
];

const ITEMS: [&str; 15] = [
    "tent",
    "quilt",
    "folding_bed",
    "food_ration",
    "drinking_water",
    "clothing",
    "life_jacket",
    "rubber_boat",
    "water_pump",
    "generator",
    "satellite_phone",
    "lighting",
    "sandbag",
    "steel_pipe",
    "excavator",
];

/// What the default rules ask for, by hazard.
const ASKS: [[&str; 3]; 5] = [
    ["flood_rescue", "evacuation", "medical"],
    ["search_rescue", "medical", "engineering"],
    ["fire", "medical", "evacuation"],
    ["hazmat", "medical", "evacuation"],
    ["flood_rescue", "engineering", "comms"],
];

fn place(rng: &mut StdRng, p: usize) -> (f64, f64) {
    let (_, (la0, la1), (lo0, lo1)) = PROVINCES[p];
    (rng.random_range(la0..la1), rng.random_range(lo0..lo1))
}

fn capability(rng: &mut StdRng) -> &'static str {
    let total: u32 = CAPABILITIES.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (c, w) in CAPABILITIES {
        if x < w {
            return c;
        }
        x -= w;
    }
    "logistics"
}

fn teams(rng: &mut StdRng) -> Vec<Team> {
    (0..TEAMS)
        .map(|i| {
            let p = rng.random_range(0..PROVINCES.len());
            let (lat, lon) = place(rng, p);
            let n = rng.random_range(1..=3);
            let mut capabilities: Vec<String> = (0..n).map(|_| capability(rng).to_owned()).collect();
            capabilities.sort();
            capabilities.dedup();
            let status = match rng.random_range(0..100) {
                0..70 => TeamStatus::Available,
                70..95 => TeamStatus::Assigned,
                _ => TeamStatus::Unavailable,
            };
            Team {
                id: format!("team-{i:06}"),
                name: format!("救援队 {i}"),
                node: format!("node-{}", PROVINCES[p].0),
                province: PROVINCES[p].0.to_owned(),
                lat,
                lon,
                capabilities,
                size: rng.random_range(6..60),
                status,
            }
        })
        .collect()
}

fn stockpiles(rng: &mut StdRng) -> Vec<Stockpile> {
    (0..STOCKPILES)
        .map(|i| {
            let p = rng.random_range(0..PROVINCES.len());
            let (lat, lon) = place(rng, p);
            let n = rng.random_range(3..=6);
            let items: BTreeMap<String, u64> = (0..n)
                .map(|_| (ITEMS[rng.random_range(0..ITEMS.len())].to_owned(), rng.random_range(0..300)))
                .collect();
            Stockpile {
                id: format!("depot-{i:06}"),
                name: format!("储备库 {i}"),
                province: PROVINCES[p].0.to_owned(),
                lat,
                lon,
                items,
            }
        })
        .collect()
}

fn neighbours() -> Neighbours {
    let n = |a: &str, b: &[&str]| (a.to_owned(), b.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    Neighbours::from([
        n("330000", &["350000", "320000", "340000", "360000", "310000"]),
        n("350000", &["330000", "360000", "440000"]),
        n("320000", &["330000", "340000", "370000", "310000"]),
        n("340000", &["320000", "330000", "360000", "420000", "410000", "370000"]),
    ])
}

fn requests(rng: &mut StdRng, n: usize, teams: &[Team]) -> Vec<Request> {
    (0..n)
        .map(|i| {
            let p = rng.random_range(0..PROVINCES.len());
            let ask = ASKS[rng.random_range(0..ASKS.len())];
            let mut actions: Vec<Action> = ask
                .iter()
                .map(|c| Action::Teams {
                    capability: (*c).to_owned(),
                    teams: rng.random_range(2..=5),
                    automatic: false,
                })
                .collect();
            for _ in 0..3 {
                let item = ITEMS[rng.random_range(0..ITEMS.len())].to_owned();
                actions.push(Action::Item { item, qty: rng.random_range(100..3000) });
            }
            let exclude_teams =
                if i % 4 == 0 { vec![teams[rng.random_range(0..teams.len())].id.clone()] } else { Vec::new() };
            Request {
                incident: format!("incident-{i}"),
                exercise: i % 10 == 0,
                destination: place(rng, p),
                province: PROVINCES[p].0.to_owned(),
                actions,
                exclude_teams,
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i.min(sorted.len().saturating_sub(1))).copied().unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2026);
    let teams = teams(&mut rng);
    let stock = stockpiles(&mut rng);
    let requests = requests(&mut rng, MEASURED, &teams);
    let neighbours = neighbours();
    let settings = Settings::default();

    let start = Instant::now();
    let resources = Resources::new(teams.clone(), stock);
    println!(
        "propose: indexed {TEAMS} teams and {STOCKPILES} stockpiles in {:.0} ms",
        start.elapsed().as_secs_f64() * 1e3
    );

    let mut group = c.benchmark_group("propose");
    let mut i = 0usize;
    group.bench_function("propose_100k_teams_100k_stockpiles", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            black_box(propose(&resources, black_box(&requests[i]), &neighbours, &settings))
        })
    });
    group.finish();

    // Our own percentiles: every one of the random requests, timed one by one. The machine is
    // shared (2 cores): the plain figure includes the time the thread was not running; the
    // best of 3 runs of the same request is the proposal's own cost.
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut times = Vec::with_capacity(requests.len());
    let mut best = Vec::with_capacity(requests.len());
    let (mut chosen, mut passed, mut items, mut short, mut borrowed) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for r in &requests {
        let mut runs = [Duration::ZERO; 3];
        for (k, run) in runs.iter_mut().enumerate() {
            let t = Instant::now();
            let p = black_box(propose(&resources, black_box(r), &neighbours, &settings));
            *run = t.elapsed();
            if k == 0 {
                chosen += p.teams.len();
                borrowed += p.teams.iter().filter(|t| t.borrowed).count();
                passed += p.teams.iter().map(|t| t.passed_over.len()).sum::<usize>();
                items += p.items.len();
                short += p.shortfalls.len();
            }
        }
        times.push(runs[0]);
        best.push(runs.into_iter().min().unwrap_or_default());
    }
    times.sort();
    best.sort();
    let n = requests.len() as f64;
    println!(
        "propose: per request on average {:.1} teams ({:.2} borrowed), {:.1} passed over, {:.1} stockpile shares, {:.2} \
         shortfalls",
        chosen as f64 / n,
        borrowed as f64 / n,
        passed as f64 / n,
        items as f64 / n,
        short as f64 / n
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for (label, t) in [("single run", &times), ("best of 3", &best)] {
        let (p50, p99, max) = (percentile(t, 0.50), percentile(t, 0.99), t[t.len() - 1]);
        println!(
            "propose: {} random destinations, {label}: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; p99 ≤ 1 ms: {}",
            t.len(),
            us(p50),
            us(p99),
            us(max),
            if p99 <= Duration::from_millis(1) { "yes" } else { "NO" }
        );
    }
    println!("propose: load average at the start of the timing: {}", loadavg.trim());

    // How the batch size taken from the R-trees (Settings::candidates) changes the cost (the
    // result does not change): best of 3 over the first 2,000 requests.
    for candidates in [8, 16, 64, 256] {
        let settings = Settings { candidates, ..Settings::default() };
        let mut best: Vec<Duration> = requests
            .iter()
            .take(2_000)
            .map(|r| {
                (0..3)
                    .map(|_| {
                        let t = Instant::now();
                        black_box(propose(&resources, black_box(r), &neighbours, &settings));
                        t.elapsed()
                    })
                    .min()
                    .unwrap_or_default()
            })
            .collect();
        best.sort();
        println!(
            "propose: candidates {candidates}: best of 3 p50 {:.0} µs, p99 {:.0} µs",
            us(percentile(&best, 0.50)),
            us(percentile(&best, 0.99))
        );
    }

    // Status changes keep the R-trees of available teams current.
    let mut resources = resources;
    let t = Instant::now();
    for (k, team) in teams.iter().take(10_000).enumerate() {
        let status = if k % 2 == 0 { TeamStatus::Assigned } else { TeamStatus::Available };
        resources.update_team_status(&team.id, status);
    }
    println!("propose: update_team_status {:.1} µs each (10,000 changes)", t.elapsed().as_secs_f64() * 1e6 / 10_000.0);

    // A province exhausted: every team of 350000 assigned, so its requests borrow from the
    // neighbours (330000 first) and list the nearer assigned teams as passed over.
    for team in teams.iter().filter(|t| t.province == "350000") {
        resources.update_team_status(&team.id, TeamStatus::Assigned);
    }
    let exhausted: Vec<&Request> = requests.iter().filter(|r| r.province == "350000").take(2_000).collect();
    let mut borrowed = 0usize;
    let mut best: Vec<Duration> = exhausted
        .iter()
        .map(|r| {
            borrowed += propose(&resources, r, &neighbours, &settings).teams.iter().filter(|t| t.borrowed).count();
            (0..3)
                .map(|_| {
                    let t = Instant::now();
                    black_box(propose(&resources, black_box(r), &neighbours, &settings));
                    t.elapsed()
                })
                .min()
                .unwrap_or_default()
        })
        .collect();
    best.sort();
    println!(
        "propose: 350000 exhausted ({} requests there, {:.1} teams borrowed each): best of 3 p50 {:.0} µs, p99 {:.0} µs",
        exhausted.len(),
        borrowed as f64 / exhausted.len().max(1) as f64,
        us(percentile(&best, 0.50)),
        us(percentile(&best, 0.99))
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
