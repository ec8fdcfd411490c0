//! The invariant every reliability scenario ends with: **no destination tag
//! points at missing or wrong content.**
//!
//! Written once, used after every fault, every kill and every re-run. The
//! walks use no promoter code to read: plain HTTP (reqwest) and skopeo for a
//! registry, plain file reads for an `oci:` tree, and an independent JSON
//! reading of manifests. For every tag:
//! - the tag resolves, and the bytes served hash to the digest the registry
//!   (or index.json) names for it; with skopeo, skopeo reads the same bytes;
//! - every child manifest it references (recursively) is there, by digest,
//!   with bytes that hash to that digest;
//! - every blob it references is there with the size the descriptor says
//!   (and, in an `oci:` tree, bytes that hash to its digest).
//!
//! The walks answer every tag found with its digest (`repo:tag -> digest`),
//! so that callers can also say that no tag points at *other* content than
//! the one wanted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promoter::reference::Digest;
use serde_json::Value;

use super::registry::require_binary;
use super::skopeo;

/// Every manifest type, for `Accept`.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The annotation that names a tag in an OCI layout's index.json.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Every tag found, as `repo:tag` (repository relative to the walked
/// prefix or root), and the digest it resolves to.
pub type Tags = BTreeMap<String, Digest>;

/// Whether a registry walk also resolves every tag with skopeo (an
/// independent client; ~tens of ms per tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skopeo {
    Yes,
    No,
}

/// A descriptor's digest and size, read from manifest JSON.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    digest: Digest,
    size: u64,
}

/// The edges of a manifest: (child manifests, blobs). Layers with `urls`
/// (non-distributable) need not be held by a registry and are skipped.
fn edges(bytes: &[u8]) -> Result<(Vec<Edge>, Vec<Edge>), String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let edge = |d: &Value| -> Result<Edge, String> {
        let digest = d["digest"]
            .as_str()
            .ok_or_else(|| format!("descriptor without a digest: {d}"))?;
        Ok(Edge {
            digest: Digest::parse(digest).map_err(|e| format!("bad digest {digest:?}: {e}"))?,
            size: d["size"]
                .as_u64()
                .ok_or_else(|| format!("descriptor without a size: {d}"))?,
        })
    };
    let list = |key: &str| -> Vec<Value> { value[key].as_array().cloned().unwrap_or_default() };
    let children = list("manifests")
        .iter()
        .map(edge)
        .collect::<Result<_, _>>()?;
    let mut blobs: Vec<Edge> = Vec::new();
    if value.get("config").is_some_and(|c| !c.is_null()) {
        blobs.push(edge(&value["config"])?);
    }
    for layer in list("layers").iter().chain(list("blobs").iter()) {
        if layer.get("urls").is_some_and(|u| !u.is_null()) {
            continue;
        }
        blobs.push(edge(layer)?);
    }
    Ok((children, blobs))
}

// ---------------------------------------------------------------- registry

/// Walks one registry path over plain HTTP.
struct RegistryWalk {
    client: reqwest::Client,
    base: String,
    host: String,
    skopeo: bool,
    /// The registry's storage root, when the walk may see tags the
    /// registry itself was interrupted writing (see `half_written`).
    storage: Option<PathBuf>,
    problems: Vec<String>,
    /// (repository, digest) already proven complete.
    sound: BTreeSet<(String, Digest)>,
}

impl RegistryWalk {
    async fn get(&self, path: &str, accept: Option<&str>) -> Result<reqwest::Response, String> {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(accept) = accept {
            req = req.header("Accept", accept);
        }
        req.send().await.map_err(|e| format!("GET {path}: {e}"))
    }

    /// Follow `Link: <…>; rel="next"` pages of a JSON list under `key`.
    async fn paged(&mut self, first: String, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(path) = next.take() {
            let response = match self.get(&path, None).await {
                Ok(r) => r,
                Err(e) => {
                    self.problems.push(e);
                    break;
                }
            };
            if response.status() == 404 {
                break;
            }
            if !response.status().is_success() {
                self.problems
                    .push(format!("GET {path}: HTTP {}", response.status()));
                break;
            }
            next = response
                .headers()
                .get("Link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.split_once('<'))
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(link, _)| link.to_string());
            let body: Value = match response.json().await {
                Ok(b) => b,
                Err(e) => {
                    self.problems.push(format!("GET {path}: {e}"));
                    break;
                }
            };
            for item in body[key].as_array().into_iter().flatten() {
                if let Some(s) = item.as_str() {
                    out.push(s.to_string());
                }
            }
        }
        out
    }

