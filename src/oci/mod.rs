//! OCI content, the ground floor: what a manifest is and what it references.
//! Every other module asks this one; it depends only on [`crate::reference`]
//! (and on [`crate::limits`] and the escaper, which depend on nothing).
//!
//! - [`media_type`]: the media types we understand, and the one sniffer;
//! - [`RawManifest`] and [`Descriptor`]: a manifest's exact bytes, and what
//!   a descriptor (index entry, layer, referrer, HEAD answer) says;
//! - [`references`]: the one reader of manifest structure (children, blobs,
//!   subject, artifact type), used by the executor, snapshots, both
//!   backends' referrers and the layout's index walk;
//! - [`attachment_tag`]: the one builder of `<alg>-<hex>` attachment tags;
//! - [`verify::VerifyingStream`]: the one stream verifier, used by both
//!   backends;
//! - [`check_bytes`]: the one comparison of bytes against a digest;
//! - `graph`: the one walk of a manifest graph, and the bound it is held
//!   to (how deep indexes nest, how many manifests one walk reads).
//!
//! Unknown fields are ignored on purpose: bytes are copied as they are, we
//! only need the edges.

use bytes::Bytes;
use serde::Deserialize;

use crate::reference::{Digest, Tag};

pub(crate) mod graph;
pub mod media_type;
pub mod verify;

pub(crate) use graph::{GraphError, GraphStep, GraphWalk};

/// Content that is not what it claims to be. Backends turn these into
/// their own errors (`RegistryError` keeps the mismatch variants, so retry
/// decisions see them unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// The bytes do not hash to the digest they were asked for by.
    #[error("{what}: expected digest {expected}, got {actual}")]
    DigestMismatch {
        /// The content, for people (a blob and its repository, a manifest).
        what: String,
        /// The digest the content was asked for by.
        expected: Digest,
        /// The digest of the bytes that came.
        actual: Digest,
    },
    /// More or fewer bytes came than the descriptor said.
    #[error("{what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The content, for people.
        what: String,
        /// The size, in bytes, the descriptor gave.
        expected: u64,
        /// The bytes that came: where the stream ran past the size, as many
        /// as had come by then.
        actual: u64,
    },
    /// Bytes that should be a manifest (or an index of referrers) and are not.
    #[error("{what}: {message}")]
    Malformed {
        /// The content, for people.
        what: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Check that `bytes` hash to `expected`; the error names `what` and the
/// digest the bytes really have.
pub fn check_bytes(what: &str, expected: &Digest, bytes: &[u8]) -> Result<(), ContentError> {
    if expected.matches(bytes) {
        return Ok(());
    }
    Err(ContentError::DigestMismatch {
        what: what.to_string(),
        expected: expected.clone(),
        actual: Digest::of(expected.algorithm(), bytes),
    })
}

/// A manifest as the registry stored it. `bytes` are exact: putting them back
/// with `media_type` reproduces `digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    /// The manifest exactly as stored, never re-serialized.
    pub bytes: Bytes,
    /// The media type it is stored under (its `Content-Type`).
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
}

impl RawManifest {
    /// Build from bytes, computing the digest (sha256).
    pub fn new(bytes: impl Into<Bytes>, media_type: impl Into<String>) -> RawManifest {
        let bytes = bytes.into();
        let digest = Digest::sha256_of(&bytes);
        RawManifest {
            bytes,
            media_type: media_type.into(),
            digest,
        }
    }
}

/// What a descriptor says about a piece of content: an index entry, a config
/// or layer, a referrer, or a HEAD answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The content's digest.
    pub digest: Digest,
    /// The content's media type.
    pub media_type: String,
    /// The content's size in bytes.
    pub size: u64,
    /// For referrers: the `artifactType`, when known.
    pub artifact_type: Option<String>,
    /// Non-distributable ("foreign") layers carry URLs and may be absent from
    /// registries; they are copied when the source has them.
    pub foreign: bool,
}

impl Descriptor {
    /// A plain descriptor: no artifact type, distributable.
    pub fn new(digest: Digest, media_type: impl Into<String>, size: u64) -> Descriptor {
        Descriptor {
            digest,
            media_type: media_type.into(),
            size,
            artifact_type: None,
            foreign: false,
        }
    }
}

/// Our descriptor as the OCI data model has it, for content we write (the
/// referrers index's entries). `foreign` has no field of its own: it is read
/// from `urls` and media types, which a descriptor we write does not carry.
impl From<&Descriptor> for oci_spec::image::Descriptor {
    fn from(d: &Descriptor) -> oci_spec::image::Descriptor {
        let digest = oci_spec::image::Digest::try_from(d.digest.as_str())
            .expect("the digests Digest::parse admits are a part of the OCI grammar");
        let mut spec =
            oci_spec::image::Descriptor::new(d.media_type.as_str().into(), d.size, digest);
        spec.set_artifact_type(d.artifact_type.as_deref().map(Into::into));
        spec
    }
}

