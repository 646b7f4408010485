//! A bucket's partial aggregates (ARCHITECTURE.md §3), from its operations and
//! connections, in one pass over each: the rows the run's aggregate tables are merged
//! from (`pipeline/tables/aggregate.py` combines and finalizes them), and the summary's counts.
//!
//! Every partial is keyed as its table is (fingerprints by fingerprint; workloads by
//! server, workload, bind DN, verb; ...), holds sums, counts, minima and maxima, and
//! merges with other buckets' by adding: nanosecond sums are exact integers, so any
//! partitioning gives identical totals, and latencies are histogram rows `(keys...,
//! bucket, count)` of log-spaced buckets (`bucket_of`), whose merged counts give
//! percentiles within 1%. DNs are grouped by their comparison form (`dn::canonical`)
//! and each spelling is counted (`dn_spellings`), so the finished tables show the most
//! frequent one.
//!
//! Which operations count where: fingerprints count every search (internal ones too);
//! workloads, timeseries, load and binds count client operations (internal false); an
//! operation's time is its request's, else its RESULT's (`seen`). A failure is a
//! RESULT whose code is not an outcome (`OK_ERRORS`). A request without its RESULT is
//! `abandoned` when an ABANDON named it, else unmatched; ABANDON has no etime of its own
//! (its line's is the abandoned operation's), so none is counted for it.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ahash::RandomState;
use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch,
                  StringArray, TimestampNanosecondArray, UInt32Array};
use arrow_select::take::take;

use crate::advice::{Advice, Reads, Search};
use crate::arrow_in::{bools, floats, ints, strs, Bools, ColumnError, Floats, Ints, Strs};
use crate::columns::batch;
use crate::dn::canonical;
use crate::filter::fingerprint_form;
use crate::join::nulls_last;

type Map<K, V> = HashMap<K, V, RandomState>;
type Set<K> = HashSet<K, RandomState>;

/// Result codes that are outcomes, not failures: success, compareFalse, compareTrue,
/// referral (the client is sent elsewhere: no fault of the server or the client),
/// saslBindInProgress.
pub const OK_ERRORS: [i64; 5] = [0, 5, 6, 10, 14];
/// The etime bounds metrics.prom exposes as `le`, counted exactly per workloads row (a
/// histogram bucket straddling 5.0 could not say how many values are <= 5.0): the
/// partial's rows `workloads:etime_le` and `workloads:wtime_le` are `(keys..., bucket,
/// count)` as a histogram's, bucket `j` the values in `(PROM_LE[j-1], PROM_LE[j]]` (no
/// row for a bucket of none, nor for values above the last bound), and the finish adds
/// them up into the cumulative `etime_le_<bound>` columns. As 36 columns of every row,
/// they were most of the workloads partial on a fleet of many identities.
pub const PROM_LE: [f64; 18] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// A wait for a worker this long (seconds) or longer counts as waited.
pub const WAITED: f64 = 0.01;
/// The histograms' relative bucket width (`pipeline/tables/histogram.py` reads them back).
pub const GAMMA: f64 = 1.02;
/// The bucket of values at or below `MIN_VALUE` (whole-second logs print `etime=0`).
pub const ZERO_BUCKET: i32 = i32::MIN;
/// The logs' resolution: one nanosecond.
pub const MIN_VALUE: f64 = 1e-9;
/// Distinct bind DNs kept per fingerprint (the count is exact below it).
pub const TOP_LIST_LIMIT: usize = 10_000;
/// Client operations kept in the `slowest` table: the longest etimes, as logconv lists.
pub const SLOWEST: usize = 100;
/// The operations' columns the `slowest` table keeps.
const SLOWEST_COLUMNS: [&str; 22] = [
    "server", "ts", "result_ts", "conn", "op", "verb", "bind_dn", "client_ip", "base", "scope",
    "filter", "fingerprint", "dn", "err", "nentries", "etime", "wtime", "notes", "file", "line",
    "result_file", "result_line"];
/// Verbs whose requests get a RESULT (an unmatched one is counted).
const PAIRED_VERBS: [&str; 9] = ["BIND", "SRCH", "MOD", "ADD", "DEL", "MODRDN", "CMP", "EXT",
                                 "UNPROCESSED"];
/// Verbs the summary counts operations of.
const SUMMARY_VERBS: [&str; 10] = ["BIND", "SRCH", "MOD", "ADD", "DEL", "MODRDN", "CMP", "EXT",
                                   "ABANDON", "UNBIND"];
const MINUTE_NS: i64 = 60_000_000_000;

/// The histogram bucket of a value: `ceil(ln v / ln GAMMA)`, which holds
/// `(GAMMA^(i-1), GAMMA^i]`.
///
/// ```
/// use dsaccess_core::aggregate::{bucket_of, ZERO_BUCKET};
/// assert_eq!(bucket_of(0.0), ZERO_BUCKET);
/// assert_eq!(bucket_of(1.0), 0);
/// assert_eq!(bucket_of(1.02), 1);
/// ```
pub fn bucket_of(value: f64) -> i32 {
    if value <= MIN_VALUE {
        ZERO_BUCKET
    } else {
        (value.ln() / GAMMA.ln()).ceil() as i32
    }
}

/// Exact nanoseconds of a duration in seconds (the `_ns` sums).
fn nanos(seconds: f64) -> i128 {
    (seconds * 1e9).round() as i128
}

/// A bucket's partials: (name, table) pairs as `pipeline/tables/aggregate.py` names them
/// (`"fingerprints"`, `"fingerprints:etime"`, ..., `"dn_spellings"`), and the summary's
/// counts as rows `(server, key, count)`, `key` a dotted path (`"results.by_err.49"`).
pub struct Partials {
    pub tables: Vec<(String, RecordBatch)>,
    pub summary: RecordBatch,
}

/// Strings of one column, numbered in order of first sight (`NONE`: null). The last
/// value is remembered: operations come by connection, so a run of rows repeats it.
struct Names<'a> {
    ids: Map<&'a str, u32>,
    names: Vec<&'a str>,
    last: Option<(&'a str, u32)>,
}

const NONE: u32 = u32::MAX;

impl<'a> Names<'a> {
    fn new() -> Self {
        Names { ids: Map::default(), names: Vec::new(), last: None }
    }

    fn id(&mut self, value: Option<&'a str>) -> u32 {
        let Some(value) = value else { return NONE };
        if let Some((last, id)) = self.last {
            if last == value {
                return id;
            }
        }
        let names = &mut self.names;
        let id = *self.ids.entry(value).or_insert_with(|| {
            names.push(value);
            (names.len() - 1) as u32
        });
        self.last = Some((value, id));
        id
    }

