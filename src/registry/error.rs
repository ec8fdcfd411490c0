//! What can go wrong talking to a registry, typed so that callers can
//! branch on it (retry, report, give up), and the words each case is shown
//! with.

use super::SafeUrl;
use crate::oci::{ContentError, GraphError};

/// A registry error, typed so that callers can branch (retry, report, give up).
/// Display texts never contain credentials or URL query strings.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry wants authentication (HTTP 401) and we have no
    /// credentials it accepts.
    #[error("{registry}: {}", unauthorized_text(registry, scope, credentials))]
    Unauthorized {
        /// The registry's `host[:port]`.
        registry: String,
        /// The access that was asked for (`repository:<path>:pull`...).
        scope: String,
        /// Where the credentials sent came from (a file, a helper); `None`
        /// when there were none to send.
        credentials: Option<String>,
    },
    /// The credentials were accepted but do not grant this access (HTTP 403).
    #[error("{registry}: access denied to {scope}")]
    Denied {
        /// The registry's `host[:port]`.
        registry: String,
        /// The access that was refused.
        scope: String,
    },
    /// The registry asks us to slow down (HTTP 429).
    #[error("{registry}: rate limited (HTTP 429){}", retry_after_text(*retry_after_secs))]
    RateLimited {
        /// The registry's `host[:port]`.
        registry: String,
        /// Its `Retry-After`, in seconds; `None` when it sent none.
        retry_after_secs: Option<u64>,
    },
    /// Bytes that do not match their digest or size (a passing fault or a
    /// corrupt store: retried, then reported).
    #[error(transparent)]
    BadContent(ContentError),
    /// The registry answered with an error status after every retry.
    #[error("{method} {url}: HTTP {status}{}", detail_text(detail))]
    Status {
        /// The HTTP method of the request.
        method: String,
        /// Shown without query string or user info.
        url: SafeUrl,
        /// The HTTP status code.
        status: u16,
        /// The first OCI error code of the body, when it had one.
        code: Option<ErrorCode>,
        /// The registry's own words (its error codes and messages, clipped),
        /// or ours; `None` when the body said nothing useful.
        detail: Option<String>,
    },
    /// Nothing listens where the registry should be: the connection was
    /// refused. Retried briefly ([`crate::limits::REFUSED_ATTEMPTS`]), not
    /// for the whole retry deadline: a registry that is down stays down.
    #[error("{method} {url}: connection refused: is the registry running there, and are the host and port right? ({message})")]
    Refused {
        /// The HTTP method of the request.
        method: String,
        /// Shown without query string or user info.
        url: SafeUrl,
        /// The operating system's words.
        message: String,
    },
    /// The request got no HTTP answer: the connection failed, timed out or
    /// the answer stalled.
    #[error("{method} {url}: {message}")]
    Transport {
        /// The HTTP method of the request.
        method: String,
        /// Shown without query string or user info.
        url: SafeUrl,
        /// What went wrong, for people.
        message: String,
        /// Connection-level failures (reset, refused, timed out) are retryable.
        retryable: bool,
    },
    /// A local file or `oci:` tree could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The registry or `oci:` tree answered something the protocol or the
    /// layout format does not allow (bad JSON, a missing header, a body past
    /// its cap, a corrupt `index.json`): not retried, the source is at fault.
    #[error("{what}: {message}")]
    Protocol {
        /// What was being read (a URL, a manifest, a file of the tree).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// The user's configuration cannot work (a CA file that is no PEM, a
    /// client certificate without its key, a host that is no URL).
    #[error("{what}: {message}")]
    Config {
        /// The setting, file or host at fault.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// Content the plan relies on is gone since it was read.
    #[error("{what}: {message}")]
    Vanished {
        /// What was looked for again.
        what: String,
        /// Why it could not be had.
        message: String,
    },
    /// A bound on what others send was reached: a size, depth or count
    /// from [`crate::limits`]. The message names the limit; the source is at
    /// fault (or, where the bound is a setting, says which one to raise).
    #[error("{what}: {message}")]
    Limit {
        /// What was being read (a URL, a file, an image).
        what: String,
        /// Which limit was reached.
        message: String,
    },
    /// The registry accepted a write but does not hold it when read back
    /// (`--verify-writes`).
    #[error("{what}: {message}")]
    NotStored {
        /// The manifest or blob that was written.
        what: String,
        /// What the read-back found instead.
        message: String,
    },
    /// A bug of ours, reported instead of a panic.
    #[error("{what}: internal error: {message}")]
    Internal {
        /// Where it happened (an endpoint, a request, a destination).
        what: String,
        /// What went wrong.
        message: String,
    },
    /// The registry does not offer something we need (the catalog API, an
    /// authentication scheme we speak).
    #[error("{registry}: {operation} is not supported by this registry")]
    Unsupported {
        /// The registry's `host[:port]`.
        registry: String,
        /// What it does not support, for people.
        operation: String,
    },
    /// Credentials could not be read or used: an unreadable auth file, a
    /// failing credential helper, a secret that cannot go in a header. The
    /// message never contains the secret.
    #[error("{0}")]
    Credentials(String),
}

impl From<ContentError> for RegistryError {
    fn from(e: ContentError) -> RegistryError {
        match e {
            ContentError::Malformed { what, message } => RegistryError::Protocol { what, message },
            mismatch => RegistryError::BadContent(mismatch),
        }
    }
}

impl From<GraphError> for RegistryError {
    fn from(e: GraphError) -> RegistryError {
        RegistryError::Limit {
            what: e.what().to_string(),
            message: e.message(),
        }
    }
}

/// The error codes of the OCI distribution spec (and Docker's additions
/// registries send), as a registry's error body names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: the repository does not hold the blob.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: the upload was rejected.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: the upload session is gone or never existed.
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: the uploaded bytes do not match the digest given.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: a manifest names a blob the repository lacks.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: the registry rejected the manifest.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: no such manifest (or tag).
    ManifestUnknown,
    /// `NAME_INVALID`: the repository name is not allowed.
    NameInvalid,
    /// `NAME_UNKNOWN`: no such repository.
    NameUnknown,
    /// `SIZE_INVALID`: the content does not have the size given.
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication required.
    Unauthorized,
    /// `DENIED`: access refused.
    Denied,
    /// `UNSUPPORTED`: the operation is not supported.
    Unsupported,
    /// `TOOMANYREQUESTS`: rate limited.
    TooManyRequests,
    /// A code outside the spec, kept as sent.
    Other(String),
}

