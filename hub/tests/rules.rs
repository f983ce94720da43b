//! Risk rules: the default rules at every bound, filters, scopes, explanations, errors with their
//! positions, run-time errors, reload and the watcher.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use yingji_hub::rules::{
    Action, EventView, IncidentView, Input, RuleError, RuleHandle, RuleSet, Scope, ScopeStats, cases, spawn_watcher,
};
use yingji_node::stats::Totals;

const CASES: &str = include_str!("../rules/cases.toml");

fn defaults() -> RuleSet {
    RuleSet::defaults().unwrap()
}

fn stats_input(kind: &str, hazard: Option<&str>, scope: Scope, totals: Totals) -> Input {
    Input {
        event: EventView {
            id: "n1:stats:1".into(),
            kind: kind.into(),
            node: "n1".into(),
            region: "330302".into(),
            exercise: false,
            incident: hazard.map(|h| format!("{h}-1")),
            body: json!({}),
        },
        incident: hazard.map(|h| IncidentView {
            id: format!("{h}-1"),
            hazard: Some(h.into()),
            exercise: false,
            level: None,
            regions: vec!["330302".into()],
        }),
        scopes: BTreeMap::from([(scope, ScopeStats { code: "330000".into(), name: "浙江省".into(), totals })]),
    }
}

fn province(hazard: &str, totals: Totals) -> Input {
    stats_input("stats", Some(hazard), Scope::Province, totals)
}

fn event_input(kind: &str, hazard: Option<&str>, body: serde_json::Value) -> Input {
    let mut input = stats_input(kind, hazard, Scope::Province, Totals::default());
    input.scopes.clear();
    input.event.body = body;
    input
}

fn matched(rules: &RuleSet, input: &Input) -> (Option<u8>, Vec<String>) {
    let e = rules.evaluate(input);
    assert!(e.errors.is_empty(), "run-time errors: {:?}", e.errors);
    (e.level, e.matched.into_iter().map(|m| m.rule).collect())
}

/// The band a value falls in, from the lower bounds of levels Ⅰ..Ⅳ (upper bound exclusive).
fn band(bounds: [f64; 4], v: f64) -> Option<u8> {
    (1..=4u8).find(|&l| v >= bounds[l as usize - 1] && (l == 1 || v < bounds[l as usize - 2]))
}

fn around(bounds: [f64; 4], step: f64) -> Vec<f64> {
    bounds.iter().flat_map(|b| [b - step, *b, b + step]).collect()
}

// ---------------------------------------------------------------------------------------------
// The default rules

#[test]
fn the_default_cases_pass_and_cover_every_default_rule() {
    let rules = defaults();
    let report = cases::run(&rules, CASES, "cases.toml").unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.results.len() > 200);
    for rule in rules.rules() {
        assert!(report.results.iter().any(|r| r.matched.contains(&rule.name)), "no case makes {} match", rule.name);
    }
}

