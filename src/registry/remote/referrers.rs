//! Referrers: the OCI 1.1 API where the registry offers it (learnt once
//! per registry), else the `<alg>-<hex>` tag schema, keeping only
//! manifests that really name the subject.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::Ordering;

use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};

use super::auth::Scopes;
use super::body::read_capped;
use super::listings::next_link;
use super::transport::{self, drain, Req};
use super::{RemoteRegistry, MANIFEST_LIMIT};
use crate::oci::{self, attachment_tag};
use crate::reference::{Digest, ManifestRef, Repository};
use crate::registry::{media_type, Descriptor, RawManifest, RegistryError};

/// Whether the registry offers the referrers API: not asked yet.
pub(super) const REFERRERS_UNKNOWN: u8 = 0;
const REFERRERS_SUPPORTED: u8 = 1;
const REFERRERS_UNSUPPORTED: u8 = 2;

impl RemoteRegistry {
    /// [`crate::registry::Registry::referrers`].
    pub(super) async fn referrers_of(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        match self.referrers_through_api(repo, subject).await? {
            Some(found) => Ok(found),
            None => self.referrers_by_tag(repo, subject).await,
        }
    }

    /// [`crate::registry::Registry::referrers_given_tags`].
    pub(super) async fn referrers_of_listed(
        &self,
        repo: &Repository,
        subject: &Digest,
        tags: &BTreeSet<String>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        match self.referrers_through_api(repo, subject).await? {
            Some(found) => Ok(found),
            // Without the API the tag schema is all there is, and the
            // listing already says whether its tag exists.
            None if tags.contains(attachment_tag(subject, None).as_str()) => {
                self.referrers_by_tag(repo, subject).await
            }
            None => Ok(Vec::new()),
        }
    }

    /// Referrers through the OCI 1.1 API, `Ok(None)` when the registry does
    /// not offer it. Whether it does is learnt once: the first caller asks
    /// while the others wait, so a run probes a registry without the API
    /// with one request, not one per image.
    async fn referrers_through_api(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        if self.referrers_api.load(Ordering::Relaxed) == REFERRERS_UNKNOWN {
            let _probing = self.referrers_probe.lock().await;
            if self.referrers_api.load(Ordering::Relaxed) == REFERRERS_UNKNOWN {
                let answer = self.referrers_api(repo, subject).await?;
                let learnt = if answer.is_some() {
                    REFERRERS_SUPPORTED
                } else {
                    REFERRERS_UNSUPPORTED
                };
                self.referrers_api.store(learnt, Ordering::Relaxed);
                return Ok(answer);
            }
        }
        if self.referrers_api.load(Ordering::Relaxed) == REFERRERS_UNSUPPORTED {
            return Ok(None);
        }
        self.referrers_api(repo, subject).await
    }

    /// Referrers through the OCI 1.1 API. `Ok(None)` when the registry does
    /// not offer it.
    async fn referrers_api(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let mut url = self.repo_url(repo, &format!("referrers/{subject}"))?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        loop {
            let req = Req::new(Method::GET, url.clone(), Scopes::pull(repo.path()))
                .header(ACCEPT, media_type::OCI_INDEX);
            let response = self.t.send(&req).await?;
            let status = response.status();
            // A registry offering the API never answers 404 (spec: it
            // answers an empty index), so a 404 means "no such API".
            if status == StatusCode::NOT_FOUND && out.is_empty() {
                drain(response).await;
                return Ok(None);
            }
            if !status.is_success() {
                return Err(self.error(&req, response).await);
            }
            let next = next_link(response.headers());
            let body =
                read_capped(response, MANIFEST_LIMIT, req.method.as_str(), self.t.pace()).await?;
            let index = RawManifest::new(body, media_type::OCI_INDEX);
            let what = self.what(repo, format!("referrers of {subject}"));
            out.extend(oci::references(&index, &what)?.manifests);
            if out.len() > crate::limits::REFERRERS_PER_IMAGE {
                return Err(RegistryError::Limit {
                    what,
                    message: format!(
                        "more than {} referrers; refusing to read more",
                        crate::limits::REFERRERS_PER_IMAGE
                    ),
                });
            }
            match next.and_then(|n| url.join(&n).ok()) {
                // Our credentials go only to the registry itself: a Link
                // to another scheme, host or port ends the listing.
                Some(n) if transport::same_origin(&n, &url) && seen.insert(n.to_string()) => {
                    url = n
                }
                _ => return Ok(Some(out)),
            }
        }
    }

    /// Referrers through the `<alg>-<hex>` tag schema, keeping only
    /// manifests whose `subject` really is `subject`.
    async fn referrers_by_tag(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let tag = attachment_tag(subject, None);
        let what = self.what(repo, &tag);
        let Some(index) = self.manifest_get(repo, &ManifestRef::Tag(tag)).await? else {
            return Ok(Vec::new());
        };
        let listed = oci::references(&index, &what)?.manifests;
        if listed.len() > crate::limits::REFERRERS_PER_IMAGE {
            return Err(RegistryError::Limit {
                what,
                message: format!(
                    "the referrers index lists more than {} manifests; refusing to read them",
                    crate::limits::REFERRERS_PER_IMAGE
                ),
            });
        }
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for descriptor in listed {
            if !seen.insert(descriptor.digest.clone()) {
                continue;
            }
            let Some(manifest) = self
                .manifest_get(repo, &ManifestRef::Digest(descriptor.digest.clone()))
                .await?
            else {
                continue; // listed but gone: not a referrer we can copy
            };
            let Ok(refs) = oci::references(&manifest, &what) else {
                continue;
            };
            if refs.subject.as_ref() != Some(subject) {
                tracing::debug!(registry = %self.t.host, repo = %repo, referrer = %descriptor.digest,
                    "referrers tag lists a manifest whose subject is not this digest; skipped");
                continue;
            }
            out.push(Descriptor {
                artifact_type: descriptor
                    .artifact_type
                    .or_else(|| refs.effective_artifact_type()),
                media_type: manifest.media_type,
                size: manifest.bytes.len() as u64,
                digest: descriptor.digest,
                foreign: false,
            });
        }
        Ok(out)
    }
}
