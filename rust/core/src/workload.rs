//! Workload classes: ordered CEL rules, first match wins (ARCHITECTURE.md §5), on the
//! `cel` crate's interpreter, for `dsaccess run` (operations) and the exporter (live
//! connections from cn=monitor).
//!
//! Rules are checked before any log is read (`Rules::compile`): a syntax error, a
//! variable the side does not have, a function CEL does not have, or a rule that does not
//! give a boolean is an error naming the rule and its line. A rule is evaluated once per
//! distinct tuple of the variables it uses among the rows no earlier rule took (most
//! operations repeat a few tuples: identities, verbs), and the answer is given to every
//! row with that tuple. A rule that fails on a row at run time (a regex CEL cannot
//! compile, `int(base)` of a base that is no number) does not hold for it, and the row is
//! counted against the rule.
//!
//! Values: a missing string is `""`, a missing number `0` (`err` is `-1` when the
//! operation has no RESULT), a missing flag `false`; `bind_dn` of a connection opened
//! before the log window is `"(unknown)"`; `tls` is whether the connection had TLS (its
//! column holds the version).

use std::collections::HashMap;
use std::sync::Arc;

use ahash::RandomState;
use arrow_array::{Array, ArrayRef, RecordBatch};
use cel::{Context, ExecutionError, Program, Value};

use crate::arrow_in::{bools, floats, ints, strs, Bools, ColumnError, Floats, Ints, Strs};

/// A variable's CEL type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Str,
    Int,
    Double,
    Bool,
    /// whether the column has a value (`tls`: the column holds the TLS version)
    Present,
}

/// Every variable: its name (also its column's), type, and which side has it.
const VARIABLES: [(&str, Kind, Side); 18] = [
    ("server", Kind::Str, Side::Both),
    ("bind_dn", Kind::Str, Side::Both),
    ("client_ip", Kind::Str, Side::Both),
    ("verb", Kind::Str, Side::Batch),
    ("base", Kind::Str, Side::Batch),
    ("scope", Kind::Int, Side::Batch),
    ("fingerprint", Kind::Str, Side::Batch),
    ("attrs", Kind::Str, Side::Batch),
    ("err", Kind::Int, Side::Batch),
    ("etime", Kind::Double, Side::Batch),
    ("nentries", Kind::Int, Side::Batch),
    ("unindexed", Kind::Bool, Side::Batch),
    ("paged", Kind::Bool, Side::Batch),
    ("tls", Kind::Present, Side::Both),
    ("conn_duration", Kind::Double, Side::Both),
    ("ops_initiated", Kind::Int, Side::Live),
    ("ops_completed", Kind::Int, Side::Live),
    ("ops_pending", Kind::Int, Side::Live),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Batch,
    Live,
    Both,
}

/// The class of rows no rule took.
pub const UNCLASSIFIED: &str = "unclassified";

fn allowed(side: Side, live: bool) -> bool {
    side == Side::Both || (side == Side::Live) == live
}

/// The value of a variable on a row without one.
fn missing(name: &str, kind: Kind) -> Key<'static> {
    match (name, kind) {
        ("bind_dn", _) => Key::Str("(unknown)"),
        ("err", _) => Key::Int(-1),
        (_, Kind::Str) => Key::Str(""),
        (_, Kind::Int) => Key::Int(0),
        (_, Kind::Double) => Key::Double(0f64.to_bits()),
        (_, Kind::Bool | Kind::Present) => Key::Bool(false),
    }
}

/// A rule that is not fit to run: the message names the rule, its line and the fix.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleError(pub String);

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

/// One compiled rule.
pub struct Rule {
    pub name: String,
    program: Program,
    /// indices into `VARIABLES`, in name order
    variables: Vec<usize>,
}

/// Rows classified: each row's class, the rows each rule failed on (rules that failed
/// on none are left out), and how often each rule that ran was evaluated.
pub struct Classified {
    pub classes: ArrayRef,
    pub failures: Vec<(String, i64)>,
    pub evaluations: Vec<(String, i64)>,
}

/// Checked, compiled rules, in order.
pub struct Rules(pub Vec<Rule>);

/// A rule as configured: name, CEL text, line in its file.
pub type RuleSource<'a> = (&'a str, &'a str, Option<i64>);