/// Relief response (domain.md): deaths+missing 20/50/100/200, relocated+needing aid
/// 100,000/500,000/1,000,000/2,000,000, collapsed+severely damaged 10,000/100,000/200,000/300,000.
#[test]
fn relief_response_at_every_bound_for_every_natural_hazard() {
    let rules = defaults();
    let families = [
        ("water", ["flood", "rainstorm", "typhoon", "storm_surge"].as_slice()),
        ("geo", &["landslide", "debris_flow"]),
        ("fire", &["wildfire"]),
        ("other", &["drought", "snow", "hail", "other"]),
    ];
    type Set = fn(&mut Totals, i64);
    let criteria: [(&str, [f64; 4], Set); 3] = [
        ("deaths+missing", [200.0, 100.0, 50.0, 20.0], |t, v| {
            t.deaths = Some(v / 2);
            t.missing = Some(v - v / 2);
        }),
        ("relocated+aid", [2e6, 1e6, 5e5, 1e5], |t, v| {
            t.relocated = Some(v - v / 3);
            t.needing_aid = Some(v / 3);
        }),
        ("houses", [3e5, 2e5, 1e5, 1e4], |t, v| {
            t.houses_collapsed = Some(v / 5);
            t.houses_severely_damaged = Some(v - v / 5);
        }),
    ];
    let mut checked = 0;
    for (family, hazards) in families {
        for hazard in hazards {
            for (what, bounds, set) in &criteria {
                for v in around(*bounds, 1.0) {
                    let mut totals = Totals::default();
                    set(&mut totals, v as i64);
                    let want = band(*bounds, v);
                    for kind in ["stats", "report"] {
                        let (level, names) = matched(&rules, &stats_input(kind, Some(hazard), Scope::Province, totals));
                        assert_eq!(level, want, "{hazard} {what} = {v} ({kind})");
                        let expect: Vec<String> = want.map(|l| format!("relief-{l}-{family}")).into_iter().collect();
                        assert_eq!(names, expect, "{hazard} {what} = {v}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 11 * 3 * 12 * 2);
}

#[test]
fn earthquake_grading_by_deaths_and_by_magnitude() {
    let rules = defaults();
    // Deaths incl. missing: Ⅰ ≥ 300, Ⅱ 50–300, Ⅲ 10–50, Ⅳ 1–10; the relief response applies too.
    for v in around([300.0, 50.0, 10.0, 1.0], 1.0) {
        let totals = Totals { deaths: Some(v as i64), ..Default::default() };
        let quake = band([300.0, 50.0, 10.0, 1.0], v);
        let relief = band([200.0, 100.0, 50.0, 20.0], v);
        let (level, names) = matched(&rules, &province("earthquake", totals));
        assert_eq!(level, [quake, relief].into_iter().flatten().min(), "deaths {v}");
        if let Some(q) = quake {
            assert!(names.contains(&format!("quake-{q}-deaths")), "deaths {v}: {names:?}");
        }
        assert_eq!(names.iter().filter(|n| n.starts_with("quake-")).count(), usize::from(quake.is_some()));
    }
    // Magnitude (populated area): Ⅰ ≥ 7.0, Ⅱ 6.0–7.0, Ⅲ 5.0–6.0, Ⅳ 4.0–5.0; no statistics needed.
    for v in around([7.0, 6.0, 5.0, 4.0], 0.1) {
        let want = band([7.0, 6.0, 5.0, 4.0], v);
        let (level, names) = matched(&rules, &event_input("report", Some("earthquake"), json!({"magnitude": v})));
        assert_eq!(level, want, "magnitude {v}");
        assert_eq!(names, want.map(|l| format!("quake-{l}-magnitude")).into_iter().collect::<Vec<_>>());
    }
    // An integer magnitude compares with the double bounds; no magnitude, or not an earthquake: no match.
    assert_eq!(matched(&rules, &event_input("report", Some("earthquake"), json!({"magnitude": 7}))).0, Some(1));
    assert_eq!(matched(&rules, &event_input("report", Some("earthquake"), json!({"text": "felt"}))).0, None);
    assert_eq!(matched(&rules, &event_input("report", Some("landslide"), json!({"magnitude": 7.5}))).0, None);
}

fn warning(metric: serde_json::Value, colour: Option<&str>, cleared: bool) -> serde_json::Value {
    json!({"station": "st-1", "metric": metric, "from": null, "to": colour, "colour": colour, "cleared": cleared,
           "value": 120.0, "threshold": 100.0, "episode": 2, "rise_m_per_h": null,
           "observed_at": "2026-09-14T08:00:00+08:00"})
}

#[test]
fn rainstorm_and_flood_signals_by_colour() {
    let rules = defaults();
    let metrics = [("rain", json!({"kind": "rain", "window_h": 3})), ("gauge", json!({"kind": "water_level"}))];
    for (prefix, metric) in &metrics {
        for (level, colour) in [(1u8, "red"), (2, "orange"), (3, "yellow"), (4, "blue")] {
            let input = event_input("warning", None, warning(metric.clone(), Some(colour), false));
            assert_eq!(matched(&rules, &input), (Some(level), vec![format!("{prefix}-{level}-{colour}")]));
            // Cleared: colour null, or marked cleared whatever the colour.
            let cleared = event_input("warning", None, warning(metric.clone(), None, true));
            assert_eq!(matched(&rules, &cleared), (None, vec![]));
            let marked = event_input("warning", None, warning(metric.clone(), Some(colour), true));
            assert_eq!(matched(&rules, &marked), (None, vec![]));
            // Only warning events.
            let report = event_input("report", None, warning(metric.clone(), Some(colour), false));
            assert_eq!(matched(&rules, &report), (None, vec![]));
        }
    }
    let wind = event_input("warning", None, warning(json!({"kind": "wind_speed"}), Some("red"), false));
    assert_eq!(matched(&rules, &wind), (None, vec![]));
}

#[test]
fn chemical_accidents_by_deaths_and_direct_loss() {
    let rules = defaults();
    for v in around([30.0, 10.0, 3.0, 1.0], 1.0) {
        let want = band([30.0, 10.0, 3.0, 1.0], v);
        let totals = Totals { deaths: Some(v as i64), ..Default::default() };
        assert_eq!(matched(&rules, &province("hazmat", totals)).0, want, "deaths {v}");
    }
    for v in around([1e8, 5e7, 1e7, f64::INFINITY], 1.0).into_iter().filter(|v| v.is_finite()) {
        let want = band([1e8, 5e7, 1e7, f64::INFINITY], v);
        let totals = Totals { direct_loss_cny: Some(v), ..Default::default() };
        assert_eq!(matched(&rules, &province("hazmat", totals)).0, want, "loss {v}");
    }
}

#[test]
fn the_level_is_the_highest_match_and_matches_come_highest_first_then_in_file_order() {
    let rules = defaults();
    let totals =
        Totals { deaths: Some(25), relocated: Some(2_100_000), houses_collapsed: Some(150_000), ..Default::default() };
    let e = rules.evaluate(&province("typhoon", totals));
    assert_eq!(e.level, Some(1));
    let names: Vec<_> = e.matched.iter().map(|m| (m.rule.as_str(), m.level)).collect();
    assert_eq!(names, [("relief-1-water", 1), ("relief-3-water", 3), ("relief-4-water", 4)]);

    // Within a level, file order.
    let text = r#"
        [[rule]]
        name = "b"
        level = "II"
        when = 'stats.deaths >= 1'
        [[rule]]
        name = "a"
        level = "Ⅱ"
        when = 'stats.deaths >= 1'
        [[rule]]
        name = "c"
        level = 1
        when = 'stats.deaths >= 2'
    "#;
    let rules = RuleSet::parse(text, "order.toml").unwrap();
    let e = rules.evaluate(&province("flood", Totals { deaths: Some(2), ..Default::default() }));
    assert_eq!(e.matched.iter().map(|m| m.rule.as_str()).collect::<Vec<_>>(), ["c", "b", "a"]);
    assert_eq!(e.level, Some(1));
}

#[test]
fn hazard_and_kind_filters() {
    let rules = defaults();
    let deaths = Totals { deaths: Some(250), ..Default::default() };
    let table: [(&str, Option<&str>, Option<&str>); 10] = [
        ("stats", Some("flood"), Some("relief-1-water")),
        ("report", Some("typhoon"), Some("relief-1-water")),
        ("stats", Some("wildfire"), Some("relief-1-fire")),
        ("stats", Some("snow"), Some("relief-1-other")),
        ("stats", Some("hazmat"), Some("hazmat-1")),
        ("warning", Some("flood"), None),
        ("device", Some("flood"), None),
        ("media", Some("flood"), None),
        ("stats", Some("meteor"), None),
        ("stats", None, None),
    ];
    for (kind, hazard, want) in table {
        let (_, names) = matched(&rules, &stats_input(kind, hazard, Scope::Province, deaths));
        assert_eq!(names.first().map(String::as_str), want, "{kind} {hazard:?}");
        if let Some(want) = want {
            assert!(!names.iter().any(|n| n.starts_with("relief") && !n.starts_with(&want[..9])), "{names:?}");
        }
    }
    // An earthquake gets both the relief response and the earthquake grading.
    let (_, names) = matched(&rules, &province("earthquake", deaths));
    assert_eq!(names, ["relief-1-geo", "quake-2-deaths"]);
}

#[test]
fn a_rule_whose_scope_is_missing_does_not_match() {
    let rules = defaults();
    let deaths = Totals { deaths: Some(500), ..Default::default() };
    for scope in [Scope::County, Scope::Prefecture, Scope::Nation] {
        let e = rules.evaluate(&stats_input("stats", Some("flood"), scope, deaths));
        assert_eq!((e.level, e.matched.len(), e.errors.len()), (None, 0, 0), "{scope}");
    }
    let text = r#"
        [[rule]]
        name = "county-deaths"
        scope = "county"
        level = 2
        when = 'stats.deaths >= 5 && division.level == "county"'
        [[rule]]
        name = "any-warning"
        scope = "nation"
        level = 4
        kinds = ["warning"]
        when = 'event.kind == "warning"'
    "#;
    let rules = RuleSet::parse(text, "county.toml").unwrap();
    let county = stats_input("stats", Some("flood"), Scope::County, Totals { deaths: Some(5), ..Default::default() });
    let e = rules.evaluate(&county);
    assert_eq!(e.matched.len(), 1);
    assert_eq!((e.matched[0].scope, e.matched[0].division.as_str()), (Scope::County, "330000"));
    assert_eq!(rules.evaluate(&province("flood", Totals { deaths: Some(5), ..Default::default() })).level, None);
    // A rule that reads neither `stats` nor `division` needs no scope: its division is the event's.
    let e = rules.evaluate(&event_input("warning", None, json!({})));
    assert_eq!(e.matched.len(), 1);
    assert_eq!((e.matched[0].rule.as_str(), e.matched[0].division.as_str()), ("any-warning", "330302"));
}

// ---------------------------------------------------------------------------------------------
// Explanations

#[test]
fn the_explanation_names_the_rule_and_holds_exactly_the_values_it_read() {
    let rules = defaults();
    let totals = Totals { deaths: Some(100), missing: Some(20), relocated: Some(7), ..Default::default() };
    let e = rules.evaluate(&province("flood", totals));
    assert_eq!(e.matched.len(), 1);
    let m = &e.matched[0];
    assert_eq!(
        (m.rule.as_str(), m.level, m.scope, m.division.as_str()),
        ("relief-2-water", 2, Scope::Province, "330000")
    );
    assert!(m.reason.contains("national relief response level Ⅱ"), "{}", m.reason);
    assert_eq!(
        m.inputs,
        json!({"stats.deaths_missing": 120, "stats.relocated_aid": 7, "stats.houses_collapsed_severe": 0})
    );
    assert_eq!(m.actions[0], Action::Teams { capability: "flood_rescue".into(), teams: 8, automatic: false });
    assert!(m.actions.contains(&Action::Item { item: "sandbag".into(), qty: 250_000 }));
    assert_eq!(
        serde_json::to_value(&m.actions[0]).unwrap(),
        json!({"capability": "flood_rescue", "teams": 8, "automatic": false})
    );
    assert_eq!(serde_json::to_value(&m.actions[2]).unwrap(), json!({"item": "tent", "qty": 10_000}));

    let input = event_input("warning", None, warning(json!({"kind": "rain", "window_h": 3}), Some("orange"), false));
    let m = &rules.evaluate(&input).matched[0];
    assert_eq!(m.rule, "rain-2-orange");
    assert_eq!(
        m.inputs,
        json!({"event.body.colour": "orange", "event.body.metric": {"kind": "rain", "window_h": 3},
               "event.body.metric.kind": "rain", "event.body.cleared": false})
    );

    let text = r#"
        [[rule]]
        name = "mixed"
        level = 3
        when = '''
          stats.deaths_missing >= 100 && incident.hazard == "flood" && incident.regions[0] == "330302"
          && division.code.startsWith("33") && has(event.body.x) == false && size(incident.regions) > 0
        '''
        [[rule]]
        name = "whole"
        level = 4
        when = 'size(stats) > 3 && incident.regions.exists(r, r == division.code)'
    "#;
    let rules = RuleSet::parse(text, "mixed.toml").unwrap();
    let mut input = province("flood", totals);
    input.incident.as_mut().unwrap().regions.push("330000".into());
    let e = rules.evaluate(&input);
    assert_eq!(e.matched.len(), 2, "{e:?}");
    assert_eq!(
        e.matched[0].inputs,
        json!({"stats.deaths_missing": 120, "incident.hazard": "flood", "incident.regions[0]": "330302",
               "division.code": "330000", "event.body.x": null, "incident.regions": ["330302", "330000"]})
    );
    // A variable read as a whole is shown whole.
    let whole = &e.matched[1].inputs;
    assert_eq!(whole["stats"]["deaths_missing"], 120);
    assert_eq!(whole["stats"]["crop_area_ha"], 0.0);
    assert_eq!(whole["incident.regions"], json!(["330302", "330000"]));
    assert_eq!(whole["division.code"], "330000");
    assert_eq!(whole.as_object().unwrap().len(), 3);
}

#[test]
fn numbers_compare_across_int_and_double() {
    let text = r#"
        [[rule]]
        name = "ints-with-doubles"
        level = 4
        when = 'stats.crop_area_ha >= 100 && stats.deaths > 1.5 && stats.direct_loss_cny / 2.0 >= 5.0'
    "#;
    let rules = RuleSet::parse(text, "numbers.toml").unwrap();
    let totals =
        Totals { crop_area_ha: Some(100.0), deaths: Some(2), direct_loss_cny: Some(10.0), ..Default::default() };
    assert_eq!(rules.evaluate(&province("flood", totals)).level, Some(4));
    let less = Totals { crop_area_ha: Some(99.5), ..totals };
    assert_eq!(rules.evaluate(&province("flood", less)).level, None);
    // Arithmetic does not mix them: convert (docs/rules.md).
    let mixed = "[[rule]]\nname = \"m\"\nlevel = 4\nwhen = 'stats.deaths + stats.crop_area_ha > 1'\n";
    assert!(RuleSet::parse(mixed, "m.toml").unwrap_err().message.contains("fails on an all-zero input"));
    let converted = r#"
        [[rule]]
        name = "c"
        level = 4
        when = 'double(stats.deaths) / stats.crop_area_ha >= 0.02 && int(stats.direct_loss_cny) >= 10'
    "#;
    let rules = RuleSet::parse(converted, "c.toml").unwrap();
    let e = rules.evaluate(&province("flood", totals));
    assert_eq!((e.level, e.errors.len()), (Some(4), 0));
}

// ---------------------------------------------------------------------------------------------
// Refused rule files: file, line and column

fn error(text: &str) -> RuleError {
    RuleSet::parse(text, "bad.toml").expect_err("must be refused")
}

#[test]
fn refused_files_say_where_and_why() {
    let rule = |body: &str| format!("[[rule]]\nname = \"r\"\nlevel = 1\n{body}");
    let table: Vec<(&str, String, (usize, usize), &str)> = vec![
        ("TOML syntax", rule("when = 'stats.deaths >= 1\n"), (4, 26), "invalid literal string"),
        ("unknown field", rule("when = 'true'\ncolour = \"red\"\n"), (5, 1), "unknown field `colour`"),
        (
            "unknown action field",
            rule("when = 'true'\nactions = [{ item = \"tent\", qt = 3 }]\n"),
            (5, 29),
            "unknown field `qt`",
        ),
        (
            "level out of range",
            "[[rule]]\nname = \"r\"\nlevel = 5\nwhen = 'true'\n".into(),
            (3, 9),
            "level must be 1..4",
        ),
        ("bad level name", "[[rule]]\nname = \"r\"\nlevel = \"V\"\nwhen = 'true'\n".into(), (3, 9), "level must be"),
        ("unknown scope", rule("scope = \"city\"\nwhen = 'true'\n"), (4, 9), "unknown variant `city`"),
        (
            "unknown capability",
            rule("when = 'true'\n[[rule.actions]]\ncapability = \"flod_rescue\"\nteams = 2\n"),
            (6, 14),
            "unknown capability \"flod_rescue\"",
        ),
        (
            "unknown item",
            rule("when = 'true'\nactions = [{ item = \"tents\", qty = 3 }]\n"),
            (5, 21),
            "unknown item \"tents\"",
        ),
        ("item without qty", rule("when = 'true'\nactions = [{ item = \"tent\" }]\n"), (5, 12), "needs a `qty`"),
        (
            "unknown hazard",
            rule("hazards = [\"flood\", \"flod\"]\nwhen = 'true'\n"),
            (4, 21),
            "unknown hazard \"flod\"",
        ),
        ("unknown kind", rule("kinds = [\"reports\"]\nwhen = 'true'\n"), (4, 10), "unknown event kind"),
        (
            "duplicate name",
            format!("{}\n{}", rule("when = 'true'\n"), rule("when = 'false'\n")),
            (7, 8),
            "duplicate rule name \"r\" (first at line 2)",
        ),
        ("CEL syntax", rule("when = 'stats.deaths >= )'\n"), (4, 8), "does not compile: mismatched input ')'"),
        (
            "CEL syntax, multi-line",
            rule("when = '''\nstats.deaths >= 1\n  && )'''\n"),
            (4, 8),
            "(at 2:6 of the expression, file 6:6)",
        ),
        (
            "CEL type error",
            rule("when = 'stats.deaths >= \"x\"'\n"),
            (4, 8),
            "no matching overload for '_>=_' applied to '(int, string)'",
        ),
        ("CEL non-bool", rule("when = 'stats.deaths + 1'\n"), (4, 8), "must give a bool"),
        (
            "unknown stats field",
            rule("when = 'stats.deaths >= 1 || stats.deth > 2'\n"),
            (4, 36),
            "`stats` has no field `deth`",
        ),
        ("unknown variable", rule("when = '''\n  stat.deaths > 2'''\n"), (5, 3), "unknown variable `stat`"),
        ("missing when", rule(""), (1, 1), "missing field `when`"),
        ("empty file", String::new(), (1, 1), "no rules"),
        ("comments only", "# nothing yet\n".into(), (1, 1), "no rules"),
    ];
    for (what, text, (line, column), fragment) in table {
        let e = error(&text);
        assert_eq!((e.file.as_str(), e.line, e.column), ("bad.toml", line, column), "{what}: {e}");
        assert!(e.message.contains(fragment), "{what}: {e}");
        assert!(e.to_string().starts_with(&format!("bad.toml:{line}:{column}: ")), "{what}: {e}");
    }
    // A missing field of a later rule points at that rule.
    let e = error("[[rule]]\nname = \"a\"\nlevel = 1\nwhen = 'true'\n\n[[rule]]\nname = \"b\"\nlevel = 2\n");
    assert_eq!((e.line, e.column), (6, 1), "{e}");
    // The load of a file that is not there.
    let e = RuleSet::load(std::path::Path::new("/nonexistent/rules.toml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/rules.toml:1:1: cannot read"), "{e}");
}

#[test]
fn a_run_time_error_in_one_rule_leaves_the_others_alone() {
    let text = r#"
        [[rule]]
        name = "unguarded"
        level = 1
        when = 'event.body.magnitude >= 7.0'
        [[rule]]
        name = "divides"
        level = 2
        when = 'stats.affected / stats.deaths > 10'
        [[rule]]
        name = "fine"
        level = 3
        when = 'stats.deaths >= 0'
        [[rule]]
        name = "string-body"
        level = 4
        when = 'has(event.body.magnitude) && event.body.magnitude > 1'
    "#;
    let rules = RuleSet::parse(text, "runtime.toml").unwrap();
    let mut input = province("earthquake", Totals::default());
    let e = rules.evaluate(&input);
    assert_eq!(e.matched.iter().map(|m| m.rule.as_str()).collect::<Vec<_>>(), ["fine"]);
    let failed: Vec<&str> = e.errors.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(failed, ["unguarded", "divides"]);
    assert!(e.errors[0].1.contains("magnitude"), "{:?}", e.errors);
    assert!(e.errors[1].1.to_lowercase().contains("division by zero"), "{:?}", e.errors);

    input.event.body = json!({"magnitude": "7.5"});
    let e = rules.evaluate(&input);
    assert_eq!(e.matched.iter().map(|m| m.rule.as_str()).collect::<Vec<_>>(), ["fine"]);
    assert_eq!(e.errors.len(), 3, "{:?}", e.errors);
}

// ---------------------------------------------------------------------------------------------
// Test cases

#[test]
fn a_failing_case_says_what_was_expected_and_what_matched() {
    let text = r#"
[[case]]
name = "right"
event = { kind = "stats", region = "330000" }
incident = { id = "f", hazard = "flood", level = 0 }
[case.stats.province]
code = "330000"
deaths = 150
missing = 50
expect_level = 1
expect_rules = ["relief-1-water"]

[[case]]
name = "wrong level"
event = { kind = "stats" }
incident = { id = "f", hazard = "flood", level = 2 }
stats.province = { deaths = 150 }
expect_level = "I"

[[case]]
name = "wrong rule"
event = { kind = "stats" }
incident = { id = "f", hazard = "flood" }
stats.province = { deaths = 150 }
expect_level = 2
expect_rules = ["relief-2-geo"]

[[case]]
name = "nothing"
event = { kind = "device" }
expect_level = "none"
"#;
    let report = cases::run(&defaults(), text, "mine.toml").unwrap();
    assert!(!report.passed());
    let results: Vec<(&str, bool)> = report.results.iter().map(|r| (r.name.as_str(), r.passed)).collect();
    assert_eq!(results, [("right", true), ("wrong level", false), ("wrong rule", false), ("nothing", true)]);
    assert_eq!(report.results[1].message, "expected level Ⅰ, got Ⅱ (matched: relief-2-water (Ⅱ))");
    assert_eq!(report.results[1].line, 13);
    assert_eq!(report.results[2].message, "expected rule \"relief-2-geo\" to match (matched: relief-2-water (Ⅱ))");
    let shown = report.to_string();
    assert!(shown.contains("FAIL  mine.toml:13: wrong level: expected level Ⅰ"), "{shown}");
    assert!(shown.ends_with("2 passed, 2 failed"), "{shown}");

    // A malformed cases file is an error with its position.
    let e = cases::run(&defaults(), "[[case]]\nname = \"x\"\nexpect_level = 1\nexpect_rules = [\"nope\"]\n", "c.toml");
    let e = e.unwrap_err();
    assert_eq!((e.line, e.column), (4, 17), "{e}");
    assert!(e.message.contains("no rule named \"nope\""), "{e}");
    let e = cases::run(&defaults(), "[[case]]\nname = \"x\"\nexpect_level = 7\n", "c.toml").unwrap_err();
    assert_eq!((e.line, e.column), (3, 16), "{e}");
    let e = cases::run(&defaults(), "[[case]]\nname = \"x\"\nexpect_level = 1\nstats.city = {}\n", "c.toml");
    assert_eq!(e.unwrap_err().line, 4);
    assert!(cases::run(&defaults(), "", "c.toml").unwrap_err().message.contains("no cases"));
}

// ---------------------------------------------------------------------------------------------
// Reload

const ONE_RULE: &str = "[[rule]]\nname = \"one\"\nlevel = 4\nwhen = 'stats.deaths >= 1'\n";
const TWO_RULES: &str = "[[rule]]\nname = \"one\"\nlevel = 4\nwhen = 'stats.deaths >= 1'\n\n[[rule]]\nname = \"two\"\nlevel = 3\nwhen = 'stats.deaths >= 10'\n";
const BROKEN: &str =
    "[[rule]]\nname = \"one\"\nlevel = 4\nwhen = 'stats.deaths >= '\n\n# broken on purpose, and longer\n";

#[test]
fn reload_puts_a_good_file_in_force_and_keeps_the_old_rules_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, TWO_RULES).unwrap();
    let handle = RuleHandle::new(RuleSet::parse(ONE_RULE, "one.toml").unwrap());
    let before = handle.current();
    assert_eq!(handle.reload_from(&path).unwrap(), 2);
    assert_eq!(handle.current().len(), 2);
    assert_eq!(before.len(), 1, "a snapshot does not change under its holder");

    std::fs::write(&path, BROKEN).unwrap();
    let e = handle.reload_from(&path).unwrap_err();
    assert_eq!((e.line, e.column), (4, 8), "{e}");
    assert!(e.file.ends_with("rules.toml"));
    assert_eq!(handle.current().len(), 2, "the old rules stay");
    let stats = handle.stats();
    assert_eq!((stats.reloads_ok, stats.reloads_failed), (1, 1));
    assert_eq!(stats.last_error, Some(e.to_string()));

    handle.replace(RuleSet::parse(ONE_RULE, "one.toml").unwrap());
    assert_eq!(handle.current().rules()[0].name, "one");
    assert_eq!(handle.current().len(), 1);
}

/// Waits for reloads until `check` holds; fails after a generous deadline.
async fn eventually(what: &str, reloads: &mut tokio::sync::watch::Receiver<u64>, check: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(20), reloads.wait_for(|_| check()))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
        .expect("the rule handle lives");
}

#[tokio::test]
async fn the_watcher_reloads_on_change_keeps_the_old_rules_on_error_and_stops_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, ONE_RULE).unwrap();
    let handle = RuleHandle::new(RuleSet::load(&path).unwrap());
    let mut reloads = handle.reloads();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = spawn_watcher(handle.clone(), path.clone(), Duration::from_millis(20), cancel.clone());

    // Each version has a different length, so the change shows even with a coarse mtime.
    std::fs::write(&path, TWO_RULES).unwrap();
    eventually("two rules in force", &mut reloads, || handle.current().len() == 2).await;

    std::fs::write(&path, BROKEN).unwrap();
    eventually("the broken file refused", &mut reloads, || handle.stats().reloads_failed == 1).await;
    assert_eq!(handle.current().len(), 2, "the old rules stay");
    assert!(handle.stats().last_error.unwrap().contains("rules.toml:4:8:"));

    std::fs::write(&path, ONE_RULE).unwrap();
    eventually("the fixed file in force", &mut reloads, || handle.current().len() == 1).await;
    let stats = handle.stats();
    assert_eq!((stats.reloads_ok, stats.reloads_failed, stats.last_error), (2, 1, None));

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(20), task).await.unwrap().unwrap();
}