/// The edges of one manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Child manifests (for an index or manifest list).
    pub manifests: Vec<Descriptor>,
    /// Blobs: the config, then the layers (for an image manifest).
    pub blobs: Vec<Descriptor>,
    /// The manifest this one is attached to (OCI 1.1 `subject`).
    pub subject: Option<Digest>,
    /// The manifest's own `artifactType`.
    pub artifact_type: Option<String>,
    /// The config's media type (an image manifest's artifact type when
    /// `artifactType` is absent, as the referrers API reports it).
    pub config_media_type: Option<String>,
    /// For an index: the platforms its children are listed under
    /// (`os/arch[/variant]`), in order, without repeats.
    pub platforms: Vec<String>,
}

impl References {
    /// What an attachment is, for people: its `artifactType`, else the first
    /// of its config and layer media types that marks a signature,
    /// attestation or SBOM (a cosign signature is an image whose layer is a
    /// simple-signing payload), else its config media type.
    pub fn attachment_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| {
                self.config_media_type
                    .iter()
                    .chain(self.blobs.iter().map(|b| &b.media_type))
                    .find(|t| AttachmentKind::of_media_type(t).is_some())
                    .cloned()
            })
            .or_else(|| self.config_media_type.clone())
    }

    /// The artifact type the referrers API reports for this manifest.
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config_media_type.clone())
    }
}

// The reader's own view of a manifest, not oci-spec's structs: those would
// refuse what registries accept (a descriptor without `mediaType`, a
// platform without `architecture`) and parse digests by a second grammar;
// what they would accept that we refuse is checked before these are read
// (CONTRIBUTING, "Where oci-spec is used, and where not").
#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    #[serde(default)]
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl RawPlatform {
    fn text(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }
}

#[derive(Deserialize)]
struct RawManifestBody {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    #[serde(default)]
    manifests: Vec<RawDescriptor>,
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
    #[serde(default)]
    subject: Option<RawDescriptor>,
}

impl RawDescriptor {
    fn into_descriptor(self, what: &str) -> Result<Descriptor, ContentError> {
        let digest = Digest::parse(&self.digest).map_err(|e| ContentError::Malformed {
            what: what.to_string(),
            message: format!("bad digest in descriptor: {e}"),
        })?;
        let foreign = !self.urls.is_empty()
            || self.media_type.contains("foreign")
            || self.media_type.contains("nondistributable");
        Ok(Descriptor {
            digest,
            media_type: self.media_type,
            size: self.size,
            artifact_type: self.artifact_type,
            foreign,
        })
    }
}

