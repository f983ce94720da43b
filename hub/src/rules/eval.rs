//! The rule set and its evaluation.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt};
use cel::common::value::Val;
use cel::{Context, ExecutionError, Value};

use super::expr::{Analysis, DIVISION_FIELDS, EVENT_FIELDS, Fields, INCIDENT_FIELDS, RefPath, Root, STATS_FIELDS, Seg};
use super::vocab;
use super::{Action, Evaluation, Input, Match, RuleError, RuleInfo, Scope, ScopeStats};

/// One compiled rule.
pub(crate) struct Rule {
    pub name: String,
    pub level: u8,
    pub scope: Scope,
    pub reason: String,
    pub actions: Vec<Action>,
    /// Bits of [`vocab::HAZARDS`]; none: any hazard (or none).
    pub hazards: Option<u16>,
    /// Bits of [`vocab::KINDS`]; none: any kind.
    pub kinds: Option<u16>,
    /// The compiled `when`, as evaluated ([`super::expr::fast_form`]).
    pub fast: cel::IdedExpr,
    pub analysis: Analysis,
}

impl Rule {
    /// Runs the expression. A panic in the CEL library is caught and made an error of this rule.
    fn run(&self, context: &Context<'_, '_>) -> Result<Value, ExecutionError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Value::resolve(&self.fast, context))).unwrap_or_else(
            |_| Err(ExecutionError::InternalError("the expression panicked in the CEL library".to_owned())),
        )
    }
}

impl Rule {
    fn admits(&self, kind: u16, hazard: u16) -> bool {
        self.kinds.is_none_or(|k| k & kind != 0) && self.hazards.is_none_or(|h| h & hazard != 0)
    }
}

/// A checked, compiled rule file.
pub struct RuleSet {
    file: String,
    rules: Vec<Rule>,
    infos: Vec<RuleInfo>,
    env: Arc<cel::Env>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet").field("file", &self.file).field("rules", &self.infos.len()).finish()
    }
}

/// The stack of the thread rule files are compiled on (reserved, not committed, until used).
const COMPILE_STACK: usize = 256 << 20;

/// The shipped default rules.
const DEFAULT_RULES: &str = include_str!("../../rules/default.toml");

impl RuleSet {
    /// Parses and checks the text of a rule file; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<RuleSet, RuleError> {
        let env = Arc::new(cel::Env::stdlib());
        // The CEL parser recurses with large frames: compile on a thread with a stack to match.
        let compiled = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("yingji-rules-compile".to_owned())
                .stack_size(COMPILE_STACK)
                .spawn_scoped(scope, || super::parse::parse_rules(text, file, &env))
                .map_err(|e| format!("cannot start the rule compiler: {e}"))?
                .join()
                .map_err(|_| "the rule compiler failed (a panic in the CEL library)".to_owned())
        });
        let (rules, infos) = compiled
            .map_err(|message| RuleError { file: file.to_owned(), line: 1, column: 1, message })
            .and_then(|result| result)?;
        Ok(RuleSet { file: file.to_owned(), rules, infos, env })
    }

    /// Reads, parses and checks a rule file.
    pub fn load(path: &Path) -> Result<RuleSet, RuleError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RuleError {
            file: file.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read the rule file: {e}"),
        })?;
        RuleSet::parse(&text, &file)
    }

    /// The shipped default rules (`hub/rules/default.toml`).
    pub fn defaults() -> Result<RuleSet, RuleError> {
        RuleSet::parse(DEFAULT_RULES, "default.toml")
    }

    /// The text of the shipped default rules.
    pub fn default_text() -> &'static str {
        DEFAULT_RULES
    }

    /// The file the rules came from, as given.
    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.infos
    }

    /// Runs every rule over `input`. A rule whose expression fails does not match and is counted
    /// in [`Evaluation::errors`]; the others go on.
    pub fn evaluate(&self, input: &Input) -> Evaluation {
        let kind = vocab::bit(vocab::KINDS, &input.event.kind).unwrap_or(0);
        let hazard = input
            .incident
            .as_ref()
            .and_then(|i| i.hazard.as_deref())
            .and_then(|h| vocab::bit(vocab::HAZARDS, h))
            .unwrap_or(0);
        // The variables are built with the fields the rules to run read, no more.
        let mut any = false;
        let mut fields = Fields::default();
        for rule in self.rules.iter().filter(|r| r.admits(kind, hazard)) {
            any = true;
            fields = fields.union(rule.analysis.fields);
        }
        let mut evaluation = Evaluation::default();
        if !any {
            return evaluation;
        }

        let root = root_context(&self.env, input, fields);
        let mut scoped: [Option<Context<'_, '_>>; 4] = [None, None, None, None];
        let mut explainer = Explainer::new(input);
        for rule in self.rules.iter().filter(|r| r.admits(kind, hazard)) {
            let stats = input.scopes.get(&rule.scope);
            let context = if rule.analysis.fields.uses_scope() {
                let Some(stats) = stats else { continue };
                &*scoped[rule.scope.index()].get_or_insert_with(|| scope_context(&root, rule.scope, stats, fields))
            } else {
                &root
            };
            match rule.run(context) {
                Ok(Value::Bool(true)) => evaluation.matched.push(Match {
                    rule: rule.name.clone(),
                    level: rule.level,
                    reason: rule.reason.clone(),
                    scope: rule.scope,
                    division: stats.map_or_else(|| input.event.region.clone(), |s| s.code.clone()),
                    actions: rule.actions.clone(),
                    inputs: explainer.explain(&rule.analysis.paths, rule.scope),
                }),
                Ok(Value::Bool(false)) => {}
                Ok(other) => evaluation.errors.push((rule.name.clone(), not_bool(&other))),
                Err(e) => evaluation.errors.push((rule.name.clone(), e.to_string())),
            }
        }
        // Stable: file order within a level.
        evaluation.matched.sort_by_key(|m| m.level);
        evaluation.level = evaluation.matched.first().map(|m| m.level);
        evaluation
    }
}

