//! Names that flow through the whole pipeline: registry names, image
//! (repository) names, tags and digests. Each is parsed once, at the edge, and
//! is valid by construction afterwards. Parse errors carry a `help` text that
//! tells the user how to fix the input.
//!
//! This module is the only place that knows the grammar of these names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name did not parse, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NameError {
    /// What is wrong with the name; the `Display` text.
    pub message: String,
    /// How to fix it; `None` when there is nothing better to say.
    pub help: Option<String>,
}

impl NameError {
    fn new(message: impl Into<String>) -> Self {
        NameError {
            message: message.into(),
            help: None,
        }
    }
    fn with_help(message: impl Into<String>, help: impl Into<String>) -> Self {
        NameError {
            message: message.into(),
            help: Some(help.into()),
        }
    }
}

// ---------------------------------------------------------------- digests

/// Digest algorithms OCI registries accept for content addressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the usual one: 64 hex digits.
    Sha256,
    /// SHA-512: 128 hex digits.
    Sha512,
}

impl Algorithm {
    /// The name used as the digest prefix: `sha256` or `sha512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    /// How many hex digits a digest of this algorithm has.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A content digest, `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
///
/// Stored as its canonical string so that it can be compared, hashed, sorted
/// (byte order, as snapshots require) and displayed without allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parse a digest as written in a manifest or sent by a registry: the
    /// algorithm prefix, then lowercase hex of the right length.
    pub fn parse(text: &str) -> Result<Digest, NameError> {
        if text.is_empty() {
            return Err(NameError::with_help(
                "digest is empty",
                "write the digest as sha256:<64 lowercase hex digits>",
            ));
        }
        let Some((algo, hex)) = text.split_once(':') else {
            let help = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                format!("add the algorithm prefix: sha256:{text}")
            } else {
                "write the digest as sha256:<64 lowercase hex digits>".to_string()
            };
            return Err(NameError::with_help(
                format!("digest {text:?} has no algorithm prefix"),
                help,
            ));
        };
        let algorithm = match algo {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(NameError::with_help(
                    format!("digest algorithm {other:?} is not supported"),
                    "use sha256 (or sha512), the algorithms OCI registries accept",
                ))
            }
        };
        if let Some(bad) = hex
            .chars()
            .find(|c| !(c.is_ascii_digit() || ('a'..='f').contains(c)))
        {
            let help = if hex.chars().all(|c| c.is_ascii_hexdigit()) {
                "write the hex digits in lowercase".to_string()
            } else {
                format!("a digest holds only the hex digits 0-9 and a-f, not {bad:?}")
            };
            return Err(NameError::with_help(
                format!("digest {text:?} is not lowercase hex"),
                help,
            ));
        }
        if hex.len() != algorithm.hex_len() {
            return Err(NameError::with_help(
                format!("digest {text:?} has the wrong length"),
                format!(
                    "digest has {} hex digits; {} needs {}",
                    hex.len(),
                    algorithm.as_str(),
                    algorithm.hex_len()
                ),
            ));
        }
        Ok(Digest(text.to_string()))
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = DigestHasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }

    /// The whole digest, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The algorithm named by the prefix.
    pub fn algorithm(&self) -> Algorithm {
        if self.0.starts_with("sha512:") {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        }
    }
    /// The hex digits, without the `algorithm:` prefix.
    pub fn hex(&self) -> &str {
        &self.0[self.0.find(':').map_or(0, |i| i + 1)..]
    }
    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Digest::of(self.algorithm(), bytes) == *self
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Incremental digest computation, for verifying streams as they pass.
pub struct DigestHasher {
    inner: HasherInner,
}

enum HasherInner {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl DigestHasher {
    /// A hasher with nothing fed yet.
    pub fn new(algorithm: Algorithm) -> Self {
        use sha2::Digest as _;
        let inner = match algorithm {
            Algorithm::Sha256 => HasherInner::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => HasherInner::Sha512(sha2::Sha512::new()),
        };
        DigestHasher { inner }
    }
    /// Feed the next bytes of the content.
    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match &mut self.inner {
            HasherInner::Sha256(h) => h.update(bytes),
            HasherInner::Sha512(h) => h.update(bytes),
        }
    }
    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        use sha2::Digest as _;
        match self.inner {
            HasherInner::Sha256(h) => Digest(format!("sha256:{}", hex::encode(h.finalize()))),
            HasherInner::Sha512(h) => Digest(format!("sha512:{}", hex::encode(h.finalize()))),
        }
    }
}

