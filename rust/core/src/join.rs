//! Within one bucket: sessions, request↔RESULT pairing, bind identity, connections.
//!
//! Every connection in a bucket is whole (the shuffle put all its lines here), so
//! everything is local. Order is the server's own writing order, `pos` = (file's
//! rotation order, line number), not the timestamp: lines of different threads can
//! be a few microseconds out of time order, but a file never reorders one
//! connection's lines (389ds-access-log.md §1).
//!
//! - A *session* starts at each `connection from` line, so a connection number
//!   reused after a restart is a new connection. Lines before the first open line
//!   form a session whose start is unknown.
//! - Requests and RESULTs pair by (session, internal, op ids): each RESULT takes the
//!   earliest unpaired request with the same ids logged before it. Client op numbers
//!   are unique in a session; internal ids repeat (`conn=Internal(0) op=0(0)(0)`), and
//!   so pair in the order the file gives them.
//! - The bound identity changes at AUTOBIND, at a TLS `client bound as` line and at
//!   each BIND RESULT: success binds the RESULT's `dn` (else the request's), failure
//!   makes the connection anonymous (RFC 4511 §4.2.1). An empty `dn` on a successful
//!   RESULT logged after the connection's next BIND began (its request earlier in the
//!   file or stamped earlier) is the server's race (it writes the connection's DN as it
//!   logs, and the next BIND has cleared it): the request's DN, when it names one. It
//!   applies to the operations numbered after the BIND: a client sends nothing while a
//!   bind is in progress, but the server may log the next request before the BIND's
//!   RESULT line.
//!
//! The result is structure, not payload: for each operation the rows of its request,
//! RESULT or lone line (ABANDON, UNBIND), its verb, identity, abandon mark and the row
//! of its connection; and the connections table. `operations` gathers the payload.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Int64Builder, LargeStringBuilder, ListBuilder,
                            StringViewBuilder, UInt32Builder};
use arrow_array::{new_null_array, ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::arrow_in::{bools, ints, strs, Bools, ColumnError, Ints, Strs};
use crate::columns::batch;
use crate::fields::{Kind, ALL_KINDS, KIND_NAMES};
use crate::shuffle::inside;
pub use crate::shuffle::{Window, EVERYTHING};

pub const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// pos = file_seq * 2^40 + line: one order across rotated files.
const POS_FILE_SHIFT: i64 = 1 << 40;
/// Stands in for a null connection or op number in keys (as the polars join did).
const UNKNOWN_ID: i64 = -1;

const REQUEST: u8 = 0;
const RESULT: u8 = 1;
const LONE: u8 = 2;
const OTHER: u8 = 3;

/// The multiply-rotate hash of rustc (FxHash): keys here are small integers, which
/// SipHash (the std default, built against flooding) hashes several times slower.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
type FxSet<K> = HashSet<K, BuildHasherDefault<Fx>>;

/// The four event tables of one bucket, as `schema.EVENT_CLASSES` names them.
pub struct Classes<'a> {
    pub request: &'a RecordBatch,
    pub result: &'a RecordBatch,
    pub lone: &'a RecordBatch,
    pub other: &'a RecordBatch,
}

pub struct Joined {
    /// One row per operation, in output order: `request`, `result`, `lone` (rows of
    /// the input tables), `connection` (row of `connections`), `verb`, `bind_dn`,
    /// `abandoned`, `stat_rows` (its STAT lines' rows of `other`; null: none logged).
    pub operations: RecordBatch,
    /// One row per connection (session), ordered by server, conn, opened.
    pub connections: RecordBatch,
    /// Events in the window (the rest were context).
    pub events: usize,
}

/// The columns every class has.
struct Ids<'a> {
    server: Strs<'a>,
    kind: Strs<'a>,
    conn: Ints<'a>,
    ts: Ints<'a>,
    file_seq: Ints<'a>,
    line: Ints<'a>,
    internal: Bools<'a>,
    op: Ints<'a>,
    op_internal: Ints<'a>,
    op_nested: Ints<'a>,
}

impl<'a> Ids<'a> {
    fn read(b: &'a RecordBatch, table: &str) -> Result<Self, ColumnError> {
        Ok(Ids {
            server: strs(b, table, "server")?,
            kind: strs(b, table, "kind")?,
            conn: ints(b, table, "conn")?,
            ts: ints(b, table, "ts")?,
            file_seq: ints(b, table, "file_seq")?,
            line: ints(b, table, "line")?,
            internal: bools(b, table, "internal")?,
            op: ints(b, table, "op")?,
            op_internal: ints(b, table, "op_internal")?,
            op_nested: ints(b, table, "op_nested")?,
        })
    }
}

/// One event, from any class.
#[derive(Clone, Copy)]
struct Ev {
    class: u8,
    row: u32,
    server: u32,
    conn: i64, // UNKNOWN_ID for conn=Internal(0)
    pos: i64,
    ts: i64,
    kind: Kind,
    internal: bool,
    /// before the window: the connection's context, read for identity and client, never
    /// counted (`shuffle::in_window`)
    context: bool,
    op: Option<i64>,
    op_internal: Option<i64>,
    op_nested: Option<i64>,
}

