//! The named fields a line's body can carry, and the general pattern of each kind.
//!
//! The general patterns are the reference: every layout of every version in
//! 389ds-access-log.md that the format allows. They are regular expressions of the
//! `regex` crate (lazy values, Unicode classes). The strict paths in `strict.rs` are
//! hand-written for the usual layouts of the busiest kinds and must give the same
//! fields wherever they accept a line; `tests` and the fuzz target check that.

use std::sync::OnceLock;

use regex::Regex;

/// A field of a body, as the patterns name their groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum F {
    Fd, ClientIp, ServerIp, Ssl, CloseCode, CloseReason, TlsVersion, Dn, Method, Version,
    Mech, Base, Scope, Filter, Attrs, AttrsAll, Options, Authzid, Newrdn, Newsuperior, Attr,
    Oid, Name, Targetop, Msgid, Err, Tag, Nentries, Wqtime, Wtime, Optime, Writetime, Etime,
    Notes, Details, Csn, PrIdx, PrCookie, Sid, Wbusy, Wmax, Wqdepth, Text,
}

pub const FIELD_COUNT: usize = F::Text as usize + 1;

/// Group names, in the order of `F`.
pub const NAMES: [&str; FIELD_COUNT] = [
    "fd", "client_ip", "server_ip", "ssl", "close_code", "close_reason", "tls_version", "dn",
    "method", "version", "mech", "base", "scope", "filter", "attrs", "attrs_all", "options",
    "authzid", "newrdn", "newsuperior", "attr", "oid", "name", "targetop", "msgid", "err", "tag",
    "nentries", "wqtime", "wtime", "optime", "writetime", "etime", "notes", "details", "csn",
    "pr_idx", "pr_cookie", "sid", "wbusy", "wmax", "wqdepth", "text",
];

/// The raw text of each field of one body (None: absent).
pub type Fields<'a> = [Option<&'a str>; FIELD_COUNT];

/// Event kinds (389ds-access-log.md §15.4), in `schema.KINDS` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Kind {
    Connect, Close, Tls, Autobind, Haproxy, Bind, Srch, Mod, Add, Del, Modrdn, Cmp, Ext,
    Abandon, Unbind, ExtInfo, Unprocessed, Result, Entry, Referral, Vlv, Sort, Stat,
}

pub const KIND_COUNT: usize = Kind::Stat as usize + 1;

pub const KIND_NAMES: [&str; KIND_COUNT] = [
    "CONNECT", "CLOSE", "TLS", "AUTOBIND", "HAPROXY", "BIND", "SRCH", "MOD", "ADD", "DEL",
    "MODRDN", "CMP", "EXT", "ABANDON", "UNBIND", "EXT_INFO", "UNPROCESSED", "RESULT", "ENTRY",
    "REFERRAL", "VLV", "SORT", "STAT",
];

impl Kind {
    pub fn name(self) -> &'static str {
        KIND_NAMES[self as usize]
    }
}

// Lines keep their newline; `\s*$` also tolerates \r\n.
const END: &str = r"\s*$";
const AUTHZ: &str = r#"(?: authzid="(?P<authzid>.*?)")?"#;
const MSG: &str = r"(?:, (?P<text>.*?))?";

