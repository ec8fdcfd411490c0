//! What a manifest references: the one reader of manifest structure, used to
//! walk the copy graph (index -> child manifests; image -> config + layers)
//! and to find subjects. Unknown fields are ignored on purpose: the bytes are
//! copied as they are, we only need the edges.

use serde::Deserialize;

use crate::reference::Digest;
use crate::registry::{media_type, RawManifest, RegistryError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// Non-distributable ("foreign") layers carry URLs and may be absent from
    /// registries; they are copied when the source has them.
    pub foreign: bool,
}

/// The edges of one manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Child manifests (for an index or manifest list).
    pub manifests: Vec<Reference>,
    /// Blobs: the config, then the layers (for an image manifest).
    pub blobs: Vec<Reference>,
    /// The manifest this one is attached to (OCI 1.1 `subject`).
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
}

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    urls: Vec<String>,
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
    fn into_reference(self, what: &str) -> Result<Reference, RegistryError> {
        let digest = Digest::parse(&self.digest).map_err(|e| RegistryError::Invalid {
            what: what.to_string(),
            message: format!("bad digest in descriptor: {e}"),
        })?;
        let foreign = !self.urls.is_empty()
            || self.media_type.contains("foreign")
            || self.media_type.contains("nondistributable");
        Ok(Reference {
            digest,
            media_type: self.media_type,
            size: self.size,
            foreign,
        })
    }
}

/// Read the edges of `manifest`. `what` names it in errors.
pub fn references(manifest: &RawManifest, what: &str) -> Result<References, RegistryError> {
    let body: RawManifestBody =
        serde_json::from_slice(&manifest.bytes).map_err(|e| RegistryError::Invalid {
            what: what.to_string(),
            message: format!("manifest is not valid JSON: {e}"),
        })?;
    let is_index = media_type::is_index(&manifest.media_type)
        || body.media_type.as_deref().is_some_and(media_type::is_index)
        || (!body.manifests.is_empty() && body.config.is_none());
    let mut refs = References {
        artifact_type: body.artifact_type,
        ..References::default()
    };
    if let Some(subject) = body.subject {
        refs.subject = Some(subject.into_reference(what)?.digest);
    }
    if is_index {
        for child in body.manifests {
            refs.manifests.push(child.into_reference(what)?);
        }
    } else {
        if let Some(config) = body.config {
            refs.blobs.push(config.into_reference(what)?);
        }
        for layer in body.layers {
            refs.blobs.push(layer.into_reference(what)?);
        }
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
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
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":2}},"layers":[{{"mediaType":"l","digest":"{}","size":3}},{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":4,"urls":["https://x"]}}],"subject":{{"mediaType":"m","digest":"{}","size":5}}}}"#,
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
        assert_eq!(refs.subject.unwrap().to_string(), d(4));
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
}
