//! Assessments: the response level of a subject (an incident, or a province with warnings and no
//! incident) is a function of the current picture, judged by the rules in force.
//!
//! After every batch that touches a subject, its level is judged afresh: the rules run over the
//! incident's statistics at every lineage of its reporting regions (county, prefecture,
//! province, nation) and over each of its active warnings; the highest level matched is the
//! level. When it differs from the level in force, the change (raise, upgrade, lower, clear) is
//! recorded with the rule that decided, the inputs it saw, every rule that matched, and the
//! event that triggered it — in the same transaction as the events — and a CAP alert goes with
//! it. So "why is this level Ⅱ?" is always answered by the latest assessment.

use std::collections::BTreeMap;

use serde_json::json;
use yingji_node::regions::Regions;

use crate::alerts::CapContext;
use crate::picture;
use crate::rules::{Action, EventView, IncidentView, Input, Match, RuleSet};
use crate::store::{NewAssessment, StoreError, Tx, WarningRow};

/// What a level belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    Incident(String),
    /// A province (code) with active warnings that belong to no incident.
    Region(String),
}

impl Subject {
    pub fn key(&self) -> String {
        match self {
            Subject::Incident(id) => id.clone(),
            Subject::Region(code) => format!("region:{code}"),
        }
    }
}

/// A recorded level change.
#[derive(Debug)]
pub struct Change {
    pub summary: serde_json::Value,
    pub cap: Option<String>,
    pub rule_errors: u64,
}

/// The verdict of the rules on a subject's current picture.
#[derive(Debug, Default)]
pub struct Verdict {
    pub level: Option<u8>,
    /// Every match, highest level first.
    pub matched: Vec<Match>,
    pub errors: u64,
    pub hazard: Option<String>,
}

/// Runs the rules over a subject's statistics and active warnings (pure).
#[allow(clippy::too_many_arguments)]
pub fn verdict(
    rules: &RuleSet,
    subject: &Subject,
    exercise: bool,
    current: Option<u8>,
    rows: &[crate::store::ReportRow],
    hazard: Option<String>,
    warnings: &[WarningRow],
    regions: &Regions,
    trigger: Option<&str>,
) -> Verdict {
    let rolled = picture::rollup(rows, regions);
    let incident = match subject {
        Subject::Incident(id) => Some(IncidentView {
            id: id.clone(),
            hazard: hazard.clone(),
            exercise,
            level: current,
            regions: rows.iter().map(|r| r.region.clone()).collect(),
        }),
        Subject::Region(_) => None,
    };
    let mut matched = Vec::new();
    let mut errors = 0;
    let mut run = |input: Input| {
        let evaluation = rules.evaluate(&input);
        errors += evaluation.errors.len() as u64;
        matched.extend(evaluation.matched);
    };
    for region in picture::judged_regions(rows, regions) {
        run(Input {
            event: EventView {
                id: trigger.unwrap_or_default().to_owned(),
                kind: "stats".to_owned(),
                node: String::new(),
                region: region.clone(),
                exercise,
                incident: incident.as_ref().map(|i| i.id.clone()),
                body: json!({}),
            },
            incident: incident.clone(),
            scopes: picture::scopes_for(&region, &rolled, regions),
        });
    }
    for w in warnings {
        run(Input {
            event: EventView {
                id: w.event_id.clone(),
                kind: "warning".to_owned(),
                node: w.node.clone(),
                region: w.region.clone(),
                exercise,
                incident: w.incident.clone(),
                body: w.body.clone(),
            },
            incident: incident.clone(),
            scopes: picture::scopes_for(&w.region, &rolled, regions),
        });
    }
    matched.sort_by_key(|m| m.level);
    Verdict { level: matched.first().map(|m| m.level), matched, errors, hazard }
}

/// The actions of the matches at the decided level, merged: the largest number per capability
/// and per item.
pub fn actions(matched: &[Match], level: Option<u8>) -> Vec<Action> {
    let mut teams: BTreeMap<String, (u32, bool)> = BTreeMap::new();
    let mut items: BTreeMap<String, u64> = BTreeMap::new();
    for m in matched.iter().filter(|m| Some(m.level) == level) {
        for a in &m.actions {
            match a {
                Action::Teams { capability, teams: n, automatic } => {
                    let e = teams.entry(capability.clone()).or_default();
                    e.0 = e.0.max(*n);
                    e.1 |= *automatic;
                }
                Action::Item { item, qty } => {
                    let e = items.entry(item.clone()).or_default();
                    *e = (*e).max(*qty);
                }
            }
        }
    }
    teams
        .into_iter()
        .map(|(capability, (teams, automatic))| Action::Teams { capability, teams, automatic })
        .chain(items.into_iter().map(|(item, qty)| Action::Item { item, qty }))
        .collect()
}

