//! Stage A's side of the shuffle: the events of one parse task, by class, into one file
//! per class holding a record batch per (bucket, sub-bucket) of the task's server;
//! `pipeline/engine/shuffle.py` writes and reads them, and `partition.bucket_layout` places the
//! server's buckets.
//!
//! Per class: rows outside the time window are dropped, but for those before it that
//! are a connection's context (its open, TLS and BIND lines: `in_window`), which the
//! join reads for who the connection is and does not count; each row gets a key, its
//! connection number, or for a row of no connection (`conn=Internal(0)`, which repeats
//! op ids again and again) a mix of its op ids: rows with other ids never pair, so they
//! need not meet, and such rows spread over the buckets instead of all landing in one.
//! `mixed = (key * 2^64/φ) ^ seed(server)`, plain integer arithmetic, so every process
//! agrees (the seed is a blake2b digest of the server name, `server_seed`);
//! the bucket is `(mixed >> 32) mod buckets`, the sub-bucket `(mixed mod 2^32) mod subs`.
//! Rows are ordered by (bucket, sub-bucket), batch `b * subs + s`. The columns are those
//! of the class (`schema.EVENT_CLASSES`) that have a value in this task, and the task's
//! server, file and file order are the schema's metadata: a class leaves most columns
//! null (a RESULT has no filter), and a column of nulls or of one repeated name still
//! cost its bytes to compress, decompress and convert, two thirds of a request table.
//! `decode` gives a join task its bucket as one table of the class's columns again.
//!
//! The file is an Arrow IPC stream's schema message, then each batch's message as one
//! LZ4 block, then an index, so a join task reads its bucket's batches with one ranged
//! read, whatever the number of buckets (an IPC file's footer is read whole, O(batches),
//! by every reader). One block per batch, not Arrow's own LZ4 frame per buffer: a frame
//! costs a few microseconds to start, and a task's files hold tens of thousands of small
//! buffers (decoding them took longer than everything else a join task reads).
//!
//! The schema message and every block carry a CRC-32 that decoding checks first: a
//! scratch file damaged on its disk or cut by a full one is an error naming what is
//! wrong, not bytes handed to the IPC reader, which panics on some damaged messages
//! (the `shuffle` fuzz target found one within seconds: a buffer offset out of range).
//!
//! ```text
//! header: CRC-32 of the schema message: u32 LE, the stream's schema message (its
//!         metadata: server, file, file_seq)
//! batch:  compressed length: u32 LE, message length: u32 LE, CRC-32 of the block: u32 LE,
//!         the LZ4 block of the message
//! index:  n + 1 entries of (offset: u64 LE, bytes in memory: u64 LE): entry i's offset is
//!         where batch i starts (entry n's: where the index starts); bytes estimate the
//!         batch's size once decoded (rows x the bytes per row of the file's columns and
//!         of those decoding adds back)
//! tail:   the header's length (where batch 0 starts): u64 LE, n: u64 LE, the magic
//!         b"DSSHUF03"
//! ```
//! A sub-bucket is a unit a join task can process on its own (its connections are whole
//! in it), so a bucket over its memory budget is joined a few sub-buckets at a time.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    new_null_array, Array, ArrayRef, Int32Array, LargeStringArray, RecordBatch,
    RecordBatchOptions, UInt32Array,
};
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Schema, SchemaRef};
use arrow_select::concat::concat;
use arrow_select::filter::filter_record_batch;
use arrow_select::take::take;

use crate::arrow_in::{strs, ColumnError};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15; // 2^64 / golden ratio

/// Where the task's lines come from: in every row of the tables a join task reads, and
/// once in each shuffle file's metadata.
pub struct Provenance<'a> {
    pub server: &'a str,
    pub file: &'a str,
    pub file_seq: i32,
}

/// The columns every event class has in the shuffle.
const IDS: [(&str, DataType); 11] = [
    ("server", DataType::LargeUtf8), ("file", DataType::LargeUtf8), ("file_seq", DataType::Int32),
    ("line", DataType::Int64), ("ts", DataType::Int64), ("kind", DataType::LargeUtf8),
    ("conn", DataType::Int64), ("internal", DataType::Boolean), ("op", DataType::Int64),
    ("op_internal", DataType::Int64), ("op_nested", DataType::Int64),
];

/// What the join and the operations read of each class (`tokenize::CLASS_NAMES`), after
/// the ids: the tokenizer's other columns stay in the parse task.
const CLASS_COLUMNS: [&[&str]; 4] = [
    &["dn", "base", "scope", "filter", "attrs", "options", "authzid", "method", "version", "mech",
      "newrdn", "newsuperior", "attr", "oid", "name", "targetop", "msgid", "truncated"],
    &["dn", "text", "err", "tag", "nentries", "wqtime", "wtime", "optime", "writetime", "etime",
      "notes", "details", "csn", "pr_idx", "pr_cookie", "sid", "wbusy", "wmax", "wqdepth"],
    &["targetop", "msgid", "nentries", "etime"],
    // text: a STAT line's index read (`operations::index_read`)
    &["fd", "client_ip", "server_ip", "ssl", "close_code", "tls_version", "dn", "text"],
];

