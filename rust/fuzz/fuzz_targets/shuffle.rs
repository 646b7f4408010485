//! A shuffle file damaged anywhere (a scratch file cut or overwritten): decoding it, or
//! reading one of its batches, is a table or an error, never a panic. The LZ4 blocks
//! are decoded by lz4_flex's fast decoder, which checks every read and write against
//! its bounds; this drives it with blocks that are not what the encoder wrote.
#![no_main]

use std::sync::{Arc, OnceLock};

use arrow_schema::Schema;
use dsaccess_core::shuffle::{decode, encode, read_batch, whole, Provenance};
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

/// The sample's shuffle files (one per class) and their schemas.
fn files() -> &'static (Vec<Vec<u8>>, Vec<Arc<Schema>>) {
    static FILES: OnceLock<(Vec<Vec<u8>>, Vec<Arc<Schema>>)> = OnceLock::new();
    FILES.get_or_init(|| {
        let t = tokenize(LOG, &Options { first_line: 1, final_block: true, strict: true });
        let schemas: Vec<_> = t.events.iter().map(|b| b.schema()).collect();
        let p = Provenance { server: "s", file: "f", file_seq: 0 };
        let encoded = encode(&t.events, &schemas, &p, (None, None), (2, 2), 7).expect("encodes");
        (encoded.files, schemas)
    })
}

fuzz_target!(|data: &[u8]| {
    let (files, schemas) = files();
    let [which, at_lo, at_hi, rest @ ..] = data else { return };
    let i = usize::from(*which) % files.len();
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
    if let Ok(piece) = whole(&file, "f") {
        let _ = decode(&[piece], &schemas[i]);
    }
});
