//! A 389 DS 3.x JSON access log (`json` and `json-pretty`) → the same events, rejects and
//! line accounting as the text tokenizer (389ds-access-log.md §11).
//!
//! JSON logs carry named fields, so there is no grammar to apply: each object is mapped
//! onto the text format's columns. Objects are found line by line: a line that opens and
//! closes an object is one event (the `json` format), even where a value was cut inside
//! its quotes; json-pretty objects span lines until their braces balance, and a line
//! starting with `{` while an object is still open means that one was broken. An event
//! counts every line it spans as parsed, and a rejected object rejects each of its
//! lines, so `total = parsed + rejected + header + blank` holds as in the text format.
//!
//! A value of the wrong JSON type for its column (`"conn_id":"x"`), an id over 64 bits,
//! a timing that is not seconds from 0 to `MAX_SECONDS`, and an impossible `local_time`
//! make the object a reject with a reason, never an error.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::fields::{Kind, ALL_KINDS, F, KIND_NAMES};
use crate::head::{local_seconds, utc_nanoseconds, MONTHS};
use crate::tokenize::{
    seconds, Builder, Event, Tokenized, INT_FIELDS, MAX_SECONDS, STRING_FIELDS, TIME_FIELDS,
};

/// JSON "operation" → kind: the JSON names, else the text format's keywords, which
/// generic error events put in "operation" (§11.3: `SRCH`, `MOD`, ...).
fn kind_of(operation: &str) -> Option<Kind> {
    Some(match operation {
        "CONNECTION" => Kind::Connect,
        "DISCONNECT" => Kind::Close,
        "TLS_INFO" | "TLS_CLIENT_INFO" => Kind::Tls,
        "SEARCH" => Kind::Srch,
        "MODIFY" => Kind::Mod,
        "DELETE" => Kind::Del,
        "COMPARE" => Kind::Cmp,
        "EXTENDED_OP" => Kind::Ext,
        "EXTENDED_OP_INFO" => Kind::ExtInfo,
        "ERROR" => Kind::Unprocessed,
        keyword => return KIND_NAMES.iter().position(|k| *k == keyword).map(|i| ALL_KINDS[i]),
    })
}

/// JSON key → column, for keys whose meaning is the same in every event; in this order
/// (a later key wins: `target_dn` over `bind_dn`).
const RENAMES: [(&str, F); 31] = [
    ("fd", F::Fd), ("client_ip", F::ClientIp), ("server_ip", F::ServerIp),
    ("tls_version", F::TlsVersion), ("bind_dn", F::Dn), ("target_dn", F::Dn),
    ("base_dn", F::Base), ("scope", F::Scope), ("filter", F::Filter), ("version", F::Version),
    ("method", F::Method), ("mech", F::Mech), ("authzid", F::Authzid), ("newrdn", F::Newrdn),
    ("newsup", F::Newsuperior), ("cmp_attr", F::Attr), ("oid", F::Oid), ("name", F::Name),
    ("target_op", F::Targetop), ("msgid", F::Msgid), ("err", F::Err), ("tag", F::Tag),
    ("nentries", F::Nentries), ("csn", F::Csn), ("pr_idx", F::PrIdx),
    ("pr_cookie", F::PrCookie), ("sid", F::Sid), ("msg", F::Text),
    // the worker pool (accesslog.c:761-767 at 70dcccaf)
    ("wbusy", F::Wbusy), ("wmax", F::Wmax), ("wqdepth", F::Wqdepth),
];
const TIME_KEYS: [(&str, F); 5] = [("wqtime", F::Wqtime), ("wtime", F::Wtime),
    ("optime", F::Optime), ("writetime", F::Writetime), ("etime", F::Etime)];

/// The keys a RESULT object can have (accesslog.c:71-175, the base object, and :688-770 at
/// 70dcccaf, the result's; the timing names of libglobs.c:10551-10560); the others are
/// counted as unknown fields.
const RESULT_KEYS: [&str; 33] = [
    "local_time", "operation", "key", "conn_id", "op_id", "internal_op", "op_internal_id",
    "op_internal_nested_count", "oid", "oid_name", "msg", "authzid", "haproxied",
    "request_controls", "response_controls", "tag", "err", "nentries", "wqtime", "wtime",
    "optime", "writetime", "etime", "client_ip", "csn", "pr_idx", "pr_cookie", "notes", "sid",
    "bind_dn", "wbusy", "wmax", "wqdepth",
];

