//! Test cases for a rule file (`yingji-hub rules test FILE CASES`): inputs with the level and
//! rules expected. The format is described in `docs/rules.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::parse::toml_error;
use super::{EventView, IncidentView, Input, RuleError, RuleSet, Scope, ScopeStats, level_numeral, parse_level};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCases {
    #[serde(default)]
    case: Vec<Spanned<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    #[serde(default)]
    event: RawEvent,
    #[serde(default)]
    incident: Option<RawIncident>,
    #[serde(default)]
    stats: BTreeMap<Scope, RawStats>,
    #[serde(default)]
    expect_level: Option<Spanned<toml::Value>>,
    #[serde(default)]
    expect_rules: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    allow_errors: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    #[serde(default)]
    id: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    node: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    exercise: bool,
    #[serde(default)]
    incident: Option<String>,
    #[serde(default)]
    body: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncident {
    #[serde(default)]
    id: String,
    #[serde(default)]
    hazard: Option<String>,
    #[serde(default)]
    exercise: bool,
    #[serde(default)]
    level: Option<Spanned<i64>>,
    #[serde(default)]
    regions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Amount {
    Int(i64),
    Float(f64),
}

impl Amount {
    fn as_f64(&self) -> f64 {
        match self {
            Amount::Int(i) => *i as f64,
            Amount::Float(f) => *f,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStats {
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
    affected: Option<i64>,
    deaths: Option<i64>,
    missing: Option<i64>,
    injured: Option<i64>,
    relocated: Option<i64>,
    needing_aid: Option<i64>,
    houses_collapsed: Option<i64>,
    houses_severely_damaged: Option<i64>,
    houses_damaged: Option<i64>,
    crop_area_ha: Option<Amount>,
    crop_failure_ha: Option<Amount>,
    direct_loss_cny: Option<Amount>,
    // Written after a `[case.stats.<scope>]` header, the expectations land in that table (TOML):
    // they are taken from there.
    #[serde(default)]
    expect_level: Option<Spanned<toml::Value>>,
    #[serde(default)]
    expect_rules: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    allow_errors: Option<bool>,
}

impl RawStats {
    fn into_scope_stats(self) -> ScopeStats {
        ScopeStats {
            code: self.code,
            name: self.name,
            totals: yingji_node::stats::Totals {
                affected: self.affected,
                deaths: self.deaths,
                missing: self.missing,
                injured: self.injured,
                relocated: self.relocated,
                needing_aid: self.needing_aid,
                houses_collapsed: self.houses_collapsed,
                houses_severely_damaged: self.houses_severely_damaged,
                houses_damaged: self.houses_damaged,
                crop_area_ha: self.crop_area_ha.map(|a| a.as_f64()),
                crop_failure_ha: self.crop_failure_ha.map(|a| a.as_f64()),
                direct_loss_cny: self.direct_loss_cny.map(|a| a.as_f64()),
            },
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    pub name: String,
    /// The line of the case's `[[case]]` in the cases file.
    pub line: usize,
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub message: String,
    /// The level the rules gave.
    pub level: Option<u8>,
    /// The rules that matched, highest level first.
    pub matched: Vec<String>,
}

/// The outcome of a cases file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseReport {
    pub file: String,
    pub results: Vec<CaseResult>,
}

impl CaseReport {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.results.iter().filter(|r| !r.passed)
    }
}

impl fmt::Display for CaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            if r.passed {
                writeln!(f, "ok    {}", r.name)?;
            } else {
                writeln!(f, "FAIL  {}:{}: {}: {}", self.file, r.line, r.name, r.message)?;
            }
        }
        let failed = self.failures().count();
        write!(f, "{} passed, {failed} failed", self.results.len() - failed)
    }
}

fn show_level(level: Option<u8>) -> String {
    level.map_or_else(|| "none".to_owned(), |l| level_numeral(l).to_owned())
}

/// Runs the cases of `cases_text` (named `file` in errors) against `rules`. A malformed cases
/// file is an error with its position; a case that does not hold is a failed [`CaseResult`].
pub fn run(rules: &RuleSet, cases_text: &str, file: &str) -> Result<CaseReport, RuleError> {
    let raw: RawCases = toml::from_str(cases_text).map_err(|e| toml_error(file, cases_text, &e))?;
    if raw.case.is_empty() {
        return Err(RuleError::at(file, cases_text, 0, "no cases: a cases file needs at least one [[case]]"));
    }
    let mut results = Vec::with_capacity(raw.case.len());
    for spanned in raw.case {
        let case_start = spanned.span().start;
        let (line, _) = super::line_col(cases_text, case_start);
        let mut case = spanned.into_inner();
        let err = |offset: usize, message: String| {
            RuleError::at(file, cases_text, offset, format!("case \"{}\": {message}", case.name))
        };

        // The expectations, from the case or from the stats table they were written under.
        for stats in case.stats.values_mut() {
            let twice = |what: &str| format!("{what} is given twice");
            if let Some(level) = stats.expect_level.take() {
                if case.expect_level.is_some() {
                    return Err(err(level.span().start, twice("expect_level")));
                }
                case.expect_level = Some(level);
            }
            if let Some(rules) = stats.expect_rules.take() {
                if case.expect_rules.is_some() {
                    return Err(err(rules.first().map_or(case_start, |r| r.span().start), twice("expect_rules")));
                }
                case.expect_rules = Some(rules);
            }
            if let Some(allow) = stats.allow_errors.take() {
                case.allow_errors = Some(allow);
            }
        }
        let Some(expect_level) = case.expect_level else {
            return Err(err(case_start, "expect_level is missing (0 or \"none\" for no match)".to_owned()));
        };
        let expect_rules = case.expect_rules.unwrap_or_default();
        let allow_errors = case.allow_errors.unwrap_or(false);
        let err = |offset: usize, message: String| {
            RuleError::at(file, cases_text, offset, format!("case \"{}\": {message}", case.name))
        };

        let expect_level = match expect_level.get_ref() {
            toml::Value::Integer(0) => Some(None),
            toml::Value::String(s) if s == "none" => Some(None),
            toml::Value::Integer(i) => u8::try_from(*i).ok().filter(|l| (1..=4).contains(l)).map(Some),
            toml::Value::String(s) => parse_level(s).map(Some),
            _ => None,
        }
        .ok_or_else(|| {
            err(expect_level.span().start, "expect_level must be 0 or \"none\", 1..4, or \"I\"..\"IV\"".to_owned())
        })?;
        for rule in &expect_rules {
            if !rules.rules().iter().any(|r| r.name == *rule.get_ref()) {
                return Err(err(rule.span().start, format!("no rule named \"{}\" in the rule set", rule.get_ref())));
            }
        }

        let incident = match case.incident {
            None => None,
            Some(i) => {
                let level = match i.level {
                    None => None,
                    Some(l) => match *l.get_ref() {
                        0 => None,
                        1..=4 => u8::try_from(*l.get_ref()).ok(),
                        _ => return Err(err(l.span().start, "incident level must be 0 (none) or 1..4".to_owned())),
                    },
                };
                Some(IncidentView { id: i.id, hazard: i.hazard, exercise: i.exercise, level, regions: i.regions })
            }
        };
        let body = match case.event.body {
            None => serde_json::Value::Object(serde_json::Map::new()),
            Some(b) => {
                serde_json::to_value(b).map_err(|e| err(spanned_start(cases_text, line), format!("event body: {e}")))?
            }
        };
        let event = EventView {
            id: case.event.id,
            kind: case.event.kind.unwrap_or_else(|| "report".to_owned()),
            node: case.event.node,
            region: case.event.region,
            exercise: case.event.exercise,
            incident: case.event.incident.or_else(|| incident.as_ref().map(|i| i.id.clone())),
            body,
        };
        let scopes = case.stats.into_iter().map(|(scope, s)| (scope, s.into_scope_stats())).collect();
        let input = Input { event, incident, scopes };

        let evaluation = rules.evaluate(&input);
        let matched: Vec<String> = evaluation.matched.iter().map(|m| m.rule.clone()).collect();
        let shown = || {
            if evaluation.matched.is_empty() {
                "no rule matched".to_owned()
            } else {
                let list: Vec<String> =
                    evaluation.matched.iter().map(|m| format!("{} ({})", m.rule, level_numeral(m.level))).collect();
                format!("matched: {}", list.join(", "))
            }
        };
        let mut problems = Vec::new();
        if evaluation.level != expect_level {
            problems.push(format!(
                "expected level {}, got {} ({})",
                show_level(expect_level),
                show_level(evaluation.level),
                shown()
            ));
        }
        for rule in &expect_rules {
            if !matched.contains(rule.get_ref()) {
                problems.push(format!("expected rule \"{}\" to match ({})", rule.get_ref(), shown()));
            }
        }
        if !allow_errors {
            for (rule, message) in &evaluation.errors {
                problems.push(format!("rule \"{rule}\" failed: {message}"));
            }
        }
        results.push(CaseResult {
            name: case.name,
            line,
            passed: problems.is_empty(),
            message: problems.join("; "),
            level: evaluation.level,
            matched,
        });
    }
    Ok(CaseReport { file: file.to_owned(), results })
}

/// The byte offset of the start of a 1-based line.
fn spanned_start(text: &str, line: usize) -> usize {
    text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum()
}
