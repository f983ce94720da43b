//! Disaster statistics (design §3.3): which stored report counts for each region, and the totals
//! of every division over the regions inside it — the body of the `stats` event (§3.5).
//!
//! This module owns the statistics semantics and nothing else. It is pure: no IO, no clock, and
//! no input can make it fail or panic. The caller loads the facts, keeps drill data out of real
//! data, and publishes what comes back.
//!
//! # Semantics
//! - **Which report counts.** A report's figures are the cumulative totals of its
//!   `(incident, region)` as of its `observed_at`. Per region, the report with the greatest
//!   `(observed_at, id, device)` supersedes every other ([`supersedes`]): the latest observation
//!   wins, a tie goes to the greatest `id`, and the device settles what is left, so the order is
//!   total. Duplicates and input order change nothing. Two facts with the same key are the same
//!   stored report (the store is idempotent on `(device, id)`); should two differ anyway, the
//!   pick still does not depend on the order: a fixed comparison of their incident and figures
//!   decides.
//! - **One incident at a time.** [`latest`] and [`rollup`] treat their input as one incident's
//!   facts; [`by_incident`] splits a mixed set.
//! - **As of a time.** [`latest`] with `at_ms` ignores reports observed after `at_ms` (a report
//!   observed exactly at `at_ms` counts): the picture as it stood then.
//! - **Absent is not zero.** An indicator of [`Totals`] is `None` when no counted report gave it,
//!   and `Some(0)` when one said zero. A report that leaves an indicator out adds nothing to it.
//! - **Roll-up.** Every region's latest report counts once, in the region it names and in every
//!   ancestor of it. A division's totals are its own latest report (if any) plus the totals of
//!   the regions inside it, so a county's figures appear in the county, its prefecture and its
//!   province. A report filed for a prefecture is therefore added to its counties' reports, never
//!   compared with them: it stands for what the counties' reports do not cover.
//! - **Hierarchy.** Ancestors come from a [`Hierarchy`]: the regions file ([`Regions`]) or the
//!   shape of GB/T 2260 codes ([`CodeHierarchy`]). A cycle or a chain longer than [`MAX_DEPTH`]
//!   is cut, so a bad regions file cannot hang the node or count a report twice in a division.
//! - **Arithmetic.** Counts saturate at `i64::MAX` instead of overflowing. Amounts are summed in
//!   region-code order, so the same facts give the same totals bit for bit.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;
use yingji_proto::report::Figures;

use crate::regions::Regions;

/// One stored report, as statistics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// The disaster event the report belongs to.
    pub incident: String,
    /// The division code the report names (or [`UNKNOWN`](crate::regions::UNKNOWN)).
    pub region: String,
    /// The device that filed it: the last tie-break between reports.
    pub device: String,
    /// The report's id, unique per device.
    pub id: String,
    /// When the figures were true, in Unix milliseconds: the latest observation wins.
    pub observed_at_ms: i64,
    /// The cumulative figures for `(incident, region)` as of `observed_at_ms`.
    pub figures: Figures,
}

/// True when `a` supersedes `b`: its `(observed_at_ms, id, device)` is greater.
pub fn supersedes(a: &Fact, b: &Fact) -> bool {
    key_cmp(a, b) == Ordering::Greater
}

fn key_cmp(a: &Fact, b: &Fact) -> Ordering {
    (a.observed_at_ms, &a.id, &a.device).cmp(&(b.observed_at_ms, &b.id, &b.device))
}

/// The order [`latest`] picks by: the key, then (for facts that share a key but differ) a fixed
/// comparison of everything else, so that the pick never depends on input order.
fn pick_cmp(a: &Fact, b: &Fact) -> Ordering {
    key_cmp(a, b).then_with(|| a.incident.cmp(&b.incident)).then_with(|| figures_cmp(&a.figures, &b.figures))
}

fn figures_cmp(a: &Figures, b: &Figures) -> Ordering {
    let counts = a.counts().into_iter().zip(b.counts()).map(|((_, x), (_, y))| x.cmp(&y));
    let amounts = a.amounts().into_iter().zip(b.amounts()).map(|((_, x, _), (_, y, _))| match (x, y) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (x, y) => x.is_some().cmp(&y.is_some()),
    });
    counts.chain(amounts).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

