//! The frame every event line shares: `[timestamp] conn=N [(Internal)] [op=M[(i)(n)]] BODY`.
//!
//! One left-to-right pass decides three things (389ds-access-log.md §2, §3):
//! - whether the line is an event at all (the frame's shape, ASCII digits only);
//! - whether its values are possible (a real date, an offset with minutes < 60, ids
//!   that fit 64 bits): an impossible value makes the line a reject, never an
//!   event with a null time;
//! - the UTC time in nanoseconds, the ids, and where the body starts.

/// What the frame of one line says.
#[derive(Debug, PartialEq)]
pub enum Head {
    /// Not shaped like an event: a header, blank or junk line.
    NotEvent,
    /// Shaped like an event, but a value in the frame is impossible.
    Bad(&'static str),
    Event(Ids),
}

#[derive(Debug, PartialEq, Clone, Copy)]
pub struct Ids {
    pub ts: i64,
    pub tz_at: usize, // the five bytes "+hhmm" start here
    pub conn: Option<i64>,
    pub internal: bool,
    pub op: Option<i64>,
    pub op_internal: Option<i64>,
    pub op_nested: Option<i64>,
    pub body_at: usize,
}

pub(crate) const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
    b"Dec",
];

/// A cursor over the bytes of one line.
struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    // always inlined: each call's literal is then a constant, compared in place, not
    // by a call to memcmp
    #[inline(always)]
    fn eat_str(&mut self, s: &[u8]) -> bool {
        if self.b[self.i..].starts_with(s) {
            self.i += s.len();
            true
        } else {
            false
        }
    }

    /// Exactly `n` ASCII digits as a number.
    fn fixed(&mut self, n: usize) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
        }
        self.i += n;
        Some(v)
    }

    /// One or more ASCII digits; the text, not yet a number (it may not fit).
    fn digits(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.b[start..self.i])
    }
}

fn number(digits: &[u8], negative: bool) -> Option<i64> {
    let mut v: i64 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if negative { -v } else { v })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        _ => 28,
    }
}

/// The last date and time read: lines of one second share it, and it was valid.
#[derive(Default)]
pub struct StampCache {
    key: [u8; 20], // "dd/Mon/yyyy:HH:MM:SS"
    local_seconds: Option<i64>,
}

/// The frame of one line (without its newline or with it: both work).
pub fn parse_head(line: &str) -> Head {
    parse_head_cached(line, &mut StampCache::default())
}

/// `parse_head`, remembering the last date and time in `cache`.
pub fn parse_head_cached(line: &str, cache: &mut StampCache) -> Head {
    let mut c = Cursor { s: line, b: line.as_bytes(), i: 0 };
    match frame(&mut c, cache) {
        Some(Ok(ids)) => Head::Event(ids),
        Some(Err(reason)) => Head::Bad(reason),
        None => Head::NotEvent,
    }
}

