//! Deterministic test images: manifests, configs and layers built from a seed,
//! so that every test, benchmark and fixture sees the same bytes and digests
//! on every run.
//!
//! Pure data: nothing here depends on a `Registry` implementation. Two ways
//! out are offered: [`write_oci_layout`] writes plain files (to seed an `oci:`
//! tree, or a real registry through `skopeo copy oci:DIR:tag docker://…`,
//! independently of our code), and [`push`] goes through the `Registry` trait.
//!
//! Layers are seeded pseudo-random bytes: a registry only cares that they hash
//! to their digest. Manifests and configs are valid JSON, so real clients
//! (skopeo, the CNCF registry) accept them.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use promoter::reference::{Algorithm, Digest, DigestHasher, ManifestRef, Repository, Tag};
use promoter::registry::{
    media_type, BlobOpener, BlobStream, BlobUpload, RawManifest, Registry, RegistryError,
};
use serde_json::{json, Value};

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker schema 2 knows no uncompressed layer type; the bytes are still
/// random, which no registry checks.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const COSIGN_SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation that names a tag in an OCI layout's index.json.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Chunk size used when a blob is handed out as a stream: small enough that
/// the consumer sees several chunks even for modest blobs, a multiple of 8 so
/// that streamed and in-memory generation produce the same bytes.
const STREAM_CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------- randomness

/// SplitMix64: tiny, seedable and fast enough to fill 64 MiB in well under a
/// second, even in an unoptimised test build. Not for anything but test data.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fill `buf`. Filling in pieces whose lengths are multiples of 8 yields
    /// the same bytes as one call over the whole length.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let word = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&word[..rest.len()]);
        }
    }
}

/// Derive an independent seed from `seed` and a `salt` (a layer index, a
/// platform number…), so that related objects don't share bytes by accident.
pub fn derive_seed(seed: u64, salt: u64) -> u64 {
    Prng::new(seed ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

/// `len` seeded pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    Prng::new(seed).fill(&mut buf);
    buf
}

// ---------------------------------------------------------------- blobs

/// A blob with its digest and the media type descriptors give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestBlob {
    pub digest: Digest,
    pub bytes: Bytes,
    pub media_type: String,
}

impl TestBlob {
    pub fn new(bytes: impl Into<Bytes>, media_type: impl Into<String>) -> TestBlob {
        let bytes = bytes.into();
        TestBlob {
            digest: Digest::sha256_of(&bytes),
            bytes,
            media_type: media_type.into(),
        }
    }

    /// A layer of `size` seeded random bytes (`application/vnd.oci.image.layer.v1.tar`).
    pub fn layer(seed: u64, size: usize) -> TestBlob {
        TestBlob::new(random_bytes(seed, size), OCI_LAYER_TAR)
    }

    /// A layer that is a real (uncompressed) tar file holding one file of
    /// `size` seeded random bytes, so that a client which unpacks layers
    /// (podman) can; its digest is its diff_id, as the image config says.
    pub fn tar_layer(seed: u64, size: usize) -> TestBlob {
        TestBlob::new(
            tar_of_one_file(&format!("file-{seed}"), &random_bytes(seed, size)),
            OCI_LAYER_TAR,
        )
    }

    /// The OCI empty descriptor's blob, `{}`, used as an artifact's config.
    pub fn empty_config() -> TestBlob {
        TestBlob::new(&b"{}"[..], OCI_EMPTY)
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The same bytes under another media type (a layer reused in a Docker image).
    pub fn with_media_type(&self, media_type: &str) -> TestBlob {
        TestBlob {
            media_type: media_type.to_string(),
            ..self.clone()
        }
    }

    pub fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest.as_str(),
            "size": self.size(),
        })
    }

    /// A re-openable stream over the bytes, in several chunks.
    pub fn opener(&self) -> BlobOpener {
        bytes_opener(self.bytes.clone())
    }

    /// What `Registry::put_blob` needs to store this blob.
    pub fn upload(&self, mount_from: Option<&Repository>) -> BlobUpload {
        BlobUpload {
            digest: self.digest.clone(),
            size: self.size(),
            mount_from: mount_from.cloned(),
            open: self.opener(),
        }
    }
}

