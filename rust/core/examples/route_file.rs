//! Issue 32's stage A decision, measured: what travels from a parse task to the join
//! tasks, tokenized columns (today: `tokenize` then `shuffle::encode`, see
//! `shuffle_file`) or the raw lines, routed to their bucket by the frame alone and
//! tokenized once, in the join task. For a file: `route_step` routes it (`route::route`:
//! each line, with its number, to its (bucket, sub-bucket), the blocks LZ4-compressed,
//! the file framed); `unroute_step` is the join task's side (`route::tokenize_pieces`:
//! the blocks decompressed and tokenized into the classes' tables). `columns_step` and
//! `decode_step` are the same two sides for the columns.
//!
//! `cargo run --release --example route_file -- FILE [ROUNDS]` prints bytes, lines, the
//! routed bytes raw and compressed, the columns' shuffle bytes, and the seconds of each
//! side: `route`, `unroute`, `columns` (tokenize and encode) and `decode`. The bench
//! runs it under callgrind with `--toggle-collect` on `route_file::route_step` or
//! `route_file::unroute_step`, and on every file of the 2 GB fleet for the seconds
//! (`shuffle_shapes`).

use std::time::Instant;

use dsaccess_core::route::{route, tokenize_pieces, Route, Routed};
use dsaccess_core::shuffle::{self, Provenance, EVERYTHING};
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
        let routed = route_step(&data);
        let t1 = Instant::now();
        let tokenized = unroute_step(&routed.file);
        let t2 = Instant::now();
        let (lines, raw) = (routed.counts.total as usize, routed.routed_bytes);
        let compressed = routed.file.len();
        drop(routed);
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

/// Stage A as routing (`route::route`): each line, after its number, to its
/// connection's block by its frame alone, the blocks compressed, the file framed.
#[inline(never)]
fn route_step(data: &[u8]) -> Routed {
    route(data, &Route { provenance: Provenance { server: "s", file: "f", file_seq: 0 },
                         window: EVERYTHING, buckets: BUCKETS, subs: SUBS, seed: SEED,
                         first_line: 1, final_block: true, only: None })
        .expect("buckets and sub-buckets")
}

/// Stage B's side when lines travel raw: the file's blocks decompressed and tokenized
/// into the classes' tables (`route::tokenize_pieces`), their events.
#[inline(never)]
fn unroute_step(file: &[u8]) -> usize {
    let piece = shuffle::whole(file, "f").expect("what route wrote");
    let (classes, _) = tokenize_pieces(&[piece], shuffle::class_schemas(), EVERYTHING)
        .expect("what route wrote");
    classes.iter().map(|c| c.num_rows()).sum()
}
