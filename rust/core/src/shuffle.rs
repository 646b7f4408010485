//! Stage A's side of the shuffle: the events of one parse task, by class, into one file
//! per class holding a record batch per (bucket, sub-bucket) of the task's server;
//! `pipeline/shuffle.py` writes and reads them, and `partition.bucket_layout` places the
//! server's buckets.
//!
//! Per class: rows outside the time window are dropped; each row gets a key, its
//! connection number, or for a row of no connection (`conn=Internal(0)`, which repeats
//! op ids again and again) a mix of its op ids: rows with other ids never pair, so they
//! need not meet, and such rows spread over the buckets instead of all landing in one.
//! `mixed = (key * 2^64/φ) ^ seed(server)`, plain integer arithmetic, so every process
//! agrees (the seed is a blake2b digest of the server name, `partition.server_seed`);
//! the bucket is `(mixed >> 32) mod buckets`, the sub-bucket `(mixed mod 2^32) mod subs`.
//! Rows are ordered by (bucket, sub-bucket), batch `b * subs + s`; the columns are those
//! the class keeps in the shuffle (`schema.EVENT_CLASSES`), with the task's server, file
//! and file order, and nulls for what the class had no value in.
//!
//! The file is an Arrow IPC stream (LZ4 frames; any Arrow reader reads it), then an
//! index, so a join task reads its bucket's batches with one ranged read, whatever the
//! number of buckets (an IPC file's footer is read whole, O(batches), by every reader):
//!
//! ```text
//! stream: schema, batch 0, ..., batch n-1, end-of-stream
//! index:  n + 1 entries of (offset: u64 LE, bytes in memory: u64 LE): entry i's offset is
//!         where batch i starts (entry n's: where the stream's end marker starts); bytes
//!         estimate the batch's size once read (rows x the class table's bytes per row)
//! tail:   n: u64 LE, then the magic b"DSSHUF01"
//! ```
//! A sub-bucket is a unit a join task can process on its own (its connections are whole
//! in it), so a bucket over its memory budget is joined a few sub-buckets at a time.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    new_null_array, Array, ArrayRef, Int32Array, LargeStringArray, RecordBatch, UInt32Array,
};
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_ipc::CompressionType;
use arrow_schema::{DataType, SchemaRef};
use arrow_select::filter::filter_record_batch;
use arrow_select::take::take;

use crate::arrow_in::{strs, ColumnError};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15; // 2^64 / golden ratio

/// Where the task's lines come from.
pub struct Provenance<'a> {
    pub server: &'a str,
    pub file: &'a str,
    pub file_seq: i32,
}

/// The task's events in the shuffle's layout, and what the client needs of them.
pub struct Encoded {
    /// One Arrow IPC file (LZ4 frames) per class, in the order given.
    pub files: Vec<Vec<u8>>,
    /// Earliest and latest time of the events kept.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// Events kept (inside the window): the rest are parsed lines outside it.
    pub kept: u64,
}

/// What ends a shuffle file (after its index and the batch count).
pub const MAGIC: &[u8; 8] = b"DSSHUF01";

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
    window: (Option<i64>, Option<i64>),
    (buckets, subs): (u32, u32),
    seed: u64,
) -> Result<Encoded, ColumnError> {
    if buckets == 0 || subs == 0 {
        return Err(ColumnError("buckets and sub-buckets must be at least 1".into()));
    }
    let batches = buckets as usize * subs as usize;
    let mut out = Encoded { files: Vec::new(), first_ts: None, last_ts: None, kept: 0 };
    for (table, schema) in tables.iter().zip(schemas) {
        let table = in_window(table, window)?;
        let ts = int_column(&table, "ts")?;
        for t in ts.iter().flatten() {
            out.first_ts = Some(out.first_ts.map_or(t, |f| f.min(t)));
            out.last_ts = Some(out.last_ts.map_or(t, |l| l.max(t)));
        }
        out.kept += table.num_rows() as u64;
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
        let columns = schema
            .fields()
            .iter()
            .map(|f| column(&table, f.name(), f.data_type(), provenance))
            .map(|c| c.and_then(|c| take(c.as_ref(), &order, None).map_err(error)))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let sorted = RecordBatch::try_new(schema.clone(), columns).map_err(error)?;
        let per_row = sorted.get_array_memory_size() as u64 / (sorted.num_rows().max(1) as u64);
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .map_err(error)?;
        let mut writer = StreamWriter::try_new_with_options(Vec::new(), schema, options)
            .map_err(error)?;
        let mut index: Vec<(u64, u64)> = Vec::with_capacity(batches + 1);
        for b in 0..batches {
            let (from, to) = (starts[b] as usize, starts[b + 1] as usize);
            index.push((writer.get_ref().len() as u64, (to - from) as u64 * per_row));
            writer.write(&sorted.slice(from, to - from)).map_err(error)?;
        }
        index.push((writer.get_ref().len() as u64, 0));
        writer.finish().map_err(error)?;
        let mut file = writer.into_inner().map_err(error)?;
        file.reserve(index.len() * 16 + 16);
        for (offset, bytes) in &index {
            file.extend_from_slice(&offset.to_le_bytes());
            file.extend_from_slice(&bytes.to_le_bytes());
        }
        file.extend_from_slice(&(batches as u64).to_le_bytes());
        file.extend_from_slice(MAGIC);
        out.files.push(file);
    }
    Ok(out)
}

