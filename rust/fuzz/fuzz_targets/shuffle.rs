//! A shuffle file damaged anywhere (a scratch file cut or overwritten), read as a join task
//! reads it (its tail, a bucket's index entries, its header, the bucket's range: the
//! production reader) and joined with the other classes' files (stage B, the whole
//! bucket task), or one of its batches read: a result or an error, never a panic. The
//! LZ4 blocks are decoded by lz4_flex's fast decoder, which checks every read and write
//! against its bounds; this drives it with blocks that are not what the encoder wrote.
#![no_main]

use std::sync::OnceLock;

use dsaccess_core::bucket::{bucket, Options as BucketOptions};
use dsaccess_core::join::EVERYTHING;
use dsaccess_core::shuffle::{
    bucket_entries, bucket_place, class_schemas, encode, read_batch, server_seed, Piece,
    Provenance, SUBS, TAIL,
};
use dsaccess_core::{tokenize, Options};
use libfuzzer_sys::fuzz_target;

const LOG: &[u8] = b"\
[21/Apr/2024:10:00:00.000000000 +0000] conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2
[21/Apr/2024:10:00:00.100000000 +0000] conn=1 op=0 BIND dn=\"cn=admin\" method=128 version=3
[21/Apr/2024:10:00:00.200000000 +0000] conn=1 op=0 RESULT err=0 tag=97 nentries=0 wtime=0.1 optime=0.2 etime=0.3 dn=\"cn=admin\"
[21/Apr/2024:10:00:00.300000000 +0000] conn=1 op=1 SRCH base=\"dc=example\" scope=2 filter=\"(uid=a)\" attrs=ALL
[21/Apr/2024:10:00:00.400000000 +0000] conn=1 op=1 RESULT err=0 tag=101 nentries=1 wtime=0.1 optime=0.2 etime=0.3 notes=U details=\"x\"
[21/Apr/2024:10:00:00.500000000 +0000] conn=1 op=2 ABANDON targetop=1 msgid=3
[21/Apr/2024:10:00:00.600000000 +0000] conn=1 op=3 UNBIND
[21/Apr/2024:10:00:00.700000000 +0000] conn=1 op=3 fd=64 closed - U1
";

/// The sample's shuffle files (one per class), as a parse task writes them.
fn files() -> &'static Vec<Vec<u8>> {
    static FILES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        let t = tokenize(LOG, &Options { first_line: 1, final_block: true, strict: true });
        let p = Provenance { server: "s", file: "f", file_seq: 0 };
        encode(&t.events, class_schemas(), &p, (None, None), (BUCKETS, SUBS), server_seed("s"))
            .expect("encodes").files
    })
}

const BUCKETS: u32 = 2;

/// A bucket's piece of a file, found as a join task finds it (None: the reader refused).
fn piece(file: &[u8], b: usize) -> Option<Piece<'_>> {
    let size = file.len();
    let tail = file.get(size.saturating_sub(TAIL)..)?;
    let (header, at, length) = bucket_place(tail, size, b, SUBS as usize).ok()?;
    let (offsets, _) = bucket_entries(file.get(at..at + length)?, header).ok()?;
    let (first, last) = (*offsets.first()? as usize, *offsets.last()? as usize);
    Some(Piece { header: file.get(..header)?, batches: file.get(first..last)?, line_offset: 0,
                 source: "f" })
}

fuzz_target!(|data: &[u8]| {
    let files = files();
    let [which, at_lo, at_hi, rest @ ..] = data else { return };
    let i = usize::from(*which & 0x7f) % files.len();
    let mut file = files[i].clone();
    // overwrite from a place the input chooses, and cut there when the input says so
    let at = usize::from(u16::from_le_bytes([*at_lo, *at_hi])) % file.len();
    let end = (at + rest.len()).min(file.len());
    file[at..end].copy_from_slice(&rest[..end - at]);
    if which & 0x80 != 0 {
        file.truncate(end);
    }
    for b in 0..4 {
        let _ = read_batch(&file, b);
    }
    let options = BucketOptions { sort_operands: false, rules: None, load_period_s: 1,
                                  window: EVERYTHING, aggregates: true };
    for b in 0..BUCKETS as usize {
        let pieces: Vec<Vec<Piece<'_>>> = files.iter().enumerate()
            .map(|(c, f)| if c == i { piece(&file, b) } else { piece(f, b) })
            .map(|p| p.into_iter().collect())
            .collect();
        let _ = bucket(&pieces, &[], class_schemas(), &options);
    }
});
