//! URL redaction for every message that names a URL.
//!
//! Registries hand out URLs that carry secrets: upload sessions carry state
//! tokens in their query (`_state=…`), blob redirects to object storage carry
//! signatures (`X-Amz-Signature=…`), and a user may write credentials into a
//! URL (`https://user:pass@host`). An error message or a log line only ever
//! needs the scheme, host, port and path, so that is all it gets.

use url::Url;

/// `scheme://host[:port]/path`: no user info, no query, no fragment.
pub fn url(url: &Url) -> String {
    let mut out = String::with_capacity(url.as_str().len());
    out.push_str(url.scheme());
    out.push_str("://");
    if let Some(host) = url.host_str() {
        out.push_str(host);
    }
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(url.path());
    out
}

/// [`url()`] for text that may not parse as a URL (a `Location` or `Link`
/// header, a realm). Whatever does not parse is cut at the first `?` or `#`,
/// and anything before an `@` in the authority is dropped.
pub fn url_text(text: &str) -> String {
    if let Ok(parsed) = Url::parse(text) {
        return url(&parsed);
    }
    let cut = text.find(['?', '#']).map_or(text, |i| &text[..i]);
    match cut.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => cut.to_string(),
    }
}

/// Text a registry sent (an error message), made safe to print: control
/// characters (CR, LF, ESC and the rest) are shown escaped, so a hostile
/// registry cannot forge output lines or drive the terminal.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_user_info_query_and_fragment() {
        let u = Url::parse("https://user:hunter2@example.com:8443/v2/a/blobs/x?X-Sig=abc&t=1#frag")
            .unwrap();
        assert_eq!(url(&u), "https://example.com:8443/v2/a/blobs/x");
    }

    #[test]
    fn unparsable_text_is_cut_too() {
        assert_eq!(
            url_text("/v2/a/blobs/uploads/1?_state=secret"),
            "/v2/a/blobs/uploads/1"
        );
        assert_eq!(url_text("weird://u:p@host/path?q=1"), "weird://host/path");
        assert_eq!(url_text("http://[::1"), "http://[::1");
    }

    #[test]
    fn registry_text_cannot_forge_lines_or_escape_sequences() {
        let hostile = "denied\r\nresult: 9 done, 0 failed\u{1b}[2K";
        let shown = printable(hostile);
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert_eq!(shown, "denied\\r\\nresult: 9 done, 0 failed\\u{1b}[2K");
        assert_eq!(printable("plain text: fine"), "plain text: fine");
    }
}
