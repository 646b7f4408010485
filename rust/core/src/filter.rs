//! Search filters: their fingerprints, the shape of an RFC 4515 filter with its values
//! taken out (ARCHITECTURE.md §4; the rules and the rejected ones are listed in
//! `pipeline/fingerprint.py`), and the indexes a filter would want (`index_candidates`,
//! for the index advice of `advice.rs`). The project's one filter parser.
//!
//! A recursive-descent parser over the string, then the shape:
//! values become `...` except `objectClass` equality values; presence stays `=*`;
//! substrings keep their stars; extensible matches keep attribute, `:dn` and rule;
//! with `sort_operands` the children of `&`/`|` are ordered and attribute names
//! folded; runs of equal siblings collapse into one followed by `+`.
//! A filter that does not parse is `<unparsed:REASON>`, REASON a fixed phrase
//! that never quotes the filter (values identify people).

pub const VALUE: &str = "...";
/// 389 DS cuts logged filters at 512 characters and appends "...".
pub const SERVER_CUT: usize = 512;
/// Longer text is refused before parsing (a cheap guard).
pub const MAX_FILTER_LENGTH: usize = 16_384;
/// Deeper nesting is refused (a recursion guard).
pub const MAX_DEPTH: usize = 200;

enum Node<'a> {
    And(Vec<Node<'a>>),
    Or(Vec<Node<'a>>),
    Not(Box<Node<'a>>),
    Compare { attr: &'a str, op: &'static str, value: &'a str },
    Present(&'a str),
    Substring { attr: &'a str, pieces: Vec<bool> }, // whether each piece is non-empty
    Extensible { attr: &'a str, dn: bool, rule: &'a str },
}

type Parsed<'a, T> = Result<(T, usize), &'static str>;

/// Python's `str.isspace` (what the filter's `strip` removes): Unicode white space
/// and the four ASCII separators \x1c-\x1f.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b';' | b'_')
}

fn rule_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

struct Parser<'a> {
    t: &'a str,
}

impl<'a> Parser<'a> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.t.as_bytes().get(at).copied()
    }

    fn filter(&self, pos: usize, depth: usize) -> Parsed<'a, Node<'a>> {
        if depth > MAX_DEPTH {
            return Err("filter nested deeper than 200");
        }
        if self.byte(pos) != Some(b'(') {
            return Err("expected '('");
        }
        let mut pos = pos + 1;
        let node = match self.byte(pos) {
            None => return Err("filter ends after '('"),
            Some(op @ (b'&' | b'|')) => {
                let mut children = Vec::new();
                pos += 1;
                while self.byte(pos) == Some(b'(') {
                    let (child, next) = self.filter(pos, depth + 1)?;
                    children.push(child);
                    pos = next;
                }
                if op == b'|' && children.is_empty() {
                    return Err("'|' needs at least one filter");
                }
                if op == b'&' { Node::And(children) } else { Node::Or(children) }
            }
            Some(b'!') => {
                let (child, next) = self.filter(pos + 1, depth + 1)?;
                pos = next;
                Node::Not(Box::new(child))
            }
            Some(_) => {
                let (node, next) = self.item(pos)?;
                pos = next;
                node
            }
        };
        if self.byte(pos) != Some(b')') {
            return Err("expected ')'");
        }
        Ok((node, pos + 1))
    }

    fn run(&self, from: usize, ok: fn(u8) -> bool) -> usize {
        let b = self.t.as_bytes();
        from + b[from.min(b.len())..].iter().take_while(|c| ok(**c)).count()
    }

    /// `attr? (:dn)? (:rule)? :=` as the regex tries it: attr is the longest run, then
    /// the four choices of `:dn` and `:rule` in the regex's order.
    fn extensible(&self, pos: usize) -> Option<(&'a str, bool, &'a str, usize)> {
        let t = self.t;
        let attr_end = if self.byte(pos).is_some_and(|b| b.is_ascii_alphanumeric()) {
            self.run(pos + 1, attr_char)
        } else {
            pos
        };
        for dn in [true, false] {
            let mut at = attr_end;
            if dn {
                if !t[at..].starts_with(":dn") {
                    continue;
                }
                at += 3;
            }
            for rule in [true, false] {
                let mut end = at;
                let mut rule_text = "";
                if rule {
                    if self.byte(end) != Some(b':') {
                        continue;
                    }
                    let stop = self.run(end + 1, rule_char);
                    if stop == end + 1 {
                        continue;
                    }
                    rule_text = &t[end + 1..stop];
                    end = stop;
                }
                if t[end..].starts_with(":=") {
                    return Some((&t[pos..attr_end], dn, rule_text, end + 2));
                }
            }
        }
        None
    }

    fn item(&self, pos: usize) -> Parsed<'a, Node<'a>> {
        let t = self.t;
        if let Some((attr, dn, rule, end)) = self.extensible(pos) {
            if !attr.is_empty() || !rule.is_empty() {
                let (_, end) = self.value(end)?;
                return Ok((Node::Extensible { attr, dn, rule }, end));
            }
        }
        if !self.byte(pos).is_some_and(|b| b.is_ascii_alphanumeric()) {
            return Err("expected an attribute description");
        }
        let attr_end = self.run(pos + 1, attr_char);
        let attr = &t[pos..attr_end];
        for op in ["~=", ">=", "<="] {
            if t[attr_end..].starts_with(op) {
                let (value, end) = self.value(attr_end + 2)?;
                return Ok((Node::Compare { attr, op, value }, end));
            }
        }
        if self.byte(attr_end) != Some(b'=') {
            return Err("expected '=', '~=', '>=' or '<='");
        }
        let (value, end) = self.value(attr_end + 1)?;
        Ok((match value {
            "*" => Node::Present(attr),
            _ if value.contains('*') => {
                Node::Substring { attr, pieces: value.split('*').map(|p| !p.is_empty()).collect() }
            }
            _ => Node::Compare { attr, op: "=", value },
        }, end))
    }

    /// An assertion value: up to the next parenthesis; `\XX` escapes, and older clients'
    /// `\c`, which servers accept (and which may escape a parenthesis).
    fn value(&self, pos: usize) -> Parsed<'a, &'a str> {
        let t = self.t;
        let b = t.as_bytes();
        let mut end = pos;
        while end < b.len() && b[end] != b'(' && b[end] != b')' {
            if b[end] == b'\\' {
                let Some(next) = t[end + 1..].chars().next() else {
                    return Err("escape at the end of the filter");
                };
                let hex = b.get(end + 1..end + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                end += if hex { 3 } else { 1 + next.len_utf8() };
                continue;
            }
            end += t[end..].chars().next().map_or(1, char::len_utf8);
        }
        let end = end.min(b.len());
        Ok((&t[pos..end], end))
    }
}

/// `read` of the tree of one logged filter, or why it does not parse.
fn parsed<R>(text: &str, read: impl FnOnce(&Node<'_>) -> R) -> Result<R, &'static str> {
    if text.len() > MAX_FILTER_LENGTH && text.chars().count() > MAX_FILTER_LENGTH {
        return Err("filter longer than 16384 characters");
    }
    let t = text.trim_matches(py_space);
    // 389 DS logs some internal searches without the outer parentheses
    let wrapped = (!t.is_empty() && !t.starts_with('(')).then(|| format!("({t})"));
    let t = wrapped.as_deref().unwrap_or(t);
    let (node, pos) = Parser { t }.filter(0, 0)?;
    if pos != t.len() {
        return Err("unexpected text after the filter");
    }
    Ok(read(&node))
}

/// The fingerprint of one logged filter (`None`: `<unparsed:missing>`).
pub fn fingerprint(text: Option<&str>, sort_operands: bool) -> String {
    let Some(text) = text else {
        return "<unparsed:missing>".to_string();
    };
    match parsed(text, |node| shape(node, sort_operands)) {
        Ok(shaped) => shaped,
        // cut by the server, not the client's fault
        Err(_) if text.ends_with("...") && text.chars().count() >= SERVER_CUT => {
            "<unparsed:truncated>".to_string()
        }
        Err(reason) => format!("<unparsed:{reason}>"),
    }
}

/// A search's fingerprint: its scope (`base`, `one`, `sub`; another number as
/// `scope=N`; none when not logged), then its filter's: `base (objectClass=*)` (an entry
/// read) and `sub (objectClass=*)` (a scan) are different workloads.
pub fn search_fingerprint(scope: Option<i64>, filter: Option<&str>, sort_operands: bool)
                          -> String {
    let print = fingerprint(filter, sort_operands);
    match scope {
        Some(0) => format!("base {print}"),
        Some(1) => format!("one {print}"),
        Some(2) => format!("sub {print}"),
        Some(n) => format!("scope={n} {print}"),
        None => print,
    }
}

/// The form fingerprints are compared in: attribute names (and `objectClass` values,
/// matching rules) are case-insensitive in LDAP, and every value is `...`, so two
/// spellings of one fingerprint differ in case only. Runs group by the form and
/// show each form's most frequent spelling; the fingerprint id is the form's.
pub fn fingerprint_form(print: &str) -> String {
    print.to_lowercase() // as polars' `str.to_lowercase`, which `merge` uses
}

/// The attributes a filter would want indexed, and the index type each needs (`eq`,
/// `approx`, `pres`, `sub`, `matching rule R`), by attribute (its spelling in the filter,
/// ordered case-insensitively), each type once, sorted; None: the filter does not parse.
/// A negation wants none (the server scans what the rest selects), nor `objectClass`
/// (always indexed).
pub fn index_candidates(text: &str) -> Option<Vec<(String, Vec<String>)>> {
    fn walk(node: &Node<'_>, found: &mut Vec<(String, Vec<String>)>) {
        let (attr, kind) = match node {
            Node::Not(_) => return,
            Node::And(children) | Node::Or(children) => {
                children.iter().for_each(|c| walk(c, found));
                return;
            }
            Node::Present(attr) => (*attr, "pres".to_string()),
            // no rule: the server has no index to read for it (extensible_candidates in
            // back-ldbm/filterindex.c:448-610 at 70dcccaf takes the rule's keys)
            Node::Extensible { rule: "", .. } => return,
            Node::Substring { attr, .. } => (*attr, "sub".to_string()),
            Node::Extensible { attr, rule, .. } => (*attr, format!("matching rule {rule}")),
            Node::Compare { attr, op, .. } => {
                (*attr, if *op == "~=" { "approx" } else { "eq" }.to_string())
            }
        };
        if attr.is_empty() || attr.eq_ignore_ascii_case("objectclass") {
            return;
        }
        match found.iter_mut().find(|(a, _)| a == attr) {
            Some((_, kinds)) if kinds.contains(&kind) => {}
            Some((_, kinds)) => kinds.push(kind),
            None => found.push((attr.to_string(), vec![kind])),
        }
    }
    let mut found = parsed(text, |node| {
        let mut found = Vec::new();
        walk(node, &mut found);
        found
    }).ok()?;
    for (_, kinds) in &mut found {
        kinds.sort();
    }
    found.sort_by_key(|(attr, _)| attr.to_lowercase());
    Some(found)
}

fn push_attr(out: &mut String, name: &str, fold: bool) {
    if fold {
        out.extend(name.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        out.push_str(name);
    }
}

fn shape(node: &Node<'_>, sort: bool) -> String {
    let mut out = String::new();
    shape_into(node, sort, &mut out);
    out
}

/// The shape of `node` appended to `out`: one buffer for the whole filter (a `String` per
/// node and `format!` took most of a distinct filter's instructions).
fn shape_into(node: &Node<'_>, sort: bool, out: &mut String) {
    match node {
        Node::And(children) | Node::Or(children) => {
            out.push_str(if matches!(node, Node::And(_)) { "(&" } else { "(|" });
            let mut last = 0..0;
            if sort {
                let mut parts: Vec<String> = children.iter().map(|c| shape(c, sort)).collect();
                parts.sort();
                for part in &parts {
                    sibling(out, &mut last, |out| out.push_str(part));
                }
            } else {
                for child in children {
                    sibling(out, &mut last, |out| shape_into(child, sort, out));
                }
            }
            out.push(')');
        }
        Node::Not(child) => {
            out.push_str("(!");
            shape_into(child, sort, out);
            out.push(')');
        }
        Node::Compare { attr, op, value } => {
            let keep = *op == "=" && attr.eq_ignore_ascii_case("objectclass");
            out.push('(');
            push_attr(out, attr, sort);
            out.push_str(op);
            out.push_str(if keep { value } else { VALUE });
            out.push(')');
        }
        Node::Present(attr) => {
            out.push('(');
            push_attr(out, attr, sort);
            out.push_str("=*)");
        }
        Node::Substring { attr, pieces } => {
            out.push('(');
            push_attr(out, attr, sort);
            out.push('=');
            for (i, filled) in pieces.iter().enumerate() {
                if i > 0 {
                    out.push('*');
                }
                if *filled {
                    out.push_str(VALUE);
                }
            }
            out.push(')');
        }
        Node::Extensible { attr, dn, rule } => {
            out.push('(');
            push_attr(out, attr, sort);
            if *dn {
                out.push_str(":dn");
            }
            if !rule.is_empty() {
                out.push(':');
                out.push_str(rule);
            }
            out.push_str(":=");
            out.push_str(VALUE);
            out.push(')');
        }
    }
}

/// Write a child of `&`/`|` after its siblings (`last`: where the one before it is), or
/// take it back if it repeats that one: a run of equal siblings is written once, then one
/// `+` (a list of any length is one class). A shape ends with `)`, so a `+` at the end is
/// this run's.
fn sibling(out: &mut String, last: &mut std::ops::Range<usize>, write: impl FnOnce(&mut String)) {
    let start = out.len();
    write(out);
    if out.as_bytes()[start..] == out.as_bytes()[last.clone()] {
        out.truncate(start);
        if !out.ends_with('+') {
            out.push('+');
        }
    } else {
        *last = start..out.len();
    }
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, fingerprint_form, index_candidates, search_fingerprint};

    /// The candidates of every form of filter, as `attr: kind, kind; attr: kind`.
    #[test]
    fn index_candidates_of_every_form() {
        let shown = |text: &str| index_candidates(text).map(|found| found.iter()
            .map(|(attr, kinds)| format!("{attr}: {}", kinds.join(", ")))
            .collect::<Vec<_>>().join("; "));
        for (text, want) in [
            ("(&(objectClass=person)(|(cn=jo*)(!(uid=x))))", "cn: sub"),
            (r"(cn=a\28b\29)", "cn: eq"),
            ("(sn:dn:caseExactMatch:=Clark)", "sn: matching rule caseExactMatch"),
            ("(ou:dn:=people)", ""),
            ("(cn=*a*b*)", "cn: sub"),
            ("(&)", ""),
            ("(cn;lang-fr~=x)", "cn;lang-fr: approx"),
            ("(|(CN=a)(cn>=b)(cn=*)(mail<=c))", "CN: eq; cn: eq, pres; mail: eq"), // as spelled
            // a negation reads no index
            ("(!(uid=a))", ""),
            ("(&(cn=a)(!(uid=b)))", "cn: eq"),
            ("(&(objectClass=person)(!(title=*)))", ""),
        ] {
            assert_eq!(shown(text).as_deref(), Some(want), "{text}");
        }
        assert_eq!(shown("(&(uid=a)(cn=b)"), None); // does not parse
    }

    #[test]
    fn a_search_is_its_scope_and_its_filter_and_compares_without_case() {
        let of = |scope| search_fingerprint(scope, Some("(objectClass=*)"), false);
        assert_eq!([of(Some(0)), of(Some(1)), of(Some(2)), of(Some(3)), of(None)],
                   ["base (objectClass=*)", "one (objectClass=*)", "sub (objectClass=*)",
                    "scope=3 (objectClass=*)", "(objectClass=*)"].map(String::from));
        let spelled = search_fingerprint(Some(2), Some("(&(objectclass=Person)(UID=x))"), false);
        assert_eq!(spelled, "sub (&(objectclass=Person)(UID=...))"); // shown as written
        assert_eq!(fingerprint_form(&spelled),
                   fingerprint_form("sub (&(objectClass=person)(uid=...))"));
    }

    #[test]
    fn rules() {
        for (text, want) in [
            ("(&(objectClass=inetOrgPerson)(|(cn=ckerr)(uid=ckerr)(mail=ckerr)))",
             "(&(objectClass=inetOrgPerson)(|(cn=...)(uid=...)(mail=...)))"),
            ("(|(uid=a)(uid=b)(uid=c))", "(|(uid=...)+)"),
            ("(cn=jo*)", "(cn=...*)"),
            ("(description=*foo*)", "(description=*...*)"),
            ("(sn:caseExactMatch:=x)", "(sn:caseExactMatch:=...)"),
            ("(cn:dn:=x)", "(cn:dn:=...)"),
            ("objectclass=vlvsearch", "(objectclass=vlvsearch)"),
            ("(uid=!\\)", "<unparsed:expected ')'>"),
            ("(cn=john)(uid=jsmith)", "<unparsed:unexpected text after the filter>"),
        ] {
            assert_eq!(fingerprint(Some(text), false), want, "{text}");
        }
        assert_eq!(fingerprint(None, false), "<unparsed:missing>");
        assert_eq!(fingerprint(Some("(|(B=1)(a=2))"), true), "(|(a=...)(b=...))");
    }

    #[test]
    fn runs_of_equal_siblings() {
        // each run once with one `+`, runs apart stay apart, nested runs too
        for (text, sort, want) in [
            ("(|(a=1)(a=2)(b=1)(b=2)(b=3)(a=3))", false, "(|(a=...)+(b=...)+(a=...))"),
            ("(|(a=1)(a=2)(b=1)(b=2)(b=3)(a=3))", true, "(|(a=...)+(b=...)+)"),
            ("(&(|(a=1)(a=2))(|(a=3)(a=4))(!(c=*)))", false, "(&(|(a=...)+)+(!(c=*)))"),
            ("(|(a=x*)(a=*x)(a=x*))", false, "(|(a=...*)(a=*...)(a=...*))"),
        ] {
            assert_eq!(fingerprint(Some(text), sort), want, "{text} sorted: {sort}");
        }
    }
}