/// A ustar archive of one regular file: a 512-byte header, the content
/// padded to 512 bytes, and the two zero blocks that end an archive.
fn tar_of_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut field =
        |offset: usize, value: &[u8]| header[offset..offset + value.len()].copy_from_slice(value);
    field(0, name.as_bytes());
    field(100, b"0000644\0");
    field(108, b"0000000\0");
    field(116, b"0000000\0");
    field(124, format!("{:011o}\0", content.len()).as_bytes());
    field(136, b"00000000000\0");
    field(156, b"0");
    field(257, b"ustar\0");
    field(263, b"00");
    // The checksum is taken with its own field read as spaces.
    field(148, b"        ");
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    let padded = content.len().div_ceil(512) * 512;
    let mut archive = header.to_vec();
    archive.extend_from_slice(content);
    archive.resize(512 + padded + 1024, 0);
    archive
}

/// An opener that streams `bytes` in [`STREAM_CHUNK`] pieces; each call
/// starts over, as a retrying uploader requires.
pub fn bytes_opener(bytes: Bytes) -> BlobOpener {
    Arc::new(move || {
        let bytes = bytes.clone();
        async move { Ok(chunked_stream(bytes)) }.boxed()
    })
}

/// `bytes` as a [`BlobStream`] of [`STREAM_CHUNK`]-sized slices (no copies).
pub fn chunked_stream(bytes: Bytes) -> BlobStream {
    let mut chunks = Vec::with_capacity(bytes.len() / STREAM_CHUNK + 1);
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + STREAM_CHUNK).min(bytes.len());
        chunks.push(Ok(bytes.slice(at..end)));
        at = end;
    }
    Box::pin(futures::stream::iter(chunks))
}

/// A large layer that is never held in memory: its bytes are generated
/// again for every read. Same seed and size give the same bytes (and digest)
/// as [`TestBlob::layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedLayer {
    pub seed: u64,
    pub size: u64,
    pub digest: Digest,
    pub media_type: String,
}

impl StreamedLayer {
    /// Generates the bytes once to learn the digest (bounded memory).
    pub fn new(seed: u64, size: u64) -> StreamedLayer {
        let mut hasher = DigestHasher::new(Algorithm::Sha256);
        let mut prng = Prng::new(seed);
        let mut buf = vec![0u8; STREAM_CHUNK];
        let mut left = size;
        while left > 0 {
            let n = left.min(STREAM_CHUNK as u64) as usize;
            prng.fill(&mut buf[..n]);
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        StreamedLayer {
            seed,
            size,
            digest: hasher.finish(),
            media_type: OCI_LAYER_TAR.to_string(),
        }
    }

    pub fn stream(&self) -> BlobStream {
        let state = (Prng::new(self.seed), self.size);
        Box::pin(futures::stream::unfold(
            state,
            |(mut prng, left)| async move {
                if left == 0 {
                    return None;
                }
                let n = left.min(STREAM_CHUNK as u64) as usize;
                let mut buf = vec![0u8; n];
                prng.fill(&mut buf);
                Some((Ok(Bytes::from(buf)), (prng, left - n as u64)))
            },
        ))
    }

    pub fn opener(&self) -> BlobOpener {
        let this = self.clone();
        Arc::new(move || {
            let stream = this.stream();
            async move { Ok(stream) }.boxed()
        })
    }

    pub fn upload(&self, mount_from: Option<&Repository>) -> BlobUpload {
        BlobUpload {
            digest: self.digest.clone(),
            size: self.size,
            mount_from: mount_from.cloned(),
            open: self.opener(),
        }
    }
}

// ---------------------------------------------------------------- images

/// Where an image in an index runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn linux(architecture: &str) -> Platform {
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    pub fn linux_variant(architecture: &str, variant: &str) -> Platform {
        Platform {
            variant: Some(variant.into()),
            ..Platform::linux(architecture)
        }
    }