    /// The manifest `reference` of `repo`: its bytes and the digest they hash to.
    async fn manifest(&mut self, repo: &str, reference: &str) -> Option<(Vec<u8>, Digest)> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let response = match self.get(&path, Some(ACCEPT)).await {
            Ok(r) => r,
            Err(e) => {
                self.problems.push(e);
                return None;
            }
        };
        if response.status() == 404 && self.half_written(repo, reference) {
            return None;
        }
        if !response.status().is_success() {
            self.problems.push(format!(
                "{repo}:{reference} does not resolve: HTTP {}",
                response.status()
            ));
            return None;
        }
        let header = response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = match response.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                self.problems.push(format!("GET {path}: {e}"));
                return None;
            }
        };
        let digest = Digest::sha256_of(&bytes);
        if let Some(header) = header {
            if header != digest.as_str() {
                self.problems.push(format!(
                    "{repo}:{reference}: the registry says {header}, the bytes hash to {digest}"
                ));
            }
        }
        Some((bytes, digest))
    }

    /// Whether tag `reference` of `repo` is one the registry was killed in
    /// the middle of writing: listed (its directory exists) but without the
    /// `current/link` that would make it point anywhere. Such a tag points at
    /// nothing, which is as good as absent. Only known with the storage root.
    fn half_written(&self, repo: &str, reference: &str) -> bool {
        let Some(storage) = &self.storage else {
            return false;
        };
        if Digest::parse(reference).is_ok() {
            return false;
        }
        let tag_dir = storage
            .join("docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(reference);
        tag_dir.is_dir() && !tag_dir.join("current/link").is_file()
    }

    async fn skopeo_digest(&self, repo: &str, tag: &str) -> Result<Digest, String> {
        let reference = format!("docker://{}/{repo}:{tag}", self.host);
        let raw = skopeo::try_inspect_raw_async(&reference)
            .await
            .ok_or("skopeo is not installed")??;
        Ok(Digest::sha256_of(&raw))
    }

    /// Prove that everything `bytes` (the manifest `digest` of `repo`)
    /// references is present, recursively.
    async fn walk(&mut self, repo: &str, digest: &Digest, bytes: &[u8], from: &str) {
        if self.sound.contains(&(repo.to_string(), digest.clone())) {
            return;
        }
        let (children, blobs) = match edges(bytes) {
            Ok(e) => e,
            Err(e) => {
                self.problems.push(format!("{from}: {repo}@{digest}: {e}"));
                return;
            }
        };
        let before = self.problems.len();
        for child in children {
            match self.manifest(repo, child.digest.as_str()).await {
                Some((child_bytes, got)) => {
                    if got != child.digest {
                        self.problems.push(format!(
                            "{from}: child {repo}@{} serves bytes hashing to {got}",
                            child.digest
                        ));
                        continue;
                    }
                    Box::pin(self.walk(repo, &child.digest, &child_bytes, from)).await;
                }
                None => self.problems.push(format!(
                    "{from}: references child manifest {repo}@{}, which is missing",
                    child.digest
                )),
            }
        }
        for blob in blobs {
            let path = format!("/v2/{repo}/blobs/{}", blob.digest);
            let response = self
                .client
                .head(format!("{}{path}", self.base))
                .send()
                .await;
            match response {
                Ok(r) if r.status().is_success() => {
                    // The header itself: reqwest's content_length() is the
                    // (empty) body's for a HEAD.
                    let size: Option<u64> = r
                        .headers()
                        .get("Content-Length")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                    if size != Some(blob.size) {
                        self.problems.push(format!(
                            "{from}: blob {repo}@{} has size {size:?}, the manifest says {}",
                            blob.digest, blob.size
                        ));
                    }
                }
                Ok(r) => self.problems.push(format!(
                    "{from}: references blob {repo}@{}, which is missing (HEAD: HTTP {})",
                    blob.digest,
                    r.status()
                )),
                Err(e) => self.problems.push(format!("{from}: HEAD {path}: {e}")),
            }
        }
        if self.problems.len() == before {
            self.sound.insert((repo.to_string(), digest.clone()));
        }
    }
}