    fn get(&self, id: u32) -> Option<&str> {
        (id != NONE).then(|| self.names[id as usize])
    }
}

/// Values numbered by their comparison form (`form`: a DN's `dn::canonical`, a
/// fingerprint's `filter::fingerprint_form`), each spelling put in its form once and
/// counted.
struct Forms<'a> {
    form: fn(&str) -> String,
    spellings: Names<'a>,
    /// per spelling: its form's id, and how often it was seen
    form_of: Vec<u32>,
    seen: Vec<i64>,
    ids: Map<String, u32>,
    forms: Vec<String>,
}

impl<'a> Forms<'a> {
    fn new(form: fn(&str) -> String) -> Self {
        Forms { form, spellings: Names::new(), form_of: Vec::new(), seen: Vec::new(),
                ids: Map::default(), forms: Vec::new() }
    }

    /// The id of a value's comparison form; the spelling is counted.
    fn id(&mut self, spelling: Option<&'a str>) -> u32 {
        let written = self.spellings.id(spelling);
        if written == NONE {
            return NONE;
        }
        let w = written as usize;
        if w == self.form_of.len() {  // a new spelling
            let form = (self.form)(self.spellings.names[w]);
            let id = match self.ids.get(&form) {
                Some(&id) => id,
                None => {
                    let id = self.forms.len() as u32;
                    self.ids.insert(form.clone(), id);
                    self.forms.push(form);
                    id
                }
            };
            self.form_of.push(id);
            self.seen.push(0);
        }
        self.seen[w] += 1;
        self.form_of[w]
    }

    fn get(&self, id: u32) -> Option<&str> {
        (id != NONE).then(|| self.forms[id as usize].as_str())
    }
}

/// One row's histogram: (bucket, count), buckets in order (a row sees few distinct ones).
#[derive(Default)]
struct Hist(Vec<(i32, i64)>);

impl Hist {
    fn add(&mut self, bucket: Option<i32>) {
        let Some(b) = bucket else { return };
        match self.0.binary_search_by_key(&b, |&(k, _)| k) {
            Ok(i) => self.0[i].1 += 1,
            Err(i) => self.0.insert(i, (b, 1)),
        }
    }
}

/// Histogram rows `(key, bucket, count)` of a table's rows (in the order given).
fn hist_rows<K: Copy, R>(rows: &[(K, &R)], hist: impl Fn(&R) -> &Hist)
                         -> (Vec<K>, ArrayRef, ArrayRef) {
    let (mut keys, mut buckets, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for (key, row) in rows {
        for &(bucket, count) in &hist(row).0 {
            keys.push(*key);
            buckets.push(bucket);
            counts.push(count);
        }
    }
    (keys, Arc::new(Int32Array::from(buckets)), Arc::new(Int64Array::from(counts)))
}

#[derive(Default)]
struct FingerprintRow<'a> {
    id: Option<&'a str>,
    count: i64,
    errors: i64,
    unindexed: i64,
    partially_unindexed: i64,
    paged: i64,
    etime_ns: i128,
    unindexed_etime_ns: i128,
    partially_unindexed_etime_ns: i128,
    etime_max: Option<f64>,
    nentries: i64,
    bind_dns: Set<u32>,
    /// of its searches with notes A or U
    unindexed_bind_dns: Set<u32>,
    servers: Set<u32>,
    example: Option<&'a str>,
    example_base: Option<&'a str>,
    example_scope: Option<i64>,
    first_seen: Option<i64>,
    last_seen: Option<i64>,
    hist: [Hist; 3], // etime, wtime, optime
    waited: Waited,
}

/// Operations that waited at least `WAITED` seconds for a worker, and their wtime: who
/// waited when the pool was short (issue 33).
#[derive(Default)]
struct Waited {
    count: i64,
    wtime_ns: i128,
}

impl Waited {
    fn add(&mut self, wtime: Option<f64>) {
        if let Some(w) = wtime.filter(|w| *w >= WAITED) {
            self.count += 1;
            self.wtime_ns += nanos(w);
        }
    }
}

#[derive(Default)]
struct WorkloadRow {
    count: i64,
    errors: i64,
    unindexed: i64,
    etime_ns: i128,
    etime_max: Option<f64>,
    nentries: i64,
    le: Hist,
    hist: Hist,
    /// wtimes logged, their sum, and how many were <= each `PROM_LE`
    wtimes: i64,
    wtime_ns: i128,
    wtime_le: Hist,
    waited: Waited,
}

#[derive(Default)]
struct SeriesRow {
    count: i64,
    errors: i64,
    etime_ns: i128,
    hist: Hist,
}

fn min_of<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y < x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_of<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y > x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The operations' columns the partials read.
struct Ops<'a> {
    server: Strs<'a>,
    conn: Ints<'a>,
    op: Ints<'a>,
    session: Ints<'a>,
    workload: Strs<'a>,
    bind_dn: Strs<'a>,
    verb: Strs<'a>,
    fingerprint: Strs<'a>,
    fingerprint_id: Strs<'a>,
    filter: Strs<'a>,
    base: Strs<'a>,
    dn: Strs<'a>,
    scope: Ints<'a>,
    err: Ints<'a>,
    nentries: Ints<'a>,
    ts: Ints<'a>,
    result_ts: Ints<'a>,
    line: Ints<'a>,
    result_line: Ints<'a>,
    internal: Bools<'a>,
    unindexed: Bools<'a>,
    partially_unindexed: Bools<'a>,
    paged: Bools<'a>,
    abandoned: Bools<'a>,
    etime: Floats<'a>,
    wtime: Floats<'a>,
    optime: Floats<'a>,
}