// ---------------------------------------------------------------- tags

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Longest tag accepted, in characters (tags are ASCII).
    pub const MAX_LEN: usize = 128;

    /// Parse a tag as written in a manifest or sent by a registry.
    pub fn parse(text: &str) -> Result<Tag, NameError> {
        if text.is_empty() {
            return Err(NameError::with_help(
                "tag is empty",
                "remove the empty tag, or leave the list empty to promote by digest only",
            ));
        }
        if text.len() > Tag::MAX_LEN {
            return Err(NameError::with_help(
                format!("tag is {} characters long", text.len()),
                format!("a tag has at most {} characters", Tag::MAX_LEN),
            ));
        }
        let first = text.chars().next().unwrap_or(' ');
        if !(first.is_ascii_alphanumeric() || first == '_') {
            return Err(NameError::with_help(
                // The character, not the byte: "안녕" starts with '안'.
                format!("tag {text:?} starts with {first:?}"),
                "a tag starts with a letter, a digit or '_'",
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(NameError::with_help(
                format!("tag {text:?} contains {bad:?}"),
                "a tag holds only ASCII letters, digits, '_', '.' and '-'",
            ));
        }
        Ok(Tag(text.to_string()))
    }

    /// The tag as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Tag {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tag::parse(s)
    }
}

impl Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Tag::parse(&text).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------- image names