    pub fn json(&self) -> Value {
        let mut p = json!({ "os": self.os, "architecture": self.architecture });
        if let Some(v) = &self.variant {
            p["variant"] = json!(v);
        }
        p
    }
}

/// The flavour of manifest to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Oci,
    Docker,
}

/// A manifest with everything it references: its config and layers for an
/// image, its child manifests for an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestImage {
    pub manifest: RawManifest,
    /// `None` for an index.
    pub config: Option<TestBlob>,
    pub layers: Vec<TestBlob>,
    /// For an index: the images it lists, in order.
    pub children: Vec<TestImage>,
    /// The platform an index lists this image under.
    pub platform: Option<Platform>,
    /// `artifactType` for an OCI 1.1 artifact, as a referrers list reports it.
    pub artifact_type: Option<String>,
}

fn manifest_from_json(value: &Value, media_type: &str) -> RawManifest {
    // serde_json writes maps in a fixed order, so the bytes (and digest) are
    // stable for a given value.
    let bytes = serde_json::to_vec_pretty(value).expect("serialising a JSON value cannot fail");
    RawManifest::new(bytes, media_type)
}

fn image_config(seed: u64, platform: &Platform, layers: &[TestBlob]) -> Value {
    // Layers are uncompressed (random bytes, or a real tar from
    // `TestBlob::tar_layer`), so diff_ids are simply their digests.
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let mut config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {
            "Labels": { "org.example.test-seed": seed.to_string() }
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": layers.iter().map(|_| json!({
            "created": "2024-01-01T00:00:00Z",
            "created_by": "promoter test image builder"
        })).collect::<Vec<_>>(),
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    config
}

