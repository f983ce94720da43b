//! Risk rules: operator-written rules in a TOML file, each with a CEL (Common Expression
//! Language) condition over an event, its incident and the incident's statistics, giving a
//! response level Ⅰ–Ⅳ (特别重大/重大/较大/一般) and recommended actions.
//!
//! * [`RuleSet::parse`] / [`RuleSet::load`] read and check a rule file: every error is a
//!   [`RuleError`] with the file, line and column of the offending spot.
//! * [`RuleSet::evaluate`] runs the rules over one [`Input`] and gives an [`Evaluation`]: the
//!   highest level matched, every match with its actions and the values it looked at.
//! * [`RuleHandle`] holds the rules in force and reloads them ([`spawn_watcher`]).
//! * [`cases::run`] runs a file of test cases against a rule set.
//!
//! The format, the variables a rule sees and the default rules are described in `docs/rules.md`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub mod cases;
mod eval;
mod expr;
mod parse;
mod reload;
pub mod vocab;

pub use eval::RuleSet;
pub use reload::{ReloadStats, RuleHandle, spawn_watcher};

/// The division level a rule's statistics are taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    County,
    Prefecture,
    Province,
    Nation,
}

impl Scope {
    /// Every scope, smallest first.
    pub const ALL: [Scope; 4] = [Scope::County, Scope::Prefecture, Scope::Province, Scope::Nation];

    /// The name used in rule files and in the `division.level` variable.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::County => "county",
            Scope::Prefecture => "prefecture",
            Scope::Province => "province",
            Scope::Nation => "nation",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Scope::County => 0,
            Scope::Prefecture => 1,
            Scope::Province => 2,
            Scope::Nation => 3,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The event a rule is evaluated for (contract §3.5).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventView {
    pub id: String,
    /// `report`, `warning`, `stats`, `device` or `media`.
    pub kind: String,
    pub node: String,
    pub region: String,
    pub exercise: bool,
    pub incident: Option<String>,
    pub body: serde_json::Value,
}

/// The incident the event belongs to, as the hub knows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IncidentView {
    pub id: String,
    pub hazard: Option<String>,
    pub exercise: bool,
    /// The level in force, 1..=4 (1 = Ⅰ, the highest); none yet when `None`.
    pub level: Option<u8>,
    pub regions: Vec<String>,
}

/// The incident's statistics of one division containing the event's region.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScopeStats {
    /// GB/T 2260 code of the division.
    pub code: String,
    pub name: String,
    pub totals: yingji_node::stats::Totals,
}

/// Everything a rule sees.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Input {
    pub event: EventView,
    pub incident: Option<IncidentView>,
    /// The incident's statistics of the event's division at each level; a level may be missing.
    pub scopes: BTreeMap<Scope, ScopeStats>,
}

/// A recommended action of a rule: teams with a capability, or a quantity of a relief item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Action {
    Teams {
        capability: String,
        teams: u32,
        /// Whether the hub may issue this without an officer's approval.
        automatic: bool,
    },
    Item {
        item: String,
        qty: u64,
    },
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub rule: String,
    /// 1..=4 (1 = Ⅰ).
    pub level: u8,
    pub reason: String,
    pub scope: Scope,
    /// The code of the division whose statistics the rule looked at (the event's region when the
    /// rule looks at no statistics and the scope was not given).
    pub division: String,
    pub actions: Vec<Action>,
    /// Why: every value the rule's expression referenced, by its path (`"stats.deaths_missing"`).
    pub inputs: serde_json::Value,
}

/// The result of running a rule set over one input.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evaluation {
    /// The highest (numerically smallest) level matched.
    pub level: Option<u8>,
    /// Every matching rule, highest level first, then in file order.
    pub matched: Vec<Match>,
    /// Rules whose expression failed at run time (rule name, message): they did not match.
    pub errors: Vec<(String, String)>,
}

/// A summary of one rule, for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleInfo {
    pub name: String,
    pub level: u8,
    pub scope: Scope,
    pub description: Option<String>,
    pub reason: String,
    /// The `when` expression as written.
    pub when: String,
    pub hazards: Option<Vec<String>>,
    pub kinds: Option<Vec<String>>,
    pub actions: Vec<Action>,
}

/// A refused rule file (or cases file): where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct RuleError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl RuleError {
    /// An error at a byte offset of `text`.
    pub(crate) fn at(file: &str, text: &str, offset: usize, message: impl Into<String>) -> RuleError {
        let (line, column) = line_col(text, offset);
        RuleError { file: file.to_owned(), line, column, message: message.into() }
    }
}

/// 1-based line and column (in characters) of a byte offset; an offset past the end or inside a
/// character is moved back to the nearest character boundary.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Checks a rule file: the same as [`RuleSet::load`].
pub fn check(path: &Path) -> Result<RuleSet, RuleError> {
    RuleSet::load(path)
}

/// Parses a level: 1..=4, or `I`..`IV`, or `Ⅰ`..`Ⅳ`.
pub fn parse_level(text: &str) -> Option<u8> {
    match text.trim() {
        "1" | "I" | "Ⅰ" => Some(1),
        "2" | "II" | "Ⅱ" => Some(2),
        "3" | "III" | "Ⅲ" => Some(3),
        "4" | "IV" | "Ⅳ" => Some(4),
        _ => None,
    }
}

/// The Roman numeral of a level (`Ⅰ`..`Ⅳ`), `?` out of range.
pub fn level_numeral(level: u8) -> &'static str {
    match level {
        1 => "Ⅰ",
        2 => "Ⅱ",
        3 => "Ⅲ",
        4 => "Ⅳ",
        _ => "?",
    }
}
