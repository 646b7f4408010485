//! Any bytes as a JSON access log: every line is an event, a reject, a header or blank,
//! and nothing panics.
#![no_main]

use dsaccess_core::json::tokenize_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let t = tokenize_json(data, 1);
    let c = t.counts;
    assert_eq!(c.total, c.parsed + c.rejected + c.header + c.blank);
    assert_eq!(t.rejects.num_rows() as i64, c.rejected);
    let lines = data.split(|b| *b == b'\n').count() as i64 - i64::from(data.ends_with(b"\n"));
    assert_eq!(c.total, lines.max(0));
});
