//! The Python face of dsaccess-core: bytes in, Arrow out (PyCapsule stream), nothing else.
//!
//! Only types are converted here; the work runs with the GIL released, and a
//! malformed line is a reject row of the core, never an exception.

use arrow_array::RecordBatch;
use arrow_select::concat::concat_batches;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3_arrow::{PySchema, PyTable};

use dsaccess_core::bucket::{bucket, BucketError, Options as BucketOptions};
use dsaccess_core::fields::KIND_NAMES;
use dsaccess_core::shuffle::{bucket_entries, bucket_place, class_schemas, decode, encode,
                             server_seed, Piece, Provenance, SUBS, TAIL};
use dsaccess_core::tokenize::CLASS_NAMES;
use dsaccess_core::workload::{RuleError, Rules};

// A shuffle file that cannot be decoded (damaged, cut, or not of this version): the
// message names the file; Python makes it a `ShuffleError`, not an internal error.
pyo3::create_exception!(_core, ShuffleFileError, PyValueError);

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use dsaccess_core::dn::canonical;
use dsaccess_core::trace::{suspects, Network, Wanted};
use dsaccess_core::route::{route, Accounting, Route};
use dsaccess_core::{tokenize, Options};

/// Tokenize a newline-aligned block of a text access log.
///
/// Returns (classes, rejects, counts, carry_from, kinds, unknown_fields, utc_offsets):
/// the events of each class (``schema.EVENT_CLASSES``) and the rejects as Arrow tables
/// (read them with ``pl.DataFrame``), the line accounting, the offset of the bytes after
/// the last newline of a non-final block, per kind (events, events the strict path
/// handled), the fields no column reads, by name (events with them are kept), and the
/// UTC offsets the timestamps were written with, ``[(offset, first_ns, last_ns), ...]``
/// in time order.
///
#[pyfunction]
#[pyo3(signature = (data, *, first_line=1, final_block=true, strict=true))]
fn tokenize_text<'py>(
    py: Python<'py>,
    data: &[u8],
    first_line: i64,
    final_block: bool,
    strict: bool,
) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    let opts = Options { first_line, final_block, strict };
    let t = py.detach(|| tokenize(data, &opts));
    tokenized(py, t)
}

/// The client connections of a newline-aligned block of a text log that may hold a
/// trace's matches, per selector: ``{"bind_dn": [conn, ...], "client_ip": [...],
/// "filter_value": [...], "target": [...], "verb": [...], "err": [...], "time": [...]}``
/// (``rust/core/src/trace.rs``; a superset). DNs are compared as LDAP compares them,
/// filter values in any case; ``networks`` are addresses or CIDR ranges (a ValueError
/// names one that is neither); ``verbs`` as the operations table spells them (``DEL``);
/// ``since``/``until`` (UTC ns) a window, whose connections are those with a line in it.
#[pyfunction]
#[pyo3(signature = (data, *, bind_dns=vec![], networks=vec![], filter_values=vec![],
                    targets=vec![], subtree=false, verbs=vec![], errs=vec![], since=None,
                    until=None))]
#[allow(clippy::too_many_arguments)]
fn trace_suspects<'py>(
    py: Python<'py>,
    data: &[u8],
    bind_dns: Vec<String>,
    networks: Vec<String>,
    filter_values: Vec<String>,
    targets: Vec<String>,
    subtree: bool,
    verbs: Vec<String>,
    errs: Vec<i64>,
    since: Option<i64>,
    until: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let networks = networks.iter()
        .map(|n| Network::parse(n).ok_or_else(|| PyValueError::new_err(
            format!("not an address or a network: {n:?}"))))
        .collect::<PyResult<Vec<_>>>()?;
    let wanted = Wanted {
        bind_dns: bind_dns.iter().map(|d| canonical(d)).collect(),
        networks,
        filter_values: filter_values.iter().map(|v| v.to_lowercase()).collect(),
        targets: targets.iter().map(|d| canonical(d)).collect(),
        subtree,
        verbs,
        errs,
        since,
        until,
    };
    let found = py.detach(|| suspects(data, &wanted));
    let out = PyDict::new(py);
    for (name, conns) in [("bind_dn", found.bind_dn), ("client_ip", found.client_ip),
                          ("filter_value", found.filter_value), ("target", found.target),
                          ("verb", found.verb), ("err", found.err), ("time", found.time)] {
        out.set_item(name, conns)?;
    }
    Ok(out)
}