/// Splits facts by incident, for callers holding several incidents' facts.
pub fn by_incident<'a>(facts: impl IntoIterator<Item = &'a Fact>) -> BTreeMap<String, Vec<&'a Fact>> {
    let mut out: BTreeMap<String, Vec<&'a Fact>> = BTreeMap::new();
    for fact in facts {
        out.entry(fact.incident.clone()).or_default().push(fact);
    }
    out
}

/// Per region, the fact that supersedes all others observed at or before `at_ms` (every fact
/// when `None`). The input is one incident's facts; duplicates and order do not matter.
pub fn latest<'a>(facts: impl IntoIterator<Item = &'a Fact>, at_ms: Option<i64>) -> BTreeMap<String, &'a Fact> {
    let mut out: BTreeMap<String, &'a Fact> = BTreeMap::new();
    for fact in facts {
        if at_ms.is_some_and(|at| fact.observed_at_ms > at) {
            continue;
        }
        match out.get_mut(&fact.region) {
            Some(current) => {
                if pick_cmp(fact, current).is_gt() {
                    *current = fact;
                }
            }
            None => {
                out.insert(fact.region.clone(), fact);
            }
        }
    }
    out
}

/// The twelve GB/T 24438 indicators summed over the reports that count in a division. An
/// indicator no counted report gave is `None` (absent is not zero) and is left out of the JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    /// 受灾人口 (person-times).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affected: Option<i64>,
    /// 因灾死亡人口.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deaths: Option<i64>,
    /// 因灾失踪人口.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<i64>,
    /// 受伤人口.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injured: Option<i64>,
    /// 紧急转移安置人口 (person-times).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relocated: Option<i64>,
    /// 需紧急生活救助人口 (person-times).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needing_aid: Option<i64>,
    /// 倒塌房屋 (rooms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub houses_collapsed: Option<i64>,
    /// 严重损坏房屋 (rooms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub houses_severely_damaged: Option<i64>,
    /// 一般损坏房屋 (rooms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub houses_damaged: Option<i64>,
    /// 农作物受灾面积, in hectares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop_area_ha: Option<f64>,
    /// 其中绝收面积, in hectares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop_failure_ha: Option<f64>,
    /// 直接经济损失, in yuan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_loss_cny: Option<f64>,
}

impl Totals {
    /// Adds one report's figures: each indicator it gives is added (counts saturate), the
    /// others are left as they are.
    pub fn add(&mut self, figures: &Figures) {
        fn count(total: &mut Option<i64>, value: Option<i64>) {
            if let Some(v) = value {
                *total = Some(total.unwrap_or(0).saturating_add(v));
            }
        }
        fn amount(total: &mut Option<f64>, value: Option<f64>) {
            if let Some(v) = value {
                *total = Some(total.unwrap_or(0.0) + v);
            }
        }
        count(&mut self.affected, figures.affected);
        count(&mut self.deaths, figures.deaths);
        count(&mut self.missing, figures.missing);
        count(&mut self.injured, figures.injured);
        count(&mut self.relocated, figures.relocated);
        count(&mut self.needing_aid, figures.needing_aid);
        count(&mut self.houses_collapsed, figures.houses_collapsed);
        count(&mut self.houses_severely_damaged, figures.houses_severely_damaged);
        count(&mut self.houses_damaged, figures.houses_damaged);
        amount(&mut self.crop_area_ha, figures.crop_area_ha);
        amount(&mut self.crop_failure_ha, figures.crop_failure_ha);
        amount(&mut self.direct_loss_cny, figures.direct_loss_cny);
    }
}

/// The level of a division, read from the shape of its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// `xx0000`.
    Province,
    /// `xxxx00`.
    Prefecture,
    /// Any other six-digit code.
    County,
    /// [`UNKNOWN`](crate::regions::UNKNOWN), or anything that is not six ASCII digits.
    Unknown,
}

/// The level of a division from its GB/T 2260 code: `xx0000` is a province, `xxxx00` a
/// prefecture, any other six digits a county; anything else (including
/// [`UNKNOWN`](crate::regions::UNKNOWN)) is [`Level::Unknown`].
pub fn level_of(code: &str) -> Level {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        Level::Unknown
    } else if code.ends_with("0000") {
        Level::Province
    } else if code.ends_with("00") {
        Level::Prefecture
    } else {
        Level::County
    }
}

