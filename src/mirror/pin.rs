//! `promoter pin`: resolve an intent against its sources into digest-pinned
//! CIP manifests (a lock file). Reads the source's tag list where a
//! selector needs it and one HEAD per chosen tag (a GET for an index when a
//! platform is chosen); never a blob.
//!
//! Pinning again keeps every digest the previous lock has and adds what is
//! new. A tag the lock already pins is never moved to what the source now
//! says: the digest a tag had when it was reviewed is the one promoted, and
//! a source that re-pointed it is reported.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};

use super::select::{choose, compile, Compiled};
use crate::diag::Diagnostic;
use crate::manifest::intent::{Intent, IntentImage};
use crate::manifest::Manifest;
use crate::oci::{self, media_type};
use crate::reference::{Digest, ImageName, ManifestRef, RegistryName, Tag};
use crate::registry::{Registries, Registry, RegistryError};

/// One pinned manifest: a source, its destinations, and per image the
/// digests with their tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// Where the images are read from.
    pub source: RegistryName,
    /// Where they go.
    pub destinations: Vec<RegistryName>,
    /// Image -> digest -> what the entry says.
    pub images: BTreeMap<ImageName, BTreeMap<Digest, Pin>>,
}

/// One pinned digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pin {
    /// Its tags.
    pub tags: BTreeSet<Tag>,
    /// A note written beside it (the platform and index it was taken from).
    pub comment: Option<String>,
}

/// Something pinning found worth saying, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The source re-pointed a pinned tag; the lock keeps the reviewed digest.
    Moved {
        /// `source/image:tag`.
        reference: String,
        /// The digest the lock keeps.
        kept: Digest,
        /// What the source has now.
        now: Digest,
    },
    /// A platform's manifest was pinned instead of its index.
    Platform {
        /// `source/image:tag`.
        reference: String,
        /// The platform.
        platform: String,
        /// The index it was taken from.
        index: Digest,
    },
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Moved {
                reference,
                kept,
                now,
            } => write!(
                f,
                "{reference} now points at {now}; the lock keeps {kept}, the digest that was reviewed (pin it anew under another tag to take the new one)"
            ),
            Note::Platform {
                reference,
                platform,
                index,
            } => write!(f, "{reference}: pinned the {platform} manifest of the index {index}"),
        }
    }
}

/// What pinning produced.
#[derive(Debug, Clone, Default)]
pub struct Pinned {
    /// One lock per source registry, in source order.
    pub locks: Vec<Lock>,
    /// What is worth saying.
    pub notes: Vec<Note>,
    /// What failed (a tag the source lacks, an unreadable source): nothing
    /// is written when there is any.
    pub errors: Vec<String>,
}

/// Check every selector of `intent` before anything is read.
pub fn check(intent: &Intent) -> Vec<Diagnostic> {
    intent
        .images
        .iter()
        .filter_map(|image| compile(&image.select).err())
        .flatten()
        .collect()
}

/// Resolve `intent`, keeping what `previous` (the lock it wrote before,
/// if any) pins.
pub async fn pin(intent: &Intent, registries: &Registries, previous: &[Manifest]) -> Pinned {
    let kept = previous_pins(previous);
    let reads: Vec<_> = stream::iter(&intent.images)
        .map(|image| async move {
            let source = image
                .source
                .clone()
                .unwrap_or_else(|| intent.source.name.clone());
            let registry = registries.get(&source.endpoint);
            let compiled = compile(&image.select).expect("checked before pinning");
            let resolved = resolve(registry.as_ref(), &source, image, &compiled).await;
            (source, image, resolved)
        })
        .buffer_unordered(crate::limits::INVENTORY_READS)
        .collect()
        .await;
    let destinations: Vec<RegistryName> =
        intent.destinations.iter().map(|d| d.name.clone()).collect();
    let mut out = Pinned::default();
    let mut locks: Vec<Lock> = Vec::new();
    // Source order: the intent's default first, then as images name others.
    let mut order: Vec<RegistryName> = vec![intent.source.name.clone()];
    for image in &intent.images {
        if let Some(s) = &image.source {
            if !order.contains(s) {
                order.push(s.clone());
            }
        }
    }
    for source in &order {
        locks.push(Lock {
            source: source.clone(),
            destinations: destinations.clone(),
            images: BTreeMap::new(),
        });
    }
    for (source, image, resolved) in reads {
        let lock = locks
            .iter_mut()
            .find(|l| l.source == source)
            .expect("every source has a lock");
        let entry = lock.images.entry(image.name.clone()).or_default();
        // What the previous lock pinned stays, whatever the source says now.
        if let Some(old) = kept.get(&(source.clone(), image.name.clone())) {
            for (digest, pin) in old {
                let into = entry.entry(digest.clone()).or_default();
                into.tags.extend(pin.tags.iter().cloned());
                if into.comment.is_none() {
                    into.comment.clone_from(&pin.comment);
                }
            }
        }
        let resolved = match resolved {
            Ok(resolved) => resolved,
            Err(why) => {
                out.errors.push(why);
                continue;
            }
        };
        for (tag, digest, comment, note) in resolved {
            let reference = format!("{source}/{}:{tag}", image.name);
            let pinned_at = entry
                .iter()
                .find(|(_, p)| p.tags.contains(&tag))
                .map(|(d, _)| d.clone());
            match pinned_at {
                Some(kept_digest) if kept_digest != digest => out.notes.push(Note::Moved {
                    reference,
                    kept: kept_digest,
                    now: digest,
                }),
                // Pinned already: the same entry, its note written again
                // (a lock read back has lost its comments).
                Some(same) => {
                    let pin = entry.entry(same).or_default();
                    if pin.comment.is_none() {
                        pin.comment = comment;
                    }
                }
                None => {
                    let pin = entry.entry(digest).or_default();
                    pin.tags.insert(tag);
                    if pin.comment.is_none() {
                        pin.comment = comment;
                    }
                    out.notes.extend(note);
                }
            }
        }
    }
    locks.retain(|l| !l.images.is_empty());
    out.locks = locks;
    out
}

