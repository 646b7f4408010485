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
    // lines: one per newline, and a last one without it (text after the last newline)
    let newlines = data.iter().filter(|b| **b == b'\n').count() as i64;
    let lossy = String::from_utf8_lossy(data);
    assert_eq!(c.total, newlines + i64::from(!lossy.is_empty() && !lossy.ends_with('\n')));
});
