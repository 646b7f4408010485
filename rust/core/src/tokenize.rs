//! A newline-aligned block of a text access log → events, rejects and line accounting.
//!
//! Every line is exactly one of: an event (a row), a reject (a row with a reason),
//! a header line (the title block: starts with a tab) or a blank line, so
//! `total = parsed + rejected + header + blank` always holds. A value that would
//! not fit its column (a timestamp outside the 64-bit nanosecond range, an id or
//! count over 64 bits, a timing over `MAX_SECONDS`) makes its line a reject.

use std::borrow::Cow;
use std::collections::BTreeMap;

use arrow_array::{ArrayRef, RecordBatch};

use crate::columns::{batch, BoolCol, F64Col, FixedStrCol, I64Col, NameCol, StrCol};
use crate::fields::{kind_of, unknown_result_keys, Fields, Kind, F, FIELD_COUNT, KIND_COUNT, KIND_NAMES};
use crate::head::{parse_head_cached, Head, Ids, StampCache};
use crate::strict::read_fields;

/// Rejects keep at most this many characters of their line (`schema.REJECT_TEXT_LIMIT`).
pub const REJECT_TEXT_LIMIT: usize = 2048;
/// The server cuts events at 2048 bytes and appends "..." (389ds-access-log.md §1).
pub const TRUNCATION_LIMIT: usize = 2040;
/// A timing over this many seconds (about 31 years) is not a real one; its line is a
/// reject, so sums of nanoseconds downstream cannot overflow 64 bits within 9 × 10^9 s.
pub const MAX_SECONDS: f64 = 1e9;

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Line number of the block's first line.
    pub first_line: i64,
    /// The block ends its file: a last line without newline is a reject (being written).
    pub final_block: bool,
    /// Use the strict paths (false: only the general patterns; for equivalence tests).
    pub strict: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: i64,
    pub parsed: i64,
    pub rejected: i64,
    pub header: i64,
    pub blank: i64,
}

/// The event classes of `schema.EVENT_CLASSES`: what the join does with an event.
pub const CLASS_NAMES: [&str; 4] = ["request", "result", "lone", "other"];

fn class_of(kind: Kind) -> usize {
    match kind {
        Kind::Bind | Kind::Srch | Kind::Mod | Kind::Add | Kind::Del | Kind::Modrdn | Kind::Cmp
        | Kind::Ext | Kind::Unprocessed => 0, // requests that get a RESULT
        Kind::Result => 1,
        Kind::Abandon | Kind::Unbind => 2, // operations that never get a RESULT
        _ => 3,
    }
}

pub struct Tokenized {
    /// Events of each class (`CLASS_NAMES`), in line order, with the id columns and
    /// every other column that has a value in that class.
    pub events: [RecordBatch; 4],
    pub rejects: RecordBatch,
    pub counts: Counts,
    /// Bytes after the last newline of a block that is not final (the next block's start).
    pub carry_from: usize,
    /// Per kind: events, and events the strict path handled.
    pub kind_events: [u64; KIND_COUNT],
    pub kind_strict: [u64; KIND_COUNT],
    /// Fields of events that no column reads (a newer server's), by name: events are
    /// kept, and the summary names these (`unknown_fields`).
    pub unknown_fields: Vec<(String, i64)>,
    /// The UTC offsets the events' timestamps were written with: (offset as logged,
    /// first and last UTC ns written with it), a run of events each, in time order. A
    /// server's offset changes at daylight-saving time; what an operation's local time
    /// was is read from these (`dsaccess trace`).
    pub utc_offsets: Vec<(String, i64, i64)>,
}

/// The runs of one UTC offset among the events of all classes (`Tokenized::utc_offsets`):
/// each class's runs in line order (`Columns::offset_run`), then in time order, touching
/// runs of one offset one.
fn utc_offsets(classes: &[Columns; 4]) -> Vec<(String, i64, i64)> {
    let mut runs: Vec<(String, i64, i64)> = classes.iter().flat_map(|c| c.offsets.iter())
        .map(|(z, first, last)| (String::from_utf8_lossy(z).into_owned(), *first, *last))
        .collect();
    runs.sort_by_key(|r| (r.1, r.2));
    let mut out: Vec<(String, i64, i64)> = Vec::new();
    for run in runs {
        match out.last_mut() {
            Some(last) if last.0 == run.0 => last.2 = last.2.max(run.2),
            _ => out.push(run),
        }
    }
    out
}

const UNKNOWN_NAMES: usize = 64;
const OTHER: &str = "(other)";

/// Tokenize one block.
pub fn tokenize(data: &[u8], opts: &Options) -> Tokenized {
    tokenize_lines(data, opts, Builder::with_capacity(data.len()))
}

fn tokenize_lines(data: &[u8], opts: &Options, mut t: Builder) -> Tokenized {
    // one check of the whole block; only a block with invalid UTF-8 (client-supplied
    // bytes) decodes line by line, lossily
    let whole = simdutf8::basic::from_utf8(data).ok();
    let mut start = 0usize;
    let mut index = 0i64;
    while start < data.len() {
        let (end, complete) = match memchr::memchr(b'\n', &data[start..]) {
            Some(n) => (start + n + 1, true),
            None if opts.final_block => (data.len(), false),
            None => break,
        };
        let text = match whole {
            Some(w) => Cow::Borrowed(&w[start..end]),
            None => String::from_utf8_lossy(&data[start..end]),
        };
        t.line(&text, opts.first_line + index, complete, opts.strict);
        index += 1;
        start = end;
    }
    t.finish(start)
}

/// Rejected lines: each its number, its text (cut at `REJECT_TEXT_LIMIT`) and why.
#[derive(Default)]
pub(crate) struct Rejects {
    line: I64Col,
    text: StrCol,
    reason: StrCol,
    pub(crate) rows: usize,
}