/// A tokenizer's answer as Python values: Arrow tables and dicts.
fn tokenized(py: Python<'_>, t: dsaccess_core::Tokenized)
             -> PyResult<Bound<'_, pyo3::types::PyTuple>> {
    let counts = PyDict::new(py);
    for (k, v) in [("total", t.counts.total), ("parsed", t.counts.parsed),
                   ("rejected", t.counts.rejected), ("header", t.counts.header),
                   ("blank", t.counts.blank)] {
        counts.set_item(k, v)?;
    }
    let classes = PyDict::new(py);
    for (name, batch) in CLASS_NAMES.iter().zip(t.events) {
        classes.set_item(*name, table(batch)?)?;
    }
    let kinds = PyDict::new(py);
    for (i, name) in KIND_NAMES.iter().enumerate() {
        if t.kind_events[i] > 0 {
            kinds.set_item(*name, (t.kind_events[i], t.kind_strict[i]))?;
        }
    }
    let unknown = PyDict::new(py);
    for (name, n) in &t.unknown_fields {
        unknown.set_item(name, n)?;
    }
    (classes, table(t.rejects)?, counts, t.carry_from, kinds, unknown, t.utc_offsets)
        .into_pyobject(py)
}

/// Tokenize a whole 3.x JSON access log (``json`` or ``json-pretty``).
///
/// Returns the same (classes, rejects, counts, carry_from, kinds, unknown_fields,
/// utc_offsets) as ``tokenize_text``.
#[pyfunction]
#[pyo3(signature = (data, *, first_line=1))]
fn tokenize_json<'py>(
    py: Python<'py>,
    data: &[u8],
    first_line: i64,
) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    let t = py.detach(|| dsaccess_core::json::tokenize_json(data, first_line));
    tokenized(py, t)
}

/// One table from an Arrow stream: its batches concatenated (polars gives one per chunk).
fn one_batch(table: PyTable) -> PyResult<RecordBatch> {
    let (batches, schema) = table.into_inner();
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema)),
        1 => Ok(batches.into_iter().next().expect("one batch")),
        _ => concat_batches(&schema, &batches).map_err(|e| PyValueError::new_err(e.to_string())),
    }
}

/// One bucket's task (or part of one), from its events as they are in the shuffle files:
/// per class (``event_classes``' order), its pieces (``(header, batches, line_offset,
/// name)`` as for ``shuffle_decode``); decoded, joined, classified by the workload ``rules``
/// (``(name, CEL, line)``; none: ``workload`` stays null) and aggregated here: the events
/// never reach Python.
///
/// Events outside ``window``, ``(since, until)`` in ns, are connections' context, which the
/// shuffle kept for the join (``shuffle::in_window``): they give identity and client, and
/// are not counted.
///
/// Returns (operations, connections, tables, summary, rule_failures, events,
/// decode_seconds): the operations and connections as Arrow tables, the partial
/// aggregates (tables by name, and the summary's counts), the rows each rule failed on,
/// the number of events in the window and the seconds decoding took. Raises
/// ``ShuffleFileError`` naming a file that cannot be decoded. Without ``aggregates`` (a
/// trace), tables and summary are None.
#[pyfunction]
#[pyo3(signature = (pieces, *, routed=vec![], sort_operands=false, rules=None,
                    load_period_s=60, window=(None, None), aggregates=true))]
#[allow(clippy::too_many_arguments)]
fn join_pieces<'py>(
    py: Python<'py>,
    pieces: Vec<Vec<PyPiece<'_>>>,
    routed: Vec<PyPiece<'_>>,
    sort_operands: bool,
    rules: Option<Vec<PyRule>>,
    load_period_s: i64,
    window: (Option<i64>, Option<i64>),
    aggregates: bool,
) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    if pieces.len() != CLASS_NAMES.len() {
        return Err(PyValueError::new_err("join_pieces: one list of pieces per class"));
    }
    let pieces: Vec<Vec<Piece<'_>>> = pieces.iter().map(|class| pieces_of(class)).collect();
    let routed = pieces_of(&routed);
    let schemas = class_schemas();
    let rules = rules.map(|r| rules_of(&r, "workloads", false))
        .transpose().map_err(|e| PyValueError::new_err(e.0))?;
    let options = BucketOptions { sort_operands, rules: rules.as_ref(), load_period_s,
                                 window, aggregates };
    let (b, lines) = py.detach(|| bucket(&pieces, &routed, schemas, &options)).map_err(|e| match e {
        BucketError::Shuffle(e) => ShuffleFileError::new_err(e.to_string()),
        BucketError::Columns(e) => PyValueError::new_err(e.to_string()),
    })?;
    let (tables, summary) = match b.partials {
        Some(partials) => {
            let tables = PyDict::new(py);
            for (name, batch) in partials.tables {
                tables.set_item(name, table(batch)?)?;
            }
            (Some(tables), Some(table(partials.summary)?))
        }
        None => (None, None),
    };
    let failures = PyDict::new(py);
    for (name, n) in b.rule_failures {
        failures.set_item(name, n)?;
    }
    (table(b.operations)?, table(b.connections)?, tables, summary, failures, b.events,
     b.decode_seconds, accounting(py, lines)?).into_pyobject(py)
}