/// Read the edges of `manifest`. `what` names it in errors.
///
/// Refuses what other readers would see differently, so that nothing is
/// copied or stored under a reading of its own: a key that differs only in
/// case (or by Go's Unicode folding) from a field we read (Go's
/// `encoding/json`, which registries and skopeo use, matches such keys; serde
/// would not, and a `"Layers"` list would be copied without its layers), a
/// `mediaType` field that contradicts the type the manifest was given under,
/// a body shaped as the other kind (an index with `layers`, an image with
/// `manifests`), and media types outside the RFC 6838 grammar.
pub fn references(manifest: &RawManifest, what: &str) -> Result<References, ContentError> {
    let malformed = |message: String| ContentError::Malformed {
        what: what.to_string(),
        message,
    };
    check_unique_keys(&manifest.bytes).map_err(&malformed)?;
    let value: serde_json::Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| malformed(format!("manifest is not valid JSON: {e}")))?;
    check_key_spelling(&value, MANIFEST_KEYS).map_err(&malformed)?;
    for field in ["config", "subject"] {
        if let Some(descriptor) = value.get(field) {
            check_key_spelling(descriptor, DESCRIPTOR_KEYS).map_err(&malformed)?;
        }
    }
    for list in ["manifests", "layers"] {
        if let Some(serde_json::Value::Array(items)) = value.get(list) {
            for item in items {
                check_key_spelling(item, DESCRIPTOR_KEYS).map_err(&malformed)?;
            }
        }
    }
    let body: RawManifestBody = serde_json::from_value(value)
        .map_err(|e| malformed(format!("manifest does not have the OCI shape: {e}")))?;
    let given = manifest.media_type.as_str();
    if !media_type::is_valid(given) {
        return Err(malformed(format!(
            "media type {:?} is not a media type",
            printable(given)
        )));
    }
    if let Some(declared) = body.media_type.as_deref() {
        if !declared.is_empty() && declared != given {
            return Err(malformed(format!(
                "the body declares mediaType {:?} but was served as {given:?}",
                printable(declared)
            )));
        }
    }
    let has_image_fields = body.config.is_some() || !body.layers.is_empty();
    if media_type::is_index(given) && has_image_fields {
        return Err(malformed(format!(
            "an index ({given}) with `config` or `layers`"
        )));
    }
    if media_type::is_image_manifest(given) && !body.manifests.is_empty() {
        return Err(malformed(format!(
            "an image manifest ({given}) with `manifests`"
        )));
    }
    let is_index =
        media_type::is_index(given) || (!body.manifests.is_empty() && body.config.is_none());
    let mut refs = References {
        artifact_type: body.artifact_type,
        config_media_type: body.config.as_ref().map(|c| c.media_type.clone()),
        ..References::default()
    };
    if let Some(subject) = body.subject {
        refs.subject = Some(subject.into_descriptor(what)?.digest);
    }
    if is_index {
        for child in body.manifests {
            if let Some(platform) = child.platform.as_ref().map(RawPlatform::text) {
                if !refs.platforms.contains(&platform) {
                    refs.platforms.push(platform);
                }
            }
            refs.manifests.push(child.into_descriptor(what)?);
        }
    } else {
        if let Some(config) = body.config {
            refs.blobs.push(config.into_descriptor(what)?);
        }
        for layer in body.layers {
            refs.blobs.push(layer.into_descriptor(what)?);
        }
    }
    // An empty media type is a descriptor's omission (sloppy, harmless).
    for d in refs.manifests.iter().chain(&refs.blobs) {
        if !d.media_type.is_empty() && !media_type::is_valid(&d.media_type) {
            return Err(malformed(format!(
                "descriptor {} has the media type {:?}, which is not a media type",
                d.digest,
                printable(&d.media_type)
            )));
        }
    }
    if let Some(t) = &refs.artifact_type {
        if !media_type::is_valid(t) {
            return Err(malformed(format!(
                "artifactType {:?} is not a media type",
                printable(t)
            )));
        }
    }
    Ok(refs)
}

/// The fields of a manifest or index we read (and those beside them that
/// other readers give meaning to).
const MANIFEST_KEYS: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "artifactType",
    "config",
    "layers",
    "manifests",
    "subject",
    "annotations",
];

/// The fields of a descriptor.
const DESCRIPTOR_KEYS: &[&str] = &[
    "mediaType",
    "digest",
    "size",
    "urls",
    "annotations",
    "data",
    "artifactType",
    "platform",
];

/// Refuse a JSON document with a key twice in one object, at any depth:
/// readers disagree on which one counts (Go's `encoding/json` and serde
/// take the last, others the first), so two of them would see two images.
fn check_unique_keys(bytes: &[u8]) -> Result<(), String> {
    use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

    /// Any JSON value, refused if an object in it repeats a key.
    struct Unique;

    impl<'de> DeserializeSeed<'de> for Unique {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(M::Error::custom(format!(
                        "key {:?} appears twice in one object",
                        printable(&key)
                    )));
                }
                map.next_value_seed(Unique)?;
            }
            Ok(())
        }
        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
            while seq.next_element_seed(Unique)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }

    let mut reader = serde_json::Deserializer::from_slice(bytes);
    match Unique.deserialize(&mut reader) {
        Ok(()) => Ok(()),
        // Bad JSON as such is said by the reader that follows.
        Err(e) if !e.is_data() => Ok(()),
        Err(e) => {
            let offset = byte_offset(bytes, e.line(), e.column());
            Err(format!(
                "{e} (byte {offset}); readers disagree on which one counts, so the manifest is refused"
            ))
        }
    }
}

/// The byte offset of 1-based `line` and `column` in `bytes`.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let start: usize = bytes
        .split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    start + column.saturating_sub(1)
}

/// Refuse an object key that is not one of `known` but that Go's
/// `encoding/json` would take for one: it matches keys case-insensitively,
/// with Unicode's simple folding (the Kelvin sign is a `k`, the long s an `s`).
fn check_key_spelling(value: &serde_json::Value, known: &[&str]) -> Result<(), String> {
    let serde_json::Value::Object(map) = value else {
        return Ok(());
    };
    let fold = |key: &str| -> String {
        key.chars()
            .map(|c| match c {
                '\u{212A}' => 'k',
                '\u{017F}' => 's',
                c => c.to_ascii_lowercase(),
            })
            .collect()
    };
    for key in map.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let folded = fold(key);
        if let Some(field) = known.iter().find(|k| fold(k) == folded) {
            return Err(format!(
                "key {:?} differs from {field:?} only in case; other readers take it for \
                 {field:?} and this one would not, so the manifest is refused",
                printable(key)
            ));
        }
    }
    Ok(())
}