/// Where teams go for a level decided at `division`: its reporting region hit hardest (deaths
/// and missing, then people affected, then code), or the division itself.
pub fn worst_hit(rows: &[crate::store::ReportRow], division: &str, regions: &Regions) -> String {
    let score = |r: &crate::store::ReportRow| {
        let f: yingji_proto::report::Figures = serde_json::from_str(&r.figures).unwrap_or_default();
        let counts: std::collections::BTreeMap<&str, i64> =
            f.counts().into_iter().map(|(k, v)| (k, v.unwrap_or(0))).collect();
        let get = |k: &str| counts.get(k).copied().unwrap_or(0);
        (get("deaths").saturating_add(get("missing")), get("affected"))
    };
    rows.iter()
        .filter(|r| {
            yingji_node::stats::lineage(&picture::HubHierarchy(regions), &r.region).iter().any(|d| d == division)
        })
        .max_by(|a, b| score(a).cmp(&score(b)).then_with(|| b.region.cmp(&a.region)))
        .map(|r| r.region.clone())
        .unwrap_or_else(|| division.to_owned())
}

/// Judges a subject inside the intake's transaction and records a change of its level.
#[allow(clippy::too_many_arguments)]
pub async fn judge(
    tx: &mut Tx,
    subject: &Subject,
    exercise: bool,
    rules: &RuleSet,
    regions: &Regions,
    cap: &CapContext,
    dispatch: &crate::dispatch::Context,
    now_ms: i64,
    trigger: Option<&str>,
) -> Result<Option<Change>, StoreError> {
    let key = subject.key();
    let current = tx.level(&key, exercise).await?;
    let (rows, hazard) = match subject {
        Subject::Incident(id) => (tx.report_rows(id, exercise).await?, tx.incident_hazard(id, exercise).await?),
        Subject::Region(_) => (Vec::new(), None),
    };
    let warnings: Vec<WarningRow> = tx
        .active_warnings(exercise)
        .await?
        .into_iter()
        .filter(|w| match subject {
            Subject::Incident(id) => w.incident.as_deref() == Some(id),
            Subject::Region(code) => w.incident.is_none() && picture::province_of(regions, &w.region) == *code,
        })
        .collect();
    let verdict = verdict(rules, subject, exercise, current, &rows, hazard, &warnings, regions, trigger);
    if verdict.level == current {
        return Ok(None);
    }
    let change = match (current, verdict.level) {
        (None, Some(_)) => "raise",
        (Some(a), Some(b)) if b < a => "upgrade",
        (Some(_), Some(_)) => "lower",
        _ => "clear",
    };
    let best = verdict.matched.first();
    let division = match (best, subject) {
        (Some(m), _) => m.division.clone(),
        (None, Subject::Region(code)) => code.clone(),
        (None, Subject::Incident(_)) => {
            rows.first().map(|r| picture::province_of(regions, &r.region)).unwrap_or_default()
        }
    };
    let reason = match best {
        Some(m) => m.reason.clone(),
        None => "no rule matches the current picture any more".to_owned(),
    };
    let actions = actions(&verdict.matched, verdict.level);
    let mut assessment = NewAssessment {
        id: uuid::Uuid::now_v7().to_string(),
        subject: key,
        exercise,
        incident: match subject {
            Subject::Incident(id) => Some(id.clone()),
            Subject::Region(_) => None,
        },
        division,
        at_ms: now_ms,
        level: verdict.level,
        previous: current,
        change: change.to_owned(),
        rule: best.map(|m| m.rule.clone()),
        reason,
        inputs: best.map(|m| m.inputs.to_string()).unwrap_or_else(|| "{}".to_owned()),
        actions: serde_json::to_string(&actions).unwrap_or_else(|_| "[]".to_owned()),
        matched: serde_json::to_string(&verdict.matched).unwrap_or_else(|_| "[]".to_owned()),
        trigger_event: trigger.map(str::to_owned),
        cap_id: None,
    };
    let cap_id = crate::alerts::assessment_alert(cap, tx, &assessment, verdict.hazard.as_deref(), now_ms).await?;
    assessment.cap_id = cap_id.clone();
    tx.insert_assessment(&assessment).await?;
    // A raised or upgraded incident gets a dispatch proposal for the recommended actions.
    let proposal = match (subject, change) {
        (Subject::Incident(id), "raise" | "upgrade") if !actions.is_empty() => {
            crate::dispatch::propose_in(
                tx,
                regions,
                &dispatch.neighbours,
                &dispatch.settings,
                &crate::dispatch::ProposalFor {
                    incident: id,
                    exercise,
                    assessment: Some(&assessment.id),
                    division: &worst_hit(&rows, &assessment.division, regions),
                    actions: &actions,
                    escalated_from: None,
                },
                now_ms,
            )
            .await?
        }
        _ => None,
    };
    let summary = json!({
        "id": assessment.id,
        "subject": assessment.subject,
        "exercise": exercise,
        "incident": assessment.incident,
        "division": assessment.division,
        "level": assessment.level,
        "previous": assessment.previous,
        "change": change,
        "rule": assessment.rule,
        "reason": assessment.reason,
        "cap": cap_id,
        "proposal": proposal,
    });
    tracing::info!(subject = %assessment.subject, exercise, level = ?assessment.level, previous = ?current,
        rule = ?assessment.rule, "response level changed");
    Ok(Some(Change { summary, cap: cap_id, rule_errors: verdict.errors }))
}
