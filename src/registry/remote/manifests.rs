//! Manifests: HEAD, GET (verified against the digest asked for, or the one
//! the registry says a tag points at) and PUT.

use std::time::Instant;

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};

use super::auth::Scopes;
use super::body::read_capped;
use super::transport::{drain, Body, Req};
use super::{header_digest, RemoteRegistry, MANIFEST_LIMIT, MAX_BAD_CONTENT_ATTEMPTS};
use crate::oci::{self, ContentError};
use crate::reference::{Digest, ManifestRef, Repository};
use crate::registry::retry::{with_retries, RetryClock};
use crate::registry::{media_type, Descriptor, RawManifest, RegistryError};

impl RemoteRegistry {
    /// [`crate::registry::Registry::head_manifest`].
    pub(super) async fn manifest_head(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let Some(response) = self
            .send_manifest_req(Method::HEAD, repo, reference)
            .await?
        else {
            return Ok(None);
        };
        let headers = response.headers();
        let digest = header_digest(headers).or(match reference {
            ManifestRef::Digest(d) => Some(d.clone()),
            ManifestRef::Tag(_) => None,
        });
        let media = content_type(headers).filter(|m| !is_generic_type(m));
        let size = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (Some(digest), Some(media_type), Some(size)) = (digest, media, size) {
            if let ManifestRef::Digest(asked) = reference {
                if *asked != digest {
                    return Err(RegistryError::BadContent(ContentError::DigestMismatch {
                        what: self.what(repo, asked),
                        expected: asked.clone(),
                        actual: digest,
                    }));
                }
            }
            return Ok(Some(Descriptor {
                digest,
                media_type,
                size,
                artifact_type: None,
                foreign: false,
            }));
        }
        // The registry left something out of its HEAD answer: a GET tells all.
        Ok(self
            .manifest_get(repo, reference)
            .await?
            .map(|m| Descriptor {
                size: m.bytes.len() as u64,
                digest: m.digest,
                media_type: m.media_type,
                artifact_type: None,
                foreign: false,
            }))
    }

    /// [`crate::registry::Registry::get_manifest`]: a body that came back
    /// wrong is read again, a few times.
    pub(super) async fn manifest_get(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<RawManifest>, RegistryError> {
        // The transport retries what happens before the body arrives; a body
        // cut short, reset or corrupted on the way is worth a fresh read or
        // two as well (a passing fault), but no more (a broken registry).
        let deadline = Instant::now() + self.t.opts.retry_deadline;
        let clock = RetryClock::new(deadline, MAX_BAD_CONTENT_ATTEMPTS);
        let what = || format!("reading {} again", self.what(repo, reference));
        with_retries(
            clock,
            &what,
            |e| {
                matches!(
                    e,
                    RegistryError::BadContent(_)
                        | RegistryError::Transport {
                            retryable: true,
                            ..
                        }
                )
            },
            || async { Ok(self.get_manifest_once(repo, reference).await?) },
        )
        .await
    }

    /// One GET of a manifest, verified against what was asked.
    async fn get_manifest_once(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let Some(response) = self.send_manifest_req(Method::GET, repo, reference).await? else {
            return Ok(None);
        };
        let claimed = header_digest(response.headers());
        let header_type = content_type(response.headers()).filter(|m| !is_generic_type(m));
        let bytes = read_capped(response, MANIFEST_LIMIT, "GET", self.t.pace()).await?;
        let digest = match reference {
            ManifestRef::Digest(asked) => {
                oci::check_bytes(&self.what(repo, asked), asked, &bytes)?;
                asked.clone()
            }
            ManifestRef::Tag(tag) => match claimed {
                // The registry says which digest the tag points at: the
                // bytes must match it.
                Some(claimed) => {
                    oci::check_bytes(&self.what(repo, tag), &claimed, &bytes)?;
                    claimed
                }
                None => Digest::sha256_of(&bytes),
            },
        };
        // Without a usable Content-Type the body must say what it is: bytes
        // that are no manifest are never stored as one.
        let media_type = match header_type.or_else(|| media_type::sniff(&bytes)) {
            Some(m) => m,
            None => {
                return Err(RegistryError::Protocol {
                    what: self.what(repo, reference),
                    message: "the registry sent no manifest media type and the body declares none"
                        .to_string(),
                })
            }
        };
        Ok(Some(RawManifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// [`crate::registry::Registry::put_manifest`].
    pub(super) async fn manifest_put(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        if let ManifestRef::Digest(d) = reference {
            oci::check_bytes(&self.what(repo, d), d, &manifest.bytes)?;
        }
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let req = Req::new(Method::PUT, url, Scopes::push(repo.path()))
            .header(CONTENT_TYPE, &manifest.media_type)
            .body(Body::Bytes(manifest.bytes.clone()));
        let response = self.t.send(&req).await?;
        if !response.status().is_success() {
            return Err(self.error(&req, response).await);
        }
        self.check_stored_digest(repo, &manifest.digest, response.headers())?;
        drain(response).await;
        Ok(())
    }

    /// Send a manifest HEAD or GET: `None` for a 404 (absent), the answer
    /// for a success, the error any other status stands for.
    async fn send_manifest_req(
        &self,
        method: Method,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<Response>, RegistryError> {
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let req =
            Req::new(method, url, Scopes::pull(repo.path())).header(ACCEPT, accept_manifests());
        let response = self.t.send(&req).await?;
        match response.status() {
            StatusCode::NOT_FOUND => {
                drain(response).await;
                Ok(None)
            }
            s if s.is_success() => Ok(Some(response)),
            _ => Err(self.error(&req, response).await),
        }
    }
}

/// The `Accept` header for manifests: every type we understand.
fn accept_manifests() -> String {
    media_type::ACCEPTED.join(", ")
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let bare = raw.split(';').next().unwrap_or(raw).trim();
    (!bare.is_empty()).then(|| bare.to_string())
}

fn is_generic_type(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/json" | "text/plain" | "application/octet-stream"
    )
}