/// `text` escaped for quoting content in a message, on one line.
fn printable(text: &str) -> String {
    crate::text::printable(text, crate::text::Lines::Escaped)
}

/// Cosign's attachment kinds, kept under `<alg>-<hex>.<suffix>` tags.
pub const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// The tag an attachment of `subject` lives under: `<alg>-<hex>` (the
/// referrers tag schema's index when `suffix` is `None`), or
/// `<alg>-<hex>.<suffix>` (cosign's signatures, attestations, SBOMs). As the
/// OCI distribution spec says for the referrers tag, the algorithm is cut to
/// 32 and the hex to 64 characters, so a sha512 subject still gets a valid
/// tag (128 characters at most). The one builder, for reads and writes alike.
pub fn attachment_tag(subject: &Digest, suffix: Option<&str>) -> Tag {
    let alg = subject.algorithm().as_str();
    let hex = subject.hex();
    let mut text = format!(
        "{}-{}",
        &alg[..alg.len().min(32)],
        &hex[..hex.len().min(64)]
    );
    if let Some(suffix) = suffix {
        text.push('.');
        text.push_str(suffix);
    }
    Tag::parse(&text).expect("alg-hex with a short suffix is always a valid tag")
}

/// What an attachment is, as far as promotion cares: only these follow an
/// image. Anyone who can push to a source repository can put anything under
/// `<alg>-<hex>.sig` or point a `subject` at an image; only what has the
/// shape of one of these kinds is copied as the image's attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttachmentKind {
    /// A signature: cosign (simple signing, sigstore bundles), Notary.
    Signature,
    /// An attestation: an in-toto statement in a DSSE envelope.
    Attestation,
    /// A software bill of materials: SPDX, CycloneDX, Syft.
    Sbom,
}

impl AttachmentKind {
    /// The kind cosign keeps under `<alg>-<hex>.<suffix>`.
    pub fn of_cosign_suffix(suffix: &str) -> Option<AttachmentKind> {
        match suffix {
            "sig" => Some(AttachmentKind::Signature),
            "att" => Some(AttachmentKind::Attestation),
            "sbom" => Some(AttachmentKind::Sbom),
            _ => None,
        }
    }

    /// The kind a media type (an artifact type, a config or layer type)
    /// marks, for the types the signing and SBOM tools write.
    pub fn of_media_type(media_type: &str) -> Option<AttachmentKind> {
        let bare = media_type.split(';').next().unwrap_or("").trim();
        const SIGNATURES: &[&str] = &[
            "application/vnd.dev.cosign.simplesigning.v1+json",
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            "application/vnd.cncf.notary.signature",
            "application/vnd.cncf.notary.v2.signature",
        ];
        const ATTESTATIONS: &[&str] = &[
            "application/vnd.dsse.envelope.v1+json",
            "application/vnd.in-toto+json",
            "application/vnd.dev.cosign.attestation.v1+json",
            "application/vnd.dev.cosign.artifact.att.v1+json",
        ];
        const SBOMS: &[&str] = &[
            "application/spdx+json",
            "application/spdx",
            "text/spdx",
            "text/spdx+json",
            "text/spdx+xml",
            "application/vnd.cyclonedx",
            "application/vnd.cyclonedx+json",
            "application/vnd.cyclonedx+xml",
            "application/vnd.syft+json",
            "application/vnd.dev.cosign.artifact.sbom.v1+json",
        ];
        if SIGNATURES.contains(&bare) || bare.starts_with("application/vnd.dev.sigstore.bundle") {
            Some(AttachmentKind::Signature)
        } else if ATTESTATIONS.contains(&bare) {
            Some(AttachmentKind::Attestation)
        } else if SBOMS.contains(&bare) {
            Some(AttachmentKind::Sbom)
        } else {
            None
        }
    }

    /// The kinds `refs` (an attachment's manifest) has the shape of: by its
    /// artifact type or config type, and by its layers' types (a cosign
    /// signature is an image whose layer is a simple-signing payload).
    pub fn of(refs: &References) -> std::collections::BTreeSet<AttachmentKind> {
        refs.effective_artifact_type()
            .iter()
            .map(String::as_str)
            .chain(refs.blobs.iter().map(|b| b.media_type.as_str()))
            .filter_map(AttachmentKind::of_media_type)
            .collect()
    }