/// Each event class's columns and types in the shuffle, in `tokenize::CLASS_NAMES` order:
/// what a parse task keeps and a join task decodes (`schema.EVENT_CLASSES` reads them).
pub fn class_schemas() -> &'static [SchemaRef; 4] {
    static SCHEMAS: std::sync::OnceLock<[SchemaRef; 4]> = std::sync::OnceLock::new();
    SCHEMAS.get_or_init(|| CLASS_COLUMNS.map(|columns| {
        let payload = columns.iter()
            .map(|name| (*name, crate::tokenize::column_type(name).expect("a tokenizer column")));
        let fields: Vec<arrow_schema::Field> = IDS.iter().cloned().chain(payload)
            .map(|(name, t)| arrow_schema::Field::new(name, t, true))
            .collect();
        Arc::new(Schema::new(fields))
    }))
}

/// The columns that hold the provenance.
const PROVENANCE: [&str; 3] = ["server", "file", "file_seq"];

impl<'a> Provenance<'a> {
    fn metadata(&self) -> HashMap<String, String> {
        HashMap::from([("server".into(), self.server.into()), ("file".into(), self.file.into()),
                       ("file_seq".into(), self.file_seq.to_string())])
    }

    fn from_metadata(meta: &'a HashMap<String, String>) -> Result<Self, ColumnError> {
        let get = |k: &str| meta.get(k).map(String::as_str)
            .ok_or_else(|| bad(&format!("no {k} in its metadata")));
        Ok(Provenance {
            server: get("server")?,
            file: get("file")?,
            file_seq: get("file_seq")?.parse()
                .map_err(|_| bad("file_seq is no number"))?,
        })
    }
}

/// The task's events in the shuffle's layout, and what the client needs of them.
pub struct Encoded {
    /// One shuffle file per class, in the order given.
    pub files: Vec<Vec<u8>>,
    /// Earliest and latest time of the events inside the window.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// Events inside the window (the rest are parsed lines outside it, a few of them
    /// kept as context).
    pub kept: u64,
    /// Earliest and latest time of every event read, in the window or not (what a
    /// window that holds none is told against).
    pub span: Option<(i64, i64)>,
}

/// What ends a shuffle file (after its index and the batch count).
pub const MAGIC: &[u8; 8] = b"DSSHUF03";

