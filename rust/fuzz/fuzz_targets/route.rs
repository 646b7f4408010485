//! Stage A as routing and the join task's side of it (`route`), on arbitrary bytes: a log
//! routed with a window the input chooses, then its file tokenized and joined as a
//! bucket's task (every line counted once: by the parse task, or routed and counted by
//! the join task); or a routed file damaged anywhere and read back. A result or an
//! error, never a panic.
#![no_main]

use dsaccess_core::bucket::{bucket, Options as BucketOptions};
use dsaccess_core::route::{route, tokenize_pieces, Route};
use dsaccess_core::shuffle::{class_schemas, whole, Piece, Provenance};
use libfuzzer_sys::fuzz_target;

const LOG: &[u8] = b"\
[21/Apr/2024:10:00:00.000000000 +0000] conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2
[21/Apr/2024:10:00:00.100000000 +0000] conn=1 op=0 BIND dn=\"cn=admin\" method=128 version=3
[21/Apr/2024:10:00:00.200000000 +0000] conn=1 op=0 RESULT err=0 tag=97 nentries=0 wtime=0.1 optime=0.2 etime=0.3 dn=\"cn=admin\"
[21/Apr/2024:10:00:00.300000000 +0000] conn=1 op=1 SRCH base=\"dc=example\" scope=2 filter=\"(uid=a)\" attrs=ALL
[21/Apr/2024:10:00:00.400000000 +0000] conn=1 op=1 RESULT err=0 tag=101 nentries=1 wtime=0.1 optime=0.2 etime=0.3 notes=U details=\"x\"
[21/Apr/2024:10:00:00.700000000 +0000] conn=1 op=3 fd=64 closed - U1
";

/// 10:00:00.25 on the sample's day, in ns: a window's edge inside its lines.
const MIDDLE: i64 = 1_713_693_600_250_000_000;

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let window = match mode & 3 {
        0 => (None, None),
        1 => (Some(MIDDLE), None),
        2 => (None, Some(MIDDLE)),
        _ => (Some(MIDDLE - 1), Some(MIDDLE + 1)),
    };
    let damage = mode & 4 != 0;
    let log = if damage { LOG } else { rest };
    let r = Route { provenance: Provenance { server: "s", file: "f", file_seq: 0 }, window,
                    buckets: 2, subs: 2, seed: 7, first_line: 1, final_block: mode & 8 == 0,
                    only: None };
    let Ok(routed) = route(log, &r) else { return };
    let c = routed.counts;
    assert_eq!(c.total, c.blank + c.header + c.rejected + c.skipped + c.outside_window + c.routed);
    let mut file = routed.file;
    if damage {
        if let [lo, hi, bytes @ ..] = rest {
            let at = usize::from(u16::from_le_bytes([*lo, *hi])) % file.len();
            let end = (at + bytes.len()).min(file.len());
            file[at..end].copy_from_slice(&bytes[..end - at]);
            if mode & 16 != 0 {
                file.truncate(end);
            }
        }
    }
    let Ok(piece) = whole(&file, "f") else { return };
    match tokenize_pieces(&[piece], class_schemas(), window) {
        Ok((_, counted)) if !damage => {
            let counted: i64 = counted.counted.iter()
                .map(|f| f.parsed + f.outside_window + f.rejected).sum();
            assert_eq!(counted, c.routed, "every routed line counted by the join task");
        }
        _ => {}
    }
    let options = BucketOptions { sort_operands: false, rules: None, load_period_s: 1, window,
                                  aggregates: true };
    let none: Vec<Vec<Piece<'_>>> = (0..4).map(|_| Vec::new()).collect();
    if let Ok(piece) = whole(&file, "f") {
        let _ = bucket(&none, &[piece], class_schemas(), &options);
    }
});
