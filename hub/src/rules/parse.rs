//! Reading a rule file: TOML with spans, the vocabulary, the expressions compiled and tried once.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::eval::{Rule, sample_check};
use super::expr;
use super::vocab;
use super::{Action, RuleError, RuleInfo, Scope, parse_level};

/// Bounds on a `when` expression, so that neither the parser nor the interpreter (both recursive)
/// can run out of stack on operator input.
const MAX_WHEN_BYTES: usize = 8 * 1024;
const MAX_NESTING: usize = 32;
const MAX_DEPTH: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    hazards: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    kinds: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    scope: Option<Scope>,
    when: Spanned<String>,
    level: Spanned<toml::Value>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    actions: Vec<Spanned<RawAction>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    #[serde(default)]
    capability: Option<Spanned<String>>,
    #[serde(default)]
    teams: Option<Spanned<i64>>,
    #[serde(default)]
    automatic: Option<Spanned<bool>>,
    #[serde(default)]
    item: Option<Spanned<String>>,
    #[serde(default)]
    qty: Option<Spanned<i64>>,
}

/// The spot in the file an error is about.
struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> RuleError {
        RuleError::at(self.file, self.text, offset, message)
    }
}

/// Parses and checks a rule file.
pub(crate) fn parse_rules(
    text: &str,
    file: &str,
    env: &Arc<cel::Env>,
) -> Result<(Vec<Rule>, Vec<RuleInfo>), RuleError> {
    let ctx = Ctx { file, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let mut error = toml_error(file, text, &e);
        if e.span().is_none()
            && let Some(offset) = locate_missing(text, e.message())
        {
            error = RuleError::at(file, text, offset, error.message);
        }
        error
    })?;
    if raw.rule.is_empty() {
        return Err(ctx.err(0, "no rules: a rule file needs at least one [[rule]]"));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rules = Vec::with_capacity(raw.rule.len());
    let mut infos = Vec::with_capacity(raw.rule.len());
    for raw_rule in raw.rule {
        let (rule, info) = build_rule(&ctx, raw_rule.into_inner(), env, &mut seen)?;
        rules.push(rule);
        infos.push(info);
    }
    Ok((rules, infos))
}