impl Rejects {
    pub(crate) fn push(&mut self, number: i64, text: &str, reason: &str) {
        let row = self.rows;
        self.rows += 1;
        self.line.set(row, number);
        self.text.set(row, cut(text.trim_end_matches(['\r', '\n']), REJECT_TEXT_LIMIT));
        self.reason.set(row, reason);
    }

    /// The `line`, `text`, `reason` table.
    pub(crate) fn finish(self) -> RecordBatch {
        let m = self.rows;
        batch(vec![("line", self.line.finish(m)), ("text", self.text.finish(m)),
                   ("reason", self.reason.finish(m))])
    }
}

#[derive(Default)]
pub(crate) struct Builder {
    classes: [Columns; 4],
    stamps: StampCache,
    rejects: Rejects,
    pub(crate) counts: Counts,
    kind_events: [u64; KIND_COUNT],
    kind_strict: [u64; KIND_COUNT],
    outliers: Outliers<Dropped>,
    unknown_fields: BTreeMap<String, i64>,
    /// lines a parse task routed (`route`): their times were judged there, in file order
    pub(crate) routed: bool,
}

/// A line whose time is more than this from the lines on both sides of it is a fault
/// (a clock or a disk's), not a time: one line dated 2200 in a 2026 log would stretch
/// every time series of the run over two centuries (a report of 50 MB).
const OUTLIER_NS: i64 = 86_400 * 1_000_000_000;

/// Finds the events whose time is far from both their neighbours' (`OUTLIER_NS`), in
/// line order: a jump is a candidate until the next event says whether it came back.
/// Two or more such lines in a row are a jump of the clock, and are kept.
///
/// A block's first and last events have one neighbour in it (the other is in the block
/// before or after, a task of its own): such an event is an outlier when it is far from
/// its neighbour and that neighbour is close to its own (two against one). A partition
/// edge put a line dated 2200 first in its block, where it stretched every series.
pub(crate) struct Outliers<T> {
    last_ts: Option<i64>,
    pending: Option<Outlier<T>>,
    found: Vec<Outlier<T>>,
    /// Events seen in the block, and its first while the second is far from it.
    seen: u64,
    first: Option<Outlier<T>>,
}

impl<T> Default for Outliers<T> {
    fn default() -> Self {
        Outliers { last_ts: None, pending: None, found: Vec::new(), seen: 0, first: None }
    }
}

/// An event judged far from its neighbours, and what its finder needs to drop it (made
/// only for events whose time jumped).
pub(crate) struct Outlier<T> {
    ts: i64,
    before: i64,
    pub(crate) what: T,
}

impl<T> Outliers<T> {
    fn far(a: i64, b: i64) -> bool {
        a.abs_diff(b) > OUTLIER_NS as u64
    }

    /// The next event, in line order (`what` is called only when its time jumped).
    #[inline(always)]
    pub(crate) fn event(&mut self, ts: i64, what: impl FnOnce() -> T) {
        self.seen += 1;
        match self.last_ts {
            // the usual case: close to the line before, which was no jump
            Some(b) if self.pending.is_none() && !Self::far(ts, b) => self.last_ts = Some(ts),
            _ => self.judge(ts, what()),
        }
    }

    #[inline(never)]
    fn judge(&mut self, ts: i64, what: T) {
        let mut before = self.last_ts;
        if before.is_none() {
            // the block's first event: held until the next two say whether it is the odd one
            self.first = Some(Outlier { ts, before: ts, what });
            self.last_ts = Some(ts);
            return;
        }
        if let Some(c) = self.pending.take() {
            if Self::far(c.ts, ts) && (c.ts > c.before) == (c.ts > ts) {
                before = Some(c.before);
                self.found.push(c);
            } else if self.seen == 3 && !Self::far(c.ts, ts) {
                // the second and third agree, and the first was far from the second
                self.found.extend(self.first.take());
            }
        }
        if let Some(b) = before.filter(|b| Self::far(ts, *b)) {
            self.pending = Some(Outlier { ts, before: b, what });
        }
        self.last_ts = Some(ts);
    }

    /// The block's end: a last event far from the one before it, which agreed with its
    /// own before, is an outlier too. The outliers found, in no particular order.
    pub(crate) fn close(mut self) -> Vec<Outlier<T>> {
        if self.seen >= 3 {
            self.found.extend(self.pending.take());
        }
        self.found
    }
}

/// What the tokenizer needs of an outlier to make it a reject: its row in its class.
struct Dropped {
    class: usize,
    row: usize,
    kind: Kind,
    number: i64,
    text: String,
}

/// The columns of one event class.
struct Columns {
    rows: usize,
    line: I64Col,
    ts: I64Col,
    tz: FixedStrCol<5>,
    /// the runs of one UTC offset, in line order: (offset, first and last time)
    offsets: Vec<([u8; 5], i64, i64)>,
    kind: NameCol,
    conn: I64Col,
    internal: BoolCol,
    op: I64Col,
    op_internal: I64Col,
    op_nested: I64Col,
    strs: [StrCol; STRING_FIELDS.len()],
    ints: [I64Col; INT_FIELDS.len()],
    times: [F64Col; TIME_FIELDS.len()],
    ssl: BoolCol,
    truncated: BoolCol,
}

/// Event columns of each type, in `schema.EVENT_SCHEMA` order within the type.
// (`attrs_all` and `ssl` are no columns: they fold into `attrs` and the boolean `ssl`)
pub(crate) const STRING_FIELDS: [F; 24] = [
    F::ClientIp, F::ServerIp, F::CloseCode, F::CloseReason, F::TlsVersion, F::Dn, F::Method,
    F::Mech, F::Base, F::Filter, F::Attrs, F::Options, F::Authzid, F::Newrdn, F::Newsuperior,
    F::Attr, F::Oid, F::Name, F::Targetop, F::Notes, F::Details, F::Csn, F::Sid, F::Text,
];
pub(crate) const INT_FIELDS: [F; 12] =
    [F::Fd, F::Version, F::Scope, F::Msgid, F::Err, F::Tag, F::Nentries, F::PrIdx, F::PrCookie,
     F::Wbusy, F::Wmax, F::Wqdepth];
