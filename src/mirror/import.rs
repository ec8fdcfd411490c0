//! `promoter import`: images found elsewhere (Kubernetes YAML) as a
//! mirroring intent, merged into the intent already written, and the one
//! writer of intent text; or, into a Sinker file, as Sinker's `update`
//! writes it. Pure: found images and an intent in, text out.

use crate::manifest::intent::sinker::{self, sinker_text, SinkerFile};
use crate::manifest::intent::{Intent, IntentImage, Located, PinnedDigest, Selectors};
use crate::manifest::model::RegistryEntry;
use crate::reference::{ImageReference, RegistryName};

use super::kubernetes::FoundImage;

/// Merge `found` into `existing` (the intent written before, kept as it
/// is), or into a new intent going to `target`. Each image is an exact tag
/// (or its digest, when the YAML pins one) of an entry for its source and
/// name, added to the entry with exact tags only that is already there;
/// the default source of a new intent is the one most images come from.
pub fn merge(found: &[FoundImage], existing: Option<Intent>, target: &RegistryName) -> Intent {
    let mut intent = existing.unwrap_or_else(|| new_intent(found, target));
    for image in found {
        add(&mut intent, image);
    }
    intent
}

fn new_intent(found: &[FoundImage], target: &RegistryName) -> Intent {
    let mut counts: Vec<(RegistryName, usize)> = Vec::new();
    for image in found {
        match counts
            .iter_mut()
            .find(|(r, _)| *r == image.reference.registry)
        {
            Some((_, n)) => *n += 1,
            None => counts.push((image.reference.registry.clone(), 1)),
        }
    }
    // Most images first; among equals, the first name in order.
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let source = counts
        .first()
        .map(|(r, _)| r.clone())
        .unwrap_or_else(|| RegistryName::parse("docker.io").expect("a registry name"));
    let file: std::sync::Arc<std::path::Path> = std::sync::Arc::from(std::path::Path::new("-"));
    let entry = |name: RegistryName| RegistryEntry {
        name,
        service_account: None,
        location: crate::diag::Location::file_only(file.clone()),
    };
    Intent {
        file: file.clone(),
        source: entry(source),
        destinations: vec![entry(target.clone())],
        images: Vec::new(),
        catalog: Vec::new(),
        format: crate::manifest::intent::Format::Intent,
        schedule: None,
    }
}

/// Only exact tags and digests: an entry an import may add to.
fn exact_only(select: &Selectors) -> bool {
    select.semver.is_none()
        && select.regex.is_empty()
        && select.exclude.is_empty()
        && select.latest.is_none()
        && select.platform.is_none()
}

fn add(intent: &mut Intent, found: &FoundImage) {
    let ImageReference {
        registry,
        name,
        tag,
        digest,
    } = &found.reference;
    let default_source = intent.source.name.clone();
    let source_of = |i: &IntentImage| i.source.clone().unwrap_or_else(|| default_source.clone());
    let at = found.location.clone();
    let entry = intent
        .images
        .iter()
        .position(|i| source_of(i) == *registry && i.name == *name && exact_only(&i.select));
    let index = match entry {
        Some(i) => i,
        None => {
            intent.images.push(IntentImage {
                name: name.clone(),
                target: None,
                source: (*registry != default_source).then(|| registry.clone()),
                destinations: None,
                select: Selectors::default(),
                follow: Vec::new(),
                location: at.clone(),
            });
            intent.images.len() - 1
        }
    };
    let select = &mut intent.images[index].select;
    match digest {
        Some(digest) => {
            if !select.digests.iter().any(|d| d.value.digest == *digest) {
                select.digests.push(Located {
                    value: PinnedDigest {
                        tag: tag.clone(),
                        digest: digest.clone(),
                    },
                    location: at,
                });
            }
        }
        None => {
            let tag = tag.clone().expect("a reference has a tag or a digest");
            if !select.tags.iter().any(|t| t.value == tag) {
                select.tags.push(Located {
                    value: tag,
                    location: at,
                });
            }
        }
    }
}

/// `text` as a YAML scalar: JSON's double-quoted strings are YAML's.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// An intent as YAML, every selector in the order the reader documents.
/// Comments of a file read before are not kept.
pub fn intent_text(intent: &Intent, header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    out.push_str(&format!(
        "registries:\n- name: {}\n  src: true\n",
        intent.source.name
    ));
    for d in &intent.destinations {
        out.push_str(&format!("- name: {}\n", d.name));
    }
    out.push_str("images:\n");
    for image in &intent.images {
        let s = &image.select;
        out.push_str(&format!("- name: {}\n", image.name));
        if let Some(target) = &image.target {
            out.push_str(&format!("  target: {target}\n"));
        }
        if let Some(source) = &image.source {
            out.push_str(&format!("  source: {source}\n"));
        }
        let mut tags: Vec<String> = s.tags.iter().map(|t| quoted(t.value.as_str())).collect();
        tags.extend(s.digests.iter().map(|d| {
            quoted(&match &d.value.tag {
                Some(tag) => format!("{tag}@{}", d.value.digest),
                None => d.value.digest.to_string(),
            })
        }));
        if !tags.is_empty() {
            out.push_str(&format!("  tags: [{}]\n", tags.join(", ")));
        }
        if let Some(range) = &s.semver {
            out.push_str(&format!("  semver: {}\n", quoted(&range.value)));
        }
        if s.prerelease {
            out.push_str("  prerelease: true\n");
        }
        for r in &s.regex {
            out.push_str(&format!("  regex: {}\n", quoted(&r.value)));
        }
        for r in &s.exclude {
            out.push_str(&format!("  exclude: {}\n", quoted(&r.value)));
        }
        if let Some(n) = &s.latest {
            out.push_str(&format!("  latest: {}\n", n.value));
        }
        if let Some(p) = &s.platform {
            out.push_str(&format!("  platforms: [{}]\n", quoted(&p.value)));
        }
        if !image.follow.is_empty() {
            let patterns: Vec<String> = image.follow.iter().map(|p| quoted(p.as_str())).collect();
            out.push_str(&format!("  follow: [{}]\n", patterns.join(", ")));
        }
    }
    out
}