// None: not an event; Some(Err): an event with an impossible value.
fn frame(c: &mut Cursor<'_>, cache: &mut StampCache) -> Option<Result<Ids, &'static str>> {
    if !c.eat(b'[') {
        return None;
    }
    if let (Some(local), Some(key)) = (cache.local_seconds, c.b.get(1..21)) {
        if key == cache.key {
            c.i = 21;
            return zoned(c, Ok(local));
        }
    }
    let local = wall_clock(c)?;
    if let Ok(seconds) = local {
        cache.key.copy_from_slice(&c.b[1..21]);
        cache.local_seconds = Some(seconds);
    }
    zoned(c, local)
}

/// `dd/Mon/yyyy:hh:mm:ss` as seconds since 1970-01-01 read as UTC (None: not that
/// shape; an error: an impossible value).
#[inline(always)]
fn wall_clock(c: &mut Cursor<'_>) -> Option<Result<i64, &'static str>> {
    let day = c.fixed(2)?;
    c.eat(b'/').then_some(())?;
    let mon = c.b.get(c.i..c.i + 3)?;
    if !(mon[0].is_ascii_uppercase() && mon[1].is_ascii_lowercase() && mon[2].is_ascii_lowercase())
    {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == mon).map(|p| p as u32 + 1);
    c.i += 3;
    c.eat(b'/').then_some(())?;
    let year = c.fixed(4)?;
    c.eat(b':').then_some(())?;
    let hour = c.fixed(2)?;
    c.eat(b':').then_some(())?;
    let minute = c.fixed(2)?;
    c.eat(b':').then_some(())?;
    let second = c.fixed(2)?;
    Some(local_seconds(year, month, day, hour, minute, second))
}

/// A 389 timestamp on its own, `[26/Nov/2026:16:20:10.123456789 +0000]` (brackets and
/// the fraction optional, 1 to 9 digits of it), as the command line and `collect` take
/// it: (UTC nanoseconds, the UTC offset in minutes). `Err`: why it is not one, for a
/// message (the tokenizer reads line heads with `parse_head`, which this shares).
pub fn parse_stamp(text: &str) -> Result<(i64, i32), &'static str> {
    const SHAPE: &str = "not a 389 timestamp (26/Nov/2026:16:20:10 +0000)";
    let text = text.trim();
    let text = text.strip_prefix('[').map_or(text, |t| t.strip_suffix(']').unwrap_or(t));
    let mut c = Cursor { s: text, b: text.as_bytes(), i: 0 };
    let local = wall_clock(&mut c).ok_or(SHAPE)?;
    let mut nanos = 0u32;
    if c.eat(b'.') {
        let digits = c.digits().filter(|d| d.len() <= 9).ok_or(SHAPE)?;
        for (k, d) in digits.iter().enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - k as u32);
        }
    }
    c.eat(b' ').then_some(()).ok_or(SHAPE)?;
    let sign = match c.peek() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(SHAPE),
    };
    c.i += 1;
    let hhmm = c.fixed(4).ok_or(SHAPE)?;
    if c.i != c.b.len() {
        return Err(SHAPE);
    }
    let ts = utc_nanoseconds(local?, sign, hhmm, nanos)?;
    Ok((ts, (sign * i64::from(hhmm / 100 * 60 + hhmm % 100)) as i32))
}

/// The UTC time of a log's first event, from its first bytes (text or JSON): what
/// orders rotated files whose names carry no time (logrotate's `access.1`,
/// `access-20261126`). None when those bytes hold no event (a title block, an empty
/// file). A line cut at the end of `head` still has its time at its start.
pub fn first_time(head: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(head);
    text.lines().find_map(|line| {
        let line = line.trim_start();
        if line.starts_with('[') {
            return match parse_head(line) {
                Head::Event(ids) => Some(ids.ts),
                _ => None,
            };
        }
        let value = line.split_once("\"local_time\"")?.1.trim_start().strip_prefix(':')?;
        let value = value.trim_start().strip_prefix('"')?;
        crate::json::local_time(value.split_once('"')?.0).map(|(ts, _)| ts)
    })
}

/// Seconds since 1970-01-01 of a local wall time read as UTC (`month` None: a name
/// that is no month), or why it is impossible.
pub(crate) fn local_seconds(year: u32, month: Option<u32>, day: u32, hour: u32, minute: u32,
                            second: u32) -> Result<i64, &'static str> {
    let month = month.ok_or("impossible timestamp: unknown month")?;
    if !(1..=12).contains(&month) {
        return Err("impossible timestamp: unknown month");
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err("impossible timestamp: no such day");
    }
    // 60: a leap second, as strptime accepts it
    if hour > 23 || minute > 59 || second > 60 {
        return Err("impossible timestamp: no such time of day");
    }
    let days = days_from_civil(i64::from(year), month, day);
    Ok(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

/// UTC nanoseconds of a local time in seconds, its offset (`sign`, `hhmm`) and its
/// nanoseconds, or why they do not make one.
pub(crate) fn utc_nanoseconds(local: i64, sign: i64, hhmm: u32, nanos: u32)
                              -> Result<i64, &'static str> {
    if hhmm % 100 > 59 {
        return Err("impossible timestamp: UTC offset minutes over 59");
    }
    let offset_min = sign * i64::from(hhmm / 100 * 60 + hhmm % 100);
    i128::from(local - offset_min * 60)
        .checked_mul(1_000_000_000)
        .map(|ns| ns + i128::from(nanos))
        .and_then(|ns| i64::try_from(ns).ok())
        .ok_or("impossible timestamp: outside 1677-2262 (64-bit nanoseconds)")
}

