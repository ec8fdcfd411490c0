//! Manifest media types this tool understands the structure of, and the one
//! sniffer for bodies whose type was not given. Other types are still copied
//! byte for byte; they simply have no children we know of.
//!
//! The names are oci-spec's (`MediaType::ImageManifest`, `ImageIndex`, and
//! their Docker counterparts by `ToDockerV2S2`), pinned by a test; they are
//! `&str` constants here because `Accept` headers, [`ACCEPTED`] and `match`
//! arms need them at compile time, and a manifest's type stays the text it
//! was served with (RawManifest keeps it as a `String`).

use serde::Deserialize;

/// An OCI image manifest: a config and layers.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index: a list of manifests (usually one per platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// A Docker image manifest (schema 2), the OCI manifest's predecessor.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list, the OCI index's predecessor.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Bytes of no declared type.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Every manifest type we ask registries for, in `Accept` order.
pub const ACCEPTED: &[&str] = &[
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// Whether `media_type` is an index (OCI) or manifest list (Docker).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether `media_type` is an image manifest (OCI or Docker schema 2).
pub fn is_image_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// Whether `text` is a media type as RFC 6838 writes one (`type/subtype`,
/// restricted characters, optional `; parameter=value`s): what a
/// descriptor may carry into an index, a plan or a terminal.
pub fn is_valid(text: &str) -> bool {
    const MAX: usize = 255;
    let restricted = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    if text.len() > MAX {
        return false;
    }
    let mut parts = text.split(';');
    let Some((kind, subtype)) = parts.next().and_then(|t| t.trim().split_once('/')) else {
        return false;
    };
    restricted(kind)
        && restricted(subtype)
        && parts.all(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                restricted(k.trim()) && v.trim().bytes().all(|b| b.is_ascii_graphic() && b != b';')
            })
        })
}

/// What a manifest's own `mediaType` field says, or what its shape implies
/// when the field is absent (it is optional in OCI manifests): `manifests`
/// makes an index, `config` with `layers` an image manifest. `None` for
/// anything that is not a manifest, whoever asks (a registry that sent no
/// usable `Content-Type`, or a blob in an `oci:` tree).
pub fn sniff(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        config: Option<serde::de::IgnoredAny>,
        layers: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    match probe {
        Probe {
            media_type: Some(t),
            ..
        } if !t.is_empty() => Some(t),
        Probe {
            manifests: Some(_), ..
        } => Some(OCI_INDEX.to_string()),
        Probe {
            config: Some(_),
            layers: Some(_),
            ..
        } => Some(OCI_MANIFEST.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_type_wins() {
        assert_eq!(
            sniff(br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#)
                .as_deref(),
            Some(DOCKER_MANIFEST)
        );
    }

    #[test]
    fn the_shape_names_the_type_when_the_field_is_absent() {
        assert_eq!(sniff(br#"{"manifests":[]}"#).as_deref(), Some(OCI_INDEX));
        assert_eq!(
            sniff(br#"{"config":{},"layers":[]}"#).as_deref(),
            Some(OCI_MANIFEST)
        );
    }

    #[test]
    fn the_names_are_the_oci_specs() {
        use oci_spec::image::{MediaType, ToDockerV2S2};
        assert_eq!(OCI_MANIFEST, MediaType::ImageManifest.as_ref());
        assert_eq!(OCI_INDEX, MediaType::ImageIndex.as_ref());
        assert_eq!(
            MediaType::ImageManifest.to_docker_v2s2(),
            Ok(DOCKER_MANIFEST)
        );
        assert_eq!(
            MediaType::ImageIndex.to_docker_v2s2(),
            Ok(DOCKER_MANIFEST_LIST)
        );
        for t in ACCEPTED {
            assert!(is_valid(t), "{t}");
        }
    }

    #[test]
    fn media_types_follow_the_rfc_6838_grammar() {
        for ok in [
            OCI_MANIFEST,
            "application/vnd.dev.cosign.simplesigning.v1+json",
            "text/plain; charset=utf-8",
            "application/vnd.in-toto+json",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "application",
            "/json",
            "application/json\r\nresult: done",
            "application/\u{1b}[2Kx",
            "a/b; broken",
            &"a/".repeat(200),
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn what_is_not_a_manifest_has_no_type() {
        assert_eq!(sniff(b"{}"), None);
        assert_eq!(sniff(br#"{"mediaType":""}"#), None);
        assert_eq!(sniff(b"\x1f\x8b binary layer"), None);
        assert_eq!(sniff(br#"{"config":{}}"#), None);
    }
}
