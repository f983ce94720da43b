//! One drill, start to end: the fleet publishes the scenario at `--speed`, the teams answer the
//! orders, a simulated officer approves proposals, and at the end the evaluation is written.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::eval::{self, Dist, Evaluation, Watcher};
use crate::fleet::Fleet;
use crate::model::{OutKind, World};
use crate::platform::Platform;
use crate::report;
use crate::scenario::Scenario;
use crate::teams::{self, Teams};

/// How a drill runs.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub seed: u64,
    /// Scenario seconds per wall second.
    pub speed: f64,
    /// Where the evaluation goes (evaluation.json, report.html); `None`: nowhere.
    pub out: Option<PathBuf>,
    pub quiet: bool,
    /// MQTT connections per node for the fleet.
    pub connections: usize,
    /// How long the simulated officer waits before approving a proposal (wall time).
    pub officer_delay: Duration,
    /// How long to wait after the last message for the platform to settle.
    pub settle: Duration,
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            seed: 1,
            speed: 60.0,
            out: None,
            quiet: false,
            connections: 4,
            officer_delay: Duration::from_secs(2),
            settle: Duration::from_secs(120),
        }
    }
}

/// What the drill recorded while it ran (wall clock, Unix ms).
#[derive(Debug, Default)]
struct Record {
    report_published: HashMap<String, i64>,
    first_report_of_incident: BTreeMap<String, i64>,
}

/// The wall time of scenario time 0 in message timestamps: the drill is laid out so that its
/// last message carries the time it is sent, and no message is ever stamped in the future
/// (devices' clocks are never ahead of the node's), however much the time is compressed.
pub fn epoch(start: DateTime<Utc>, duration_ms: u64, speed: f64) -> DateTime<Utc> {
    let back = duration_ms as f64 * (1.0 - 1.0 / speed.max(1.0));
    start - chrono::Duration::milliseconds(back as i64)
}