#[derive(Default)]
struct Session<'a> {
    server: u32,
    conn: i64,
    key: i64, // pos of the open line; 0: opened before the files (or the context) begin
    start: Option<i64>, // the open line's time, when it is in the window
    live: bool,         // has an event in the window
    connect: Option<u32>,
    haproxy: Option<u32>,
    close: Option<(i64, u32)>,
    tls: Option<&'a str>,
    starttls: bool,
    binds: i64,
    operations: i64,
    first_seen: i64,
    last_seen: i64,
    /// (change_op, pos, identity): where the bound identity changes.
    changes: Vec<(i64, i64, Option<&'a str>)>,
}

struct Op {
    request: Option<u32>, // event indices
    result: Option<u32>,
    lone: Option<u32>,
    session: u32,
}

fn kind_of(name: Option<&str>, table: &str) -> Result<Kind, ColumnError> {
    let name = name.ok_or_else(|| ColumnError(format!("{table}: null kind")))?;
    Ok(match name {
        "RESULT" => Kind::Result,
        "SRCH" => Kind::Srch,
        "BIND" => Kind::Bind,
        "UNBIND" => Kind::Unbind,
        "CONNECT" => Kind::Connect,
        "CLOSE" => Kind::Close,
        _ => KIND_NAMES
            .iter()
            .position(|k| *k == name)
            .map(|i| ALL_KINDS[i])
            .ok_or_else(|| ColumnError(format!("{table}: unknown kind {name:?}")))?,
    })
}

fn tag_verb(tag: Option<i64>) -> Option<&'static str> {
    Some(match tag? {
        97 => "BIND",
        101 => "SRCH",
        103 => "MOD",
        105 => "ADD",
        107 => "DEL",
        109 => "MODRDN",
        111 => "CMP",
        120 => "EXT",
        _ => return None,
    })
}

/// The payload columns the join reads, which a class has only where a line had a value.
const READ: [(&str, DataType); 11] = [
    ("dn", DataType::LargeUtf8), ("oid", DataType::LargeUtf8), ("err", DataType::Int64),
    ("tag", DataType::Int64), ("targetop", DataType::LargeUtf8),
    ("client_ip", DataType::LargeUtf8), ("server_ip", DataType::LargeUtf8),
    ("tls_version", DataType::LargeUtf8), ("close_code", DataType::LargeUtf8),
    ("ssl", DataType::Boolean), ("fd", DataType::Int64),
];