impl<'a> Ops<'a> {
    fn of(b: &'a RecordBatch) -> Result<Self, ColumnError> {
        let t = "operations";
        Ok(Ops {
            server: strs(b, t, "server")?, conn: ints(b, t, "conn")?, op: ints(b, t, "op")?,
            session: ints(b, t, "session")?, workload: strs(b, t, "workload")?,
            bind_dn: strs(b, t, "bind_dn")?, verb: strs(b, t, "verb")?,
            fingerprint: strs(b, t, "fingerprint")?,
            fingerprint_id: strs(b, t, "fingerprint_id")?, filter: strs(b, t, "filter")?,
            base: strs(b, t, "base")?, dn: strs(b, t, "dn")?, scope: ints(b, t, "scope")?,
            err: ints(b, t, "err")?, nentries: ints(b, t, "nentries")?, ts: ints(b, t, "ts")?,
            result_ts: ints(b, t, "result_ts")?, line: ints(b, t, "line")?,
            result_line: ints(b, t, "result_line")?, internal: bools(b, t, "internal")?,
            unindexed: bools(b, t, "unindexed")?,
            partially_unindexed: bools(b, t, "partially_unindexed")?,
            paged: bools(b, t, "paged")?, abandoned: bools(b, t, "abandoned")?,
            etime: floats(b, t, "etime")?, wtime: floats(b, t, "wtime")?,
            optime: floats(b, t, "optime")?,
        })
    }
}

/// Summary counts of one server, in the order `pipeline/tables/aggregate.py` reads them.
#[derive(Default)]
struct ServerCounts {
    client: i64,
    by_verb: [i64; SUMMARY_VERBS.len()],
    requested: i64,
    results: i64,
    by_err: Map<Option<i64>, i64>,
    unindexed: i64,
    partially_unindexed: i64,
    paged: i64,
    unmatched_requests: i64,
    unmatched_results: i64,
    abandoned: i64,
    has_operations: bool,
    connections: Option<i64>,
}

/// Each server's summary counts, by server id (slot 0: a null server).
#[derive(Default)]
struct PerServer(Vec<ServerCounts>);

impl PerServer {
    fn of(&mut self, server: u32) -> &mut ServerCounts {
        let slot = if server == NONE { 0 } else { server as usize + 1 };
        if slot >= self.0.len() {
            self.0.resize_with(slot + 1, ServerCounts::default);
        }
        &mut self.0[slot]
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &ServerCounts)> {
        self.0.iter().enumerate().map(|(slot, c)| (if slot == 0 { NONE } else { slot as u32 - 1 }, c))
    }
}

