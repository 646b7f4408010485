//! A file's events through the shuffle and the join, as a run's tasks do them: tokenize,
//! encode (`shuffle::encode`: one file per class, a batch per (bucket, sub-bucket)), then
//! decode every batch (`shuffle::decode`) and join them (`join`, `operations`); prints each
//! step's seconds: `cargo run --release --example shuffle_file -- FILE`. The bench runs
//! it under callgrind with `--toggle-collect` on `shuffle_file::encode_step`,
//! `shuffle_file::decode_step` or `shuffle_file::join_step`.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use dsaccess_core::join::{join, Classes, EVERYTHING};
use dsaccess_core::operations::operations;
use dsaccess_core::shuffle::{self, Provenance};
use dsaccess_core::{tokenize, Options};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The columns of each class in the shuffle (`schema.EVENT_CLASSES`, less the provenance,
/// which the files keep in their metadata).
const CLASSES: [&[&str]; 4] = [
    &["line", "ts", "kind", "conn", "internal", "op", "op_internal", "op_nested", "dn", "base",
      "scope", "filter", "attrs", "options", "authzid", "method", "version", "mech", "newrdn",
      "newsuperior", "attr", "oid", "name", "targetop", "msgid", "truncated"],
    &["line", "ts", "kind", "conn", "internal", "op", "op_internal", "op_nested", "dn", "text",
      "err", "tag", "nentries", "wqtime", "wtime", "optime", "writetime", "etime", "notes",
      "details", "csn", "pr_idx", "pr_cookie", "sid", "wbusy", "wmax", "wqdepth"],
    &["line", "ts", "kind", "conn", "internal", "op", "op_internal", "op_nested", "targetop",
      "msgid", "nentries", "etime"],
    &["line", "ts", "kind", "conn", "internal", "op", "op_internal", "op_nested", "fd",
      "client_ip", "server_ip", "ssl", "close_code", "tls_version", "dn", "text"],
];

/// A class's schema: its columns the tokenizer's table has, with their types.
fn class_schema(table: &RecordBatch, names: &[&str]) -> SchemaRef {
    let schema = table.schema();
    Arc::new(Schema::new(names.iter().filter_map(|n| schema.field_with_name(n).ok().cloned())
                              .collect::<Vec<_>>()))
}

const BUCKETS: u32 = 1;
const SUBS: u32 = 8;

fn main() {
    let path = std::env::args().nth(1).expect("a log file");
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let t = tokenize(&data, &Options { first_line: 1, final_block: true, strict: true });
    let schemas: Vec<SchemaRef> = t.events.iter().zip(CLASSES).map(|(b, names)| class_schema(b, names)).collect();
    let t0 = Instant::now();
    let files = encode_step(&t.events, &schemas);
    let t1 = Instant::now();
    let classes = decode_step(&files, &schemas);
    let t2 = Instant::now();
    let ops = join_step(&classes);
    let t3 = Instant::now();
    println!("{{\"bytes\": {}, \"lines\": {}, \"operations\": {}, \"shuffle_bytes\": {}, \
              \"encode\": {:.6}, \"decode\": {:.6}, \"join\": {:.6}}}",
             data.len(), t.counts.total, ops.num_rows(), files.iter().map(Vec::len).sum::<usize>(),
             (t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64(), (t3 - t2).as_secs_f64());
}

#[inline(never)]
fn encode_step(events: &[RecordBatch], schemas: &[SchemaRef]) -> Vec<Vec<u8>> {
    let provenance = Provenance { server: "s", file: "f", file_seq: 0 };
    shuffle::encode(events, schemas, &provenance, (None, None), (BUCKETS, SUBS), 7)
        .expect("the tokenizer's tables").files
}

#[inline(never)]
fn decode_step(files: &[Vec<u8>], schemas: &[SchemaRef]) -> Vec<RecordBatch> {
    files.iter().zip(schemas).map(|(file, schema)| {
        let piece = shuffle::whole(file, "f").expect("what encode wrote");
        let mut fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(arrow_schema::Field::new("server", arrow_schema::DataType::LargeUtf8, true));
        fields.push(arrow_schema::Field::new("file", arrow_schema::DataType::LargeUtf8, true));
        fields.push(arrow_schema::Field::new("file_seq", arrow_schema::DataType::Int32, true));
        shuffle::decode(&[piece], &Arc::new(Schema::new(fields))).expect("what encode wrote")
    }).collect()
}

#[inline(never)]
fn join_step(c: &[RecordBatch]) -> RecordBatch {
    let classes = Classes { request: &c[0], result: &c[1], lone: &c[2], other: &c[3] };
    let joined = join(&classes, EVERYTHING).expect("the tokenizer's tables");
    operations(&classes, &joined, false).expect("the join's structure")
}