    /// For messages: `signature`, `attestation`, `SBOM`.
    pub fn name(self) -> &'static str {
        match self {
            AttachmentKind::Signature => "signature",
            AttachmentKind::Attestation => "attestation",
            AttachmentKind::Sbom => "SBOM",
        }
    }
}

/// Whether `refs` (a manifest found where `subject`'s attachments live) is
/// one of its attachments: a signature, attestation or SBOM (of `kind`,
/// when its place says which, as cosign's tag suffixes do), or of an
/// artifact type in `extra_types`, whose `subject`, when it names one, is
/// `subject`. A referrer (no `kind`) must name `subject`. `Err` says why not.
pub fn admit_attachment(
    refs: &References,
    subject: &Digest,
    kind: Option<AttachmentKind>,
    extra_types: &[String],
) -> Result<(), String> {
    let kinds = AttachmentKind::of(refs);
    let artifact_type = refs.effective_artifact_type();
    let extra = artifact_type
        .as_ref()
        .is_some_and(|t| extra_types.contains(t));
    match (&refs.subject, kind) {
        (Some(named), _) if named != subject => {
            Err(format!("its subject is {named}, not {subject}"))
        }
        (None, None) => Err(format!("it does not name {subject} as its subject")),
        _ if extra => Ok(()),
        (_, Some(kind)) if !kinds.contains(&kind) => Err(format!(
            "it is not a {} (artifact type {})",
            kind.name(),
            artifact_type.as_deref().unwrap_or("none")
        )),
        (_, None) if kinds.is_empty() => Err(format!(
            "its artifact type {} is no signature, attestation or SBOM type (admit it with \
             --attachment-type)",
            artifact_type.as_deref().unwrap_or("(none)")
        )),
        _ => Ok(()),
    }
}