/// What the join task's tokenizer found in its routed lines, as Python values:
/// ``{"files": [(server, file, file_seq, parsed, outside_window, rejected), ...],
/// "rejects": [(server, file, table), ...], "unknown_fields": {name: events},
/// "utc_offsets": {server: [(offset, first_ns, last_ns), ...]}}``.
fn accounting<'py>(py: Python<'py>, a: Accounting) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    let files: Vec<_> = a.counted.into_iter()
        .map(|c| (c.server, c.file, c.file_seq, c.parsed, c.outside_window, c.rejected))
        .collect();
    out.set_item("files", files)?;
    let rejects = a.rejects.into_iter()
        .map(|(server, file, t)| Ok((server, file, table(t)?)))
        .collect::<PyResult<Vec<_>>>()?;
    out.set_item("rejects", rejects)?;
    let unknown = PyDict::new(py);
    for (name, n) in &a.unknown_fields {
        unknown.set_item(name, n)?;
    }
    out.set_item("unknown_fields", unknown)?;
    let offsets = PyDict::new(py);
    for (server, runs) in a.utc_offsets {
        offsets.set_item(server, runs)?;
    }
    out.set_item("utc_offsets", offsets)?;
    Ok(out)
}

/// Route a newline-aligned block of a text log (``rust/core/src/route.rs``): each line,
/// whole, to its connection's (bucket, sub-bucket) of the server's ``buckets``, into one
/// scratch file; events outside ``since <= ts < until`` that are no connection's context
/// go nowhere; with ``connections`` (a trace), only those client connections' lines go.
///
/// Returns (file, counts, rejects, first_ts, last_ts, kept, span, carry_from): the file's
/// bytes; ``{"total", "blank", "header", "rejected", "skipped", "outside_window",
/// "routed"}``; the lines rejected here (line, text, reason), an Arrow table; the time
/// range of the routed events in the window and their number; the time range of every
/// event (None when there is none); where the bytes after the last newline begin.
#[pyfunction]
#[pyo3(signature = (data, *, server, file, file_seq, buckets, since=None, until=None,
                    first_line=1, final_block=true, connections=None))]
#[allow(clippy::too_many_arguments)]
fn route_text<'py>(
    py: Python<'py>,
    data: &[u8],
    server: &str,
    file: &str,
    file_seq: i32,
    buckets: u32,
    since: Option<i64>,
    until: Option<i64>,
    first_line: i64,
    final_block: bool,
    connections: Option<Vec<i64>>,
) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    let only = connections.map(|mut c| {
        c.sort_unstable();
        c
    });
    let r = Route { provenance: Provenance { server, file, file_seq }, window: (since, until),
                    buckets, subs: SUBS, seed: server_seed(server), first_line, final_block,
                    only: only.as_deref() };
    let routed = py.detach(|| route(data, &r)).map_err(|e| PyValueError::new_err(e.0))?;
    let c = routed.counts;
    let counts = PyDict::new(py);
    for (k, v) in [("total", c.total), ("blank", c.blank), ("header", c.header),
                   ("rejected", c.rejected), ("skipped", c.skipped),
                   ("outside_window", c.outside_window), ("routed", c.routed)] {
        counts.set_item(k, v)?;
    }
    (PyBytes::new(py, &routed.file), counts, table(routed.rejects)?, routed.first_ts,
     routed.last_ts, routed.kept, routed.span, routed.carry_from).into_pyobject(py)
}

fn table(b: RecordBatch) -> PyResult<PyTable> {
    PyTable::try_new(vec![b.clone()], b.schema())
}

