//! Any text as a digest, tag, image name or registry name: the parsers must
//! never panic, and whatever parses must display back to text that parses
//! to the same value (names are stored and compared by their display form,
//! and they travel through manifests, snapshots and plan files as text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use promoter::reference::{Digest, ImageName, ManifestRef, RegistryName, Tag};

/// `parse(display(parse(text)))` is the value `parse(text)` gave.
fn round_trips<T, E>(text: &str, parse: impl Fn(&str) -> Result<T, E>) -> Option<T>
where
    T: std::fmt::Display + std::fmt::Debug + PartialEq,
    E: std::fmt::Debug,
{
    let value = parse(text).ok()?;
    let shown = value.to_string();
    match parse(&shown) {
        Ok(again) => assert_eq!(again, value, "{text:?} displays as {shown:?}"),
        Err(e) => panic!("{text:?} parsed, but its display {shown:?} does not: {e:?}"),
    }
    Some(value)
}

/// What goes between `/manifests/` and the end of a request path.
fn url_path_safe(shown: &str) -> bool {
    !shown.is_empty() && !shown.contains(['/', '?', '#', '%', ' '])
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(digest) = round_trips(text, Digest::parse) {
        assert_eq!(digest.as_str(), text, "a digest is stored as written");
        let hex = digest.hex();
        assert_eq!(hex.len(), digest.algorithm().hex_len());
        let shown = ManifestRef::Digest(digest.clone()).to_string();
        assert_eq!(shown, text);
        assert!(url_path_safe(&shown), "{shown:?}");
    }
    if let Some(tag) = round_trips(text, Tag::parse) {
        assert!(tag.as_str().len() <= Tag::MAX_LEN);
        let shown = ManifestRef::Tag(tag.clone()).to_string();
        assert_eq!(shown, text);
        assert!(url_path_safe(&shown), "{shown:?}");
    }
    let image = round_trips(text, ImageName::parse);
    if let Some(image) = &image {
        assert!(!image.as_str().contains("//") && !image.as_str().contains(".."));
    }
    if let Some(registry) = round_trips(text, RegistryName::parse) {
        // Input is often `registry/image`: the repository it builds is an
        // image name again (what the remote API and layout paths assume).
        if let Some(image) = &image {
            let repository = registry.repository(image).path().to_string();
            if !registry.prefix.is_empty() || repository.starts_with("library/") {
                assert!(
                    ImageName::parse(&repository).is_ok() || repository.len() > 255,
                    "{registry} + {image} gives {repository:?}"
                );
            }
        }
        assert_eq!(registry.sub_path_of(&registry), Some(""));
    }
    // The whole input as `registry/image` split at every '/'.
    for (at, _) in text.match_indices('/') {
        let (left, right) = (&text[..at], &text[at + 1..]);
        if let (Ok(registry), Ok(image)) = (RegistryName::parse(left), ImageName::parse(right)) {
            let repository = registry.repository(&image);
            assert!(repository.path().ends_with(image.as_str()));
            if let Ok(whole) = RegistryName::parse(text) {
                // `gcr.io/a` + `b` and `gcr.io/a/b` address the same path.
                assert_eq!(
                    whole.sub_path_of(&whole),
                    Some(""),
                    "{text:?} as one registry"
                );
                assert!(
                    registry.sub_path_of(&whole).is_some() || registry.endpoint != whole.endpoint,
                    "{left:?} should contain {text:?}"
                );
            }
        }
    }
});
