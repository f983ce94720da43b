//! What a compiled `when` expression refers to: the member paths of the rule variables it reads
//! (for the explanation of a match), whether it needs the rule's scope or the event body, and a
//! check of the field names of the variables whose fields are fixed.

use cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue};

/// The fields of `stats`: the twelve indicators, then the derived sums.
pub(crate) const STATS_FIELDS: &[&str] = &[
    "affected",
    "deaths",
    "missing",
    "injured",
    "relocated",
    "needing_aid",
    "houses_collapsed",
    "houses_severely_damaged",
    "houses_damaged",
    "crop_area_ha",
    "crop_failure_ha",
    "direct_loss_cny",
    "deaths_missing",
    "houses_collapsed_severe",
    "relocated_aid",
];
pub(crate) const EVENT_FIELDS: &[&str] = &["id", "kind", "node", "region", "exercise", "incident", "body"];
pub(crate) const INCIDENT_FIELDS: &[&str] = &["id", "hazard", "exercise", "level", "regions"];
pub(crate) const DIVISION_FIELDS: &[&str] = &["code", "name", "level"];

/// Names an expression may use as an identifier besides the variables: CEL's type names.
const TYPE_NAMES: &[&str] =
    &["int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn", "google"];

/// A variable a rule sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Event,
    Incident,
    Stats,
    Division,
}

impl Root {
    fn of(name: &str) -> Option<Root> {
        match name {
            "event" => Some(Root::Event),
            "incident" => Some(Root::Incident),
            "stats" => Some(Root::Stats),
            "division" => Some(Root::Division),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Root::Event => "event",
            Root::Incident => "incident",
            Root::Stats => "stats",
            Root::Division => "division",
        }
    }
}

/// One step of a member path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seg {
    Field(String),
    Index(i64),
}

/// A member path an expression reads, e.g. `stats.deaths_missing` or `event.body.metric.kind`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefPath {
    pub root: Root,
    pub segs: Vec<Seg>,
    /// As shown in explanations.
    pub text: String,
}

/// The fields of each variable an expression reads: bit `i` is field `i` of the variable's list
/// (`EVENT_FIELDS`, …); all bits when it reads the variable as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    pub event: u16,
    pub incident: u16,
    pub stats: u16,
    pub division: u16,
}

impl Fields {
    pub(crate) const ALL: Fields = Fields { event: u16::MAX, incident: u16::MAX, stats: u16::MAX, division: u16::MAX };

    pub(crate) fn union(self, other: Fields) -> Fields {
        Fields {
            event: self.event | other.event,
            incident: self.incident | other.incident,
            stats: self.stats | other.stats,
            division: self.division | other.division,
        }
    }

    /// Reads `stats` or `division`, so needs the rule's scope.
    pub(crate) fn uses_scope(self) -> bool {
        self.stats | self.division != 0
    }

    fn add(&mut self, root: Root, field: Option<&str>) {
        let (list, mask) = match root {
            Root::Event => (EVENT_FIELDS, &mut self.event),
            Root::Incident => (INCIDENT_FIELDS, &mut self.incident),
            Root::Stats => (STATS_FIELDS, &mut self.stats),
            Root::Division => (DIVISION_FIELDS, &mut self.division),
        };
        *mask |= match field.and_then(|f| list.iter().position(|n| *n == f)) {
            Some(i) => 1 << i,
            None => u16::MAX,
        };
    }
}

/// What an expression refers to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Analysis {
    pub paths: Vec<RefPath>,
    pub fields: Fields,
}

/// A name the expression uses that cannot exist.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    /// Byte offset in the expression, when known.
    pub offset: Option<usize>,
    pub message: String,
}

/// Analyses a compiled expression.
pub(crate) fn analyse(program: &cel::Program) -> Result<Analysis, Problem> {
    let mut walker = Walker { program, bound: Vec::new(), analysis: Analysis::default() };
    walker.walk(program.expression())?;
    Ok(walker.analysis)
}

struct Walker<'a> {
    program: &'a cel::Program,
    /// Comprehension variables in scope.
    bound: Vec<&'a str>,
    analysis: Analysis,
}

/// The name an identifier, field selections and literal indexes on it spell: the identifier, its
/// node id, and each step with the id of its node.
type Chain<'a> = (&'a str, u64, Vec<(Seg, u64)>);

