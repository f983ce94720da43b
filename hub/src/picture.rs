//! The national picture's pure parts: the division hierarchy up to the nation, statistics
//! across nodes (the node's semantics, [`yingji_node::stats`], applied to every node's
//! reports), what a warning event is about, and which incident a warning belongs to.
//!
//! No IO: the intake loads rows, calls these, and stores what comes back.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use yingji_node::regions::Regions;
use yingji_node::stats::{self, CodeHierarchy, Fact, Hierarchy, Totals};

use crate::rules::{Scope, ScopeStats};
use crate::store::ReportRow;

/// The code the hub gives the whole country: the parent of every top-level division.
pub const NATION: &str = "000000";

/// The hub's division hierarchy: the regions file where it knows a code, the shape of the
/// GB/T 2260 code elsewhere, and [`NATION`] above every province.
pub struct HubHierarchy<'a>(pub &'a Regions);

impl Hierarchy for HubHierarchy<'_> {
    fn parent(&self, code: &str) -> Option<String> {
        if code == NATION {
            return None;
        }
        let parent = match self.0.get(code) {
            Some(d) => d.parent.clone(),
            None => CodeHierarchy.parent(code),
        };
        Some(parent.unwrap_or_else(|| NATION.to_owned()))
    }
}

/// The level of a division in the hub's hierarchy.
pub fn scope_of(regions: &Regions, code: &str) -> Option<Scope> {
    if code == NATION {
        return Some(Scope::Nation);
    }
    if regions.get(code).is_none() && stats::level_of(code) == stats::Level::Unknown {
        return None;
    }
    let depth = stats::lineage(&HubHierarchy(regions), code).len();
    // lineage = [code, …, NATION]: a province has 2 entries, a prefecture 3, a county 4.
    match depth {
        2 => Some(Scope::Province),
        3 => Some(Scope::Prefecture),
        4 => Some(Scope::County),
        _ => None,
    }
}

/// A division's display name: the regions file's, 全国 for the nation, else the code.
pub fn name_of(regions: &Regions, code: &str) -> String {
    if code == NATION {
        return "全国".to_owned();
    }
    regions.get(code).map(|d| d.name.clone()).unwrap_or_else(|| code.to_owned())
}

/// Statistics facts from stored rows.
pub fn facts(rows: &[ReportRow]) -> Vec<Fact> {
    rows.iter()
        .map(|r| Fact {
            incident: r.incident.clone(),
            region: r.region.clone(),
            device: r.device.clone(),
            id: r.report_id.clone(),
            observed_at_ms: r.observed_ms,
            figures: serde_json::from_str(&r.figures).unwrap_or_default(),
        })
        .collect()
}

/// One division's statistics for an incident, as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DivisionStats {
    pub division: String,
    pub name: String,
    pub scope: Option<Scope>,
    pub parent: Option<String>,
    pub totals: Totals,
    pub reporting_regions: usize,
    pub last_observed_ms: i64,
}

/// Totals for every division holding a reporting region of the incident, up to the nation.
/// `rows` are the latest reports of one (incident, exercise): drill data never meets real data
/// because the caller loads them by that key.
pub fn rollup(rows: &[ReportRow], regions: &Regions) -> BTreeMap<String, DivisionStats> {
    let facts = facts(rows);
    let latest = stats::latest(&facts, None);
    let hierarchy = HubHierarchy(regions);
    stats::rollup(&latest, &hierarchy)
        .into_values()
        .map(|d| {
            let stats = DivisionStats {
                name: name_of(regions, &d.division),
                scope: scope_of(regions, &d.division),
                parent: hierarchy.parent(&d.division),
                totals: d.totals,
                reporting_regions: d.reporting_regions,
                last_observed_ms: d.last_observed_at_ms,
                division: d.division,
            };
            (stats.division.clone(), stats)
        })
        .collect()
}

/// The statistics a rule sees for `code`: its division at each level of its lineage.
pub fn scopes_for(
    code: &str,
    rolled: &BTreeMap<String, DivisionStats>,
    regions: &Regions,
) -> BTreeMap<Scope, ScopeStats> {
    let mut out = BTreeMap::new();
    for division in stats::lineage(&HubHierarchy(regions), code) {
        if let (Some(scope), Some(d)) = (scope_of(regions, &division), rolled.get(&division)) {
            out.insert(scope, ScopeStats { code: division.clone(), name: d.name.clone(), totals: d.totals });
        }
    }
    out
}

/// The distinct lineages an incident's rules must be judged on: one per reporting region, with
/// the same lineage judged once.
pub fn judged_regions(rows: &[ReportRow], regions: &Regions) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in rows {
        let lineage = stats::lineage(&HubHierarchy(regions), &r.region);
        if seen.insert(lineage) {
            out.push(r.region.clone());
        }
    }
    out
}

/// The province (top-level division) of a code, or the code itself.
pub fn province_of(regions: &Regions, code: &str) -> String {
    let lineage = stats::lineage(&HubHierarchy(regions), code);
    match lineage.len() {
        0 | 1 => code.to_owned(),
        n => lineage[n - 2].clone(),
    }
}

/// What a warning event is about: its key (stable from raise to clear), kind, station, colour
/// (`None` when cleared), value and threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct WarningKey {
    pub key: String,
    pub kind: String,
    pub station: Option<String>,
    pub colour: Option<String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
}

