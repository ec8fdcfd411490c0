//! Keeping credentials out of messages. Diagnostics quote what the user
//! wrote, and CI logs are public: a `user:password@` must never get through,
//! wherever in a manifest it was written.

/// Replace the `user:password` of `scheme://user:password@host` (and of a
/// bare `user:password@host`) with `***`: whatever the user wrote where,
/// credentials never reach CI logs. Service accounts (`sa@project`) have no
/// colon before the '@' and stay readable.
pub fn credentials(text: &mut String) {
    let is_boundary =
        |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '(' | ')' | '[' | ']' | ',' | '`');
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let token_end = rest.find(is_boundary).unwrap_or(rest.len());
        let (token, tail) = rest.split_at(token_end);
        redact_token(token, &mut out);
        let boundary_len = tail.chars().next().map_or(0, char::len_utf8);
        out.push_str(&tail[..boundary_len]);
        rest = &tail[boundary_len..];
    }
    *text = out;
}

/// In one token, each '@' ends a possible userinfo that starts after the
/// previous '/' (or at the token's start): redact it when it holds a ':'
/// (user:password) or follows a scheme (a bare token). Ranges are merged, so
/// a password containing '@' goes as a whole.
fn redact_token(token: &str, out: &mut String) {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (at, _) in token.match_indices('@') {
        let start = token[..at].rfind('/').map_or(0, |slash| slash + 1);
        let userinfo = &token[start..at];
        // `image:tag@sha256:...` names a digest, not a host: no credentials
        // precede it (a URL's host is never `sha256:` and 64 hex digits).
        let names_digest = ["sha256:", "sha512:"]
            .iter()
            .any(|alg| token[at + 1..].starts_with(alg));
        if names_digest && !token[..start].contains("://") {
            continue;
        }
        if userinfo.contains(':') || token[..start].ends_with("://") {
            match ranges.last_mut() {
                Some(last) if start <= last.1 => last.1 = at,
                _ => ranges.push((start, at)),
            }
        }
    }
    let mut from = 0;
    for (start, end) in ranges {
        out.push_str(&token[from..start]);
        out.push_str("***");
        from = end;
    }
    out.push_str(&token[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_wherever_they_appear() {
        let mut text = "name \"https://user:hunter2@host.example/x\" and ftp://a@b".to_string();
        credentials(&mut text);
        assert_eq!(text, "name \"https://***@host.example/x\" and ftp://***@b");
        let mut plain = "service account sa@robot.com, digest sha256:abc".to_string();
        credentials(&mut plain);
        assert_eq!(plain, "service account sa@robot.com, digest sha256:abc");
        let mut bare = "key \"robot:hunter2@evil.example/x\"".to_string();
        credentials(&mut bare);
        assert_eq!(bare, "key \"***@evil.example/x\"");
        let mut twice = "https://u:hunter2@hhttps://u:hunter2@h u:p@ss@host".to_string();
        credentials(&mut twice);
        assert_eq!(twice, "https://***@hhttps://***@h ***@host");
        let mut pinned = "reg.example/app:1.0@sha256:abc and https://u:p@sha256:x".to_string();
        credentials(&mut pinned);
        assert_eq!(
            pinned,
            "reg.example/app:1.0@sha256:abc and https://***@sha256:x"
        );
    }
}
