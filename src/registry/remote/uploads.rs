//! Blob uploads: a cross-repository mount where one is offered, else an
//! upload session (POST) closed by one streaming PUT, or by PATCHes and a
//! PUT for a registry that refuses monolithic uploads or fails them with a
//! 5xx (remembered for the run); and the check that
//! what the registry says it stored is what was sent.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::auth::Scopes;
use super::transport::{drain, Body, Req};
use super::{RemoteRegistry, MAX_BAD_CONTENT_ATTEMPTS};
use crate::oci::ContentError;
use crate::reference::Repository;
use crate::registry::retry::{with_retries, RetryClock};
use crate::registry::{media_type, BlobPut, BlobUpload, RegistryError, SafeUrl};

impl RemoteRegistry {
    /// [`crate::registry::Registry::put_blob`]: the whole sequence is
    /// retried, from a re-opened source.
    pub(super) async fn blob_put(
        &self,
        repo: &Repository,
        upload: &BlobUpload,
    ) -> Result<BlobPut, RegistryError> {
        let mount_from = upload.mount_from.clone().filter(|from| from != repo);
        let deadline = Instant::now() + self.t.opts.retry_deadline;
        let clock = RetryClock::new(deadline, self.t.opts.max_attempts);
        // Wrong or short content from the upload's source is worth a fresh
        // read or two (a passing network fault), not a retry until the
        // deadline: a source that keeps sending bad bytes is broken.
        let mut bad_content = 0;
        let mount_from = std::sync::Mutex::new(mount_from);
        let what = || format!("uploading {}", self.what(repo, &upload.digest));
        with_retries(
            clock,
            &what,
            |e| {
                if matches!(e, RegistryError::BadContent(_)) {
                    bad_content += 1;
                    return bad_content < MAX_BAD_CONTENT_ATTEMPTS;
                }
                e.is_retryable()
            },
            || async {
                // One attempt at a time: the lock is never contended.
                let mut from = mount_from.lock().unwrap().clone();
                let result = self.put_blob_once(repo, upload, &mut from, deadline).await;
                *mount_from.lock().unwrap() = from;
                result.map_err(|e| self.t.retry_failure(e))
            },
        )
        .await
    }