fn kind_pattern(kind: Kind) -> String {
    let with_tail = |head: &str| format!("{head}{AUTHZ}{MSG}{END}");
    match kind {
        Kind::Connect => format!(
            r"^fd=(?P<fd>\d+) slot=\d+ (?P<ssl>SSL )?connection from (?P<client_ip>\S+) to (?P<server_ip>.*?){END}"),
        // the close code is last; a disconnect for an NSPR error (a reset read: connection.c
        // :1498-1510 and :2716 at 70dcccaf, "Disconnect - %s - %s" with the errno's text and
        // slapd_pr_strerror of the NSPR code) has none: "... - TCP connection reset by peer"
        Kind::Close => format!(
            r"^fd=(?P<fd>\d+) (?:Disconnect - |closed ?(?:- )?)?(?P<close_reason>.*?)(?:(?: - )?(?P<close_code>[A-Z]\d))?{END}"),
        Kind::Haproxy => format!(
            r"^fd=(?P<fd>\d+) HAProxy new_address_from=(?P<client_ip>\S+) to new_address_dest=(?P<server_ip>\S+){END}"),
        Kind::Tls => format!(
            r"^(?P<text>(?P<tls_version>(?:TLS|SSL)[\d.]*)?.*?(?: client bound as (?P<dn>.*?))?){END}"),
        Kind::Autobind => format!(r#"^AUTOBIND dn="(?P<dn>.*)"{END}"#),
        Kind::Bind => with_tail(
            r#"^BIND dn="(?P<dn>.*?)"(?: method=(?P<method>\S+?) version=(?P<version>\d+)(?: mech=(?P<mech>[^\s,]+))?)?"#),
        Kind::Srch => format!(
            r#"^SRCH (?:base|dn)="(?P<base>.*?)"(?: scope=(?P<scope>\d+) filter="(?P<filter>.*?)"(?: attrs=(?:(?P<attrs_all>ALL)|"(?P<attrs>[^"]*)"?))?)?(?: options=(?P<options>\S+))?{AUTHZ}{MSG}{END}"#),
        Kind::Add => with_tail(r#"^ADD dn="(?P<dn>.*?)""#),
        Kind::Mod => with_tail(r#"^MOD dn="(?P<dn>.*?)""#),
        Kind::Del => with_tail(r#"^DEL dn="(?P<dn>.*?)""#),
        Kind::Modrdn => with_tail(
            r#"^MODRDN dn="(?P<dn>.*?)" newrdn="(?P<newrdn>.*?)"(?: newsuperior="(?P<newsuperior>.*?)")?"#),
        Kind::Cmp => with_tail(r#"^CMP dn="(?P<dn>.*?)"(?: attr="(?P<attr>.*?)")?"#),
        Kind::Ext => with_tail(r#"^EXT oid="(?P<oid>.*?)"(?: name="(?P<name>.*?)")?"#),
        Kind::ExtInfo => format!(r#"^EXT_INFO (?P<text>(?:name="(?P<name>.*?)")?.*?){END}"#),
        Kind::Abandon => format!(
            r#"^ABANDON targetop=(?P<targetop>.*?) msgid=(?P<msgid>-?\d+)(?: nentries=(?P<nentries>\d+))?(?: etime=(?P<etime>[\d.]+))?(?: sid="(?P<sid>.*?)")?{END}"#),
        Kind::Unbind => format!(r"^UNBIND(?:, (?P<text>.*?))?{END}"),
        Kind::Unprocessed => format!(r"^UNPROCESSED OPERATION(?: - (?P<text>.*?))?{END}"),
        Kind::Entry => format!(r#"^ENTRY dn="(?P<dn>.*)"{END}"#),
        Kind::Referral => format!(r"^REFERRAL(?P<text>.*?){END}"),
        Kind::Vlv => format!(r"^VLV (?P<text>.*?){END}"),
        Kind::Sort => format!(r"^SORT (?P<text>.*?){END}"),
        Kind::Stat => format!(r"^STAT (?P<text>.*?){END}"),
        // the timing keys always come in this order when present (§7.1), whatever the version
        Kind::Result => concat!(
            r"^RESULT err=(?P<err>-?\d+) tag=(?P<tag>\d+) nentries=(?P<nentries>-?\d+)",
            r"(?: wqtime=(?P<wqtime>[\d.]+))?(?: wtime=(?P<wtime>[\d.]+))?",
            r"(?: optime=(?P<optime>[\d.]+))?(?: writetime=(?P<writetime>[\d.]+))?",
            r"(?: etime=(?P<etime>[\d.]+))?"
        )
        .to_string(),
    }
}

/// The other RESULT segments come in several orders (§7.1), so each is found by its key;
/// the guard is a cheap substring test that skips bodies without it. The first pattern
/// that finds a field wins.
const RESULT_SEGMENTS: [(F, &str, &str); 12] = [
    // the worker pool when the operation was queued (3.2.1+, nsslapd-statlog-level bit 2):
    // " wbusy=%d/%d wqdepth=%d" after the timings (result.c:2357-2362 at 70dcccaf)
    (F::Wbusy, " wbusy=", r" wbusy=(\d+)/\d+ wqdepth=\d+"),
    (F::Wmax, " wbusy=", r" wbusy=\d+/(\d+) wqdepth=\d+"),
    (F::Wqdepth, " wqdepth=", r" wbusy=\d+/\d+ wqdepth=(\d+)"),
    (F::Notes, " notes=", r" notes=([A-Z](?:,[A-Z])*)"),
    (F::Details, " details=", r#" details="(.*?)""#),
    (F::Csn, " csn=", r" csn=(\S+)"),
    (F::PrIdx, " pr_idx=", r" pr_idx=(-?\d+)"),
    (F::PrCookie, " pr_cookie=", r" pr_cookie=(-?\d+)"),
    (F::Sid, " sid=\"", r#" sid="(.*?)""#),
    (F::Dn, " dn=\"", r#" dn="(.*)"\s*$"#),
    // free text: " - text" after the key=value segments, or ", SASL bind in progress"
    (F::Text, " - ", r#"^RESULT(?: [a-z_]+=(?:"[^"]*"|\S+))* - (.*?)(?: sid="[^"]*")?\s*$"#),
    (F::Text, ", ", r"^RESULT[^,]*?, (SASL bind in progress)"),
];

/// The keys a RESULT line can carry (result.c:2398-2560 at 70dcccaf and the older
/// layouts of 389ds-access-log.md §7.1); `unknown_result_keys` counts the others.
const RESULT_KEYS: [&str; 17] = [
    "err", "tag", "nentries", "wqtime", "wtime", "optime", "writetime", "etime", "wbusy",
    "wqdepth", "notes", "details", "csn", "pr_idx", "pr_cookie", "sid", "dn",
];

/// The `key=value` segments of a RESULT body whose key no pattern reads (a field of a
/// newer server): tolerated, and counted so that the summary can name them. The scan stops
/// at the free text (` - `, `, `) and at `dn="`, whose value runs to the line's last quote.
pub fn unknown_result_keys(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = body.strip_prefix("RESULT").unwrap_or("");
    while let Some(segment) = rest.strip_prefix(' ') {
        let key_len = segment.bytes().take_while(|b| b.is_ascii_lowercase() || *b == b'_').count();
        if key_len == 0 || segment.as_bytes().get(key_len) != Some(&b'=') {
            break;
        }
        let key = &segment[..key_len];
        if key == "dn" {
            break;
        }
        let value = &segment[key_len + 1..];
        let value_len = if let Some(quoted) = value.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => end + 2,
                None => break,
            }
        } else {
            value.find([' ', '\n', '\r', '\t']).unwrap_or(value.len())
        };
        if !RESULT_KEYS.contains(&key) {
            out.push(key);
        }
        rest = &value[value_len..];
    }
    out
}

/// A compiled kind pattern, with each capture group's field.
pub struct Pattern {
    pub regex: Regex,
    pub groups: Vec<(usize, F)>,
    /// Every field a body of this kind can have: the groups' (and RESULT's segments').
    pub fields: Vec<F>,
}

pub struct Patterns {
    pub kinds: Vec<Pattern>,
    pub result_segments: Vec<(F, &'static str, Regex)>,
    pub connect_word: Regex,
    pub haproxy_word: Regex,
    pub tls_word: Regex,
}

fn field_of(name: &str) -> F {
    let i = NAMES.iter().position(|n| *n == name).expect("every group names a field");
    ALL_FIELDS[i]
}

const ALL_FIELDS: [F; FIELD_COUNT] = [
    F::Fd, F::ClientIp, F::ServerIp, F::Ssl, F::CloseCode, F::CloseReason, F::TlsVersion, F::Dn,
    F::Method, F::Version, F::Mech, F::Base, F::Scope, F::Filter, F::Attrs, F::AttrsAll,
    F::Options, F::Authzid, F::Newrdn, F::Newsuperior, F::Attr, F::Oid, F::Name, F::Targetop,
    F::Msgid, F::Err, F::Tag, F::Nentries, F::Wqtime, F::Wtime, F::Optime, F::Writetime,
    F::Etime, F::Notes, F::Details, F::Csn, F::PrIdx, F::PrCookie, F::Sid, F::Wbusy, F::Wmax,
    F::Wqdepth, F::Text,
];

pub const ALL_KINDS: [Kind; KIND_COUNT] = [
    Kind::Connect, Kind::Close, Kind::Tls, Kind::Autobind, Kind::Haproxy, Kind::Bind, Kind::Srch,
    Kind::Mod, Kind::Add, Kind::Del, Kind::Modrdn, Kind::Cmp, Kind::Ext, Kind::Abandon,
    Kind::Unbind, Kind::ExtInfo, Kind::Unprocessed, Kind::Result, Kind::Entry, Kind::Referral,
    Kind::Vlv, Kind::Sort, Kind::Stat,
];

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the kind patterns are valid")
}

/// The compiled patterns, built once per process.
pub fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| Patterns {
        kinds: ALL_KINDS
            .iter()
            .map(|k| {
                let regex = compile(&kind_pattern(*k));
                let groups = regex
                    .capture_names()
                    .enumerate()
                    .filter_map(|(i, n)| n.map(|n| (i, field_of(n))))
                    .collect::<Vec<_>>();
                let mut fields: Vec<F> = groups.iter().map(|(_, f)| *f).collect();
                if *k == Kind::Result {
                    fields.extend(RESULT_SEGMENTS.iter().map(|(f, _, _)| *f));
                }
                Pattern { regex, groups, fields }
            })
            .collect(),
        result_segments: RESULT_SEGMENTS.iter().map(|(f, g, p)| (*f, *g, compile(p))).collect(),
        connect_word: compile(r"^fd=\d+ slot=\d+ (?:SSL )?connection from "),
        haproxy_word: compile(r"^fd=\d+ HAProxy "),
        tls_word: compile(r"^(?:(?:TLS|SSL)[\d.]+ |Netscape Portable Runtime error |SSL failed)"),
    })
}

/// The kind a body's first word names; `fd=` and TLS-like words are settled by the body.
pub fn kind_of(body: &str) -> Option<Kind> {
    let word_len = body
        .bytes()
        .position(|b| !(b.is_ascii_alphabetic() || b == b'_'))
        .unwrap_or(body.len());
    let p = patterns();
    Some(match &body[..word_len] {
        "BIND" => Kind::Bind,
        "SRCH" => Kind::Srch,
        "ADD" => Kind::Add,
        "MOD" => Kind::Mod,
        "DEL" => Kind::Del,
        "MODRDN" => Kind::Modrdn,
        "CMP" => Kind::Cmp,
        "EXT" => Kind::Ext,
        "EXT_INFO" => Kind::ExtInfo,
        "ABANDON" => Kind::Abandon,
        "UNBIND" => Kind::Unbind,
        "UNPROCESSED" => Kind::Unprocessed,
        "RESULT" => Kind::Result,
        "ENTRY" => Kind::Entry,
        "REFERRAL" => Kind::Referral,
        "VLV" => Kind::Vlv,
        "SORT" => Kind::Sort,
        "STAT" => Kind::Stat,
        "AUTOBIND" => Kind::Autobind,
        "fd" => {
            let connect = if body.is_ascii() {
                is_connect(body)
            } else {
                p.connect_word.is_match(body) // `\d` is Unicode there
            };
            if connect {
                Kind::Connect
            } else if p.haproxy_word.is_match(body) {
                Kind::Haproxy
            } else {
                Kind::Close
            }
        }
        "TLS" | "SSL" | "Netscape" if p.tls_word.is_match(body) => Kind::Tls,
        _ => return None,
    })
}

/// `^fd=\d+ slot=\d+ (?:SSL )?connection from ` on an ASCII body.
fn is_connect(body: &str) -> bool {
    let b = body.as_bytes();
    let digits = |at: usize| b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    if !b.starts_with(b"fd=") {
        return false;
    }
    let mut i = 3 + digits(3);
    if i == 3 || !b[i..].starts_with(b" slot=") {
        return false;
    }
    let n = digits(i + 6);
    if n == 0 {
        return false;
    }
    i += 6 + n;
    if b[i..].starts_with(b" SSL ") {
        i += 4;
    }
    b[i..].starts_with(b" connection from ")
}

/// The fields of a body by its kind's general pattern, into `fields` (all None on
/// entry); false when the pattern does not match.
pub fn general<'a>(kind: Kind, body: &'a str, fields: &mut Fields<'a>) -> bool {
    let p = patterns();
    let pattern = &p.kinds[kind as usize];
    let Some(caps) = pattern.regex.captures(body) else {
        return false;
    };
    for (i, f) in &pattern.groups {
        fields[*f as usize] = caps.get(*i).map(|m| m.as_str());
    }
    if kind == Kind::Result {
        result_segments(body, fields);
    }
    true
}

/// RESULT segments after the timings, each found by its key.
pub fn result_segments<'a>(body: &'a str, fields: &mut Fields<'a>) {
    for (f, guard, regex) in &patterns().result_segments {
        if fields[*f as usize].is_some() || !body.contains(guard) {
            continue;
        }
        if let Some(m) = regex.captures(body).and_then(|c| c.get(1)) {
            fields[*f as usize] = Some(m.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_result_keys_are_those_outside_values_and_text() {
        let keys = |body| unknown_result_keys(body);
        assert_eq!(keys("RESULT err=0 tag=101 nentries=1 etime=0.1 newkey=3 wbusy=1/2 \
                         wqdepth=0 other=\"a b=c\" notes=A\n"), ["newkey", "other"]);
        assert!(keys("RESULT err=0 tag=101 nentries=0 etime=0.1 - x=y\n").is_empty());
        assert!(keys("RESULT err=0 tag=97 nentries=0 etime=0.1 dn=\"cn=a z=b\" q=1\n").is_empty());
        assert!(keys("RESULT err=14 tag=97 nentries=0 etime=0.1, SASL bind in progress\n")
            .is_empty());
        assert!(keys("RESULT err=0 tag=101 nentries=0 etime=0.1 Upper=1\n").is_empty());
    }
}
