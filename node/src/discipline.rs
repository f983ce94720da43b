//! Reporting discipline (domain.md, reporting rhythm): for each division of an incident, whether
//! its initial report (初报) and its daily update (续报) came on time, are still due, or are late,
//! and whether its final report (核报) has ended the duty. A division that has not reported on
//! time is itself a thing the duty officer must see.
//!
//! This module owns those rules and nothing else. It is pure: no IO, no clock (the caller passes
//! `now`), and no input can make it fail or panic; times saturate instead of overflowing.
//!
//! # Rules
//! - **As of `now`.** Reports received after `now_ms` are ignored, so an assessment can be
//!   replayed for any past instant.
//! - **Initial report.** Due at `incident_start + initial_within` (2 h by default). The report
//!   that counts as the initial is the division's earliest `initial`-stage report, or, when it
//!   has none, its earliest report of any stage. Once there is one the duty is
//!   [`Duty::Filed`] at its time, whether it came on time or not. Without one it is
//!   [`Duty::Due`] until the due instant (inclusive) and [`Duty::Late`] from just after it.
//! - **Daily update.** Only once the initial has come. The due times are `update_hour_local`
//!   (09:00) local time on each day after the local day of the initial; local time is UTC plus
//!   `utc_offset_s` (Beijing, +08:00, by default), so a report at 2026-09-14T23:30Z belongs to the
//!   15th. Until the first due time the duty is [`Duty::Due`] by it. After it, for the most
//!   recent due time `T ≤ now`, the duty is [`Duty::Filed`] at the latest report received after
//!   the initial and in `(T − 24 h, now]`: a report in `(T − 24 h, T]` met it on time, one after
//!   `T` made it up late. With no such report it is [`Duty::Late`] since `T`, except at the
//!   instant `T` itself, which is not late yet: then it is [`Duty::Due`] by `T`, or
//!   [`Duty::Late`] since the day before's due time if that one was missed too. Only reports
//!   received after the initial count as updates, so the first update always needs a report of
//!   its own, however late in the day the initial came.
//! - **Final report.** A division with a `final`-stage report is done: its update duty is
//!   [`Duty::NotYet`] and never late. Its initial duty is assessed as usual (the final report
//!   counts as the initial when it is the division's only report).

use std::collections::BTreeMap;

use serde::Serialize;
use yingji_proto::report::Stage;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The reporting rhythm. The defaults are the national ones: initial within 2 h, daily update by
/// 09:00 Beijing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long after the incident's start the initial report is due, in milliseconds.
    pub initial_within_ms: i64,
    /// The local hour by which each day's update is due (hours of 24 or more roll into the next
    /// day).
    pub update_hour_local: u32,
    /// Local time minus UTC, in seconds: where the local day starts.
    pub utc_offset_s: i32,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules { initial_within_ms: 2 * HOUR_MS, update_hour_local: 9, utc_offset_s: 8 * 3600 }
    }
}

/// One report a division filed, as discipline sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filed {
    /// 初报, 续报 or 核报.
    pub stage: Stage,
    /// When the node received it, in Unix milliseconds: discipline is about when reports
    /// arrive, not about the time their figures describe.
    pub received_at_ms: i64,
}

/// Where one duty stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Duty {
    /// Met by the report received at `at_ms`.
    Filed {
        /// When the report that met it was received.
        at_ms: i64,
    },
    /// Not met yet, and not late: it must be met by `by_ms` (inclusive).
    Due {
        /// The due instant.
        by_ms: i64,
    },
    /// Not met, and overdue since `since_ms`.
    Late {
        /// The due instant that passed.
        since_ms: i64,
    },
    /// Not owed: the daily update before the initial report or after the final one.
    NotYet,
}

impl Duty {
    /// True for [`Duty::Late`].
    pub fn is_late(&self) -> bool {
        matches!(self, Duty::Late { .. })
    }
}

/// One division's duties for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DivisionDuty {
    /// The division code.
    pub division: String,
    /// The initial report (初报).
    pub initial: Duty,
    /// The daily update (续报).
    pub update: Duty,
    /// True once a final report (核报) has come: the division owes nothing more.
    pub done: bool,
}

