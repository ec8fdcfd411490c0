//! A URL as every message shows it: `scheme://host[:port]/path`.
//!
//! Registries hand out URLs that carry secrets: upload sessions carry state
//! tokens in their query (`_state=…`), blob redirects to object storage carry
//! signatures (`X-Amz-Signature=…`), and a user may write credentials into a
//! URL (`https://user:pass@host`). A message or a log line only ever needs
//! the scheme, host, port and path, so that is all a [`SafeUrl`] holds.
//!
//! The model is uv's `DisplaySafeUrl`: the type, not each caller, makes a URL
//! safe to show, so an error that carries one cannot forget to redact it.
//! Unlike uv's, only the safe form is kept: nothing that holds one needs
//! the rest, and then neither `Display`, `Debug` nor the text it reads as
//! can let a secret through.

use std::fmt;
use std::ops::Deref;

use url::Url;

/// A URL without user info, query or fragment. See the module docs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SafeUrl(String);

impl SafeUrl {
    /// `url` as `scheme://host[:port]/path`.
    pub fn new(url: &Url) -> SafeUrl {
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
        SafeUrl(out)
    }

    /// [`SafeUrl::new`] for text that may not parse as a URL (a `Location`
    /// or `Link` header, a path with its query). Whatever does not parse is
    /// cut at the first `?` or `#`, and anything before an `@` in the
    /// authority is dropped.
    pub fn from_text(text: &str) -> SafeUrl {
        if let Ok(parsed) = Url::parse(text) {
            return SafeUrl::new(&parsed);
        }
        let cut = text.find(['?', '#']).map_or(text, |i| &text[..i]);
        SafeUrl(match cut.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                format!("{scheme}://{host}{path}")
            }
            None => cut.to_string(),
        })
    }

    /// The text shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `host[:port]`: the registry the URL is of, as options are keyed.
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or(self.0.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    /// Whether the URL is plain `http://`.
    pub fn is_plain_http(&self) -> bool {
        self.0.starts_with("http://")
    }
}

impl From<&Url> for SafeUrl {
    fn from(url: &Url) -> SafeUrl {
        SafeUrl::new(url)
    }
}

/// Any text becomes safe on the way in (tests and stand-in registries name
/// URLs as strings).
impl From<&str> for SafeUrl {
    fn from(text: &str) -> SafeUrl {
        SafeUrl::from_text(text)
    }
}

/// Reads as the text it shows, which is all it holds.
impl Deref for SafeUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// As a string's: `{:?}` of an error reads as it did when this was text.
impl fmt::Debug for SafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_user_info_query_and_fragment() {
        let u = Url::parse("https://user:hunter2@example.com:8443/v2/a/blobs/x?X-Sig=abc&t=1#frag")
            .unwrap();
        let safe = SafeUrl::new(&u);
        assert_eq!(safe.as_str(), "https://example.com:8443/v2/a/blobs/x");
        assert_eq!(
            format!("{safe} {safe:?}"),
            format!("{} {:?}", &*safe, &*safe)
        );
    }

    #[test]
    fn unparsable_text_is_cut_too() {
        let shown = |text: &str| SafeUrl::from(text).to_string();
        assert_eq!(
            shown("/v2/a/blobs/uploads/1?_state=secret"),
            "/v2/a/blobs/uploads/1"
        );
        assert_eq!(shown("weird://u:p@host/path?q=1"), "weird://host/path");
        assert_eq!(shown("http://[::1"), "http://[::1");
    }
}
