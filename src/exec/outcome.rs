//! What carrying out a plan came to: per edge, done or failed with a typed
//! kind, and the transfer counters. The JSON report's `execution`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::plan::PlanItem;
use crate::registry::{BlobPut, ErrorCode, RegistryError};

use super::blobs::Transfer;
use super::Progress;

/// A failure, with what was being done; cheap to clone so that every edge
/// waiting on a shared transfer gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ExecError {
    /// What was being done (`<repo>@<digest>`, `blob <digest> into <repo>`...).
    pub what: String,
    /// The registry error behind it, shared between the edges that waited on it.
    #[source]
    pub source: Arc<RegistryError>,
}

impl ExecError {
    pub(super) fn new(what: impl Into<String>, source: RegistryError) -> ExecError {
        ExecError {
            what: what.into(),
            source: Arc::new(source),
        }
    }
}

/// What happened to one plan item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Carried out.
    Done,
    /// Not carried out, or not tried; the failure says why.
    Failed(Failure),
}

/// Why an edge failed: the message the text output shows, and what a
/// program reading `--output json` branches on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The error message, for people.
    pub error: String,
    /// What kind of failure it was, for programs.
    pub kind: FailureKind,
    /// The cause alone, without what was being done (the same for every
    /// edge a registry that is down fails): what a recap groups by.
    #[serde(skip)]
    pub cause: String,
    /// The registry's HTTP status, where one was the cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

/// The kinds of failure, from the error's type (never its text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// No usable credentials, or the registry refused them.
    Auth,
    /// Authenticated, but not allowed.
    Denied,
    /// Content that should be there is not (404, or gone since planning).
    NotFound,
    /// Bytes that do not match their digest or size.
    BadContent,
    /// HTTP 429 after every retry.
    RateLimited,
    /// Another HTTP status after every retry.
    Http,
    /// Connection, TLS or timeout trouble.
    Transport,
    /// A file system error (`oci:` trees).
    Io,
    /// Something the registry or tree holds that is not valid.
    Invalid,
    /// A bound against hostile input (size, depth, count) was reached.
    Limit,
    /// The registry accepted a write that it does not hold when read back.
    NotStored,
    /// An `--after-promote` step failed: its image's tags are not written,
    /// and the next run tries again.
    Hook,
    /// The registry lacks a feature this needed.
    Unsupported,
    /// Not tried: what it depends on (its digest's copy) failed.
    Dependency,
    /// A bug of ours (please report it).
    Internal,
}

impl Failure {
    /// The failure `err` caused, shown as `message`.
    pub fn of(err: &RegistryError, message: String) -> Failure {
        let (kind, http_status) = match err {
            RegistryError::Unauthorized { .. } | RegistryError::Credentials(_) => {
                (FailureKind::Auth, None)
            }
            RegistryError::Denied { .. } => (FailureKind::Denied, None),
            RegistryError::RateLimited { .. } => (FailureKind::RateLimited, Some(429)),
            RegistryError::BadContent(_) => (FailureKind::BadContent, None),
            RegistryError::Status { status, code, .. } => (
                match (status, code) {
                    (_, Some(code)) if code.is_unknown() => FailureKind::NotFound,
                    (_, Some(ErrorCode::Denied)) | (403, _) => FailureKind::Denied,
                    (_, Some(ErrorCode::Unauthorized)) | (401, _) => FailureKind::Auth,
                    (_, Some(ErrorCode::TooManyRequests)) | (429, _) => FailureKind::RateLimited,
                    (404, _) => FailureKind::NotFound,
                    _ => FailureKind::Http,
                },
                Some(*status),
            ),
            RegistryError::Transport { .. } | RegistryError::Refused { .. } => {
                (FailureKind::Transport, None)
            }
            RegistryError::Io { .. } => (FailureKind::Io, None),
            RegistryError::Protocol { .. } | RegistryError::Config { .. } => {
                (FailureKind::Invalid, None)
            }
            RegistryError::Vanished { .. } => (FailureKind::NotFound, None),
            RegistryError::Limit { .. } => (FailureKind::Limit, None),
            RegistryError::NotStored { .. } => (FailureKind::NotStored, None),
            RegistryError::Internal { .. } => (FailureKind::Internal, None),
            RegistryError::Unsupported { .. } => (FailureKind::Unsupported, None),
        };
        Failure {
            error: message,
            cause: err.to_string(),
            kind,
            http_status,
        }
    }