/// The referrers tag schema's index for a registry without the referrers
/// API: `existing` (kept as it is, annotations and all) with `added` appended
/// to its `manifests`, or a new OCI index of `added` alone.
///
/// A new index and the added entries are oci-spec's model; an existing one
/// stays the JSON it is, since oci-spec's `ImageIndex` would drop the fields
/// it does not know and reorder annotations (a `HashMap`). Both are written
/// from a JSON value, whose keys serde_json keeps sorted: the bytes, and so
/// the digest, an index has always had.
pub fn extend_referrers_index(
    existing: Option<&RawManifest>,
    added: &[Descriptor],
    what: &str,
) -> Result<RawManifest, ContentError> {
    let malformed = |message: String| ContentError::Malformed {
        what: what.to_string(),
        message,
    };
    fn json(model: &impl serde::Serialize) -> serde_json::Value {
        serde_json::to_value(model).expect("oci-spec's model always serialises")
    }
    let mut index = match existing {
        Some(existing) => serde_json::from_slice::<serde_json::Value>(&existing.bytes)
            .map_err(|e| malformed(format!("referrers index is not JSON: {e}")))?,
        None => {
            let mut new = oci_spec::image::ImageIndex::default();
            new.set_media_type(Some(oci_spec::image::MediaType::ImageIndex));
            json(&new)
        }
    };
    let manifests = index
        .as_object_mut()
        .ok_or_else(|| malformed("referrers index is not a JSON object".to_string()))?
        .entry("manifests")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| malformed("referrers index has no `manifests` list".to_string()))?;
    manifests.extend(
        added
            .iter()
            .map(|d| json(&oci_spec::image::Descriptor::from(d))),
    );
    let bytes = serde_json::to_vec(&index).expect("a JSON value always serialises");
    Ok(RawManifest::new(bytes, media_type::OCI_INDEX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Algorithm;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn an_index_names_its_platforms() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{m}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},{{"mediaType":"{m}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            media_type::OCI_INDEX,
            d(1),
            d(2),
            m = media_type::OCI_MANIFEST,
        );
        let refs = references(&RawManifest::new(body, media_type::OCI_INDEX), "x").unwrap();
        assert_eq!(refs.platforms, vec!["linux/arm64/v8", "linux/amd64"]);
    }

    #[test]
    fn an_index_yields_its_children() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":10,"platform":{{"os":"linux"}}}}]}}"#,
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST,
            d(1)
        );
        let refs = references(&RawManifest::new(body, media_type::OCI_INDEX), "x").unwrap();
        assert_eq!(refs.manifests.len(), 1);
        assert_eq!(refs.manifests[0].digest.as_str(), d(1));
        assert!(refs.blobs.is_empty());
    }

    #[test]
    fn an_image_yields_config_then_layers_and_its_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c/d","digest":"{}","size":2}},"layers":[{{"mediaType":"l/x","digest":"{}","size":3}},{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":4,"urls":["https://x"]}}],"subject":{{"mediaType":"m/n","digest":"{}","size":5}}}}"#,
            d(1),
            d(2),
            d(3),
            d(4)
        );
        let refs = references(&RawManifest::new(body, media_type::OCI_MANIFEST), "x").unwrap();
        let digests: Vec<_> = refs.blobs.iter().map(|b| b.digest.to_string()).collect();
        assert_eq!(digests, vec![d(1), d(2), d(3)]);
        assert!(!refs.blobs[1].foreign);
        assert!(refs.blobs[2].foreign);
        assert_eq!(refs.subject.as_ref().unwrap().to_string(), d(4));
        assert_eq!(refs.effective_artifact_type().as_deref(), Some("c/d"));
    }

    #[test]
    fn the_specs_non_distributable_layers_are_foreign() {
        use oci_spec::image::MediaType;
        for t in [
            MediaType::ImageLayerNonDistributable,
            MediaType::ImageLayerNonDistributableGzip,
            MediaType::ImageLayerNonDistributableZstd,
            MediaType::Other("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into()),
        ] {
            let body = format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"c/d","digest":"{}","size":2}},"layers":[{{"mediaType":"{t}","digest":"{}","size":3}}]}}"#,
                d(1),
                d(2)
            );
            let refs = references(&RawManifest::new(body, media_type::OCI_MANIFEST), "x").unwrap();
            assert!(refs.blobs[1].foreign, "{t}");
        }
    }

    #[test]
    fn a_descriptor_is_written_as_the_oci_model_has_it() {
        for digest in [
            Digest::of(Algorithm::Sha256, b"x"),
            Digest::of(Algorithm::Sha512, b"x"),
        ] {
            let ours = Descriptor {
                artifact_type: Some("application/spdx+json".to_string()),
                ..Descriptor::new(digest.clone(), media_type::OCI_MANIFEST, 7)
            };
            let spec = oci_spec::image::Descriptor::from(&ours);
            assert_eq!(spec.digest().to_string(), digest.to_string());
            assert_eq!(spec.media_type().to_string(), media_type::OCI_MANIFEST);
            assert_eq!(spec.size(), 7);
            assert_eq!(
                spec.artifact_type()
                    .as_ref()
                    .map(ToString::to_string)
                    .as_deref(),
                Some("application/spdx+json")
            );
        }
    }

    #[test]
    fn an_artifact_type_wins_over_the_config_media_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"artifactType":"application/vnd.dev.sigstore.bundle","config":{{"mediaType":"c/d","digest":"{}","size":2}},"layers":[]}}"#,
            d(1)
        );
        let refs = references(&RawManifest::new(body, media_type::OCI_MANIFEST), "x").unwrap();
        assert_eq!(
            refs.effective_artifact_type().as_deref(),
            Some("application/vnd.dev.sigstore.bundle")
        );
    }

    #[test]
    fn referrers_index_entries_keep_their_artifact_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":10,"artifactType":"application/spdx+json"}}]}}"#,
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST,
            d(1)
        );
        let refs = references(&RawManifest::new(body, media_type::OCI_INDEX), "x").unwrap();
        assert_eq!(
            refs.manifests[0].artifact_type.as_deref(),
            Some("application/spdx+json")
        );
    }

    #[test]
    fn garbage_is_an_error_naming_the_manifest() {
        let err = references(
            &RawManifest::new("{not json", media_type::OCI_MANIFEST),
            "reg/foo@x",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("reg/foo@x"));
    }

    #[test]
    fn attachment_tags_fit_the_tag_grammar_for_every_algorithm() {
        let sha256 = Digest::of(Algorithm::Sha256, b"x");
        let sha512 = Digest::of(Algorithm::Sha512, b"x");
        assert_eq!(
            attachment_tag(&sha256, None).as_str(),
            format!("sha256-{}", sha256.hex())
        );
        assert_eq!(
            attachment_tag(&sha256, Some("sig")).as_str(),
            format!("sha256-{}.sig", sha256.hex())
        );
        // sha512: the hex is cut to 64 characters, so every suffix fits.
        let tag = attachment_tag(&sha512, Some("sbom"));
        assert_eq!(tag.as_str(), format!("sha512-{}.sbom", &sha512.hex()[..64]));
        assert!(tag.as_str().len() <= 128);
    }

    #[test]
    fn bytes_are_checked_against_their_digest() {
        let good = Digest::sha256_of(b"hello");
        assert!(check_bytes("b", &good, b"hello").is_ok());
        let Err(ContentError::DigestMismatch { actual, .. }) = check_bytes("b", &good, b"HELLO")
        else {
            panic!("a wrong body must be a mismatch");
        };
        assert_eq!(actual, Digest::sha256_of(b"HELLO"));
    }

    /// An SBOM (with its artifact type) and a referrer without one.
    fn two_referrers() -> (Descriptor, Descriptor) {
        let one = Descriptor {
            artifact_type: Some("application/spdx+json".to_string()),
            ..Descriptor::new(Digest::sha256_of(b"1"), media_type::OCI_MANIFEST, 10)
        };
        let two = Descriptor::new(Digest::sha256_of(b"2"), media_type::OCI_MANIFEST, 20);
        (one, two)
    }

    #[test]
    fn a_referrers_index_is_created_or_extended_keeping_what_was_there() {
        let (one, two) = two_referrers();
        let created = extend_referrers_index(None, std::slice::from_ref(&one), "x").unwrap();
        assert_eq!(created.media_type, media_type::OCI_INDEX);
        let refs = references(&created, "x").unwrap();
        assert_eq!(refs.manifests, vec![one.clone()]);

        let annotated = RawManifest::new(
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":10,"annotations":{{"k":"v"}}}}]}}"#,
                media_type::OCI_INDEX,
                media_type::OCI_MANIFEST,
                one.digest
            ),
            media_type::OCI_INDEX,
        );
        let extended =
            extend_referrers_index(Some(&annotated), std::slice::from_ref(&two), "x").unwrap();
        let text = String::from_utf8(extended.bytes.to_vec()).unwrap();
        assert!(text.contains(r#""annotations":{"k":"v"}"#), "{text}");
        let digests: Vec<_> = references(&extended, "x")
            .unwrap()
            .manifests
            .into_iter()
            .map(|d| d.digest)
            .collect();
        assert_eq!(digests, vec![one.digest, two.digest.clone()]);
        assert!(extend_referrers_index(Some(&RawManifest::new("[]", "x")), &[two], "x").is_err());
    }

    #[test]
    fn a_referrers_index_keeps_the_bytes_it_has_always_had() {
        // Its digest is what a registry without the referrers API is asked
        // for and compared against: the bytes must not drift.
        let (one, two) = two_referrers();
        let created = extend_referrers_index(None, std::slice::from_ref(&one), "x").unwrap();
        let entry = |d: &Descriptor, artifact: &str| {
            format!(
                r#"{{{artifact}"digest":"{}","mediaType":"{}","size":{}}}"#,
                d.digest, d.media_type, d.size
            )
        };
        let one_entry = entry(&one, r#""artifactType":"application/spdx+json","#);
        assert_eq!(
            String::from_utf8(created.bytes.to_vec()).unwrap(),
            format!(
                r#"{{"manifests":[{one_entry}],"mediaType":"{}","schemaVersion":2}}"#,
                media_type::OCI_INDEX
            )
        );
        let extended =
            extend_referrers_index(Some(&created), std::slice::from_ref(&two), "x").unwrap();
        assert_eq!(
            String::from_utf8(extended.bytes.to_vec()).unwrap(),
            format!(
                r#"{{"manifests":[{one_entry},{}],"mediaType":"{}","schemaVersion":2}}"#,
                entry(&two, ""),
                media_type::OCI_INDEX
            )
        );
    }

    fn image_body(layers_key: &str, extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"c/d","digest":"{}","size":2}},"{layers_key}":[{{"mediaType":"l/x","digest":"{}","size":3}}]{extra}}}"#,
            media_type::OCI_MANIFEST,
            d(1),
            d(2)
        )
    }

    #[test]
    fn keys_that_go_readers_fold_onto_ours_are_refused() {
        let ok = image_body("layers", "");
        assert_eq!(
            references(&RawManifest::new(ok, media_type::OCI_MANIFEST), "x")
                .unwrap()
                .blobs
                .len(),
            2
        );
        // "Layers", "LAYERS", and "layer\u{17F}" (long s) are all `layers`
        // to Go's encoding/json: a registry stores the layer, serde would not.
        for spelling in ["Layers", "LAYERS", "layer\u{17F}"] {
            let body = image_body(spelling, "");
            let err = references(&RawManifest::new(body, media_type::OCI_MANIFEST), "m")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("differs from \"layers\" only in case"),
                "{err}"
            );
        }
        // In a descriptor too: "Digest" beside "digest".
        let body = image_body("layers", "").replacen(r#""size":3"#, r#""size":3,"Digest":"x""#, 1);
        let err = references(&RawManifest::new(body, media_type::OCI_MANIFEST), "m").unwrap_err();
        assert!(err.to_string().contains("\"digest\""), "{err}");
        // Keys nobody reads are fine, whatever their case.
        let body = image_body("layers", r#","Custom":1,"x-Layerz":2"#);
        assert!(references(&RawManifest::new(body, media_type::OCI_MANIFEST), "m").is_ok());
    }

    #[test]
    fn a_key_twice_in_any_object_is_refused_with_where() {
        // Two "layers": Go takes the last (none here), a first-key reader the
        // layer: two readers, two images.
        let body = image_body("layers", r#","layers":[]"#);
        let err = references(
            &RawManifest::new(body.clone(), media_type::OCI_MANIFEST),
            "m",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("key \"layers\" appears twice"), "{err}");
        let at = body.rfind(r#""layers":[]"#).unwrap();
        assert!(err.contains("(byte "), "{err}");
        let said: usize = err
            .split("(byte ")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            said >= at && said <= at + 12,
            "byte {said} vs key at {at}: {err}"
        );
        // Deeper: a descriptor with two digests.
        let deep = image_body("layers", "").replacen(r#""size":3"#, r#""size":3,"size":4"#, 1);
        let err = references(&RawManifest::new(deep, media_type::OCI_MANIFEST), "m").unwrap_err();
        assert!(
            err.to_string().contains("key \"size\" appears twice"),
            "{err}"
        );
    }

    #[test]
    fn the_body_and_the_type_it_was_served_as_must_agree() {
        let body = image_body("layers", "");
        let err = references(&RawManifest::new(body, media_type::OCI_INDEX), "m").unwrap_err();
        assert!(err.to_string().contains("declares mediaType"), "{err}");
        // No mediaType field, but the shape of an image, served as an index.
        let body = image_body("layers", "").replacen(
            &format!(r#""mediaType":"{}","#, media_type::OCI_MANIFEST),
            "",
            1,
        );
        let err = references(&RawManifest::new(body, media_type::OCI_INDEX), "m").unwrap_err();
        assert!(err.to_string().contains("an index"), "{err}");
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":1}}]}}"#,
            media_type::OCI_MANIFEST,
            d(1)
        );
        let err =
            references(&RawManifest::new(index, media_type::DOCKER_MANIFEST), "m").unwrap_err();
        assert!(err.to_string().contains("with `manifests`"), "{err}");
    }

    #[test]
    fn media_types_with_control_characters_never_get_through() {
        let body = image_body("layers", "").replacen("l/x", r"l/x\r\nforged", 1);
        let err = references(&RawManifest::new(body, media_type::OCI_MANIFEST), "m")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a media type"), "{err}");
        assert!(!err.contains('\n') && !err.contains('\r'), "{err:?}");
        let served_as = "application/x\u{1b}[2K";
        let err = references(&RawManifest::new(image_body("layers", ""), served_as), "m")
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err:?}");
    }

    #[test]
    fn attachments_are_known_by_their_types_not_their_names() {
        let signature = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{}","size":3}}]}}"#,
            media_type::OCI_MANIFEST,
            d(1),
            d(2)
        );
        let refs = references(&RawManifest::new(signature, media_type::OCI_MANIFEST), "s").unwrap();
        assert_eq!(
            AttachmentKind::of(&refs),
            [AttachmentKind::Signature].into()
        );
        // An ordinary image pushed under a `.sig` tag is no signature.
        let image = image_body("layers", "");
        let refs = references(&RawManifest::new(image, media_type::OCI_MANIFEST), "i").unwrap();
        assert!(AttachmentKind::of(&refs).is_empty());
        for (t, kind) in [
            ("application/spdx+json", AttachmentKind::Sbom),
            ("application/vnd.cyclonedx+json", AttachmentKind::Sbom),
            (
                "application/vnd.dev.sigstore.bundle.v0.3+json",
                AttachmentKind::Signature,
            ),
            (
                "application/vnd.dev.sigstore.bundle+json;version=0.2",
                AttachmentKind::Signature,
            ),
            (
                "application/vnd.dsse.envelope.v1+json",
                AttachmentKind::Attestation,
            ),
        ] {
            assert_eq!(AttachmentKind::of_media_type(t), Some(kind), "{t}");
        }
        assert_eq!(
            AttachmentKind::of_media_type("application/vnd.example.thing"),
            None
        );
        assert_eq!(
            AttachmentKind::of_cosign_suffix("att"),
            Some(AttachmentKind::Attestation)
        );
        assert_eq!(AttachmentKind::of_cosign_suffix("exe"), None);
    }
}