/// The duties of every division in `divisions` (division code → the reports it filed, in any
/// order), as of `now_ms`, for an incident that started at `incident_start_ms`. The result is in
/// division-code order. See the module documentation for the rules.
pub fn assess(
    incident_start_ms: i64,
    divisions: &BTreeMap<String, Vec<Filed>>,
    now_ms: i64,
    rules: &Rules,
) -> Vec<DivisionDuty> {
    divisions.iter().map(|(division, filed)| assess_one(division, filed, incident_start_ms, now_ms, rules)).collect()
}

/// The duties with a late initial report or a late update.
pub fn late(duties: &[DivisionDuty]) -> Vec<&DivisionDuty> {
    duties.iter().filter(|d| d.initial.is_late() || d.update.is_late()).collect()
}

fn assess_one(division: &str, filed: &[Filed], incident_start_ms: i64, now_ms: i64, rules: &Rules) -> DivisionDuty {
    let known: Vec<i64> = filed.iter().filter(|f| f.received_at_ms <= now_ms).map(|f| f.received_at_ms).collect();
    let first_of = |stage: Option<Stage>| {
        filed
            .iter()
            .filter(|f| f.received_at_ms <= now_ms && stage.is_none_or(|s| f.stage == s))
            .map(|f| f.received_at_ms)
            .min()
    };
    let initial_at = first_of(Some(Stage::Initial)).or_else(|| first_of(None));
    let done = first_of(Some(Stage::Final)).is_some();

    let initial_due = incident_start_ms.saturating_add(rules.initial_within_ms);
    let initial = match initial_at {
        Some(at_ms) => Duty::Filed { at_ms },
        None if now_ms > initial_due => Duty::Late { since_ms: initial_due },
        None => Duty::Due { by_ms: initial_due },
    };
    let update = match initial_at {
        _ if done => Duty::NotYet,
        None => Duty::NotYet,
        Some(initial_at) => update_duty(initial_at, &known, now_ms, rules),
    };
    DivisionDuty { division: division.to_owned(), initial, update, done }
}

/// The daily-update duty of a division whose initial came at `initial_at`; `known` holds the
/// times of every report received by `now_ms`.
fn update_duty(initial_at: i64, known: &[i64], now_ms: i64, rules: &Rules) -> Duty {
    let first_due = first_update_due(initial_at, rules);
    if now_ms < first_due {
        return Duty::Due { by_ms: first_due };
    }
    // The most recent due time at or before now: a whole number of days after the first.
    let days = now_ms.saturating_sub(first_due) / DAY_MS;
    let due = first_due.saturating_add(days.saturating_mul(DAY_MS));
    // The latest update (any report after the initial) received since 24 h before `due`.
    let since = |due: i64| known.iter().copied().filter(|&t| t > initial_at && t > due.saturating_sub(DAY_MS)).max();
    if let Some(at_ms) = since(due) {
        return Duty::Filed { at_ms };
    }
    if due < now_ms {
        return Duty::Late { since_ms: due };
    }
    // Now is the due instant itself, which is not late yet (as with the initial report); the
    // day before's duty decides whether the division is already behind.
    let previous = due.saturating_sub(DAY_MS);
    if due == first_due || since(previous).is_some() {
        Duty::Due { by_ms: due }
    } else {
        Duty::Late { since_ms: previous }
    }
}

/// `update_hour_local` on the local day after the local day of `initial_at`, in UTC.
fn first_update_due(initial_at: i64, rules: &Rules) -> i64 {
    let offset_ms = i64::from(rules.utc_offset_s).saturating_mul(1000);
    let local = initial_at.saturating_add(offset_ms);
    let local_midnight = local.saturating_sub(local.rem_euclid(DAY_MS));
    let hour_ms = i64::from(rules.update_hour_local).saturating_mul(HOUR_MS);
    local_midnight.saturating_add(DAY_MS).saturating_add(hour_ms).saturating_sub(offset_ms)
}