fn not_bool(value: &Value) -> String {
    format!("gave {} ({value:?}), not a bool", value.type_of())
}

/// Tries a rule once on an all-zero input (every scope present, empty body): refuses a result
/// that is not a bool and the errors that come from the expression rather than from data.
pub(crate) fn sample_check(rule: &Rule, env: &Arc<cel::Env>) -> Result<(), String> {
    let first = |list: &[&'static str], mask: Option<u16>| {
        mask.and_then(|m| list.get(m.trailing_zeros() as usize).copied()).unwrap_or_default()
    };
    let mut input = Input::default();
    input.event.kind = first(vocab::KINDS, rule.kinds).to_owned();
    input.event.body = serde_json::Value::Object(serde_json::Map::new());
    input.incident = Some(super::IncidentView {
        hazard: Some(first(vocab::HAZARDS, rule.hazards).to_owned()),
        ..Default::default()
    });
    let zero = ScopeStats::default();
    let root = root_context(env, &input, Fields::ALL);
    let context = scope_context(&root, rule.scope, &zero, Fields::ALL);
    match rule.run(&context) {
        Ok(Value::Bool(_)) => Ok(()),
        Ok(other) => Err(format!("must give a bool: on an all-zero input it {}", not_bool(&other))),
        // Errors that depend on the data (a body without the key, a zero divisor) are left to
        // run time, where they make the rule not match.
        Err(
            ExecutionError::NoSuchKey(_)
            | ExecutionError::DivisionByZero(_)
            | ExecutionError::RemainderByZero(_)
            | ExecutionError::Overflow(..)
            | ExecutionError::IndexOutOfBounds(_)
            | ExecutionError::FunctionError { .. },
        ) => Ok(()),
        Err(e) => Err(format!("fails on an all-zero input: {e}")),
    }
}

type BoxVal<'v> = Box<dyn Val + 'v>;

fn string(s: &str) -> BoxVal<'_> {
    Box::new(CelString::from(s))
}

fn int<'v>(i: i64) -> BoxVal<'v> {
    Box::new(CelInt::from(i))
}

fn double<'v>(d: f64) -> BoxVal<'v> {
    Box::new(CelDouble::from(d))
}

fn boolean<'v>(b: bool) -> BoxVal<'v> {
    Box::new(CelBool::from(b))
}

/// A JSON value as a CEL value, borrowing its strings.
fn json(value: &serde_json::Value) -> BoxVal<'_> {
    match value {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => boolean(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                int(i)
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => string(s),
        serde_json::Value::Array(items) => Box::new(CelList::from(items.iter().map(json).collect::<Vec<_>>())),
        serde_json::Value::Object(entries) => Box::new(CelMap::from(
            entries.iter().map(|(k, v)| (CelMapKey::from(k.as_str()), json(v))).collect::<HashMap<_, _>>(),
        )),
    }
}

