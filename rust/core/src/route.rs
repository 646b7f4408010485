//! Stage A as routing, the shape of the shuffle `make bench` measured faster (issue 32):
//! a parse task sends each line whole, by its frame alone, to its connection's (bucket,
//! sub-bucket), into one indexed scratch file; a join task tokenizes its bucket's lines
//! once (`tokenize_pieces`). Tokenized columns, the other shape (`shuffle`), cost a
//! gather, an IPC encoding and a decoding of every column between the two.
//!
//! The line accounting splits where the knowledge is. Only the parse task sees a file's
//! lines in order, so it counts the total, blank and header lines, rejects lines whose
//! frame is impossible or that are cut, judges the times (an event far from both its
//! neighbours is a fault: `tokenize::Outliers`, over every event's frame), and keeps the
//! time window: an event after it, or before it and no connection's context (its open,
//! TLS, AUTOBIND and HAProxy lines, BINDs and extended requests, BIND RESULTs), is
//! counted `outside_window` and goes nowhere. A join task reads the bodies: it counts
//! each routed line parsed (inside the window), `outside_window` (context) or rejected
//! (its body malformed), per file.
//!
//! The file has the layout of the shuffle's (`shuffle` names its parts and reads its
//! index: `bucket_place`, `bucket_entries`, `whole`): a header, a block per (bucket,
//! sub-bucket), an index, a tail; each block an LZ4 block with its CRC-32. The header holds the provenance; a block holds its lines in file order: their
//! text, each with its newline (one run, checked as UTF-8 at once, as the tokenizer
//! checks a chunk), then each one's number in its chunk (u64 LE), then their count (u32
//! LE).
//!
//! ```text
//! header: CRC-32 of what follows: u32 LE, then server and file (each u32 LE length and
//!         UTF-8 bytes) and file_seq (i32 LE)
//! block:  compressed length: u32 LE, lines' length: u32 LE, CRC-32 of the block: u32 LE,
//!         the LZ4 block of the lines
//! index:  n + 1 entries of (offset: u64 LE, bytes once tokenized: u64 LE)
//! tail:   the header's length: u64 LE, n: u64 LE, the magic b"DSROUTE1"
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int32Array, RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use arrow_select::concat::concat;

use crate::arrow_in::ColumnError;
use crate::fields::{kind_of, Kind, F, FIELD_COUNT};
use crate::head::{parse_head_cached, Head, StampCache};
use crate::shuffle::{bucket_of, constant, fitted, inside, key_of, Piece, Provenance, Window};
use crate::strict::read_fields;
use crate::tokenize::{Builder, Outliers, Rejects};

/// What ends a routed file.
pub const MAGIC: &[u8; 8] = b"DSROUTE1";

/// Bytes before a block's LZ4 data: its length, its lines' length, its CRC-32.
const BLOCK_HEAD: usize = 12;

/// Bytes a join task holds per routed byte once it has tokenized them (its event tables
/// with their builders' room), what the index tells it to split a bucket over its budget.
/// An estimate, not yet measured (`plan.EXPANSION` puts Arrow at 1.5 bytes a log byte,
/// and the builders keep room): to measure when `run` routes, which reads these sizes.
const TOKENIZED_PER_BYTE: u64 = 2;

/// One parse task's routing.
pub struct Route<'a> {
    pub provenance: Provenance<'a>,
    pub window: Window,
    /// the server's buckets (`partition.bucket_layout`) and its seed (`shuffle::server_seed`)
    pub buckets: u32,
    pub subs: u32,
    pub seed: u64,
    /// the number of the block's first line in its chunk, and whether the block ends its
    /// file (a last line without a newline is then a reject; otherwise it is left)
    pub first_line: i64,
    pub final_block: bool,
    /// the client connections whose lines are routed (sorted; a trace); None: all
    pub only: Option<&'a [i64]>,
}

/// What a parse task counts (the rest is counted by the join tasks, `Counted`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteCounts {
    pub total: i64,
    pub blank: i64,
    pub header: i64,
    pub rejected: i64,
    /// events of connections a trace does not follow
    pub skipped: i64,
    /// events outside the window that are no connection's context
    pub outside_window: i64,
    /// events routed: in the window, or context before it
    pub routed: i64,
}