/// The shuffle key of a row: its connection number, or a mix of its op ids (FNV-1a over
/// their bytes) when it has no connection.
pub fn key_of(conn: Option<i64>, ids: [Option<i64>; 3]) -> u64 {
    if let Some(c) = conn {
        return c as u64;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for byte in id.unwrap_or(-1).to_le_bytes() {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Sub-buckets per bucket: a join task whose bucket outgrew its memory budget joins them
/// a few at a time (a connection is whole in one). Each is a record batch in every
/// shuffle file, so more of them cost index and batch headers in every file.
pub const SUBS: u32 = 8;

/// A 63-bit seed per server name, the same in every process: the BLAKE2b digest of the
/// name in 8 bytes, big-endian, shifted right once (Python's
/// `int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big") >> 1`).
pub fn server_seed(server: &str) -> u64 {
    use blake2::digest::{Update, VariableOutput};
    let mut h = blake2::Blake2bVar::new(8).expect("8 is a valid BLAKE2b size");
    h.update(server.as_bytes());
    let mut out = [0u8; 8];
    h.finalize_variable(&mut out).expect("8 bytes");
    u64::from_be_bytes(out) >> 1
}

/// The (bucket, sub-bucket) of a key of a server.
pub fn bucket_of(key: u64, seed: u64, buckets: u32, subs: u32) -> (u32, u32) {
    let mixed = key.wrapping_mul(GOLDEN) ^ seed;
    (((mixed >> 32) % u64::from(buckets)) as u32,
     ((mixed & 0xFFFF_FFFF) % u64::from(subs)) as u32)
}

fn error(e: impl std::fmt::Display) -> ColumnError {
    ColumnError(e.to_string())
}

/// Encode one task's tables (one per class, with `schemas[i]` the class's columns).
pub fn encode(
    tables: &[RecordBatch],
    schemas: &[SchemaRef],
    provenance: &Provenance<'_>,
    window: Window,
    (buckets, subs): (u32, u32),
    seed: u64,
) -> Result<Encoded, ColumnError> {
    if buckets == 0 || subs == 0 {
        return Err(ColumnError("buckets and sub-buckets must be at least 1".into()));
    }
    let batches = buckets as usize * subs as usize;
    let mut out = Encoded { files: Vec::new(), first_ts: None, last_ts: None, kept: 0, span: None };
    for (table, schema) in tables.iter().zip(schemas) {
        if window != EVERYTHING {  // (without a window the span is the kept events', below)
            for t in int_column(table, "ts")?.iter().flatten() {
                out.span = Some(out.span.map_or((t, t), |(f, l)| (f.min(t), l.max(t))));
            }
        }
        let table = in_window(table, window)?;
        let ts = int_column(&table, "ts")?;
        for t in ts.iter().flatten().filter(|t| inside(*t, window)) {
            out.first_ts = Some(out.first_ts.map_or(t, |f| f.min(t)));
            out.last_ts = Some(out.last_ts.map_or(t, |l| l.max(t)));
            out.kept += 1;
        }
        let conn = int_column(&table, "conn")?;
        let ids = [int_column(&table, "op")?, int_column(&table, "op_internal")?,
                   int_column(&table, "op_nested")?];
        // rows by batch: a counting sort, stable, so rows keep their order in a batch
        let of_row: Vec<u32> = (0..table.num_rows())
            .map(|r| {
                let key = key_of(conn.get(r), [ids[0].get(r), ids[1].get(r), ids[2].get(r)]);
                let (b, s) = bucket_of(key, seed, buckets, subs);
                b * subs + s
            })
            .collect();
        let mut starts = vec![0u32; batches + 1];
        for b in &of_row {
            starts[*b as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; of_row.len()];
        for (row, b) in of_row.iter().enumerate() {
            order[next[*b as usize] as usize] = row as u32;
            next[*b as usize] += 1;
        }
        let order = UInt32Array::from(order);
        // the class's columns that have a value in this task (the reader fills the others
        // with nulls), in the class's order; the provenance goes in the schema's metadata
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for f in schema.fields() {
            if PROVENANCE.contains(&f.name().as_str()) {
                continue;
            }
            if let Some(c) = column(&table, f.name(), f.data_type())? {
                fields.push(f.as_ref().clone());
                columns.push(take(c.as_ref(), &order, None).map_err(error)?);
            }
        }
        let layout = Arc::new(Schema::new_with_metadata(fields, provenance.metadata()));
        let sorted = RecordBatch::try_new_with_options(
            layout.clone(), columns, &RecordBatchOptions::new().with_row_count(Some(order.len())))
            .map_err(error)?;
        // what a row weighs once decoded: its columns here, and those decode adds back
        // (provenance, and nulls for the columns this file left out)
        let added: u64 = schema.fields().iter()
            .filter(|f| layout.field_with_name(f.name()).is_err())
            .map(|f| decoded_null_bytes(f.data_type()))
            .sum();
        let per_row = sorted.get_array_memory_size() as u64 / (sorted.num_rows().max(1) as u64)
            + added;
        let mut writer = StreamWriter::try_new(Vec::new(), &layout).map_err(error)?;
        let header = writer.get_ref().len();
        let mut file = Vec::with_capacity(HEADER_CRC + header);
        file.extend_from_slice(&crc32fast::hash(writer.get_ref()).to_le_bytes());
        file.extend_from_slice(writer.get_ref());
        let mut index: Vec<(u64, u64)> = Vec::with_capacity(batches + 1);
        for b in 0..batches {
            let (from, to) = (starts[b] as usize, starts[b + 1] as usize);
            index.push((file.len() as u64, (to - from) as u64 * per_row));
            // the batch's message, then one LZ4 block of it in the file
            writer.write(&sorted.slice(from, to - from)).map_err(error)?;
            let message = &writer.get_ref()[header..];
            let block = lz4_flex::block::compress(message);
            let too_big = || ColumnError("shuffle: a batch over 4 GiB".into());
            file.extend_from_slice(&u32::try_from(block.len()).map_err(|_| too_big())?.to_le_bytes());
            file.extend_from_slice(&u32::try_from(message.len()).map_err(|_| too_big())?.to_le_bytes());
            file.extend_from_slice(&crc32fast::hash(&block).to_le_bytes());
            file.extend_from_slice(&block);
            writer.get_mut().truncate(header);
        }
        index.push((file.len() as u64, 0));
        file.reserve(index.len() * 16 + 24);
        for (offset, bytes) in &index {
            file.extend_from_slice(&offset.to_le_bytes());
            file.extend_from_slice(&bytes.to_le_bytes());
        }
        file.extend_from_slice(&((HEADER_CRC + header) as u64).to_le_bytes());
        file.extend_from_slice(&(batches as u64).to_le_bytes());
        file.extend_from_slice(MAGIC);
        out.files.push(file);
    }
    if window == EVERYTHING {
        out.span = out.first_ts.zip(out.last_ts);
    }
    Ok(out)
}

/// Bytes per row of a column `decode` makes (provenance, or nulls): for a string, a
/// view's 16 (a large string's offset takes 8), else a value and its validity.
fn decoded_null_bytes(t: &DataType) -> u64 {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 16,
        other => other.primitive_width().map_or(8, |w| w as u64),
    }
}

/// Batch `i` of a shuffle file, found through its index, in the file's own columns (for
/// tests and fuzzing; a join task reads through `decode`).
pub fn read_batch(file: &[u8], i: usize) -> Result<RecordBatch, ColumnError> {
    let (header, n, index) = layout(file)?;
    if i >= n {
        return Err(bad("no such batch"));
    }
    let entry = |k: usize| word64(file, index + k * 16).map(|v| v as usize);
    let (from, to) = (entry(i)?, entry(i + 1)?);
    if !(header <= from && from <= to && to <= index) {
        return Err(bad("offsets out of order"));
    }
    let mut batches = batches_of(&file[..header], &file[from..to])?.into_iter();
    match (batches.next(), batches.next()) {
        (Some(b), None) => Ok(b),
        _ => Err(bad("not one batch at its offset")),
    }
}

/// A whole shuffle file as one piece, every batch of it (for tests, fuzzing and the
/// examples; a join task's pieces are ranged reads, `pipeline/engine/shuffle.py`).
pub fn whole<'a>(file: &'a [u8], source: &'a str) -> Result<Piece<'a>, ColumnError> {
    let (header, _, index) = layout(file)?;
    if header > index {
        return Err(bad("its header past its index"));
    }
    Ok(Piece { header: &file[..header], batches: &file[header..index], line_offset: 0, source })
}

/// From a file's tail: its header's length, its batch count, and where its index starts.
fn layout(file: &[u8]) -> Result<(usize, usize, usize), ColumnError> {
    if file.len() < TAIL {
        return Err(bad("no index (magic)"));
    }
    layout_of_tail(&file[file.len() - TAIL..], file.len())
}

/// `layout` from a file's last `TAIL` bytes and its size (a reader that reads by range).
fn layout_of_tail(tail: &[u8], size: usize) -> Result<(usize, usize, usize), ColumnError> {
    // (a parse task's routed lines, `route`, are framed as this file is)
    if tail.len() != TAIL || (&tail[16..] != MAGIC && &tail[16..] != crate::route::MAGIC) {
        return Err(bad("no index (magic)"));
    }
    let (header, n) = (word64(tail, 0)? as usize, word64(tail, 8)? as usize);
    let index = n.checked_add(1).and_then(|k| k.checked_mul(16)).and_then(|k| k.checked_add(TAIL))
        .and_then(|k| size.checked_sub(k)).ok_or_else(|| bad("index cut"))?;
    Ok((header, n, index))
}

/// Where a join task reads one bucket of a file it reads by range: the file's header is
/// bytes `0..header`, and the bucket's index entries (its `subs` sub-buckets and where
/// the last ends) are `length` bytes at `entries`: `(header, entries, length)`, from the
/// file's last `TAIL` bytes and its size. A file that is not of this layout, or has no
/// such bucket, is an error.
pub fn bucket_place(tail: &[u8], size: usize, bucket: usize, subs: usize)
                    -> Result<(usize, usize, usize), ColumnError> {
    let (header, n, index) = layout_of_tail(tail, size)?;
    let wanted = bucket.checked_add(1).and_then(|b| b.checked_mul(subs));
    if wanted.is_none_or(|w| n < w) || header == 0 || header > index {
        return Err(bad(&format!("not of this run ({n} batches)")));
    }
    Ok((header, index + bucket * subs * 16, (subs + 1) * 16))
}

/// A bucket's index entries (as `bucket_place` found them): where each sub-bucket starts
/// and where the last ends, and what each weighs once decoded. Offsets that run backwards
/// or past the header's end are an error.
pub fn bucket_entries(raw: &[u8], header: usize) -> Result<(Vec<u64>, Vec<u64>), ColumnError> {
    if raw.len() < 16 || !raw.len().is_multiple_of(16) {
        return Err(bad("index cut"));
    }
    let mut offsets = Vec::with_capacity(raw.len() / 16);
    let mut sizes = Vec::with_capacity(raw.len() / 16);
    for at in (0..raw.len()).step_by(16) {
        let offset = word64(raw, at)?;
        if offset < offsets.last().copied().unwrap_or(header as u64) {
            return Err(bad("offsets out of order"));
        }
        offsets.push(offset);
        sizes.push(word64(raw, at + 8)?);
    }
    sizes.pop(); // the last entry only says where the bucket ends
    Ok((offsets, sizes))
}

fn bad(what: &str) -> ColumnError {
    ColumnError(format!("shuffle file: {what}"))
}

fn word64(file: &[u8], at: usize) -> Result<u64, ColumnError> {
    let bytes = file.get(at..at + 8).ok_or_else(|| bad("cut short"))?;
    Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
}

/// Bytes after the index: the header's length, the batch count, the magic.
pub const TAIL: usize = 24;

/// Bytes before the header's schema message: its CRC-32.
const HEADER_CRC: usize = 4;

/// A batch's bytes before its LZ4 block: its length, its message's, its CRC-32.
const BLOCK_HEAD: usize = 12;

/// One piece of a bucket: a shuffle file's header (its bytes before batch 0), the bytes
/// of some of its consecutive batches, the lines before its chunk in its file, and the
/// file's name (what an error names).
pub struct Piece<'a> {
    pub header: &'a [u8],
    pub batches: &'a [u8],
    pub line_offset: i64,
    pub source: &'a str,
}

/// The batches of `pieces` as one table of `schema` (a class's columns and types): the
/// columns a file left out are nulls, the provenance comes from each file's metadata,
/// and line numbers are made absolute.
pub fn decode(pieces: &[Piece<'_>], schema: &SchemaRef) -> Result<RecordBatch, ColumnError> {
    let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); schema.fields().len()];
    let mut rows = 0usize;
    for piece in pieces {
        let batches = batches_of(piece.header, piece.batches)
            .map_err(|e| ColumnError(format!("{}: {}", piece.source, e.0)))?;
        for batch in batches {
            let n = batch.num_rows();
            if n == 0 {
                continue;
            }
            rows += n;
            let provenance = Provenance::from_metadata(batch.schema_ref().metadata())?;
            for (f, out) in schema.fields().iter().zip(parts.iter_mut()) {
                let want = f.data_type();
                out.push(match (f.name().as_str(), batch.column_by_name(f.name())) {
                    ("server", _) => constant(provenance.server, want, n)?,
                    ("file", _) => constant(provenance.file, want, n)?,
                    ("file_seq", _) => Arc::new(Int32Array::from(vec![provenance.file_seq; n])),
                    ("line", Some(line)) => {
                        let line = line.as_primitive_opt::<Int64Type>()
                            .ok_or_else(|| bad("line is not Int64"))?;
                        Arc::new(line.try_unary::<_, Int64Type, _>(|l| {
                            l.checked_add(piece.line_offset).ok_or_else(|| {
                                arrow_schema::ArrowError::ComputeError("line number overflow".into())
                            })
                        }).map_err(error)?)
                    }
                    (_, Some(c)) if c.data_type() == want => c.clone(),
                    (name, Some(c)) => return Err(bad(&format!(
                        "column {name:?} is {}, expected {want}", c.data_type()))),
                    (_, None) => new_null_array(want, n),
                });
            }
        }
    }
    // a column's pieces are freed once it is one array: the table is not held twice. A
    // string column of one piece is a slice of its batch's whole message: copied, so the
    // operations, which keep the bytes of their string columns (`operations::strings`),
    // keep no other column's
    let columns = parts
        .into_iter()
        .zip(schema.fields())
        .map(|(arrays, f)| match arrays.len() {
            0 => Ok(new_null_array(f.data_type(), 0)),
            1 if !matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8) => {
                Ok(arrays[0].clone())
            }
            // (with none of its rows after it: concat copies arrays, but slices a lone one)
            1 => concat(&[arrays[0].as_ref(), &arrays[0].slice(0, 0)]).map_err(error),
            _ => concat(&arrays.iter().map(|a| a.as_ref()).collect::<Vec<_>>()).map_err(error),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(schema.clone(), columns,
                                      &RecordBatchOptions::new().with_row_count(Some(rows)))
        .map_err(error)
}

/// The record batches of a run of a file's batches (LZ4 blocks of their messages), read
/// as a stream after the file's header (their schema carries its metadata).
fn batches_of(header: &[u8], mut blocks: &[u8]) -> Result<Vec<RecordBatch>, ColumnError> {
    let cut = || bad("a batch cut short");
    let damaged = |what: &str| bad(&format!("{what} damaged (its checksum differs)"));
    let word = |bytes: &[u8], at: usize| bytes.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let schema = header.get(HEADER_CRC..).ok_or_else(|| bad("its header cut short"))?;
    if word(header, 0) != Some(crc32fast::hash(schema)) {
        return Err(damaged("its header"));
    }
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    // a message whose body is empty (the schema, a batch of no rows) is decoded when the
    // next bytes come, so every feed takes all the batches it completes
    let mut feed = |bytes: Buffer, out: &mut Vec<RecordBatch>| -> Result<(), ColumnError> {
        let mut bytes = bytes;
        while !bytes.is_empty() {
            match decoder.decode(&mut bytes).map_err(error)? {
                Some(batch) => out.push(batch),
                None => break,
            }
        }
        Ok(())
    };
    feed(Buffer::from(schema.to_vec()), &mut out)?;
    while !blocks.is_empty() {
        let field = |at: usize| word(blocks, at).ok_or_else(cut);
        let (packed, size, crc) = (field(0)? as usize, field(4)? as usize, field(8)?);
        let block = blocks.get(BLOCK_HEAD..BLOCK_HEAD + packed).ok_or_else(cut)?;
        if crc32fast::hash(block) != crc {
            return Err(damaged("a batch"));
        }
        if size > packed.saturating_mul(255) + 64 { // more than LZ4 can expand to
            return Err(bad("a batch of an impossible size"));
        }
        // into fresh memory, not zeroed first (zeroing it was a tenth of decoding)
        let message = lz4_flex::block::decompress(block, size).map_err(error)?;
        if message.len() != size {
            return Err(bad("a batch of another size"));
        }
        // the batch's arrays are slices of its message: decoded without another copy
        feed(Buffer::from(message), &mut out)?;
        blocks = &blocks[BLOCK_HEAD + packed..];
    }
    feed(Buffer::from(END_OF_STREAM.to_vec()), &mut out)?;
    Ok(out)
}

/// An IPC stream's end: the continuation marker and a zero length.
const END_OF_STREAM: [u8; 8] = [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];

pub(crate) fn constant(value: &str, want: &DataType, n: usize) -> Result<ArrayRef, ColumnError> {
    Ok(match want {
        DataType::LargeUtf8 => Arc::new(LargeStringArray::from(vec![value; n])),
        DataType::Utf8 => Arc::new(arrow_array::StringArray::from(vec![value; n])),
        DataType::Utf8View => Arc::new(arrow_array::StringViewArray::from(vec![value; n])),
        other => return Err(ColumnError(format!("shuffle: a provenance column as {other}"))),
    })
}

fn int_column<'a>(table: &'a RecordBatch, name: &str)
                  -> Result<crate::arrow_in::Ints<'a>, ColumnError> {
    crate::arrow_in::ints(table, "events", name)
}