impl Rules {
    /// Compile and check rules; `origin` names where they come from (a file, "built-in
    /// workloads"), `live` whether they classify live connections instead of operations.
    pub fn compile(rules: &[RuleSource<'_>], origin: &str, live: bool) -> Result<Rules, RuleError> {
        rules.iter().map(|r| compile(r, origin, live)).collect::<Result<_, _>>().map(Rules)
    }

    /// The class of each row (`UNCLASSIFIED`: no rule held), and per rule the rows it
    /// failed on and how often it ran.
    pub fn classify(&self, rows: &RecordBatch) -> Result<Classified, ColumnError> {
        let n = rows.num_rows();
        let mut variables: Vec<usize> = self.0.iter().flat_map(|r| r.variables.iter().copied())
            .collect();
        variables.sort_unstable();
        variables.dedup();
        let coded = variables.iter()
            .map(|&v| Ok(Coded::of(&Column::read(rows, v)?, VARIABLES[v].1, n)))
            .collect::<Result<Vec<_>, ColumnError>>()?;
        // rows with the same values of every variable any rule uses are one group: the
        // rules run per group, not per row
        let width = variables.len();
        let mut groups: HashMap<Box<[u64]>, u32, RandomState> = HashMap::default();
        let mut tuples: Vec<u64> = Vec::new(); // each group's values, `width` apiece
        let mut sizes: Vec<i64> = Vec::new();
        let mut group_of: Vec<u32> = Vec::with_capacity(n);
        let mut key: Vec<u64> = Vec::with_capacity(width);
        let mut last: Option<u32> = None;
        for row in 0..n {
            key.clear();
            key.extend(coded.iter().map(|c| c.codes[row]));
            // rows come by connection: a run of them repeats the values of the row before
            let group = match last {
                Some(g) if tuples[g as usize * width..(g as usize + 1) * width] == key[..] => g,
                _ => match groups.get(key.as_slice()) {
                    Some(&g) => g,
                    None => {
                        let g = sizes.len() as u32;
                        groups.insert(key.clone().into_boxed_slice(), g);
                        tuples.extend_from_slice(&key);
                        sizes.push(0);
                        g
                    }
                },
            };
            sizes[group as usize] += 1;
            group_of.push(group);
            last = Some(group);
        }
        // each rule's answers by the values of its own variables (positions in `variables`)
        let picks: Vec<Vec<usize>> = self.0.iter()
            .map(|r| r.variables.iter().map(|v| variables.binary_search(v).expect("used")).collect())
            .collect();
        let mut answers: Vec<HashMap<Vec<u64>, Option<bool>, RandomState>> =
            self.0.iter().map(|_| HashMap::default()).collect();
        let mut failed = vec![0i64; self.0.len()];
        let mut ran = vec![false; self.0.len()];
        let root = Context::default();
        let class_of: Vec<Option<usize>> = (0..sizes.len()).map(|g| {
            let values = &tuples[g * width..(g + 1) * width];
            for (i, rule) in self.0.iter().enumerate() {
                ran[i] = true;
                let own: Vec<u64> = picks[i].iter().map(|&p| values[p]).collect();
                let answer = *answers[i].entry(own).or_insert_with(|| {
                    rule.evaluate(&root, picks[i].iter().map(|&p| coded[p].value(values[p])))
                });
                match answer {
                    Some(true) => return Some(i),
                    None => failed[i] += sizes[g],
                    Some(false) => {}
                }
            }
            None
        }).collect();
        let mut names = arrow_array::builder::StringBuilder::with_capacity(n, n * 8);
        for &g in &group_of {
            names.append_value(class_of[g as usize].map_or(UNCLASSIFIED, |i| self.0[i].name.as_str()));
        }
        let named = |v: Vec<(usize, i64)>| -> Vec<(String, i64)> {
            v.into_iter().map(|(i, x)| (self.0[i].name.clone(), x)).collect()
        };
        Ok(Classified {
            classes: Arc::new(names.finish()),
            failures: named(failed.iter().copied().enumerate().filter(|(_, f)| *f > 0).collect()),
            evaluations: named(answers.iter().enumerate().filter(|(i, _)| ran[*i])
                .map(|(i, a)| (i, a.len() as i64)).collect()),
        })
    }
}

impl Rule {
    /// Whether the rule holds for these values (one per variable, in `variables` order);
    /// None when it fails on them.
    fn evaluate(&self, root: &Context<'_, '_>, values: impl Iterator<Item = Value>) -> Option<bool> {
        let mut scope = root.new_inner_scope();
        for (&v, value) in self.variables.iter().zip(values) {
            scope.add_variable_from_value(VARIABLES[v].0, value);
        }
        match self.program.execute(&scope) {
            Ok(Value::Bool(b)) => Some(b),
            Ok(_) => Some(false),
            Err(_) => None,
        }
    }
}

fn compile((name, source, line): &RuleSource<'_>, origin: &str, live: bool) -> Result<Rule, RuleError> {
    let at = line.map_or(String::new(), |l| format!(" (line {l})"));
    let place = format!("{origin}: rule {}{at}", py_repr(name));
    let program = Program::compile(source).map_err(|e| {
        RuleError(format!("{place}: not a valid CEL expression: {}\n{e}", py_repr(source)))
    })?;
    let references = program.references();
    let mut used: Vec<String> = references.variables().iter().map(|v| v.to_string()).collect();
    drop(references);
    used.sort_unstable();
    used.dedup();
    let unknown: Vec<&str> = used.iter().map(String::as_str)
        .filter(|u| !VARIABLES.iter().any(|(n, _, s)| n == u && allowed(*s, live)))
        .collect();
    if !unknown.is_empty() {
        let other: Vec<&str> = unknown.iter().copied()
            .filter(|u| VARIABLES.iter().any(|(n, _, _)| n == u)).collect();
        let side = if live { "live connections (cn=monitor)" } else { "operations in the logs" };
        let known: Vec<&str> = VARIABLES.iter().filter(|(_, _, s)| allowed(*s, live))
            .map(|(n, _, _)| *n).collect();
        let what = if other.is_empty() {
            format!("unknown variable {}", unknown.join(", "))
        } else {
            format!("{} is not known for {side}", other.join(", "))
        };
        return Err(RuleError(format!("{place}: {what}; the variables are {}", known.join(", "))));
    }
    let variables: Vec<usize> = used.iter()
        .map(|u| VARIABLES.iter().position(|(n, _, _)| n == u).expect("a known variable"))
        .collect();
    let rule = Rule { name: name.to_string(), program, variables };
    // run on the values of a row without any: a function CEL does not have shows, and the
    // type of the answer (a type error on neutral values is no proof of a bad rule)
    let root = Context::default();
    let mut scope = root.new_inner_scope();
    for &v in &rule.variables {
        scope.add_variable_from_value(VARIABLES[v].0, missing(VARIABLES[v].0, VARIABLES[v].1).value());
    }
    match rule.program.execute(&scope) {
        Err(ExecutionError::UndeclaredReference(function)) => Err(RuleError(format!(
            "{place}: unknown function '{function}': {} (CEL has startsWith, endsWith, \
             contains, matches, size, ...)", py_repr(source)))),
        Ok(value) if !matches!(value, Value::Bool(_)) => Err(RuleError(format!(
            "{place}: gives {}, not a boolean: {} (compare it, e.g. `... == \"x\"`)",
            type_name(&value), py_repr(source)))),
        _ => Ok(rule),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::UInt(_) => "uint",
        Value::Float(_) => "double",
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Bytes(_) => "bytes",
        Value::Null => "null",
        _ => "another type",
    }
}

/// A string as Python's `repr` writes it (the configuration's messages quote rules so).
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A row's value of a variable (a double by its bits, so it can be a key).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key<'a> {
    Str(&'a str),
    Int(i64),
    Double(u64),
    Bool(bool),
}

impl Key<'_> {
    fn value(&self) -> Value {
        match *self {
            Key::Str(s) => Value::String(Arc::new(s.to_string())),
            Key::Int(i) => Value::Int(i),
            Key::Double(bits) => Value::Float(f64::from_bits(bits)),
            Key::Bool(b) => Value::Bool(b),
        }
    }
}

/// A variable's values as codes, one per row (a string by its number among the column's
/// distinct strings, the other kinds as their bits), and its strings.
struct Coded<'a> {
    kind: Kind,
    codes: Vec<u64>,
    strings: Vec<&'a str>,
}