pub(crate) const TIME_FIELDS: [F; 5] = [F::Wqtime, F::Wtime, F::Optime, F::Writetime, F::Etime];

/// The Arrow type of a payload column of the events, by name (None: no such column), as
/// the shuffle keeps it (`shuffle::class_schemas`).
pub fn column_type(name: &str) -> Option<arrow_schema::DataType> {
    use arrow_schema::DataType;
    let among = |fields: &[F]| fields.iter().any(|f| crate::fields::NAMES[*f as usize] == name);
    Some(if among(&STRING_FIELDS) {
        DataType::LargeUtf8
    } else if among(&INT_FIELDS) {
        DataType::Int64
    } else if among(&TIME_FIELDS) {
        DataType::Float64
    } else if matches!(name, "ssl" | "truncated") {
        DataType::Boolean
    } else {
        return None;
    })
}

/// Which of the columns of `STRING_FIELDS`, `INT_FIELDS` and `TIME_FIELDS` a kind can
/// fill (its general pattern's fields), as (column, field): a line visits only those,
/// not all 38 (visiting all of them was a tenth of the tokenizer's instructions).
struct Layout {
    strs: Vec<(usize, F)>,
    ints: Vec<(usize, F)>,
    times: Vec<(usize, F)>,
}

fn layouts() -> &'static [Layout] {
    static LAYOUTS: std::sync::OnceLock<Vec<Layout>> = std::sync::OnceLock::new();
    LAYOUTS.get_or_init(|| {
        crate::fields::patterns().kinds.iter().map(|p| {
            // `attrs=ALL` fills the attrs column too
            let has = |f: &F| {
                p.fields.contains(f) || (*f == F::Attrs && p.fields.contains(&F::AttrsAll))
            };
            let of = |columns: &[F]| -> Vec<(usize, F)> {
                columns.iter().copied().enumerate().filter(|(_, f)| has(f)).collect()
            };
            Layout { strs: of(&STRING_FIELDS), ints: of(&INT_FIELDS), times: of(&TIME_FIELDS) }
        }).collect()
    })
}

/// The kinds whose free text keeps no trailing white space.
fn strips_text(kind: Kind) -> bool {
    matches!(kind, Kind::Vlv | Kind::Sort | Kind::Stat | Kind::Tls | Kind::Referral | Kind::ExtInfo)
}

/// One event of a JSON log (`json.rs`): its values, already typed and checked, by the
/// positions of `STRING_FIELDS`, `INT_FIELDS` and `TIME_FIELDS`.
#[derive(Default)]
pub(crate) struct Event {
    pub ts: i64,
    pub tz: String,
    pub conn: Option<i64>,
    pub internal: bool,
    pub op: Option<i64>,
    pub op_internal: Option<i64>,
    pub op_nested: Option<i64>,
    pub strs: [Option<String>; STRING_FIELDS.len()],
    pub ints: [Option<i64>; INT_FIELDS.len()],
    pub times: [Option<f64>; TIME_FIELDS.len()],
    pub ssl: Option<bool>,
}

