//! Stage A's side of the shuffle: the events of one parse task, by class, into the bytes
//! of one Arrow IPC file per class with a record batch per bucket of the task's server
//! (batch *b* is its bucket *b*, empty where the task had none); `pipeline/shuffle.py`
//! writes and reads them, and `partition.bucket_layout` places the server's buckets.
//!
//! Per class: rows outside the time window are dropped; each row gets its bucket from a
//! stable hash of (server, conn): `((conn * 2^64/φ) ^ seed(server)) >> 32 mod buckets`,
//! plain integer arithmetic, so every process agrees (the seed is a blake2b digest of
//! the server name, `partition.server_seed`); rows are ordered by bucket; the columns
//! are those the class keeps in the shuffle (`schema.EVENT_CLASSES`), with the task's
//! server, file and file order, and nulls for what the class had no value in.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    new_null_array, Array, ArrayRef, Int32Array, LargeStringArray, RecordBatch, UInt32Array,
};
use arrow_ipc::writer::{FileWriter, IpcWriteOptions};
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

/// The bucket of a connection of a server.
pub fn bucket_of(conn: Option<i64>, seed: u64, buckets: u32) -> u32 {
    let mixed = (conn.unwrap_or(0) as u64).wrapping_mul(GOLDEN) ^ seed;
    ((mixed >> 32) % u64::from(buckets)) as u32
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
    buckets: u32,
    seed: u64,
) -> Result<Encoded, ColumnError> {
    if buckets == 0 {
        return Err(ColumnError("buckets must be at least 1".into()));
    }
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
        // rows by bucket: a counting sort, stable, so rows keep their order in a bucket
        let of_row: Vec<u32> = conn.iter().map(|c| bucket_of(c, seed, buckets)).collect();
        let mut starts = vec![0u32; buckets as usize + 1];
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
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .map_err(error)?;
        let mut writer = FileWriter::try_new_with_options(Vec::new(), schema, options)
            .map_err(error)?;
        for b in 0..buckets as usize {
            let (from, to) = (starts[b] as usize, starts[b + 1] as usize);
            writer.write(&sorted.slice(from, to - from)).map_err(error)?;
        }
        writer.finish().map_err(error)?;
        out.files.push(writer.into_inner().map_err(error)?);
    }
    Ok(out)
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