/// Walk every repository under `prefix` of the registry at `host`
/// (`127.0.0.1:PORT`, plain HTTP, no auth): every tag must resolve to
/// content that is entirely there. Answers the tags found, or every problem.
pub async fn registry(host: &str, prefix: &str, skopeo: Skopeo) -> Result<Tags, Vec<String>> {
    registry_walk(host, prefix, skopeo, None).await
}

/// [`registry`] for a registry whose client may just have been killed:
/// the registry may be in the middle of writing a tag (Distribution writes
/// a tag's directory before the link that makes it point somewhere, and a
/// dropped connection can cancel the request between the two). A listed
/// tag that does not resolve *and* has no `current/link` in `storage` (the
/// registry's storage root) is counted as absent; with a link, it is a
/// violation like any other.
pub async fn registry_after_kill(
    host: &str,
    prefix: &str,
    skopeo: Skopeo,
    storage: &Path,
) -> Result<Tags, Vec<String>> {
    registry_walk(host, prefix, skopeo, Some(storage.to_path_buf())).await
}

async fn registry_walk(
    host: &str,
    prefix: &str,
    skopeo: Skopeo,
    storage: Option<PathBuf>,
) -> Result<Tags, Vec<String>> {
    let skopeo = skopeo == Skopeo::Yes && require_binary("skopeo").is_some();
    let mut walk = RegistryWalk {
        client: reqwest::Client::new(),
        base: format!("http://{host}"),
        host: host.to_string(),
        skopeo,
        storage,
        problems: Vec::new(),
        sound: BTreeSet::new(),
    };
    let prefix = prefix.trim_matches('/');
    let repos: Vec<String> = walk
        .paged("/v2/_catalog?n=1000".to_string(), "repositories")
        .await
        .into_iter()
        .filter(|r| prefix.is_empty() || r == prefix || r.starts_with(&format!("{prefix}/")))
        .collect();
    let mut tags = Tags::new();
    for repo in repos {
        let names = walk
            .paged(format!("/v2/{repo}/tags/list?n=1000"), "tags")
            .await;
        let relative = repo
            .strip_prefix(prefix)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(&repo)
            .to_string();
        for tag in names {
            let at = format!("{relative}:{tag}");
            let Some((bytes, digest)) = walk.manifest(&repo, &tag).await else {
                continue;
            };
            if walk.skopeo {
                match walk.skopeo_digest(&repo, &tag).await {
                    Ok(seen) if seen == digest => {}
                    Ok(seen) => walk.problems.push(format!(
                        "{repo}:{tag}: skopeo reads {seen}, HTTP reads {digest}"
                    )),
                    Err(e) => walk.problems.push(e),
                }
            }
            walk.walk(&repo, &digest, &bytes, &at).await;
            tags.insert(at, digest);
        }
    }
    if walk.problems.is_empty() {
        Ok(tags)
    } else {
        Err(walk.problems)
    }
}

/// [`registry`], panicking with every problem (and `context`) when there are any.
pub async fn assert_registry(host: &str, prefix: &str, skopeo: Skopeo, context: &str) -> Tags {
    expect_sound(registry(host, prefix, skopeo).await, context)
}

/// [`registry_after_kill`], panicking with every problem when there are any.
pub async fn assert_registry_after_kill(
    host: &str,
    prefix: &str,
    skopeo: Skopeo,
    storage: &Path,
    context: &str,
) -> Tags {
    expect_sound(
        registry_after_kill(host, prefix, skopeo, storage).await,
        context,
    )
}

fn expect_sound(walked: Result<Tags, Vec<String>>, context: &str) -> Tags {
    match walked {
        Ok(tags) => tags,
        Err(problems) => panic!(
            "{context}: a destination tag points at missing or wrong content:\n  {}",
            problems.join("\n  ")
        ),
    }
}

// ---------------------------------------------------------------- oci: tree