/// A parse task's routing done.
pub struct Routed {
    /// the scratch file
    pub file: Vec<u8>,
    pub counts: RouteCounts,
    /// `line`, `text`, `reason`: the lines rejected here
    pub rejects: RecordBatch,
    /// earliest and latest time of the routed events in the window, and their number
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    pub kept: u64,
    /// earliest and latest time of every event, in the window or not
    pub span: Option<(i64, i64)>,
    /// bytes after the last newline of a block that is not final
    pub carry_from: usize,
    /// the routed lines' bytes (with their numbers) before compression
    pub routed_bytes: usize,
}

/// An event's line, as the first pass over the block found it.
struct Line {
    start: usize,
    end: usize,
    number: i64,
    ts: i64,
    /// its (bucket, sub-bucket) as the batch `bucket * subs + sub`
    batch: u32,
    body_at: u32,
}

/// Route a newline-aligned block of a text access log.
pub fn route(data: &[u8], r: &Route<'_>) -> Result<Routed, ColumnError> {
    if r.buckets == 0 || r.subs == 0 {
        return Err(ColumnError("buckets and sub-buckets must be at least 1".into()));
    }
    let mut counts = RouteCounts::default();
    let mut rejects = Rejects::default();
    let mut reject = |counts: &mut RouteCounts, number: i64, text: &str, reason: &str| {
        counts.rejected += 1;
        rejects.push(number, text, reason);
    };
    // the first pass: each line's frame; events kept for the second, once their times
    // are judged
    let whole = simdutf8::basic::from_utf8(data).ok();
    let mut stamps = StampCache::default();
    let mut events: Vec<Line> = Vec::with_capacity(data.len() / 128 + 16);
    let mut outliers: Outliers<usize> = Outliers::default();
    let (mut start, mut number) = (0usize, r.first_line);
    while start < data.len() {
        let (end, complete) = match memchr::memchr(b'\n', &data[start..]) {
            Some(n) => (start + n + 1, true),
            None if r.final_block => (data.len(), false),
            None => break,
        };
        let text = if let Some(w) = whole {
            Cow::Borrowed(&w[start..end])
        } else {
            String::from_utf8_lossy(&data[start..end])
        };
        counts.total += 1;
        if !complete {
            reject(&mut counts, number, &text,
                   "truncated last line: no newline (file being written or cut)");
        } else {
            match parse_head_cached(&text, &mut stamps) {
                Head::Bad(reason) => reject(&mut counts, number, &text, reason),
                Head::NotEvent => {
                    let stripped = text.trim_end_matches(['\r', '\n']);
                    if stripped.trim().is_empty() {
                        counts.blank += 1;
                    } else if stripped.starts_with('\t') {
                        counts.header += 1;
                    } else {
                        reject(&mut counts, number, &text,
                               "not an access-log event: expected '[timestamp] conn=N ...'");
                    }
                }
                Head::Event(ids) => {
                    let followed = r.only.is_none_or(|only| !ids.internal
                        && ids.conn.is_some_and(|c| only.binary_search(&c).is_ok()));
                    if followed {
                        let key = key_of(ids.conn.filter(|_| !ids.internal),
                                         [ids.op, ids.op_internal, ids.op_nested]);
                        let (b, s) = bucket_of(key, r.seed, r.buckets, r.subs);
                        let at = events.len();
                        outliers.event(ids.ts, || at);
                        events.push(Line { start, end, number, ts: ids.ts, batch: b * r.subs + s,
                                           body_at: ids.body_at as u32 });
                    } else {
                        counts.skipped += 1;
                    }
                }
            }
        }
        number += 1;
        start = end;
    }
    let carry_from = start;
    let mut dropped = vec![false; events.len()];
    for fault in outliers.close() {
        dropped[fault.what] = true;
    }
    // the second pass: the window, and each routed line to its batch
    let batches = r.buckets as usize * r.subs as usize;
    let mut parts: Vec<Part> = (0..batches).map(|_| Part::default()).collect();
    let mut out = Routed { file: Vec::new(), counts, rejects: RecordBatch::new_empty(
        Arc::new(arrow_schema::Schema::empty())), first_ts: None, last_ts: None, kept: 0,
        span: None, carry_from, routed_bytes: 0 };
    for (line, gone) in events.iter().zip(&dropped) {
        let text = &data[line.start..line.end];
        if *gone {
            reject(&mut out.counts, line.number, &String::from_utf8_lossy(text),
                   "timestamp more than a day from the lines before and after it (a clock \
                    or disk fault)");
            continue;
        }
        let t = line.ts;
        out.span = Some(out.span.map_or((t, t), |(f, l)| (f.min(t), l.max(t))));
        let within = inside(t, r.window);
        if within {
            out.first_ts = Some(out.first_ts.map_or(t, |f| f.min(t)));
            out.last_ts = Some(out.last_ts.map_or(t, |l| l.max(t)));
            out.kept += 1;
        } else if !(r.window.0.is_some_and(|s| t < s)
                    && context(&String::from_utf8_lossy(
                        text.get(line.body_at as usize..).unwrap_or_default()))) {
            out.counts.outside_window += 1;
            continue;
        }
        out.counts.routed += 1;
        let part = &mut parts[line.batch as usize];
        part.numbers.push(line.number as u64);
        part.text.extend_from_slice(text);
    }
    drop(events);
    out.rejects = rejects.finish();
    out.routed_bytes = parts.iter().map(|p| p.text.len() + 8 * p.numbers.len() + 4).sum();
    out.file = frame(&r.provenance, parts)?;
    Ok(out)
}

