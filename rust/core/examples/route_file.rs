//! Issue 32's stage A decision, measured: what travels from a parse task to the join
//! tasks, tokenized columns (today: `tokenize` then `shuffle::encode`, see
//! `shuffle_file`) or the raw lines, routed to their bucket by the frame alone and
//! tokenized once, in the join task. For a file: `route_step` sends each line, with its
//! number, to its (bucket, sub-bucket) as the shuffle does (`shuffle::key_of`,
//! `bucket_of`), and `compress_step` compresses each part as the shuffle's batches are
//! (LZ4 blocks); `unroute_step` is the join task's side: decompress and tokenize its
//! parts. `columns_step` and `decode_step` are the same two sides for the columns.
//!
//! `cargo run --release --example route_file -- FILE [ROUNDS]` prints bytes, lines, the
//! routed bytes raw and compressed, the columns' shuffle bytes, and the seconds of each
//! side: `route` (route and compress), `unroute`, `columns` (tokenize and encode) and
//! `decode`. The bench runs it under callgrind with `--toggle-collect` on
//! `route_file::route_step`, `route_file::compress_step` or `route_file::unroute_step`,
//! and on every file of the 2 GB fleet for the seconds (`shuffle_shapes`).

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
    // ROUNDS (1 unless given; callgrind counts one): each shape that many times, in turn,
    // the fastest run of each kept (the first to touch fresh memory pays for its pages)
    let rounds: usize = std::env::args().nth(2).map_or(1, |r| r.parse().expect("ROUNDS"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut best = [f64::INFINITY; 4];
    let mut figures = (0, 0, 0, 0, 0, 0);
    for _ in 0..rounds.max(1) {
        let t0 = Instant::now();
        let (buffers, lines) = route_step(&data);
        let parts = compress_step(buffers);
        let t1 = Instant::now();
        let tokenized = unroute_step(&parts);
        let t2 = Instant::now();
        let raw = parts.iter().map(|p| p.raw).sum::<usize>();
        let compressed = parts.iter().map(|p| p.block.len()).sum::<usize>();
        drop(parts);
        let t3 = Instant::now();
        let files = columns_step(&data);
        let t4 = Instant::now();
        let decoded = decode_step(&files);
        let t5 = Instant::now();
        let shuffled = files.iter().map(Vec::len).sum::<usize>();
        assert_eq!(tokenized, decoded, "both shapes carry every event of the file");
        figures = (lines, tokenized, decoded, raw, compressed, shuffled);
        for (slot, (from, to)) in best.iter_mut().zip([(t0, t1), (t1, t2), (t3, t4), (t4, t5)]) {
            *slot = slot.min((to - from).as_secs_f64());
        }
    }
    let (lines, tokenized, decoded, raw, compressed, shuffled) = figures;
    println!("{{\"bytes\": {}, \"lines\": {lines}, \"events\": {tokenized}, \
              \"decoded\": {decoded}, \"routed_raw\": {raw}, \"routed_compressed\": {compressed}, \
              \"columns_shuffle_bytes\": {shuffled}, \"route\": {:.6}, \"unroute\": {:.6}, \
              \"columns\": {:.6}, \"decode\": {:.6}}}",
             data.len(), best[0], best[1], best[2], best[3]);
}

/// The columns shape's parse-task side (today's stage A): tokenize, then the shuffle's
/// files.
fn columns_step(data: &[u8]) -> Vec<Vec<u8>> {
    let t = tokenize(data, &Options { first_line: 1, final_block: true, strict: true });
    let provenance = Provenance { server: "s", file: "f", file_seq: 0 };
    shuffle::encode(&t.events, shuffle::class_schemas(), &provenance, (None, None),
                    (BUCKETS, SUBS), SEED)
        .expect("the tokenizer's tables").files
}

/// The columns shape's join-task side: every file's batches decoded in its class's
/// schema (as a join task decodes its bucket's), their rows.
fn decode_step(files: &[Vec<u8>]) -> usize {
    files.iter().zip(shuffle::class_schemas()).map(|(file, schema)| {
        let piece = shuffle::whole(file, "f").expect("what encode wrote");
        shuffle::decode(&[piece], schema).expect("what encode wrote").num_rows()
    }).sum()
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
