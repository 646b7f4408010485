//! One bucket's task (stage B), in one call: the bucket's events as the shuffle files
//! hold them → the join → the operations table with its workload classes → the partial
//! aggregates. The operations and connections come back for writing; nothing of the
//! events leaves the core.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};

use crate::aggregate::{partials, Partials};
use crate::arrow_in::ColumnError;
use crate::join::{join, Classes, Window};
use crate::operations::operations;
use crate::route::{tokenize_pieces, Accounting};
use crate::shuffle::{decode, Piece};
use crate::workload::Rules;

/// What a bucket's task gives back.
pub struct Bucket {
    /// the operations (ARCHITECTURE.md §3), classified when there are rules
    pub operations: RecordBatch,
    pub connections: RecordBatch,
    /// None when the options asked for none
    pub partials: Option<Partials>,
    /// rows each workload rule failed on
    pub rule_failures: Vec<(String, i64)>,
    /// events in the window (the rest are context), and the seconds decoding (or
    /// tokenizing) took
    pub events: usize,
    pub decode_seconds: f64,
}

/// Why a bucket's task failed: a shuffle file it could not decode (the message names
/// it), or columns that are not what the join expects.
#[derive(Debug)]
pub enum BucketError {
    Shuffle(ColumnError),
    Columns(ColumnError),
}

impl std::fmt::Display for BucketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BucketError::Shuffle(e) | BucketError::Columns(e) => e.fmt(f),
        }
    }
}

/// The task options: how filters are fingerprinted, the workload rules (none: the
/// `workload` column stays null), the load table's period.
pub struct Options<'a> {
    pub sort_operands: bool,
    pub rules: Option<&'a Rules>,
    pub load_period_s: i64,
    /// the run's window: events outside it are connections' context (`join::join`)
    pub window: Window,
    /// accumulate the partial aggregates (a trace needs only the operations)
    pub aggregates: bool,
}

/// One bucket (or some of its sub-buckets): per event class, its pieces of the shuffle's
/// column files (`columns`, a JSON log's parse tasks write them), and its pieces of the
/// parse tasks' routed files (`routed`: text logs, `route`), tokenized here; with the
/// classes' `schemas`. What the tokenizer counted and rejected of the routed lines comes
/// back with the task's results.
pub fn bucket(columns: &[Vec<Piece<'_>>], routed: &[Piece<'_>], schemas: &[SchemaRef],
              options: &Options<'_>) -> Result<(Bucket, Accounting), BucketError> {
    let began = Instant::now();
    let (tokenized, accounting) = tokenize_pieces(routed, schemas, options.window)
        .map_err(BucketError::Shuffle)?;
    let classes = columns.iter().zip(schemas).zip(tokenized)
        .map(|((p, schema), lines)| {
            let decoded = decode(p, schema)?;
            Ok(match (decoded.num_rows(), lines.num_rows()) {
                (_, 0) => decoded,
                (0, _) => lines,
                _ => arrow_select::concat::concat_batches(schema, [&decoded, &lines])
                    .map_err(|e| ColumnError(e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, ColumnError>>()
        .map_err(BucketError::Shuffle)?;
    Ok((joined(classes, began.elapsed().as_secs_f64(), options)?, accounting))
}

/// The rest of a bucket's task, from its event tables (`classes`, in `CLASS_NAMES`
/// order), `read_seconds` after it began.
fn joined(classes: Vec<RecordBatch>, read_seconds: f64, options: &Options<'_>)
          -> Result<Bucket, BucketError> {
    let c = Classes { request: &classes[0], result: &classes[1], lone: &classes[2],
                      other: &classes[3] };
    let joined = join(&c, options.window).map_err(BucketError::Columns)?;
    let mut ops = operations(&c, &joined, options.sort_operands).map_err(BucketError::Columns)?;
    drop(classes);
    let mut rule_failures = Vec::new();
    if let Some(rules) = options.rules {
        let classified = rules.classify(&ops).map_err(BucketError::Columns)?;
        ops = with_workload(&ops, classified.classes);
        rule_failures = classified.failures;
    }
    let partials = if options.aggregates {
        Some(partials(&ops, &joined.connections, options.load_period_s)
             .map_err(BucketError::Columns)?)
    } else {
        None
    };
    Ok(Bucket { operations: ops, connections: joined.connections, partials, rule_failures,
                events: joined.events, decode_seconds: read_seconds })
}

/// The operations with their `workload` column replaced by the classes.
fn with_workload(ops: &RecordBatch, classes: arrow_array::ArrayRef) -> RecordBatch {
    let schema = ops.schema();
    let at = schema.index_of("workload").expect("the operations have a workload column");
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[at] = Field::new("workload", classes.data_type().clone(), true);
    let mut columns = ops.columns().to_vec();
    columns[at] = classes;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("one class per operation")
}