/// A block's lines as the second pass gathers them.
#[derive(Default)]
struct Part {
    numbers: Vec<u64>,
    text: Vec<u8>,
}

/// Whether an event before the window is a connection's context, which the join reads
/// for who the connection is: its open, TLS, AUTOBIND and HAProxy lines, BIND and
/// extended requests, and BIND RESULTs (`tag=97`).
fn context(body: &str) -> bool {
    match kind_of(body) {
        Some(Kind::Connect | Kind::Tls | Kind::Autobind | Kind::Haproxy | Kind::Bind
             | Kind::Ext) => true,
        Some(Kind::Result) => {
            let mut fields = [None; FIELD_COUNT];
            read_fields(Kind::Result, body, true, &mut fields).is_some()
                && fields[F::Tag as usize].is_some_and(|t| t.trim() == "97")
        }
        _ => false,
    }
}

fn too_big() -> ColumnError {
    ColumnError("route: a block over 4 GiB".into())
}

/// The scratch file of `parts` (a batch's lines each).
fn frame(provenance: &Provenance<'_>, parts: Vec<Part>) -> Result<Vec<u8>, ColumnError> {
    let mut header = Vec::new();
    for name in [provenance.server, provenance.file] {
        header.extend_from_slice(&u32::try_from(name.len()).map_err(|_| too_big())?.to_le_bytes());
        header.extend_from_slice(name.as_bytes());
    }
    header.extend_from_slice(&provenance.file_seq.to_le_bytes());
    let mut file = Vec::with_capacity(4 + header.len());
    file.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
    file.extend_from_slice(&header);
    let header_len = file.len();
    let mut index: Vec<(u64, u64)> = Vec::with_capacity(parts.len() + 1);
    let blocks = parts.len();
    for part in parts {
        index.push((file.len() as u64, part.text.len() as u64 * TOKENIZED_PER_BYTE));
        let mut lines = part.text;
        lines.reserve(part.numbers.len() * 8 + 4);
        for n in &part.numbers {
            lines.extend_from_slice(&n.to_le_bytes());
        }
        lines.extend_from_slice(&u32::try_from(part.numbers.len()).map_err(|_| too_big())?
            .to_le_bytes());
        let block = lz4_flex::block::compress(&lines);
        file.extend_from_slice(&u32::try_from(block.len()).map_err(|_| too_big())?.to_le_bytes());
        file.extend_from_slice(&u32::try_from(lines.len()).map_err(|_| too_big())?.to_le_bytes());
        file.extend_from_slice(&crc32fast::hash(&block).to_le_bytes());
        file.extend_from_slice(&block);
    }
    index.push((file.len() as u64, 0));
    for (offset, bytes) in &index {
        file.extend_from_slice(&offset.to_le_bytes());
        file.extend_from_slice(&bytes.to_le_bytes());
    }
    file.extend_from_slice(&(header_len as u64).to_le_bytes());
    file.extend_from_slice(&(blocks as u64).to_le_bytes());
    file.extend_from_slice(MAGIC);
    Ok(file)
}

