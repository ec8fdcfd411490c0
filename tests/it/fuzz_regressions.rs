//! Inputs the fuzz targets (`fuzz/`) found, kept as plain tests of the
//! public API so that they run in the normal suite.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

use promoter::registry::remote::retry::{retry_after, MAX_RETRY_AFTER};
use promoter::registry::retry::RetryClock;

fn retry_after_of(value: &'static str) -> Option<Duration> {
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
    retry_after(&headers)
}

/// `Retry-After: 18446744073709551615` was read as that many seconds, and
/// the retry clock's `Instant::now() + wait` overflowed: a panic from one
/// header of a hostile or broken registry. A date 8000 years ahead did not
/// overflow but was as absurd. Both now ask for the cap, which is past any
/// retry deadline, so the request fails at once instead of sleeping.
#[test]
fn absurd_retry_after_is_capped_and_gives_up_without_a_panic() {
    for value in [
        "18446744073709551615",
        "9223372036854775808",
        "1234567890123456789012345",
        "99999999999",
        "Sun, 06 Nov 9994 08:49:37 GMT",
    ] {
        let wait = retry_after_of(value).expect(value);
        assert_eq!(wait, MAX_RETRY_AFTER, "{value}");
        let mut clock = RetryClock::new(Instant::now() + Duration::from_secs(120), 10);
        assert_eq!(clock.next_delay(Some(wait)), None, "{value}");
    }
    assert_eq!(retry_after_of("30"), Some(Duration::from_secs(30)));
}

/// Even a wait that did not come from a header (or a deadline far ahead)
/// never overflows the clock.
#[test]
fn the_retry_clock_never_overflows() {
    let mut clock = RetryClock::new(Instant::now() + Duration::from_secs(120), 10);
    assert_eq!(clock.next_delay(Some(Duration::MAX)), None);
}