/// A value of a map entry, built only when the entry is wanted.
enum Lazy<'v> {
    Str(&'v str),
    Int(i64),
    Double(f64),
    Bool(bool),
    Json(&'v serde_json::Value),
    List(&'v [String]),
}

impl<'v> Lazy<'v> {
    fn build(self) -> BoxVal<'v> {
        match self {
            Lazy::Str(s) => string(s),
            Lazy::Int(i) => int(i),
            Lazy::Double(d) => double(d),
            Lazy::Bool(b) => boolean(b),
            Lazy::Json(j) => json(j),
            Lazy::List(l) => Box::new(CelList::from(l.iter().map(|r| string(r)).collect::<Vec<_>>())),
        }
    }
}

/// A map of the entries of `names` whose bit is set in `mask`.
fn lazy_map<'v, const N: usize>(names: &[&'static str], mask: u16, values: [Lazy<'v>; N]) -> BoxVal<'v> {
    let mut m = HashMap::with_capacity(N.min(mask.count_ones() as usize));
    for (i, (name, value)) in names.iter().zip(values).enumerate() {
        if mask & (1 << i) != 0 {
            m.insert(CelMapKey::from(*name), value.build());
        }
    }
    Box::new(CelMap::from(m))
}

/// `event` and `incident`, with the fields in `fields`; a variable no rule reads is left out.
fn root_context<'v>(env: &Arc<cel::Env>, input: &'v Input, fields: Fields) -> Context<'v, 'v> {
    let mut context = Context::with_env(Arc::clone(env));
    if fields.event != 0 {
        let e = &input.event;
        let event = lazy_map(
            EVENT_FIELDS,
            fields.event,
            [
                Lazy::Str(&e.id),
                Lazy::Str(&e.kind),
                Lazy::Str(&e.node),
                Lazy::Str(&e.region),
                Lazy::Bool(e.exercise),
                Lazy::Str(e.incident.as_deref().unwrap_or_default()),
                Lazy::Json(&e.body),
            ],
        );
        context.add_variable_as_val("event", event);
    }
    if fields.incident != 0 {
        let incident = match &input.incident {
            Some(i) => [
                Lazy::Str(&i.id),
                Lazy::Str(i.hazard.as_deref().unwrap_or_default()),
                Lazy::Bool(i.exercise),
                Lazy::Int(i.level.map_or(0, i64::from)),
                Lazy::List(&i.regions),
            ],
            None => [Lazy::Str(""), Lazy::Str(""), Lazy::Bool(false), Lazy::Int(0), Lazy::List(&[])],
        };
        context.add_variable_as_val("incident", lazy_map(INCIDENT_FIELDS, fields.incident, incident));
    }
    context
}

/// `stats` and `division` of one scope, with the fields in `fields`, over the root variables.
fn scope_context<'p, 'v>(
    root: &'p Context<'p, 'v>,
    scope: Scope,
    stats: &'v ScopeStats,
    fields: Fields,
) -> Context<'p, 'v> {
    let mut context = root.new_inner_scope();
    if fields.stats != 0 {
        let t = &stats.totals;
        let n = |v: Option<i64>| Lazy::Int(v.unwrap_or(0));
        let d = |v: Option<f64>| Lazy::Double(v.unwrap_or(0.0));
        let sum = |a: Option<i64>, b: Option<i64>| Lazy::Int(a.unwrap_or(0).saturating_add(b.unwrap_or(0)));
        let values = [
            n(t.affected),
            n(t.deaths),
            n(t.missing),
            n(t.injured),
            n(t.relocated),
            n(t.needing_aid),
            n(t.houses_collapsed),
            n(t.houses_severely_damaged),
            n(t.houses_damaged),
            d(t.crop_area_ha),
            d(t.crop_failure_ha),
            d(t.direct_loss_cny),
            sum(t.deaths, t.missing),
            sum(t.houses_collapsed, t.houses_severely_damaged),
            sum(t.relocated, t.needing_aid),
        ];
        context.add_variable_as_val("stats", lazy_map(STATS_FIELDS, fields.stats, values));
    }
    if fields.division != 0 {
        let values = [Lazy::Str(&stats.code), Lazy::Str(&stats.name), Lazy::Str(scope.as_str())];
        context.add_variable_as_val("division", lazy_map(DIVISION_FIELDS, fields.division, values));
    }
    context
}

/// The values of the paths a matched rule read, as JSON.
struct Explainer<'a> {
    input: &'a Input,
}

impl<'a> Explainer<'a> {
    fn new(input: &'a Input) -> Self {
        Explainer { input }
    }

