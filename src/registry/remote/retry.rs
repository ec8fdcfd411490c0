//! The HTTP half of retrying: what a registry's answer says about trying
//! again (`Retry-After`), and the one classification of transport failures
//! (refused connections, TLS refusals by type). The driver and its clock are
//! [`crate::registry::retry`]'s.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::registry::{error_chain, RegistryError, SafeUrl};

/// Whether a TLS library refused the peer (an untrusted or invalid
/// certificate, a failed handshake): found by the error's type anywhere in
/// its chain, not by its text. `io::Error` hides the error it wraps from
/// `source()`, so it is unwrapped by hand.
fn is_tls_refusal(err: &(dyn std::error::Error + 'static)) -> bool {
    tls_error(err).is_some()
}

/// The rustls error in `err`'s chain, if a TLS library refused the peer.
fn tls_error<'e>(err: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(tls) = tls_error(inner) {
                return Some(tls);
            }
        }
        current = e.source();
    }
    None
}

/// A TLS refusal in words, with the setting that fixes it: never the
/// Debug dump of a rustls error (`Other(OtherError(CaUsedAsEndEntity))`).
fn tls_message(tls: &rustls::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let why = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => "its certificate is signed by a CA this machine does not trust",
            C::Expired | C::ExpiredContext { .. } => "its certificate has expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "its certificate is not valid yet",
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "its certificate is not valid for this host name"
            }
            C::BadSignature => "its certificate's signature does not verify",
            C::Revoked => "its certificate is revoked",
            C::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                "its certificate is self-signed (a CA certificate used as the server's own)"
            }
            _ => "its certificate is not one this machine accepts",
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "it does not speak TLS there (a plain HTTP port?)"
        }
        _ => "the TLS handshake failed",
    };
    let fix = if why.contains("plain HTTP") {
        format!("set `plain_http: true` for {host} in --registry-config")
    } else {
        format!(
            "name the CA (or, self-signed, the certificate itself) as `ca_file` for {host} in \
             --registry-config; `insecure: true` skips the check, for a test registry only"
        )
    };
    format!("TLS refused: {why}: {fix}")
}

/// A reqwest error as a [`RegistryError::Transport`], without its URL (which
/// may carry a signature or upload state) and with its cause chain.
pub fn reqwest_error(method: &str, shown_url: &SafeUrl, err: reqwest::Error) -> RegistryError {
    // A body that breaks off mid-transfer surfaces as a "decode" error in
    // reqwest; we never ask reqwest to decode anything else (no .json()).
    let connectish = err.is_connect()
        || err.is_timeout()
        || err.is_request()
        || err.is_body()
        || err.is_decode();
    let err = err.without_url();
    let message = error_chain(&err);
    if is_connection_refused(&err) {
        return RegistryError::Refused {
            method: method.to_string(),
            url: shown_url.clone(),
            message,
        };
    }
    // A certificate the client will not trust is not a passing fault.
    let tls_refusal = is_tls_refusal(&err);
    let message = match tls_error(&err) {
        Some(tls) => tls_message(tls, shown_url.host()),
        None => message,
    };
    RegistryError::Transport {
        method: method.to_string(),
        url: shown_url.clone(),
        message,
        retryable: connectish && !tls_refusal && !err.is_builder(),
    }
}

/// Whether the connection was refused (an I/O error of that kind, anywhere
/// in the chain).
fn is_connection_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = e.source();
    }
    false
}

/// The longest wait a `Retry-After` is read as. Longer ones (a year, or
/// `18446744073709551615` seconds, which overflowed `Instant` arithmetic)
/// become this: still past any retry deadline, so the request fails at once.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// `Retry-After`, in delta-seconds or HTTP-date form, as a wait from now
/// (at most [`MAX_RETRY_AFTER`]).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "very long", not "absent".
        Duration::from_secs(text.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let when = httpdate::parse_http_date(text).ok()?;
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(30);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(27) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn a_tls_refusal_is_known_by_its_type_even_inside_an_io_error() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        assert!(is_tls_refusal(&wrapped));
        // The same words in an error of another type are not a TLS refusal.
        let text = std::io::Error::other("certificate UnknownIssuer");
        assert!(!is_tls_refusal(&text));
    }
}