/// A run's time window, `since <= ts < until` in ns (either end open).
pub type Window = (Option<i64>, Option<i64>);

/// No window: every event counts.
pub const EVERYTHING: Window = (None, None);

/// Whether a time is in the window `since <= t < until`.
pub fn inside(t: i64, (since, until): Window) -> bool {
    since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u)
}

/// Kinds of lines before the window that the join needs to know who a connection is in
/// the window: its open line (client, server, TLS), TLS, AUTOBIND and HAProxy lines, and
/// its BIND and extended (StartTLS) requests. BIND RESULTs (`tag=97`) come too.
const CONTEXT_KINDS: [&str; 6] = ["CONNECT", "TLS", "AUTOBIND", "HAPROXY", "BIND", "EXT"];

/// The rows of a class table a task sends to the join: those in the window, and those
/// before it that are a connection's context (`CONTEXT_KINDS`, BIND RESULTs), which the
/// join reads for identity and client and does not count (a pooled connection opened
/// at 02:00 keeps its bind DN in a window from 08:00). Rows without a time go.
fn in_window(table: &RecordBatch, window: Window)
             -> Result<RecordBatch, ColumnError> {
    if window == EVERYTHING {
        return Ok(table.clone());
    }
    let ts = int_column(table, "ts")?;
    let kind = strs(table, "events", "kind")?;
    let tag = match table.column_by_name("tag") {
        Some(_) => Some(int_column(table, "tag")?),
        None => None,
    };
    let context = |r: usize| kind.get(r).is_some_and(|k| CONTEXT_KINDS.contains(&k))
        || (kind.get(r) == Some("RESULT") && tag.as_ref().and_then(|t| t.get(r)) == Some(97));
    let keep: arrow_array::BooleanArray = (0..table.num_rows())
        .map(|r| Some(ts.get(r).is_some_and(|t| {
            inside(t, window) || (window.0.is_some_and(|s| t < s) && context(r))
        })))
        .collect();
    filter_record_batch(table, &keep).map_err(error)
}

