//! Any bytes as a `Retry-After` header (delta-seconds or HTTP date): the
//! parser must never panic and never ask for an absurd wait, and the retry
//! clock that consumes its answer must not panic on it either (it adds the
//! wait to `Instant::now()` to compare with the deadline).
#![no_main]

use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use libfuzzer_sys::fuzz_target;
use promoter::registry::remote::retry::{retry_after, MAX_RETRY_AFTER};
use promoter::registry::retry::RetryClock;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, value);
    let wait = retry_after(&headers);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut clock = RetryClock::new(deadline, 10);
    if let Some(delay) = clock.next_delay(wait) {
        assert!(
            delay <= Duration::from_secs(120),
            "{delay:?} past the deadline"
        );
        if let Some(wait) = wait {
            assert_eq!(delay, wait, "a server's wait is obeyed as given");
        }
    }
    if let Some(wait) = wait {
        assert!(wait <= MAX_RETRY_AFTER, "{data:?} asks for {wait:?}");
    }
});
