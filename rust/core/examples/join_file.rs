//! Join files' events and print the join's throughput: `cargo run --release --example
//! join_file -- FILE...` (one server's files in rotation order, read as one; the bench
//! runs it under callgrind for instruction counts).

use std::time::Instant;

use dsaccess_core::join::{as_shuffled, join, Classes};
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
    let joined = join(&Classes { request: &request, result: &result, lone: &lone, other: &other })
        .expect("the tokenizer's tables");
    let seconds = t0.elapsed().as_secs_f64();
    println!("{{\"bytes\": {}, \"lines\": {}, \"operations\": {}, \"seconds\": {seconds:.6}}}",
             data.len(), t.counts.total, joined.operations.num_rows());
}