impl Builder {
    /// Room for the columns of each class, from the block's size: lines of ~130 bytes,
    /// up to half of them requests and half results (a RESULT answers each request;
    /// the 8 MB sample has 38% and 40%). Room a column does not fill is address space
    /// only, never written; too little costs a copy of the column.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        let rows = bytes / 128 + 16;
        Builder {
            classes: [rows / 2, rows / 2, rows / 8, rows / 4].map(Columns::with_capacity),
            ..Builder::default()
        }
    }

    pub(crate) fn line(&mut self, text: &str, number: i64, complete: bool, use_strict: bool) {
        self.counts.total += 1;
        if !complete {
            return self.reject(number, text, Cow::Borrowed(
                "truncated last line: no newline (file being written or cut)"));
        }
        let ids = match parse_head_cached(text, &mut self.stamps) {
            Head::Event(ids) => ids,
            Head::Bad(reason) => return self.reject(number, text, Cow::Borrowed(reason)),
            Head::NotEvent => {
                let stripped = text.trim_end_matches(['\r', '\n']);
                if stripped.trim().is_empty() {
                    self.counts.blank += 1;
                } else if stripped.starts_with('\t') {
                    self.counts.header += 1; // the title block (§1)
                } else {
                    self.reject(number, text, Cow::Borrowed(
                        "not an access-log event: expected '[timestamp] conn=N ...'"));
                }
                return;
            }
        };
        let body = &text[ids.body_at..];
        let Some(kind) = kind_of(body) else {
            return self.reject(number, text, word_reason("unknown event keyword", body));
        };
        let mut fields: Fields<'_> = [None; FIELD_COUNT];
        let Some(from_strict) = read_fields(kind, body, use_strict, &mut fields) else {
            let what = format!("malformed {} line", kind.name());
            return self.reject(number, text, word_reason(&what, body));
        };
        if !from_strict && kind == Kind::Result {
            // (a RESULT the strict path took has only the keys it knows)
            for key in unknown_result_keys(body) {
                self.unknown_field(key);
            }
        }
        let mut values = Typed::default();
        match typed(kind, &fields, &mut values) {
            Ok(()) => {
                self.counts.parsed += 1;
                let class = class_of(kind);
                self.classes[class].event(number, text, &ids, kind, &fields, &values);
                if !self.routed {
                    let row = self.classes[class].rows - 1;
                    self.outliers.event(ids.ts, || Dropped { class, row, kind, number,
                                                             text: text.to_string() });
                }
                self.kind_events[kind as usize] += 1;
                self.kind_strict[kind as usize] += u64::from(from_strict);
            }
            Err(reason) => self.reject(number, text, Cow::Owned(reason)),
        }
    }

    /// A JSON log's event, on the line where its object starts.
    pub(crate) fn json_event(&mut self, number: i64, kind: Kind, event: &Event) {
        self.classes[class_of(kind)].json_event(number, kind, event);
        self.kind_events[kind as usize] += 1;
    }

    /// A field no column reads, on a line that is still an event (`UNKNOWN_NAMES` at
    /// most, so that a hostile log cannot grow the map: the rest count under `OTHER`).
    pub(crate) fn unknown_field(&mut self, name: &str) {
        let name = cut(name, 64);
        let name = if self.unknown_fields.len() < UNKNOWN_NAMES
            || self.unknown_fields.contains_key(name) { name } else { OTHER };
        *self.unknown_fields.entry(name.to_owned()).or_default() += 1;
    }

    pub(crate) fn reject(&mut self, number: i64, text: &str, reason: Cow<'_, str>) {
        self.counts.rejected += 1;
        self.rejects.push(number, text, &reason);
    }

    pub(crate) fn finish(mut self, carry_from: usize) -> Tokenized {
        let outliers: Vec<Dropped> = std::mem::take(&mut self.outliers).close().into_iter()
            .map(|o| o.what).collect();
        for o in &outliers {
            self.counts.parsed -= 1;
            self.kind_events[o.kind as usize] -= 1;
            self.reject(o.number, &o.text, Cow::Borrowed(
                "timestamp more than a day from the lines before and after it (a clock or disk \
                 fault)"));
        }
        let utc_offsets = utc_offsets(&self.classes);
        let mut events = self.classes.map(Columns::finish);
        for (class, table) in events.iter_mut().enumerate() {
            if outliers.iter().any(|o| o.class == class) {
                // a mask, not a search per row: a hostile log can make half its lines outliers
                let mut keep = vec![true; table.num_rows()];
                for o in outliers.iter().filter(|o| o.class == class) {
                    keep[o.row] = false;
                }
                let keep = arrow_array::BooleanArray::from(keep);
                *table = arrow_select::filter::filter_record_batch(table, &keep)
                    .expect("a mask of the table's length");
            }
        }
        Tokenized {
            events,
            rejects: self.rejects.finish(),
            counts: self.counts,
            carry_from,
            kind_events: self.kind_events,
            kind_strict: self.kind_strict,
            unknown_fields: self.unknown_fields.into_iter().collect(),
            utc_offsets,
        }
    }
}

impl Default for Columns {
    fn default() -> Self {
        Columns::with_capacity(0)
    }
}

impl Columns {
    fn with_capacity(rows: usize) -> Self {
        let num = || I64Col::expecting(rows);
        let str = || StrCol::expecting(rows);
        Columns {
            rows: 0,
            line: num(),
            ts: num(),
            tz: FixedStrCol::expecting(rows),
            offsets: Vec::new(),
            kind: NameCol::expecting(rows, &KIND_NAMES),
            conn: num(),
            internal: BoolCol::expecting(rows),
            op: num(),
            op_internal: num(),
            op_nested: num(),
            strs: std::array::from_fn(|_| str()),
            ints: std::array::from_fn(|_| num()),
            times: std::array::from_fn(|_| F64Col::expecting(rows)),
            ssl: BoolCol::expecting(rows),
            truncated: BoolCol::expecting(rows),
        }
    }

    /// An event's offset: its run goes on, or a new run begins (a compare a line; the
    /// first and last times are those of the run's first and last lines).
    #[inline(always)]
    fn offset_run(&mut self, tz: &[u8; 5], ts: i64) {
        match self.offsets.last_mut() {
            Some((z, _, last)) if z == tz => *last = ts,
            _ => self.offsets.push((*tz, ts, ts)),
        }
    }

    fn event(&mut self, number: i64, text: &str, ids: &Ids, kind: Kind, fields: &Fields<'_>,
             values: &Typed) {
        let row = self.rows;
        self.rows += 1;
        self.line.set(row, number);
        self.ts.set(row, ids.ts);
        let tz = text.as_bytes()[ids.tz_at..ids.tz_at + 5].try_into().expect("five bytes");
        self.tz.push(tz);
        self.offset_run(tz, ids.ts);
        self.kind.push(kind as usize);
        if let Some(c) = ids.conn {
            self.conn.set(row, c);
        }
        self.internal.set(row, ids.internal);
        if let Some(o) = ids.op {
            self.op.set(row, o);
        }
        if let (Some(i), Some(n)) = (ids.op_internal, ids.op_nested) {
            self.op_internal.set(row, i);
            self.op_nested.set(row, n);
        }
        let layout = &layouts()[kind as usize];
        for &(i, f) in &layout.strs {
            let value = match (f, fields[f as usize]) {
                (F::Attrs, None) => fields[F::AttrsAll as usize],
                (F::Text, Some(t)) if strips_text(kind) => Some(t.trim_end()),
                (_, v) => v,
            };
            if let Some(v) = value {
                self.strs[i].set(row, v);
            }
        }
        for &(i, _) in &layout.ints {
            if let Some(v) = values.ints[i] {
                self.ints[i].set(row, v);
            }
        }
        for &(i, _) in &layout.times {
            if let Some(v) = values.times[i] {
                self.times[i].set(row, v);
            }
        }
        if kind == Kind::Connect {
            self.ssl.set(row, fields[F::Ssl as usize].is_some());
        }
        let long = text.len() >= TRUNCATION_LIMIT;
        let end = text.strip_suffix('\n').unwrap_or(text);
        let end = end.strip_suffix('\r').unwrap_or(end);
        self.truncated.set(row, long && end.ends_with("..."));
    }

