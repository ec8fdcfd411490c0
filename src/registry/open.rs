//! The single factory of a run's registries: every endpoint its names
//! mention opened once, and the map that hands them out.

use std::sync::Arc;

use async_trait::async_trait;

use super::{layout, remote, BlobPut, BlobStream, BlobUpload, Registry, RegistryError};
use crate::oci::{Descriptor, RawManifest};
use crate::reference::{Digest, Endpoint, ManifestRef, Repository};

/// The registries one run talks to, by endpoint.
#[derive(Clone, Default)]
pub struct Registries {
    by_endpoint: std::collections::BTreeMap<Endpoint, Arc<dyn Registry>>,
}

impl Registries {
    /// Serve `endpoint` with `registry`.
    pub fn insert(&mut self, endpoint: &Endpoint, registry: Arc<dyn Registry>) {
        self.by_endpoint.insert(endpoint.clone(), registry);
    }

    /// What each paced registry's pacer did so far, by endpoint; only those
    /// that sent a request.
    pub fn pacing(&self) -> Vec<super::PacingReport> {
        self.by_endpoint
            .values()
            .filter_map(|r| r.pacing())
            .filter(|p| p.requests > 0)
            .collect()
    }

    /// Whether `endpoint` has a registry.
    pub fn contains(&self, endpoint: &Endpoint) -> bool {
        self.by_endpoint.contains_key(endpoint)
    }

    /// The registry for `endpoint`. Every endpoint a plan mentions is opened
    /// before planning ([`open_all`]), so there is always one to hand out: an
    /// endpoint nobody opened (a bug) gets a registry that fails each call
    /// with an internal error, which fails only the edges that touch it.
    pub fn get(&self, endpoint: &Endpoint) -> Arc<dyn Registry> {
        match self.by_endpoint.get(endpoint) {
            Some(registry) => registry.clone(),
            None => Arc::new(Unopened(endpoint.clone())),
        }
    }
}

/// The stand-in [`Registries::get`] hands out for an endpoint that was never
/// opened.
struct Unopened(Endpoint);

impl Unopened {
    fn error(&self) -> RegistryError {
        RegistryError::Internal {
            what: self.0.to_string(),
            message: "registry was not opened for this run".to_string(),
        }
    }
}

#[async_trait]
impl Registry for Unopened {
    fn endpoint(&self) -> Endpoint {
        self.0.clone()
    }
    async fn list_repositories(&self, _: &str) -> Result<Vec<Repository>, RegistryError> {
        Err(self.error())
    }
    async fn list_tags(&self, _: &Repository) -> Result<Vec<String>, RegistryError> {
        Err(self.error())
    }
    async fn head_manifest(
        &self,
        _: &Repository,
        _: &ManifestRef,
    ) -> Result<Option<Descriptor>, RegistryError> {
        Err(self.error())
    }
    async fn get_manifest(
        &self,
        _: &Repository,
        _: &ManifestRef,
    ) -> Result<Option<RawManifest>, RegistryError> {
        Err(self.error())
    }
    async fn put_manifest(
        &self,
        _: &Repository,
        _: &ManifestRef,
        _: &RawManifest,
    ) -> Result<(), RegistryError> {
        Err(self.error())
    }
    async fn blob_exists(&self, _: &Repository, _: &Digest) -> Result<Option<u64>, RegistryError> {
        Err(self.error())
    }
    async fn get_blob(&self, _: &Repository, _: &Digest) -> Result<BlobStream, RegistryError> {
        Err(self.error())
    }
    async fn put_blob(&self, _: &Repository, _: &BlobUpload) -> Result<BlobPut, RegistryError> {
        Err(self.error())
    }
    async fn referrers(
        &self,
        _: &Repository,
        _: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        Err(self.error())
    }
}

/// How to open the registries of a run.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Settings for the HTTP registries: defaults, and overrides per host.
    pub remote: super::RemoteOptions,
    /// An explicit credentials file, consulted first.
    pub auth_file: Option<std::path::PathBuf>,
    /// Credentials given on the command line, per host, before any file
    /// (image-syncer's `--target-repo-auth-key` and `--access-token`):
    /// (host, credential, the flag it came from).
    pub credentials: Vec<(String, remote::credentials::Credential, String)>,
}

/// Open every registry `names` mention, one per endpoint. Nothing is sent
/// over the network here; credentials files are read (not helpers run).
pub fn open_all<'a>(
    names: impl IntoIterator<Item = &'a crate::reference::RegistryName>,
    options: &OpenOptions,
) -> Result<Registries, RegistryError> {
    let mut registries = Registries::default();
    let mut remotes = None;
    for name in names {
        if registries.contains(&name.endpoint) {
            continue;
        }
        let registry: Arc<dyn Registry> = match &name.endpoint {
            Endpoint::Layout { root } => Arc::new(layout::LayoutRegistry::new(root)),
            Endpoint::Http { .. } => {
                if remotes.is_none() {
                    let mut credentials = remote::credentials::CredentialStore::discover(
                        options.auth_file.as_deref(),
                    )?;
                    for (host, credential, source) in &options.credentials {
                        credentials = credentials.with_credential(host, credential.clone(), source);
                    }
                    remotes = Some(remote::Remotes::new(options.remote.clone(), credentials));
                }
                let remotes = remotes.as_ref().expect("set just above");
                remotes.registry(&name.endpoint)?
            }
        };
        registries.insert(&name.endpoint, registry);
    }
    Ok(registries)
}
