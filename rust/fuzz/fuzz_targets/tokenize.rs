//! Any bytes: the tokenizer never panics, every line is accounted for exactly once,
//! the strict paths give what the general patterns give, and the join takes what the
//! tokenizer gives without an error or a panic, and so does gathering its operations.
//! A trace's pass over the same bytes never panics, and reading only the connections it
//! finds accounts for every line too.
#![no_main]

use arrow_array::RecordBatch;
use dsaccess_core::join::{as_shuffled, join, Classes, EVERYTHING};
use dsaccess_core::operations::operations;
use dsaccess_core::shuffle::{decode, encode, read_batch, whole, Piece, Provenance};
use dsaccess_core::trace::{suspects, Network, Wanted};
use dsaccess_core::route::{route, Route};
use dsaccess_core::{tokenize, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for final_block in [true, false] {
        let opts = Options { first_line: 1, final_block, strict: true };
        let t = tokenize(data, &opts);
        let c = t.counts;
        assert_eq!(c.total, c.parsed + c.rejected + c.header + c.blank);
        let lines = data[..t.carry_from].iter().filter(|b| **b == b'\n').count() as i64;
        let tail = i64::from(final_block && !data.is_empty() && !data.ends_with(b"\n"));
        assert_eq!(c.total, lines + tail);
        let wanted = Wanted { bind_dns: vec!["cn=x".into()], networks: vec![
            Network::parse("10.0.0.0/8").expect("a network")], filter_values: vec!["a".into()],
            targets: vec!["dc=x".into()], subtree: data.len() % 2 == 0,
            verbs: vec!["DEL".into()], errs: vec![49], since: Some(0), until: None };
        let s = suspects(data, &wanted);
        let mut conns: Vec<i64> = [s.bind_dn, s.client_ip, s.filter_value, s.target, s.verb, s.err,
                                      s.time].concat();
        conns.sort_unstable();
        conns.dedup();
        // a trace's stage A: the lines of those connections routed, the others skipped
        let r = Route { provenance: Provenance { server: "s", file: "f", file_seq: 0 },
                        window: (None, None), buckets: 2, subs: 2, seed: 7, first_line: 1,
                        final_block, only: Some(&conns) };
        let some = route(data, &r).expect("buckets and sub-buckets").counts;
        assert_eq!(some.total, c.total);
        assert_eq!((some.blank, some.header), (c.blank, c.header));
        assert_eq!(some.total, some.blank + some.header + some.rejected + some.skipped
                   + some.outside_window + some.routed);
        let general = tokenize(data, &Options { strict: false, ..opts });
        assert_eq!(general.counts, t.counts);
        assert_eq!(general.rejects, t.rejects);
        for (a, b) in t.events.iter().zip(general.events.iter()) {
            assert_eq!(a, b, "strict and general paths differ");
        }
        // the join needs every column its classes read: missing ones are absent (null)
        let [request, result, lone, other] = t.events.each_ref().map(|b| as_shuffled(b, "s", 0));
        let classes = Classes { request: &request, result: &result, lone: &lone, other: &other };
        let joined = join(&classes, EVERYTHING).expect("the join takes what the tokenizer gives");
        let events: usize = [&request, &result, &lone].iter().map(|b| b.num_rows()).sum();
        // every request, RESULT and lone line is in exactly one operation row (or two
        // lines in one row: a pair)
        assert!(joined.operations.num_rows() <= events);
        // and every operation gets its columns and, a search, its fingerprint
        let ops = operations(&classes, &joined, data.len() % 2 == 0).expect("gathers");
        assert_eq!(ops.num_rows(), joined.operations.num_rows());
        // and the shuffle encodes them: every class's columns, any bucket count
        let tables = [request, result, lone, other];
        let schemas: Vec<_> = tables.iter().map(|b| b.schema()).collect();
        let p = Provenance { server: "s", file: "f", file_seq: 0 };
        let buckets = 1 + (data.len() % 7) as u32;
        let subs = 1 + (data.len() % 3) as u32;
        let encoded = encode(&tables, &schemas, &p, (None, None), (buckets, subs), 42)
            .expect("encodes");
        assert_eq!(encoded.files.len(), 4);
        // every row is in one batch, which its index finds, and a join task's decoding of
        // all of them gives the table's rows back, with its columns, and so the same
        // operations
        let mut decoded_classes = Vec::new();
        for (file, table) in encoded.files.iter().zip(&tables) {
            let batches = read_all(file, buckets * subs);
            assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), table.num_rows());
            let piece = whole(file, "f").expect("what encode wrote");
            let decoded = decode(&[piece], &table.schema()).expect("decodes");
            assert_eq!(decoded.num_rows(), table.num_rows());
            assert_eq!(decoded.num_columns(), table.num_columns());
            decoded_classes.push(decoded);
        }
        let [request, result, lone, other] = &decoded_classes[..] else { unreachable!() };
        let again = Classes { request, result, lone, other };
        let ops_again = operations(&again, &join(&again, EVERYTHING).expect("joins"), data.len() % 2 == 0)
            .expect("gathers");
        assert_eq!(ops_again, ops, "the shuffle changed the operations");
    }
    // and bytes that are no shuffle file are an error, never a panic
    let cut = data.len() / 2;
    let piece = Piece { header: &data[..cut], batches: &data[cut..], line_offset: 0, source: "f" };
    let _ = decode(&[piece], &std::sync::Arc::new(arrow_schema::Schema::empty()));
});

/// Every batch of a shuffle file, each found through the file's index.
fn read_all(file: &[u8], batches: u32) -> Vec<RecordBatch> {
    (0..batches as usize).map(|i| read_batch(file, i).expect("an indexed batch")).collect()
}