fn chain(e: &IdedExpr) -> Option<Chain<'_>> {
    match &e.expr {
        Expr::Ident(name) => Some((name.as_str(), e.id, Vec::new())),
        Expr::Select(select) => {
            let (name, id, mut segs) = chain(&select.operand)?;
            segs.push((Seg::Field(select.field.clone()), e.id));
            Some((name, id, segs))
        }
        Expr::Call(call) if call.func_name == "_[_]" && call.target.is_none() && call.args.len() == 2 => {
            let seg = match &call.args[1].expr {
                Expr::Literal(LiteralValue::String(s)) => Seg::Field(s.inner().to_owned()),
                Expr::Literal(LiteralValue::Int(i)) => Seg::Index(*i.inner()),
                _ => return None,
            };
            let (name, id, mut segs) = chain(&call.args[0])?;
            segs.push((seg, e.id));
            Some((name, id, segs))
        }
        _ => None,
    }
}

impl<'a> Walker<'a> {
    fn walk(&mut self, e: &'a IdedExpr) -> Result<(), Problem> {
        if let Some((name, id, segs)) = chain(e) {
            if self.bound.contains(&name) || name.starts_with('@') {
                return Ok(());
            }
            let Some(root) = Root::of(name) else {
                if TYPE_NAMES.contains(&name) {
                    return Ok(());
                }
                return Err(self.problem(
                    id,
                    format!("unknown variable `{name}` (a rule sees event, incident, stats and division)"),
                ));
            };
            self.check(root, &segs)?;
            self.record(root, segs.into_iter().map(|(seg, _)| seg).collect());
            return Ok(());
        }
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => {}
            Expr::Select(select) => self.walk(&select.operand)?,
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.walk(target)?;
                }
                for arg in &call.args {
                    self.walk(arg)?;
                }
            }
            Expr::Comprehension(comp) => {
                self.walk(&comp.iter_range)?;
                self.walk(&comp.accu_init)?;
                let depth = self.bound.len();
                self.bound.push(&comp.iter_var);
                if let Some(var2) = &comp.iter_var2 {
                    self.bound.push(var2);
                }
                self.bound.push(&comp.accu_var);
                let result = self
                    .walk(&comp.loop_cond)
                    .and_then(|()| self.walk(&comp.loop_step))
                    .and_then(|()| self.walk(&comp.result));
                self.bound.truncate(depth);
                result?;
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.walk(element)?;
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    self.walk_entry(&entry.expr)?;
                }
            }
            Expr::Struct(structure) => {
                for entry in &structure.entries {
                    self.walk_entry(&entry.expr)?;
                }
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
        Ok(())
    }

    fn walk_entry(&mut self, entry: &'a cel::common::ast::EntryExpr) -> Result<(), Problem> {
        match entry {
            cel::common::ast::EntryExpr::StructField(field) => self.walk(&field.value),
            cel::common::ast::EntryExpr::MapEntry(entry) => {
                self.walk(&entry.key)?;
                self.walk(&entry.value)
            }
        }
    }

    /// Refuses a field the variable cannot have.
    fn check(&self, root: Root, segs: &[(Seg, u64)]) -> Result<(), Problem> {
        let Some((first, first_id)) = segs.first() else { return Ok(()) };
        let fields = match root {
            Root::Event => EVENT_FIELDS,
            Root::Incident => INCIDENT_FIELDS,
            Root::Stats => STATS_FIELDS,
            Root::Division => DIVISION_FIELDS,
        };
        let field = match first {
            Seg::Field(f) if fields.contains(&f.as_str()) => f.as_str(),
            Seg::Field(f) => {
                return Err(self.problem(
                    *first_id,
                    format!("`{}` has no field `{f}` (its fields: {})", root.name(), fields.join(", ")),
                ));
            }
            Seg::Index(_) => {
                return Err(self.problem(*first_id, format!("`{}` is a map: index it by field name", root.name())));
            }
        };
        // What may follow: anything in the body, one index of the regions list, nothing else.
        let allowed = match (root, field) {
            (Root::Event, "body") => usize::MAX,
            (Root::Incident, "regions") => 1,
            _ => 0,
        };
        if let Some((_, id)) = segs.get(1 + allowed.min(segs.len())) {
            let path = path_text(root, &segs[..=allowed.min(segs.len() - 1)]);
            return Err(self.problem(*id, format!("`{path}` has no fields")));
        }
        if let (Root::Incident, "regions", Some((Seg::Field(_), id))) = (root, field, segs.get(1)) {
            return Err(self.problem(*id, "`incident.regions` is a list: index it by number".to_owned()));
        }
        Ok(())
    }

    fn record(&mut self, root: Root, segs: Vec<Seg>) {
        let field = match segs.first() {
            Some(Seg::Field(f)) => Some(f.as_str()),
            _ => None,
        };
        self.analysis.fields.add(root, field);
        let text = path_text(root, &segs.iter().map(|s| (s.clone(), 0)).collect::<Vec<_>>());
        if !self.analysis.paths.iter().any(|p| p.text == text) {
            self.analysis.paths.push(RefPath { root, segs, text });
        }
    }

    fn problem(&self, id: u64, message: String) -> Problem {
        let offset = self.program.source_info().offset_for(id).map(|(start, _)| start as usize);
        Problem { offset, message }
    }
}