/// A piece of a shuffle file as Python gives it: (header, batches, line_offset, name).
type PyPiece<'py> = (Bound<'py, PyBytes>, Bound<'py, PyBytes>, i64, String);

fn pieces_of<'a>(given: &'a [PyPiece<'_>]) -> Vec<Piece<'a>> {
    given
        .iter()
        .map(|(header, batches, line_offset, source)| Piece {
            header: header.as_bytes(), batches: batches.as_bytes(), line_offset: *line_offset,
            source,
        })
        .collect()
}

/// One parse task's events, a table per class (any Arrow stream, in ``event_classes``'
/// order), into the bytes of one shuffle file per class: an Arrow IPC stream of the
/// class's columns with a record batch per (bucket, sub-bucket) of the server's
/// (``shuffle::server_seed``, ``SUBS``), and its index (``rust/core/src/shuffle.rs``).
///
/// Returns (files, first_ts, last_ts, kept, span): the files' bytes in the classes'
/// order (with the context before the window: ``shuffle::in_window``), the time range
/// of the events in the window (``since <= ts < until``), how many there were, and the
/// time range of every event, in the window or not (None when there is none).
#[pyfunction]
#[pyo3(signature = (tables, *, server, file, file_seq, buckets, since=None, until=None))]
#[allow(clippy::too_many_arguments)]
fn shuffle_encode<'py>(
    py: Python<'py>,
    tables: Vec<PyTable>,
    server: &str,
    file: &str,
    file_seq: i32,
    buckets: u32,
    since: Option<i64>,
    until: Option<i64>,
) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    let tables = tables.into_iter().map(one_batch).collect::<PyResult<Vec<_>>>()?;
    let provenance = Provenance { server, file, file_seq };
    let encoded = py
        .detach(|| encode(&tables, class_schemas(), &provenance, (since, until), (buckets, SUBS),
                          server_seed(server)))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let files: Vec<Bound<'py, PyBytes>> =
        encoded.files.iter().map(|f| PyBytes::new(py, f)).collect();
    (files, encoded.first_ts, encoded.last_ts, encoded.kept, encoded.span).into_pyobject(py)
}

/// A bucket's batches of one class, from pieces of shuffle files (``(header, batches,
/// line_offset, name)``: a file's bytes before batch 0, the bytes of some of its
/// consecutive batches, the lines before its chunk, the file's name for errors), as one
/// Arrow table of the columns of event class ``cls`` (``event_classes``). Raises
/// ``ShuffleFileError`` naming a file that cannot be decoded.
#[pyfunction]
fn shuffle_decode(py: Python<'_>, pieces: Vec<PyPiece<'_>>, cls: &str) -> PyResult<PyTable> {
    let at = CLASS_NAMES.iter().position(|c| *c == cls)
        .ok_or_else(|| PyValueError::new_err(format!("no event class {cls:?}")))?;
    let schema = &class_schemas()[at];
    let pieces = pieces_of(&pieces);
    let batch = py
        .detach(|| decode(&pieces, schema))
        .map_err(|e| ShuffleFileError::new_err(e.to_string()))?;
    table(batch)
}

/// Where a join task reads bucket ``bucket`` of a shuffle file it reads by range, from the
/// file's last ``SHUFFLE_TAIL`` bytes and its size: (header, entries, length): the header
/// is bytes ``0..header``, the bucket's index entries ``length`` bytes at ``entries``.
/// Raises ``ShuffleFileError`` for a file not of this layout or without the bucket.
#[pyfunction]
fn shuffle_bucket_place(tail: &[u8], size: usize, bucket: usize)
                        -> PyResult<(usize, usize, usize)> {
    bucket_place(tail, size, bucket, SUBS as usize)
        .map_err(|e| ShuffleFileError::new_err(e.to_string()))
}

/// The index entries ``shuffle_bucket_place`` located, as (offsets, sizes): where each
/// sub-bucket starts and where the last ends, and what each weighs once decoded.
#[pyfunction]
fn shuffle_bucket_entries(raw: &[u8], header: usize) -> PyResult<(Vec<u64>, Vec<u64>)> {
    bucket_entries(raw, header).map_err(|e| ShuffleFileError::new_err(e.to_string()))
}

/// A 389 timestamp on its own (``26/Nov/2026:16:20:10[.nnnnnnnnn] +0000``, brackets
/// optional) → (UTC nanoseconds, UTC offset in minutes): the tokenizer's parser. Raises
/// ``ValueError`` saying why it is not one.
#[pyfunction]
fn parse_stamp(text: &str) -> PyResult<(i64, i32)> {
    dsaccess_core::head::parse_stamp(text).map_err(PyValueError::new_err)
}

