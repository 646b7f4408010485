//! Tokenize files and print throughput and counts: `cargo run --release --example
//! tokenize_file -- FILE...` (the bench runs it under callgrind for instruction counts).

use std::time::Instant;

use dsaccess_core::{tokenize, Options};

// the allocator of the Python module (rust/python), so the figures are the module's
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // compile the patterns first, so a run on no file counts the fixed costs (callgrind)
    dsaccess_core::fields::patterns();
    let mut bytes = 0usize;
    let mut lines = 0i64;
    let mut seconds = 0f64;
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let t0 = Instant::now();
        let t = tokenize(&data, &Options { first_line: 1, final_block: true, strict: true });
        seconds += t0.elapsed().as_secs_f64();
        bytes += data.len();
        lines += t.counts.total;
        eprintln!("{path}: {:?}", t.counts);
    }
    println!("{{\"bytes\": {bytes}, \"lines\": {lines}, \"seconds\": {seconds:.6}}}");
}