/// Directories under `root` holding an `index.json`, as repository paths.
fn layout_repositories(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        if dir.join("index.json").is_file() {
            let name = dir
                .strip_prefix(root)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, dir.clone()));
        }
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && entry.file_name() != "blobs" {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Read blob `digest` of the layout at `dir`, proving it is there, `size`
/// bytes long (when known) and hashing to `digest`.
fn layout_blob(dir: &Path, digest: &Digest, size: Option<u64>) -> Result<Vec<u8>, String> {
    let path = dir
        .join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex());
    let bytes = std::fs::read(&path).map_err(|e| format!("{} is missing: {e}", path.display()))?;
    if let Some(size) = size {
        if bytes.len() as u64 != size {
            return Err(format!(
                "{} holds {} bytes, its descriptor says {size}",
                path.display(),
                bytes.len()
            ));
        }
    }
    let actual = Digest::sha256_of(&bytes);
    if &actual != digest {
        return Err(format!("{} hashes to {actual}", path.display()));
    }
    Ok(bytes)
}

fn walk_layout(
    dir: &Path,
    digest: &Digest,
    bytes: &[u8],
    from: &str,
    sound: &mut BTreeSet<Digest>,
    problems: &mut Vec<String>,
) {
    if sound.contains(digest) {
        return;
    }
    let before = problems.len();
    match edges(bytes) {
        Err(e) => problems.push(format!("{from}: {digest}: {e}")),
        Ok((children, blobs)) => {
            for child in children {
                match layout_blob(dir, &child.digest, Some(child.size)) {
                    Ok(child_bytes) => {
                        walk_layout(dir, &child.digest, &child_bytes, from, sound, problems)
                    }
                    Err(e) => problems.push(format!("{from}: child manifest: {e}")),
                }
            }
            for blob in blobs {
                if let Err(e) = layout_blob(dir, &blob.digest, Some(blob.size)) {
                    problems.push(format!("{from}: blob: {e}"));
                }
            }
        }
    }
    if problems.len() == before {
        sound.insert(digest.clone());
    }
}

/// Walk every layout under an `oci:` root by reading its files: every
/// index.json entry (tagged or not) must name a manifest that is there, with
/// everything it references, all verified by hash. Answers the tags found.
pub fn layout(root: &Path) -> Result<Tags, Vec<String>> {
    let mut problems = Vec::new();
    let mut tags = Tags::new();
    for (repo, dir) in layout_repositories(root) {
        let index_path = dir.join("index.json");
        let index: Value = match std::fs::read(&index_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: unreadable: {e}", index_path.display()));
                continue;
            }
        };
        let mut sound = BTreeSet::new();
        for entry in index["manifests"].as_array().into_iter().flatten() {
            let Some(digest) = entry["digest"].as_str().and_then(|d| Digest::parse(d).ok()) else {
                problems.push(format!("{}: bad entry {entry}", index_path.display()));
                continue;
            };
            let tag = entry["annotations"][REF_NAME].as_str();
            let from = match tag {
                Some(tag) => format!("{repo}:{tag}"),
                None => format!("{repo}@{digest}"),
            };
            if tag.is_some() {
                if let Some(other) = tags.insert(from.clone(), digest.clone()) {
                    if other != digest {
                        problems.push(format!("{from} names both {other} and {digest}"));
                    }
                }
            }
            match layout_blob(&dir, &digest, entry["size"].as_u64()) {
                Ok(bytes) => walk_layout(&dir, &digest, &bytes, &from, &mut sound, &mut problems),
                Err(e) => problems.push(format!("{from}: index.json names missing content: {e}")),
            }
        }
    }
    if problems.is_empty() {
        Ok(tags)
    } else {
        Err(problems)
    }
}

/// [`layout`], panicking with every problem (and `context`) when there are any.
pub fn assert_layout(root: &Path, context: &str) -> Tags {
    match layout(root) {
        Ok(tags) => tags,
        Err(problems) => panic!(
            "{context}: index.json references missing or wrong content:\n  {}",
            problems.join("\n  ")
        ),
    }
}

/// No tag found points at other content than `expected` says; tags not in
/// `expected` are not allowed either. Panics with the differences.
pub fn assert_no_wrong_tags(found: &Tags, expected: &Tags, context: &str) {
    let wrong: Vec<String> = found
        .iter()
        .filter(|(tag, digest)| expected.get(*tag) != Some(digest))
        .map(|(tag, digest)| match expected.get(tag) {
            Some(want) => format!("{tag} -> {digest}, wanted {want}"),
            None => format!("{tag} -> {digest}, which nobody asked for"),
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{context}: tags point at the wrong content:\n  {}",
        wrong.join("\n  ")
    );
}