fn build_rule(
    ctx: &Ctx<'_>,
    raw: RawRule,
    env: &Arc<cel::Env>,
    seen: &mut HashMap<String, usize>,
) -> Result<(Rule, RuleInfo), RuleError> {
    let name_span = raw.name.span();
    let name = raw.name.into_inner();
    if name.trim().is_empty() {
        return Err(ctx.err(name_span.start, "a rule's name must not be empty"));
    }
    if let Some(first) = seen.get(&name) {
        let (line, _) = super::line_col(ctx.text, *first);
        return Err(ctx.err(name_span.start, format!("duplicate rule name \"{name}\" (first at line {line})")));
    }
    seen.insert(name.clone(), name_span.start);
    let here = |offset: usize, message: String| ctx.err(offset, format!("rule \"{name}\": {message}"));

    let level_span = raw.level.span();
    let level = match raw.level.get_ref() {
        toml::Value::Integer(i) => u8::try_from(*i).ok().filter(|l| (1..=4).contains(l)),
        toml::Value::String(s) => parse_level(s),
        _ => None,
    }
    .ok_or_else(|| {
        here(
            level_span.start,
            format!("level must be 1..4, \"I\"..\"IV\" or \"Ⅰ\"..\"Ⅳ\", not {}", raw.level.get_ref()),
        )
    })?;

    let hazards = names(raw.hazards, vocab::HAZARDS, "hazard", &here)?;
    let kinds = names(raw.kinds, vocab::KINDS, "event kind", &here)?;
    let scope = raw.scope.unwrap_or(Scope::Province);

    let mut actions = Vec::with_capacity(raw.actions.len());
    for action in raw.actions {
        actions.push(build_action(action, &here)?);
    }

    // The expression: bounded (the parser and the interpreter recurse), compiled, its names
    // checked, tried once on an all-zero input.
    let when_span = raw.when.span();
    let when = raw.when.into_inner();
    if when.len() > MAX_WHEN_BYTES {
        return Err(here(when_span.start, format!("`when` is longer than {MAX_WHEN_BYTES} bytes")));
    }
    if expr::nesting(&when) > MAX_NESTING {
        return Err(here(
            when_span.start,
            format!("`when` nests brackets deeper than {MAX_NESTING}: split it or simplify it"),
        ));
    }
    let program = env.compile(&when).map_err(|errors| {
        let detail = errors
            .errors
            .first()
            .map(|e| {
                let msg = e.msg.strip_prefix("Syntax error: ").unwrap_or(&e.msg);
                let in_file = expr::offset_of(&when, e.pos.0, e.pos.1)
                    .zip(content_start(ctx.text, &when_span, &when))
                    .map(|(o, start)| {
                        let (line, column) = super::line_col(ctx.text, start + o);
                        format!(", file {line}:{column}")
                    })
                    .unwrap_or_default();
                format!("{msg} (at {}:{} of the expression{in_file})", e.pos.0, e.pos.1)
            })
            .unwrap_or_else(|| errors.to_string());
        here(when_span.start, format!("`when` does not compile: {detail}"))
    })?;
    let depth = expr::depth(program.expression());
    if depth > MAX_DEPTH {
        return Err(here(
            when_span.start,
            format!("`when` is nested {depth} deep (at most {MAX_DEPTH}): a long chain of `+`, say, nests; split it"),
        ));
    }
    let analysis = expr::analyse(&program).map_err(|problem| {
        let offset = problem
            .offset
            .and_then(|o| {
                let o = if when.as_bytes().get(o) == Some(&b'.') { o + 1 } else { o };
                content_start(ctx.text, &when_span, &when).map(|start| start + o)
            })
            .unwrap_or(when_span.start);
        here(offset, format!("`when`: {}", problem.message))
    })?;

    let reason = raw.reason.or_else(|| raw.description.clone()).unwrap_or_else(|| name.clone());
    let info = RuleInfo {
        name: name.clone(),
        level,
        scope,
        description: raw.description,
        reason: reason.clone(),
        when: when.clone(),
        hazards: hazards.as_ref().map(|(list, _)| list.clone()),
        kinds: kinds.as_ref().map(|(list, _)| list.clone()),
        actions: actions.clone(),
    };
    let rule = Rule {
        name: name.clone(),
        level,
        scope,
        reason,
        actions,
        hazards: hazards.map(|(_, mask)| mask),
        kinds: kinds.map(|(_, mask)| mask),
        fast: expr::fast_form(&program),
        analysis,
    };
    sample_check(&rule, env).map_err(|message| here(when_span.start, format!("`when` {message}")))?;
    Ok((rule, info))
}

/// A list of names from a vocabulary: the names and their bit mask.
fn names(
    list: Option<Spanned<Vec<Spanned<String>>>>,
    known: &[&str],
    what: &str,
    here: &dyn Fn(usize, String) -> RuleError,
) -> Result<Option<(Vec<String>, u16)>, RuleError> {
    let Some(list) = list else { return Ok(None) };
    let span = list.span();
    let list = list.into_inner();
    if list.is_empty() {
        return Err(here(span.start, format!("an empty list of {what}s never matches: leave it out to match any")));
    }
    let mut mask = 0;
    let mut out = Vec::with_capacity(list.len());
    for name in list {
        let bit = vocab::bit(known, name.get_ref()).ok_or_else(|| {
            here(name.span().start, format!("unknown {what} \"{}\" (known: {})", name.get_ref(), known.join(", ")))
        })?;
        mask |= bit;
        out.push(name.into_inner());
    }
    Ok(Some((out, mask)))
}