/// Batch `i` of a shuffle file, found through its index (what `pipeline/shuffle.py` does
/// with pyarrow; here for tests and fuzzing).
pub fn read_batch(file: &[u8], i: usize) -> Result<RecordBatch, ColumnError> {
    let bad = |what: &str| ColumnError(format!("shuffle file: {what}"));
    let word = |at: usize| -> Result<u64, ColumnError> {
        let bytes = file.get(at..at + 8).ok_or_else(|| bad("cut short"))?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    };
    if file.len() < 16 || &file[file.len() - 8..] != MAGIC {
        return Err(bad("no index (magic)"));
    }
    let n = word(file.len() - 16)? as usize;
    if i >= n {
        return Err(bad("no such batch"));
    }
    let index = n.checked_add(1).and_then(|k| k.checked_mul(16)).and_then(|k| k.checked_add(16))
        .and_then(|k| file.len().checked_sub(k)).ok_or_else(|| bad("index cut"))?;
    let entry = |k: usize| word(index + k * 16).map(|v| v as usize);
    let (schema_end, from, to) = (entry(0)?, entry(i)?, entry(i + 1)?);
    if !(schema_end <= from && from <= to && to <= index) {
        return Err(bad("offsets out of order"));
    }
    let mut stream = file[..schema_end].to_vec();
    stream.extend_from_slice(&file[from..to]);
    let mut reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(stream), None)
        .map_err(error)?;
    let batch = reader.next().ok_or_else(|| bad("no batch at its offset"))?.map_err(error)?;
    Ok(batch)
}

fn int_column<'a>(table: &'a RecordBatch, name: &str)
                  -> Result<crate::arrow_in::Ints<'a>, ColumnError> {
    crate::arrow_in::ints(table, "events", name)
}

fn in_window(table: &RecordBatch, (since, until): (Option<i64>, Option<i64>))
             -> Result<RecordBatch, ColumnError> {
    if since.is_none() && until.is_none() {
        return Ok(table.clone());
    }
    let ts = table
        .column_by_name("ts")
        .ok_or_else(|| ColumnError("events: no column \"ts\"".into()))?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| ColumnError("events: column \"ts\" is not Int64".into()))?;
    let keep: arrow_array::BooleanArray = ts
        .iter()
        .map(|t| Some(t.is_some_and(|t| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u))))
        .collect();
    filter_record_batch(table, &keep).map_err(error)
}

/// A column of the class's layout: provenance, the table's own (as LargeUtf8 where the
/// producer gave another string layout), or nulls.
fn column(table: &RecordBatch, name: &str, want: &DataType, p: &Provenance<'_>)
          -> Result<ArrayRef, ColumnError> {
    let n = table.num_rows();
    let constant = |value: &str| -> Result<ArrayRef, ColumnError> {
        Ok(match want {
            DataType::LargeUtf8 => Arc::new(LargeStringArray::from(vec![value; n])),
            DataType::Utf8 => Arc::new(arrow_array::StringArray::from(vec![value; n])),
            DataType::Utf8View => Arc::new(arrow_array::StringViewArray::from(vec![value; n])),
            other => return Err(ColumnError(format!("events: column {name:?} as {other}"))),
        })
    };
    Ok(match name {
        "server" => constant(p.server)?,
        "file" => constant(p.file)?,
        "file_seq" => Arc::new(Int32Array::from(vec![p.file_seq; n])),
        _ => match table.column_by_name(name) {
            None => new_null_array(want, n),
            Some(c) if c.data_type() == want => c.clone(),
            Some(c) if c.data_type() == &DataType::Null => new_null_array(want, n),
            Some(c) if *want == DataType::LargeUtf8 => {
                let s = strs(table, "events", name)?;
                Arc::new((0..c.len()).map(|i| s.get(i)).collect::<LargeStringArray>())
            }
            Some(c) => {
                return Err(ColumnError(format!(
                    "events: column {name:?} is {}, expected {want}", c.data_type())))
            }
        },
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
    fn a_damaged_file_is_an_error_not_a_panic() {
        let table = events(vec![Some(1); 10], vec![None; 10]);
        let p = Provenance { server: "s", file: "f", file_seq: 0 };
        let file = encode(std::slice::from_ref(&table), &[table.schema()], &p, (None, None), (2, 2), 1)
            .expect("encodes").files.remove(0);
        for cut in [0, 7, 16, file.len() / 2, file.len() - 1] {
            let _ = read_batch(&file[..cut], 0); // an error, whatever it says
        }
        let mut bent = file.clone();
        let at = bent.len() - 16 - 5 * 16;
        bent[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(read_batch(&bent, 0).is_err());
    }
}