impl<'a> Coded<'a> {
    fn of(column: &Column<'a>, kind: Kind, rows: usize) -> Self {
        let mut coded = Coded { kind, codes: Vec::with_capacity(rows), strings: Vec::new() };
        let mut ids: HashMap<&'a str, u64, RandomState> = HashMap::default();
        let mut last: Option<(&'a str, u64)> = None;
        for row in 0..rows {
            let code = match column.key(row) {
                Key::Str(s) => match last {
                    Some((l, id)) if l == s => id,
                    _ => {
                        let strings = &mut coded.strings;
                        let id = *ids.entry(s).or_insert_with(|| {
                            strings.push(s);
                            strings.len() as u64 - 1
                        });
                        last = Some((s, id));
                        id
                    }
                },
                Key::Int(i) => i as u64,
                Key::Double(bits) => bits,
                Key::Bool(b) => u64::from(b),
            };
            coded.codes.push(code);
        }
        coded
    }

    fn value(&self, code: u64) -> Value {
        match self.kind {
            Kind::Str => Value::String(Arc::new(self.strings[code as usize].to_string())),
            Kind::Int => Value::Int(code as i64),
            Kind::Double => Value::Float(f64::from_bits(code)),
            Kind::Bool | Kind::Present => Value::Bool(code != 0),
        }
    }
}

/// A variable's column, read by its kind, and its value on rows without one (a column the
/// rows lack: every row).
struct Column<'a> {
    values: Values<'a>,
    missing: Key<'static>,
}

