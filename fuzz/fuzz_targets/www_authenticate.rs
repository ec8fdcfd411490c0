//! Any text as a `WWW-Authenticate` header: `parse_challenges` must never
//! panic, and every value it returns must come from the header. A realm is
//! where credentials are sent, so one that was not in the header (or was
//! stitched together from two places) would be a way to leak them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promoter::registry::remote::auth::{parse_challenges, Challenge};

/// `value` can be read off `header` in order: a substring, or a quoted
/// string with its backslash escapes undone (which only drops characters).
fn comes_from(value: &str, header: &str) -> bool {
    if header.contains(value) {
        return true;
    }
    let mut rest = header.chars();
    value.chars().all(|c| rest.any(|h| h == c))
}

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let challenges = parse_challenges(header);
    assert!(
        challenges.len() <= header.len(),
        "{} challenges from {} bytes",
        challenges.len(),
        header.len()
    );
    for challenge in &challenges {
        let values: Vec<&str> = match challenge {
            Challenge::Basic { realm } => realm.iter().map(String::as_str).collect(),
            Challenge::Bearer {
                realm,
                service,
                scope,
                error,
            } => std::iter::once(realm)
                .chain(service)
                .chain(scope)
                .chain(error)
                .map(String::as_str)
                .collect(),
            Challenge::Other { scheme } => {
                assert!(!scheme.is_empty(), "an empty scheme from {header:?}");
                assert!(header.contains(scheme.as_str()));
                assert!(!scheme.contains([' ', '\t', ',', '=']), "{scheme:?}");
                vec![]
            }
        };
        for value in values {
            assert!(
                comes_from(value, header),
                "{value:?} is not in {header:?} ({challenge:?})"
            );
        }
    }
});