/// A tokenizer's class table as the shuffle hands it to the join: with `server`,
/// `file_seq` and every column the join reads (null where the class had no value). For
/// tests, fuzzing and the examples; the run's tables come from the shuffle files.
pub fn as_shuffled(b: &RecordBatch, server: &str, file_seq: i32) -> RecordBatch {
    let n = b.num_rows();
    let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = b.columns().to_vec();
    for (name, ty) in READ {
        if b.column_by_name(name).is_none() {
            fields.push(Field::new(name, ty.clone(), true));
            columns.push(new_null_array(&ty, n));
        }
    }
    fields.push(Field::new("server", DataType::Utf8, true));
    columns.push(Arc::new(StringArray::from(vec![server; n])));
    fields.push(Field::new("file_seq", DataType::Int32, true));
    columns.push(Arc::new(Int32Array::from(vec![file_seq; n])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("same row counts")
}

/// Join one bucket's events; those outside `window` are context (connections opened
/// before it, and how they bound): they give sessions their client and identity, and
/// are neither operations nor counted.
pub fn join(c: &Classes<'_>, window: Window) -> Result<Joined, ColumnError> {
    let tables = [("request", c.request), ("result", c.result), ("lone", c.lone),
                  ("other", c.other)];
    let ids: Vec<Ids<'_>> = tables
        .iter()
        .map(|(name, b)| Ids::read(b, name))
        .collect::<Result<_, _>>()?;
    let req_dn = strs(c.request, "request", "dn")?;
    let req_oid = strs(c.request, "request", "oid")?;
    let res_dn = strs(c.result, "result", "dn")?;
    let res_err = ints(c.result, "result", "err")?;
    let res_tag = ints(c.result, "result", "tag")?;
    let targetop = strs(c.lone, "lone", "targetop")?;
    let other_dn = strs(c.other, "other", "dn")?;
    let client_ip = strs(c.other, "other", "client_ip")?;
    let tls_version = strs(c.other, "other", "tls_version")?;

    // every event, with server names as small integers
    let mut servers: Vec<&str> = Vec::new();
    let mut server_ids: FxMap<&str, u32> = FxMap::default();
    let mut evs: Vec<Ev> = Vec::with_capacity(ids.iter().map(|t| t.ts.len()).sum());
    let mut last_server: Option<(&str, u32)> = None;
    for (class, (name, _)) in tables.iter().enumerate() {
        let t = &ids[class];
        for row in 0..t.ts.len() {
            let server = t.server.get(row).ok_or_else(|| ColumnError(format!("{name}: null server")))?;
            let server = match last_server {
                Some((s, id)) if s == server => id, // rows of one server come together
                _ => {
                    let id = *server_ids.entry(server).or_insert_with(|| {
                        servers.push(server);
                        servers.len() as u32 - 1
                    });
                    last_server = Some((server, id));
                    id
                }
            };
            let pos = t.file_seq.get(row).unwrap_or(0) * POS_FILE_SHIFT
                + t.line.get(row).unwrap_or(0);
            let ts = t.ts.get(row).unwrap_or(0);
            evs.push(Ev {
                class: class as u8,
                row: row as u32,
                server,
                conn: t.conn.get(row).unwrap_or(UNKNOWN_ID),
                pos,
                ts,
                kind: kind_of(t.kind.get(row), name)?,
                internal: t.internal.get(row).unwrap_or(false),
                context: !inside(ts, window),
                op: t.op.get(row),
                op_internal: t.op_internal.get(row),
                op_nested: t.op_nested.get(row),
            });
        }
    }
    // the events in writing order, so the passes below read them one after another
    // (an event's index is its place in that order from here on)
    let evs: Vec<Ev> = {
        let unordered = evs; // dropped here, not at the end of the join
        writing_order(&unordered).into_iter().map(|i| unordered[i as usize]).collect()
    };

    // sessions, connection context, identity changes from AUTOBIND and TLS lines
    let mut sessions: Vec<Session<'_>> = Vec::new();
    let mut session_of = vec![0u32; evs.len()];
    let mut last_group: Option<(u32, i64)> = None;
    let mut last_op: Option<Option<i64>> = None; // op of the last client request line
    for (i, &e) in evs.iter().enumerate() {
        let new_group = last_group != Some((e.server, e.conn));
        if new_group || e.kind == Kind::Connect {
            last_group = Some((e.server, e.conn));
            last_op = None;
            let open = e.kind == Kind::Connect;
            sessions.push(Session {
                server: e.server, conn: e.conn, key: if open { e.pos } else { 0 },
                start: (open && !e.context).then_some(e.ts), first_seen: i64::MAX,
                last_seen: i64::MIN, ..Session::default()
            });
        }
        let sid = sessions.len() as u32 - 1;
        session_of[i] = sid;
        let s = sessions.last_mut().expect("a session was opened above");
        if !e.context {
            s.live = true;
            s.first_seen = s.first_seen.min(e.ts);
            s.last_seen = s.last_seen.max(e.ts);
        }
        let row = e.row as usize;
        match (e.class, e.kind) {
            (OTHER, Kind::Connect) => s.connect = s.connect.or(Some(e.row)),
            (OTHER, Kind::Haproxy) if client_ip.get(row).is_some() => {
                s.haproxy = s.haproxy.or(Some(e.row));
            }
            (OTHER, Kind::Close) => s.close = s.close.or(Some((e.ts, e.row))),
            (OTHER, Kind::Tls) => {
                s.tls = s.tls.or(tls_version.get(row));
                if let Some(dn) = other_dn.get(row) {
                    s.changes.push((last_op.flatten().unwrap_or(UNKNOWN_ID), e.pos, Some(dn)));
                }
            }
            (OTHER, Kind::Autobind) => {
                let dn = other_dn.get(row);
                s.changes.push((last_op.flatten().unwrap_or(UNKNOWN_ID), e.pos, dn));
            }
            (REQUEST, kind) if !e.internal => {
                s.operations += i64::from(!e.context);
                s.binds += i64::from(kind == Kind::Bind && !e.context);
                s.starttls |= kind == Kind::Ext && req_oid.get(row) == Some(STARTTLS_OID);
                last_op = Some(e.op);
            }
            (REQUEST, Kind::Ext) => s.starttls |= req_oid.get(row) == Some(STARTTLS_OID),
            (LONE, _) if !e.internal && !e.context => {
                s.operations += 1;
                last_op = Some(e.op);
            }
            _ => {}
        }
    }

    // requests and RESULTs by (session, internal, op ids), in writing order; a key's
    // unpaired requests wait in `pending` (almost always one: client op numbers are
    // unique in a session)
    type Key = (u32, bool, i64, i64, i64);
    struct Waiting {
        first: u32,
        more: Vec<u32>,
    }
    let mut pending: FxMap<Key, Waiting> = FxMap::default();
    let mut ops: Vec<Op> = Vec::with_capacity(evs.len() / 2);
    // STAT lines (other rows) waiting for their RESULT, which the server writes right
    // after them (result.c:2532 and :2553 at 70dcccaf, log_op_stat before the RESULT);
    // then by the RESULT's event
    let mut stats_waiting: FxMap<Key, Vec<u32>> = FxMap::default();
    let mut stats_of: FxMap<u32, Vec<u32>> = FxMap::default();
    for (i, e) in evs.iter().enumerate() {
        let i = i as u32;
        let session = session_of[i as usize];
        let key: Key = (session, e.internal, e.op.unwrap_or(UNKNOWN_ID),
                        e.op_internal.unwrap_or(UNKNOWN_ID), e.op_nested.unwrap_or(UNKNOWN_ID));
        match e.class {
            REQUEST => match pending.get_mut(&key) {
                Some(w) => w.more.push(i),
                None => {
                    pending.insert(key, Waiting { first: i, more: Vec::new() });
                }
            },
            RESULT => {
                // the earliest unpaired request before this RESULT
                let request = match pending.get_mut(&key) {
                    Some(w) if !w.more.is_empty() => {
                        let next = w.more.remove(0);
                        Some(std::mem::replace(&mut w.first, next))
                    }
                    Some(_) => pending.remove(&key).map(|w| w.first),
                    None => None,
                };
                if let Some(stats) = stats_waiting.remove(&key) {
                    stats_of.insert(i, stats);
                }
                ops.push(Op { request, result: Some(i), lone: None, session });
            }
            LONE => ops.push(Op { request: None, result: None, lone: Some(i), session }),
            OTHER if e.kind == Kind::Stat => stats_waiting.entry(key).or_default().push(e.row),
            _ => {}
        }
    }
    for w in pending.into_values() {
        for request in std::iter::once(w.first).chain(w.more) {
            let session = session_of[request as usize];
            ops.push(Op { request: Some(request), result: None, lone: None, session });
        }
    }

    // ABANDON targets: (session, op) of client ABANDONs whose targetop is a number
    let mut targets: FxSet<(u32, i64)> = FxSet::default();
    for op in &ops {
        if let Some(l) = op.lone {
            let e = &evs[l as usize];
            if e.kind == Kind::Abandon && !e.internal {
                if let Some(t) = targetop.get(e.row as usize).and_then(|t| t.parse::<i64>().ok()) {
                    targets.insert((op.session, t));
                }
            }
        }
    }

    // identity changes at BIND RESULTs
    let op_number = |op: &Op| -> Option<i64> {
        op.request.or(op.lone).and_then(|i| evs[i as usize].op)
            .or_else(|| op.result.and_then(|i| evs[i as usize].op))
    };
    let verb_of = |op: &Op| -> Option<&'static str> {
        match op.request.or(op.lone) {
            Some(i) => Some(KIND_NAMES[evs[i as usize].kind as usize]),
            None => op.result.and_then(|i| tag_verb(res_tag.get(evs[i as usize].row as usize))),
        }
    };
    let internal_of = |op: &Op| evs[op.request.or(op.lone).or(op.result).expect("an op has a line") as usize].internal;
    // per session, the (op number, pos, ts) of each client BIND request
    let mut bind_requests: FxMap<u32, Vec<(i64, i64, i64)>> = FxMap::default();
    for op in &ops {
        if let (Some(q), Some("BIND")) = (op.request, verb_of(op)) {
            let e = &evs[q as usize];
            if let (Some(n), false) = (e.op, e.internal) {
                bind_requests.entry(op.session).or_default().push((n, e.pos, e.ts));
            }
        }
    }
    let bound = |op: &Op| -> Option<&str> {
        let at = op.result?;
        let r = evs[at as usize].row as usize;
        if res_err.get(r) != Some(0) {
            return Some("");
        }
        let requested = op.request.and_then(|q| req_dn.get(evs[q as usize].row as usize));
        match res_dn.get(r) {
            // the server writes the RESULT's dn from the connection when it logs the line:
            // logged after the connection's next BIND began (that BIND's request is before
            // it in the file, or stamped earlier: threads' lines can be written out of
            // order), it is that BIND's cleared identity, not the one this BIND established
            // (real 389 DS 2.3 does this)
            Some("") if requested.is_some_and(|d| !d.is_empty()) && {
                let (logged, stamped) = (evs[at as usize].pos, evs[at as usize].ts);
                let later = bind_requests.get(&op.session).map_or(&[][..], Vec::as_slice);
                op_number(op).is_some_and(|n| later.iter()
                    .any(|(m, pos, ts)| *m > n && (*pos < logged || *ts < stamped)))
            } => requested,
            Some(dn) => Some(dn),
            None => requested,
        }
    };
    for op in &ops {
        if let (Some(r), Some(n)) = (op.result, op_number(op)) {
            if verb_of(op) == Some("BIND") && !internal_of(op) {
                let pos = evs[r as usize].pos;
                sessions[op.session as usize].changes.push((n, pos, bound(op)));
            }
        }
    }
    for s in &mut sessions {
        s.changes.sort_by_key(|(op, pos, _)| (*op, *pos));
    }

    // connections: sessions of numbered connections, by server, conn, opened
    let mut conn_order: Vec<u32> = (0..sessions.len() as u32)
        .filter(|s| sessions[*s as usize].conn != UNKNOWN_ID && sessions[*s as usize].live)
        .collect();
    let opened_cmp = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less, // nulls last
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    conn_order.sort_by(|a, b| {
        let (x, y) = (&sessions[*a as usize], &sessions[*b as usize]);
        servers[x.server as usize].cmp(servers[y.server as usize])
            .then(x.conn.cmp(&y.conn))
            .then(opened_cmp(x.start, y.start))
            .then(x.key.cmp(&y.key))
    });
    let mut conn_row = vec![None; sessions.len()];
    for (row, s) in conn_order.iter().enumerate() {
        conn_row[*s as usize] = Some(row as u32);
    }

    // the operations with a line in the window (the context's BINDs only set identities)
    let in_window = |i: Option<u32>| i.is_some_and(|i| !evs[i as usize].context);
    ops.retain(|op| in_window(op.request) || in_window(op.result) || in_window(op.lone));

    // operations in output order: server, conn, session (opened), ts, pos, result pos,
    // nulls last. Sessions are ranked first (sessions of equal rank mix), then each
    // rank's operations are sorted: many small sorts, not one of every operation.
    let mut by_name: Vec<u32> = (0..servers.len() as u32).collect();
    by_name.sort_by_key(|s| servers[*s as usize]);
    let mut server_rank = vec![0u32; servers.len()];
    for (rank, s) in by_name.iter().enumerate() {
        server_rank[*s as usize] = rank as u32;
    }
    let session_rank = ranks(&sessions.iter().map(|s| {
        let conn = (s.conn != UNKNOWN_ID).then_some(s.conn);
        (server_rank[s.server as usize], nulls_last(conn), nulls_last(s.start))
    }).collect::<Vec<_>>());
    let line_of = |op: &Op| op.request.or(op.lone).map(|i| &evs[i as usize]);
    let ops: Vec<&Op> = grouped_sort(
        &ops.iter().map(|op| session_rank[op.session as usize]).collect::<Vec<_>>(),
        |at| {
            let op = &ops[at];
            (nulls_last(line_of(op).map(|e| e.ts)), nulls_last(line_of(op).map(|e| e.pos)),
             nulls_last(op.result.map(|i| evs[i as usize].pos)))
        })
        .into_iter().map(|at| &ops[at as usize]).collect();

    let n = ops.len();
    let mut request = UInt32Builder::with_capacity(n);
    let mut result = UInt32Builder::with_capacity(n);
    let mut lone = UInt32Builder::with_capacity(n);
    let mut connection = UInt32Builder::with_capacity(n);
    // views: what the operations table hands to polars as they are
    let mut verb = StringViewBuilder::with_capacity(n);
    let mut bind_dn = StringViewBuilder::with_capacity(n);
    let mut abandoned = BooleanBuilder::with_capacity(n);
    let mut stat_rows = (!stats_of.is_empty())
        .then(|| ListBuilder::with_capacity(UInt32Builder::new(), n));
    let row_of = |i: Option<u32>| i.map(|i| evs[i as usize].row);
    for op in ops {
        let s = &sessions[op.session as usize];
        request.append_option(row_of(op.request));
        result.append_option(row_of(op.result));
        lone.append_option(row_of(op.lone));
        connection.append_option(conn_row[op.session as usize]);
        let v = verb_of(op);
        verb.append_option(v);
        let identity = if v == Some("BIND") && op.result.is_some() {
            bound(op)
        } else {
            let issued = op_number(op).unwrap_or(UNKNOWN_ID);
            let before = s.changes.partition_point(|(change, _, _)| *change < issued);
            let found = before.checked_sub(1).and_then(|at| s.changes[at].2);
            found.or((s.key != 0).then_some("")) // opened in the window: anonymous
        };
        bind_dn.append_option(identity);
        let target = op_number(op).is_some_and(|o| targets.contains(&(op.session, o)));
        abandoned.append_option(match v {
            Some("ABANDON") => Some(false),
            Some(_) => Some(target),
            None => (!target).then_some(false), // unknown verb: as `target & null`
        });
        if let Some(b) = stat_rows.as_mut() {
            match op.result.and_then(|r| stats_of.get(&r)) {
                Some(rows) => {
                    b.values().append_slice(rows);
                    b.append(true);
                }
                None => b.append_null(),
            }
        }
    }
    let stat_rows: ArrayRef = match stat_rows {
        Some(mut b) => Arc::new(b.finish()),
        None => new_null_array(&DataType::List(Arc::new(Field::new_list_field(
            DataType::UInt32, true))), n),
    };
    let operations = batch(vec![
        ("request", Arc::new(request.finish()) as ArrayRef),
        ("result", Arc::new(result.finish())),
        ("lone", Arc::new(lone.finish())),
        ("connection", Arc::new(connection.finish())),
        ("verb", Arc::new(verb.finish())),
        ("bind_dn", Arc::new(bind_dn.finish())),
        ("abandoned", Arc::new(abandoned.finish())),
        ("stat_rows", stat_rows),
    ]);
    let events = evs.iter().filter(|e| !e.context).count();
    Ok(Joined { operations, connections: connections(&sessions, &conn_order, &servers, c.other)?,
                events })
}

/// Nulls after every value, in a key that sorts as a tuple.
pub(crate) fn nulls_last(v: Option<i64>) -> (u8, i64) {
    v.map_or((1, 0), |v| (0, v))
}

/// Events grouped by (server, conn), each group in the server's writing order (pos).
fn writing_order(evs: &[Ev]) -> Vec<u32> {
    let mut group_of: FxMap<(u32, i64), u32> = FxMap::default();
    let mut keys: Vec<(u32, i64)> = Vec::new();
    let group: Vec<u32> = evs.iter().map(|e| {
        *group_of.entry((e.server, e.conn)).or_insert_with(|| {
            keys.push((e.server, e.conn));
            keys.len() as u32 - 1
        })
    }).collect();
    let rank = ranks(&keys);
    let rank_of: Vec<u32> = group.iter().map(|g| rank[*g as usize]).collect();
    grouped_sort(&rank_of, |i| evs[i].pos)
}

/// Each item's rank among `keys` by value: equal keys share a rank.
fn ranks<K: Ord>(keys: &[K]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..keys.len() as u32).collect();
    order.sort_unstable_by(|a, b| keys[*a as usize].cmp(&keys[*b as usize]));
    let mut rank = vec![0u32; keys.len()];
    let mut next = 0u32;
    for (i, at) in order.iter().enumerate() {
        if i > 0 && keys[order[i - 1] as usize] != keys[*at as usize] {
            next += 1;
        }
        rank[*at as usize] = next;
    }
    rank
}

