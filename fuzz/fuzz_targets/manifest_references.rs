//! Any bytes as a manifest body under each media type the promoter asks
//! for: `oci::references` (the one reader of manifest edges) must never
//! panic, and the edges it returns must be of the right kind: an index has
//! children and no blobs, an image blobs and no children.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promoter::oci::references;
use promoter::oci::{media_type, RawManifest};

const MEDIA_TYPES: &[&str] = &[
    media_type::OCI_INDEX,
    media_type::OCI_MANIFEST,
    media_type::DOCKER_MANIFEST_LIST,
    media_type::DOCKER_MANIFEST,
    media_type::OCTET_STREAM,
    "",
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the media type the registry announced.
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let announced = MEDIA_TYPES[pick as usize % MEDIA_TYPES.len()];
    let manifest = RawManifest::new(body.to_vec(), announced);
    let Ok(refs) = references(&manifest, "fuzz") else {
        return;
    };
    assert!(
        refs.manifests.is_empty() || refs.blobs.is_empty(),
        "both children and blobs: {refs:?}"
    );
    if media_type::is_index(announced) {
        assert!(refs.blobs.is_empty(), "an index with blobs: {refs:?}");
    }
    for edge in refs.manifests.iter().chain(&refs.blobs) {
        // Digests are valid by construction; the type is kept as given.
        assert_eq!(
            promoter::reference::Digest::parse(edge.digest.as_str()).as_ref(),
            Ok(&edge.digest)
        );
    }
});