/// Where a division sits: its parent, if it has one.
pub trait Hierarchy {
    /// The code of the division directly enclosing `code`; `None` for a top-level or unknown one.
    fn parent(&self, code: &str) -> Option<String>;
}

/// The regions file's `parent` properties; a code the file does not hold has no parent.
impl Hierarchy for Regions {
    fn parent(&self, code: &str) -> Option<String> {
        self.get(code).and_then(|d| d.parent.clone())
    }
}

/// Parents from the shape of GB/T 2260 codes, for nodes without a regions file: county
/// `330302` → prefecture `330300` → province `330000` → none.
/// [`UNKNOWN`](crate::regions::UNKNOWN) and anything that is not six digits have no parent.
#[derive(Debug, Clone, Copy, Default)]
pub struct CodeHierarchy;

impl Hierarchy for CodeHierarchy {
    fn parent(&self, code: &str) -> Option<String> {
        match level_of(code) {
            Level::County => code.get(..4).map(|p| format!("{p}00")),
            Level::Prefecture => code.get(..2).map(|p| format!("{p}0000")),
            Level::Province | Level::Unknown => None,
        }
    }
}

/// The most divisions a lineage holds: far more than GB/T 2260's three levels, few enough that a
/// hierarchy that never ends costs nothing.
pub const MAX_DEPTH: usize = 16;

/// `code` and its ancestors, innermost first. The walk stops at a code already on the path (a
/// cycle) and after [`MAX_DEPTH`] divisions, so every code appears at most once.
pub fn lineage(h: &dyn Hierarchy, code: &str) -> Vec<String> {
    let mut out = vec![code.to_owned()];
    while out.len() < MAX_DEPTH {
        let Some(parent) = out.last().and_then(|c| h.parent(c)) else { break };
        if out.contains(&parent) {
            break;
        }
        out.push(parent);
    }
    out
}

/// One division's statistics for an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DivisionTotals {
    /// The division code.
    pub division: String,
    /// Its level, from the code's shape.
    pub level: Level,
    /// Its own latest report plus those of every region inside it.
    pub totals: Totals,
    /// How many regions' latest reports count in it (itself included, when it reported).
    pub reporting_regions: usize,
    /// The latest `observed_at` among the reports that count in it: how fresh the totals are.
    pub last_observed_at_ms: i64,
}