/// The partial aggregates of one bucket's operations (with their `workload`) and
/// connections; `period_s`: the load table's period in seconds.
pub fn partials(ops: &RecordBatch, connections: &RecordBatch, period_s: i64)
                -> Result<Partials, ColumnError> {
    let o = Ops::of(ops)?;
    let reads = Reads::of(ops)?;
    let period_ns = period_s.max(1) * 1_000_000_000;
    let mut servers = Names::new();
    let mut workloads_n = Names::new();
    let mut verbs = Names::new();
    let mut prints = Forms::new(fingerprint_form);
    let mut dns = Forms::new(canonical);
    let mut targets = Forms::new(canonical);
    let mut counts = PerServer::default();
    let mut fingerprints: Map<u32, FingerprintRow<'_>> = Map::default();
    let mut workloads: Map<WorkloadKey, WorkloadRow> = Map::default();
    let mut series: Map<SeriesKey, SeriesRow> = Map::default();
    let mut binds: Map<(u32, u32, Option<i64>), i64> = Map::default();
    let mut load: Map<(u32, Option<i64>), i64> = Map::default();
    let mut per_session: Map<SessionKey, Cost> = Map::default();
    let mut advice = Advice::default();
    let mut pending: (SessionKey, Cost) = ((NONE, None, None), Cost::default());
    // the candidates for `slowest`, (etime, row), pruned to the slowest whenever the list
    // fills: an operation faster than every kept one costs one comparison
    let mut timed: Vec<(f64, u32)> = Vec::new();
    let mut floor = f64::NEG_INFINITY;
    let slower = slower_first(&o);
    for i in 0..ops.num_rows() {
        let server = servers.id(o.server.get(i));
        let verb_s = o.verb.get(i);
        let verb = verbs.id(verb_s);
        let bind_dn = dns.id(o.bind_dn.get(i));
        let client = o.internal.get(i) == Some(false);
        let search = verb_s == Some("SRCH");
        let err = o.err.get(i);
        let failed = err.is_some_and(|e| !OK_ERRORS.contains(&e));
        // ABANDON's line carries the abandoned operation's etime, not its own (it has none)
        let etime = if verb_s == Some("ABANDON") { None } else { o.etime.get(i) };
        let etime_ns = etime.map(nanos);
        let etime_bucket = etime.map(bucket_of);
        let unindexed = o.unindexed.get(i) == Some(true);
        let partially = o.partially_unindexed.get(i) == Some(true);
        let paged = o.paged.get(i) == Some(true);
        let nentries = o.nentries.get(i).unwrap_or(0);
        let seen = o.ts.get(i).or_else(|| o.result_ts.get(i));
        let requested = o.line.get(i).is_some();
        let resulted = o.result_line.get(i).is_some();

        let c = counts.of(server);
        c.has_operations = true;
        if requested {
            c.requested += 1;
            if client {
                c.client += 1;
                if let Some(v) = SUMMARY_VERBS.iter().position(|v| Some(*v) == verb_s) {
                    c.by_verb[v] += 1;
                }
            }
            if !resulted && verb_s.is_some_and(|v| PAIRED_VERBS.contains(&v)) {
                if o.abandoned.get(i) == Some(true) {
                    c.abandoned += 1;
                } else {
                    c.unmatched_requests += 1;
                }
            }
        }
        if resulted {
            c.results += 1;
            *c.by_err.entry(err).or_insert(0) += 1;
            if !requested {
                c.unmatched_results += 1;
            }
            if search {
                c.unindexed += i64::from(unindexed);
                c.partially_unindexed += i64::from(partially);
                c.paged += i64::from(paged);
            }
        }

        if search {
            let print = prints.id(o.fingerprint.get(i));
            advice.add(&Search { server, fingerprint: print, filter: o.filter.get(i),
                                 scope: o.scope.get(i), err, nentries: o.nentries.get(i),
                                 unindexed,
                                 partially_unindexed: partially, etime_ns }, reads.of_op(i));
            let f = fingerprints.entry(print).or_default();
            if f.count == 0 {
                f.id = o.fingerprint_id.get(i);
            }
            f.count += 1;
            f.errors += i64::from(failed);
            f.unindexed += i64::from(unindexed);
            f.partially_unindexed += i64::from(partially);
            f.paged += i64::from(paged);
            if let Some(ns) = etime_ns {
                f.etime_ns += ns;
                if unindexed {
                    f.unindexed_etime_ns += ns;
                }
                if partially {
                    f.partially_unindexed_etime_ns += ns;
                }
            }
            f.etime_max = max_of(f.etime_max, etime);
            f.nentries += nentries;
            if bind_dn != NONE {
                f.bind_dns.insert(bind_dn);
                if unindexed || partially {
                    f.unindexed_bind_dns.insert(bind_dn);
                }
            }
            f.servers.insert(server);
            f.example = min_of(f.example, o.filter.get(i));
            f.example_base = min_of(f.example_base, o.base.get(i));
            f.example_scope = min_of(f.example_scope, o.scope.get(i));
            f.first_seen = min_of(f.first_seen, seen);
            f.last_seen = max_of(f.last_seen, seen);
            f.hist[0].add(etime_bucket);
            f.hist[1].add(o.wtime.get(i).map(bucket_of));
            f.waited.add(o.wtime.get(i));
            f.hist[2].add(o.optime.get(i).map(bucket_of));
        }

        if !client {
            continue;
        }
        let w = workloads.entry((server, workloads_n.id(o.workload.get(i)), bind_dn, verb))
            .or_default();
        w.count += 1;
        w.errors += i64::from(failed);
        w.unindexed += i64::from(unindexed);
        w.nentries += nentries;
        if let (Some(e), Some(ns)) = (etime, etime_ns) {
            w.etime_ns += ns;
            w.le.add(le_bucket(e));
        }
        w.etime_max = max_of(w.etime_max, etime);
        w.hist.add(etime_bucket);
        if let Some(wt) = o.wtime.get(i) {
            w.wtimes += 1;
            w.wtime_ns += nanos(wt);
            w.wtime_le.add(le_bucket(wt));
            w.waited.add(Some(wt));
        }

        if let Some(e) = etime.filter(|e| *e >= floor) {
            timed.push((e, i as u32));
            if timed.len() >= 8 * SLOWEST {
                floor = keep_slowest(&mut timed, &slower);
            }
        }
        // a session's operations often come in a row: they add up before one map update
        let session = (server, o.conn.get(i), o.session.get(i));
        if session != pending.0 {
            per_session.entry(pending.0).or_default().add(&pending.1);
            pending = (session, Cost::default());
        }
        pending.1.add(&Cost { errors: i64::from(failed), unindexed: i64::from(unindexed),
                              etime_ns: etime_ns.unwrap_or(0) });

        let minute = seen.map(|t| t - t.rem_euclid(MINUTE_NS));
        let s = series.entry((server, minute, verb)).or_default();
        s.count += 1;
        s.errors += i64::from(failed);
        s.etime_ns += etime_ns.unwrap_or(0);
        s.hist.add(etime_bucket);

        *load.entry((server, seen.map(|t| t - t.rem_euclid(period_ns)))).or_insert(0) += 1;
        if verb_s == Some("BIND") {
            *binds.entry((server, targets.id(o.dn.get(i)), err)).or_insert(0) += 1;
        }
    }

    per_session.entry(pending.0).or_default().add(&pending.1);
    let clients = clients(connections, &per_session, &mut servers, &mut counts)?;
    let fingerprints: Vec<_> = fingerprints.iter().map(|(k, v)| (*k, v)).collect();
    let workloads: Vec<_> = workloads.iter().map(|(k, v)| (*k, v)).collect();
    let series: Vec<_> = series.iter().map(|(k, v)| (*k, v)).collect();
    let mut tables = vec![
        ("fingerprints".to_string(), fingerprint_table(&fingerprints, &prints, &dns, &servers)),
        ("workloads".into(), workload_table(&workloads, &servers, &workloads_n, &dns, &verbs)),
        ("timeseries".into(), series_table(&series, &servers, &verbs)),
        ("clients".into(), clients),
        ("binds".into(), bind_table(&binds, &servers, &targets)),
        ("load".into(), load_table(&load, &servers, period_s)),
        ("dn_spellings".into(), spellings_table(&[&dns, &targets], "dn")),
        ("fingerprint_spellings".into(), spellings_table(&[&prints], "fingerprint")),
        ("slowest".into(), slowest(ops, timed, &slower)?),
        ("indexes".into(), advice.table(&|s| servers.get(s), &|f| prints.get(f))),
    ];
    for (j, latency) in ["etime", "wtime", "optime"].iter().enumerate() {
        let (keys, bucket, count) = hist_rows(&fingerprints, |f| &f.hist[j]);
        tables.push((format!("fingerprints:{latency}"), batch(vec![
            ("fingerprint", strings(keys.iter().map(|&k| prints.get(k)))),
            ("bucket", bucket), ("count", count)])));
    }
    for (name, hist) in [("workloads:etime", (|w| &w.hist) as fn(&WorkloadRow) -> &Hist),
                         ("workloads:etime_le", |w| &w.le),
                         ("workloads:wtime_le", |w| &w.wtime_le)] {
        let (keys, bucket, count) = hist_rows(&workloads, hist);
        let mut columns = workload_keys(&keys, &servers, &workloads_n, &dns, &verbs);
        columns.extend([("bucket", bucket), ("count", count)]);
        tables.push((name.into(), batch(columns)));
    }
    let (keys, bucket, count) = hist_rows(&series, |s| &s.hist);
    let mut columns = series_keys(&keys, &servers, &verbs);
    columns.extend([("bucket", bucket), ("count", count)]);
    tables.push(("timeseries:etime".into(), batch(columns)));
    Ok(Partials { tables, summary: summary_table(&counts, &servers) })
}

/// The order of the `slowest` table on (etime, row) pairs: etime descending, then the
/// operation's server, time, conn, op and line, values alone, so that the buckets' lists
/// merge into the run's whatever the partitioning.
fn slower_first<'a>(o: &'a Ops<'a>) -> impl Fn(&(f64, u32), &(f64, u32)) -> Ordering + 'a {
    let key = |i: u32| {
        let i = i as usize;
        (o.server.get(i), nulls_last(o.ts.get(i)), nulls_last(o.conn.get(i)),
         nulls_last(o.op.get(i)), nulls_last(o.line.get(i)))
    };
    move |a, b| b.0.total_cmp(&a.0).then_with(|| key(a.1).cmp(&key(b.1)))
}

/// Keeps the `SLOWEST` first of `timed` in `order`; the least etime kept.
fn keep_slowest(timed: &mut Vec<(f64, u32)>, order: &impl Fn(&(f64, u32), &(f64, u32)) -> Ordering)
                -> f64 {
    if timed.len() > SLOWEST {
        timed.select_nth_unstable_by(SLOWEST - 1, order);
        timed.truncate(SLOWEST);
    }
    timed.iter().map(|t| t.0).fold(f64::INFINITY, f64::min)
}

