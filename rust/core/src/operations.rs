//! A bucket's operations table: each operation's columns gathered from the rows of its
//! lines and of its connection (the join's structure, `join::Joined`), and the
//! fingerprint of each search.
//!
//! An operation has up to three lines: its request, its RESULT and, for ABANDON and
//! UNBIND, its lone line. Its ids come from the first of request, lone line, RESULT
//! that has them; its time, file and line from its request or lone line; the RESULT's
//! time, file and line are `result_ts`, `result_file`, `result_line`. Each distinct
//! filter is fingerprinted once; a search without a filter is `<unparsed:missing>`.
//! The columns and their order are `COLUMNS` below (ARCHITECTURE.md §3 and more);
//! `workload` is left null for the workload classes.

use std::collections::HashMap;
use std::sync::Arc;

use ahash::RandomState;
use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder, StringViewBuilder,
                            StructBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt32Type};
use arrow_array::{new_null_array, Array, ArrayRef, BooleanArray, Float64Array, RecordBatch,
                  UInt32Array};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use arrow_select::interleave::interleave;
use arrow_select::take::take;
use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;

use crate::arrow_in::{ints_of, strs_of, ColumnError};
use crate::columns::batch;
use crate::filter::{fingerprint_form, search_fingerprint};
use crate::join::{Classes, Joined};

#[derive(Clone, Copy)]
enum Ty {
    Str,
    I64,
    F64,
    Bool,
    /// nanoseconds since the epoch, as a UTC timestamp
    Ts,
    /// `index_reads`: a list of `INDEX_READ` structs
    Reads,
}

impl Ty {
    fn data_type(self) -> DataType {
        match self {
            Ty::Str => DataType::Utf8View,
            Ty::I64 => DataType::Int64,
            Ty::F64 => DataType::Float64,
            Ty::Bool => DataType::Boolean,
            Ty::Ts => DataType::Int64, // cast to a timestamp at the end
            Ty::Reads => DataType::List(Arc::new(Field::new_list_field(
                DataType::Struct(index_read_fields()), true))),
        }
    }
}