/// Totals for every division that holds at least one region of `latest` (see the module
/// documentation for the semantics), keyed by division code.
pub fn rollup(latest: &BTreeMap<String, &Fact>, h: &dyn Hierarchy) -> BTreeMap<String, DivisionTotals> {
    let mut out: BTreeMap<String, DivisionTotals> = BTreeMap::new();
    for (region, fact) in latest {
        for division in lineage(h, region) {
            let entry = out.entry(division).or_insert_with_key(|division| DivisionTotals {
                division: division.clone(),
                level: level_of(division),
                totals: Totals::default(),
                reporting_regions: 0,
                last_observed_at_ms: fact.observed_at_ms,
            });
            entry.totals.add(&fact.figures);
            entry.reporting_regions += 1;
            entry.last_observed_at_ms = entry.last_observed_at_ms.max(fact.observed_at_ms);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use proptest::prelude::*;

    use super::*;
    use crate::regions::UNKNOWN;

    const INCIDENT: &str = "typhoon-2026-14";

    fn fact(region: &str, device: &str, id: &str, observed_at_ms: i64, affected: Option<i64>) -> Fact {
        Fact {
            incident: INCIDENT.to_owned(),
            region: region.to_owned(),
            device: device.to_owned(),
            id: id.to_owned(),
            observed_at_ms,
            figures: Figures { affected, ..Figures::default() },
        }
    }

    fn with_deaths(mut f: Fact, deaths: Option<i64>) -> Fact {
        f.figures.deaths = deaths;
        f
    }

    /// Division, reporting regions, affected, deaths, last observed.
    type Row = (&'static str, usize, Option<i64>, Option<i64>, i64);

    /// One row of the statistics table.
    struct Case {
        name: &'static str,
        facts: Vec<Fact>,
        at_ms: Option<i64>,
        /// Region → the id of the report that must count for it.
        picks: Vec<(&'static str, &'static str)>,
        /// Every division of the roll-up, and no other.
        want: Vec<Row>,
    }

    /// Runs one case forwards and backwards; `Err` says how it went wrong.
    fn check(case: &Case) -> Result<(), String> {
        let forwards = latest(&case.facts, case.at_ms);
        let backwards = latest(case.facts.iter().rev(), case.at_ms);
        if forwards != backwards {
            return Err(format!("input order changed the picks: {forwards:?} vs {backwards:?}"));
        }
        let picks: Vec<(&str, &str)> = forwards.iter().map(|(r, f)| (r.as_str(), f.id.as_str())).collect();
        if picks != case.picks {
            return Err(format!("picks {picks:?}, want {:?}", case.picks));
        }
        let got: Vec<_> = rollup(&forwards, &CodeHierarchy)
            .into_values()
            .map(|d| (d.division, d.reporting_regions, d.totals.affected, d.totals.deaths, d.last_observed_at_ms))
            .collect();
        let want: Vec<_> = case.want.iter().map(|&(d, n, a, x, t)| (d.to_owned(), n, a, x, t)).collect();
        if got != want {
            return Err(format!("roll-up {got:?}, want {want:?}"));
        }
        Ok(())
    }

    #[test]
    fn statistics_table() {
        let cases = vec![
            Case {
                name: "the latest observation wins",
                facts: vec![fact("330302", "d1", "r2", 2, Some(15)), fact("330302", "d1", "r1", 1, Some(10))],
                at_ms: None,
                picks: vec![("330302", "r2")],
                want: vec![
                    ("330000", 1, Some(15), None, 2),
                    ("330300", 1, Some(15), None, 2),
                    ("330302", 1, Some(15), None, 2),
                ],
            },
            Case {
                name: "a tie on time goes to the greatest id",
                facts: vec![fact("330302", "d9", "r1", 5, Some(10)), fact("330302", "d1", "r2", 5, Some(20))],
                at_ms: None,
                picks: vec![("330302", "r2")],
                want: vec![
                    ("330000", 1, Some(20), None, 5),
                    ("330300", 1, Some(20), None, 5),
                    ("330302", 1, Some(20), None, 5),
                ],
            },
            Case {
                name: "a tie on time and id goes to the greatest device",
                facts: vec![fact("330302", "d2", "r1", 5, Some(20)), fact("330302", "d1", "r1", 5, Some(10))],
                at_ms: None,
                picks: vec![("330302", "r1")],
                want: vec![
                    ("330000", 1, Some(20), None, 5),
                    ("330300", 1, Some(20), None, 5),
                    ("330302", 1, Some(20), None, 5),
                ],
            },
            Case {
                name: "a later observation beats a greater id",
                facts: vec![fact("330302", "d1", "r9", 5, Some(10)), fact("330302", "d1", "r1", 6, Some(7))],
                at_ms: None,
                picks: vec![("330302", "r1")],
                want: vec![
                    ("330000", 1, Some(7), None, 6),
                    ("330300", 1, Some(7), None, 6),
                    ("330302", 1, Some(7), None, 6),
                ],
            },
            Case {
                name: "duplicates count once",
                facts: vec![fact("330302", "d1", "r1", 1, Some(10)), fact("330302", "d1", "r1", 1, Some(10))],
                at_ms: None,
                picks: vec![("330302", "r1")],
                want: vec![
                    ("330000", 1, Some(10), None, 1),
                    ("330300", 1, Some(10), None, 1),
                    ("330302", 1, Some(10), None, 1),
                ],
            },
            Case {
                name: "at_ms leaves out what was observed later",
                facts: vec![fact("330302", "d1", "r1", 1, Some(10)), fact("330302", "d1", "r2", 3, Some(15))],
                at_ms: Some(2),
                picks: vec![("330302", "r1")],
                want: vec![
                    ("330000", 1, Some(10), None, 1),
                    ("330300", 1, Some(10), None, 1),
                    ("330302", 1, Some(10), None, 1),
                ],
            },
            Case {
                name: "at_ms counts what was observed exactly then",
                facts: vec![fact("330302", "d1", "r1", 1, Some(10)), fact("330302", "d1", "r2", 3, Some(15))],
                at_ms: Some(3),
                picks: vec![("330302", "r2")],
                want: vec![
                    ("330000", 1, Some(15), None, 3),
                    ("330300", 1, Some(15), None, 3),
                    ("330302", 1, Some(15), None, 3),
                ],
            },
            Case {
                name: "at_ms before every report gives nothing",
                facts: vec![fact("330302", "d1", "r1", 1, Some(10))],
                at_ms: Some(0),
                picks: vec![],
                want: vec![],
            },
            Case {
                name: "siblings sum in their prefecture and province",
                facts: vec![fact("330302", "d1", "r1", 1, Some(10)), fact("330303", "d2", "r1", 4, Some(5))],
                at_ms: None,
                picks: vec![("330302", "r1"), ("330303", "r1")],
                want: vec![
                    ("330000", 2, Some(15), None, 4),
                    ("330300", 2, Some(15), None, 4),
                    ("330302", 1, Some(10), None, 1),
                    ("330303", 1, Some(5), None, 4),
                ],
            },
            Case {
                name: "a prefecture's own report adds to its counties'",
                facts: vec![fact("330300", "city", "r1", 2, Some(100)), fact("330302", "d1", "r1", 1, Some(10))],
                at_ms: None,
                picks: vec![("330300", "r1"), ("330302", "r1")],
                want: vec![
                    ("330000", 2, Some(110), None, 2),
                    ("330300", 2, Some(110), None, 2),
                    ("330302", 1, Some(10), None, 1),
                ],
            },
            Case {
                name: "absent is not zero",
                facts: vec![
                    with_deaths(fact("330302", "d1", "r1", 1, Some(10)), None),
                    with_deaths(fact("330303", "d2", "r1", 1, None), Some(0)),
                    with_deaths(fact("330102", "d3", "r1", 1, None), None),
                ],
                at_ms: None,
                picks: vec![("330102", "r1"), ("330302", "r1"), ("330303", "r1")],
                want: vec![
                    ("330000", 3, Some(10), Some(0), 1),
                    ("330100", 1, None, None, 1),
                    ("330102", 1, None, None, 1),
                    ("330300", 2, Some(10), Some(0), 1),
                    ("330302", 1, Some(10), None, 1),
                    ("330303", 1, None, Some(0), 1),
                ],
            },
            Case {
                name: "a superseded report counts nowhere, even when it gave more",
                facts: vec![
                    with_deaths(fact("330302", "d1", "r1", 1, Some(10)), Some(2)),
                    fact("330302", "d1", "r2", 2, Some(12)),
                ],
                at_ms: None,
                picks: vec![("330302", "r2")],
                want: vec![
                    ("330000", 1, Some(12), None, 2),
                    ("330300", 1, Some(12), None, 2),
                    ("330302", 1, Some(12), None, 2),
                ],
            },
            Case {
                name: "the unknown region counts only in itself",
                facts: vec![fact(UNKNOWN, "d1", "r1", 1, Some(3)), fact("330302", "d1", "r2", 1, Some(10))],
                at_ms: None,
                picks: vec![("330302", "r2"), (UNKNOWN, "r1")],
                want: vec![
                    ("330000", 1, Some(10), None, 1),
                    ("330300", 1, Some(10), None, 1),
                    ("330302", 1, Some(10), None, 1),
                    (UNKNOWN, 1, Some(3), None, 1),
                ],
            },
            Case {
                name: "counts saturate instead of overflowing",
                facts: vec![fact("330302", "d1", "r1", 1, Some(i64::MAX)), fact("330303", "d1", "r2", 1, Some(1))],
                at_ms: None,
                picks: vec![("330302", "r1"), ("330303", "r2")],
                want: vec![
                    ("330000", 2, Some(i64::MAX), None, 1),
                    ("330300", 2, Some(i64::MAX), None, 1),
                    ("330302", 1, Some(i64::MAX), None, 1),
                    ("330303", 1, Some(1), None, 1),
                ],
            },
            Case {
                name: "same key, different figures: the pick does not depend on order",
                facts: vec![fact("330302", "d1", "r1", 1, Some(10)), fact("330302", "d1", "r1", 1, Some(11))],
                at_ms: None,
                picks: vec![("330302", "r1")],
                want: vec![
                    ("330000", 1, Some(11), None, 1),
                    ("330300", 1, Some(11), None, 1),
                    ("330302", 1, Some(11), None, 1),
                ],
            },
            Case { name: "no facts, no statistics", facts: vec![], at_ms: None, picks: vec![], want: vec![] },
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
    fn supersedes_is_strict() {
        let a = fact("330302", "d1", "r1", 1, None);
        let b = fact("330302", "d1", "r2", 1, None);
        assert!(supersedes(&b, &a));
        assert!(!supersedes(&a, &b));
        assert!(!supersedes(&a, &a.clone()));
    }

    #[test]
    fn levels_and_parents_from_code_shape() {
        let cases = [
            ("330000", Level::Province, None),
            ("330300", Level::Prefecture, Some("330000")),
            ("330302", Level::County, Some("330300")),
            ("110101", Level::County, Some("110100")),
            (UNKNOWN, Level::Unknown, None),
            ("", Level::Unknown, None),
            ("33030", Level::Unknown, None),
            ("3303021", Level::Unknown, None),
            ("33O302", Level::Unknown, None),
            ("３３0302", Level::Unknown, None),
            ("ab€d", Level::Unknown, None),
        ];
        for (code, level, parent) in cases {
            assert_eq!(level_of(code), level, "{code:?}");
            assert_eq!(CodeHierarchy.parent(code).as_deref(), parent, "{code:?}");
        }
        assert_eq!(lineage(&CodeHierarchy, "330302"), ["330302", "330300", "330000"]);
        assert_eq!(serde_json::to_string(&Level::Prefecture).ok().as_deref(), Some(r#""prefecture""#));
    }

    #[test]
    fn the_regions_file_is_a_hierarchy() {
        fn square(code: &str, parent: Option<&str>) -> String {
            let parent = parent.map(|p| format!(r#","parent":"{p}""#)).unwrap_or_default();
            format!(
                r#"{{"type":"Feature","properties":{{"code":"{code}"{parent}}},"geometry":{{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}}}}"#
            )
        }
        let features = [square("330000", None), square("330300", Some("330000")), square("330302", Some("330300"))];
        let regions =
            Regions::from_geojson(&format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(",")))
                .expect("sample regions");
        assert_eq!(lineage(&regions, "330302"), ["330302", "330300", "330000"]);
        // A code the file does not hold stands alone, whatever its shape says.
        assert_eq!(lineage(&regions, "330303"), ["330303"]);
        let chosen = [fact("330302", "d1", "r1", 1, Some(4))];
        let by_file = rollup(&latest(&chosen, None), &regions);
        let by_shape = rollup(&latest(&chosen, None), &CodeHierarchy);
        assert_eq!(by_file, by_shape);
    }

    /// A hierarchy from a table, for shapes the code cannot take.
    struct Table(HashMap<&'static str, &'static str>);

    impl Hierarchy for Table {
        fn parent(&self, code: &str) -> Option<String> {
            self.0.get(code).map(|p| (*p).to_owned())
        }
    }

    /// A hierarchy that never ends.
    struct Endless;

    impl Hierarchy for Endless {
        fn parent(&self, code: &str) -> Option<String> {
            Some(format!("{code}+"))
        }
    }

    #[test]
    fn cycles_and_endless_chains_are_cut() {
        let cycle = Table(HashMap::from([("a", "b"), ("b", "c"), ("c", "a"), ("self", "self")]));
        assert_eq!(lineage(&cycle, "a"), ["a", "b", "c"]);
        assert_eq!(lineage(&cycle, "self"), ["self"]);
        assert_eq!(lineage(&Endless, "x").len(), MAX_DEPTH);

        let facts = [fact("a", "d1", "r1", 1, Some(1)), fact("b", "d1", "r2", 1, Some(2))];
        let got = rollup(&latest(&facts, None), &cycle);
        let summary: Vec<_> =
            got.values().map(|d| (d.division.as_str(), d.reporting_regions, d.totals.affected)).collect();
        // Each report counts once in every division on its (cut) path.
        assert_eq!(summary, [("a", 2, Some(3)), ("b", 2, Some(3)), ("c", 2, Some(3))]);
    }

    #[test]
    fn totals_leave_absent_indicators_out_of_the_json() {
        let mut t = Totals::default();
        t.add(&Figures { deaths: Some(0), crop_area_ha: Some(1.5), ..Figures::default() });
        let json = serde_json::to_value(t).expect("totals serialise");
        assert_eq!(json, serde_json::json!({"deaths": 0, "crop_area_ha": 1.5}));
        let d = DivisionTotals {
            division: "330300".into(),
            level: level_of("330300"),
            totals: t,
            reporting_regions: 1,
            last_observed_at_ms: 7,
        };
        let json = serde_json::to_value(&d).expect("division totals serialise");
        assert_eq!(
            json,
            serde_json::json!({
                "division": "330300",
                "level": "prefecture",
                "totals": {"deaths": 0, "crop_area_ha": 1.5},
                "reporting_regions": 1,
                "last_observed_at_ms": 7
            })
        );
    }

    // -----------------------------------------------------------------------------------------
    // Properties.

    /// Regions of a small three-level tree, a county whose prefecture and province never report,
    /// and the unknown region.
    const REGIONS: [&str; 8] = ["330000", "330100", "330102", "330105", "330300", "330302", "440105", UNKNOWN];
    /// Every division a report in `REGIONS` can count in.
    const DIVISIONS: [&str; 10] =
        ["330000", "330100", "330102", "330105", "330300", "330302", "440000", "440100", "440105", UNKNOWN];

    fn figures() -> impl Strategy<Value = Figures> {
        // Amounts are multiples of 0.25 well inside f64's exact range, so sums do not depend on
        // their order and the reference can add them in any order.
        let count = || proptest::option::of(0..1_000i64);
        let amount = || proptest::option::of((0..4_000u32).prop_map(|k| f64::from(k) * 0.25));
        (
            (count(), count(), count(), count(), count(), count()),
            (count(), count(), count()),
            (amount(), amount(), amount()),
        )
            .prop_map(|((a, b, c, d, e, f), (g, h, i), (j, k, l))| Figures {
                affected: a,
                deaths: b,
                missing: c,
                injured: d,
                relocated: e,
                needing_aid: f,
                houses_collapsed: g,
                houses_severely_damaged: h,
                houses_damaged: i,
                crop_area_ha: j,
                crop_failure_ha: k,
                direct_loss_cny: l,
            })
    }

    fn any_fact() -> impl Strategy<Value = Fact> {
        (
            prop::sample::select(vec!["inc-a", "inc-b"]),
            prop::sample::select(REGIONS.to_vec()),
            prop::sample::select(vec!["d1", "d2", "d3"]),
            prop::sample::select(vec!["r1", "r2", "r3", "r4"]),
            0..6i64,
            figures(),
        )
            .prop_map(|(incident, region, device, id, t, figures)| Fact {
                incident: incident.to_owned(),
                region: region.to_owned(),
                device: device.to_owned(),
                id: id.to_owned(),
                // Few distinct times: ties are common.
                observed_at_ms: t * 1_000,
                figures,
            })
    }

    /// Distinct stored reports (the store keeps one per device and id), and the same reports
    /// shuffled with some of them duplicated.
    fn scenario() -> impl Strategy<Value = (Vec<Fact>, Vec<Fact>, Option<i64>)> {
        (
            proptest::collection::vec(any_fact(), 0..24),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            proptest::option::of(-1_000..7_000i64),
        )
            .prop_flat_map(|(facts, dups, at)| {
                let mut seen = HashSet::new();
                let stored: Vec<Fact> =
                    facts.into_iter().filter(|f| seen.insert((f.device.clone(), f.id.clone()))).collect();
                let mut input = stored.clone();
                if !stored.is_empty() {
                    input.extend(dups.iter().map(|i| stored[i.index(stored.len())].clone()));
                }
                (Just(stored), Just(input).prop_shuffle(), Just(at))
            })
    }

    /// Whether `division` holds `region`, by comparing code prefixes.
    fn holds(division: &str, region: &str) -> bool {
        if division == region {
            return true;
        }
        let digits = |c: &str| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit());
        if !digits(division) || !digits(region) {
            return false;
        }
        if division.ends_with("0000") {
            region[..2] == division[..2]
        } else if division.ends_with("00") {
            region[..4] == division[..4]
        } else {
            false
        }
    }

    fn sum_counts(facts: &[&Fact], get: fn(&Figures) -> Option<i64>) -> Option<i64> {
        let values: Vec<i64> = facts.iter().filter_map(|f| get(&f.figures)).collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    fn sum_amounts(facts: &[&Fact], get: fn(&Figures) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = facts.iter().filter_map(|f| get(&f.figures)).collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// The statistics computed another way: sort everything by the key, let later facts
    /// overwrite earlier ones, then sum for each division over the picked facts it holds.
    fn reference(stored: &[Fact], at: Option<i64>) -> BTreeMap<String, BTreeMap<String, DivisionTotals>> {
        let mut sorted: Vec<&Fact> = stored.iter().filter(|f| at.is_none_or(|at| f.observed_at_ms <= at)).collect();
        sorted.sort_by_key(|f| (f.observed_at_ms, f.id.clone(), f.device.clone()));
        let mut picked: HashMap<(&str, &str), &Fact> = HashMap::new();
        for f in sorted {
            picked.insert((&f.incident, &f.region), f);
        }
        let mut out: BTreeMap<String, BTreeMap<String, DivisionTotals>> = BTreeMap::new();
        for incident in picked.keys().map(|(i, _)| *i).collect::<HashSet<_>>() {
            let mine: Vec<&Fact> = picked.values().filter(|f| f.incident == incident).copied().collect();
            let divisions = out.entry(incident.to_owned()).or_default();
            for division in DIVISIONS {
                let inside: Vec<&Fact> = mine.iter().filter(|f| holds(division, &f.region)).copied().collect();
                let Some(last) = inside.iter().map(|f| f.observed_at_ms).max() else { continue };
                let totals = Totals {
                    affected: sum_counts(&inside, |f| f.affected),
                    deaths: sum_counts(&inside, |f| f.deaths),
                    missing: sum_counts(&inside, |f| f.missing),
                    injured: sum_counts(&inside, |f| f.injured),
                    relocated: sum_counts(&inside, |f| f.relocated),
                    needing_aid: sum_counts(&inside, |f| f.needing_aid),
                    houses_collapsed: sum_counts(&inside, |f| f.houses_collapsed),
                    houses_severely_damaged: sum_counts(&inside, |f| f.houses_severely_damaged),
                    houses_damaged: sum_counts(&inside, |f| f.houses_damaged),
                    crop_area_ha: sum_amounts(&inside, |f| f.crop_area_ha),
                    crop_failure_ha: sum_amounts(&inside, |f| f.crop_failure_ha),
                    direct_loss_cny: sum_amounts(&inside, |f| f.direct_loss_cny),
                };
                let level = match division {
                    "330000" | "440000" => Level::Province,
                    "330100" | "330300" | "440100" => Level::Prefecture,
                    UNKNOWN => Level::Unknown,
                    _ => Level::County,
                };
                divisions.insert(
                    division.to_owned(),
                    DivisionTotals {
                        division: division.to_owned(),
                        level,
                        totals,
                        reporting_regions: inside.len(),
                        last_observed_at_ms: last,
                    },
                );
            }
        }
        out
    }

    fn computed(input: &[Fact], at: Option<i64>) -> BTreeMap<String, BTreeMap<String, DivisionTotals>> {
        by_incident(input)
            .into_iter()
            .map(|(incident, facts)| (incident, rollup(&latest(facts, at), &CodeHierarchy)))
            .filter(|(_, divisions)| !divisions.is_empty())
            .collect()
    }

    proptest! {
        #[test]
        fn shuffles_and_duplicates_change_nothing((stored, input, at) in scenario()) {
            prop_assert_eq!(computed(&input, at), reference(&stored, at));
            prop_assert_eq!(computed(&input, at), computed(&stored, at));
        }

        #[test]
        fn no_input_makes_it_panic(
            facts in proptest::collection::vec(
                (any::<String>(), "[0-9]{0,7}|unknown|\\PC{0,7}", any::<String>(), any::<i64>(), any::<Option<i64>>(),
                 any::<Option<f64>>()),
                0..16,
            ),
            at in any::<Option<i64>>(),
        ) {
            let facts: Vec<Fact> = facts
                .into_iter()
                .map(|(id, region, device, t, count, amount)| Fact {
                    incident: INCIDENT.to_owned(),
                    region,
                    device,
                    id,
                    observed_at_ms: t,
                    figures: Figures { deaths: count, affected: count, direct_loss_cny: amount, ..Figures::default() },
                })
                .collect();
            let picks = latest(&facts, at);
            let divisions = rollup(&picks, &CodeHierarchy);
            for region in picks.keys() {
                let own = divisions.get(region);
                prop_assert!(own.is_some_and(|d| d.reporting_regions >= 1), "{region:?} is missing");
            }
            for d in divisions.values() {
                prop_assert!(d.reporting_regions >= 1 && d.reporting_regions <= picks.len());
            }
        }
    }
}