/// (tag, digest, comment, note) for each tag `image` selects.
type Resolved = Vec<(Tag, Digest, Option<String>, Option<Note>)>;

async fn resolve(
    registry: &dyn Registry,
    source: &RegistryName,
    image: &IntentImage,
    compiled: &Compiled,
) -> Result<Resolved, String> {
    let repo = source.repository(&image.name);
    let listed = if compiled.needs_listing() {
        registry
            .list_tags(&repo)
            .await
            .map_err(|e| format!("{}: {e}", image.location))?
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for tag in choose(compiled, &listed) {
        let reference = ManifestRef::Tag(tag.clone());
        let found = registry
            .head_manifest(&repo, &reference)
            .await
            .map_err(|e| format!("{}: {repo}:{tag}: {e}", image.location))?;
        let Some(found) = found else {
            return Err(format!(
                "{}: {repo}:{tag} does not exist in the source",
                image.location
            ));
        };
        match &image.select.platform {
            Some(platform) if media_type::is_index(&found.media_type) => {
                let child = platform_child(registry, &repo, &found.digest, &platform.value)
                    .await
                    .map_err(|e| format!("{}: {repo}:{tag}: {e}", image.location))?;
                let Some(child) = child else {
                    return Err(format!(
                        "{}: {repo}:{tag} has no {} manifest",
                        image.location, platform.value
                    ));
                };
                let comment = format!("{} of {}", platform.value, found.digest);
                let note = Note::Platform {
                    reference: format!("{repo}:{tag}"),
                    platform: platform.value.clone(),
                    index: found.digest.clone(),
                };
                out.push((tag, child, Some(comment), Some(note)));
            }
            _ => out.push((tag, found.digest, None, None)),
        }
    }
    Ok(out)
}

/// The digest of the `platform` manifest the index `index` lists.
async fn platform_child(
    registry: &dyn Registry,
    repo: &crate::reference::Repository,
    index: &Digest,
    platform: &str,
) -> Result<Option<Digest>, RegistryError> {
    let Some(manifest) = registry
        .get_manifest(repo, &ManifestRef::Digest(index.clone()))
        .await?
    else {
        return Ok(None);
    };
    let body: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
    // Checked by the one reader first: a malformed index is an error.
    oci::references(&manifest, &format!("{repo}@{index}"))?;
    let wanted: Vec<&str> = platform.split('/').collect();
    for child in body["manifests"].as_array().into_iter().flatten() {
        let p = &child["platform"];
        let mut have = vec![
            p["os"].as_str().unwrap_or(""),
            p["architecture"].as_str().unwrap_or(""),
        ];
        if wanted.len() == 3 {
            have.push(p["variant"].as_str().unwrap_or(""));
        }
        if have == wanted {
            if let Some(d) = child["digest"].as_str().and_then(|d| Digest::parse(d).ok()) {
                return Ok(Some(d));
            }
        }
    }
    Ok(None)
}

/// (source, image) -> digest -> pin, from a previous lock.
fn previous_pins(
    previous: &[Manifest],
) -> BTreeMap<(RegistryName, ImageName), BTreeMap<Digest, Pin>> {
    let mut out: BTreeMap<(RegistryName, ImageName), BTreeMap<Digest, Pin>> = BTreeMap::new();
    for manifest in previous {
        for image in &manifest.images {
            let pins = out
                .entry((manifest.source.name.clone(), image.name.clone()))
                .or_default();
            for entry in &image.digests {
                let pin = pins.entry(entry.digest.clone()).or_default();
                pin.tags.extend(entry.tags.iter().map(|t| t.tag.clone()));
            }
        }
    }
    out
}

/// A lock as CIP manifest text: registries, then images sorted by name,
/// digests by digest, tags by tag; the same pins always give the same bytes.
pub fn lock_text(lock: &Lock, intent_file: &str, images_only: bool) -> String {
    let mut out = String::new();
    if !images_only {
        out.push_str(&format!(
            "# Written by `promoter pin` from {intent_file}: review it, then `promoter run`.\n"
        ));
        out.push_str(&registries_text(lock));
        out.push_str("images:\n");
    } else {
        out.push_str(&format!(
            "# Written by `promoter pin` from {intent_file}.\n"
        ));
    }
    for (name, digests) in &lock.images {
        out.push_str(&format!("- name: {name}\n  dmap:\n"));
        for (digest, pin) in digests {
            let tags: Vec<String> = pin.tags.iter().map(|t| format!("\"{t}\"")).collect();
            out.push_str(&format!("    \"{digest}\": [{}]", tags.join(", ")));
            if let Some(comment) = &pin.comment {
                out.push_str(&format!("  # {comment}"));
            }
            out.push('\n');
        }
    }
    out
}

/// The `registries:` block of a lock.
pub fn registries_text(lock: &Lock) -> String {
    let mut out = format!("registries:\n- name: {}\n  src: true\n", lock.source);
    for d in &lock.destinations {
        out.push_str(&format!("- name: {d}\n"));
    }
    out
}

/// A directory name for a source registry in a thin tree.
pub fn slug(source: &RegistryName) -> String {
    let text: String = source
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    text.trim_matches('-').to_string()
}
