//! Any text: the fingerprint never panics, and is a filter shape or `<unparsed:…>` that
//! never quotes the input.
#![no_main]

use dsaccess_core::filter::fingerprint;
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
});