impl TestImage {
    /// An image of the given flavour from explicit layers (their media types
    /// are rewritten to the flavour's layer type).
    pub fn image(
        seed: u64,
        flavor: Flavor,
        platform: Platform,
        layers: Vec<TestBlob>,
    ) -> TestImage {
        let (manifest_type, config_type, layer_type) = match flavor {
            Flavor::Oci => (media_type::OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_TAR),
            Flavor::Docker => (
                media_type::DOCKER_MANIFEST,
                DOCKER_CONFIG,
                DOCKER_LAYER_GZIP,
            ),
        };
        let layers: Vec<TestBlob> = layers
            .into_iter()
            .map(|l| l.with_media_type(layer_type))
            .collect();
        let config_json = image_config(seed, &platform, &layers);
        let config = TestBlob::new(
            serde_json::to_vec(&config_json).expect("serialising a JSON value cannot fail"),
            config_type,
        );
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(TestBlob::descriptor).collect::<Vec<_>>(),
        });
        TestImage {
            manifest: manifest_from_json(&manifest, manifest_type),
            config: Some(config),
            layers,
            children: Vec::new(),
            platform: Some(platform),
            artifact_type: None,
        }
    }

    /// An OCI linux/amd64 image with one layer of `layer_size` random bytes.
    pub fn single_layer(seed: u64, layer_size: usize) -> TestImage {
        TestImage::layered(seed, 1, layer_size, None)
    }

    /// An OCI linux/amd64 image with `base` (if any) as its first layer, then
    /// `n_layers` own layers of `layer_size` bytes each. Images built on the
    /// same base share that blob, as real images do.
    pub fn layered(
        seed: u64,
        n_layers: usize,
        layer_size: usize,
        base: Option<&TestBlob>,
    ) -> TestImage {
        TestImage::layered_for(
            seed,
            Flavor::Oci,
            Platform::linux("amd64"),
            n_layers,
            layer_size,
            base,
        )
    }

    pub fn layered_for(
        seed: u64,
        flavor: Flavor,
        platform: Platform,
        n_layers: usize,
        layer_size: usize,
        base: Option<&TestBlob>,
    ) -> TestImage {
        let mut layers: Vec<TestBlob> = base.cloned().into_iter().collect();
        layers.extend(
            (0..n_layers).map(|i| TestBlob::layer(derive_seed(seed, i as u64 + 1), layer_size)),
        );
        TestImage::image(seed, flavor, platform, layers)
    }

    /// An index (OCI image index or Docker manifest list, after `flavor`)
    /// listing `children` under their platforms.
    pub fn index_of(flavor: Flavor, children: Vec<TestImage>) -> TestImage {
        let index_type = match flavor {
            Flavor::Oci => media_type::OCI_INDEX,
            Flavor::Docker => media_type::DOCKER_MANIFEST_LIST,
        };
        let entries: Vec<Value> = children
            .iter()
            .map(|c| {
                let mut d = c.descriptor();
                if let Some(p) = &c.platform {
                    d["platform"] = p.json();
                }
                d
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": index_type,
            "manifests": entries,
        });
        TestImage {
            manifest: manifest_from_json(&manifest, index_type),
            config: None,
            layers: Vec::new(),
            children,
            platform: None,
            artifact_type: None,
        }
    }

    /// A multi-arch index with one single-layer image per platform.
    pub fn multi_arch(
        seed: u64,
        flavor: Flavor,
        platforms: &[Platform],
        layer_size: usize,
    ) -> TestImage {
        let children = platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                TestImage::layered_for(
                    derive_seed(seed, 1000 + i as u64),
                    flavor,
                    p.clone(),
                    1,
                    layer_size,
                    None,
                )
            })
            .collect();
        TestImage::index_of(flavor, children)
    }

    /// OCI index of linux/amd64 and linux/arm64/v8 images.
    pub fn oci_index(seed: u64, layer_size: usize) -> TestImage {
        TestImage::multi_arch(seed, Flavor::Oci, &default_platforms(), layer_size)
    }

    /// Docker manifest list of linux/amd64 and linux/arm64/v8 images.
    pub fn docker_list(seed: u64, layer_size: usize) -> TestImage {
        TestImage::multi_arch(seed, Flavor::Docker, &default_platforms(), layer_size)
    }

    /// A cosign-style signature for `subject`, as cosign pushes it under the
    /// tag [`cosign_tag`]`(subject, "sig")`: an OCI manifest whose one layer is
    /// the simple-signing payload, with the signature in an annotation.
    pub fn cosign_signature(seed: u64, subject: &Digest) -> TestImage {
        let payload = json!({
            "critical": {
                "identity": { "docker-reference": "example.test/image" },
                "image": { "docker-manifest-digest": subject.as_str() },
                "type": "cosign container image signature"
            },
            "optional": { "seed": seed.to_string() }
        });
        let layer = TestBlob::new(
            serde_json::to_vec(&payload).expect("serialising a JSON value cannot fail"),
            COSIGN_SIMPLESIGNING,
        );
        let config_json = json!({
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer.digest.as_str()] }
        });
        let config = TestBlob::new(
            serde_json::to_vec(&config_json).expect("serialising a JSON value cannot fail"),
            OCI_CONFIG,
        );
        let signature = hex::encode(random_bytes(derive_seed(seed, 7), 64));
        let mut layer_desc = layer.descriptor();
        layer_desc["annotations"] = json!({ "dev.cosignproject.cosign/signature": signature });
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer_desc],
        });
        TestImage {
            manifest: manifest_from_json(&manifest, media_type::OCI_MANIFEST),
            config: Some(config),
            layers: vec![layer],
            children: Vec::new(),
            platform: None,
            artifact_type: None,
        }
    }

    /// An OCI 1.1 artifact (empty config, one small layer) whose `subject` is
    /// `subject`: what the referrers API lists.
    pub fn artifact(seed: u64, artifact_type: &str, subject: &RawManifest) -> TestImage {
        let config = TestBlob::empty_config();
        let layer = TestBlob::new(
            serde_json::to_vec(&json!({ "artifact": artifact_type, "seed": seed.to_string() }))
                .expect("serialising a JSON value cannot fail"),
            "application/json",
        );
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest.as_str(),
                "size": subject.bytes.len(),
            },
            "annotations": { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
        });
        TestImage {
            manifest: manifest_from_json(&manifest, media_type::OCI_MANIFEST),
            config: Some(config),
            layers: vec![layer],
            children: Vec::new(),
            platform: None,
            artifact_type: Some(artifact_type.to_string()),
        }
    }

    /// The OCI 1.1 referrers tag-schema fallback: an index, to be tagged
    /// [`referrers_tag`]`(subject)`, listing `referrers` with their
    /// `artifactType`. Its children are the referrers themselves.
    pub fn referrers_index(referrers: Vec<TestImage>) -> TestImage {
        let entries: Vec<Value> = referrers
            .iter()
            .map(|r| {
                let mut d = r.descriptor();
                if let Some(t) = &r.artifact_type {
                    d["artifactType"] = json!(t);
                }
                d
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": entries,
        });
        TestImage {
            manifest: manifest_from_json(&manifest, media_type::OCI_INDEX),
            config: None,
            layers: Vec::new(),
            children: referrers,
            platform: None,
            artifact_type: None,
        }
    }

    pub fn digest(&self) -> &Digest {
        &self.manifest.digest
    }

    pub fn media_type(&self) -> &str {
        &self.manifest.media_type
    }

    pub fn size(&self) -> u64 {
        self.manifest.bytes.len() as u64
    }

    /// `{mediaType, digest, size}` of the manifest, for an index entry.
    pub fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.manifest.media_type,
            "digest": self.manifest.digest.as_str(),
            "size": self.size(),
        })
    }

    /// This manifest's own blobs: config, then layers.
    pub fn own_blobs(&self) -> Vec<&TestBlob> {
        self.config.iter().chain(self.layers.iter()).collect()
    }

    /// Every manifest node, children before their parents (the order a
    /// registry accepts them in), each digest once.
    pub fn nodes_bottom_up(&self) -> Vec<&TestImage> {
        fn walk<'a>(img: &'a TestImage, seen: &mut BTreeSet<Digest>, out: &mut Vec<&'a TestImage>) {
            for child in &img.children {
                walk(child, seen, out);
            }
            if seen.insert(img.manifest.digest.clone()) {
                out.push(img);
            }
        }
        let mut out = Vec::new();
        walk(self, &mut BTreeSet::new(), &mut out);
        out
    }

    /// Every blob referenced anywhere below this manifest, each digest once.
    pub fn all_blobs(&self) -> Vec<&TestBlob> {
        let mut seen = BTreeSet::new();
        self.nodes_bottom_up()
            .into_iter()
            .flat_map(TestImage::own_blobs)
            .filter(|b| seen.insert(b.digest.clone()))
            .collect()
    }

    /// Every manifest below and including this one, children first.
    pub fn all_manifests(&self) -> Vec<&RawManifest> {
        self.nodes_bottom_up()
            .into_iter()
            .map(|n| &n.manifest)
            .collect()
    }
}