/// Runs `scenario` against `platform` to its end and evaluates it.
pub async fn run(scenario: &Scenario, platform: &Platform, options: &DrillOptions) -> anyhow::Result<Evaluation> {
    let mut world = World::new(scenario, options.seed).context("building the scenario's world")?;
    let started = Utc::now();
    let run_id = format!("{}-{}-{}", scenario.name, options.seed, started.timestamp_millis());
    let keys = teams::hub_keys(&platform.hub_url).await?;
    let teams = Teams::start(&platform.brokers, world.teams(), keys, options.seed, options.speed, &run_id).await?;
    let watcher = Watcher::start(&platform.hub_url, &platform.token).await?;
    let fleet = Fleet::connect(&platform.brokers, options.connections, &run_id).await?;
    let officer_stop = CancellationToken::new();
    let officer = tokio::spawn(teams::officer(
        platform.hub_url.clone(),
        platform.token.clone(),
        options.officer_delay,
        officer_stop.clone(),
    ));
    info!(scenario = %scenario.name, seed = options.seed, speed = options.speed, stations = world.stations(), "drill started");

    let duration_ms = world.duration_ms();
    let epoch = epoch(started, duration_ms, options.speed);
    let progress = progress_bar(options.quiet, duration_ms);
    let mut record = Record::default();
    let start_instant = tokio::time::Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut done_ms = 0;
    while done_ms < duration_ms {
        interval.tick().await;
        let elapsed = start_instant.elapsed().as_secs_f64() * 1000.0;
        let target = ((elapsed * options.speed) as u64).min(duration_ms);
        if target <= done_ms {
            continue;
        }
        for message in world.advance(target, epoch) {
            if message.kind == OutKind::Report {
                let now = Utc::now().timestamp_millis();
                record.report_published.entry(message.key.clone()).or_insert(now);
                if let Ok(v) = serde_json::from_slice::<Value>(&message.payload)
                    && let Some(incident) = v["incident"].as_str()
                {
                    record.first_report_of_incident.entry(incident.to_owned()).or_insert(now);
                }
            }
            fleet.publish(&message).await?;
            let due = start_instant + Duration::from_secs_f64(message.at_ms as f64 / options.speed / 1000.0);
            let lag = tokio::time::Instant::now().saturating_duration_since(due).as_millis() as u64;
            fleet.counts.lag_ms.store(lag, Ordering::Relaxed);
            fleet.counts.max_lag_ms.fetch_max(lag, Ordering::Relaxed);
        }
        done_ms = target;
        progress.set_position(done_ms / 1000);
        progress.set_message(status_line(&fleet, &teams, &watcher));
    }
    if !fleet.flush(Duration::from_secs(60)).await {
        warn!("some fleet messages were not acknowledged by the broker within 60 s");
    }
    progress.set_message(format!("settling — {}", status_line(&fleet, &teams, &watcher)));

    // Let the platform settle: statistics equal to the truth and every order answered, or the
    // deadline.
    let truth = world.truth();
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + options.settle;
    loop {
        let served = eval::served_statistics(&client, &platform.hub_url, &platform.token, &truth).await;
        let stats_ok = served.as_ref().is_ok_and(|s| eval::compare_statistics(&truth, s).passed);
        let orders = eval::orders(&client, &platform.hub_url, &platform.token).await.unwrap_or_default();
        let orders_ok = orders.iter().all(eval::answered);
        if (stats_ok && orders_ok) || tokio::time::Instant::now() > deadline {
            break;
        }
        progress.set_message(format!("settling — {}", status_line(&fleet, &teams, &watcher)));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    progress.finish_and_clear();
    officer_stop.cancel();
    let _ = officer.await;

    let finished = Utc::now();
    let mut evaluation =
        evaluate(scenario, platform, options, &truth, &record, &fleet, &teams, &watcher, started).await;
    evaluation.id = run_id;
    evaluation.finished_at = finished.to_rfc3339();
    evaluation.wall_s = (finished - started).num_milliseconds() as f64 / 1000.0;
    evaluation.fleet.stations = world.stations();
    evaluation.fleet.teams = world.teams().len();
    evaluation.fleet.rate_per_s = evaluation.fleet.published as f64 / evaluation.wall_s.max(1e-3);

    fleet.close().await;
    teams.stop().await;
    watcher.stop().await;

    if let Some(dir) = &options.out {
        write_out(dir, &evaluation)?;
    }
    publish_to_hub(&client, platform, &evaluation).await;
    Ok(evaluation)
}

fn progress_bar(quiet: bool, duration_ms: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(duration_ms / 1000),
        if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
    );
    let style = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} scenario s  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn status_line(fleet: &Fleet, teams: &Teams, watcher: &Watcher) -> String {
    let c = &fleet.counts;
    let seen = watcher.seen.lock().map(|s| (s.events, s.reports.len())).unwrap_or_default();
    format!(
        "sent {} (acked {}), reports {}, hub events {} (reports {}), orders {}, lag {} ms",
        c.published.load(Ordering::Relaxed),
        c.acked.load(Ordering::Relaxed),
        c.reports.load(Ordering::Relaxed),
        seen.0,
        seen.1,
        teams.counts.orders.load(Ordering::Relaxed),
        c.lag_ms.load(Ordering::Relaxed),
    )
}