enum Values<'a> {
    Str(Strs<'a>),
    Int(Ints<'a>),
    Double(Floats<'a>),
    Bool(Bools<'a>),
    Present(&'a dyn Array),
    Absent,
}

impl<'a> Column<'a> {
    fn read(rows: &'a RecordBatch, variable: usize) -> Result<Self, ColumnError> {
        let (name, kind, _) = VARIABLES[variable];
        let table = "workload rows";
        let values = match (rows.column_by_name(name), kind) {
            (None, _) => Values::Absent,
            (Some(_), Kind::Str) => Values::Str(strs(rows, table, name)?),
            (Some(_), Kind::Int) => Values::Int(ints(rows, table, name)?),
            (Some(_), Kind::Double) => Values::Double(floats(rows, table, name)?),
            (Some(_), Kind::Bool) => Values::Bool(bools(rows, table, name)?),
            (Some(c), Kind::Present) => Values::Present(c.as_ref()),
        };
        Ok(Column { values, missing: missing(name, kind) })
    }

    fn key(&self, row: usize) -> Key<'a> {
        let found = match &self.values {
            Values::Str(c) => c.get(row).map(Key::Str),
            Values::Int(c) => c.get(row).map(Key::Int),
            Values::Double(c) => c.get(row).map(f64::to_bits).map(Key::Double),
            Values::Bool(c) => c.get(row).map(Key::Bool),
            Values::Present(c) => Some(Key::Bool(c.is_valid(row))),
            Values::Absent => None,
        };
        found.unwrap_or(self.missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(rule: &str) -> String {
        Rules::compile(&[("r", rule, Some(3))], "w.yaml", false).err().unwrap().0
    }

    #[test]
    fn bad_rules_are_named_with_their_line() {
        assert!(error("bind_dn.startsWith(\"x\"").starts_with(
            "w.yaml: rule 'r' (line 3): not a valid CEL expression: 'bind_dn.startsWith(\"x\"'"));
        assert!(error("binddn == \"x\"").starts_with("w.yaml: rule 'r' (line 3): unknown variable binddn;"));
        assert!(error("\"yes\"").contains("gives string, not a boolean"));
        assert!(error("etime + 1.0").contains("gives double, not a boolean"));
        assert!(error("bind_dn.lowerAscii() == \"x\"").contains("unknown function 'lowerAscii'"));
        let live = Rules::compile(&[("r", "verb == \"SRCH\"", None)], "w", true).err().unwrap().0;
        assert!(live.contains("verb is not known for live connections (cn=monitor)"), "{live}");
    }

    #[test]
    fn python_repr_of_rules() {
        assert_eq!(py_repr("a \"b\""), "'a \"b\"'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("it's \"x\"\\"), "'it\\'s \"x\"\\\\'");
    }
}