/// A table's columns in the order and types of `schema` (a class's): those `given`
/// returns (the provenance), the table's own (`column`), nulls for the others.
pub(crate) fn fitted(
    table: &RecordBatch,
    schema: &SchemaRef,
    given: impl Fn(&str, &DataType) -> Result<Option<ArrayRef>, ColumnError>,
) -> Result<Vec<ArrayRef>, ColumnError> {
    schema.fields().iter().map(|f| {
        let (name, want) = (f.name().as_str(), f.data_type());
        Ok(match given(name, want)? {
            Some(c) => c,
            None => column(table, name, want)?
                .unwrap_or_else(|| new_null_array(want, table.num_rows())),
        })
    }).collect()
}

/// A column of the class's layout from the table, as LargeUtf8 where the producer gave
/// another string layout; None where the table has no value in it.
fn column(table: &RecordBatch, name: &str, want: &DataType)
          -> Result<Option<ArrayRef>, ColumnError> {
    Ok(match table.column_by_name(name) {
        None => None,
        // logical: a Null-typed column (polars' all-null one) has no validity buffer, so
        // its null_count is 0 and it would be written as a column of nulls
        Some(c) if c.logical_null_count() == c.len() => None,
        Some(c) if c.data_type() == want => Some(c.clone()),
        Some(c) if *want == DataType::LargeUtf8 => {
            let s = strs(table, "events", name)?;
            Some(Arc::new((0..c.len()).map(|i| s.get(i)).collect::<LargeStringArray>()))
        }
        Some(c) => {
            return Err(ColumnError(format!(
                "events: column {name:?} is {}, expected {want}", c.data_type())))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;
    use arrow_schema::{Field, Schema};

    fn events(conn: Vec<Option<i64>>, op_internal: Vec<Option<i64>>) -> RecordBatch {
        let n = conn.len() as i64;
        let schema = Arc::new(Schema::new(vec![
            Field::new("server", DataType::LargeUtf8, true),
            Field::new("ts", DataType::Int64, true),
            Field::new("conn", DataType::Int64, true),
            Field::new("op", DataType::Int64, true),
            Field::new("op_internal", DataType::Int64, true),
            Field::new("op_nested", DataType::Int64, true),
            Field::new("line", DataType::Int64, true),
        ]));
        let ints = |v: Vec<Option<i64>>| Arc::new(Int64Array::from(v)) as ArrayRef;
        RecordBatch::try_new(schema, vec![
            Arc::new(arrow_array::LargeStringArray::from(vec!["x"; n as usize])),
            ints((0..n).map(Some).collect()),
            ints(conn),
            ints(vec![Some(0); n as usize]),
            ints(op_internal),
            ints(vec![Some(0); n as usize]),
            ints((1..=n).map(Some).collect()),
        ]).expect("a batch")
    }

    /// `schema` with one more field.
    fn plus_field(schema: &Schema, field: Field) -> SchemaRef {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(field);
        Arc::new(Schema::new(fields))
    }

    /// `table` with one more column.
    fn plus_column(table: &RecordBatch, field: Field, column: ArrayRef) -> RecordBatch {
        let mut columns = table.columns().to_vec();
        columns.push(column);
        RecordBatch::try_new(plus_field(&table.schema(), field), columns).unwrap()
    }

    #[test]
    fn every_row_is_in_the_batch_of_its_key_and_the_index_finds_it() {
        // client connections, and conn=Internal(0) rows with three different op ids
        let conn: Vec<Option<i64>> = (0..300).map(|i| (i % 4 != 0).then_some(i % 37)).collect();
        let internal: Vec<Option<i64>> = (0..300).map(|i| Some(i % 3)).collect();
        let table = events(conn.clone(), internal.clone());
        let p = Provenance { server: "ldap1", file: "access", file_seq: 0 };
        let (buckets, subs) = (5, 3);
        let encoded = encode(std::slice::from_ref(&table), &[table.schema()], &p, (None, None),
                             (buckets, subs), 99).expect("encodes");
        let file = &encoded.files[0];
        let mut seen = Vec::new();
        let mut internal_batches = std::collections::HashSet::new();
        for i in 0..(buckets * subs) as usize {
            let batch = read_batch(file, i).expect("batch");
            let c = batch.column_by_name("conn").unwrap().as_primitive::<Int64Type>();
            let oi = batch.column_by_name("op_internal").unwrap().as_primitive::<Int64Type>();
            let line = batch.column_by_name("line").unwrap().as_primitive::<Int64Type>();
            for r in 0..batch.num_rows() {
                let conn = c.is_valid(r).then(|| c.value(r));
                let key = key_of(conn, [Some(0), Some(oi.value(r)), Some(0)]);
                let (b, s) = bucket_of(key, 99, buckets, subs);
                assert_eq!((b * subs + s) as usize, i);
                if conn.is_none() {
                    internal_batches.insert(i);
                }
                seen.push(line.value(r));
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=300).collect::<Vec<_>>());
        // connection-less rows do not all land in one batch
        assert!(internal_batches.len() > 1, "{internal_batches:?}");
        assert!(read_batch(file, (buckets * subs) as usize).is_err());
    }

    #[test]
    fn a_bucket_decodes_into_the_class_columns_with_provenance_and_absolute_lines() {
        let class = Arc::new(Schema::new(vec![
            Field::new("server", DataType::LargeUtf8, true),
            Field::new("file", DataType::LargeUtf8, true),
            Field::new("file_seq", DataType::Int32, true),
            Field::new("line", DataType::Int64, true),
            Field::new("ts", DataType::Int64, true),
            Field::new("conn", DataType::Int64, true),
            Field::new("op", DataType::Int64, true),
            Field::new("op_internal", DataType::Int64, true),
            Field::new("op_nested", DataType::Int64, true),
            Field::new("filter", DataType::LargeUtf8, true),
        ]));
        // a table with a filter and one without: the second file leaves the column out
        let with_filter = |filter: Option<&str>| {
            plus_column(&events(vec![Some(7); 3], vec![None; 3]),
                        Field::new("filter", DataType::LargeUtf8, true),
                        Arc::new(LargeStringArray::from(vec![filter; 3])))
        };
        let files: Vec<Vec<u8>> = [("ldap1", "access.1", 0, Some("(uid=a)")), ("ldap2", "access", 1, None)]
            .iter()
            .map(|(server, file, seq, filter)| {
                let p = Provenance { server, file, file_seq: *seq };
                encode(&[with_filter(*filter)], std::slice::from_ref(&class), &p, (None, None), (1, 1), 5)
                    .unwrap().files.remove(0)
            })
            .collect();
        let pieces: Vec<Piece<'_>> = files.iter().zip([100, 0])
            .map(|(f, line_offset)| Piece { line_offset, ..whole(f, "c1.arrow").unwrap() })
            .collect();
        let got = decode(&pieces, &class).unwrap();
        // the class's columns and types
        let types: Vec<_> = got.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        let want: Vec<_> = class.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        assert_eq!(types, want);
        let text = |name: &str| {
            let c = got.column_by_name(name).unwrap().as_string::<i64>();
            (0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i).to_string())).collect::<Vec<_>>()
        };
        assert_eq!(text("server"), ["ldap1", "ldap1", "ldap1", "ldap2", "ldap2", "ldap2"].map(|s| Some(s.to_string())));
        assert_eq!(text("filter")[..4], [Some("(uid=a)".to_string()), Some("(uid=a)".into()), Some("(uid=a)".into()), None]);
        let line = got.column_by_name("line").unwrap().as_primitive::<Int64Type>();
        assert_eq!(line.values().to_vec(), vec![101, 102, 103, 1, 2, 3]);
        let seq = got.column_by_name("file_seq").unwrap().as_primitive::<arrow_array::types::Int32Type>();
        assert_eq!(seq.values().to_vec(), vec![0, 0, 0, 1, 1, 1]);
        // one piece: its string columns have bytes of their own, not a slice of the
        // batch's whole message (the operations keep them)
        let alone = decode(&pieces[..1], &class).unwrap();
        let filter = alone.column_by_name("filter").unwrap().as_string::<i64>();
        assert_eq!(filter.value(2), "(uid=a)");
        assert!(filter.values().capacity() < 256, "{} bytes", filter.values().capacity());
        // a file cut inside a batch is an error
        let cut = Piece { batches: &pieces[0].batches[..10], ..pieces[0] };
        assert!(decode(&[cut], &class).is_err());
        // a byte changed anywhere in a batch or in the header is found by its checksum,
        // before the IPC reader sees it
        let h = pieces[0].header.len();
        let i = h + pieces[0].batches.len();
        for at in [h + 5, h + 13, i - 1, 2, h - 1] {
            let mut damaged = files[0].clone();
            damaged[at] ^= 0x10;
            let piece = Piece { header: &damaged[..h], batches: &damaged[h..i], ..pieces[0] };
            let e = decode(&[piece], &class).unwrap_err().0;
            let what = if at < h { "its header" } else { "a batch" };
            assert!(e.starts_with("c1.arrow: shuffle file: ") && e.contains(what), "byte {at}: {e}");
        }
    }

    #[test]
    fn the_index_weighs_a_batch_with_the_columns_decode_adds_back() {
        let table = events(vec![Some(7); 1000], vec![None; 1000]);
        let p = Provenance { server: "s", file: "f", file_seq: 0 };

        let weight = |schema: SchemaRef| {
            let f = encode(std::slice::from_ref(&table), &[schema], &p, (None, None), (1, 1), 1)
                .unwrap().files.remove(0);
            let index = f.len() - TAIL - 2 * 16;
            u64::from_le_bytes(f[index + 8..index + 16].try_into().unwrap())
        };
        // a class with a filter column the table has no value in: its nulls come back
        // as string views, 16 bytes a row
        let filter = Field::new("filter", DataType::LargeUtf8, true);
        assert_eq!(weight(plus_field(&table.schema(), filter)) - weight(table.schema()), 1000 * 16);
    }

    #[test]
    fn a_column_of_the_null_type_is_left_out_like_one_of_nulls() {
        let table = events(vec![Some(1); 4], vec![None; 4]);
        let class = plus_field(&table.schema(), Field::new("filter", DataType::LargeUtf8, true));
        let table = plus_column(&table, Field::new("filter", DataType::Null, true),
                                new_null_array(&DataType::Null, 4));
        let p = Provenance { server: "s", file: "f", file_seq: 0 };
        let file = encode(std::slice::from_ref(&table), &[class], &p,
                          (None, None), (1, 1), 1).expect("a Null column encodes").files.remove(0);
        let batch = read_batch(&file, 0).unwrap();
        assert_eq!((batch.num_rows(), batch.column_by_name("filter").is_none()), (4, true));
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let table = events(vec![Some(1); 10], vec![None; 10]);
        let p = Provenance { server: "s", file: "f", file_seq: 0 };
        let file = encode(std::slice::from_ref(&table), &[table.schema()], &p, (None, None), (2, 2), 1)
            .expect("encodes").files.remove(0);
        for cut in [0, 7, 16, file.len() / 2, file.len() - 1] {
            let _ = read_batch(&file[..cut], 0); // an error, whatever it says
        }
        let mut bent = file.clone();
        let at = bent.len() - TAIL - 5 * 16;
        bent[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(read_batch(&bent, 0).is_err());
        // the ranged reader: the file's own buckets, and no other; a cut file; entries
        // that run backwards
        let (size, tail) = (file.len(), &file[file.len() - TAIL..]);
        let (header, at, length) = bucket_place(tail, size, 1, 2).expect("bucket 1 of 2");
        let (offsets, sizes) = bucket_entries(&file[at..at + length], header).unwrap();
        assert_eq!((offsets.len(), sizes.len()), (3, 2));
        assert!(offsets[0] as usize >= header && *offsets.last().unwrap() as usize <= at);
        assert!(bucket_place(tail, size, 2, 2).unwrap_err().0.contains("not of this run"));
        assert!(bucket_place(&tail[1..], size, 0, 2).is_err());
        assert!(bucket_place(tail, 10, 0, 2).is_err());
        let mut backwards = file[at..at + length].to_vec();
        backwards[16..24].copy_from_slice(&0u64.to_le_bytes());
        assert!(bucket_entries(&backwards, header).is_err());
    }
}