/// Tokenize a whole JSON access log (a JSON file is never cut into ranges: json-pretty
/// objects span lines).
pub fn tokenize_json(data: &[u8], first_line: i64) -> Tokenized {
    let text = String::from_utf8_lossy(data);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let mut t = Builder::with_capacity(data.len());
    t.counts.total = lines.len() as i64;
    let mut start = 0usize; // index of the pending object's first line
    let mut pending = 0usize; // lines in the pending object
    let mut depth = 0i64;
    for (i, raw) in lines.iter().enumerate() {
        let stripped = raw.trim();
        if pending == 0 {
            if stripped.is_empty() {
                t.counts.blank += 1;
                continue;
            }
            if stripped.starts_with('[') {
                // a line of the text format: the server writes a search it could not
                // decode that way whatever the log's format (search.c:456-465 at 70dcccaf,
                // log_search_access): read as the text tokenizer reads it
                t.line(&format!("{}\n", raw.trim_end_matches('\r')), first_line + i as i64,
                       true, true);
                t.counts.total -= 1; // (counted above, with the file's lines)
                continue;
            }
            start = i;
        } else if raw.starts_with('{') {
            // a new top-level object: the pending one was broken
            reject_all(&mut t, &lines, start..start + pending, first_line,
                       "JSON event without its closing brace");
            (start, pending, depth) = (i, 0, 0);
        }
        let whole_line = pending == 0 && stripped.starts_with('{') && stripped.ends_with('}');
        pending += 1;
        depth += depth_change(raw);
        if !whole_line && depth > 0 && i + 1 < lines.len() {
            continue;
        }
        let span = start..start + pending;
        (pending, depth) = (0, 0);
        let chunk = lines[span.clone()].join("\n");
        match object(&chunk) {
            Err(reason) => reject_all(&mut t, &lines, span, first_line, &reason),
            Ok(obj) if obj.contains_key("header") => t.counts.header += span.len() as i64,
            Ok(obj) => match event(&obj) {
                Ok((kind, e)) => {
                    t.json_event(first_line + span.start as i64, kind, &e);
                    if kind == Kind::Result {
                        for key in obj.keys().filter(|k| !RESULT_KEYS.contains(&k.as_str())) {
                            t.unknown_field(key);
                        }
                    }
                    t.counts.parsed += span.len() as i64; // lines, not events
                }
                Err(reason) => reject_all(&mut t, &lines, span, first_line, &reason),
            },
        }
    }
    t.finish(data.len())
}

fn reject_all(t: &mut Builder, lines: &[&str], span: std::ops::Range<usize>, first_line: i64,
              reason: &str) {
    for (k, line) in lines[span.clone()].iter().enumerate() {
        t.reject(first_line + (span.start + k) as i64, line, Cow::Borrowed(reason));
    }
}

fn object(chunk: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(chunk) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err("invalid JSON event: not a JSON object".into()),
        Err(_) if chunk.trim_end().ends_with("...}") => {
            Err("JSON event cut at the server's 2048-byte limit".into())
        }
        Err(e) => Err(format!("invalid JSON event: {e}")),
    }
}

/// Braces outside strings (braces inside strings occur in filters).
fn depth_change(line: &str) -> i64 {
    let (mut depth, mut in_str, mut escaped) = (0, false, false);
    for b in line.bytes() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
        } else if b == b'{' {
            depth += 1;
        } else if b == b'}' {
            depth -= 1;
        }
    }
    depth
}

