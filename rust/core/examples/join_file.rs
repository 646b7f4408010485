//! Join files' events into the operations table (`join`, then `operations`: the join
//! stage of a bucket) and print its throughput: `cargo run --release --example join_file
//! -- FILE...` (one server's files in rotation order, read as one; the bench runs it
//! under callgrind for instruction counts, of `join_stage` and `aggregate_stage` apart:
//! the partial aggregates of the operations, as a bucket's task computes them).

use std::time::Instant;

use arrow_array::RecordBatch;
use dsaccess_core::aggregate::partials;
use dsaccess_core::join::{as_shuffled, join, Classes, EVERYTHING};
use dsaccess_core::operations::operations;
use dsaccess_core::{tokenize, Options};

// the allocator of the Python module (rust/python), so the figures are the module's
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut data = Vec::new();
    for path in std::env::args().skip(1) {
        data.extend(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")));
    }
    let t = tokenize(&data, &Options { first_line: 1, final_block: true, strict: true });
    let [request, result, lone, other] = t.events.each_ref().map(|b| as_shuffled(b, "s", 0));
    let t0 = Instant::now();
    let ops = join_stage(&Classes { request: &request, result: &result, lone: &lone, other: &other });
    let seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let tables = aggregate_stage(&ops.0, &ops.1);
    let aggregate_seconds = t1.elapsed().as_secs_f64();
    println!("{{\"bytes\": {}, \"lines\": {}, \"operations\": {}, \"seconds\": {seconds:.6}, \
              \"aggregate_seconds\": {aggregate_seconds:.6}, \"partial_rows\": {tables}}}",
             data.len(), t.counts.total, ops.0.num_rows());
}

#[inline(never)]
fn join_stage(classes: &Classes<'_>) -> (RecordBatch, RecordBatch) {
    let joined = join(classes, EVERYTHING).expect("the tokenizer's tables");
    (operations(classes, &joined, false).expect("the join's structure"), joined.connections)
}

/// The partial aggregates' rows, all tables together.
#[inline(never)]
fn aggregate_stage(operations: &RecordBatch, connections: &RecordBatch) -> usize {
    let partials = partials(operations, connections, 1).expect("the operations' columns");
    partials.tables.iter().map(|(_, t)| t.num_rows()).sum()
}