/// The worker pool's saturation over one server's (or the fleet's) client operations,
/// fed a slab of time at a time (``dsaccess_core::saturation``): ``Sweep(period_s,
/// first, last)`` for the load periods of ``period_s`` seconds from the one holding
/// ``first`` to the one holding ``last`` (ns); ``feed(table)`` a slab (columns ``start``,
/// ``result_ts``, and where logged ``wtime``, ``wbusy``, ``wmax``, ``wqdepth``), in any
/// order, its starts after the slabs' fed before (a ValueError otherwise); ``finish()``:
/// (the ``saturation.parquet`` rows without the server, the run's figures as a dict, with
/// ``saturated_at``: the saturated seconds, ascending, or None).
#[pyclass(name = "Sweep")]
struct PySweep {
    sweep: Option<dsaccess_core::saturation::Sweep>,
}

#[pymethods]
impl PySweep {
    #[new]
    fn new(period_s: i64, first: i64, last: i64) -> Self {
        PySweep { sweep: Some(dsaccess_core::saturation::Sweep::new(period_s, first, last)) }
    }

    fn feed(&mut self, py: Python<'_>, ops: PyTable) -> PyResult<()> {
        let ops = one_batch(ops)?;
        let sweep = self.sweep.as_mut().ok_or_else(finished)?;
        py.detach(|| sweep.feed(&ops)).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<(PyTable, Bound<'py, PyDict>)> {
        let sweep = self.sweep.take().ok_or_else(finished)?;
        let (periods, all) = py.detach(|| sweep.finish());
        let d = PyDict::new(py);
        d.set_item("operations", all.operations)?;
        d.set_item("peak_in_flight", all.peak_in_flight)?;
        d.set_item("wtime_p95", all.wtime_p95)?;
        d.set_item("wtime_p99", all.wtime_p99)?;
        d.set_item("waited_10ms", all.waited_10ms)?;
        d.set_item("waited_10ms_share", all.waited_10ms_share)?;
        d.set_item("saturated_seconds", all.saturated_seconds)?;
        d.set_item("workers", all.workers)?;
        d.set_item("saturated_at", all.saturated_at)?;
        Ok((table(periods)?, d))
    }
}

fn finished() -> PyErr {
    PyValueError::new_err("this sweep is finished")
}

/// The UTC nanoseconds of a log's first event, from its first bytes (text or JSON);
/// None when they hold none.
#[pyfunction]
fn first_time(head: &[u8]) -> Option<i64> {
    dsaccess_core::head::first_time(head)
}

/// The event classes, name → the Arrow schema of its columns in the shuffle, in the
/// order the core takes and gives them (``schema.EVENT_CLASSES``).
#[pyfunction]
fn event_classes(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for (name, schema) in CLASS_NAMES.iter().zip(class_schemas()) {
        out.set_item(name, PySchema::new(schema.clone()))?;
    }
    Ok(out)
}

/// The seed of a server's buckets (``shuffle::server_seed``), for tests that check it.
#[pyfunction(name = "server_seed")]
fn py_server_seed(server: &str) -> u64 {
    server_seed(server)
}

/// The comparison form of each DN (``None`` stays ``None``): ``dsaccess_core::dn``.
#[pyfunction]
fn canonical_dns(py: Python<'_>, dns: Vec<Option<String>>) -> Vec<Option<String>> {
    py.detach(|| dns.iter().map(|d| d.as_deref().map(dsaccess_core::dn::canonical)).collect())
}

/// A workload rule as configured: (name, CEL text, line or None).
type PyRule = (String, String, Option<i64>);

fn rules_of(rules: &[PyRule], origin: &str, live: bool) -> Result<Rules, RuleError> {
    let sources: Vec<_> = rules.iter().map(|(n, w, l)| (n.as_str(), w.as_str(), *l)).collect();
    Rules::compile(&sources, origin, live)
}

/// Check workload rules (``origin``: where they come from; ``live``: for the exporter's
/// connections): raises ``ValueError`` with a message naming the rule, its line and the fix.
#[pyfunction]
#[pyo3(signature = (rules, *, origin, live=false))]
fn check_workloads(rules: Vec<PyRule>, origin: &str, live: bool) -> PyResult<()> {
    rules_of(&rules, origin, live).map(|_| ()).map_err(|e| PyValueError::new_err(e.0))
}

/// The workload class of each row (any Arrow stream with the rules' variables as columns):
/// ``(classes, failures, evaluations)``, ``classes`` a one-column table ``workload``,
/// ``failures`` the rows each rule failed on, ``evaluations`` how often each rule ran.
#[pyfunction]
#[pyo3(signature = (rows, rules, *, live=false))]
fn classify<'py>(py: Python<'py>, rows: PyTable, rules: Vec<PyRule>, live: bool)
                 -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    let rows = one_batch(rows)?;
    let rules = rules_of(&rules, "workloads", live).map_err(|e| PyValueError::new_err(e.0))?;
    let classified = py.detach(|| rules.classify(&rows))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let failures = PyDict::new(py);
    for (name, n) in classified.failures {
        failures.set_item(name, n)?;
    }
    let evaluations = PyDict::new(py);
    for (name, n) in classified.evaluations {
        evaluations.set_item(name, n)?;
    }
    let classes = dsaccess_core::columns::batch(vec![("workload", classified.classes)]);
    (table(classes)?, failures, evaluations).into_pyobject(py)
}