#[allow(clippy::too_many_arguments)]
async fn evaluate(
    scenario: &Scenario,
    platform: &Platform,
    options: &DrillOptions,
    truth: &crate::truth::Truth,
    record: &Record,
    fleet: &Fleet,
    teams: &Teams,
    watcher: &Watcher,
    started: DateTime<Utc>,
) -> Evaluation {
    let client = reqwest::Client::new();
    let (hub, token) = (&platform.hub_url, &platform.token);
    let start_ms = started.timestamp_millis();
    let scenario_s = |wall_ms: i64| (wall_ms - start_ms) as f64 / 1000.0 * options.speed;

    let served = eval::soft("reading the hub's statistics", eval::served_statistics(&client, hub, token, truth).await);
    let statistics = eval::compare_statistics(truth, &served);

    // Warnings.
    let seen = watcher.seen.lock().map(|s| (s.reports.clone(), s.warnings.clone())).unwrap_or_default();
    let (seen_reports, seen_warnings) = seen;
    // The hub's warnings as the console shows them (the stream may have lagged): a station the
    // hub holds a warning for is not counted as missed even if the stream never carried it.
    let hub_warnings = eval::soft(
        "reading the hub's warnings",
        eval::get(&client, hub, token, "/api/v1/warnings?active=false&exercise=true").await,
    );
    let stations_at_hub: std::collections::BTreeSet<String> = hub_warnings["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|w| w["station"].as_str().map(str::to_owned))
        .collect();
    let mut warnings =
        eval::Warnings { expected: truth.warnings.len(), raised: seen_warnings.len(), ..Default::default() };
    let mut late = Vec::new();
    let mut expected_pairs = std::collections::BTreeSet::new();
    for expected in &truth.warnings {
        let key = (expected.station.clone(), expected.colour.clone());
        expected_pairs.insert(key.clone());
        let expected_s = expected.first_crossing_ms as f64 / 1000.0;
        let raised_s = seen_warnings.get(&key).map(|ms| scenario_s(*ms));
        if raised_s.is_none() && !stations_at_hub.contains(&expected.station) {
            warnings.missed.push(format!("{} {}", expected.station, expected.colour));
            continue;
        }
        warnings.matched += 1;
        let late_s = raised_s.map(|r| r - expected_s);
        late.extend(late_s);
        warnings.rows.push(eval::WarningRow {
            station: expected.station.clone(),
            metric: expected.metric.clone(),
            expected_s: Some(expected_s),
            raised_s,
            late_s,
            colour: Some(expected.colour.clone()),
        });
    }
    warnings.unexpected = seen_warnings
        .keys()
        .filter(|k| !expected_pairs.contains(*k))
        .map(|(station, colour)| format!("{station} {colour}"))
        .collect();
    warnings.unexpected.sort();
    warnings.late_s = Dist::of(&late);

    // Response times.
    let assessments = eval::soft(
        "reading the hub's assessments",
        eval::get(&client, hub, token, "/api/v1/assessments?exercise=true&limit=10000").await,
    );
    let mut levels: BTreeMap<String, Vec<(f64, Option<u8>)>> = BTreeMap::new();
    let mut to_assessment = Vec::new();
    let mut rows: Vec<&Value> = assessments["items"].as_array().map(|v| v.iter().collect()).unwrap_or_default();
    rows.sort_by_key(|a| a["at_ms"].as_i64().unwrap_or(0));
    for a in rows {
        let subject = a["subject"].as_str().unwrap_or_default().to_owned();
        let at = a["at_ms"].as_i64().unwrap_or(0);
        let level = a["level"].as_u64().map(|l| l as u8);
        levels.entry(subject).or_default().push((scenario_s(at).max(0.0), level));
        // From the report that triggered a level change to the change: the hub's report event
        // is `{node}:report:{device}:{report id}`, the fleet's key `{device}:{report id}`.
        if let Some(trigger) = a["trigger_event"].as_str()
            && let Some((_, key)) = trigger.split_once(":report:")
            && let Some(published) = record.report_published.get(key)
        {
            to_assessment.push((at - published) as f64 / 1000.0);
        }
    }
    let first_report = |incident: &Option<String>| -> Option<i64> {
        match incident {
            Some(i) => record.first_report_of_incident.get(i).copied(),
            None => record.first_report_of_incident.values().min().copied(),
        }
    };
    let orders = eval::soft("reading the hub's orders", eval::orders(&client, hub, token).await);
    let times = teams.times.lock().map(|t| t.clone()).unwrap_or_default();
    let (mut to_order, mut to_answer, mut report_to_answer) = (Vec::new(), Vec::new(), Vec::new());
    for o in &orders {
        let issued = o["issued_ms"].as_i64().unwrap_or(0);
        let incident = o["incident"].as_str().map(str::to_owned);
        let report = first_report(&incident);
        if let Some(r) = report {
            to_order.push((issued - r) as f64 / 1000.0);
        }
        if let Some(t) = o["id"].as_str().and_then(|id| times.get(id))
            && let Some(answer) = t.accepted_ms.or(t.declined_ms)
        {
            to_answer.push((answer - issued) as f64 / 1000.0);
            if let Some(r) = report {
                report_to_answer.push((answer - r) as f64 / 1000.0);
            }
        }
    }
    let response = eval::Response {
        report_to_assessment_s: Dist::of(&to_assessment),
        report_to_order_s: Dist::of(&to_order),
        order_to_ack_s: Dist::of(&to_answer),
        report_to_ack_s: Dist::of(&report_to_answer),
    };
    let orders_summary = eval::summarize_orders(&orders, teams.counts.refused.load(Ordering::Relaxed));

    // Latency and traffic.
    let mut latency = Vec::new();
    let mut per_minute: BTreeMap<u64, u64> = BTreeMap::new();
    for (id, published) in &record.report_published {
        if let Some(seen) = seen_reports.get(id) {
            latency.push((seen - published) as f64);
            *per_minute.entry((scenario_s(*seen).max(0.0) / 60.0) as u64).or_default() += 1;
        }
    }
    let c = &fleet.counts;
    Evaluation {
        scenario: scenario.name.clone(),
        title: scenario.title.clone(),
        seed: options.seed,
        speed: options.speed,
        started_at: started.to_rfc3339(),
        passed: statistics.passed,
        statistics,
        warnings,
        response,
        orders: orders_summary,
        report_latency_ms: Dist::of(&latency),
        fleet: eval::Fleet {
            published: c.published.load(Ordering::Relaxed),
            reports: c.reports.load(Ordering::Relaxed),
            readings: c.readings.load(Ordering::Relaxed),
            statuses: c.statuses.load(Ordering::Relaxed),
            max_lag_ms: c.max_lag_ms.load(Ordering::Relaxed),
            ..Default::default()
        },
        levels,
        reports_per_minute: per_minute.into_iter().map(|(m, n)| (m as f64, n)).collect(),
        ..Evaluation::default()
    }
}

/// Writes evaluation.json and report.html into `dir`.
pub fn write_out(dir: &std::path::Path, evaluation: &Evaluation) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(evaluation)?;
    std::fs::write(dir.join("evaluation.json"), json).with_context(|| format!("writing {}", dir.display()))?;
    std::fs::write(dir.join("report.html"), report::render(evaluation))
        .with_context(|| format!("writing {}", dir.display()))?;
    Ok(())
}