    fn explain(&mut self, paths: &[RefPath], scope: Scope) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for path in paths {
            out.insert(path.text.clone(), self.value(path, scope));
        }
        serde_json::Value::Object(out)
    }

    fn value(&self, path: &RefPath, scope: Scope) -> serde_json::Value {
        use serde_json::Value as J;
        let input = self.input;
        let Some((Seg::Field(first), rest)) = path.segs.split_first() else {
            // The whole variable (or an index on a map, which the analysis refuses).
            let whole = match path.root {
                Root::Event => event_json(input),
                Root::Incident => incident_json(input),
                Root::Stats => input.scopes.get(&scope).map_or(J::Null, stats_json),
                Root::Division => input.scopes.get(&scope).map_or(J::Null, |s| division_json(s, scope)),
            };
            return lookup(&whole, &path.segs);
        };
        let first = first.as_str();
        match path.root {
            Root::Event if first == "body" => lookup(&input.event.body, rest),
            Root::Event => lookup(&event_json(input)[first], rest),
            Root::Incident if first == "regions" => {
                lookup(&J::from(input.incident.as_ref().map(|i| i.regions.clone()).unwrap_or_default()), rest)
            }
            Root::Incident => incident_json(input)[first].clone(),
            Root::Stats => input.scopes.get(&scope).map_or(J::Null, |s| stat(s, first)),
            Root::Division => input.scopes.get(&scope).map_or(J::Null, |s| division_json(s, scope)[first].clone()),
        }
    }
}

/// One field of `stats`, as the rule saw it.
fn stat(stats: &ScopeStats, field: &str) -> serde_json::Value {
    let t = &stats.totals;
    let n = |v: Option<i64>| serde_json::Value::from(v.unwrap_or(0));
    let d = |v: Option<f64>| serde_json::Value::from(v.unwrap_or(0.0));
    let sum = |a: Option<i64>, b: Option<i64>| serde_json::Value::from(a.unwrap_or(0).saturating_add(b.unwrap_or(0)));
    match field {
        "affected" => n(t.affected),
        "deaths" => n(t.deaths),
        "missing" => n(t.missing),
        "injured" => n(t.injured),
        "relocated" => n(t.relocated),
        "needing_aid" => n(t.needing_aid),
        "houses_collapsed" => n(t.houses_collapsed),
        "houses_severely_damaged" => n(t.houses_severely_damaged),
        "houses_damaged" => n(t.houses_damaged),
        "crop_area_ha" => d(t.crop_area_ha),
        "crop_failure_ha" => d(t.crop_failure_ha),
        "direct_loss_cny" => d(t.direct_loss_cny),
        "deaths_missing" => sum(t.deaths, t.missing),
        "houses_collapsed_severe" => sum(t.houses_collapsed, t.houses_severely_damaged),
        "relocated_aid" => sum(t.relocated, t.needing_aid),
        _ => serde_json::Value::Null,
    }
}

fn division_json(stats: &ScopeStats, scope: Scope) -> serde_json::Value {
    serde_json::json!({"code": stats.code, "name": stats.name, "level": scope.as_str()})
}

fn lookup(mut value: &serde_json::Value, segs: &[Seg]) -> serde_json::Value {
    for seg in segs {
        let next = match (seg, value) {
            (Seg::Field(f), serde_json::Value::Object(m)) => m.get(f),
            (Seg::Index(i), serde_json::Value::Array(a)) => usize::try_from(*i).ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(v) => value = v,
            None => return serde_json::Value::Null,
        }
    }
    value.clone()
}

fn event_json(input: &Input) -> serde_json::Value {
    let e = &input.event;
    serde_json::json!({
        "id": e.id, "kind": e.kind, "node": e.node, "region": e.region, "exercise": e.exercise,
        "incident": e.incident.as_deref().unwrap_or_default(), "body": e.body,
    })
}

fn incident_json(input: &Input) -> serde_json::Value {
    match &input.incident {
        Some(i) => serde_json::json!({
            "id": i.id, "hazard": i.hazard.as_deref().unwrap_or_default(), "exercise": i.exercise,
            "level": i.level.unwrap_or(0), "regions": i.regions,
        }),
        None => serde_json::json!({"id": "", "hazard": "", "exercise": false, "level": 0, "regions": []}),
    }
}

fn stats_json(stats: &ScopeStats) -> serde_json::Value {
    let map = STATS_FIELDS.iter().map(|f| ((*f).to_owned(), stat(stats, f))).collect();
    serde_json::Value::Object(map)
}