/// Python's truthiness, which the log's optional flags follow (`"tls":false`, absent).
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// A scalar as text, the way the text format would have printed it.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// A value as a reason quotes it: strings in single quotes.
fn repr(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("'{s}'"),
        Some(other) => text_of(other),
        None => "None".into(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn wrong_type(column: &str, v: &Value) -> String {
    let shown: String = text_of(v).chars().take(40).collect();
    format!("wrong type for {column}: {} '{shown}'", type_name(v))
}

/// A 64-bit integer value (None: absent or null), or why it is not one.
fn int(column: &str, v: Option<&Value>) -> Result<Option<i64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::Number(n)) if n.is_u64() => {
            Err(format!("wrong type for {column}: {n} does not fit 64 bits"))
        }
        Some(other) => Err(wrong_type(column, other)),
    }
}

/// A string value (None: absent or null), or why it is not one.
fn string(column: &str, v: Option<&Value>) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(column, other)),
    }
}

/// A timing in seconds: a string as the text format prints it (`"0.000200687"`, the
/// 10-digit ABANDON form included) or a number.
fn timing(column: &str, v: Option<&Value>) -> Result<Option<f64>, String> {
    let parsed = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => seconds(s),
        Some(Value::Number(n)) => n.as_f64().filter(|f| (0.0..=MAX_SECONDS).contains(f)),
        Some(other) => return Err(wrong_type(column, other)),
    };
    parsed.map(Some).ok_or_else(|| {
        let shown: String = text_of(v.expect("a value")).chars().take(40).collect();
        format!("timing value not seconds from 0 to {MAX_SECONDS:e}: {column}={shown}")
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.nnnnnnnnn] +hhmm` (or the text format's `DD/Mon/YYYY:...`):
/// UTC nanoseconds and the offset as written.
pub(crate) fn local_time(value: &str) -> Option<(i64, String)> {
    if !value.is_ascii() {
        return None; // (and every index below is a character boundary)
    }
    let (left, tz) = value.rsplit_once(' ')?;
    let tz_bytes = tz.as_bytes();
    if tz_bytes.len() != 5 || !matches!(tz_bytes[0], b'+' | b'-')
        || !tz_bytes[1..].iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let (clock, nanos) = match left.len().checked_sub(10).map(|at| left.split_at(at)) {
        Some((clock, frac)) if frac.starts_with('.') && frac[1..].bytes().all(|b| b.is_ascii_digit()) => {
            (clock, frac[1..].parse::<u32>().ok()?)
        }
        _ => (left, 0),
    };
    let b = clock.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = b.get(r)?;
        s.iter().all(u8::is_ascii_digit).then(|| std::str::from_utf8(s).ok()?.parse().ok())?
    };
    let (year, month, day, rest) = if b.len() == 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' {
        (num(0..4)?, Some(num(5..7)?), num(8..10)?, 11)
    } else if b.len() == 20 && b[2] == b'/' && b[6] == b'/' && b[11] == b':' {
        let month = MONTHS.iter().position(|m| m[..] == b[3..6]).map(|p| p as u32 + 1)?;
        (num(7..11)?, Some(month), num(0..2)?, 12)
    } else {
        return None;
    };
    if b[rest + 2] != b':' || b[rest + 5] != b':' {
        return None;
    }
    let (hour, minute, second) = (num(rest..rest + 2)?, num(rest + 3..rest + 5)?,
                                  num(rest + 6..rest + 8)?);
    if second > 59 {
        return None; // strptime's datetime takes no leap second
    }
    let local = local_seconds(year, month, day, hour, minute, second).ok()?;
    let sign = if tz_bytes[0] == b'+' { 1 } else { -1 };
    let ts = utc_nanoseconds(local, sign, tz[1..].parse().ok()?, nanos).ok()?;
    Some((ts, tz.to_owned()))
}

fn slot<const N: usize>(fields: &[F; N], f: F) -> usize {
    fields.iter().position(|x| *x == f).expect("a column of that type")
}

/// The close code at the end of a DISCONNECT's reason (`... - U1`), and the reason
/// without it.
fn close_code(reason: &str) -> (Option<String>, String) {
    let trimmed = reason.trim_end();
    let b = trimmed.as_bytes();
    let n = b.len();
    if n >= 2 && b[n - 2].is_ascii_uppercase() && b[n - 1].is_ascii_digit()
        && (n == 2 || trimmed[..n - 2].ends_with("- "))
    {
        let rest = trimmed[..n - 2].trim_end_matches([' ', '-']);
        return (Some(trimmed[n - 2..].to_owned()), rest.to_owned());
    }
    (None, reason.to_owned())
}

/// One object's event, or why it is a reject.
fn event(obj: &Map<String, Value>) -> Result<(Kind, Event), String> {
    let operation = obj.get("operation");
    let kind = match operation {
        Some(Value::String(s)) => kind_of(s),
        _ => None,
    }
    .ok_or_else(|| format!("unknown JSON operation: {}", repr(operation)))?;
    let time = obj.get("local_time").map(text_of).unwrap_or_default();
    let (ts, tz) = local_time(&time)
        .ok_or_else(|| format!("bad local_time: {}", repr(obj.get("local_time"))))?;
    let internal = truthy(obj.get("internal_op"));
    let mut e = Event { ts, tz, internal, ..Event::default() };
    let conn = obj.get("conn_id");
    let zero = conn.is_some_and(|c| c.as_f64() == Some(0.0) || *c == Value::Bool(false));
    e.conn = if internal && zero { None } else { int("conn", conn)? };
    e.op = int("op", obj.get("op_id"))?;
    e.op_internal = int("op_internal", obj.get("op_internal_id"))?;
    e.op_nested = int("op_nested", obj.get("op_internal_nested_count"))?;

    // the values by column, as they come (a later key wins), then typed at the end
    let mut values: Vec<(F, Value)> = Vec::new();
    let put = |values: &mut Vec<(F, Value)>, f: F, v: Value| {
        match values.iter_mut().find(|(g, _)| *g == f) {
            Some(slot) => slot.1 = v,
            None => values.push((f, v)),
        }
    };
    for (key, f) in RENAMES {
        if let Some(v) = obj.get(key) {
            if !matches!(v, Value::Array(_) | Value::Object(_)) {
                put(&mut values, f, v.clone());
            }
        }
    }
    for (f, v) in values.iter_mut() {
        // strings in the text format, sometimes numbers in JSON
        if matches!(f, F::Method | F::Targetop) && !v.is_null() {
            *v = Value::String(text_of(v));
        }
    }
    for (key, f) in TIME_KEYS {
        if obj.contains_key(key) {
            e.times[slot(&TIME_FIELDS, f)] = timing(key, obj.get(key))?;
        }
    }
    let str_of = |key: &str| obj.get(key).map(text_of);
    match kind {
        Kind::Connect => e.ssl = Some(truthy(obj.get("tls"))),
        Kind::Haproxy => {
            put(&mut values, F::ClientIp, obj.get("haproxy_ip").cloned().unwrap_or(Value::Null));
            put(&mut values, F::ServerIp,
                obj.get("haproxy_destip").cloned().unwrap_or(Value::Null));
        }
        Kind::Close => {
            let (code, mut reason) = close_code(&str_of("close_reason").unwrap_or_default());
            if truthy(obj.get("close_error")) {
                reason = format!("{} - {reason}", str_of("close_error").unwrap_or_default());
            }
            put(&mut values, F::CloseCode, code.map_or(Value::Null, Value::String));
            put(&mut values, F::CloseReason, Value::String(reason));
        }
        Kind::Srch => {
            let attrs = match obj.get("attrs") {
                None | Some(Value::Null) => "ALL".to_owned(),
                Some(Value::Array(a)) => a.iter().map(text_of).collect::<Vec<_>>().join(" "),
                Some(Value::String(s)) => s.chars().map(String::from).collect::<Vec<_>>()
                    .join(" "),
                Some(other) => return Err(wrong_type("attrs", other)),
            };
            put(&mut values, F::Attrs, Value::String(attrs));
            if truthy(obj.get("psearch")) {
                put(&mut values, F::Options, Value::String("persistent".into()));
            }
        }
        _ => {}
    }
    if kind == Kind::Result {
        if let Some(Value::Array(notes)) = obj.get("notes") {
            let notes: Vec<&Map<String, Value>> = notes.iter().filter_map(Value::as_object)
                .collect();
            let join = |key: &str| notes.iter()
                .map(|n| n.get(key).map(text_of).unwrap_or_default()).collect::<Vec<_>>()
                .join(",");
            put(&mut values, F::Notes, Value::String(join("note")));
            put(&mut values, F::Details, Value::String(join("description")));
        }
        // 3.x logs the bound DN on BIND results only; msg " - text" is the result text
        for (f, v) in values.iter_mut() {
            if *f == F::Text {
                if let Value::String(s) = v {
                    let text = s.strip_prefix(" - ").unwrap_or(s).trim().to_owned();
                    let in_progress = text == "SASL bind in progress"
                        && obj.get("err").and_then(Value::as_i64) != Some(14);
                    // the success branch reuses this message (§11.3)
                    *v = if text.is_empty() || in_progress { Value::Null }
                         else { Value::String(text) };
                }
            }
        }
        if !obj.contains_key("bind_dn") {
            values.retain(|(f, _)| *f != F::Dn);
        }
        values.retain(|(f, _)| *f != F::ClientIp);
    }
    if kind == Kind::Stat {
        // as the text format writes it (result.c:2203 and :2241 at 70dcccaf), from the
        // keys of accesslog.c:865-872: one index key read, or the search's summary
        let text = match obj.get("stat_etime") {
            Some(d) => format!("read index: duration {}", text_of(d)),
            None => {
                let part = |key: &str| obj.get(key).filter(|v| !v.is_null())
                    .map_or_else(|| "(null)".to_owned(), text_of);
                format!("read index: attribute={} key({})={} --> count {}", part("stat_attr"),
                        part("stat_key"), part("stat_key_value"), part("stat_count"))
            }
        };
        put(&mut values, F::Text, Value::String(text));
    }
    if kind == Kind::Tls {
        let text: Vec<String> = ["tls_version", "keysize", "cipher"].iter()
            .filter_map(|k| obj.get(*k).map(text_of)).collect();
        put(&mut values, F::Text, Value::String(text.join(" ")));
        if truthy(obj.get("client_dn")) {
            put(&mut values, F::Dn, obj["client_dn"].clone());
        }
    }
    for (f, v) in values {
        let name = crate::fields::NAMES[f as usize];
        if INT_FIELDS.contains(&f) {
            e.ints[slot(&INT_FIELDS, f)] = int(name, Some(&v))?;
        } else {
            e.strs[slot(&STRING_FIELDS, f)] = string(name, Some(&v))?;
        }
    }
    Ok((kind, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    #[test]
    fn local_times_of_both_forms_and_impossible_ones() {
        assert_eq!(local_time("2026-05-30T10:00:00.000000001 +0000"),
                   Some((1_780_135_200_000_000_001, "+0000".into())));
        assert_eq!(local_time("30/May/2026:12:00:00 +0200").map(|t| t.0),
                   Some(1_780_135_200_000_000_000));
        for bad in ["x", "2026-02-31T10:00:00 +0000", "2026-05-30T10:00:00 +00", "",
                    "2026-05-30T24:00:00 +0000", "2026-05-30T10:00:00.5 +0000",
                    "9999-05-30T10:00:00 +0000", "2026-05-30T10:00:00 +0099",
                    "2026-05-30T10:00:00\u{fffd}000000004 +0000"] {
            assert_eq!(local_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn close_codes() {
        assert_eq!(close_code("Cleanly Closed Connection - U1"),
                   (Some("U1".into()), "Cleanly Closed Connection".into()));
        assert_eq!(close_code("B1"), (Some("B1".into()), String::new()));
        assert_eq!(close_code("no code here"), (None, "no code here".into()));
    }

    #[test]
    fn a_text_line_in_a_json_log_is_the_event_it_says() {
        // search.c:456-465 (70dcccaf): a search the server could not decode is logged in
        // the text format, JSON log or not
        let log = concat!(
            "{\"local_time\":\"2026-05-30T10:00:00.000000001 +0000\",\"operation\":\"SEARCH\",",
            "\"conn_id\":1,\"op_id\":2,\"base_dn\":\"dc=x\",\"scope\":2,\"filter\":\"(uid=a)\"}\n",
            "[30/May/2026:10:00:00.000000002 +0000] conn=1 op=3 SRCH base=\"dc=x\" scope=2 ",
            "filter=\"(uid=b)\", failed to decode LDAP controls\n",
            "{\"local_time\":\"2026-05-30T10:00:00.000000003 +0000\",\"operation\":\"UNBIND\",",
            "\"conn_id\":1,\"op_id\":4}\n",
        );
        let t = tokenize_json(log.as_bytes(), 1);
        let c = t.counts;
        assert_eq!((c.total, c.parsed, c.rejected), (3, 3, 0));
        let requests = &t.events[0];
        let lines = requests.column_by_name("line").unwrap().as_primitive::<Int64Type>();
        assert_eq!(lines.values().to_vec(), vec![1, 2]);
        let text = requests.column_by_name("text").unwrap().as_string::<i64>();
        assert_eq!(text.value(1), "failed to decode LDAP controls");
    }

    #[test]
    fn every_line_is_an_event_a_reject_a_header_or_blank() {
        let log = concat!(
            "{\"header\":{\"version\":\"389-Directory/3.3.0\"}}\n",
            "\n",
            "{\"local_time\":\"2026-05-30T10:00:00.000000001 +0000\",\"operation\":\"SEARCH\",",
            "\"conn_id\":1,\"op_id\":2,\"base_dn\":\"dc=x\",\"scope\":2,\"filter\":\"(uid=a)\"}\n",
            "{\n  \"local_time\": \"2026-05-30T10:00:00.000000002 +0000\",\n",
            "  \"operation\": \"RESULT\", \"conn_id\": 1, \"op_id\": 2, \"err\": 0,\n",
            "  \"etime\": \"0.000100000\"\n}\n",
            "{\"local_time\":\"2026-05-30T10:00:00 +0000\",\"operation\":\"BIND\",\"conn_id\":\"x\"}\n",
            "{\"local_time\":\"2026-05-30T10:00:00 +0000\",\"operation\":\"RESULT\",\"conn_id\":1,",
            "\"etime\":\"10000000000.0\"}\n",
            "{\"local_time\":\"2026-05-30T10:00:00 +0000\",\"operation\":\"SEARCH\",\"filter\":\"(cn=ab...}\n",
            "{\"local_time\": \"2026-05-30T10:00:00 +0000\",\n",
        );
        let t = tokenize_json(log.as_bytes(), 1);
        let c = t.counts;
        assert_eq!((c.total, c.parsed, c.rejected, c.header, c.blank), (12, 6, 4, 1, 1));
        assert_eq!(c.total, c.parsed + c.rejected + c.header + c.blank);
        let lines = t.events[1].column_by_name("line").unwrap().as_primitive::<Int64Type>();
        assert_eq!(lines.value(0), 4); // an object's line is where it starts
        let reasons: Vec<String> = (0..4).map(|i| t.rejects.column(2).as_string::<i64>()
            .value(i).to_owned()).collect();
        assert!(reasons[0].starts_with("wrong type for conn: str"), "{reasons:?}");
        assert!(reasons[1].starts_with("timing value not seconds"), "{reasons:?}");
        assert_eq!(reasons[2], "JSON event cut at the server's 2048-byte limit");
        assert!(reasons[3].starts_with("invalid JSON event"), "{reasons:?}");
    }

    #[test]
    fn anything_at_all_is_an_event_or_a_reject_never_a_panic() {
        for junk in ["{", "}", "{}", "[]", "{\"operation\":5}", "{\"a\":{\"b\":}", "\"x\"",
                     "{\"local_time\":7,\"operation\":\"BIND\"}", "{\"operation\":\"SEARCH\",\
                     \"local_time\":\"2026-05-30T10:00:00 +0000\",\"attrs\":7}", "\u{0}{"] {
            let t = tokenize_json(junk.as_bytes(), 1);
            let c = t.counts;
            assert_eq!(c.total, c.parsed + c.rejected + c.header + c.blank, "{junk}");
        }
    }
}