fn default_platforms() -> [Platform; 2] {
    [
        Platform::linux("amd64"),
        Platform::linux_variant("arm64", "v8"),
    ]
}

/// The tag cosign uses for an attachment of `subject`: `sha256-<hex>.<suffix>`
/// (`sig`, `att`, `sbom`).
pub fn cosign_tag(subject: &Digest, suffix: &str) -> String {
    format!(
        "{}-{}.{suffix}",
        subject.algorithm().as_str(),
        subject.hex()
    )
}

/// The OCI 1.1 referrers fallback tag for `subject`: `sha256-<hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().as_str(), subject.hex())
}

pub fn tag_ref(tag: &str) -> ManifestRef {
    ManifestRef::Tag(Tag::parse(tag).unwrap_or_else(|e| panic!("test tag {tag:?}: {e}")))
}

pub fn digest_ref(digest: &Digest) -> ManifestRef {
    ManifestRef::Digest(digest.clone())
}

// ---------------------------------------------------------------- output

fn invalid_data(path: &Path, message: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {message}", path.display()),
    )
}

/// The directory of repository `repo` (`a/b`) under an `oci:` root.
pub fn repo_dir(root: &Path, repo: &str) -> PathBuf {
    repo.split('/').fold(root.to_path_buf(), |p, c| p.join(c))
}