/// Duties of every division of one incident from the node's stored filings, with the default
/// rules: the incident starts at its earliest observation; stages the node does not know are
/// taken as updates.
pub fn from_filings(filings: &[crate::store::Filing], now_ms: i64) -> Vec<DivisionDuty> {
    let Some(start) = filings.iter().map(|f| f.observed_at_ms).min() else {
        return Vec::new();
    };
    let mut divisions: BTreeMap<String, Vec<Filed>> = BTreeMap::new();
    for f in filings {
        let stage = match f.stage.as_str() {
            "initial" => Stage::Initial,
            "final" => Stage::Final,
            _ => Stage::Update,
        };
        divisions.entry(f.region.clone()).or_default().push(Filed { stage, received_at_ms: f.received_at_ms });
    }
    assess(start, &divisions, now_ms, &Rules::default())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::DateTime;
    use proptest::prelude::*;

    use super::*;

    /// An RFC 3339 time in Unix milliseconds.
    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
            .timestamp_millis()
    }

    fn filed(text: &str) -> Duty {
        Duty::Filed { at_ms: ms(text) }
    }

    fn due(text: &str) -> Duty {
        Duty::Due { by_ms: ms(text) }
    }

    fn late_since(text: &str) -> Duty {
        Duty::Late { since_ms: ms(text) }
    }

    const COUNTY: &str = "330302";
    /// The incident of most cases starts at 08:00 Beijing time; its initial is due at 10:00.
    const START: &str = "2026-09-14T08:00:00+08:00";

    /// One row of the discipline table.
    struct Case {
        name: &'static str,
        rules: Rules,
        start: &'static str,
        now: &'static str,
        /// (division, stage, received at).
        filed: Vec<(&'static str, Stage, &'static str)>,
        /// (division, initial, update, done): every division, in code order.
        want: Vec<(&'static str, Duty, Duty, bool)>,
    }

    fn case(
        name: &'static str,
        now: &'static str,
        filed: Vec<(&'static str, Stage, &'static str)>,
        initial: Duty,
        update: Duty,
        done: bool,
    ) -> Case {
        Case { name, rules: Rules::default(), start: START, now, filed, want: vec![(COUNTY, initial, update, done)] }
    }

    /// Runs one case, with the reports in the order given and reversed; `Err` says how it went
    /// wrong.
    fn check(case: &Case) -> Result<(), String> {
        let mut divisions: BTreeMap<String, Vec<Filed>> = BTreeMap::new();
        for &(division, stage, at) in &case.filed {
            divisions.entry(division.to_owned()).or_default().push(Filed { stage, received_at_ms: ms(at) });
        }
        // A division that has filed nothing is still listed when the caller expects it.
        for &(division, ..) in &case.want {
            divisions.entry(division.to_owned()).or_default();
        }
        let got = assess(ms(case.start), &divisions, ms(case.now), &case.rules);
        let reversed: BTreeMap<String, Vec<Filed>> =
            divisions.iter().map(|(d, f)| (d.clone(), f.iter().rev().copied().collect())).collect();
        if assess(ms(case.start), &reversed, ms(case.now), &case.rules) != got {
            return Err("the order of the reports changed the result".to_owned());
        }
        let got: Vec<_> = got.into_iter().map(|d| (d.division, d.initial, d.update, d.done)).collect();
        let want: Vec<_> = case.want.iter().map(|&(d, i, u, done)| (d.to_owned(), i, u, done)).collect();
        if got != want {
            return Err(format!("got {got:?}\nwant {want:?}"));
        }
        Ok(())
    }

    #[test]
    fn discipline_table() {
        use Stage::{Final, Initial, Update};
        let utc = Rules { utc_offset_s: 0, ..Rules::default() };
        let cases = vec![
            case(
                "initial on time",
                "2026-09-14T09:30:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                due("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "initial not yet due",
                "2026-09-14T09:59:59+08:00",
                vec![],
                due("2026-09-14T10:00:00+08:00"),
                Duty::NotYet,
                false,
            ),
            case(
                "no initial at the due instant: still due",
                "2026-09-14T10:00:00+08:00",
                vec![],
                due("2026-09-14T10:00:00+08:00"),
                Duty::NotYet,
                false,
            ),
            case(
                "no initial a millisecond after the due instant: late",
                "2026-09-14T10:00:00.001+08:00",
                vec![],
                late_since("2026-09-14T10:00:00+08:00"),
                Duty::NotYet,
                false,
            ),
            case(
                "initial exactly at the due instant",
                "2026-09-14T10:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T10:00:00+08:00")],
                filed("2026-09-14T10:00:00+08:00"),
                due("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "late initial is filed once it comes",
                "2026-09-14T12:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T11:00:00+08:00")],
                filed("2026-09-14T11:00:00+08:00"),
                due("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "a report received after now does not count",
                "2026-09-14T10:30:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T11:00:00+08:00")],
                late_since("2026-09-14T10:00:00+08:00"),
                Duty::NotYet,
                false,
            ),
            case(
                "without an initial-stage report the first report of any stage counts",
                "2026-09-14T12:00:00+08:00",
                vec![(COUNTY, Update, "2026-09-14T09:30:00+08:00"), (COUNTY, Update, "2026-09-14T11:00:00+08:00")],
                filed("2026-09-14T09:30:00+08:00"),
                due("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "an initial-stage report counts before an earlier report of another stage",
                "2026-09-14T12:00:00+08:00",
                vec![(COUNTY, Update, "2026-09-14T09:00:00+08:00"), (COUNTY, Initial, "2026-09-14T09:30:00+08:00")],
                filed("2026-09-14T09:30:00+08:00"),
                due("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "update filed before 09:00",
                "2026-09-15T10:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00"), (COUNTY, Update, "2026-09-15T08:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                filed("2026-09-15T08:00:00+08:00"),
                false,
            ),
            case(
                "update exactly at 09:00",
                "2026-09-15T09:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00"), (COUNTY, Update, "2026-09-15T09:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                filed("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "no update at 09:00 exactly: still due",
                "2026-09-15T09:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                due("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "at the second due instant, a missed first day is still late",
                "2026-09-16T09:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                late_since("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "at the second due instant after a met first day: due",
                "2026-09-16T09:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00"), (COUNTY, Update, "2026-09-15T08:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                due("2026-09-16T09:00:00+08:00"),
                false,
            ),
            case(
                "no update a millisecond after 09:00: late",
                "2026-09-15T09:00:00.001+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                late_since("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "the initial does not also count as the first update",
                "2026-09-15T09:30:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T10:00:00+08:00")],
                filed("2026-09-14T10:00:00+08:00"),
                late_since("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "a report exactly 24 h before the due time belongs to the day before",
                "2026-09-15T10:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T08:30:00+08:00"), (COUNTY, Update, "2026-09-14T09:00:00+08:00")],
                filed("2026-09-14T08:30:00+08:00"),
                late_since("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "missed one day: late",
                "2026-09-15T12:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                late_since("2026-09-15T09:00:00+08:00"),
                false,
            ),
            case(
                "missed one day, then filed",
                "2026-09-15T15:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00"), (COUNTY, Update, "2026-09-15T14:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                filed("2026-09-15T14:00:00+08:00"),
                false,
            ),
            case(
                "the late update also meets the next morning's duty",
                "2026-09-16T10:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00"), (COUNTY, Update, "2026-09-15T14:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                filed("2026-09-15T14:00:00+08:00"),
                false,
            ),
            case(
                "but not the morning after",
                "2026-09-17T10:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00"), (COUNTY, Update, "2026-09-15T14:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                late_since("2026-09-17T09:00:00+08:00"),
                false,
            ),
            case(
                "the latest report in the window is the one shown",
                "2026-09-16T10:00:00+08:00",
                vec![
                    (COUNTY, Initial, "2026-09-14T09:00:00+08:00"),
                    (COUNTY, Update, "2026-09-15T08:00:00+08:00"),
                    (COUNTY, Update, "2026-09-16T07:00:00+08:00"),
                    (COUNTY, Update, "2026-09-15T20:00:00+08:00"),
                ],
                filed("2026-09-14T09:00:00+08:00"),
                filed("2026-09-16T07:00:00+08:00"),
                false,
            ),
            case(
                "a final report ends the duty",
                "2026-09-17T12:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00"), (COUNTY, Final, "2026-09-15T20:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                Duty::NotYet,
                true,
            ),
            case(
                "a final report alone is also the initial",
                "2026-09-14T12:00:00+08:00",
                vec![(COUNTY, Final, "2026-09-14T11:00:00+08:00")],
                filed("2026-09-14T11:00:00+08:00"),
                Duty::NotYet,
                true,
            ),
            case(
                "a final report received after now has not ended anything",
                "2026-09-15T12:00:00+08:00",
                vec![(COUNTY, Initial, "2026-09-14T09:00:00+08:00"), (COUNTY, Final, "2026-09-15T20:00:00+08:00")],
                filed("2026-09-14T09:00:00+08:00"),
                late_since("2026-09-15T09:00:00+08:00"),
                false,
            ),
            Case {
                name: "23:30Z is 07:30 on the 15th in Beijing: the first update is due on the 16th",
                rules: Rules::default(),
                start: "2026-09-14T22:00:00Z",
                now: "2026-09-15T12:00:00Z",
                filed: vec![(COUNTY, Initial, "2026-09-14T23:30:00Z")],
                want: vec![(COUNTY, filed("2026-09-14T23:30:00Z"), due("2026-09-16T09:00:00+08:00"), false)],
            },
            Case {
                name: "in UTC the same report is on the 14th: the first update was due on the 15th",
                rules: utc,
                start: "2026-09-14T22:00:00Z",
                now: "2026-09-15T12:00:00Z",
                filed: vec![(COUNTY, Initial, "2026-09-14T23:30:00Z")],
                want: vec![(COUNTY, filed("2026-09-14T23:30:00Z"), late_since("2026-09-15T09:00:00Z"), false)],
            },
            Case {
                name: "a negative offset moves the local day the other way",
                rules: Rules { utc_offset_s: -5 * 3600, ..Rules::default() },
                start: "2026-09-14T22:00:00Z",
                now: "2026-09-15T12:00:00Z",
                filed: vec![(COUNTY, Initial, "2026-09-15T03:00:00Z")],
                want: vec![(COUNTY, filed("2026-09-15T03:00:00Z"), due("2026-09-15T09:00:00-05:00"), false)],
            },
            Case {
                name: "every division is assessed, in code order",
                rules: Rules::default(),
                start: START,
                now: "2026-09-15T10:00:00+08:00",
                filed: vec![
                    ("330303", Initial, "2026-09-14T09:00:00+08:00"),
                    ("330302", Initial, "2026-09-14T09:00:00+08:00"),
                    ("330302", Update, "2026-09-15T08:00:00+08:00"),
                ],
                want: vec![
                    ("330300", late_since("2026-09-14T10:00:00+08:00"), Duty::NotYet, false),
                    ("330302", filed("2026-09-14T09:00:00+08:00"), filed("2026-09-15T08:00:00+08:00"), false),
                    ("330303", filed("2026-09-14T09:00:00+08:00"), late_since("2026-09-15T09:00:00+08:00"), false),
                ],
            },
        ];
        let mut names = HashSet::new();
        let failures: Vec<String> = cases
            .iter()
            .inspect(|c| assert!(names.insert(c.name), "two cases are named {:?}", c.name))
            .filter_map(|c| check(c).err().map(|e| format!("{}: {e}", c.name)))
            .collect();
        assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    }

    #[test]
    fn late_lists_the_late_divisions() {
        let divisions: BTreeMap<String, Vec<Filed>> = BTreeMap::from([
            ("330300".to_owned(), vec![]),
            ("330302".to_owned(), vec![Filed { stage: Stage::Initial, received_at_ms: ms(START) }]),
            (
                "330303".to_owned(),
                vec![
                    Filed { stage: Stage::Initial, received_at_ms: ms(START) },
                    Filed { stage: Stage::Update, received_at_ms: ms("2026-09-15T08:00:00+08:00") },
                ],
            ),
        ]);
        let duties = assess(ms(START), &divisions, ms("2026-09-15T10:00:00+08:00"), &Rules::default());
        let late: Vec<&str> = late(&duties).into_iter().map(|d| d.division.as_str()).collect();
        assert_eq!(late, ["330300", "330302"]);
    }

    #[test]
    fn duties_serialise_with_a_state_tag() {
        let cases = [
            (Duty::Filed { at_ms: 1 }, serde_json::json!({"state": "filed", "at_ms": 1})),
            (Duty::Due { by_ms: 2 }, serde_json::json!({"state": "due", "by_ms": 2})),
            (Duty::Late { since_ms: 3 }, serde_json::json!({"state": "late", "since_ms": 3})),
            (Duty::NotYet, serde_json::json!({"state": "not_yet"})),
        ];
        for (duty, want) in cases {
            assert_eq!(serde_json::to_value(duty).ok(), Some(want), "{duty:?}");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Properties.

    fn stage() -> impl Strategy<Value = Stage> {
        prop::sample::select(vec![Stage::Initial, Stage::Update, Stage::Final])
    }

    /// Reports around a fixed incident, within a week.
    fn reports() -> impl Strategy<Value = Vec<Filed>> {
        proptest::collection::vec(
            (stage(), 0..7 * DAY_MS).prop_map(|(stage, t)| Filed { stage, received_at_ms: ms(START) + t }),
            0..8,
        )
    }

    fn realistic_rules() -> impl Strategy<Value = Rules> {
        (0..6 * HOUR_MS, 0..24u32, -12 * 3600..=14 * 3600i32).prop_map(
            |(initial_within_ms, update_hour_local, utc_offset_s)| Rules {
                initial_within_ms,
                update_hour_local,
                utc_offset_s,
            },
        )
    }

    /// The instant a duty names.
    fn instant(duty: Duty) -> Option<i64> {
        match duty {
            Duty::Filed { at_ms } => Some(at_ms),
            Duty::Due { by_ms } => Some(by_ms),
            Duty::Late { since_ms } => Some(since_ms),
            Duty::NotYet => None,
        }
    }

    proptest! {
        #[test]
        fn no_input_makes_it_panic_and_instants_are_consistent(
            start in any::<i64>(),
            now in any::<i64>(),
            filed in proptest::collection::vec((stage(), any::<i64>()), 0..8),
            initial_within_ms in any::<i64>(),
            update_hour_local in any::<u32>(),
            utc_offset_s in any::<i32>(),
        ) {
            let rules = Rules { initial_within_ms, update_hour_local, utc_offset_s };
            let filed = filed.into_iter().map(|(stage, received_at_ms)| Filed { stage, received_at_ms }).collect();
            let divisions = BTreeMap::from([(COUNTY.to_owned(), filed)]);
            for duty in assess(start, &divisions, now, &rules) {
                for d in [duty.initial, duty.update] {
                    match d {
                        Duty::Filed { at_ms } => prop_assert!(at_ms <= now),
                        Duty::Due { by_ms } => prop_assert!(by_ms >= now),
                        Duty::Late { since_ms } => prop_assert!(since_ms < now),
                        Duty::NotYet => {}
                    }
                }
                if duty.done {
                    prop_assert_eq!(duty.update, Duty::NotYet);
                }
            }
        }

        #[test]
        fn order_and_reports_after_now_change_nothing(
            (filed, shuffled) in reports().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
            future in reports(),
            now_after_start in 0..8 * DAY_MS,
            rules in realistic_rules(),
        ) {
            let now = ms(START) + now_after_start;
            // The same reports in another order, mixed with reports received after now.
            let mut noisy = shuffled;
            for (i, f) in future.into_iter().enumerate() {
                let later = Filed { received_at_ms: now + 1 + f.received_at_ms - ms(START), ..f };
                noisy.insert(i.min(noisy.len()), later);
            }
            let plain = BTreeMap::from([(COUNTY.to_owned(), filed)]);
            let noisy = BTreeMap::from([(COUNTY.to_owned(), noisy)]);
            prop_assert_eq!(assess(ms(START), &plain, now, &rules), assess(ms(START), &noisy, now, &rules));
        }

        #[test]
        fn update_deadlines_fall_on_the_local_hour(
            filed in reports(),
            now_after_start in 0..8 * DAY_MS,
            rules in realistic_rules(),
        ) {
            let now = ms(START) + now_after_start;
            let divisions = BTreeMap::from([(COUNTY.to_owned(), filed)]);
            for duty in assess(ms(START), &divisions, now, &rules) {
                if let Duty::Due { by_ms: t } | Duty::Late { since_ms: t } = duty.update {
                    let local = t + i64::from(rules.utc_offset_s) * 1000;
                    prop_assert_eq!(local.rem_euclid(DAY_MS), i64::from(rules.update_hour_local) * HOUR_MS);
                    let initial_at = instant(duty.initial);
                    // The first update is due within two days of the initial; later ones only matter when late.
                    prop_assert!(initial_at.is_some_and(|i| t > i && (t - i <= 2 * DAY_MS || duty.update.is_late())));
                }
            }
        }
    }
}
