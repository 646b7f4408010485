//! Join files' events into the operations table (`join`, then `operations`: the join
//! stage of a bucket) and print its throughput: `cargo run --release --example join_file
//! -- FILE...` (one server's files in rotation order, read as one; the bench runs it
//! under callgrind for instruction counts, of `join_stage` alone).

use std::time::Instant;

use arrow_array::RecordBatch;
use dsaccess_core::join::{as_shuffled, join, Classes};
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
    println!("{{\"bytes\": {}, \"lines\": {}, \"operations\": {}, \"seconds\": {seconds:.6}}}",
             data.len(), t.counts.total, ops.num_rows());
}

#[inline(never)]
fn join_stage(classes: &Classes<'_>) -> RecordBatch {
    let joined = join(classes).expect("the tokenizer's tables");
    operations(classes, &joined, false).expect("the join's structure")
}
