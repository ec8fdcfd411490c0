//! Any bytes as one or more `Link` header values (one per input line):
//! `next_link` must never panic, and the URL it returns must be the text
//! between `<` and `>` of one of those values, never a URL it made up.
//! (Whether the link may be followed, same host and no loop, is decided by
//! the callers and tested with the remote registry.)
#![no_main]

use http::header::{HeaderMap, HeaderValue, LINK};
use libfuzzer_sys::fuzz_target;
use promoter::registry::remote::next_link;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let mut values = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        // The HTTP layer refuses control characters before we see a value.
        if let Ok(value) = HeaderValue::from_bytes(line) {
            values.push(value.clone());
            headers.append(LINK, value);
        }
    }
    let Some(next) = next_link(&headers) else {
        return;
    };
    let wrapped = format!("<{next}>");
    let found = values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(&wrapped));
    assert!(found, "{next:?} is not a <target> of {values:?}");
    assert!(!next.contains('>'), "{next:?} runs past its '>'");
});