// After the seconds: nanoseconds, the UTC offset, the ids.
#[inline(always)]
fn zoned(c: &mut Cursor<'_>, local: Result<i64, &'static str>)
         -> Option<Result<Ids, &'static str>> {
    let nanos = if c.eat(b'.') { c.fixed(9)? } else { 0 };
    c.eat(b' ').then_some(())?;
    let sign: i64 = match c.peek()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    c.i += 1;
    let tz_at = c.i - 1;
    let hhmm = c.fixed(4)?;
    c.eat_str(b"] conn=").then_some(())?;
    let ids = ids(c)?;
    let stamp = local.and_then(|local| utc_nanoseconds(local, sign, hhmm, nanos));
    Some(match (stamp, ids) {
        (Err(reason), _) | (_, Err(reason)) => Err(reason),
        (Ok(ts), Ok(mut ids)) => {
            ids.ts = ts;
            ids.tz_at = tz_at;
            Ok(ids)
        }
    })
}

// `conn=` has been read. None: not an event (the frame's regex would not match).
#[inline(always)] // returned through memory, its fields stalled the next loads
fn ids(c: &mut Cursor<'_>) -> Option<Result<Ids, &'static str>> {
    let mut ids = Ids {
        ts: 0,
        tz_at: 0,
        conn: None,
        internal: false,
        op: None,
        op_internal: None,
        op_nested: None,
        body_at: 0,
    };
    let mut bad = None;
    if let Some(digits) = c.digits() {
        ids.conn = number(digits, false);
        if ids.conn.is_none() {
            bad = Some("connection number out of range");
        }
        if c.b[c.i..].starts_with(b" (Internal) ") {
            ids.internal = true;
            c.i += " (Internal)".len();
        }
    } else if c.eat_str(b"Internal") {
        ids.internal = true;
        if c.peek() == Some(b'(') {
            c.i += 1;
            c.digits()?;
            c.eat(b')').then_some(())?;
        }
    } else {
        return None;
    }
    c.eat(b' ').then_some(())?;
    if c.b[c.i..].starts_with(b"op=") {
        let save = c.i;
        match op(c) {
            Some(Ok((o, nest))) => {
                ids.op = Some(o);
                if let Some((i, n)) = nest {
                    ids.op_internal = Some(i);
                    ids.op_nested = Some(n);
                }
            }
            Some(Err(reason)) => bad = bad.or(Some(reason)),
            None => {
                c.i = save;
                bad = bad.or(Some("malformed op id: expected op=N or op=N(i)(n)"));
            }
        }
    }
    // the body starts with a character that is not white space (every byte read so far
    // was ASCII, so the cursor is on a character boundary)
    if c.s[c.i..].chars().next().is_none_or(char::is_whitespace) {
        return None;
    }
    ids.body_at = c.i;
    Some(match bad {
        Some(reason) => Err(reason),
        None => Ok(ids),
    })
}

type OpIds = (i64, Option<(i64, i64)>);

// `op=-?\d+(?:\(\d+\)\(\d+\))? ` at the cursor; None if it is not of that shape.
fn op(c: &mut Cursor<'_>) -> Option<Result<OpIds, &'static str>> {
    c.i += 3;
    let negative = c.eat(b'-');
    let digits = c.digits()?;
    let value = number(digits, negative);
    let mut nest = None;
    let mut fits = value.is_some();
    if c.peek() == Some(b'(') {
        c.i += 1;
        let i = number(c.digits()?, false);
        c.eat_str(b")(").then_some(())?;
        let n = number(c.digits()?, false);
        c.eat(b')').then_some(())?;
        fits &= i.is_some() && n.is_some();
        nest = i.zip(n);
    }
    // the STAT lines of internal operations have no space before STAT (result.c:2142-2143
    // at 70dcccaf: STAT_LOG_CONN_OP_FMT_INT_INT and _EXT_INT, "op=%d(%d)(%d)" then "STAT")
    if !(nest.is_some() && c.b[c.i..].starts_with(b"STAT ")) {
        c.eat(b' ').then_some(())?;
    }
    Some(match (fits, value) {
        (true, Some(v)) => Ok((v, nest)),
        _ => Err("operation number out of range"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(line: &str) -> Ids {
        match parse_head(line) {
            Head::Event(ids) => ids,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn an_internal_operations_stat_line_has_no_space_before_stat() {
        // result.c:2203-2204 (70dcccaf), both internal forms
        let a = event("[26/Nov/2026:16:20:10.000000000 +0000] conn=Internal(0) op=0(0)(0)STAT read \
                       index: attribute=objectclass key(eq)=referral --> count 0 (duration 0.000012)");
        assert!(a.internal && a.conn.is_none());
        assert_eq!((a.op, a.op_internal, a.op_nested), (Some(0), Some(0), Some(0)));
        let line = "[26/Nov/2026:16:20:10.000000000 +0000] conn=5 (Internal) op=3(1)(2)STAT read index: duration 0.000012";
        let b = event(line);
        assert_eq!((b.conn, b.op, b.op_internal, b.op_nested), (Some(5), Some(3), Some(1), Some(2)));
        assert!(line[b.body_at..].starts_with("STAT read index"));
        // only STAT: any other keyword still needs its space
        let glued = "[26/Nov/2026:16:20:10.000000000 +0000] conn=5 (Internal) op=3(1)(2)SRCH base=\"\"";
        assert!(matches!(parse_head(glued), Head::Bad(_)));
    }

    #[test]
    fn a_logs_first_time_is_its_first_events_in_either_format() {
        let ns = 1_795_710_010_000_000_000; // 2026-11-26T16:20:10Z
        let text = b"\n389-Directory/2.3.1 B2023.123.0000\n\tds.example.com:389 (/etc/dirsrv)\n\n\
                     [26/Nov/2026:11:20:10.000000001 -0500] conn=1 fd=64 slot=64 connection\n\
                     [26/Nov/2026:11:20:09.000000000 -0500] conn=1 op=0 UNBIND\n";
        assert_eq!(first_time(text), Some(ns + 1));
        let json = b"{\n  \"local_time\": \"2026-11-26T16:20:10.000000002 +0000\",\n  \"operation\": \"UNBIND\"";
        assert_eq!(first_time(json), Some(ns + 2));
        assert_eq!(first_time(b"{\"header\": {}}\n{\"local_time\":\"26/Nov/2026:16:20:10 +0000\"}"), Some(ns));
        // no event: a title block, a cut first line, an impossible date, nothing
        for head in [&b"389-Directory/2.3.1\n\n"[..], b"[26/Nov/20", b"[31/Feb/2026:00:00:00 +0000] conn=1 op=0 UNBIND\n", b""] {
            assert_eq!(first_time(head), None, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn a_stamp_on_its_own_is_read_as_the_tokenizer_reads_a_line_head() {
        let ns = 1_795_710_010_000_000_000; // 2026-11-26T16:20:10Z
        assert_eq!(parse_stamp("26/Nov/2026:16:20:10 +0000"), Ok((ns, 0)));
        assert_eq!(parse_stamp(" [26/Nov/2026:11:20:10.5 -0500] "), Ok((ns + 500_000_000, -300)));
        assert_eq!(parse_stamp("26/Nov/2026:21:50:10.000000001 +0530"), Ok((ns + 1, 330)));
        let line = "[26/Nov/2026:11:20:10.500000000 -0500] conn=1 op=0 UNBIND";
        match parse_head(line) {
            Head::Event(ids) => assert_eq!(ids.ts, parse_stamp(&line[..39]).unwrap().0),
            other => panic!("{other:?}"),
        }
        for (text, why) in [
            ("yesterday", "not a 389 timestamp"), ("26/Nov/2026:16:20:10", "not a 389"),
            ("26/Nov/2026:16:20:10 +0000 x", "not a 389"), ("26/Nov/2026:16:20:10.1234567891 +0000", "not a 389"),
            ("26/Foo/2026:16:20:10 +0000", "unknown month"), ("31/Feb/2026:00:00:00 +0000", "no such day"),
            ("26/Nov/2026:16:20:10 +0075", "minutes over 59"),
        ] {
            assert!(parse_stamp(text).unwrap_err().contains(why), "{text}");
        }
    }

    #[test]
    fn utc_nanoseconds_with_the_lines_offset() {
        let utc = 1_795_710_010_475_026_726;
        assert_eq!(event("[26/Nov/2026:16:20:10.475026726 +0000] conn=1 op=1 UNBIND").ts, utc);
        assert_eq!(event("[26/Nov/2026:11:20:10.475026726 -0500] conn=1 op=1 UNBIND").ts, utc);
        assert_eq!(event("[27/Nov/2026:04:50:10.475026726 +1230] conn=1 op=1 UNBIND").ts, utc);
        assert_eq!(event("[26/Nov/2026:16:20:10 +0000] conn=1 op=1 UNBIND").ts, utc - 475_026_726);
    }

    #[test]
    fn ids_of_every_form() {
        let i = event("[26/Nov/2026:16:20:10 +0000] conn=829 (Internal) op=3(1)(2) SRCH x");
        assert_eq!((i.conn, i.internal, i.op, i.op_internal, i.op_nested),
                   (Some(829), true, Some(3), Some(1), Some(2)));
        let i = event("[26/Nov/2026:16:20:10 +0000] conn=Internal(0) op=0(2)(0) MOD x");
        assert_eq!((i.conn, i.internal, i.op, i.op_internal), (None, true, Some(0), Some(2)));
        let i = event("[26/Nov/2026:16:20:10 +0000] conn=Internal op=-1 MOD x");
        assert_eq!((i.conn, i.internal, i.op), (None, true, Some(-1)));
        let i = event("[26/Nov/2026:16:20:10 +0000] conn=7 TLS1.3 x");
        assert_eq!((i.conn, i.op, i.body_at), (Some(7), None, 36));
    }

    #[test]
    fn impossible_values_are_bad_not_events() {
        for (line, reason) in [
            ("[31/Feb/2026:16:20:10 +0000] conn=1 op=1 UNBIND", "no such day"),
            ("[29/Feb/2026:16:20:10 +0000] conn=1 op=1 UNBIND", "no such day"),
            ("[01/Foo/2026:16:20:10 +0000] conn=1 op=1 UNBIND", "unknown month"),
            ("[01/Jan/2026:24:20:10 +0000] conn=1 op=1 UNBIND", "time of day"),
            ("[01/Jan/2026:16:20:10 +0099] conn=1 op=1 UNBIND", "offset"),
            ("[01/Jan/0001:16:20:10 +0000] conn=1 op=1 UNBIND", "outside"),
            ("[01/Jan/2026:16:20:10 +0000] conn=99999999999999999999 op=1 UNBIND", "connection"),
            ("[01/Jan/2026:16:20:10 +0000] conn=1 op=99999999999999999999 UNBIND", "operation"),
            ("[01/Jan/2026:16:20:10 +0000] conn=1 op=x UNBIND", "malformed op"),
        ] {
            match parse_head(line) {
                Head::Bad(r) => assert!(r.contains(reason), "{line}: {r}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        assert_eq!(event("[29/Feb/2024:16:20:10 +0000] conn=1 op=1 UNBIND").conn, Some(1));
    }

    #[test]
    fn other_shapes_are_not_events() {
        for line in ["", "\t389-Directory/2.3.1", "[26/Nov/2026:16:20:10 +0000] conn=x",
                     "[26/Nov/2026:16:20:10 +0000] conn=1  BIND", "[26/NOV/2026:16:20:10 +0000] conn=1 X",
                     "[26/Nov/2026:16:20:10 +0000] conn=Internal(0)x BIND",
                     "[26/Nov/2026:16:20:10.12 +0000] conn=1 BIND"] {
            assert_eq!(parse_head(line), Head::NotEvent, "{line}");
        }
    }
}