/// Reads a node's warning event body (see the node's `watch`): a station's rain or water-level
/// warning, or a division's overdue report. `None` for a body this hub does not understand.
pub fn warning_key(node: &str, incident: Option<&str>, body: &serde_json::Value) -> Option<WarningKey> {
    let str_of = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    if body.get("type").and_then(|v| v.as_str()) == Some("report_overdue") {
        let division = str_of("division")?;
        let duty = str_of("duty").unwrap_or_default();
        return Some(WarningKey {
            key: format!("{node}:overdue:{}:{division}:{duty}", incident.unwrap_or("")),
            kind: "report_overdue".to_owned(),
            station: None,
            colour: Some("blue".to_owned()),
            value: None,
            threshold: None,
        });
    }
    let station = str_of("station")?;
    let metric = body.get("metric")?;
    let kind = metric.get("kind").and_then(|v| v.as_str())?.to_owned();
    let key = match metric.get("window_h").and_then(|v| v.as_u64()) {
        Some(w) => format!("{node}:{station}:{kind}:{w}h"),
        None => format!("{node}:{station}:{kind}"),
    };
    let colour = body.get("colour").and_then(|v| v.as_str()).map(str::to_owned);
    Some(WarningKey {
        key,
        kind,
        station: Some(station),
        colour,
        value: body.get("value").and_then(|v| v.as_f64()),
        threshold: body.get("threshold").and_then(|v| v.as_f64()),
    })
}

/// The incident a warning in `region` belongs to: the most recently reported open incident of
/// the same exercise flag with a report in the same province, preferring water-related hazards
/// for rain and water-level warnings. `incidents` is (incident, hazard, region) rows.
pub fn incident_for_warning(
    region: &str,
    kind: &str,
    incidents: &[(String, String, String)],
    regions: &Regions,
) -> Option<String> {
    const WATER: [&str; 5] = ["flood", "rainstorm", "typhoon", "storm_surge", "debris_flow"];
    let province = province_of(regions, region);
    let mut candidates: BTreeMap<&str, bool> = BTreeMap::new();
    for (incident, hazard, r) in incidents {
        if province_of(regions, r) == province {
            candidates.insert(incident.as_str(), WATER.contains(&hazard.as_str()));
        }
    }
    let water_metric = kind == "rain" || kind == "water_level";
    candidates
        .iter()
        .find(|(_, water)| !water_metric || **water)
        .or_else(|| candidates.iter().next())
        .map(|(i, _)| (*i).to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(region: &str, id: &str, observed_ms: i64, deaths: i64) -> ReportRow {
        ReportRow {
            incident: "i".into(),
            exercise: false,
            region: region.into(),
            node: "n".into(),
            device: "d".into(),
            report_id: id.into(),
            observed_ms,
            stage: "update".into(),
            hazard: "flood".into(),
            figures: format!("{{\"deaths\": {deaths}}}"),
        }
    }

    #[test]
    fn rollup_reaches_the_nation_across_provinces() {
        let regions = Regions::default();
        let rows = [row("330302", "a", 1, 2), row("330303", "b", 1, 3), row("350102", "c", 1, 5)];
        let rolled = rollup(&rows, &regions);
        assert_eq!(rolled["330300"].totals.deaths, Some(5));
        assert_eq!(rolled["330000"].totals.deaths, Some(5));
        assert_eq!(rolled["350000"].totals.deaths, Some(5));
        assert_eq!(rolled[NATION].totals.deaths, Some(10));
        assert_eq!(rolled[NATION].scope, Some(Scope::Nation));
        assert_eq!(rolled["330302"].scope, Some(Scope::County));
        let scopes = scopes_for("330302", &rolled, &regions);
        assert_eq!(scopes[&Scope::Province].code, "330000");
        assert_eq!(scopes[&Scope::Nation].totals.deaths, Some(10));
        assert_eq!(judged_regions(&rows, &regions).len(), 3);
        assert_eq!(province_of(&regions, "330302"), "330000");
    }

    #[test]
    fn warning_keys_are_stable_from_raise_to_clear() {
        let raise = serde_json::json!({"station": "g1", "metric": {"kind": "rain", "window_h": 3}, "colour": "red", "value": 120.0, "threshold": 100.0});
        let clear = serde_json::json!({"station": "g1", "metric": {"kind": "rain", "window_h": 3}, "colour": null});
        let a = warning_key("n1", None, &raise).unwrap();
        let b = warning_key("n1", None, &clear).unwrap();
        assert_eq!(a.key, b.key);
        assert_eq!(a.colour.as_deref(), Some("red"));
        assert_eq!(b.colour, None);
        assert!(warning_key("n1", None, &serde_json::json!({"nonsense": 1})).is_none());
        let overdue = serde_json::json!({"type": "report_overdue", "division": "330302", "duty": "initial"});
        assert_eq!(warning_key("n1", Some("t"), &overdue).unwrap().kind, "report_overdue");
    }

    #[test]
    fn a_warning_joins_the_water_incident_of_its_province() {
        let regions = Regions::default();
        let incidents = vec![
            ("quake".to_owned(), "earthquake".to_owned(), "330302".to_owned()),
            ("typhoon".to_owned(), "typhoon".to_owned(), "330303".to_owned()),
            ("elsewhere".to_owned(), "flood".to_owned(), "350102".to_owned()),
        ];
        assert_eq!(incident_for_warning("330304", "rain", &incidents, &regions).as_deref(), Some("typhoon"));
        assert_eq!(incident_for_warning("360102", "rain", &incidents, &regions), None);
    }
}