    fn json_event(&mut self, number: i64, kind: Kind, e: &Event) {
        let row = self.rows;
        self.rows += 1;
        self.line.set(row, number);
        self.ts.set(row, e.ts);
        let tz = e.tz.as_bytes().try_into().expect("json checks the offset is five bytes");
        self.tz.push(tz);
        self.offset_run(tz, e.ts);
        self.kind.push(kind as usize);
        self.internal.set(row, e.internal);
        for (col, value) in [(&mut self.conn, e.conn), (&mut self.op, e.op),
                             (&mut self.op_internal, e.op_internal),
                             (&mut self.op_nested, e.op_nested)] {
            if let Some(v) = value {
                col.set(row, v);
            }
        }
        for (col, value) in self.strs.iter_mut().zip(&e.strs) {
            if let Some(v) = value {
                col.set(row, v);
            }
        }
        for (col, value) in self.ints.iter_mut().zip(&e.ints) {
            if let Some(v) = value {
                col.set(row, *v);
            }
        }
        for (col, value) in self.times.iter_mut().zip(&e.times) {
            if let Some(v) = value {
                col.set(row, *v);
            }
        }
        if let Some(ssl) = e.ssl {
            self.ssl.set(row, ssl);
        }
        self.truncated.set(row, false);
    }

    /// The id columns, and the others that have a value in this class.
    fn finish(self) -> RecordBatch {
        let n = self.rows;
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            ("line", self.line.finish(n)),
            ("ts", self.ts.finish(n)),
            ("tz", self.tz.finish(n)),
            ("kind", self.kind.finish(n)),
            ("conn", self.conn.finish(n)),
            ("internal", self.internal.finish(n)),
            ("op", self.op.finish(n)),
            ("op_internal", self.op_internal.finish(n)),
            ("op_nested", self.op_nested.finish(n)),
        ];
        // a column never set is left out before it is finished (padding it to every
        // row, then dropping it, was 3% of the tokenizer's instructions)
        let name_of = |f: &F| crate::fields::NAMES[*f as usize];
        for (name, col) in [("ssl", self.ssl), ("truncated", self.truncated)] {
            if col.touched() {
                columns.push((name, col.finish(n)));
            }
        }
        for (f, col) in STRING_FIELDS.iter().zip(self.strs).filter(|(_, c)| c.touched()) {
            columns.push((name_of(f), col.finish(n)));
        }
        for (f, col) in INT_FIELDS.iter().zip(self.ints).filter(|(_, c)| c.touched()) {
            columns.push((name_of(f), col.finish(n)));
        }
        for (f, col) in TIME_FIELDS.iter().zip(self.times).filter(|(_, c)| c.touched()) {
            columns.push((name_of(f), col.finish(n)));
        }
        batch(columns)
    }
}

/// Numbers of a body's fields into `out` (all None on entry; filled in place, as a
/// returned value it was copied twice), or why one does not fit.
fn typed(kind: Kind, fields: &Fields<'_>, out: &mut Typed) -> Result<(), String> {
    let layout = &layouts()[kind as usize];
    for &(i, f) in &layout.ints {
        if let Some(v) = fields[f as usize] {
            out.ints[i] = Some(integer(v).map_err(|_| {
                format!("value out of range in {} line: {}={}", kind.name(),
                        crate::fields::NAMES[f as usize], cut(v, 40))
            })?);
        }
    }
    for &(i, f) in &layout.times {
        if let Some(v) = fields[f as usize] {
            out.times[i] = Some(seconds(v).ok_or_else(|| {
                format!("timing value not seconds from 0 to {MAX_SECONDS:e} in {} line: {}={}",
                        kind.name(), crate::fields::NAMES[f as usize], cut(v, 40))
            })?);
        }
    }
    Ok(())
}


#[derive(Default)]
struct Typed {
    ints: [Option<i64>; INT_FIELDS.len()],
    times: [Option<f64>; TIME_FIELDS.len()],
}

/// An integer field's value: up to 18 plain digits (every id and count of a usual line)
/// in one short loop, anything else (a sign, more digits) by `str::parse`.
fn integer(v: &str) -> Result<i64, std::num::ParseIntError> {
    let b = v.as_bytes();
    if !b.is_empty() && b.len() <= 18 {
        let mut n = 0i64;
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return v.parse();
            }
            n = n * 10 + i64::from(d);
        }
        return Ok(n);
    }
    v.parse()
}

/// The first `n` characters.
fn cut(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// "WHAT: WORD", WORD being the body's first 40 non-space characters.
fn word_reason(what: &str, body: &str) -> Cow<'static, str> {
    let word: String = body.chars().take_while(|c| !c.is_whitespace()).take(40).collect();
    Cow::Owned(format!("{what}: {word}"))
}

/// Seconds of a timing value; 1.4.0–1.4.2 (and ABANDON always) print a zero then nine
/// digits, ten in all: the last nine are the nanoseconds (389ds-access-log.md §7.3).
pub fn seconds(value: &str) -> Option<f64> {
    // the usual value, digits around one dot and at most 16 digits, in one pass (this
    // runs for every timing of every RESULT: finding the dot first, then reading each
    // side, cost a fifth more); anything else is read by `any_seconds`
    let b = value.as_bytes();
    if b.len() <= 17 {
        let (mut m, mut dot) = (0u64, usize::MAX);
        let mut clean = true;
        for (i, &c) in b.iter().enumerate() {
            let d = c.wrapping_sub(b'0');
            if d <= 9 {
                m = m * 10 + u64::from(d);
            } else if c == b'.' && dot == usize::MAX {
                dot = i;
            } else {
                clean = false;
                break;
            }
        }
        if clean {
            let (whole, mut frac) =
                if dot == usize::MAX { (b.len(), 0) } else { (dot, b.len() - dot - 1) };
            if frac == 10 {
                // the first of ten digits is not a tenth (see `any_seconds`)
                m = m / TENS[10] * TENS[9] + m % TENS[9];
                frac = 9;
            }
            if whole + frac <= 15 && whole + frac > 0 {
                let v = m as f64 / POW10[frac];
                return (v <= MAX_SECONDS).then_some(v);
            }
        }
    }
    any_seconds(value)
}