fn bad(what: &str) -> ColumnError {
    ColumnError(format!("routed file: {what}"))
}

/// The provenance in a routed file's header.
fn provenance_of(header: &[u8]) -> Result<(String, String, i32), ColumnError> {
    let body = header.get(4..).ok_or_else(|| bad("its header cut short"))?;
    if header[..4] != crc32fast::hash(body).to_le_bytes() {
        return Err(bad("its header damaged (its checksum differs)"));
    }
    let mut at = 0usize;
    let mut name = || -> Result<String, ColumnError> {
        let n = body.get(at..at + 4).ok_or_else(|| bad("its header cut short"))?;
        let n = u32::from_le_bytes(n.try_into().expect("4 bytes")) as usize;
        let text = body.get(at + 4..at + 4 + n).ok_or_else(|| bad("its header cut short"))?;
        at += 4 + n;
        String::from_utf8(text.to_vec()).map_err(|_| bad("a name in its header is not UTF-8"))
    };
    let (server, file) = (name()?, name()?);
    let seq = body.get(at..at + 4).filter(|_| body.len() == at + 4)
        .ok_or_else(|| bad("its header of another length"))?;
    Ok((server, file, i32::from_le_bytes(seq.try_into().expect("4 bytes"))))
}

/// What a join task counts of the lines routed to it, per file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub server: String,
    pub file: String,
    pub file_seq: i32,
    /// events in the window
    pub parsed: i64,
    /// events before it, read as connections' context
    pub outside_window: i64,
    pub rejected: i64,
}

/// What a join task's tokenizer found in its routed lines besides their events.
#[derive(Default)]
pub struct Accounting {
    /// per file: its `line`, `text`, `reason` table
    pub rejects: Vec<(String, String, RecordBatch)>,
    /// per file (of its pieces)
    pub counted: Vec<Counted>,
    pub unknown_fields: Vec<(String, i64)>,
    /// per server, the UTC offsets its timestamps were written with (`Tokenized`'s runs)
    pub utc_offsets: Vec<(String, Vec<OffsetRun>)>,
}

/// A run of one UTC offset: the offset as logged, the first and last UTC ns written with it.
pub type OffsetRun = (String, i64, i64);