/// Indices of items ordered by (`group[i]`, `key(i)`, i): a counting sort by group, then
/// a sort of each group's items, which is small where one sort of all would be large.
fn grouped_sort<K: Ord>(group: &[u32], key: impl Fn(usize) -> K) -> Vec<u32> {
    let groups = group.iter().max().map_or(0, |g| *g as usize + 1);
    let mut starts = vec![0usize; groups + 1];
    for g in group {
        starts[*g as usize + 1] += 1;
    }
    for g in 1..starts.len() {
        starts[g] += starts[g - 1];
    }
    let mut next = starts.clone();
    let mut placed: Vec<(K, u32)> = Vec::with_capacity(group.len());
    let mut slots: Vec<u32> = vec![0; group.len()];
    for (i, g) in group.iter().enumerate() {
        slots[next[*g as usize]] = i as u32;
        next[*g as usize] += 1;
    }
    placed.extend(slots.iter().map(|i| (key(*i as usize), *i)));
    for g in 0..groups {
        placed[starts[g]..starts[g + 1]].sort_unstable();
    }
    placed.into_iter().map(|(_, i)| i).collect()
}

fn connections(sessions: &[Session<'_>], order: &[u32], servers: &[&str], other: &RecordBatch)
               -> Result<RecordBatch, ColumnError> {
    let client_ip = strs(other, "other", "client_ip")?;
    let server_ip = strs(other, "other", "server_ip")?;
    let close_code = strs(other, "other", "close_code")?;
    let ssl = bools(other, "other", "ssl")?;
    let fd = ints(other, "other", "fd")?;
    let n = order.len();
    let mut server = LargeStringBuilder::with_capacity(n, n * 8);
    let mut conn = Int64Builder::with_capacity(n);
    let mut opened = Int64Builder::with_capacity(n);
    let mut closed = Int64Builder::with_capacity(n);
    let mut client = LargeStringBuilder::with_capacity(n, n * 12);
    let mut server_addr = LargeStringBuilder::with_capacity(n, n * 12);
    let mut code = LargeStringBuilder::with_capacity(n, n * 2);
    let mut tls = LargeStringBuilder::with_capacity(n, n * 6);
    let mut ldapi = BooleanBuilder::with_capacity(n);
    let mut ssl_col = BooleanBuilder::with_capacity(n);
    let mut starttls = BooleanBuilder::with_capacity(n);
    let mut fd_col = Int64Builder::with_capacity(n);
    let mut binds = Int64Builder::with_capacity(n);
    let mut operations = Int64Builder::with_capacity(n);
    let mut first_seen = Int64Builder::with_capacity(n);
    let mut last_seen = Int64Builder::with_capacity(n);
    for &i in order {
        let s = &sessions[i as usize];
        let connect = s.connect.map(|r| r as usize);
        let connect_ip = connect.and_then(|r| client_ip.get(r));
        let to = connect.and_then(|r| server_ip.get(r));
        server.append_value(servers[s.server as usize]);
        conn.append_value(s.conn);
        opened.append_option(s.start);
        closed.append_option(s.close.map(|(ts, _)| ts));
        // HAProxy: the real client is the address the proxy reported (§4.2)
        client.append_option(s.haproxy.and_then(|r| client_ip.get(r as usize)).or(connect_ip));
        server_addr.append_option(to);
        code.append_option(s.close.and_then(|(_, r)| close_code.get(r as usize)));
        tls.append_option(s.tls);
        ldapi.append_value(connect_ip == Some("local") || to.is_some_and(|t| t.starts_with('/')));
        ssl_col.append_option(connect.and_then(|r| ssl.get(r)));
        starttls.append_value(s.starttls);
        fd_col.append_option(connect.and_then(|r| fd.get(r)));
        binds.append_value(s.binds);
        operations.append_value(s.operations);
        first_seen.append_value(s.first_seen);
        last_seen.append_value(s.last_seen);
    }
    Ok(batch(vec![
        ("server", Arc::new(server.finish()) as ArrayRef),
        ("conn", Arc::new(conn.finish())),
        ("opened", Arc::new(opened.finish())),
        ("closed", Arc::new(closed.finish())),
        ("client_ip", Arc::new(client.finish())),
        ("server_ip", Arc::new(server_addr.finish())),
        ("close_code", Arc::new(code.finish())),
        ("tls", Arc::new(tls.finish())),
        ("ldapi", Arc::new(ldapi.finish())),
        ("ssl", Arc::new(ssl_col.finish())),
        ("starttls", Arc::new(starttls.finish())),
        ("fd", Arc::new(fd_col.finish())),
        ("binds", Arc::new(binds.finish())),
        ("operations", Arc::new(operations.finish())),
        ("first_seen", Arc::new(first_seen.finish())),
        ("last_seen", Arc::new(last_seen.finish())),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::{tokenize, Options};
    use arrow_array::cast::AsArray;
    use arrow_array::Array;

    /// Tokenized classes with the columns the shuffle adds (server, file order, nulls).
    fn classes(text: &str) -> Vec<RecordBatch> {
        let t = tokenize(text.as_bytes(), &Options { first_line: 1, final_block: true, strict: true });
        t.events.iter().map(|b| as_shuffled(b, "s", 0)).collect()
    }

    /// The join of a log, and each operation's (verb, bind_dn) in output order.
    fn identities(text: &str) -> (Joined, Vec<(String, Option<String>)>) {
        identities_in(text, EVERYTHING)
    }

    /// `identities` of the events in `window` (those before it are context).
    fn identities_in(text: &str, window: Window) -> (Joined, Vec<(String, Option<String>)>) {
        let c = classes(text);
        let j = join(&Classes { request: &c[0], result: &c[1], lone: &c[2], other: &c[3] },
                     window).unwrap();
        let verb = j.operations.column_by_name("verb").unwrap().as_string_view();
        let dn = j.operations.column_by_name("bind_dn").unwrap().as_string_view();
        let got = (0..j.operations.num_rows())
            .map(|i| (verb.value(i).to_string(), dn.is_valid(i).then(|| dn.value(i).to_string())))
            .collect();
        (j, got)
    }

    fn pairs(want: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        want.iter().map(|(v, d)| (v.to_string(), d.map(str::to_string))).collect()
    }

    #[test]
    fn context_before_the_window_gives_identity_and_client_and_is_not_counted() {
        let (before, after) = ("[26/Nov/2026:16:00:00 +0000] ", "[26/Nov/2026:17:00:00 +0000] ");
        let text = format!(
            "{before}conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2\n\
             {before}conn=1 op=0 BIND dn=\"uid=a\" method=128 version=3\n\
             {before}conn=1 op=0 RESULT err=0 tag=97 nentries=0 etime=0.1 dn=\"uid=a\"\n\
             {before}conn=2 fd=65 slot=65 connection from 10.0.0.3 to 10.0.0.2\n\
             {before}conn=2 op=0 BIND dn=\"uid=b\" method=128 version=3\n\
             {after}conn=2 op=0 RESULT err=0 tag=97 nentries=0 etime=0.1 dn=\"uid=b\"\n\
             {after}conn=1 op=1 SRCH base=\"dc=x\" scope=2 filter=\"(uid=b)\" attrs=ALL\n\
             {after}conn=1 op=1 RESULT err=0 tag=101 nentries=1 etime=0.1\n\
             {after}conn=2 op=1 SRCH base=\"dc=x\" scope=2 filter=\"(uid=b)\" attrs=ALL\n\
             {after}conn=2 op=1 RESULT err=0 tag=101 nentries=1 etime=0.1\n\
             {before}conn=3 fd=66 slot=66 connection from 10.0.0.4 to 10.0.0.2\n"
        );
        let since = 1_795_712_400_000_000_000; // 26/Nov/2026:17:00:00 UTC
        let (j, got) = identities_in(&text, (Some(since), None));
        // the BIND whose RESULT is in the window is an operation of it, with its request;
        // the one wholly before it only set conn 1's identity
        assert_eq!(got, pairs(&[("SRCH", Some("uid=a")), ("BIND", Some("uid=b")),
                                ("SRCH", Some("uid=b"))]));
        // conn 3 has nothing in the window: no row; 1 and 2 opened before it: no `opened`,
        // their client from the open line, and only the window's operations counted
        let c = &j.connections;
        let col = |name: &str| c.column_by_name(name).unwrap().clone();
        assert_eq!(c.num_rows(), 2);
        assert_eq!(col("opened").null_count(), 2);
        let client = col("client_ip");
        let client = client.as_string::<i64>();
        assert_eq!((client.value(0), client.value(1)), ("10.0.0.1", "10.0.0.3"));
        let count = |name: &str| col(name).as_primitive::<arrow_array::types::Int64Type>()
            .values().to_vec();
        assert_eq!((count("operations"), count("binds")), (vec![1, 1], vec![0, 0]));
        assert_eq!(count("first_seen"), vec![since, since]);
        assert_eq!(j.events, 5); // the lines at 17:00; the six before are context
        // without a window, the same log: every line counts
        let (whole, all) = identities(&text);
        assert_eq!((all.len(), whole.events), (4, 11));
    }

    #[test]
    fn identity_follows_op_numbers_and_restarts_start_new_sessions() {
        let t = "[26/Nov/2026:16:22:20 +0000] ";
        let text = format!(
            "{t}conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2\n\
             {t}conn=1 op=0 BIND dn=\"uid=a\" method=128 version=3\n\
             {t}conn=1 op=1 SRCH base=\"dc=x\" scope=2 filter=\"(uid=b)\" attrs=ALL\n\
             {t}conn=1 op=0 RESULT err=0 tag=97 nentries=0 etime=0.1 dn=\"uid=a\"\n\
             {t}conn=1 op=1 RESULT err=0 tag=101 nentries=1 etime=0.1\n\
             {t}conn=1 op=2 BIND dn=\"uid=c\" method=128 version=3\n\
             {t}conn=1 op=2 RESULT err=49 tag=97 nentries=0 etime=0.1\n\
             {t}conn=1 op=3 SRCH base=\"dc=x\" scope=2 filter=\"(uid=d)\" attrs=ALL\n\
             {t}conn=1 fd=64 slot=64 connection from 10.0.0.9 to 10.0.0.2\n\
             {t}conn=1 op=3 RESULT err=0 tag=101 nentries=0 etime=0.1\n"
        );
        let (j, got) = identities(&text);
        let ops = &j.operations;
        // the search logged before the BIND's RESULT is numbered after it: bound as uid=a;
        // a failed bind makes the connection anonymous; the RESULT after the second open
        // line belongs to a new session and has no request there
        assert_eq!(got, pairs(&[("BIND", Some("uid=a")), ("SRCH", Some("uid=a")), ("BIND", Some("")),
                                ("SRCH", Some("")), ("SRCH", Some(""))]));
        let request = ops.column_by_name("request").unwrap();
        assert_eq!((request.null_count(), ops.column_by_name("result").unwrap().null_count()), (1, 1));
        assert_eq!(j.connections.num_rows(), 2);
    }

    #[test]
    fn an_empty_dn_logged_after_the_next_bind_began_is_the_requests() {
        // as real 389 DS 2.3 logged it (a rebind session): op 0's RESULT comes after op 2's
        // BIND request, with the DN that BIND had cleared; op 2's own RESULT is in time;
        // on conn 124 the next BIND's line is written after the RESULT but stamped before.
        // A successful bind with an empty dn and no later BIND before it stays anonymous
        // (an unauthenticated bind, where the server allows them).
        let t = "[03/Dec/2026:17:57:06.120089649 +0000] ";
        let text = format!(
            "{t}conn=123 fd=65 slot=65 connection from 127.0.0.1 to 127.0.0.1\n\
             {t}conn=123 op=0 BIND dn=\"uid=svc-app,dc=x\" method=128 version=3\n\
             {t}conn=123 op=1 SRCH base=\"dc=x\" scope=2 filter=\"(uid=u49)\" attrs=\"cn\"\n\
             {t}conn=123 op=1 RESULT err=0 tag=101 nentries=1 etime=0.000502638\n\
             {t}conn=123 op=2 BIND dn=\"uid=u49,dc=x\" method=128 version=3\n\
             {t}conn=123 op=0 RESULT err=0 tag=97 nentries=0 etime=0.007069783 dn=\"\"\n\
             {t}conn=123 op=3 SRCH base=\"uid=u49,dc=x\" scope=0 filter=\"(objectClass=*)\" attrs=\"cn\"\n\
             {t}conn=123 op=2 RESULT err=0 tag=97 nentries=0 etime=0.006668816 dn=\"uid=u49,dc=x\"\n\
             {t}conn=123 op=3 RESULT err=0 tag=101 nentries=1 etime=0.000626323\n\
             {t}conn=123 op=4 BIND dn=\"uid=u50,dc=x\" method=128 version=3\n\
             {t}conn=123 op=4 RESULT err=0 tag=97 nentries=0 etime=0.006 dn=\"\"\n\
             {t}conn=123 op=5 SRCH base=\"dc=x\" scope=1 filter=\"(cn=u*)\" attrs=\"cn\"\n\
             {t}conn=123 op=5 RESULT err=0 tag=101 nentries=0 etime=0.0006\n\
             [03/Dec/2026:17:57:07.000000000 +0000] conn=124 op=0 BIND dn=\"uid=u60,dc=x\" method=128 version=3\n\
             [03/Dec/2026:17:57:07.020000000 +0000] conn=124 op=0 RESULT err=0 tag=97 nentries=0 etime=0.02 dn=\"\"\n\
             [03/Dec/2026:17:57:07.010000000 +0000] conn=124 op=1 BIND dn=\"uid=u61,dc=x\" method=128 version=3\n\
             [03/Dec/2026:17:57:07.030000000 +0000] conn=124 op=1 RESULT err=0 tag=97 nentries=0 etime=0.02 dn=\"uid=u61,dc=x\"\n"
        );
        let (_, got) = identities(&text);
        assert_eq!(got, pairs(&[("BIND", Some("uid=svc-app,dc=x")), ("SRCH", Some("uid=svc-app,dc=x")),
                                ("BIND", Some("uid=u49,dc=x")), ("SRCH", Some("uid=u49,dc=x")),
                                ("BIND", Some("")), ("SRCH", Some("")),
                                // op 1's request is written after op 0's RESULT, stamped before
                                ("BIND", Some("uid=u60,dc=x")), ("BIND", Some("uid=u61,dc=x"))]));
    }
}