/// `seconds` of any value: the usual ones, and those of more digits, signs, exponents.
fn any_seconds(value: &str) -> Option<f64> {
    // bytes, not `split_once` and iterator folds: the generic string searches cost four
    // times the digits' own work
    let b = value.as_bytes();
    let (whole, frac) = match b.iter().position(|&c| c == b'.') {
        Some(dot) => (&b[..dot], &b[dot + 1..]),
        None => (b, &b[b.len()..]),
    };
    let ten = frac.len() == 10 && frac[0].is_ascii_digit();
    let frac = if ten { &frac[1..] } else { frac };
    let parsed = match (decimal(whole), decimal(frac)) {
        // Clinger's fast path: an integer under 2^53 over an exact power of ten is one
        // correctly rounded division, the same double a decimal parser gives
        (Some(w), Some(f)) if whole.len() + frac.len() <= 15
            && !(whole.is_empty() && frac.is_empty()) =>
        {
            Some((w * TENS[frac.len()] + f) as f64 / POW10[frac.len()])
        }
        _ if ten && decimal(frac).is_some() => {
            let whole = &value[..whole.len()];
            let frac = &value[value.len() - 9..];
            format!("{whole}.{frac}").parse::<f64>().ok()
        }
        _ => value.parse::<f64>().ok(),
    };
    parsed.filter(|v| v.is_finite() && *v >= 0.0 && *v <= MAX_SECONDS)
}

/// The value of at most 15 ASCII digits (none: 0).
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.len() > 15 {
        return None;
    }
    let mut m = 0u64;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        m = m * 10 + u64::from(d);
    }
    Some(m)
}