/// The fingerprint of each filter (``None``: ``<unparsed:missing>``), of searches of
/// ``scope`` (0, 1, 2: ``base``, ``one``, ``sub`` before it; ``None``: the filter's alone).
#[pyfunction]
#[pyo3(signature = (filters, sort_operands=false, scope=None))]
fn fingerprints(py: Python<'_>, filters: Vec<Option<String>>, sort_operands: bool,
                scope: Option<i64>) -> Vec<String> {
    py.detach(|| {
        filters.iter()
            .map(|f| dsaccess_core::filter::search_fingerprint(scope, f.as_deref(), sort_operands))
            .collect()
    })
}

/// The short id of a fingerprint, its comparison form's (``fingerprint.fingerprint_id``).
#[pyfunction]
fn fingerprint_id(print: &str) -> String {
    dsaccess_core::operations::fingerprint_id(&dsaccess_core::filter::fingerprint_form(print))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tokenize_text, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize_json, m)?)?;
    m.add_function(wrap_pyfunction!(trace_suspects, m)?)?;
    m.add_function(wrap_pyfunction!(join_pieces, m)?)?;
    m.add_function(wrap_pyfunction!(route_text, m)?)?;
    m.add_function(wrap_pyfunction!(fingerprints, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_dns, m)?)?;
    m.add_function(wrap_pyfunction!(check_workloads, m)?)?;
    m.add_function(wrap_pyfunction!(classify, m)?)?;
    m.add("UNCLASSIFIED", dsaccess_core::workload::UNCLASSIFIED)?;
    m.add_function(wrap_pyfunction!(fingerprint_id, m)?)?;
    m.add_function(wrap_pyfunction!(shuffle_encode, m)?)?;
    m.add_function(wrap_pyfunction!(shuffle_decode, m)?)?;
    m.add_function(wrap_pyfunction!(event_classes, m)?)?;
    m.add_function(wrap_pyfunction!(parse_stamp, m)?)?;
    m.add_class::<PySweep>()?;
    m.add_function(wrap_pyfunction!(first_time, m)?)?;
    m.add_function(wrap_pyfunction!(py_server_seed, m)?)?;
    m.add("SUBS", SUBS)?;
    m.add_function(wrap_pyfunction!(shuffle_bucket_place, m)?)?;
    m.add_function(wrap_pyfunction!(shuffle_bucket_entries, m)?)?;
    m.add("SHUFFLE_TAIL", TAIL)?;
    m.add("ShuffleFileError", m.py().get_type::<ShuffleFileError>())?;
    // the partials' contract, for the Python that finishes the tables
    use dsaccess_core::aggregate as agg;
    m.add("OK_ERRORS", agg::OK_ERRORS.to_vec())?;
    m.add("PROM_LE", agg::PROM_LE.to_vec())?;
    m.add("TOP_LIST_LIMIT", agg::TOP_LIST_LIMIT)?;
    m.add("SLOWEST", agg::SLOWEST)?;
    m.add("HISTOGRAM_GAMMA", agg::GAMMA)?;
    m.add("HISTOGRAM_ZERO_BUCKET", agg::ZERO_BUCKET)?;
    m.add("HISTOGRAM_MIN_VALUE", agg::MIN_VALUE)?;
    Ok(())
}
