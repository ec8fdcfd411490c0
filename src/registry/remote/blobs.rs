//! Blobs: whether a repository has one (HEAD), and its bytes (GET),
//! verified while they stream.

use reqwest::header::CONTENT_LENGTH;
use reqwest::{Method, StatusCode};

use super::auth::Scopes;
use super::body;
use super::transport::Req;
use super::RemoteRegistry;
use crate::oci::verify::{Expect, VerifyingStream};
use crate::reference::{Digest, Repository};
use crate::registry::{BlobStream, RegistryError};

impl RemoteRegistry {
    /// [`crate::registry::Registry::blob_exists`].
    pub(super) async fn blob_head(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let req = Req::new(Method::HEAD, url, Scopes::pull(repo.path()));
        let response = self.t.send(&req).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let size = response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| RegistryError::Protocol {
                        what: self.what(repo, digest),
                        message: "blob HEAD answer has no Content-Length".to_string(),
                    })?;
                Ok(Some(size))
            }
            _ => Err(self.error(&req, response).await),
        }
    }

    /// [`crate::registry::Registry::get_blob`].
    pub(super) async fn blob_get(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let req = Req::new(Method::GET, url, Scopes::pull(repo.path()));
        let response = self.t.send(&req).await?;
        if response.status() != StatusCode::OK {
            return Err(self.error(&req, response).await);
        }
        let size = response.content_length();
        let what = self.what(repo, digest);
        let bytes = body::paced(response, self.t.pace(), "GET");
        Ok(Box::pin(VerifyingStream::new(
            bytes,
            Expect::Digest(digest.clone(), size),
            what,
        )))
    }
}