    pub(super) fn from_exec(err: &ExecError) -> Failure {
        Failure::of(&err.source, err.to_string())
    }

    pub(super) fn new(kind: FailureKind, error: String) -> Failure {
        Failure {
            cause: error.clone(),
            error,
            kind,
            http_status: None,
        }
    }
}

/// One plan item the executor worked on, and how it went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EdgeResult {
    /// The plan item.
    #[serde(flatten)]
    pub item: PlanItem,
    /// Whether it was carried out.
    pub outcome: Outcome,
}

/// Transfer counters, for the summary and for tests that prove a fast path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Blobs the destination already held: nothing sent.
    pub blobs_present: u64,
    /// Blobs mounted from another repository of the same endpoint.
    pub blobs_mounted: u64,
    /// Blobs whose bytes were streamed.
    pub blobs_uploaded: u64,
    /// Bytes of the uploaded blobs.
    pub bytes_uploaded: u64,
    /// Manifests stored, child manifests and attachments included.
    pub manifests_written: u64,
    /// Tags written, an image's first tag included (stored by the
    /// manifest's own PUT).
    pub tags_written: u64,
    /// Attachments (signatures, attestations, SBOMs...) copied.
    pub attachments_copied: u64,
}

/// What a run of the executor did: one result per plan item worked on,
/// and the transfer counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Every item worked on, in plan order.
    pub results: Vec<EdgeResult>,
    /// What was transferred.
    pub stats: Stats,
    /// What each HTTP registry's pacer did over the run (the inventory's
    /// requests included): 429s, cuts, time waited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pacing: Vec<crate::registry::PacingReport>,
}

impl Report {
    /// Log what each registry's pacer did, one line each (at -v), where it
    /// had anything to do.
    pub fn log_pacing(&self) {
        for p in self.pacing.iter().filter(|p| p.eventful()) {
            let rate = |r: &Option<crate::registry::RateReport>| {
                r.as_ref().map_or_else(
                    || "unpaced".to_string(),
                    |r| format!("{:.1}/s (lowest {:.1}/s)", r.last, r.lowest),
                )
            };
            tracing::info!(
                registry = %p.registry,
                requests = p.requests,
                throttled = p.throttled,
                rate_cuts = p.rate_cuts,
                latency_cuts = p.latency_cuts,
                waited_secs = format!("{:.1}", p.waited_secs),
                in_flight = format!("{} (lowest {} of {})", p.in_flight.last, p.in_flight.lowest, p.in_flight.most),
                rate = %rate(&p.rate),
                write_rate = %rate(&p.write_rate),
                "pacing"
            );
        }
    }

    /// The results that failed.
    pub fn failed(&self) -> impl Iterator<Item = &EdgeResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
    }
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) blobs_present: AtomicU64,
    pub(super) blobs_mounted: AtomicU64,
    pub(super) blobs_uploaded: AtomicU64,
    pub(super) bytes_uploaded: AtomicU64,
    pub(super) manifests_written: AtomicU64,
    pub(super) tags_written: AtomicU64,
    pub(super) attachments_copied: AtomicU64,
    /// Told about every upload, for the display.
    pub(super) progress: std::sync::OnceLock<Arc<dyn Progress>>,
}

impl Counters {
    pub(super) fn count(&self, transfer: &Transfer, size: u64) {
        let counter = match transfer {
            Transfer::Present => &self.blobs_present,
            Transfer::Put(BlobPut::Mounted) => &self.blobs_mounted,
            Transfer::Put(BlobPut::Uploaded) => {
                self.bytes_uploaded.fetch_add(size, Ordering::Relaxed);
                if let Some(progress) = self.progress.get() {
                    progress.uploaded(size);
                }
                &self.blobs_uploaded
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> Stats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            blobs_present: get(&self.blobs_present),
            blobs_mounted: get(&self.blobs_mounted),
            blobs_uploaded: get(&self.blobs_uploaded),
            bytes_uploaded: get(&self.bytes_uploaded),
            manifests_written: get(&self.manifests_written),
            tags_written: get(&self.tags_written),
            attachments_copied: get(&self.attachments_copied),
        }
    }
}