fn path_text(root: Root, segs: &[(Seg, u64)]) -> String {
    let mut text = root.name().to_owned();
    for (seg, _) in segs {
        match seg {
            Seg::Field(f) => {
                text.push('.');
                text.push_str(f);
            }
            Seg::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

/// The expression as evaluated: the same meaning, faster. The interpreter resolves every
/// `a.b.c` as a qualified name (each prefix looked up as a variable and a type, with allocations);
/// a field selected on a rule variable becomes an index, `event["body"].metric.kind`, so that the
/// variable is looked up once and each field is a map lookup. Comprehension variables that shadow
/// a rule variable are left alone.
pub(crate) fn fast_form(program: &cel::Program) -> IdedExpr {
    let mut expr = program.expression().clone();
    rewrite(&mut expr, &mut Vec::new());
    expr
}

fn rewrite(e: &mut IdedExpr, bound: &mut Vec<String>) {
    if let Expr::Select(select) = &e.expr
        && !select.test
        && let Expr::Ident(name) = &select.operand.expr
        && Root::of(name).is_some()
        && !bound.contains(name)
    {
        let key = IdedExpr {
            id: e.id,
            expr: Expr::Literal(LiteralValue::String(cel::common::types::CelString::from(select.field.clone()))),
        };
        let operand = (*select.operand).clone();
        e.expr = Expr::Call(CallExpr { func_name: "_[_]".to_owned(), target: None, args: vec![operand, key] });
        return;
    }
    match &mut e.expr {
        Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => {}
        Expr::Select(select) => rewrite(&mut select.operand, bound),
        Expr::Call(call) => {
            if let Some(target) = &mut call.target {
                rewrite(target, bound);
            }
            for arg in &mut call.args {
                rewrite(arg, bound);
            }
        }
        Expr::Comprehension(comp) => {
            rewrite(&mut comp.iter_range, bound);
            rewrite(&mut comp.accu_init, bound);
            let depth = bound.len();
            bound.push(comp.iter_var.clone());
            if let Some(var2) = &comp.iter_var2 {
                bound.push(var2.clone());
            }
            bound.push(comp.accu_var.clone());
            rewrite(&mut comp.loop_cond, bound);
            rewrite(&mut comp.loop_step, bound);
            rewrite(&mut comp.result, bound);
            bound.truncate(depth);
        }
        Expr::List(list) => {
            for element in &mut list.elements {
                rewrite(element, bound);
            }
        }
        Expr::Map(map) => {
            for entry in &mut map.entries {
                rewrite_entry(&mut entry.expr, bound);
            }
        }
        Expr::Struct(structure) => {
            for entry in &mut structure.entries {
                rewrite_entry(&mut entry.expr, bound);
            }
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

fn rewrite_entry(entry: &mut cel::common::ast::EntryExpr, bound: &mut Vec<String>) {
    match entry {
        cel::common::ast::EntryExpr::StructField(field) => rewrite(&mut field.value, bound),
        cel::common::ast::EntryExpr::MapEntry(entry) => {
            rewrite(&mut entry.key, bound);
            rewrite(&mut entry.value, bound);
        }
    }
}

/// The deepest nesting of brackets in a CEL source, outside string literals.
pub(crate) fn nesting(source: &str) -> usize {
    let mut depth = 0usize;
    let mut max = 0;
    let mut chars = source.chars().peekable();
    // Inside a string: its quote, and whether it is tripled.
    let mut quote: Option<(char, bool)> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some((q, triple)) => {
                if c == '\\' {
                    chars.next();
                } else if c == q {
                    // A tripled string ends at three quotes in a row.
                    if !triple || (chars.next_if_eq(&q).is_some() && chars.next_if_eq(&q).is_some()) {
                        quote = None;
                    }
                }
            }
            None => match c {
                '\'' | '"' => {
                    if chars.next_if_eq(&c).is_some() {
                        if chars.next_if_eq(&c).is_some() {
                            quote = Some((c, true));
                        }
                        // else: an empty string
                    } else {
                        quote = Some((c, false));
                    }
                }
                '(' | '[' | '{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    max
}

/// The depth of an expression tree.
pub(crate) fn depth(e: &IdedExpr) -> usize {
    let children = match &e.expr {
        Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => 0,
        Expr::Select(select) => depth(&select.operand),
        Expr::Call(call) => call.target.iter().map(|t| depth(t)).chain(call.args.iter().map(depth)).max().unwrap_or(0),
        Expr::Comprehension(comp) => {
            [&comp.iter_range, &comp.accu_init, &comp.loop_cond, &comp.loop_step, &comp.result]
                .into_iter()
                .map(depth)
                .max()
                .unwrap_or(0)
        }
        Expr::List(list) => list.elements.iter().map(depth).max().unwrap_or(0),
        Expr::Map(map) => map.entries.iter().map(|e| entry_depth(&e.expr)).max().unwrap_or(0),
        Expr::Struct(structure) => structure.entries.iter().map(|e| entry_depth(&e.expr)).max().unwrap_or(0),
        #[allow(unreachable_patterns)]
        _ => 0,
    };
    children + 1
}

fn entry_depth(entry: &cel::common::ast::EntryExpr) -> usize {
    match entry {
        cel::common::ast::EntryExpr::StructField(field) => depth(&field.value),
        cel::common::ast::EntryExpr::MapEntry(entry) => depth(&entry.key).max(depth(&entry.value)),
    }
}

/// The byte offset in `source` of a 1-based (line, column in characters) position a CEL parse
/// error gives.
pub(crate) fn offset_of(source: &str, line: isize, column: isize) -> Option<usize> {
    let line = usize::try_from(line).ok()?.checked_sub(1)?;
    let column = usize::try_from(column).ok()?.checked_sub(1)?;
    let mut start = 0;
    for (i, l) in source.split_inclusive('\n').enumerate() {
        if i == line {
            let within = l.char_indices().nth(column).map_or(l.len(), |(b, _)| b);
            return Some(start + within);
        }
        start += l.len();
    }
    (line == 0 && source.is_empty()).then_some(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn paths(source: &str) -> Vec<String> {
        let program = cel::Env::stdlib().compile(source).unwrap();
        analyse(&program).unwrap().paths.into_iter().map(|p| p.text).collect()
    }

    fn problem(source: &str) -> (Option<usize>, String) {
        let program = cel::Env::stdlib().compile(source).unwrap();
        let p = analyse(&program).unwrap_err();
        (p.offset, p.message)
    }

    #[test]
    fn paths_are_the_longest_member_chains() {
        assert_eq!(
            paths("has(event.body.magnitude) && event.body.magnitude >= 7.0 && incident.hazard == 'earthquake'"),
            ["event.body.magnitude", "incident.hazard"]
        );
        assert_eq!(paths("stats['deaths'] + stats.missing > 1"), ["stats.deaths", "stats.missing"]);
        assert_eq!(paths("incident.regions[0] == '33'"), ["incident.regions[0]"]);
        assert_eq!(paths("size(event) > 0 && division.level == 'county'"), ["event", "division.level"]);
        // A comprehension variable is no rule variable; a computed index reads the whole list.
        assert_eq!(
            paths("incident.regions.exists(r, r.startsWith(division.code))"),
            ["incident.regions", "division.code"]
        );
        assert_eq!(paths("incident.regions[incident.level] == ''"), ["incident.regions", "incident.level"]);
        assert_eq!(paths("type(stats.deaths) == int"), ["stats.deaths"]);
    }

    #[test]
    fn unknown_names_are_found_with_their_offset() {
        let (offset, message) = problem("stats.deaths >= 1 && stats.deth >= 2");
        assert_eq!(offset, Some(26));
        assert!(message.contains("no field `deth`"), "{message}");
        let (offset, message) = problem("1 < stat.deaths");
        assert_eq!(offset, Some(4));
        assert!(message.contains("unknown variable `stat`"), "{message}");
        let (_, message) = problem("stats.deaths.x == 1");
        assert!(message.contains("`stats.deaths` has no fields"), "{message}");
        let (_, message) = problem("incident.regions[0].x == 1");
        assert!(message.contains("`incident.regions[0]` has no fields"), "{message}");
        assert!(paths("event.body.a.b[3].c == 1").contains(&"event.body.a.b[3].c".to_owned()));
    }

    #[test]
    fn nesting_skips_strings() {
        assert_eq!(nesting("((a)) && [1, (2)]"), 2);
        assert_eq!(nesting(r#"'((((' == "[[[" && ''' ((( ''' == '' && (b)"#), 1);
        assert_eq!(nesting(r"'a\'((' == (x)"), 1);
        assert_eq!(nesting("))((("), 3);
    }

    #[test]
    fn parse_positions_become_offsets() {
        assert_eq!(offset_of("a &&\n  ) ", 2, 3), Some(7));
        assert_eq!(offset_of("\"é\" + )", 1, 7), Some(7));
        assert_eq!(offset_of("1 +", 1, 4), Some(3));
    }
}