/// The `slowest` table: the operations' `SLOWEST_COLUMNS` of the candidates `timed`
/// (client operations with an etime), slowest first.
fn slowest(ops: &RecordBatch, mut timed: Vec<(f64, u32)>,
           order: &impl Fn(&(f64, u32), &(f64, u32)) -> Ordering)
           -> Result<RecordBatch, ColumnError> {
    keep_slowest(&mut timed, order);
    timed.sort_unstable_by(order);
    let rows: UInt32Array = timed.iter().map(|t| t.1).collect();
    let mut columns = Vec::with_capacity(SLOWEST_COLUMNS.len());
    for name in SLOWEST_COLUMNS {
        let column = ops.column_by_name(name)
            .ok_or_else(|| ColumnError(format!("operations: no column {name:?}")))?;
        let taken = take(column.as_ref(), &rows, None)
            .map_err(|e| ColumnError(format!("operations: {name}: {e}")))?;
        // a view taken from the operations points into all of their strings: compacted,
        // the table holds its own 100 rows, not the bucket's text until the combine
        let owned = match taken.as_string_view_opt() {
            Some(views) => Arc::new(views.gc()) as ArrayRef,
            None => taken,
        };
        columns.push((name, owned));
    }
    Ok(batch(columns))
}

/// A session: (server, conn, opened), as operations name theirs (`session` is `opened`).
type SessionKey = (u32, Option<i64>, Option<i64>);

/// What client operations cost: failures, unindexed searches, etime.
#[derive(Default, Clone, Copy)]
struct Cost {
    errors: i64,
    unindexed: i64,
    etime_ns: i128,
}

impl Cost {
    fn add(&mut self, other: &Cost) {
        self.errors += other.errors;
        self.unindexed += other.unindexed;
        self.etime_ns += other.etime_ns;
    }
}

/// A clients row: connections opened in the window, their operations, what they cost.
#[derive(Default)]
struct ClientRow {
    connections: i64,
    operations: i64,
    cost: Cost,
}

/// (server, client IP, transport, close code)
type ClientKey<'a> = (u32, u32, &'a str, u32);

/// Connections by (server, client, transport, close code), with what their client
/// operations cost (`per_session`); each server's count of connections opened in the
/// window goes to the summary.
fn clients<'a>(c: &'a RecordBatch, per_session: &Map<SessionKey, Cost>,
               servers: &mut Names<'a>, counts: &mut PerServer)
               -> Result<RecordBatch, ColumnError> {
    let t = "connections";
    let (server, client_ip, close_code) =
        (strs(c, t, "server")?, strs(c, t, "client_ip")?, strs(c, t, "close_code")?);
    let (ldapi, ssl, starttls) = (bools(c, t, "ldapi")?, bools(c, t, "ssl")?,
                                  bools(c, t, "starttls")?);
    let (conn, opened, operations) = (ints(c, t, "conn")?, ints(c, t, "opened")?,
                                      ints(c, t, "operations")?);
    let mut ips = Names::new();
    let mut codes = Names::new();
    let mut rows: Map<ClientKey<'_>, ClientRow> = Map::default();
    for i in 0..c.num_rows() {
        let transport = if ldapi.get(i) == Some(true) {
            "LDAPI"
        } else if ssl.get(i) == Some(true) {
            "LDAPS"
        } else if starttls.get(i) == Some(true) {
            "StartTLS"
        } else {
            "LDAP"
        };
        let s = servers.id(server.get(i));
        let was_opened = i64::from(opened.get(i).is_some());
        *counts.of(s).connections.get_or_insert(0) += was_opened;
        let row = rows.entry((s, ips.id(client_ip.get(i)), transport, codes.id(close_code.get(i))))
            .or_default();
        row.connections += was_opened;
        row.operations += operations.get(i).unwrap_or(0);
        if let Some(cost) = per_session.get(&(s, conn.get(i), opened.get(i))) {
            row.cost.add(cost);
        }
    }
    let keys: Vec<_> = rows.iter().collect();
    Ok(batch(vec![
        ("server", strings(keys.iter().map(|(k, _)| servers.get(k.0)))),
        ("client_ip", strings(keys.iter().map(|(k, _)| ips.get(k.1)))),
        ("transport", strings(keys.iter().map(|(k, _)| Some(k.2)))),
        ("close_code", strings(keys.iter().map(|(k, _)| codes.get(k.3)))),
        ("connections", int64(keys.iter().map(|(_, v)| v.connections))),
        ("operations", int64(keys.iter().map(|(_, v)| v.operations))),
        ("errors", int64(keys.iter().map(|(_, v)| v.cost.errors))),
        ("unindexed", int64(keys.iter().map(|(_, v)| v.cost.unindexed))),
        ("etime_sum_ns", decimal(keys.iter().map(|(_, v)| v.cost.etime_ns))),
    ]))
}

