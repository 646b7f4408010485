//! dsaccess-core: 389 Directory Server access logs, bytes in, Arrow columns out.
//!
//! This crate knows nothing of Python: it takes byte slices and returns Arrow record
//! batches, and every malformed line is a reject row, never a panic. The PyO3 layer
//! (`rust/python`) only converts types and errors.
//!
//! - `head`: the frame of a line (timestamp, ids);
//! - `fields`: the kinds, their fields and general patterns; `strict`: fast paths;
//! - `tokenize`: a block of lines → events, rejects and line accounting;
//! - `json`: a whole 3.x JSON log → the same events, rejects and accounting;
//! - `columns`: sparse Arrow column builders;
//! - `join`: one bucket's events → operations (as rows of the events) and connections;
//! - `operations`: the operations table from the join, with search fingerprints;
//! - `shuffle`: one parse task's events → indexed IPC files, a record batch per sub-bucket;
//! - `route`: one parse task's lines, whole, → one indexed file, a block per sub-bucket,
//!   and a bucket's lines tokenized in its join task;
//! - `filter`: search-filter fingerprints;
//! - `aggregate`: a bucket's operations and connections → its partial aggregates;
//! - `advice`: the index advice partial, from unindexed searches' filters and STAT reads;
//! - `saturation`: operations in flight and waiting for a worker, per load period;
//! - `dn`: DNs as LDAP compares them;
//! - `trace`: which connections of a block can hold a trace's matches;
//! - `workload`: the workload classes' CEL rules, checked and evaluated;
//! - `bucket`: one bucket's task: shuffle pieces → operations, classes, partials;
//! - `arrow_in`: reading Arrow columns by name, whatever the string layout.

#![forbid(unsafe_code)]

pub mod advice;
pub mod aggregate;
pub mod arrow_in;
pub mod bucket;
pub mod columns;
pub mod dn;
pub mod fields;
pub mod filter;
pub mod head;
pub mod join;
pub mod json;
pub mod operations;
pub mod route;
pub mod saturation;
pub mod shuffle;
pub mod strict;
pub mod tokenize;
pub mod trace;
pub mod workload;

pub use tokenize::{tokenize, Counts, Options, Tokenized};