impl ErrorCode {
    /// The code for `code` as a registry spells it (`BLOB_UNKNOWN`...);
    /// never fails, an unknown code is kept as [`ErrorCode::Other`].
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            other => ErrorCode::Other(other.to_string()),
        }
    }

    /// Whether the code says that something is absent.
    pub fn is_unknown(&self) -> bool {
        matches!(
            self,
            ErrorCode::BlobUnknown
                | ErrorCode::BlobUploadUnknown
                | ErrorCode::ManifestBlobUnknown
                | ErrorCode::ManifestUnknown
                | ErrorCode::NameUnknown
        )
    }
}

/// Refused credentials and missing ones are told apart: the fix differs.
fn unauthorized_text(registry: &str, scope: &str, credentials: &Option<String>) -> String {
    match credentials {
        Some(source) => format!(
            "the registry refused the credentials from {source} for {scope} (a wrong user or password, or an expired token? log in again: docker login {registry})"
        ),
        None => format!(
            "authentication required for {scope}, and there are no credentials for {registry} (log in: docker login {registry}, or give --auth-file)"
        ),
    }
}

fn retry_after_text(secs: Option<u64>) -> String {
    secs.map(|s| format!(", retry after {s}s"))
        .unwrap_or_default()
}

fn detail_text(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

/// Statuses a registry sends for passing trouble: rate limits and
/// overloaded or restarting servers.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// An error's message with its sources, `a: b: c`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

impl RegistryError {
    /// Whether doing the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::RateLimited { .. } => true,
            RegistryError::Status { status, .. } => is_retryable_status(*status),
            RegistryError::Transport { retryable, .. } => *retryable,
            RegistryError::Refused { .. } => true,
            // A corrupted transfer may be a passing fault; the retry verifies again.
            RegistryError::BadContent(_) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Digest;

    #[test]
    fn spec_error_codes_are_typed_and_others_kept_as_sent() {
        assert_eq!(ErrorCode::parse("BLOB_UNKNOWN"), ErrorCode::BlobUnknown);
        assert_eq!(ErrorCode::parse("DENIED"), ErrorCode::Denied);
        assert_eq!(
            ErrorCode::parse("TOOMANYREQUESTS"),
            ErrorCode::TooManyRequests
        );
        assert_eq!(
            ErrorCode::parse("QUOTA_EXCEEDED"),
            ErrorCode::Other("QUOTA_EXCEEDED".to_string())
        );
        assert!(ErrorCode::ManifestUnknown.is_unknown());
        assert!(!ErrorCode::Denied.is_unknown());
    }

    #[test]
    fn only_passing_faults_are_retryable() {
        let mismatch = RegistryError::from(ContentError::DigestMismatch {
            what: "b".into(),
            expected: Digest::sha256_of(b"a"),
            actual: Digest::sha256_of(b"b"),
        });
        assert!(mismatch.is_retryable());
        let malformed = RegistryError::from(ContentError::Malformed {
            what: "m".into(),
            message: "not JSON".into(),
        });
        assert!(matches!(malformed, RegistryError::Protocol { .. }));
        assert!(!malformed.is_retryable());
        let config = RegistryError::Config {
            what: "ca.pem".into(),
            message: "not a PEM CA bundle".into(),
        };
        assert!(!config.is_retryable());
    }

    #[test]
    fn only_passing_trouble_is_retried() {
        for status in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 400, 401, 403, 404, 405, 409, 501] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }
}