const TENS: [u64; 16] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000,
                         100_000_000, 1_000_000_000, 10_000_000_000, 100_000_000_000,
                         1_000_000_000_000, 10_000_000_000_000, 100_000_000_000_000,
                         1_000_000_000_000_000];
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
                          1e13, 1e14, 1e15];

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};

    const T: &str = "[26/Nov/2026:16:22:20.116136841 +0000] ";

    fn run(text: &str, strict: bool) -> Tokenized {
        tokenize(text.as_bytes(), &Options { first_line: 1, final_block: true, strict })
    }

    /// Daylight-saving time ends in New York: 01:59:59 -0400 is followed by 01:00:00
    /// -0500, an hour later in UTC, whatever class each line is.
    #[test]
    fn the_utc_offsets_are_runs_in_time_order() {
        let text = "[01/Nov/2026:01:59:58.000000000 -0400] conn=1 op=0 SRCH base=\"\" scope=0 filter=\"(a=*)\" attrs=ALL\n\
                    [01/Nov/2026:01:59:59.000000000 -0400] conn=1 op=0 RESULT err=0 tag=101 nentries=0 etime=0.1\n\
                    [01/Nov/2026:01:00:00.000000000 -0500] conn=1 op=1 SRCH base=\"\" scope=0 filter=\"(a=*)\" attrs=ALL\n\
                    [01/Nov/2026:01:00:01.000000000 -0500] conn=1 op=1 RESULT err=0 tag=101 nentries=0 etime=0.1\n";
        let t = run(text, true);
        let utc = |h: i64, m: i64, s: i64| (1_793_491_200 + h * 3600 + m * 60 + s) * 1_000_000_000;
        let want = vec![("-0400".to_string(), utc(5, 59, 58), utc(5, 59, 59)),
                        ("-0500".to_string(), utc(6, 0, 0), utc(6, 0, 1))];
        assert_eq!(t.utc_offsets, want);
        // the JSON log's local_time (accesslog.c), the same instants
        let json: String = [("01:59:58", "-0400", "SEARCH"), ("01:59:59", "-0400", "RESULT"),
                            ("01:00:00", "-0500", "SEARCH"), ("01:00:01", "-0500", "RESULT")]
            .iter().enumerate().map(|(i, (clock, tz, what))| format!(
                "{{\"local_time\": \"2026-11-01T{clock}.000000000 {tz}\", \"operation\": \"{what}\", \
                 \"key\": \"1-1\", \"conn_id\": 1, \"op_id\": {}, \"base_dn\": \"\", \"scope\": 0, \
                 \"filter\": \"(a=*)\", \"tag\": 101, \"err\": 0, \"nentries\": 0, \"etime\": \"0.1\"}}\n",
                i / 2)).collect();
        assert_eq!(crate::json::tokenize_json(json.as_bytes(), 1).utc_offsets, want);
    }

    #[test]
    fn a_line_far_in_time_from_both_neighbours_is_a_reject_a_jump_is_not() {
        let at = |stamp: &str, rest: &str| format!("[{stamp} +0000] conn=1 {rest}\n");
        let text = [
            at("26/Nov/2026:16:00:00", "op=0 BIND dn=\"cn=x\" method=128 version=3"),
            at("26/Nov/2026:16:00:01", "op=0 RESULT err=0 tag=97 nentries=0 etime=0.1"),
            at("26/Nov/2200:16:00:02", "op=1 UNBIND"), // one line two centuries out
            at("26/Nov/2026:16:00:03", "op=2 UNBIND"),
            at("29/Nov/2026:16:00:04", "op=3 UNBIND"), // the clock jumps three days: kept
            at("29/Nov/2026:16:00:05", "op=4 UNBIND"),
            // the last event: its one neighbour agrees with its own (a partition's edge
            // may cut any line's other neighbour off)
            at("01/Jan/1970:00:00:00", "op=5 UNBIND"),
        ].concat();
        let t = run(&text, true);
        assert_eq!(t.counts, Counts { total: 7, parsed: 5, rejected: 2, header: 0, blank: 0 });
        let reasons = t.rejects.column_by_name("reason").unwrap().as_string::<i64>();
        assert!(reasons.value(0).starts_with("timestamp more than a day from the lines before"));
        let rejected = |t: &Tokenized| t.rejects.column_by_name("line").unwrap()
            .as_primitive::<arrow_array::types::Int64Type>().values().to_vec();
        assert_eq!(rejected(&t), vec![3, 7]);
        let lone = &t.events[2]; // the UNBINDs: the outliers' rows are gone, in line order
        let lines = lone.column_by_name("line").unwrap()
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(lines.values().to_vec(), vec![4, 5, 6]);
        assert_eq!(t.kind_events[Kind::Unbind as usize], 3);
        // the first event of a block, far from the next two, which agree
        let first = [at("26/Nov/2200:16:00:00", "op=1 UNBIND"), at("26/Nov/2026:16:00:01", "op=2 UNBIND"),
                     at("26/Nov/2026:16:00:02", "op=3 UNBIND")].concat();
        assert_eq!(rejected(&run(&first, true)), vec![1]);
        // two events a century apart: nothing says which is wrong; both kept
        let two = [at("26/Nov/2200:16:00:00", "op=1 UNBIND"), at("26/Nov/2026:16:00:01", "op=2 UNBIND")].concat();
        assert_eq!(rejected(&run(&two, true)), Vec::<i64>::new());
    }

    #[test]
    fn every_line_is_an_event_a_reject_a_header_or_blank() {
        let text = format!(
            "\t389-Directory/2.3.1\n\n{T}conn=1 op=0 BIND dn=\"cn=x\" method=128 version=3\n\
             {T}conn=1 op=0 RESULT err=0 tag=97 nentries=0 wtime=0.1 optime=0.1 etime=0.2 \
             dn=\"cn=x\"\ngarbage\n{T}conn=1 op=1 FROB x\n{T}conn=1 op=2 UNBIND"
        );
        let t = run(&text, true);
        assert_eq!(t.counts, Counts { total: 7, parsed: 2, rejected: 3, header: 1, blank: 1 });
        let reasons = t.rejects.column_by_name("reason").unwrap().as_string::<i64>();
        assert_eq!(reasons.value(0), "not an access-log event: expected '[timestamp] conn=N ...'");
        assert_eq!(reasons.value(1), "unknown event keyword: FROB");
        assert!(reasons.value(2).starts_with("truncated last line"));
        let result = &t.events[1];
        let etime = result.column_by_name("etime").unwrap().as_primitive::<arrow_array::types::Float64Type>();
        assert_eq!(etime.value(0), 0.2);
        assert_eq!(result.column_by_name("dn").unwrap().as_string::<i64>().value(0), "cn=x");
    }

    #[test]
    fn strict_paths_agree_with_the_general_patterns() {
        let bodies = [
            r#"SRCH base="o=a" scope=2 filter="(cn=x)" attrs="cn sn" options=persistent"#,
            r#"RESULT err=0 tag=101 nentries=50 wtime=0.1 optime=0.2 etime=0.3 notes=U,P details="Paged Search" pr_idx=0 pr_cookie=-1"#,
            r#"RESULT err=0 tag=97 nentries=0 wtime=0.1 optime=0.1 etime=0.1 dn="cn=a - b,dc=x""#,
            r#"RESULT err=0 tag=101 nentries=1 wtime=0.1 optime=0.2 etime=0.3 wbusy=3/16 wqdepth=2 notes=A"#,
            "fd=64 Disconnect - A - B - T2", "fd=64 slot=64 SSL connection from ::1 to ::1",
            r#"ABANDON targetop=Simple Paged Results msgid=3 nentries=0 etime=0.0001"#,
            "TLS1.2 client bound as uid=app,dc=x", "VLV 0:9:6:0 7:335 (0) ",
            r#"MODRDN dn="uid=a" newrdn="uid=b" newsuperior="(null)""#,
        ];
        let text: String = bodies.iter().map(|b| format!("{T}conn=5 op=1 {b}\n")).collect();
        let (fast, general) = (run(&text, true), run(&text, false));
        assert_eq!(fast.counts, general.counts);
        assert_eq!(fast.counts.parsed, bodies.len() as i64);
        assert_eq!(fast.events, general.events);
        // all but the RESULT whose dn holds " - ", which the strict path leaves to the
        // general pattern (a key or " - " inside a quoted value is read by the segments)
        assert_eq!(fast.kind_strict.iter().sum::<u64>(), bodies.len() as u64 - 1);
    }

    #[test]
    fn the_worker_pool_and_any_timings_the_newest_servers_write() {
        // result.c:2357-2362 (70dcccaf): " wbusy=%d/%d wqdepth=%d" after the timings, which
        // come in any subset of wqtime wtime optime writetime etime (their fixed order)
        let text = format!(
            "{T}conn=5 op=1 RESULT err=0 tag=101 nentries=1 wtime=0.000100000 optime=0.000200000 etime=0.000300000 wbusy=3/16 wqdepth=2 notes=U\n\
             {T}conn=5 op=2 RESULT err=0 tag=101 nentries=0 wqtime=0.1 wtime=0.2 optime=0.3 writetime=0.4 etime=0.9 wbusy=16/16 wqdepth=7\n\
             {T}conn=5 op=3 RESULT err=0 tag=101 nentries=0 etime=0.5\n\
             {T}conn=5 op=4 RESULT err=0 tag=101 nentries=0\n");
        for strict in [true, false] {
            let t = run(&text, strict);
            assert_eq!((t.counts.parsed, t.counts.rejected), (4, 0));
            let results = &t.events[1];
            let ints = |name: &str| results.column_by_name(name).unwrap()
                .as_primitive::<Int64Type>().iter().collect::<Vec<_>>();
            assert_eq!(ints("wbusy"), vec![Some(3), Some(16), None, None]);
            assert_eq!(ints("wmax"), vec![Some(16), Some(16), None, None]);
            assert_eq!(ints("wqdepth"), vec![Some(2), Some(7), None, None]);
            let etime = results.column_by_name("etime").unwrap().as_primitive::<Float64Type>();
            assert_eq!(etime.iter().collect::<Vec<_>>(), vec![Some(0.0003), Some(0.9), Some(0.5), None]);
            let notes = results.column_by_name("notes").unwrap().as_string::<i64>();
            assert_eq!(notes.value(0), "U");
        }
        // the JSON format's keys (accesslog.c:761-767)
        let json = concat!(
            "{\"local_time\":\"2026-05-30T10:00:00.000000001 +0000\",\"operation\":\"RESULT\",",
            "\"conn_id\":1,\"op_id\":2,\"err\":0,\"tag\":101,\"nentries\":0,",
            "\"etime\":\"0.000100000\",\"wbusy\":5,\"wmax\":16,\"wqdepth\":1}\n");
        let t = crate::json::tokenize_json(json.as_bytes(), 1);
        assert_eq!(t.counts.parsed, 1);
        let results = &t.events[1];
        let int = |name: &str| results.column_by_name(name).unwrap().as_primitive::<Int64Type>().value(0);
        assert_eq!((int("wbusy"), int("wmax"), int("wqdepth")), (5, 16, 1));
    }

    #[test]
    fn a_disconnect_for_a_reset_has_no_close_code_and_is_no_reject() {
        // connection.c:2716 (70dcccaf): "Disconnect - %s - %s", the errno's text, then the
        // NSPR error's, which carries no code when the read failed (PR_Recv, :1510)
        let text = format!(
            "{T}conn=5 op=-1 fd=64 Disconnect - Connection reset by peer - TCP connection reset by peer\n\
             {T}conn=6 op=2 fd=65 Disconnect - Cleanly Closed Connection - U1\n\
             {T}conn=7 op=-1 fd=66 closed - B1\n");
        let t = run(&text, true);
        assert_eq!(t.counts.rejected, 0);
        let close = &t.events[3]; // the connection class
        let col = |name: &str| close.column_by_name(name).unwrap().as_string::<i64>().clone();
        let (codes, reasons) = (col("close_code"), col("close_reason"));
        assert!(arrow_array::Array::is_null(&codes, 0) && !arrow_array::Array::is_null(&codes, 1));
        assert_eq!(reasons.value(0), "Connection reset by peer - TCP connection reset by peer");
        assert_eq!((codes.value(1), reasons.value(1)), ("U1", "Cleanly Closed Connection"));
        assert_eq!((codes.value(2), reasons.value(2)), ("B1", ""));
    }

    /// `seconds` as first written: two passes of checks, then the digits folded.
    fn reference_seconds(value: &str) -> Option<f64> {
        let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let ten = frac.len() == 10 && digits(frac);
        let frac = if ten { &frac[1..] } else { frac };
        let parsed = if digits(whole) && digits(frac) && whole.len() + frac.len() <= 15
            && !(whole.is_empty() && frac.is_empty())
        {
            let m = whole.bytes().chain(frac.bytes()).fold(0u64, |m, b| m * 10 + u64::from(b - b'0'));
            Some(m as f64 / POW10[frac.len()])
        } else if ten {
            format!("{whole}.{frac}").parse::<f64>().ok()
        } else {
            value.parse::<f64>().ok()
        };
        parsed.filter(|v| v.is_finite() && *v >= 0.0 && *v <= MAX_SECONDS)
    }

    #[test]
    fn seconds_agree_with_the_two_pass_reading() {
        let values = [
            "", ".", "0", "5.", ".5", "0.000123456", "0.0001234567", "1.0001234567", "12.3a",
            "0.00012345a7", "a.000123456", "123456789012345", "1234567890123456", "1e3",
            "0.1234567890123", "0000000000000000.1", "1000000000", "1000000000.1", "-1",
            "+1.5", "inf", "NaN", "1.2.3", "9.999999999", "0.0000000001", "10.123456789",
            "12345.1234567891", "1234567.1234567891", "x1.0123456789", " 1", "1_0",
            "123456.1234567891", "1234567.123456789", "99999999999999999", "0.", "00.00",
            "999999999.999999", "1000000000.000001", "0.000000001", "..1", "1..",
        ];
        for v in values {
            let (new, old) = (seconds(v), reference_seconds(v));
            assert_eq!(new.map(f64::to_bits), old.map(f64::to_bits), "{v:?}");
        }
    }

    #[test]
    fn integers_agree_with_str_parse() {
        for v in ["0", "7", "007", "-1", "+5", "", "-", "1a", "999999999999999999",
                  "9223372036854775807", "9223372036854775808", "-9223372036854775808",
                  "12345678901234567890", "١٢", " 1"] {
            assert_eq!(integer(v), v.parse::<i64>(), "{v:?}");
        }
    }

    #[test]
    fn values_that_do_not_fit_are_rejects() {
        let text = format!(
            "{T}conn=1 op=1 RESULT err=0 tag=101 nentries=1 etime=10000000000.0\n\
             {T}conn=1 op=2 RESULT err=99999999999999999999 tag=101 nentries=1 etime=0.1\n"
        );
        let t = run(&text, true);
        assert_eq!((t.counts.parsed, t.counts.rejected), (0, 2));
    }
}