/// The path of a blob in a repository's layout.
pub fn blob_path(root: &Path, repo: &str, digest: &Digest) -> PathBuf {
    repo_dir(root, repo)
        .join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

/// Write `images` into the OCI image layout of `repo` under `root` with plain
/// file operations (no `Registry` code involved). Each image is an
/// index.json entry, annotated with its tag when it has one, or left untagged
/// (promote by digest). Children of an index are stored as blobs only, as an
/// OCI layout does. An existing layout is extended: blobs already there are
/// kept, and a tag written again moves to its new entry.
pub fn write_oci_layout(
    root: &Path,
    repo: &str,
    images: &[(&TestImage, Option<&str>)],
) -> io::Result<()> {
    let dir = repo_dir(root, repo);
    std::fs::create_dir_all(dir.join("blobs").join("sha256"))?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;

    for (image, _) in images {
        for blob in image.all_blobs() {
            write_blob_if_missing(root, repo, &blob.digest, &blob.bytes)?;
        }
        for manifest in image.all_manifests() {
            write_blob_if_missing(root, repo, &manifest.digest, &manifest.bytes)?;
        }
    }

    let index_path = dir.join("index.json");
    let mut entries: Vec<Value> = match std::fs::read(&index_path) {
        Ok(bytes) => {
            let index: Value =
                serde_json::from_slice(&bytes).map_err(|e| invalid_data(&index_path, e))?;
            match index.get("manifests") {
                Some(Value::Array(entries)) => entries.clone(),
                None => Vec::new(),
                Some(_) => return Err(invalid_data(&index_path, "\"manifests\" is not an array")),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    for (image, tag) in images {
        let mut entry = image.descriptor();
        match tag {
            Some(tag) => {
                entries.retain(|e| e["annotations"][REF_NAME].as_str() != Some(tag));
                entry["annotations"] = json!({ REF_NAME: tag });
            }
            None => {
                // One untagged entry per digest is enough to keep it reachable.
                let digest = image.digest().as_str();
                if entries.iter().any(|e| e["digest"].as_str() == Some(digest)) {
                    continue;
                }
            }
        }
        entries.push(entry);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": entries,
    });
    let bytes = serde_json::to_vec_pretty(&index).map_err(|e| invalid_data(&index_path, e))?;
    std::fs::write(&index_path, bytes)
}

fn write_blob_if_missing(root: &Path, repo: &str, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
    let path = blob_path(root, repo, digest);
    if path.exists() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

/// Push `image` to `repo` through the `Registry` trait, in the order a
/// registry requires: for each manifest (children first), its blobs, then the
/// manifest by digest; the tag, if any, last.
pub async fn push(
    registry: &dyn Registry,
    repo: &str,
    image: &TestImage,
    tag: Option<&str>,
) -> Result<(), RegistryError> {
    let repo = &registry.repository(repo).expect("a valid repository path");
    for node in image.nodes_bottom_up() {
        for blob in node.own_blobs() {
            registry.put_blob(repo, &blob.upload(None)).await?;
        }
        registry
            .put_manifest(repo, &digest_ref(node.digest()), &node.manifest)
            .await?;
    }
    if let Some(tag) = tag {
        registry
            .put_manifest(repo, &tag_ref(tag), &image.manifest)
            .await?;
    }
    Ok(())
}

/// Names a repository on a registry in a test: `reg.at("team/app")`.
pub trait At {
    /// The repository `path` on this registry (a test names valid paths).
    fn at(&self, path: &str) -> Repository;
}

impl<R: Registry + ?Sized> At for R {
    fn at(&self, path: &str) -> Repository {
        self.repository(path)
            .unwrap_or_else(|e| panic!("{path:?} is no repository path: {}", e.message))
    }
}

/// The paths of listed repositories, for comparing with names.
pub fn paths(repos: Vec<Repository>) -> Vec<String> {
    repos.iter().map(|r| r.path().to_string()).collect()
}