#[test]
fn the_default_rules_list_themselves() {
    let rules = defaults();
    assert_eq!(rules.len(), rules.rules().len());
    assert_eq!(rules.len(), 36);
    let relief = rules.rules().iter().find(|r| r.name == "relief-1-water").unwrap();
    assert_eq!((relief.level, relief.scope), (1, Scope::Province));
    assert!(relief.when.contains("stats.deaths_missing >= 200"));
    assert_eq!(relief.kinds.as_deref(), Some(&["report".to_owned(), "stats".to_owned()][..]));
    assert_eq!(yingji_hub::rules::check(std::path::Path::new("rules/default.toml")).unwrap().len(), 36);
}

#[test]
fn deep_expressions_are_refused_not_crashed_on() {
    let rule = |when: String| format!("[[rule]]\nname = \"deep\"\nlevel = 4\nwhen = '{when}'\n");
    let parens = |n: usize| format!("{}stats.deaths{} >= 1", "(".repeat(n), ")".repeat(n));
    let sum = |n: usize| format!("{} > 0", vec!["stats.deaths"; n].join(" + "));

    for (when, fragment) in [
        (parens(200), "nests brackets deeper than 32"),
        (parens(33), "nests brackets deeper than 32"),
        (sum(100), "is nested 102 deep (at most 64)"),
        ("1 == 1 && ".repeat(1000) + "true", "longer than 8192 bytes"),
    ] {
        let e = RuleSet::parse(&rule(when), "deep.toml").unwrap_err();
        assert_eq!((e.line, e.column), (4, 8), "{e}");
        assert!(e.message.contains(fragment), "{e}");
    }
    // What is allowed compiles, and evaluates on a thread with a small (2 MiB) stack, as tokio's.
    let rules = RuleSet::parse(&format!("{}{}", rule(parens(32)), rule(sum(60)).replace("deep", "long")), "ok.toml");
    let rules = rules.unwrap();
    let level = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || rules.evaluate(&province("flood", Totals { deaths: Some(1), ..Default::default() })).level)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(level, Some(4));
}
