//! Issue 32's stage A decision, measured: what travels from a parse task to the join
//! tasks, tokenized columns (today: `tokenize` then `shuffle::encode`, see
//! `shuffle_file`) or the raw lines, routed to their bucket by the frame alone and
//! tokenized once, in the join task. For a file: `route_step` sends each line, with its
//! number, to its (bucket, sub-bucket) as the shuffle does (`shuffle::key_of`,
//! `bucket_of`), and `compress_step` compresses each part as the shuffle's batches are
//! (LZ4 blocks);
//! `unroute_step` is the join task's side: decompress and tokenize its parts. Prints
//! bytes, lines, the routed bytes raw and compressed, the columns' shuffle bytes, and
//! seconds: `cargo run --release --example route_file -- FILE`. The bench runs it under
//! callgrind with `--toggle-collect` on `route_file::route_step`,
//! `route_file::compress_step` or `route_file::unroute_step`.

use std::time::Instant;

use dsaccess_core::head::{parse_head_cached, Head, StampCache};
use dsaccess_core::shuffle::{self, bucket_of, key_of, Provenance};
use dsaccess_core::{tokenize, Options};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BUCKETS: u32 = 1;
const SUBS: u32 = 8;
const SEED: u64 = 7;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        // (no file: the program's own start-up, which callgrind's count subtracts)
        println!("{{\"lines\": 1}}");
        return;
    };
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let t0 = Instant::now();
    let (buffers, lines) = route_step(&data);
    let parts = compress_step(buffers);
    let t1 = Instant::now();
    let tokenized = unroute_step(&parts);
    let t2 = Instant::now();
    let t = tokenize(&data, &Options { first_line: 1, final_block: true, strict: true });
    let provenance = Provenance { server: "s", file: "f", file_seq: 0 };
    let columns = shuffle::encode(&t.events, shuffle::class_schemas(), &provenance,
                                  (None, None), (BUCKETS, SUBS), SEED)
        .expect("the tokenizer's tables");
    println!("{{\"bytes\": {}, \"lines\": {}, \"events\": {}, \"routed_raw\": {}, \
              \"routed_compressed\": {}, \"columns_shuffle_bytes\": {}, \"route\": {:.6}, \
              \"unroute\": {:.6}}}",
             data.len(), lines, tokenized,
             parts.iter().map(|p| p.raw).sum::<usize>(),
             parts.iter().map(|p| p.block.len()).sum::<usize>(),
             columns.files.iter().map(Vec::len).sum::<usize>(),
             (t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
}

/// One (bucket, sub-bucket)'s lines: each its line number (8 bytes) and its bytes,
/// newline included, LZ4-compressed.
struct Part {
    block: Vec<u8>,
    raw: usize,
}

/// Stage A as routing: each line, after its number, to its connection's part by its
/// frame alone.
#[inline(never)]
fn route_step(data: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut buffers: Vec<Vec<u8>> = (0..BUCKETS * SUBS).map(|_| Vec::new()).collect();
    let mut stamps = StampCache::default();
    let (mut start, mut number) = (0usize, 0u64);
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |n| start + n + 1);
        number += 1;
        let line = &data[start..end];
        // (a line that is not UTF-8 would take the tokenizer's lossy path: routed as it is)
        let (bucket, sub) = match std::str::from_utf8(line).map(|t| parse_head_cached(t, &mut stamps)) {
            Ok(Head::Event(ids)) => bucket_of(
                key_of(ids.conn.filter(|_| !ids.internal), [ids.op, ids.op_internal, ids.op_nested]),
                SEED, BUCKETS, SUBS),
            _ => (0, 0), // headers, blank lines, rejects: counted where they are
        };
        let buffer = &mut buffers[(bucket * SUBS + sub) as usize];
        buffer.extend_from_slice(&number.to_le_bytes());
        buffer.extend_from_slice(line);
        start = end;
    }
    (buffers, number as usize)
}

/// The parts compressed, as the shuffle's batches are.
#[inline(never)]
fn compress_step(buffers: Vec<Vec<u8>>) -> Vec<Part> {
    buffers.into_iter().map(|b| Part { raw: b.len(), block: lz4_flex::block::compress(&b) })
        .collect()
}

/// Stage B's extra work when lines travel raw: decompress its parts and tokenize them
/// (the line numbers are dropped here; a tokenizer taking them per line costs a copy).
#[inline(never)]
fn unroute_step(parts: &[Part]) -> usize {
    let mut events = 0;
    for part in parts {
        let raw = lz4_flex::block::decompress(&part.block, part.raw).expect("what route wrote");
        let mut text = Vec::with_capacity(raw.len());
        let mut at = 0;
        while at < raw.len() {
            let start = at + 8;
            let end = memchr::memchr(b'\n', &raw[start..]).map_or(raw.len(), |n| start + n + 1);
            text.extend_from_slice(&raw[start..end]);
            at = end;
        }
        let t = tokenize(&text, &Options { first_line: 1, final_block: true, strict: true });
        events += t.counts.parsed as usize;
    }
    events
}