/// A repository path relative to a registry: `/`-separated components, each
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` (the OCI distribution grammar).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName(String);

/// Longest repository name most registries accept (Docker's limit).
const MAX_REPOSITORY_LEN: usize = 255;

fn check_path_component(component: &str, whole: &str) -> Result<(), NameError> {
    if component.is_empty() {
        return Err(NameError::with_help(
            format!("name {whole:?} has an empty path component"),
            "remove the leading, trailing or doubled '/'",
        ));
    }
    if component == ".." || component == "." {
        return Err(NameError::with_help(
            format!("name {whole:?} contains {component:?}"),
            "path components cannot be '.' or '..'",
        ));
    }
    if component.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(NameError::with_help(
            format!("name {whole:?} contains uppercase letters"),
            format!("use lowercase: {:?}", whole.to_ascii_lowercase()),
        ));
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(NameError::with_help(
            format!("component {component:?} of {whole:?} must start and end with a lowercase letter or digit"),
            "remove the leading or trailing separator",
        ));
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            let bad = sep.chars().find(|c| !matches!(c, '.' | '_' | '-'));
            let message = match bad {
                Some(c) => format!("name {whole:?} contains {c:?}"),
                None => format!("name {whole:?} contains the separator run {sep:?}"),
            };
            return Err(NameError::with_help(
                message,
                "components hold lowercase letters and digits, separated by '.', '_', '__' or dashes",
            ));
        }
    }
    Ok(())
}

impl ImageName {
    /// Parse an image name (a repository path). URLs and names with an '@'
    /// are refused before any message quotes the input: they may hold a
    /// password.
    pub fn parse(text: &str) -> Result<ImageName, NameError> {
        if text.is_empty() {
            return Err(NameError::new("image name is empty"));
        }
        if text.len() > MAX_REPOSITORY_LEN {
            return Err(NameError::with_help(
                format!("image name is {} characters long", text.len()),
                format!("registries accept at most {MAX_REPOSITORY_LEN}"),
            ));
        }
        // Checked before the component grammar, whose messages quote the
        // name: what follows a scheme or precedes an '@' may be a password.
        if text.contains("://") {
            return Err(NameError::with_help(
                "image name starts with a scheme (a URL is not an image name)",
                "write the repository path below the registries, e.g. team/app; registries are named under `registries`",
            ));
        }
        if text.contains('@') {
            return Err(NameError::with_help(
                "image name contains '@'",
                "write the repository path only: digests go under `dmap`, and credentials never go in a manifest",
            ));
        }
        for component in text.split('/') {
            check_path_component(component, text)?;
        }
        Ok(ImageName(text.to_string()))
    }
    /// The path as written, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ImageName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageName::parse(s)
    }
}

impl Serialize for ImageName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ImageName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ImageName::parse(&text).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------- registries

/// Where a registry lives: an OCI Distribution endpoint, or a directory tree
/// of OCI image layouts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `host[:port]`, normalised (Docker Hub's aliases fold to `docker.io`).
    Http {
        /// Host name or IP literal, with `:port` when one was given.
        host: String,
    },
    /// `oci:PATH`: image `foo/bar` lives in `PATH/foo/bar/`.
    Layout {
        /// The directory as written (relative to the working directory
        /// unless absolute), without a trailing `/`; `/` for the root.
        root: String,
    },
}

impl Endpoint {
    /// The HTTP(S) host to talk to; Docker Hub's API lives on another host than its name.
    pub fn api_host(&self) -> Option<&str> {
        match self {
            Endpoint::Http { host } if host == "docker.io" => Some("registry-1.docker.io"),
            Endpoint::Http { host } => Some(host),
            Endpoint::Layout { .. } => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Http { host } => f.write_str(host),
            Endpoint::Layout { root } => write!(f, "oci:{root}"),
        }
    }
}

/// A registry as manifests name it: an endpoint plus an optional path prefix
/// under which images live (`gcr.io/project/sub`, `oci:build/out/prod`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistryName {
    /// Where the registry lives.
    pub endpoint: Endpoint,
    /// Path prefix without leading or trailing `/`; empty for the root.
    pub prefix: String,
}

impl RegistryName {
    /// Parse `host[:port][/path]` or `oci:PATH`. Schemes and credentials are
    /// refused without echoing them, and Docker Hub's host names fold to
    /// `docker.io`.
    pub fn parse(text: &str) -> Result<RegistryName, NameError> {
        if text.is_empty() {
            return Err(NameError::with_help(
                "registry name is empty",
                "name the registry as host[:port][/path], e.g. gcr.io/my-project",
            ));
        }
        if let Some(root) = text.strip_prefix("oci:") {
            return RegistryName::parse_layout(text, root);
        }
        if let Some((scheme, rest)) = text.split_once("://") {
            // Never echo what follows the scheme: it may hold credentials.
            let host_only = rest
                .rsplit_once('@')
                .map_or(rest, |(_, after)| after)
                .to_string();
            return Err(NameError::with_help(
                format!("registry name starts with the scheme {scheme:?}"),
                format!("drop the scheme{}: write {host_only:?}; plain HTTP is chosen per registry in the registry options, not in the name",
                    if rest.contains('@') { " and the credentials (use a docker config.json or --auth-file)" } else { "" }),
            ));
        }
        if text.contains('@') {
            return Err(NameError::with_help(
                "registry name contains '@' (credentials do not belong in a manifest)",
                "remove the user:password@ part and provide credentials through a docker config.json or --auth-file",
            ));
        }
        let (host, path) = match text.split_once('/') {
            Some((host, path)) => (host, path),
            None => (text, ""),
        };
        check_host(host, text)?;
        let path = path.trim_end_matches('/');
        if !path.is_empty() {
            for component in path.split('/') {
                check_path_component(component, text)?;
            }
        }
        let host = match host {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
            other => other,
        };
        Ok(RegistryName {
            endpoint: Endpoint::Http {
                host: host.to_string(),
            },
            prefix: path.to_string(),
        })
    }

    fn parse_layout(text: &str, root: &str) -> Result<RegistryName, NameError> {
        if root.is_empty() {
            return Err(NameError::with_help(
                "oci: registry has no path",
                "write oci:PATH, e.g. oci:build/images (relative to the working directory)",
            ));
        }
        if root.contains('\0') {
            return Err(NameError::new(format!(
                "registry name {text:?} contains a NUL byte"
            )));
        }
        // `oci:/` is the file system root: trimming it to "" would make it
        // the working directory (and display as `oci:`, which is refused).
        let root = match root.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        Ok(RegistryName {
            endpoint: Endpoint::Layout {
                root: root.to_string(),
            },
            prefix: String::new(),
        })
    }

    /// The repository `image` lives in under this registry.
    pub fn repository(&self, image: &ImageName) -> Repository {
        let mut path = if self.prefix.is_empty() {
            image.as_str().to_string()
        } else {
            format!("{}/{}", self.prefix, image.as_str())
        };
        // Docker Hub keeps single-component official images under library/.
        if matches!(&self.endpoint, Endpoint::Http { host } if host == "docker.io")
            && !path.contains('/')
        {
            path = format!("library/{path}");
        }
        // Both parts passed the component grammar; only the joined length
        // may exceed what a registry takes, and that is the registry's call.
        Repository {
            endpoint: self.endpoint.clone(),
            path: ImageName(path),
        }
    }

    /// Whether `other` is this registry or lies under it, on a path boundary:
    /// `gcr.io/prod` contains `gcr.io/prod` and `gcr.io/prod/x`, never `gcr.io/prod-x`.
    /// Returns the sub-path of `other` below `self` (empty when equal).
    pub fn sub_path_of<'a>(&self, other: &'a RegistryName) -> Option<&'a str> {
        if self.endpoint != other.endpoint {
            return None;
        }
        if self.prefix.is_empty() {
            return Some(&other.prefix);
        }
        let rest = other.prefix.strip_prefix(&self.prefix)?;
        if rest.is_empty() {
            Some("")
        } else {
            rest.strip_prefix('/')
        }
    }
}

fn check_host(host: &str, whole: &str) -> Result<(), NameError> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(']') || host.starts_with('[') => (name, Some(port)),
        _ => (host, None),
    };
    if let Some(port) = port {
        if port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err()
        {
            return Err(NameError::with_help(
                format!("registry {whole:?} has an invalid port {port:?}"),
                "a port is a number from 1 to 65535",
            ));
        }
    }
    if name.is_empty() {
        return Err(NameError::with_help(
            format!("registry {whole:?} has no host"),
            "name the registry as host[:port][/path], e.g. gcr.io/my-project",
        ));
    }
    if name.starts_with('[') && name.ends_with(']') {
        return Ok(()); // IPv6 literal
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(NameError::with_help(
                format!("registry {whole:?} has an invalid host {name:?}"),
                "a host is made of dot-separated labels of letters, digits and '-'",
            ));
        }
    }
    Ok(())
}

impl fmt::Display for RegistryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.endpoint, self.prefix.is_empty()) {
            (endpoint, true) => write!(f, "{endpoint}"),
            (endpoint, false) => write!(f, "{endpoint}/{}", self.prefix),
        }
    }
}

impl FromStr for RegistryName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegistryName::parse(s)
    }
}

impl Serialize for RegistryName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RegistryName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RegistryName::parse(&text).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------- repositories

/// A repository on an endpoint: the endpoint and the full path on it, each
/// checked once, where it was made. Every [`crate::registry::Registry`] call
/// addresses one, so no backend parses a repository again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    endpoint: Endpoint,
    path: ImageName,
}

impl Repository {
    /// `path` on `endpoint`.
    pub fn new(endpoint: Endpoint, path: ImageName) -> Repository {
        Repository { endpoint, path }
    }

    /// A repository path as a registry or a file names it, on `endpoint`:
    /// checked against the distribution grammar, so that what a listing
    /// sends can never become a URL or file path of another shape.
    pub fn parse(endpoint: &Endpoint, path: &str) -> Result<Repository, NameError> {
        Ok(Repository {
            endpoint: endpoint.clone(),
            path: ImageName::parse(path)?,
        })
    }

    /// The endpoint the repository lives on.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The path on the endpoint (`team/app`), without the endpoint.
    pub fn path(&self) -> &str {
        self.path.as_str()
    }

    /// The path's `/`-separated components, each a valid name component.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.path.as_str().split('/')
    }

    /// For a repository in an `oci:` tree, the first path component that is
    /// one of a layout's own file names ([`LAYOUT_FILE_NAMES`]): such a
    /// repository would live inside another one's blob store or shadow its
    /// files, so it cannot be stored there.
    pub fn layout_file_component(&self) -> Option<&str> {
        match self.endpoint {
            Endpoint::Layout { .. } => self.components().find(|c| LAYOUT_FILE_NAMES.contains(c)),
            Endpoint::Http { .. } => None,
        }
    }
}

/// The names an OCI image layout uses inside its directory: in an `oci:`
/// tree, never a component of an image path.
pub const LAYOUT_FILE_NAMES: [&str; 3] = ["blobs", "index.json", "oci-layout"];

/// Ordered as the text `endpoint/path` sorts, so plans and listings sort
/// the way they read.
impl Ord for Repository {
    fn cmp(&self, other: &Repository) -> std::cmp::Ordering {
        endpoint_text(&self.endpoint)
            .cmp(&endpoint_text(&other.endpoint))
            .then_with(|| self.path.cmp(&other.path))
    }
}

impl PartialOrd for Repository {
    fn partial_cmp(&self, other: &Repository) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

fn endpoint_text(endpoint: &Endpoint) -> std::borrow::Cow<'_, str> {
    match endpoint {
        Endpoint::Http { host } => std::borrow::Cow::Borrowed(host),
        layout => std::borrow::Cow::Owned(layout.to_string()),
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.endpoint, self.path)
    }
}

/// Written as `{"endpoint": "host", "repository": "team/app"}` (the plan
/// file's shape), and checked again when read: a plan file is input.
#[derive(Serialize, Deserialize)]
struct RepositoryFields {
    endpoint: String,
    repository: String,
}

impl Serialize for Repository {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RepositoryFields {
            endpoint: self.endpoint.to_string(),
            repository: self.path.to_string(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Repository {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let fields = RepositoryFields::deserialize(d)?;
        let registry = RegistryName::parse(&fields.endpoint).map_err(D::Error::custom)?;
        if !registry.prefix.is_empty() {
            return Err(D::Error::custom(format!(
                "endpoint {:?} has a path; the path belongs in \"repository\"",
                registry.to_string()
            )));
        }
        Repository::parse(&registry.endpoint, &fields.repository).map_err(D::Error::custom)
    }
}

/// What a manifest request addresses: a digest or a tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ManifestRef {
    /// The manifest with this digest.
    Digest(Digest),
    /// Whatever manifest the tag points at now.
    Tag(Tag),
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestRef::Digest(d) => write!(f, "{d}"),
            ManifestRef::Tag(t) => write!(f, "{t}"),
        }
    }
}

// ---------------------------------------------------------------- image references

/// An image reference as Docker, Kubernetes and the mirror tools write it:
/// `[host[:port]/]path[:tag][@digest]`. A first component is a host when it
/// has a `.` or a `:` or is `localhost`; otherwise the image is on Docker
/// Hub, where `nginx`, `library/nginx` and `docker.io/library/nginx` are
/// one image, named `nginx` below `docker.io`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageReference {
    /// The registry host, without a path.
    pub registry: RegistryName,
    /// The repository path on it.
    pub name: ImageName,
    /// The tag, when one is written.
    pub tag: Option<Tag>,
    /// The digest, when one is written.
    pub digest: Option<Digest>,
}

impl ImageReference {
    /// Parse `text`; a reference without tag or digest is refused, since
    /// which manifest it means would depend on the day (`:latest`).
    pub fn parse(text: &str) -> Result<ImageReference, NameError> {
        ImageReference::parse_inner(text, false).map(|(r, _)| r)
    }

    /// Parse `text` as a container runtime does: without tag or digest it
    /// means `:latest`. The flag says whether `latest` was implied.
    pub fn parse_or_latest(text: &str) -> Result<(ImageReference, bool), NameError> {
        ImageReference::parse_inner(text, true)
    }

    fn parse_inner(text: &str, imply_latest: bool) -> Result<(ImageReference, bool), NameError> {
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(Digest::parse(digest)?)),
            None => (text, None),
        };
        // A tag follows the last ':' after the last '/' (a port comes before it).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(Tag::parse(&rest[at + 1..])?))
            }
            None => (rest, None),
        };
        let implied = tag.is_none() && digest.is_none() && imply_latest;
        let tag = if implied {
            Some(Tag("latest".to_string()))
        } else {
            tag
        };
        if tag.is_none() && digest.is_none() {
            return Err(NameError::with_help(
                format!("image reference {text:?} has neither a tag nor a digest"),
                format!("write the tag it should mirror, e.g. {rest}:1.0 (an image without one means whatever `latest` is that day)"),
            ));
        }
        let (host, path) = match path.split_once('/') {
            Some((first, more)) if first.contains(['.', ':']) || first == "localhost" => {
                (first, more)
            }
            _ => ("docker.io", path),
        };
        let registry = RegistryName::parse(host)?;
        if !matches!(registry.endpoint, Endpoint::Http { .. }) {
            return Err(NameError::with_help(
                "an image reference names a registry host, not a local `oci:` directory",
                "write host[:port]/path:tag",
            ));
        }
        let docker_hub =
            matches!(&registry.endpoint, Endpoint::Http { host } if host == "docker.io");
        let path = match path.strip_prefix("library/") {
            Some(official) if docker_hub && !official.contains('/') => official,
            _ => path,
        };
        let reference = ImageReference {
            registry,
            name: ImageName::parse(path)?,
            tag,
            digest,
        };
        Ok((reference, implied))
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_parse_as_docker_reads_them() {
        let d = format!("sha256:{}", "a".repeat(64));
        let cases = [
            ("nginx:1.25", "docker.io/nginx:1.25"),
            ("library/nginx:1.25", "docker.io/nginx:1.25"),
            ("docker.io/library/nginx:1.25", "docker.io/nginx:1.25"),
            (
                "index.docker.io/bitnami/redis:7",
                "docker.io/bitnami/redis:7",
            ),
            (
                "quay.io/coreos/prometheus-operator:v0.40.0",
                "quay.io/coreos/prometheus-operator:v0.40.0",
            ),
            ("localhost:5000/app:1", "localhost:5000/app:1"),
            ("localhost/app:1", "localhost/app:1"),
            ("127.0.0.1:5000/team/app:1", "127.0.0.1:5000/team/app:1"),
        ];
        for (text, shown) in cases {
            assert_eq!(
                ImageReference::parse(text).unwrap().to_string(),
                shown,
                "{text}"
            );
        }
        let pinned = ImageReference::parse(&format!("busybox:1.36@{d}")).unwrap();
        assert_eq!(pinned.tag.unwrap().as_str(), "1.36");
        assert_eq!(pinned.digest.unwrap().as_str(), d);
        let by_digest = ImageReference::parse(&format!("localhost:5000/app@{d}")).unwrap();
        assert_eq!(by_digest.tag, None);
        assert_eq!(by_digest.registry.to_string(), "localhost:5000");
        let (implied, was) = ImageReference::parse_or_latest("localhost:5000/app").unwrap();
        assert_eq!(
            (implied.to_string().as_str(), was),
            ("localhost:5000/app:latest", true)
        );
    }

    #[test]
    fn image_references_without_tag_or_with_bad_parts_are_refused() {
        for text in [
            "nginx",
            "quay.io/app",
            "Nginx:1",
            "nginx:",
            "nginx@sha256:12",
            "a//b:1",
        ] {
            assert!(
                ImageReference::parse(text).is_err(),
                "{text} should be refused"
            );
        }
    }

    #[test]
    fn valid_tags_parse() {
        let long = "a".repeat(128);
        for tag in [
            "a",
            "_",
            "latest",
            "_____----hello........",
            "1.0",
            "v1.10-rc.1",
            long.as_str(),
        ] {
            assert!(Tag::parse(tag).is_ok(), "{tag:?} should be valid");
        }
    }

    #[test]
    fn invalid_tags_are_refused() {
        let long = "a".repeat(129);
        for tag in ["", ".", "-", "ünicode", "a b", "a/b", "a:b", long.as_str()] {
            assert!(Tag::parse(tag).is_err(), "{tag:?} should be invalid");
        }
        let err = Tag::parse("안녕").unwrap_err();
        assert_eq!(err.message, "tag \"안녕\" starts with '안'");
    }

    #[test]
    fn digest_lengths_and_case_are_checked_with_help() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(Digest::parse(&ok).is_ok());
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());

        let short = Digest::parse(&format!("sha256:{}", "a".repeat(63))).unwrap_err();
        assert_eq!(
            short.help.as_deref(),
            Some("digest has 63 hex digits; sha256 needs 64")
        );
        let long = Digest::parse(&format!("sha256:{}", "a".repeat(65))).unwrap_err();
        assert_eq!(
            long.help.as_deref(),
            Some("digest has 65 hex digits; sha256 needs 64")
        );
        let upper = Digest::parse(&format!("sha256:{}", "A".repeat(64))).unwrap_err();
        assert_eq!(
            upper.help.as_deref(),
            Some("write the hex digits in lowercase")
        );
        let bare = Digest::parse(&"a".repeat(64)).unwrap_err();
        assert!(bare.help.unwrap().starts_with("add the algorithm prefix"));
        assert!(Digest::parse("").is_err());
        assert!(Digest::parse(&format!("md5:{}", "a".repeat(32))).is_err());
    }

    #[test]
    fn digest_of_bytes_matches_known_value() {
        assert_eq!(
            Digest::sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(Digest::sha256_of(b"x").matches(b"x"));
        assert!(!Digest::sha256_of(b"x").matches(b"y"));
    }

    #[test]
    fn image_names_follow_the_distribution_grammar() {
        for ok in [
            "a",
            "foo/bar",
            "foo-bar/baz__qux",
            "a.b/c_d/e--f",
            "k8s-staging-foo/bar",
        ] {
            assert!(ImageName::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "", "/foo", "foo/", "foo//bar", "../x", "a/../b", "Foo", "a..b", "a___b", "-a", "a b",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?}");
        }
        for secret in [
            "https://u:hunter2@host/x",
            "u:hunter2@host/x",
            "x@sha256:abc",
        ] {
            let err = ImageName::parse(secret).unwrap_err();
            assert!(!err.message.contains("hunter2"), "{err:?}");
            assert!(!err.help.unwrap_or_default().contains("hunter2"));
        }
    }

    #[test]
    fn registry_names_parse_and_refuse_schemes_without_echoing_secrets() {
        let r = RegistryName::parse("gcr.io/proj/sub").unwrap();
        assert_eq!(
            r.endpoint,
            Endpoint::Http {
                host: "gcr.io".into()
            }
        );
        assert_eq!(r.prefix, "proj/sub");
        assert_eq!(r.to_string(), "gcr.io/proj/sub");
        assert!(RegistryName::parse("localhost:5000").is_ok());
        assert!(RegistryName::parse("127.0.0.1:5000/x").is_ok());
        assert_eq!(
            RegistryName::parse("index.docker.io").unwrap().to_string(),
            "docker.io"
        );
        let err = RegistryName::parse("https://user:hunter2@host.example").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(!err.help.as_ref().unwrap().contains("hunter2"));
        assert!(RegistryName::parse("host:99999").is_err());
        assert!(RegistryName::parse("host/UPPER").is_err());
        let oci = RegistryName::parse("oci:some/dir/").unwrap();
        assert_eq!(
            oci.endpoint,
            Endpoint::Layout {
                root: "some/dir".into()
            }
        );
    }

    /// Found by `fuzz/fuzz_targets/image_reference.rs`: `oci:/` parsed to
    /// the root "" (the working directory), displayed as `oci:`, which did
    /// not parse again.
    #[test]
    fn an_oci_root_of_slashes_is_the_file_system_root_and_round_trips() {
        for text in ["oci:/", "oci://", "oci:///"] {
            let r = RegistryName::parse(text).unwrap();
            assert_eq!(r.endpoint, Endpoint::Layout { root: "/".into() }, "{text}");
            assert_eq!(r.to_string(), "oci:/");
            assert_eq!(RegistryName::parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn docker_hub_single_names_live_under_library() {
        let hub = RegistryName::parse("docker.io").unwrap();
        assert_eq!(
            hub.repository(&ImageName::parse("alpine").unwrap()).path(),
            "library/alpine"
        );
        assert_eq!(
            hub.repository(&ImageName::parse("a/b").unwrap()).path(),
            "a/b"
        );
        assert_eq!(
            hub.repository(&ImageName::parse("a/b").unwrap())
                .to_string(),
            "docker.io/a/b"
        );
    }

    #[test]
    fn sub_path_matches_on_path_boundaries_only() {
        let prod = RegistryName::parse("gcr.io/prod").unwrap();
        let same = RegistryName::parse("gcr.io/prod").unwrap();
        let below = RegistryName::parse("gcr.io/prod/eu").unwrap();
        let sibling = RegistryName::parse("gcr.io/prod-foo").unwrap();
        assert_eq!(prod.sub_path_of(&same), Some(""));
        assert_eq!(prod.sub_path_of(&below), Some("eu"));
        assert_eq!(prod.sub_path_of(&sibling), None);
    }
}