fn build_action(raw: Spanned<RawAction>, here: &dyn Fn(usize, String) -> RuleError) -> Result<Action, RuleError> {
    let span = raw.span();
    let raw = raw.into_inner();
    match (raw.capability, raw.item) {
        (Some(capability), None) => {
            if !vocab::CAPABILITIES.contains(&capability.get_ref().as_str()) {
                return Err(here(
                    capability.span().start,
                    format!(
                        "unknown capability \"{}\" (known: {})",
                        capability.get_ref(),
                        vocab::CAPABILITIES.join(", ")
                    ),
                ));
            }
            if let Some(qty) = raw.qty {
                return Err(here(qty.span().start, "`qty` goes with `item`; a capability takes `teams`".to_owned()));
            }
            let teams = match raw.teams {
                None => 1,
                Some(teams) => u32::try_from(*teams.get_ref())
                    .ok()
                    .filter(|t| *t >= 1)
                    .ok_or_else(|| here(teams.span().start, "`teams` must be a whole number ≥ 1".to_owned()))?,
            };
            let automatic = raw.automatic.is_some_and(|a| a.into_inner());
            Ok(Action::Teams { capability: capability.into_inner(), teams, automatic })
        }
        (None, Some(item)) => {
            if !vocab::ITEMS.contains(&item.get_ref().as_str()) {
                return Err(here(
                    item.span().start,
                    format!("unknown item \"{}\" (known: {})", item.get_ref(), vocab::ITEMS.join(", ")),
                ));
            }
            if let Some(teams) = raw.teams {
                return Err(here(teams.span().start, "`teams` goes with `capability`; an item takes `qty`".to_owned()));
            }
            if let Some(automatic) = raw.automatic {
                return Err(here(
                    automatic.span().start,
                    "`automatic` applies to teams (`capability`) only".to_owned(),
                ));
            }
            let qty = raw.qty.ok_or_else(|| here(span.start, format!("item \"{}\" needs a `qty`", item.get_ref())))?;
            let qty = u64::try_from(*qty.get_ref())
                .ok()
                .filter(|q| *q >= 1)
                .ok_or_else(|| here(qty.span().start, "`qty` must be a whole number ≥ 1".to_owned()))?;
            Ok(Action::Item { item: item.into_inner(), qty })
        }
        (Some(_), Some(item)) => {
            Err(here(item.span().start, "an action is either a `capability` (teams) or an `item`, not both".to_owned()))
        }
        (None, None) => Err(here(span.start, "an action needs a `capability` or an `item`".to_owned())),
    }
}

/// The byte offset in `text` where the value of the string at `span` starts, when the string's
/// text in the file is exactly `value` (a literal string, or a basic one without escapes), so that
/// offsets inside the value map onto the file.
pub(crate) fn content_start(text: &str, span: &Range<usize>, value: &str) -> Option<usize> {
    let raw = text.get(span.clone())?;
    let delimiter = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        3
    } else if raw.starts_with('\'') || raw.starts_with('"') {
        1
    } else {
        return None;
    };
    let mut start = span.start + delimiter;
    let mut inner = text.get(start..span.end.checked_sub(delimiter)?)?;
    if delimiter == 3 {
        for newline in ["\r\n", "\n"] {
            if let Some(rest) = inner.strip_prefix(newline) {
                start += newline.len();
                inner = rest;
                break;
            }
        }
    }
    (inner == value).then_some(start)
}

/// Where a "missing field `x`" error (which has no span) is: the first rule without `x`.
fn locate_missing(text: &str, message: &str) -> Option<usize> {
    #[derive(Deserialize)]
    struct Loose {
        #[serde(default)]
        rule: Vec<Spanned<toml::Table>>,
    }
    let field = message.strip_prefix("missing field `")?.split('`').next()?;
    let loose: Loose = toml::from_str(text).ok()?;
    loose.rule.iter().find(|r| !r.get_ref().contains_key(field)).map(|r| r.span().start)
}

/// A TOML or shape error at its spot.
pub(crate) fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> RuleError {
    let offset = e.span().map_or(0, |s| s.start);
    RuleError::at(file, text, offset, e.message().trim_end().to_owned())
}