/// Sinker's `update` (and `create`, from a file with only its target):
/// the Sinker file's sources become the images `found` (as written, in the
/// order found: [`super::kubernetes::sinker_images_in_paths`]), each
/// matched against what the file has as Sinker matches them; in Sinker's
/// format.
pub fn sinker_update(existing: &SinkerFile, found: &[String]) -> String {
    sinker_text(&existing.update(&sinker::dedupe(found)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::intent::load_text;
    use std::path::Path;

    fn found(text: &str, line: u32) -> FoundImage {
        let (reference, _) = ImageReference::parse_or_latest(text).unwrap();
        FoundImage {
            reference,
            written: text.to_string(),
            implied_latest: false,
            location: crate::diag::Location {
                file: std::sync::Arc::from(Path::new("deploy.yaml")),
                line,
                col: 12,
            },
        }
    }

    /// Sinker's acceptance tests CREATE example, CREATE other host and
    /// UPDATE (acceptance.bats): its bundles give its expected files, byte
    /// for byte (testdata/seeds/sinker/).
    #[test]
    fn sinkers_create_and_update_give_its_expected_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/seeds/sinker");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let created = |bundle: &str, target: &str| {
            let (images, diagnostics) =
                crate::mirror::kubernetes::sinker_images_in_paths(&[dir.join(bundle)]);
            assert!(diagnostics.is_empty(), "{diagnostics:?}");
            let file = SinkerFile {
                target: sinker::Target {
                    host: sinker::registry_path::host(target),
                    repository: sinker::registry_path::repository(target),
                    auth: Default::default(),
                },
                sources: Vec::new(),
            };
            sinker_update(&file, &images)
        };
        assert_eq!(
            created("example/bundle.yaml", "mycompany.com/myrepo"),
            read("example/.images.yaml")
        );
        assert_eq!(
            created("create/bundle.yaml", "myhost.com"),
            read("create/expected-images.yaml")
        );
        let (original, _) = sinker::load(&dir.join("update/original.yaml"));
        let (images, _) =
            crate::mirror::kubernetes::sinker_images_in_paths(&[dir.join("update/bundle.yaml")]);
        assert_eq!(
            sinker_update(&original.unwrap(), &images),
            read("update/expected.yaml")
        );
    }

    const DIGEST: &str = "sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097";

    #[test]
    fn found_images_become_exact_entries_below_the_most_common_source() {
        let images = [
            found("quay.io/prometheus/prometheus:v2.48.1", 1),
            found("nginx:1.25.3", 2),
            found("nginx:1.25.4", 3),
            found(&format!("registry.k8s.io/pause:3.9@{DIGEST}"), 4),
            found("redis:7.2.4", 5),
        ];
        let target = RegistryName::parse("registry.example/mirror").unwrap();
        let text = intent_text(&merge(&images, None, &target), "imported");
        assert_eq!(
            text,
            format!(
                "# imported\nregistries:\n- name: docker.io\n  src: true\n- name: registry.example/mirror\nimages:\n\
                 - name: prometheus/prometheus\n  source: quay.io\n  tags: [\"v2.48.1\"]\n\
                 - name: nginx\n  tags: [\"1.25.3\", \"1.25.4\"]\n\
                 - name: pause\n  source: registry.k8s.io\n  tags: [\"3.9@{DIGEST}\"]\n\
                 - name: redis\n  tags: [\"7.2.4\"]\n"
            )
        );
        // What is written reads back as the same intent.
        let (read, diagnostics) = load_text(Path::new("intent.yaml"), &text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(intent_text(&read.unwrap(), "imported"), text);
    }

    #[test]
    fn importing_again_keeps_what_was_there_and_adds_what_is_new() {
        let before =
            "registries:\n- name: docker.io\n  src: true\n- name: mirror.example\nimages:\n\
                      - name: nginx\n  semver: \">=1.25\"\n  latest: 2\n\
                      - name: redis\n  tags: [\"7.2.4\"]\n";
        let (existing, diagnostics) = load_text(Path::new("intent.yaml"), before);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let images = [
            found("redis:7.2.5", 1),
            found("redis:7.2.4", 2),
            found("nginx:1.27.0", 3),
        ];
        let target = RegistryName::parse("elsewhere.example").unwrap();
        let merged = merge(&images, existing, &target);
        let text = intent_text(&merged, "x");
        assert!(
            text.contains("- name: mirror.example\n"),
            "the intent's own destination stays: {text}"
        );
        assert!(
            text.contains("- name: nginx\n  semver: \">=1.25\"\n  latest: 2\n"),
            "{text}"
        );
        assert!(
            text.contains("- name: redis\n  tags: [\"7.2.4\", \"7.2.5\"]\n"),
            "{text}"
        );
        // A selector entry is not an exact one: the new tag gets its own.
        assert!(
            text.ends_with("- name: nginx\n  tags: [\"1.27.0\"]\n"),
            "{text}"
        );
    }
}
