//! The ground truth of a drill: what the platform should end up showing if it loses nothing and
//! counts nothing twice, computed from the model's own state — never by running the node's or
//! the hub's statistics code, so that comparing the two is a real test.
//!
//! - **Statistics**: per incident and division, the indicators as the hub's
//!   `GET /api/v1/stats?incident=…&exercise=true` reports them (`division.totals`): each county's
//!   latest report (its unit files cumulative figures, so the latest is the last it filed),
//!   summed into the county's prefecture, province and the nation `000000` by the shape of the
//!   code. Every report carries all twelve indicators, so every division a report counts in has
//!   all twelve. Amounts are whole numbers, so sums are exact in any order.
//! - **Warnings**: per station and colour, the first time the readings the station sent reach
//!   that colour by the node's rules (docs/thresholds.toml, national defaults).
//! - **Outages**: the stations that go silent and for how long.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use yingji_proto::report::Figures;

/// The nation's code at the hub.
pub const NATION: &str = "000000";

/// The ground truth of a whole drill.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub scenario: String,
    pub seed: u64,
    pub duration_ms: u64,
    /// The first incident's id: the one `divisions` is about.
    pub incident: String,
    /// The first incident's statistics by division code (counties, prefectures, provinces and
    /// `000000`), as the hub serves them. Other incidents: [`Truth::incidents`].
    pub divisions: BTreeMap<String, Figures>,
    /// Every incident with its statistics and reports.
    pub incidents: Vec<TruthIncident>,
    /// Warnings the nodes should raise, by station and colour.
    pub warnings: Vec<ExpectedWarning>,
    /// Stations that go silent.
    pub outages: Vec<ExpectedOutage>,
    /// What the drill publishes.
    pub messages: MessageCounts,
}

/// One incident's truth.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TruthIncident {
    pub id: String,
    /// The contract v1 hazard of its reports.
    pub hazard: String,
    /// The scenario's hazards (kinds) behind it.
    pub hazards: Vec<String>,
    /// Statistics by division code, as the hub serves them.
    pub divisions: BTreeMap<String, Figures>,
    /// Per division: how many regions' latest reports count in it, and the latest
    /// `observed_at` among them (scenario ms; the hub shows epoch + this).
    pub reporting: BTreeMap<String, Reporting>,
    /// The counties that report (their units' device ids are `unit-{code}`).
    pub divisions_reporting: Vec<String>,
    /// Every report filed, in time order.
    pub reports: Vec<ReportTruth>,
    /// The first report's time, scenario ms.
    pub first_report_ms: Option<u64>,
}

/// How a division's figures are made up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporting {
    pub reporting_regions: usize,
    pub last_observed_at_ms: u64,
}

/// One report a unit files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportTruth {
    pub at_ms: u64,
    /// The unit's device id.
    pub unit: String,
    /// The node it reports to.
    pub node: String,
    /// The report's id.
    pub id: String,
    /// The county code.
    pub region: String,
    /// `initial`, `update` or `final`.
    pub stage: String,
    pub figures: Figures,
}

/// A warning a node should raise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedWarning {
    pub node: String,
    pub station: String,
    /// The station's county.
    pub region: String,
    /// `rain` or `water_level`.
    pub metric: String,
    /// For rain: the window of the rule that first held for this colour.
    pub window_h: Option<u32>,
    /// `blue`, `yellow`, `orange` or `red`.
    pub colour: String,
    /// The time of the first reading at which the station's colour is this one or higher,
    /// scenario ms.
    pub first_crossing_ms: u64,
    /// The window sum (mm) or level (m) at that reading.
    pub value: f64,
    /// The threshold or line crossed.
    pub threshold: f64,
}

/// A station that goes silent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedOutage {
    pub node: String,
    pub station: String,
    pub from_ms: u64,
    pub to_ms: u64,
    /// Whether the silence is long enough for the node to call the station offline
    /// (more than 3 reporting intervals without a reading).
    pub offline_expected: bool,
}

/// Counts of what a drill publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    pub reports: u64,
    /// SenML packs.
    pub readings: u64,
    /// SenML records in them.
    pub records: u64,
    pub statuses: u64,
}