/// Where a column's values come from.
#[derive(Clone, Copy)]
enum Source {
    /// the first of request, lone line, RESULT with a value (ids)
    Ids(&'static str),
    Req(&'static str),
    /// the request's, else the lone line's
    ReqOrLone(&'static str),
    Res(&'static str),
    /// the RESULT's, else the lone line's (ABANDON's nentries and etime)
    ResOrLone(&'static str),
    Conn(&'static str),
    /// a column of the join's structure (verb, bind_dn, abandoned)
    Structure(&'static str),
    Session,
    Duration,
    Fingerprint,
    FingerprintId,
    /// whether the RESULT's notes hold this letter
    Note(char),
    /// the index keys its STAT lines say the search read
    IndexReads,
    Absent,
}

use Source::*;

const COLUMNS: [(&str, Source, Ty); 66] = [
    ("server", Ids("server"), Ty::Str),
    ("conn", Ids("conn"), Ty::I64),
    ("session", Session, Ty::Ts),
    ("op", Ids("op"), Ty::I64),
    ("verb", Structure("verb"), Ty::Str),
    ("ts", ReqOrLone("ts"), Ty::Ts),
    ("result_ts", Res("ts"), Ty::Ts),
    ("bind_dn", Structure("bind_dn"), Ty::Str),
    ("client_ip", Conn("client_ip"), Ty::Str),
    ("base", Req("base"), Ty::Str),
    ("scope", Req("scope"), Ty::I64),
    ("filter", Req("filter"), Ty::Str),
    ("fingerprint", Fingerprint, Ty::Str),
    ("fingerprint_id", FingerprintId, Ty::Str),
    ("attrs", Req("attrs"), Ty::Str),
    ("dn", Req("dn"), Ty::Str),
    ("err", Res("err"), Ty::I64),
    ("nentries", ResOrLone("nentries"), Ty::I64),
    ("wqtime", Res("wqtime"), Ty::F64),
    ("wtime", Res("wtime"), Ty::F64),
    ("optime", Res("optime"), Ty::F64),
    ("writetime", Res("writetime"), Ty::F64),
    ("etime", ResOrLone("etime"), Ty::F64),
    ("wbusy", Res("wbusy"), Ty::I64),
    ("wmax", Res("wmax"), Ty::I64),
    ("wqdepth", Res("wqdepth"), Ty::I64),
    ("notes", Res("notes"), Ty::Str),
    ("details", Res("details"), Ty::Str),
    ("unindexed", Note('A'), Ty::Bool),
    ("partially_unindexed", Note('U'), Ty::Bool),
    ("paged", Note('P'), Ty::Bool),
    ("index_reads", IndexReads, Ty::Reads),
    ("workload", Absent, Ty::Str),
    ("internal", Ids("internal"), Ty::Bool),
    ("op_internal", Ids("op_internal"), Ty::I64),
    ("op_nested", Ids("op_nested"), Ty::I64),
    ("tag", Res("tag"), Ty::I64),
    ("result_text", Res("text"), Ty::Str),
    ("result_dn", Res("dn"), Ty::Str),
    ("authzid", Req("authzid"), Ty::Str),
    ("method", Req("method"), Ty::Str),
    ("mech", Req("mech"), Ty::Str),
    ("version", Req("version"), Ty::I64),
    ("newrdn", Req("newrdn"), Ty::Str),
    ("newsuperior", Req("newsuperior"), Ty::Str),
    ("attr", Req("attr"), Ty::Str),
    ("oid", Req("oid"), Ty::Str),
    ("name", Req("name"), Ty::Str),
    ("targetop", ReqOrLone("targetop"), Ty::Str),
    ("msgid", ReqOrLone("msgid"), Ty::I64),
    ("abandoned", Structure("abandoned"), Ty::Bool),
    ("options", Req("options"), Ty::Str),
    ("csn", Res("csn"), Ty::Str),
    ("pr_idx", Res("pr_idx"), Ty::I64),
    ("pr_cookie", Res("pr_cookie"), Ty::I64),
    ("sid", Res("sid"), Ty::Str),
    ("tls", Conn("tls"), Ty::Str),
    ("ldapi", Conn("ldapi"), Ty::Bool),
    ("ssl", Conn("ssl"), Ty::Bool),
    ("starttls", Conn("starttls"), Ty::Bool),
    ("conn_duration", Duration, Ty::F64),
    ("truncated", Req("truncated"), Ty::Bool),
    ("file", ReqOrLone("file"), Ty::Str),
    ("line", ReqOrLone("line"), Ty::I64),
    ("result_file", Res("file"), Ty::Str),
    ("result_line", Res("line"), Ty::I64),
];

/// The names of the operations table's columns, in order.
pub fn column_names() -> impl Iterator<Item = &'static str> {
    COLUMNS.iter().map(|(name, _, _)| *name)
}

fn error(e: impl std::fmt::Display) -> ColumnError {
    ColumnError(format!("operations: {e}"))
}

/// One side of the operations: a table and, per operation, its row there (null: none).
struct Side<'a> {
    table: &'a RecordBatch,
    rows: &'a UInt32Array,
}

/// The operations table of a bucket from its events (`c`) and their join (`j`).
pub fn operations(c: &Classes<'_>, j: &Joined, sort_operands: bool)
                  -> Result<RecordBatch, ColumnError> {
    let rows = |name: &str| -> Result<&UInt32Array, ColumnError> {
        j.operations.column_by_name(name)
            .and_then(|a| a.as_primitive_opt::<UInt32Type>())
            .ok_or_else(|| error(format!("the join gave no {name} rows")))
    };
    let request = Side { table: c.request, rows: rows("request")? };
    let result = Side { table: c.result, rows: rows("result")? };
    let lone = Side { table: c.lone, rows: rows("lone")? };
    let connection = Side { table: &j.connections, rows: rows("connection")? };
    let structure = |name: &str| j.operations.column_by_name(name)
        .ok_or_else(|| error(format!("the join gave no {name}")));
    let n = j.operations.num_rows();
    let filters = first_of(&[&request], "filter", Ty::Str, n)?;
    let verbs = j.operations.column_by_name("verb").ok_or_else(|| error("no verb"))?;
    let scopes = first_of(&[&request], "scope", Ty::I64, n)?;
    let (prints, ids) = fingerprints(verbs, &filters, &scopes, sort_operands)?;
    let notes = first_of(&[&result], "notes", Ty::Str, n)?;
    let opened = first_of(&[&connection], "opened", Ty::I64, n)?;
    let mut columns: Vec<(&str, ArrayRef)> = Vec::with_capacity(COLUMNS.len());
    for (name, from, ty) in COLUMNS {
        let column = match from {
            Ids(c) => first_of(&[&request, &lone, &result], c, ty, n)?,
            Req("filter") => filters.clone(),
            Req("scope") => scopes.clone(),
            Req(c) => first_of(&[&request], c, ty, n)?,
            ReqOrLone(c) => first_of(&[&request, &lone], c, ty, n)?,
            Res("notes") => notes.clone(),
            Res(c) => first_of(&[&result], c, ty, n)?,
            ResOrLone(c) => first_of(&[&result, &lone], c, ty, n)?,
            Conn(c) => first_of(&[&connection], c, ty, n)?,
            Structure(c) => structure(c)?.clone(),
            Session => opened.clone(),
            Duration => durations(&opened, &first_of(&[&connection], "closed", Ty::I64, n)?),
            Fingerprint => prints.clone(),
            FingerprintId => ids.clone(),
            Note(letter) => has_letter(&notes, letter)?,
            IndexReads => index_reads(c.other, structure("stat_rows")?)?,
            Absent => new_null_array(&ty.data_type(), n),
        };
        let column = match ty {
            Ty::Ts => arrow_cast::cast(&column, &DataType::Timestamp(TimeUnit::Nanosecond,
                                                                     Some("UTC".into())))
                .map_err(error)?,
            _ => column,
        };
        columns.push((name, column));
    }
    Ok(batch(columns))
}

/// Per operation, the value of `column` in the first side whose row has one (a side
/// whose table lacks the column has none); nulls of `ty` where no side has.
///
/// Strings are views: polars' own layout, so it imports them as they are (it converts
/// every value of other layouts), and views gathered from a side point into that side's
/// bytes instead of copying them: the operations keep the bytes of the events' string
/// columns they use and nothing else of the events (`shuffle::decode` gives each string
/// column bytes of its own). A column of one side (most) is gathered with `take`; of
/// several, each operation's (side, row) is picked and the sides interleaved.
fn first_of(sides: &[&Side<'_>], column: &str, ty: Ty, n: usize) -> Result<ArrayRef, ColumnError> {
    let present: Vec<(&ArrayRef, &UInt32Array)> = sides.iter()
        .filter_map(|s| s.table.column_by_name(column).map(|c| (c, s.rows)))
        .collect();
    // one type for all sides (producers differ in string layouts and integer widths): the
    // first side's, whether or not it has values, so a bucket's type does not depend on them
    let want = match (ty, present.first()) {
        (Ty::Str, _) => DataType::Utf8View,
        (_, Some((c, _))) => c.data_type().clone(),
        (_, None) => ty.data_type(),
    };
    let found: Vec<(&ArrayRef, &UInt32Array)> =
        present.into_iter().filter(|(c, _)| c.logical_null_count() < c.len()).collect();
    if found.is_empty() {
        // no side has a value (most columns are rare): nothing to gather
        return Ok(new_null_array(&ty.data_type(), n));
    }
    let columns: Vec<ArrayRef> = found.iter()
        .map(|(c, _)| {
            if let Ty::Str = ty {
                strs_of(c.as_ref(), "operations", column)?; // a string layout, not a cast number
            }
            if c.data_type() == &want { Ok((*c).clone()) }
            else { arrow_cast::cast(c, &want).map_err(error) }
        })
        .collect::<Result<_, _>>()?;
    let rows: Vec<&UInt32Array> = found.iter().map(|(_, r)| *r).collect();
    if let ([values], [rows]) = (columns.as_slice(), rows.as_slice()) {
        return take(values.as_ref(), *rows, None).map_err(error);
    }
    let picks = picks(&columns, &rows, n);
    if want == DataType::Boolean {
        return Ok(interleave_bools(&columns, &picks));
    }
    // a pick of no side is the one row of a null column after the sides
    let none = new_null_array(&want, 1);
    let arrays: Vec<&dyn Array> =
        columns.iter().map(|c| c.as_ref()).chain([none.as_ref()]).collect();
    interleave(&arrays, &picks).map_err(error)
}

/// Per operation, the first side (index in `columns`) whose row has a value, and that row;
/// `(columns.len(), 0)` where none has. Side by side, the last first, so that an earlier
/// side with a value overwrites a later one's pick: one tight loop per side, over the
/// operations that have a row there.
fn picks(columns: &[ArrayRef], rows: &[&UInt32Array], n: usize) -> Vec<(usize, usize)> {
    let mut picks = vec![(columns.len(), 0); n];
    for (side, (column, rows)) in columns.iter().zip(rows).enumerate().rev() {
        let valid = column.logical_nulls();
        let at = rows.values();
        let mut pick = |op: usize| {
            let row = at[op] as usize;
            if valid.as_ref().is_none_or(|v| v.is_valid(row)) {
                picks[op] = (side, row);
            }
        };
        match rows.nulls() {
            Some(present) => present.valid_indices().for_each(&mut pick),
            None => (0..n).for_each(pick),
        }
    }
    picks
}

/// `interleave` of boolean columns (arrow's takes its generic path for them, a copy
/// through `MutableArrayData` per value).
fn interleave_bools(columns: &[ArrayRef], picks: &[(usize, usize)]) -> ArrayRef {
    let bools: Vec<&BooleanArray> = columns.iter().map(|c| c.as_boolean()).collect();
    let k = bools.len();
    let values = BooleanBuffer::collect_bool(picks.len(), |i| {
        let (side, row) = picks[i];
        side < k && bools[side].value(row)
    });
    let valid = BooleanBuffer::collect_bool(picks.len(), |i| picks[i].0 < k);
    Arc::new(BooleanArray::new(values, Some(NullBuffer::new(valid))))
}

/// Seconds a connection lasted, where it was seen opening and closing: nanoseconds times
/// 1e-9, as the polars code computed it (within an ulp of a division; the golden tables
/// hold these values).
fn durations(opened: &ArrayRef, closed: &ArrayRef) -> ArrayRef {
    let (opened, closed) = (opened.as_primitive::<Int64Type>(), closed.as_primitive::<Int64Type>());
    Arc::new(opened.iter().zip(closed.iter())
        .map(|(o, c)| Some(c?.wrapping_sub(o?) as f64 * 1e-9))
        .collect::<Float64Array>())
}

/// The fields of one index key a search read (a `STAT read index` line).
fn index_read_fields() -> Fields {
    Fields::from(vec![
        Field::new("attribute", DataType::Utf8, true),
        Field::new("index", DataType::Utf8, true),
        Field::new("key", DataType::Utf8, true),
        Field::new("count", DataType::Int64, true),
    ])
}

/// One index key a search read.
#[derive(Debug, PartialEq)]
pub struct IndexRead<'a> {
    pub attribute: Option<&'a str>,
    pub index: Option<&'a str>,
    pub key: Option<&'a str>,
    /// candidates the key gave
    pub count: Option<i64>,
}

/// The key read of a STAT line's text, `read index: attribute=A key(T)=K --> count N
/// (duration S)` (result.c:2203 and :2221 at 70dcccaf; JSON's keys are put in that form
/// by `json.rs`). None for the search's summary line (`read index: duration S`) and
/// anything else. The key is the server's bytes and may hold anything, so the line is cut
/// at its last ` --> count `; `(null)` is how the server prints a missing value.
pub fn index_read(text: &str) -> Option<IndexRead<'_>> {
    let rest = text.strip_prefix("read index: attribute=")?;
    let (head, tail) = rest.rsplit_once(" --> count ")?;
    let count = tail.split(' ').next().and_then(|n| n.parse::<i64>().ok());
    let (attribute, rest) = head.split_once(" key(")?;
    let (index, key) = rest.split_once(")=")?;
    Some(IndexRead { attribute: present(attribute), index: present(index), key: present(key),
                     count })
}

fn present(v: &str) -> Option<&str> {
    (v != "(null)").then_some(v)
}

/// Each operation's index reads, from the `other` rows of its STAT lines (`stat_rows`);
/// null where none was logged, empty where only the summary line was.
fn index_reads(other: &RecordBatch, stat_rows: &ArrayRef) -> Result<ArrayRef, ColumnError> {
    let n = stat_rows.len();
    let ty = Ty::Reads.data_type();
    let Some(lists) = stat_rows.as_list_opt::<i32>() else {
        return Err(error("stat_rows is not a list"));
    };
    if lists.null_count() == n {
        return Ok(new_null_array(&ty, n));
    }
    let texts = strs_of(other.column_by_name("text")
        .ok_or_else(|| error("STAT lines without their text column"))?.as_ref(),
        "other", "text")?;
    let mut b = ListBuilder::new(StructBuilder::from_fields(index_read_fields(), 0))
        .with_field(Arc::new(Field::new_list_field(DataType::Struct(index_read_fields()), true)));
    for op in 0..n {
        if lists.is_null(op) {
            b.append_null();
            continue;
        }
        let rows = lists.value(op);
        for row in rows.as_primitive::<UInt32Type>().values() {
            let Some(read) = texts.get(*row as usize).and_then(index_read) else { continue };
            let s = b.values();
            s.field_builder::<StringBuilder>(0).expect("attribute").append_option(read.attribute);
            s.field_builder::<StringBuilder>(1).expect("index").append_option(read.index);
            s.field_builder::<StringBuilder>(2).expect("key").append_option(read.key);
            s.field_builder::<Int64Builder>(3).expect("count").append_option(read.count);
            s.append(true);
        }
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}

/// Whether each operation's notes hold `letter` (no notes: false).
fn has_letter(notes: &ArrayRef, letter: char) -> Result<ArrayRef, ColumnError> {
    let n = notes.len();
    let notes = strs_of(notes.as_ref(), "operations", "notes")?;
    Ok(Arc::new((0..n)
        .map(|op| Some(notes.get(op).is_some_and(|n| n.contains(letter))))
        .collect::<BooleanArray>()))
}

/// Each search's fingerprint (`search_fingerprint`: scope and filter) and its id, the
/// id of its comparison form (null for other verbs): every distinct (filter, scope)
/// fingerprinted once, every distinct fingerprint given its id once.
fn fingerprints(verbs: &ArrayRef, filters: &ArrayRef, scopes: &ArrayRef, sort_operands: bool)
                -> Result<(ArrayRef, ArrayRef), ColumnError> {
    let verb = strs_of(verbs.as_ref(), "operations", "verb")?;
    let filter = strs_of(filters.as_ref(), "operations", "filter")?;
    let scope = ints_of(scopes.as_ref(), "operations", "scope")?;
    let n = verbs.len();
    let mut prints: Vec<(String, String)> = Vec::new(); // (fingerprint, id)
    let mut print_of: HashMap<String, usize, RandomState> = HashMap::default();
    let mut filter_of: HashMap<(Option<&str>, Option<i64>), usize, RandomState> =
        HashMap::default();
    let mut print_col = StringViewBuilder::with_capacity(n);
    let mut id_col = StringViewBuilder::with_capacity(n);
    for op in 0..n {
        if verb.get(op) != Some("SRCH") {
            print_col.append_null();
            id_col.append_null();
            continue;
        }
        let (text, scope) = (filter.get(op), scope.get(op));
        let at = *filter_of.entry((text, scope)).or_insert_with(|| {
            let print = search_fingerprint(scope, text, sort_operands);
            *print_of.entry(print).or_insert_with_key(|print| {
                prints.push((print.clone(), fingerprint_id(&fingerprint_form(print))));
                prints.len() - 1
            })
        });
        let (print, id) = &prints[at];
        print_col.append_value(print);
        id_col.append_value(id);
    }
    Ok((Arc::new(print_col.finish()), Arc::new(id_col.finish())))
}

/// A short id of a fingerprint, the same on every machine: BLAKE2b with an 8-byte digest,
/// in hex (`fingerprint.fingerprint_id`).
pub fn fingerprint_id(print: &str) -> String {
    let mut hash = Blake2bVar::new(8).expect("8 bytes is a BLAKE2b digest length");
    hash.update(print.as_bytes());
    let mut digest = [0u8; 8];
    hash.finalize_variable(&mut digest).expect("the buffer has the digest's length");
    digest.iter().flat_map(|b| [b >> 4, b & 15]).map(|d| char::from(b"0123456789abcdef"[d as usize])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::join::{as_shuffled, join, EVERYTHING};
    use crate::tokenize::{tokenize, Options};

    fn operations_of(text: &str) -> RecordBatch {
        let t = tokenize(text.as_bytes(), &Options { first_line: 1, final_block: true, strict: true });
        let c: Vec<RecordBatch> = t.events.iter().map(|b| as_shuffled(b, "s", 0)).collect();
        let classes = Classes { request: &c[0], result: &c[1], lone: &c[2], other: &c[3] };
        operations(&classes, &join(&classes, EVERYTHING).unwrap(), false).unwrap()
    }

    #[test]
    fn index_reads_of_stat_texts() {
        let read = |a, i, k, c| Some(IndexRead { attribute: a, index: i, key: k, count: c });
        assert_eq!(index_read("read index: attribute=uid key(eq)=a --> count 1 (duration 0.1)"),
                   read(Some("uid"), Some("eq"), Some("a"), Some(1)));
        // a key that holds the separators, and the server's (null)
        assert_eq!(index_read("read index: attribute=cn key(sub)=a) --> count 3 --> count 7 \
                               (duration 0.1)"),
                   read(Some("cn"), Some("sub"), Some("a) --> count 3"), Some(7)));
        assert_eq!(index_read("read index: attribute=(null) key((null))=(null) --> count 0 \
                               (duration 0.1)"), read(None, None, None, Some(0)));
        assert_eq!(index_read("read index: duration 0.000020000"), None);
        assert_eq!(index_read("read index: attribute=uid"), None);
    }

    fn strings(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let c = b.column_by_name(name).unwrap();
        let c = arrow_cast::cast(c, &DataType::Utf8).unwrap();
        c.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn a_string_column_of_another_type_is_an_error_naming_it() {
        let t = "[26/Nov/2026:16:22:20.000000001 +0000] ";
        let text = format!("{t}conn=1 op=1 SRCH base=\"dc=x\" scope=2 filter=\"(uid=b)\" attrs=ALL\n");
        let t = tokenize(text.as_bytes(), &Options { first_line: 1, final_block: true, strict: true });
        let mut c: Vec<RecordBatch> = t.events.iter().map(|b| as_shuffled(b, "s", 0)).collect();
        let at = c[0].schema().index_of("base").unwrap();
        let mut columns = c[0].columns().to_vec();
        columns[at] = Arc::new(arrow_array::Int64Array::from(vec![7]));
        let mut fields: Vec<arrow_schema::Field> =
            c[0].schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[at] = arrow_schema::Field::new("base", DataType::Int64, true);
        c[0] = RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns).unwrap();
        let classes = Classes { request: &c[0], result: &c[1], lone: &c[2], other: &c[3] };
        let e = operations(&classes, &join(&classes, EVERYTHING).unwrap(), false).unwrap_err();
        assert!(e.0.contains("\"base\"") && e.0.contains("expected a string"), "{e}");
    }

    #[test]
    fn the_id_is_blake2b_of_8_bytes_as_python_computes_it() {
        // hashlib.blake2b(b"(uid=...)", digest_size=8).hexdigest()
        assert_eq!(fingerprint_id("(uid=...)"), "e17f27b49f526474");
    }

    #[test]
    fn an_operation_takes_ids_from_its_first_line_with_them_and_times_from_each_line() {
        let t = "[26/Nov/2026:16:22:20.000000001 +0000] ";
        let u = "[26/Nov/2026:16:22:21.000000002 +0000] ";
        let text = format!(
            "{t}conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2\n\
             {t}conn=1 op=1 SRCH base=\"dc=x\" scope=2 filter=\"(uid=b)\" attrs=ALL\n\
             {u}conn=1 op=1 RESULT err=0 tag=101 nentries=1 wtime=0.5 etime=0.25 notes=U,P\n\
             {u}conn=1 op=2 RESULT err=0 tag=101 nentries=3 etime=0.5\n\
             {u}conn=1 op=3 SRCH base=\"dc=x\" scope=2 filter=\"(uid=c)\" attrs=ALL\n\
             {u}conn=1 op=4 ABANDON targetop=3 msgid=4 nentries=0 etime=0.75\n\
             {u}conn=1 op=5 UNBIND\n\
             {u}conn=1 op=-1 fd=64 closed - U1\n"
        );
        let ops = operations_of(&text);
        assert_eq!(column_names().collect::<Vec<_>>(),
                   ops.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>());
        let s = |name| strings(&ops, name);
        let some = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
        // in order of time (the RESULT without a request has none: last); it gives the ids
        assert_eq!(s("verb"), some(&["SRCH", "SRCH", "ABANDON", "UNBIND", "SRCH"]));
        assert_eq!(ops.column_by_name("op").unwrap().as_primitive::<Int64Type>().values().to_vec(),
                   vec![1, 3, 4, 5, 2]);
        assert!(ops.column_by_name("ts").unwrap().is_null(4));
        // only searches get a fingerprint, their scope's first; one without a filter is
        // <unparsed:missing>, one without a scope has none
        let print = Some("sub (uid=...)".to_string());
        assert_eq!(s("fingerprint"), vec![print.clone(), print, None, None,
                                          Some("<unparsed:missing>".into())]);
        assert_eq!(s("fingerprint_id")[0].as_deref(), Some(fingerprint_id("sub (uid=...)").as_str()));
        // the ABANDON's own nentries; the RESULT's for the others
        let nentries: Vec<Option<i64>> =
            ops.column_by_name("nentries").unwrap().as_primitive::<Int64Type>().iter().collect();
        assert_eq!(nentries, vec![Some(1), None, Some(0), None, Some(3)]);
        let ts = ops.column_by_name("result_ts").unwrap();
        assert_eq!(ts.data_type(), &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())));
        let flags = |name| ops.column_by_name(name).unwrap().as_boolean().iter().collect::<Vec<_>>();
        let (yes, no) = (Some(true), Some(false));
        assert_eq!(flags("partially_unindexed"), vec![yes, no, no, no, no]);
        assert_eq!(flags("paged"), vec![yes, no, no, no, no]);
        assert_eq!(flags("unindexed"), vec![no, no, no, no, no]);
        assert_eq!(flags("abandoned"), vec![no, yes, no, no, no]);
        let duration = ops.column_by_name("conn_duration").unwrap()
            .as_primitive::<arrow_array::types::Float64Type>();
        assert!((duration.value(0) - 1.000_000_001).abs() < 1e-9);
        assert_eq!(s("client_ip")[3].as_deref(), Some("10.0.0.1"));
        assert_eq!(ops.column_by_name("workload").unwrap().null_count(), 5);
    }
}