fn fingerprint_table(rows: &[(u32, &FingerprintRow<'_>)], prints: &Forms<'_>, dns: &Forms<'_>,
                     servers: &Names<'_>) -> RecordBatch {
    let sorted_set = |ids: &Set<u32>, names: &dyn Fn(u32) -> Option<String>, limit: usize| {
        let mut values: Vec<String> = ids.iter().filter_map(|&i| names(i)).collect();
        values.sort_unstable();
        values.dedup();
        values.truncate(limit);
        values
    };
    let mut bind_sets = ListBuilder::new(StringBuilder::new());
    let mut unindexed_bind_sets = ListBuilder::new(StringBuilder::new());
    let mut server_sets = ListBuilder::new(StringBuilder::new());
    for (_, f) in rows {
        for (set, list) in [(&f.bind_dns, &mut bind_sets),
                            (&f.unindexed_bind_dns, &mut unindexed_bind_sets)] {
            for dn in sorted_set(set, &|i| dns.get(i).map(str::to_string), TOP_LIST_LIMIT) {
                list.values().append_value(dn);
            }
            list.append(true);
        }
        for s in sorted_set(&f.servers, &|i| servers.get(i).map(str::to_string), usize::MAX) {
            server_sets.values().append_value(s);
        }
        server_sets.append(true);
    }
    batch(vec![
        ("fingerprint", strings(rows.iter().map(|(k, _)| prints.get(*k)))),
        ("fingerprint_id", strings(rows.iter().map(|(_, f)| f.id))),
        ("count", int64(rows.iter().map(|(_, f)| f.count))),
        ("errors", int64(rows.iter().map(|(_, f)| f.errors))),
        ("unindexed", int64(rows.iter().map(|(_, f)| f.unindexed))),
        ("partially_unindexed", int64(rows.iter().map(|(_, f)| f.partially_unindexed))),
        ("paged", int64(rows.iter().map(|(_, f)| f.paged))),
        ("etime_sum_ns", decimal(rows.iter().map(|(_, f)| f.etime_ns))),
        ("unindexed_etime_sum_ns", decimal(rows.iter().map(|(_, f)| f.unindexed_etime_ns))),
        ("partially_unindexed_etime_sum_ns",
         decimal(rows.iter().map(|(_, f)| f.partially_unindexed_etime_ns))),
        ("etime_max", Arc::new(rows.iter().map(|(_, f)| f.etime_max).collect::<Float64Array>())),
        ("nentries_sum", int64(rows.iter().map(|(_, f)| f.nentries))),
        ("bind_dn_set", Arc::new(bind_sets.finish())),
        ("unindexed_bind_dn_set", Arc::new(unindexed_bind_sets.finish())),
        ("server_set", Arc::new(server_sets.finish())),
        ("example", strings(rows.iter().map(|(_, f)| f.example))),
        ("example_base", strings(rows.iter().map(|(_, f)| f.example_base))),
        ("example_scope", Arc::new(rows.iter().map(|(_, f)| f.example_scope)
            .collect::<Int64Array>())),
        ("first_seen", times(rows.iter().map(|(_, f)| f.first_seen))),
        ("last_seen", times(rows.iter().map(|(_, f)| f.last_seen))),
        ("waited", int64(rows.iter().map(|(_, f)| f.waited.count))),
        ("waited_wtime_sum_ns", decimal(rows.iter().map(|(_, f)| f.waited.wtime_ns))),
    ])
}

type WorkloadKey = (u32, u32, u32, u32);

fn workload_keys(keys: &[WorkloadKey], servers: &Names<'_>, workloads: &Names<'_>,
                 dns: &Forms<'_>, verbs: &Names<'_>) -> Vec<(&'static str, ArrayRef)> {
    vec![
        ("server", strings(keys.iter().map(|k| servers.get(k.0)))),
        ("workload", strings(keys.iter().map(|k| workloads.get(k.1)))),
        ("bind_dn", strings(keys.iter().map(|k| dns.get(k.2)))),
        ("verb", strings(keys.iter().map(|k| verbs.get(k.3)))),
    ]
}

fn workload_table(rows: &[(WorkloadKey, &WorkloadRow)], servers: &Names<'_>,
                  workloads: &Names<'_>, dns: &Forms<'_>, verbs: &Names<'_>) -> RecordBatch {
    let (keys, rows): (Vec<WorkloadKey>, Vec<&WorkloadRow>) = rows.iter().copied().unzip();
    let mut columns: Vec<(&str, ArrayRef)> = workload_keys(&keys, servers, workloads, dns, verbs);
    columns.extend([
        ("count", int64(rows.iter().map(|w| w.count))),
        ("errors", int64(rows.iter().map(|w| w.errors))),
        ("unindexed", int64(rows.iter().map(|w| w.unindexed))),
        ("etime_sum_ns", decimal(rows.iter().map(|w| w.etime_ns))),
        ("etime_max", Arc::new(rows.iter().map(|w| w.etime_max).collect::<Float64Array>())),
        ("nentries_sum", int64(rows.iter().map(|w| w.nentries))),
        ("wtime_count", int64(rows.iter().map(|w| w.wtimes))),
        ("wtime_sum_ns", decimal(rows.iter().map(|w| w.wtime_ns))),
        ("waited", int64(rows.iter().map(|w| w.waited.count))),
        ("waited_wtime_sum_ns", decimal(rows.iter().map(|w| w.waited.wtime_ns))),
    ]);
    batch(columns)
}

/// The `PROM_LE` bucket of a latency: the first bound it is at or below; none above the
/// last (or NaN).
fn le_bucket(value: f64) -> Option<i32> {
    let j = PROM_LE.partition_point(|&bound| bound < value);
    (j < PROM_LE.len() && value <= PROM_LE[j]).then_some(j as i32)
}

type SeriesKey = (u32, Option<i64>, u32);

fn series_keys(keys: &[SeriesKey], servers: &Names<'_>, verbs: &Names<'_>)
               -> Vec<(&'static str, ArrayRef)> {
    vec![
        ("server", strings(keys.iter().map(|k| servers.get(k.0)))),
        ("minute", times(keys.iter().map(|k| k.1))),
        ("verb", strings(keys.iter().map(|k| verbs.get(k.2)))),
    ]
}

fn series_table(rows: &[(SeriesKey, &SeriesRow)], servers: &Names<'_>, verbs: &Names<'_>)
                -> RecordBatch {
    let (keys, rows): (Vec<SeriesKey>, Vec<&SeriesRow>) = rows.iter().copied().unzip();
    let mut columns = series_keys(&keys, servers, verbs);
    columns.extend([
        ("count", int64(rows.iter().map(|s| s.count))),
        ("errors", int64(rows.iter().map(|s| s.errors))),
        ("etime_sum_ns", decimal(rows.iter().map(|s| s.etime_ns))),
    ]);
    batch(columns)
}

fn bind_table(rows: &Map<(u32, u32, Option<i64>), i64>, servers: &Names<'_>, targets: &Forms<'_>)
              -> RecordBatch {
    let rows: Vec<_> = rows.iter().collect();
    batch(vec![
        ("server", strings(rows.iter().map(|(k, _)| servers.get(k.0)))),
        ("dn", strings(rows.iter().map(|(k, _)| targets.get(k.1)))),
        ("err", Arc::new(rows.iter().map(|(k, _)| k.2).collect::<Int64Array>())),
        ("count", int64(rows.iter().map(|(_, &n)| n))),
    ])
}

fn load_table(rows: &Map<(u32, Option<i64>), i64>, servers: &Names<'_>, period_s: i64)
              -> RecordBatch {
    let rows: Vec<_> = rows.iter().collect();
    batch(vec![
        ("server", strings(rows.iter().map(|(k, _)| servers.get(k.0)))),
        ("start", times(rows.iter().map(|(k, _)| k.1))),
        ("operations", int64(rows.iter().map(|(_, &n)| n))),
        ("seconds", int64(rows.iter().map(|_| period_s))),
    ])
}

/// How often each spelling of each comparison form was seen (bind DNs of every
/// operation and BIND targets; fingerprints of searches): rows (`key`, spelling, count).
fn spellings_table(values: &[&Forms<'_>], key: &'static str) -> RecordBatch {
    let mut rows: Map<(&str, &str), i64> = Map::default();
    for d in values {
        for (w, spelling) in d.spellings.names.iter().enumerate() {
            *rows.entry((d.forms[d.form_of[w] as usize].as_str(), spelling)).or_insert(0) +=
                d.seen[w];
        }
    }
    let rows: Vec<_> = rows.into_iter().collect();
    batch(vec![
        (key, strings(rows.iter().map(|((form, _), _)| Some(*form)))),
        ("spelling", strings(rows.iter().map(|((_, s), _)| Some(*s)))),
        ("count", int64(rows.iter().map(|(_, n)| *n))),
    ])
}

fn summary_table(counts: &PerServer, servers: &Names<'_>) -> RecordBatch {
    let mut server = Vec::new();
    let mut key = Vec::new();
    let mut value = Vec::new();
    for (s, c) in counts.iter() {
        let mut put = |k: String, v: i64| {
            server.push(servers.get(s));
            key.push(k);
            value.push(v);
        };
        if c.has_operations {
            put("operations.total".into(), c.client);
            for (verb, n) in SUMMARY_VERBS.iter().zip(c.by_verb) {
                put(format!("operations.{verb}"), n);
            }
            put("internal_operations".into(), c.requested - c.client);
            put("results.total".into(), c.results);
            for (err, &n) in &c.by_err {
                put(format!("results.by_err.{}", err.map_or("None".into(), |e| e.to_string())), n);
            }
            put("searches.unindexed".into(), c.unindexed);
            put("searches.partially_unindexed".into(), c.partially_unindexed);
            put("searches.paged".into(), c.paged);
            put("unmatched.requests".into(), c.unmatched_requests);
            put("unmatched.results".into(), c.unmatched_results);
            put("abandoned".into(), c.abandoned);
        }
        if let Some(n) = c.connections {
            put("connections".into(), n);
        }
    }
    batch(vec![
        ("server", Arc::new(server.into_iter().collect::<StringArray>())),
        ("key", Arc::new(key.iter().map(|k| Some(k.as_str())).collect::<StringArray>())),
        ("count", Arc::new(Int64Array::from(value))),
    ])
}

fn strings<'s>(values: impl Iterator<Item = Option<&'s str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn int64(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<Int64Array>())
}

fn times(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.collect::<TimestampNanosecondArray>().with_timezone("UTC"))
}

fn decimal(values: impl Iterator<Item = i128>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<Decimal128Array>()
        .with_precision_and_scale(38, 0).expect("38 digits, scale 0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::join::{as_shuffled, join, Classes, EVERYTHING};
    use crate::operations::operations;
    use crate::tokenize::{tokenize, Options};
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::Array;

    fn partials_of(text: &str) -> Partials {
        let t = tokenize(text.as_bytes(), &Options { first_line: 1, final_block: true, strict: true });
        let c: Vec<_> = t.events.iter().map(|b| as_shuffled(b, "s", 0)).collect();
        let classes = Classes { request: &c[0], result: &c[1], lone: &c[2], other: &c[3] };
        let joined = join(&classes, EVERYTHING).unwrap();
        let ops = operations(&classes, &joined, false).unwrap();
        partials(&ops, &joined.connections, 60).unwrap()
    }

    fn table<'p>(p: &'p Partials, name: &str) -> &'p RecordBatch {
        &p.tables.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// Rows of a table as (string key columns joined by `|`, an Int64 column).
    fn counts(b: &RecordBatch, keys: &[&str], value: &str) -> Vec<(String, i64)> {
        let mut out: Vec<_> = (0..b.num_rows()).map(|i| {
            let key: Vec<_> = keys.iter().map(|k| {
                let c = b.column_by_name(k).unwrap().as_string::<i32>();
                if c.is_valid(i) { c.value(i).to_string() } else { "-".into() }
            }).collect();
            (key.join("|"), b.column_by_name(value).unwrap().as_primitive::<Int64Type>().value(i))
        }).collect();
        out.sort();
        out
    }

    #[test]
    fn identities_group_as_ldap_compares_them_and_outcomes_are_not_failures() {
        let t = "[26/Nov/2026:16:22:20 +0000] ";
        let text = format!(
            "{t}conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2\n\
             {t}conn=1 op=0 BIND dn=\"uid=A,dc=x\" method=128 version=3\n\
             {t}conn=1 op=0 RESULT err=0 tag=97 nentries=0 etime=0.1 dn=\"uid=A,dc=x\"\n\
             {t}conn=1 op=1 CMP dn=\"uid=b,dc=x\" attr=\"cn\"\n\
             {t}conn=1 op=1 RESULT err=6 tag=111 nentries=0 etime=0.2\n\
             {t}conn=1 op=2 BIND dn=\"uid=a, dc=X\" method=128 version=3\n\
             {t}conn=1 op=2 RESULT err=0 tag=97 nentries=0 etime=0.3 dn=\"uid=a, dc=X\"\n\
             {t}conn=1 op=3 SRCH base=\"dc=x\" scope=2 filter=\"(uid=z)\" attrs=ALL\n\
             {t}conn=1 op=3 RESULT err=32 tag=101 nentries=0 etime=0.4 notes=A\n\
             {t}conn=1 op=4 SRCH base=\"dc=x\" scope=2 filter=\"(uid=y)\" attrs=ALL\n\
             {t}conn=1 op=5 UNBIND\n\
             {t}conn=1 op=-1 fd=64 closed - U1\n"
        );
        let p = partials_of(&text);
        // one identity written two ways (a BIND carries the identity it established): one
        // row per verb; the spellings counted apart, as bind DNs and as BIND targets
        assert_eq!(counts(table(&p, "workloads"), &["bind_dn", "verb"], "count"), vec![
            ("uid=a,dc=x|BIND".to_string(), 2), ("uid=a,dc=x|CMP".into(), 1),
            ("uid=a,dc=x|SRCH".into(), 2), ("uid=a,dc=x|UNBIND".into(), 1)]);
        assert_eq!(counts(table(&p, "dn_spellings"), &["dn", "spelling"], "count"), vec![
            ("uid=a,dc=x|uid=A,dc=x".to_string(), 3), ("uid=a,dc=x|uid=a, dc=X".into(), 5)]);
        assert_eq!(counts(table(&p, "binds"), &["dn"], "count"), vec![("uid=a,dc=x".to_string(), 2)]);
        // compareTrue is an outcome; noSuchObject is a failure
        assert_eq!(counts(table(&p, "workloads"), &["verb"], "errors").iter()
                   .map(|(_, n)| n).sum::<i64>(), 1);
        assert_eq!(counts(table(&p, "fingerprints"), &["fingerprint"], "unindexed"),
                   vec![("sub (uid=...)".to_string(), 1)]);
        assert_eq!(counts(table(&p, "fingerprints"), &["fingerprint"], "count"),
                   vec![("sub (uid=...)".to_string(), 2)]);
        // the summary: one search without its RESULT, results by code
        let summary = counts(&p.summary, &["key"], "count");
        for (key, n) in [("unmatched.requests", 1), ("results.by_err.6", 1), ("results.total", 4),
                         ("operations.total", 6), ("searches.unindexed", 1), ("connections", 1)] {
            assert!(summary.contains(&(key.to_string(), n)), "{key}: {summary:?}");
        }
    }

    /// Lines as a 2.3.1 server with `nsslapd-statlog-level: 1` wrote them (the STAT
    /// format of result.c:2203 at 70dcccaf): 66 is the backend's next id, the count of an
    /// index read that returned ALLIDS; uid's equality index exists, description's not.
    #[test]
    fn index_advice_names_the_filters_attributes_with_the_stat_evidence() {
        let t = "[07/Dec/2026:05:16:28.780114410 +0000] ";
        let text = format!(
            "{t}conn=8 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2\n\
             {t}conn=8 op=2 SRCH base=\"ou=people,dc=x\" scope=2 filter=\"(&(uid=user1)(description=team-1))\" attrs=\"dn\"\n\
             {t}conn=8 op=2 STAT read index: attribute=objectclass key(eq)=referral --> count 0\n\
             {t}conn=8 op=2 STAT read index: attribute=uid key(eq)=user1 --> count 0\n\
             {t}conn=8 op=2 STAT read index: attribute=description key(eq)=team-1 --> count 66\n\
             {t}conn=8 op=2 STAT read index: duration 0.000008486\n\
             {t}conn=8 op=2 RESULT err=0 tag=101 nentries=0 wtime=0.000102452 optime=0.000993784 etime=0.5 notes=U details=\"Partially Unindexed Filter\"\n\
             {t}conn=8 op=3 SRCH base=\"ou=people,dc=x\" scope=2 filter=\"(|(Description=*am-1*)(mail=*))\" attrs=\"dn\"\n\
             {t}conn=8 op=3 RESULT err=0 tag=101 nentries=12 etime=2 notes=A\n\
             {t}conn=8 op=4 SRCH base=\"ou=people,dc=x\" scope=2 filter=\"(uid=user2)\" attrs=\"dn\"\n\
             {t}conn=8 op=4 STAT read index: attribute=uid key(eq)=user2 --> count 1\n\
             {t}conn=8 op=4 RESULT err=0 tag=101 nentries=1 etime=0.001\n\
             {t}conn=8 op=5 SRCH base=\"uid=a,dc=x\" scope=0 filter=\"(sn=b)\" attrs=\"dn\"\n\
             {t}conn=8 op=5 RESULT err=0 tag=101 nentries=0 etime=0.001\n\
             {t}conn=8 op=6 SRCH base=\"dc=x\" scope=1 filter=\"(&(cn=a)(sn=b))\" attrs=\"dn\"\n\
             {t}conn=8 op=6 RESULT err=0 tag=101 nentries=1 etime=0.001\n\
             {t}conn=8 op=7 SRCH base=\"dc=x\" scope=2 filter=\"(mail=a)\" attrs=\"dn\"\n\
             {t}conn=8 op=7 RESULT err=0 tag=101 nentries=0 etime=0.001\n"
        );
        let p = partials_of(&text);
        let b = table(&p, "indexes");
        // rows: the server's (no attribute), description eq and sub, mail pres, uid eq;
        // (uid=user2) alone ran indexed; a base search reads no index, and an AND that ran
        // indexed may have read only one of its terms: neither is evidence (nor a search
        // that found nothing, `Search::ran_indexed`)
        let rows = ["-|-", "description|eq", "description|sub", "mail|pres", "uid|eq"];
        for (column, want) in [("searches", [0, 1, 1, 1, 1]),
                               ("partially_unindexed", [0, 1, 0, 0, 1]),
                               ("stat_reads", [0, 1, 0, 0, 1]),
                               ("indexed_searches", [0, 0, 0, 0, 1])] {
            let want: Vec<_> = rows.iter().map(|r| r.to_string()).zip(want).collect();
            assert_eq!(counts(b, &["attribute", "index"], column), want, "{column}");
        }
        let most = b.column_by_name("candidates_max").unwrap().as_primitive::<Int64Type>();
        let max_of = |key: &str| {
            let row = (0..b.num_rows()).find(|&i| {
                let s = |c: &str| b.column_by_name(c).unwrap().as_string::<i32>();
                let k = |c: &str| if s(c).is_valid(i) { s(c).value(i).to_string() } else { "-".into() };
                format!("{}|{}", k("attribute"), k("index")) == key
            }).unwrap();
            most.is_valid(row).then(|| most.value(row))
        };
        // the server's row: the largest any read returned, the search without notes too
        assert_eq!(max_of("-|-"), Some(66));
        assert_eq!(max_of("description|eq"), Some(66));
        assert_eq!(max_of("uid|eq"), Some(0));
        assert_eq!(max_of("mail|pres"), None);
    }

    #[test]
    fn a_latency_on_a_bound_counts_at_or_below_it() {
        assert_eq!(le_bucket(0.0), Some(0));
        assert_eq!(le_bucket(0.0001), Some(0));
        assert_eq!(le_bucket(0.00010001), Some(1));
        assert_eq!(le_bucket(5.0), Some(14));  // whole-second logs: etime=5 is <= 5
        assert_eq!(le_bucket(60.0), Some(17));
        assert_eq!(le_bucket(60.5), None);
        assert_eq!(le_bucket(f64::NAN), None);
        assert_eq!(le_bucket(f64::INFINITY), None);
    }

    #[test]
    fn buckets_hold_their_upper_bound() {
        for i in [-500, -3, 1, 7, 400] {
            let upper = GAMMA.powi(i);
            assert!((bucket_of(upper) - i).abs() <= 1); // rounding at the edge
            assert_eq!(bucket_of(upper * 1.001), i + 1);
        }
        assert_eq!(bucket_of(MIN_VALUE), ZERO_BUCKET);
    }
}