/// Hands the evaluation to the hub (its console lists drill results). A hub without the drills
/// API, or one that refuses, is logged and otherwise ignored: the files are the record.
async fn publish_to_hub(client: &reqwest::Client, platform: &Platform, evaluation: &Evaluation) {
    let body = serde_json::json!({
        "id": evaluation.id,
        "scenario": evaluation.scenario,
        "seed": evaluation.seed,
        "started_at": evaluation.started_at,
        "finished_at": evaluation.finished_at,
        "passed": evaluation.passed,
        "summary": {
            "title": evaluation.title,
            "statistics": {"divisions": evaluation.statistics.divisions, "mismatches": evaluation.statistics.mismatches.len()},
            "warnings": {"expected": evaluation.warnings.expected, "raised": evaluation.warnings.raised, "missed": evaluation.warnings.missed.len()},
            "orders": {"issued": evaluation.orders.issued, "acknowledged": evaluation.orders.acknowledged, "declined": evaluation.orders.declined, "overdue": evaluation.orders.overdue, "escalated": evaluation.orders.escalated},
            "report_latency_ms": evaluation.report_latency_ms,
        },
        "html": report::render(evaluation),
    });
    match client
        .post(format!("{}/api/v1/drills", platform.hub_url))
        .bearer_auth(&platform.token)
        .json(&body)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => info!(drill = %evaluation.id, "evaluation stored at the hub"),
        Ok(r) => warn!(status = %r.status(), "the hub did not store the evaluation"),
        Err(e) => warn!(error = %e, "could not send the evaluation to the hub"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_message_is_stamped_in_the_future() {
        let start = Utc::now();
        for (duration_ms, speed) in [(3_600_000, 60.0), (600_000, 1.0), (10_000, 1000.0), (0, 5.0), (60_000, 0.5)] {
            let e = epoch(start, duration_ms, speed);
            for at in [0, duration_ms / 3, duration_ms] {
                let stamped = e + chrono::Duration::milliseconds(at as i64);
                let sent = start + chrono::Duration::milliseconds((at as f64 / speed.max(1.0)) as i64);
                assert!(stamped <= sent + chrono::Duration::milliseconds(1), "{duration_ms} {speed} {at}");
            }
            // The last message carries the time it is sent.
            let last = e + chrono::Duration::milliseconds(duration_ms as i64);
            let sent = start + chrono::Duration::milliseconds((duration_ms as f64 / speed.max(1.0)) as i64);
            assert!((last - sent).num_milliseconds().abs() <= 1);
        }
    }
}