/// A county's ancestors by the shape of its code: prefecture, province, nation.
pub fn ancestors(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) && code != NATION {
        if !code.ends_with("00") {
            out.push(format!("{}00", &code[..4]));
        }
        if !code.ends_with("0000") {
            out.push(format!("{}0000", &code[..2]));
        }
        out.push(NATION.to_owned());
    }
    out
}

/// Adds `b` into `a`, indicator by indicator (absent stays absent unless `b` has it).
pub fn add_figures(a: &mut Figures, b: &Figures) {
    fn count(x: &mut Option<i64>, y: Option<i64>) {
        if let Some(y) = y {
            *x = Some(x.unwrap_or(0) + y);
        }
    }
    fn amount(x: &mut Option<f64>, y: Option<f64>) {
        if let Some(y) = y {
            *x = Some(x.unwrap_or(0.0) + y);
        }
    }
    count(&mut a.affected, b.affected);
    count(&mut a.deaths, b.deaths);
    count(&mut a.missing, b.missing);
    count(&mut a.injured, b.injured);
    count(&mut a.relocated, b.relocated);
    count(&mut a.needing_aid, b.needing_aid);
    count(&mut a.houses_collapsed, b.houses_collapsed);
    count(&mut a.houses_severely_damaged, b.houses_severely_damaged);
    count(&mut a.houses_damaged, b.houses_damaged);
    amount(&mut a.crop_area_ha, b.crop_area_ha);
    amount(&mut a.crop_failure_ha, b.crop_failure_ha);
    amount(&mut a.direct_loss_cny, b.direct_loss_cny);
}

/// Rolls the latest report of each county up to its prefecture, province and the nation.
/// `latest` is county → (figures, observed ms).
pub fn roll_up(latest: &BTreeMap<String, (Figures, u64)>) -> (BTreeMap<String, Figures>, BTreeMap<String, Reporting>) {
    let mut divisions: BTreeMap<String, Figures> = BTreeMap::new();
    let mut reporting: BTreeMap<String, Reporting> = BTreeMap::new();
    for (county, (figures, at)) in latest {
        for division in std::iter::once(county.clone()).chain(ancestors(county)) {
            add_figures(divisions.entry(division.clone()).or_default(), figures);
            let r = reporting.entry(division).or_default();
            r.reporting_regions += 1;
            r.last_observed_at_ms = r.last_observed_at_ms.max(*at);
        }
    }
    (divisions, reporting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_follow_the_code() {
        let cases: [(&str, &[&str]); 5] = [
            ("910102", &["910100", "910000", NATION]),
            ("910100", &["910000", NATION]),
            ("910000", &[NATION]),
            (NATION, &[]),
            ("unknown", &[]),
        ];
        for (code, want) in cases {
            assert_eq!(ancestors(code), want, "{code}");
        }
    }

    #[test]
    fn roll_up_sums_counties_into_every_ancestor() {
        let f = |deaths, loss| Figures { deaths: Some(deaths), direct_loss_cny: Some(loss), ..Figures::default() };
        let latest = BTreeMap::from([
            ("910101".to_owned(), (f(1, 10.0), 5)),
            ("910102".to_owned(), (f(2, 20.0), 7)),
            ("920101".to_owned(), (f(4, 40.0), 3)),
        ]);
        let (d, r) = roll_up(&latest);
        let deaths: Vec<(&str, Option<i64>, usize, u64)> =
            d.iter().map(|(k, v)| (k.as_str(), v.deaths, r[k].reporting_regions, r[k].last_observed_at_ms)).collect();
        assert_eq!(
            deaths,
            [
                (NATION, Some(7), 3, 7),
                ("910000", Some(3), 2, 7),
                ("910100", Some(3), 2, 7),
                ("910101", Some(1), 1, 5),
                ("910102", Some(2), 1, 7),
                ("920000", Some(4), 1, 3),
                ("920100", Some(4), 1, 3),
                ("920101", Some(4), 1, 3),
            ]
        );
        assert_eq!(d[NATION].direct_loss_cny, Some(70.0));
        assert_eq!(d[NATION].affected, None, "absent is not zero");
    }
}