/// Tokenize the lines of `pieces` (ranges of routed files) into event tables of
/// `schemas` (a class's each), their line numbers made absolute, their provenance that of
/// their file; events outside `window` are context (counted so).
pub fn tokenize_pieces(pieces: &[Piece<'_>], schemas: &[SchemaRef], window: Window)
                       -> Result<(Vec<RecordBatch>, Accounting), ColumnError> {
    let mut out = Accounting::default();
    let mut classes = Vec::with_capacity(schemas.len());
    let mut parts: Vec<Vec<Vec<ArrayRef>>> = vec![Vec::new(); schemas.len()];
    let mut unknown = std::collections::BTreeMap::<String, i64>::new();
    for piece in pieces {
        let named = |e: ColumnError| ColumnError(format!("{}: {}", piece.source, e.0));
        let (server, file, file_seq) = provenance_of(piece.header).map_err(named)?;
        let mut t = Builder::with_capacity(text_bytes(piece.batches));
        t.routed = true;
        for_each_line(piece.batches, |number, text| {
            let number = i64::try_from(number).ok().and_then(|n| n.checked_add(piece.line_offset))
                .ok_or_else(|| bad("a line number out of range"))?;
            t.line(text, number, true, true);
            Ok(())
        }).map_err(named)?;
        let tokenized = t.finish(0);
        let mut counted = Counted { server: server.clone(), file: file.clone(), file_seq,
                                    rejected: tokenized.counts.rejected, ..Counted::default() };
        for (class, (table, schema)) in tokenized.events.iter().zip(schemas).enumerate() {
            let ts = crate::arrow_in::ints(table, "events", "ts")?;
            let n = table.num_rows();
            let within = (0..n).filter(|r| ts.get(*r).is_some_and(|t| inside(t, window))).count();
            counted.parsed += within as i64;
            counted.outside_window += (n - within) as i64;
            if n == 0 {
                continue;
            }
            let columns = fitted(table, schema, |name, want| Ok(match name {
                "server" => Some(constant(&server, want, n)?),
                "file" => Some(constant(&file, want, n)?),
                "file_seq" => Some(Arc::new(Int32Array::from(vec![file_seq; n])) as ArrayRef),
                _ => None,
            }))?;
            parts[class].push(columns);
        }
        for (name, n) in tokenized.unknown_fields {
            *unknown.entry(name).or_default() += n;
        }
        match out.utc_offsets.iter_mut().find(|(s, _)| *s == server) {
            Some((_, runs)) => runs.extend(tokenized.utc_offsets),
            None => out.utc_offsets.push((server.clone(), tokenized.utc_offsets)),
        }
        if tokenized.rejects.num_rows() > 0 {
            out.rejects.push((server, file, tokenized.rejects));
        }
        match out.counted.iter_mut().find(|c| c.server == counted.server
                                          && c.file == counted.file
                                          && c.file_seq == counted.file_seq) {
            Some(c) => {
                c.parsed += counted.parsed;
                c.outside_window += counted.outside_window;
                c.rejected += counted.rejected;
            }
            None => out.counted.push(counted),
        }
    }
    out.unknown_fields = unknown.into_iter().collect();
    for (pieces, schema) in parts.into_iter().zip(schemas) {
        let rows = pieces.iter().map(|p| p.first().map_or(0, |c| c.len())).sum();
        let columns = (0..schema.fields().len()).map(|i| match pieces.len() {
            0 => Ok(arrow_array::new_null_array(schema.field(i).data_type(), 0)),
            1 => Ok(pieces[0][i].clone()),
            _ => concat(&pieces.iter().map(|p| p[i].as_ref()).collect::<Vec<_>>())
                .map_err(|e| ColumnError(e.to_string())),
        }).collect::<Result<Vec<_>, _>>()?;
        classes.push(RecordBatch::try_new_with_options(
            schema.clone(), columns, &RecordBatchOptions::new().with_row_count(Some(rows)))
            .map_err(|e| ColumnError(e.to_string()))?);
    }
    Ok((classes, out))
}

/// The bytes of a run of blocks' lines once decompressed (from their heads; room for the
/// tokenizer's columns).
fn text_bytes(mut blocks: &[u8]) -> usize {
    let mut total = 0usize;
    while let (Some(packed), Some(size)) = (blocks.get(0..4), blocks.get(4..8)) {
        let packed = u32::from_le_bytes(packed.try_into().expect("4 bytes")) as usize;
        total = total.saturating_add(u32::from_le_bytes(size.try_into().expect("4 bytes")) as usize);
        blocks = blocks.get(BLOCK_HEAD + packed..).unwrap_or(&[]);
    }
    total.min(1 << 32) // (a damaged head is found when its block is read)
}

/// Each line of a run of blocks, with its number in its chunk.
fn for_each_line(mut blocks: &[u8], mut each: impl FnMut(u64, &str) -> Result<(), ColumnError>)
                 -> Result<(), ColumnError> {
    let cut = || bad("a block cut short");
    let word = |bytes: &[u8], at: usize| bytes.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize).ok_or_else(cut);
    while !blocks.is_empty() {
        let (packed, size, crc) = (word(blocks, 0)?, word(blocks, 4)?, word(blocks, 8)?);
        let block = blocks.get(BLOCK_HEAD..BLOCK_HEAD + packed).ok_or_else(cut)?;
        if crc32fast::hash(block) as usize != crc {
            return Err(bad("a block damaged (its checksum differs)"));
        }
        if size > packed.saturating_mul(255) + 64 { // more than LZ4 can expand to
            return Err(bad("a block of an impossible size"));
        }
        let lines = lz4_flex::block::decompress(block, size).map_err(|e| bad(&e.to_string()))?;
        if lines.len() != size {
            return Err(bad("a block of another size"));
        }
        let n = word(&lines, lines.len().saturating_sub(4))?;
        let text_end = n.checked_mul(8).and_then(|k| k.checked_add(4))
            .and_then(|k| lines.len().checked_sub(k))
            .ok_or_else(|| bad("more line numbers than bytes"))?;
        let numbers = lines[text_end..lines.len() - 4].chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        let text = &lines[..text_end];
        // one check of the whole text; only text with invalid UTF-8 (client-supplied
        // bytes) decodes line by line, lossily, as the tokenizer does
        let valid = simdutf8::basic::from_utf8(text).ok();
        let mut at = 0usize;
        for number in numbers {
            let end = memchr::memchr(b'\n', &text[at..]).map(|k| at + k + 1)
                .ok_or_else(|| bad("fewer lines than line numbers"))?;
            match valid {
                Some(t) => each(number, &t[at..end])?,
                None => each(number, &String::from_utf8_lossy(&text[at..end]))?,
            }
            at = end;
        }
        if at != text.len() {
            return Err(bad("more lines than line numbers"));
        }
        blocks = &blocks[BLOCK_HEAD + packed..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::{bucket, Options as BucketOptions};
    use crate::shuffle::{bucket_entries, bucket_place, class_schemas, encode, whole, EVERYTHING,
                         TAIL};
    use crate::tokenize::{tokenize, Options};

    const BUCKETS: u32 = 3;
    const SUBS: u32 = 8;
    const SEED: u64 = 11;
    const PROVENANCE: Provenance<'static> = Provenance { server: "s", file: "access", file_seq: 2 };

    fn fixture(server: &str) -> Vec<u8> {
        let path = format!("{}/../../tests/fixtures/real389/{server}/access",
                           env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn routed(data: &[u8], window: Window, only: Option<&[i64]>) -> Routed {
        route(data, &Route { provenance: PROVENANCE, window, buckets: BUCKETS, subs: SUBS,
                             seed: SEED, first_line: 1, final_block: true, only }).unwrap()
    }

    /// Bucket `b`'s piece of a file of the shuffle's layout, read as a join task reads it.
    fn piece(file: &[u8], b: usize) -> Piece<'_> {
        let (header, at, n) = bucket_place(&file[file.len() - TAIL..], file.len(), b,
                                           SUBS as usize).unwrap();
        let (offsets, _) = bucket_entries(&file[at..at + n], header).unwrap();
        Piece { header: &file[..header], line_offset: 0, source: "f",
                batches: &file[offsets[0] as usize..offsets[SUBS as usize] as usize] }
    }

    fn options(window: Window) -> BucketOptions<'static> {
        BucketOptions { sort_operands: false, rules: None, load_period_s: 60, window,
                        aggregates: true }
    }

    /// Every bucket joined from the routed lines gives the operations, connections and
    /// partial aggregates the tokenized columns give, and the two sides' counts add up to
    /// the tokenizer's; what each path rejects is the same lines for the same reasons.
    fn same_as_columns(data: &[u8], window: Window) {
        let t = tokenize(data, &Options { first_line: 1, final_block: true, strict: true });
        let shuffled = encode(&t.events, class_schemas(), &PROVENANCE, window, (BUCKETS, SUBS),
                              SEED).unwrap();
        let r = routed(data, window, None);
        let (mut parsed, mut outside, mut rejected) = (0, r.counts.outside_window, r.counts.rejected);
        let mut rejects: Vec<(i64, String)> = reasons(&r.rejects);
        let mut operations = 0;
        for b in 0..BUCKETS as usize {
            let pieces: Vec<Vec<Piece<'_>>> = shuffled.files.iter().map(|f| vec![piece(f, b)]).collect();
            let (want, _) = bucket(&pieces, &[], class_schemas(), &options(window)).unwrap();
            let none: Vec<Vec<Piece<'_>>> = (0..4).map(|_| Vec::new()).collect();
            let (got, counted) = bucket(&none, &[piece(&r.file, b)], class_schemas(),
                                        &options(window)).unwrap();
            assert_eq!(got.operations, want.operations, "bucket {b}'s operations");
            assert_eq!(got.connections, want.connections, "bucket {b}'s connections");
            assert_eq!(got.events, want.events);
            let (g, w) = (got.partials.unwrap(), want.partials.unwrap());
            // (rows of hash maps: in no particular order)
            assert_eq!(sorted_rows(&g.summary), sorted_rows(&w.summary));
            assert_eq!(g.tables.len(), w.tables.len());
            for ((gn, gt), (wn, wt)) in g.tables.iter().zip(&w.tables) {
                assert_eq!((gn, gt.schema()), (wn, wt.schema()));
                assert_eq!(sorted_rows(gt), sorted_rows(wt), "partial {gn}");
            }
            operations += got.operations.num_rows();
            for c in &counted.counted {
                assert_eq!((c.server.as_str(), c.file.as_str(), c.file_seq), ("s", "access", 2));
                parsed += c.parsed;
                outside += c.outside_window;
                rejected += c.rejected;
            }
            for (_, _, table) in &counted.rejects {
                rejects.extend(reasons(table));
            }
        }
        assert!(operations > 0);
        let kept = shuffled.kept as i64;
        assert_eq!(r.counts.total, t.counts.total);
        assert_eq!((r.counts.blank, r.counts.header), (t.counts.blank, t.counts.header));
        assert_eq!(parsed, kept, "events in the window");
        assert_eq!((r.kept as i64, r.first_ts, r.last_ts), (kept, shuffled.first_ts, shuffled.last_ts));
        assert_eq!(r.span, shuffled.span);
        assert_eq!(rejected, t.counts.rejected);
        assert_eq!(parsed + outside, t.counts.parsed, "every event counted once");
        assert_eq!(r.counts.total, parsed + outside + rejected + r.counts.blank + r.counts.header);
        rejects.sort();
        let mut want = reasons(&t.rejects);
        want.sort();
        assert_eq!(rejects, want);
    }

    fn sorted_rows(b: &RecordBatch) -> Vec<String> {
        let options = arrow_cast::display::FormatOptions::default();
        // (times as numbers: the display of a "UTC" zone needs chrono-tz)
        let plain: Vec<ArrayRef> = b.columns().iter().map(|c| match c.data_type() {
            arrow_schema::DataType::Timestamp(..) => {
                arrow_cast::cast(c, &arrow_schema::DataType::Int64).unwrap()
            }
            _ => c.clone(),
        }).collect();
        let shown: Vec<_> = plain.iter()
            .map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        let mut rows: Vec<String> = (0..b.num_rows())
            .map(|i| shown.iter().map(|f| f.value(i).to_string()).collect::<Vec<_>>().join("|"))
            .collect();
        rows.sort();
        rows
    }

    fn reasons(rejects: &RecordBatch) -> Vec<(i64, String)> {
        let line = crate::arrow_in::ints(rejects, "rejects", "line").unwrap();
        let reason = crate::arrow_in::strs(rejects, "rejects", "reason").unwrap();
        (0..rejects.num_rows()).map(|i| (line.get(i).unwrap(), reason.get(i).unwrap().to_string()))
            .collect()
    }

    #[test]
    fn routed_lines_join_as_the_tokenized_columns() {
        for server in ["real389a", "real389b"] {
            same_as_columns(&fixture(server), EVERYTHING);
        }
    }

    #[test]
    fn a_window_keeps_the_context_before_it() {
        let data = fixture("real389a");
        let t = tokenize(&data, &Options { first_line: 1, final_block: true, strict: true });
        let ts = crate::arrow_in::ints(&t.events[0], "events", "ts").unwrap();
        let mut times: Vec<i64> = (0..t.events[0].num_rows()).filter_map(|i| ts.get(i)).collect();
        times.sort_unstable();
        let (since, until) = (times[times.len() / 3], times[2 * times.len() / 3]);
        same_as_columns(&data, (Some(since), Some(until)));
        let r = routed(&data, (Some(since), Some(until)), None);
        assert!(r.counts.outside_window > 0 && r.counts.routed > r.kept as i64,
                "lines outside the window, and context before it");
    }

    const LINES: &str = "\
[07/Dec/2026:10:00:00.000000000 +0000] conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2
[07/Dec/2026:10:00:00.100000000 +0000] conn=1 op=0 BIND dn=\"uid=a,dc=x\" method=128 version=3
[07/Dec/2026:10:00:00.200000000 +0000] conn=1 op=0 RESULT err=0 tag=97 nentries=0 wtime=0.000100000 optime=0.000200000 etime=0.000300000 dn=\"uid=a,dc=x\"
[07/Dec/2200:10:00:00.300000000 +0000] conn=1 op=1 SRCH base=\"dc=x\" scope=2 filter=\"(uid=b)\" attrs=ALL
[07/Dec/2026:10:00:00.400000000 +0000] conn=1 op=1 RESULT err=0 tag=101 nentries=1 wtime=0.000100000 optime=0.000200000 etime=0.000300000
[07/Dec/2026:10:00:00.500000000 +0000] conn=2 op=0 SRCH base=\"dc=x\" scope=9 filter=\"(uid=c)\" attrs=ALL
not a line of the log
[07/Dec/2026:10:00:00.600000000 +0000] conn=1 op=2 UNBIND
[07/Dec/2026:10:00:00.700000000 +0000] conn=1 op=2 fd=64 closed - U1
";

    #[test]
    fn a_fault_in_time_is_rejected_where_the_lines_are_in_order() {
        // the SRCH dated 2200 is far from the lines on both sides: the parse task rejects
        // it, as the tokenizer does; the join task rejects the SRCH whose scope is no scope
        same_as_columns(LINES.as_bytes(), EVERYTHING);
        let r = routed(LINES.as_bytes(), EVERYTHING, None);
        let reasons = reasons(&r.rejects);
        assert_eq!(reasons.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![7, 4]);
        assert!(reasons[1].1.starts_with("timestamp more than a day"));
        assert_eq!((r.counts.total, r.counts.rejected, r.counts.routed), (9, 2, 7));
    }

    #[test]
    fn a_trace_routes_its_connections_only() {
        let r = routed(LINES.as_bytes(), EVERYTHING, Some(&[2]));
        assert_eq!((r.counts.skipped, r.counts.routed), (7, 1));
        let lines: usize = (0..BUCKETS as usize).map(|b| {
            let mut n = 0;
            for_each_line(piece(&r.file, b).batches, |number, _| { assert_eq!(number, 6); n += 1; Ok(()) })
                .unwrap();
            n
        }).sum();
        assert_eq!(lines, 1);
    }

    #[test]
    fn a_block_not_final_leaves_its_last_line() {
        let data = &LINES.as_bytes()[..LINES.len() - 5];
        let r = route(data, &Route { provenance: PROVENANCE, window: EVERYTHING, buckets: 1, subs: 1,
                                     seed: SEED, first_line: 1, final_block: false, only: None })
            .unwrap();
        assert_eq!((r.counts.total, r.carry_from), (8, LINES.rfind("[07/Dec/2026:10:00:00.7").unwrap()));
        let cut = routed(data, EVERYTHING, None);
        assert!(reasons(&cut.rejects).contains(
            &(9, "truncated last line: no newline (file being written or cut)".to_string())));
    }

    #[test]
    fn a_damaged_or_cut_file_is_an_error_naming_it() {
        let r = routed(LINES.as_bytes(), EVERYTHING, None);
        let schemas = class_schemas();
        let mut damaged = r.file.clone();
        let at = damaged.len() / 2;
        damaged[at] ^= 0x40;
        let whole_piece = whole(&damaged, "scratch/c000001.route").unwrap();
        let e = tokenize_pieces(&[whole_piece], schemas, EVERYTHING).err().unwrap();
        assert!(e.0.starts_with("scratch/c000001.route: routed file: "), "{}", e.0);
        assert!(whole(&r.file[..r.file.len() - 3], "f").is_err());
        let mut header = r.file.clone();
        header[6] ^= 1;
        let e = tokenize_pieces(&[whole(&header, "f").unwrap()], schemas, EVERYTHING).err().unwrap();
        assert!(e.0.contains("header damaged"), "{}", e.0);
    }
}