    /// One attempt at the whole upload sequence: mount or POST, then PUT (or
    /// PATCHes and a PUT). `mount_from` is cleared once a mount failed, so a
    /// retry goes straight to uploading.
    async fn put_blob_once(
        &self,
        repo: &Repository,
        upload: &BlobUpload,
        mount_from: &mut Option<Repository>,
        deadline: Instant,
    ) -> Result<BlobPut, RegistryError> {
        let mut session = None;
        if let Some(from) = mount_from.clone() {
            let mut url = self.repo_url(repo, "blobs/uploads/")?;
            url.query_pairs_mut()
                .append_pair("mount", upload.digest.as_str())
                .append_pair("from", from.path());
            // One token for both repositories, or the mount cannot work.
            let scopes =
                Scopes::push(repo.path()).with(&format!("repository:{}", from.path()), &["pull"]);
            let req = Req::new(Method::POST, url, scopes);
            match self.t.send_until(&req, deadline).await {
                Ok(response) if response.status() == StatusCode::CREATED => {
                    drain(response).await;
                    return Ok(BlobPut::Mounted);
                }
                Ok(response) if response.status() == StatusCode::ACCEPTED => {
                    // The source lacked the blob: the registry opened an
                    // ordinary upload session instead. Use it; no second POST.
                    session = Some(self.session_location(&req, response).await?);
                }
                Ok(response) => {
                    tracing::debug!(
                        registry = %self.t.host, repo = %repo, from = %from,
                        status = response.status().as_u16(), "mount refused; uploading"
                    );
                    drain(response).await;
                    *mount_from = None;
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    tracing::debug!(registry = %self.t.host, repo = %repo, error = %e, "mount failed; uploading");
                    *mount_from = None;
                }
            }
        }
        let session = match session {
            Some(s) => s,
            None => {
                let url = self.repo_url(repo, "blobs/uploads/")?;
                let req = Req::new(Method::POST, url, Scopes::push(repo.path()))
                    .header(CONTENT_LENGTH, "0");
                let response = self.t.send_until(&req, deadline).await?;
                if response.status() != StatusCode::ACCEPTED {
                    return Err(self.error(&req, response).await);
                }
                self.session_location(&req, response).await?
            }
        };
        if self.chunked.load(Ordering::Relaxed) {
            return self.upload_chunked(repo, upload, session, deadline).await;
        }
        let mut url = session;
        url.query_pairs_mut()
            .append_pair("digest", upload.digest.as_str());
        let req = Req::new(Method::PUT, url, Scopes::push(repo.path()))
            .header(CONTENT_TYPE, media_type::OCTET_STREAM)
            .body(Body::Stream {
                open: upload.open.clone(),
                size: upload.size,
            })
            // The session may hold part of a failed body: the caller starts over.
            .no_retry();
        let response = match self.t.send_until(&req, deadline).await {
            Ok(response) => response,
            // A 5xx after the transport's retries (500, 502, 503, 504): some
            // registries or the proxies in front of them fail a large
            // streaming PUT where they take the same bytes in chunks.
            Err(RegistryError::Status { status, .. }) if is_server_error(status) => {
                self.switch_to_chunked(status, "failed");
                return Box::pin(self.put_blob_once(repo, upload, &mut None, deadline)).await;
            }
            Err(e) => return Err(e),
        };
        match response.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => {
                self.check_stored_digest(repo, &upload.digest, response.headers())?;
                drain(response).await;
                Ok(BlobPut::Uploaded)
            }
            status
                if is_server_error(status.as_u16())
                    || [
                        StatusCode::METHOD_NOT_ALLOWED,
                        StatusCode::LENGTH_REQUIRED,
                        StatusCode::PAYLOAD_TOO_LARGE,
                    ]
                    .contains(&status) =>
            {
                // This registry wants chunks, or fails without them.
                drain(response).await;
                self.switch_to_chunked(status.as_u16(), "refused");
                Box::pin(self.put_blob_once(repo, upload, &mut None, deadline)).await
            }
            _ => Err(self.error(&req, response).await),
        }
    }

    /// Upload to this registry in chunks for the rest of the run, starting
    /// with the blob whose monolithic PUT just `failed` or was `refused`
    /// with `status`. Said once per registry: blobs in flight at the same
    /// moment may all meet the failure, but only the first switches.
    fn switch_to_chunked(&self, status: u16, how: &str) {
        if self
            .chunked
            .compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::info!(registry = %self.t.host, status,
                "monolithic blob upload {how}; this registry is now uploaded to in chunks for the rest of the run");
        }
    }

    async fn upload_chunked(
        &self,
        repo: &Repository,
        upload: &BlobUpload,
        session: Url,
        deadline: Instant,
    ) -> Result<BlobPut, RegistryError> {
        let chunk_size = self.t.opts.chunk_size as usize;
        let mut source = (upload.open)().await?;
        let mut url = session;
        let mut offset: u64 = 0;
        let mut buffer = BytesMut::new();
        let mut ended = false;
        loop {
            while !ended && buffer.len() < chunk_size {
                match source.next().await {
                    Some(chunk) => buffer.extend_from_slice(&chunk?),
                    None => ended = true,
                }
            }
            let take = buffer.len().min(chunk_size);
            if take == 0 {
                break;
            }
            let chunk: Bytes = buffer.split_to(take).freeze();
            let end = offset + chunk.len() as u64;
            if end > upload.size {
                return Err(RegistryError::BadContent(ContentError::SizeMismatch {
                    what: self.what(repo, &upload.digest),
                    expected: upload.size,
                    actual: end,
                }));
            }
            let req = Req::new(Method::PATCH, url.clone(), Scopes::push(repo.path()))
                .header(CONTENT_TYPE, media_type::OCTET_STREAM)
                .header(CONTENT_RANGE, format!("{offset}-{}", end - 1))
                .header(CONTENT_LENGTH, chunk.len().to_string())
                .body(Body::Bytes(chunk))
                .no_retry();
            let response = self.t.send_until(&req, deadline).await?;
            if response.status() != StatusCode::ACCEPTED {
                return Err(self.error(&req, response).await);
            }
            url = self.session_location(&req, response).await?;
            offset = end;
        }
        if offset != upload.size {
            return Err(RegistryError::BadContent(ContentError::SizeMismatch {
                what: self.what(repo, &upload.digest),
                expected: upload.size,
                actual: offset,
            }));
        }
        url.query_pairs_mut()
            .append_pair("digest", upload.digest.as_str());
        let req = Req::new(Method::PUT, url, Scopes::push(repo.path()))
            .header(CONTENT_TYPE, media_type::OCTET_STREAM)
            .header(CONTENT_LENGTH, "0")
            .no_retry();
        let response = self.t.send_until(&req, deadline).await?;
        if !response.status().is_success() {
            return Err(self.error(&req, response).await);
        }
        self.check_stored_digest(repo, &upload.digest, response.headers())?;
        drain(response).await;
        Ok(BlobPut::Uploaded)
    }

    /// The upload session URL from a 202's `Location`, resolved against the
    /// request (registries answer relative or absolute).
    async fn session_location(&self, req: &Req, response: Response) -> Result<Url, RegistryError> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| req.url.join(l).ok());
        drain(response).await;
        location.ok_or_else(|| RegistryError::Protocol {
            what: SafeUrl::new(&req.url).to_string(),
            message: "upload answer has no usable Location".to_string(),
        })
    }
}

/// An HTTP 5xx: the server's own failure.
fn is_server_error(status: u16) -> bool {
    (500..600).contains(&status)
}
