//! Any text: the fingerprint never panics, and is a filter shape or `<unparsed:…>` that
//! never quotes the input; the index advice never panics, and exists exactly when the
//! filter parses.
#![no_main]

use dsaccess_core::filter::{fingerprint, index_candidates};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for sort in [false, true] {
        let fp = fingerprint(Some(text), sort);
        assert!(fp.starts_with('(') || fp.starts_with("<unparsed:"), "{fp}");
        if let Some(reason) = fp.strip_prefix("<unparsed:") {
            assert!(reason.len() < 60, "a fixed phrase: {reason}");
        }
    }
    let parses = !fingerprint(Some(text), false).starts_with("<unparsed:");
    assert_eq!(index_candidates(text).is_some(), parses);
});
