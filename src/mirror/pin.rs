//! `promoter pin`: resolve an intent against its sources into digest-pinned
//! CIP manifests (a lock file). Reads the source's tag list where a
//! selector needs it and one HEAD per chosen tag (a GET for an index when a
//! platform is chosen); never a blob.
//!
//! What it writes it has checked: a digest new to the lock is read with a
//! GET and its bytes hashed against it (a registry whose HEAD names other
//! bytes than it serves is refused), and a platform's manifest must be in
//! the source and be an image manifest. A digest the lock already has is
//! only HEADed, so pinning again with nothing new costs no GET (Docker Hub
//! meters GETs).
//!
//! Pinning again keeps every digest the previous lock has and adds what is
//! new. A tag the lock already pins is never moved to what the source now
//! says: the digest a tag had when it was reviewed is the one promoted, and
//! a source that re-pointed it is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use super::select::{choose, compile, Compiled};
use crate::diag::{Diagnostic, Location};
use crate::limits::QUOTED_TEXT_CHARS;
use crate::manifest::intent::{map_repository, Intent, IntentImage};
use crate::manifest::Manifest;
use crate::oci::{self, media_type};
use crate::reference::{Digest, ImageName, ManifestRef, RegistryName, Tag};
use crate::registry::{Registries, Registry, RegistryError};
use crate::text::printable_cut;

/// One pinned manifest: a source, its destinations, and per image the
/// digests with their tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// Where the images are read from.
    pub source: RegistryName,
    /// Where they go.
    pub destinations: Vec<RegistryName>,
    /// Image -> digest -> what the entry says.
    pub images: BTreeMap<ImageKey, BTreeMap<Digest, Pin>>,
    /// Image -> the tag patterns it lets move (`follow:`), as written.
    pub follow: BTreeMap<ImageKey, Vec<String>>,
}

/// An image of a lock: its name in the source, and its path at the
/// destinations when it is renamed (`target:`).
pub type ImageKey = (ImageName, Option<ImageName>);

/// The lock key of `image`.
fn key_of(image: &IntentImage) -> ImageKey {
    (image.name.clone(), image.target.clone())
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
    /// A followed tag (`follow:`) was moved to what the source has now.
    Followed {
        /// `source/image:tag`.
        reference: String,
        /// The digest the lock had.
        from: Digest,
        /// The digest it has now.
        to: Digest,
    },
    /// A catalog pattern matched no repository of its source.
    NoMatch {
        /// Where the pattern is written.
        location: String,
        /// The pattern.
        pattern: String,
        /// The source whose catalog was listed.
        source: String,
    },
    /// An image's selection matched no tag of its source: the image is
    /// left out of the lock (an empty `dmap` would make `run` refuse it).
    NoTags {
        /// Where the image is written.
        location: String,
        /// `source/image`.
        image: String,
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

impl Note {
    /// Whether the note is something the user should act on: a selection
    /// or pattern that found nothing.
    pub fn is_warning(&self) -> bool {
        matches!(self, Note::NoTags { .. } | Note::NoMatch { .. })
    }
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
            Note::Followed {
                reference,
                from,
                to,
            } => write!(f, "{reference} follows its source: moved from {from} to {to} (`run` shows it as a move)"),
            Note::NoMatch {
                location,
                pattern,
                source,
            } => write!(f, "{location}: {pattern} matches no repository in {source}"),
            Note::NoTags { location, image } => write!(
                f,
                "{location}: no tag of {image} matches its selection; the image is left out of the lock (check its tags and selectors)"
            ),
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
    pub errors: Vec<PinError>,
}

/// Why an image of an intent could not be pinned. Each names the intent
/// entry (`file:line:col`) it is about.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PinError {
    /// A source's catalog, which a catalog entry matches against, could not
    /// be listed.
    #[error("{location}: cannot list the catalog of {registry}: {source}")]
    Catalog {
        /// The catalog entry.
        location: Location,
        /// The source whose catalog was listed.
        registry: RegistryName,
        /// Why.
        #[source]
        source: Arc<RegistryError>,
    },
    /// A catalog path whose destination path is not a repository path (a
    /// replacement that left an empty or uppercase component, say).
    #[error(
        "{location}: the mapping writes {path} to {to:?}, which is not a repository path: \
         make `to` give lowercase components separated by single slashes"
    )]
    BadTarget {
        /// The catalog entry.
        location: Location,
        /// The source path matched.
        path: String,
        /// The destination path it would get.
        to: String,
    },
    /// The source's tags could not be listed.
    #[error("{location}: {source}")]
    Tags {
        /// The image entry.
        location: Location,
        /// Why.
        #[source]
        source: Arc<RegistryError>,
    },
    /// A manifest the entry selects could not be read from the source.
    #[error("{location}: {reference}: {source}")]
    Read {
        /// The image entry.
        location: Location,
        /// What was read: `repository:tag` or `repository:digest`, or
        /// `repository@digest` for an index read for a platform.
        reference: String,
        /// Why.
        #[source]
        source: Arc<RegistryError>,
    },
    /// A tag or digest the entry selects is not in the source.
    #[error("{location}: {reference} does not exist in the source")]
    Missing {
        /// The image entry.
        location: Location,
        /// `repository:tag` or `repository@digest`.
        reference: String,
    },
    /// An index the entry selects has no manifest for its platform.
    #[error("{location}: {reference} has no {platform} manifest")]
    NoPlatform {
        /// The image entry.
        location: Location,
        /// The index, `repository:tag` or `repository@digest`.
        reference: String,
        /// The platform asked for.
        platform: String,
    },
    /// A manifest's bytes do not hash to the digest the source named for it
    /// (its HEAD answer, or the digest it was asked for by).
    #[error(
        "{location}: {reference}: the source names {named}, but the manifest it serves hashes \
         to {served}; nothing is pinned from a source that contradicts itself (check the \
         registry, or a proxy on the way, then pin again)"
    )]
    Mismatch {
        /// The image entry.
        location: Location,
        /// What was read.
        reference: String,
        /// The digest the source named, which the lock would have held.
        named: Digest,
        /// The digest of the bytes it served.
        served: Digest,
    },
    /// The manifest an index lists for a platform is not in the source.
    #[error(
        "{location}: {reference}: the index {index} lists {child} for {platform}, and the \
         source does not have it"
    )]
    NoChild {
        /// The image entry.
        location: Location,
        /// The index, `repository:tag` or `repository@digest`.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The index.
        index: Digest,
        /// The manifest it lists for the platform.
        child: Digest,
    },
    /// The manifest an index lists for a platform is not an image manifest
    /// (an index of indexes, an artifact).
    #[error(
        "{location}: {reference}: the {platform} manifest {child} of the index {index} is not \
         an image manifest ({media_type}): pin the index itself (no `platforms:`)"
    )]
    NotImage {
        /// The image entry.
        location: Location,
        /// The index, `repository:tag` or `repository@digest`.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The index.
        index: Digest,
        /// The manifest it lists for the platform.
        child: Digest,
        /// Its media type, escaped and cut (the source's text).
        media_type: String,
    },
    /// The intent names a digest for a tag the lock already pins elsewhere.
    #[error(
        "{location}: the intent pins {reference} at {wanted}, but the lock has it at {kept}: \
         a promoted tag never moves; pin the new digest under another tag"
    )]
    TagMoves {
        /// The image entry.
        location: Location,
        /// `source/image:tag`.
        reference: String,
        /// The digest the intent names.
        wanted: Digest,
        /// The digest the lock has.
        kept: Digest,
    },
}

impl PinError {
    /// Whether a registry failed (unreachable, refused...), as opposed to
    /// the source lacking what the intent names or the intent asking for
    /// what a lock cannot say.
    pub fn is_registry(&self) -> bool {
        matches!(
            self,
            PinError::Catalog { .. } | PinError::Tags { .. } | PinError::Read { .. }
        )
    }

    /// Whether the source served what pin refuses to pin: bytes that
    /// contradict their digest, or a platform's manifest that is no image.
    /// Unlike a registry that failed, pinning again does not mend it: the
    /// source's content is wrong.
    pub fn is_refused_content(&self) -> bool {
        matches!(self, PinError::Mismatch { .. } | PinError::NotImage { .. })
    }
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

/// The images a catalog entry (dregsy's `from: regex:`) matches in its
/// source, as intent images; one catalog listing per source registry.
pub async fn expand_catalog(
    intent: &Intent,
    registries: &Registries,
) -> (Vec<IntentImage>, Vec<Note>, Vec<PinError>) {
    let mut images = Vec::new();
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    let mut listed: BTreeMap<RegistryName, Vec<String>> = BTreeMap::new();
    for entry in &intent.catalog {
        if !listed.contains_key(&entry.source) {
            let registry = registries.get(&entry.source.endpoint);
            match registry.list_repositories(&entry.source.prefix).await {
                Ok(repos) => {
                    let below: Vec<String> = repos
                        .iter()
                        .filter_map(|r| {
                            let path = r.path();
                            if entry.source.prefix.is_empty() {
                                Some(path.to_string())
                            } else {
                                path.strip_prefix(&entry.source.prefix)?
                                    .strip_prefix('/')
                                    .map(str::to_string)
                            }
                        })
                        .collect();
                    listed.insert(entry.source.clone(), below);
                }
                Err(e) => {
                    errors.push(PinError::Catalog {
                        location: entry.location.clone(),
                        registry: entry.source.clone(),
                        source: Arc::new(e),
                    });
                    listed.insert(entry.source.clone(), Vec::new());
                    continue;
                }
            }
        }
        let matched: Vec<&String> = listed[&entry.source]
            .iter()
            .filter(|p| entry.pattern.value.is_match(p))
            .collect();
        if matched.is_empty() {
            notes.push(Note::NoMatch {
                location: entry.location.to_string(),
                pattern: entry.pattern.value.as_str().to_string(),
                source: entry.source.to_string(),
            });
        }
        for path in matched {
            let to = entry.rename.apply(path);
            match map_repository(&entry.source, path, &entry.destination, &to) {
                Some(mapped) => images.push(IntentImage {
                    name: mapped.name,
                    target: mapped.target,
                    source: Some(mapped.source),
                    destinations: Some(vec![mapped.destination]),
                    select: entry.select.clone(),
                    follow: Vec::new(),
                    location: entry.location.clone(),
                }),
                None => errors.push(PinError::BadTarget {
                    location: entry.location.clone(),
                    path: path.clone(),
                    to,
                }),
            }
        }
    }
    (images, notes, errors)
}

/// Resolve `intent`, keeping what `previous` (the lock it wrote before,
/// if any) pins.
pub async fn pin(intent: &Intent, registries: &Registries, previous: &[Manifest]) -> Pinned {
    let (matched, notes, errors) = expand_catalog(intent, registries).await;
    let mut pinned = if matched.is_empty() {
        pin_images(intent, registries, previous).await
    } else {
        let mut all = intent.clone();
        all.images.extend(matched);
        pin_images(&all, registries, previous).await
    };
    pinned.notes.splice(0..0, notes);
    pinned.errors.splice(0..0, errors);
    pinned
}

async fn pin_images(intent: &Intent, registries: &Registries, previous: &[Manifest]) -> Pinned {
    let kept = previous_pins(previous);
    let default_destinations: Vec<RegistryName> =
        intent.destinations.iter().map(|d| d.name.clone()).collect();
    let defaults = &default_destinations;
    let kept = &kept;
    let reads: Vec<_> = stream::iter(&intent.images)
        .map(|image| async move {
            let source = image
                .source
                .clone()
                .unwrap_or_else(|| intent.source.name.clone());
            let destinations = image
                .destinations
                .clone()
                .unwrap_or_else(|| defaults.clone());
            let registry = registries.get(&source.endpoint);
            let compiled = compile(&image.select).expect("checked before pinning");
            let previous = kept
                .get(&(source.clone(), destinations.clone(), key_of(image)))
                .unwrap_or(&NOTHING_PINNED);
            let resolved = resolve(registry.as_ref(), &source, image, &compiled, previous).await;
            (source, destinations, image, resolved)
        })
        .buffered(crate::limits::INVENTORY_READS)
        .collect()
        .await;
    let mut out = Pinned::default();
    // One lock per (source, destinations), in the order the intent first
    // names each: the default source first.
    let mut locks = vec![Lock::new(&intent.source.name, &default_destinations)];
    for (source, destinations, image, resolved) in reads {
        let lock = lock_for(&mut locks, &source, &destinations);
        lock.follow_too(image);
        let entry = lock.images.entry(key_of(image)).or_default();
        // What the previous lock pinned stays, whatever the source says now.
        if let Some(old) = kept.get(&(source.clone(), destinations, key_of(image))) {
            for (digest, pin) in old {
                let into = entry.entry(digest.clone()).or_default();
                into.tags.extend(pin.tags.iter().cloned());
                into.note(pin.comment.clone());
            }
        }
        match resolved {
            Ok(resolved) if resolved.is_empty() && entry.is_empty() => {
                out.notes.push(Note::NoTags {
                    location: image.location.to_string(),
                    image: format!("{source}/{}", image.name),
                });
                lock.images.remove(&key_of(image));
            }
            Ok(resolved) => {
                for found in resolved {
                    add(entry, found, &source, image, &mut out);
                }
            }
            Err(why) => out.errors.push(why),
        }
    }
    locks.retain(|l| !l.images.is_empty());
    out.locks = locks;
    out
}

impl Lock {
    fn new(source: &RegistryName, destinations: &[RegistryName]) -> Lock {
        Lock {
            source: source.clone(),
            destinations: destinations.to_vec(),
            images: BTreeMap::new(),
            follow: BTreeMap::new(),
        }
    }

    /// Let the tags `image` follows move in this lock too.
    fn follow_too(&mut self, image: &IntentImage) {
        if image.follow.is_empty() {
            return;
        }
        let follow = self.follow.entry(key_of(image)).or_default();
        for p in &image.follow {
            if !follow.iter().any(|f| f == p.as_str()) {
                follow.push(p.as_str().to_string());
            }
        }
    }
}

impl Pin {
    /// Write `comment` beside the pin, unless it has one.
    fn note(&mut self, comment: Option<String>) {
        if self.comment.is_none() {
            self.comment = comment;
        }
    }
}

/// The lock of `source` and `destinations`, made when there is none yet.
fn lock_for<'l>(
    locks: &'l mut Vec<Lock>,
    source: &RegistryName,
    destinations: &[RegistryName],
) -> &'l mut Lock {
    let at = match locks
        .iter()
        .position(|l| l.source == *source && l.destinations == destinations)
    {
        Some(at) => at,
        None => {
            locks.push(Lock::new(source, destinations));
            locks.len() - 1
        }
    };
    &mut locks[at]
}

/// Add one digest `image` selects to its pins (`entry`): a tag already
/// pinned elsewhere moves only where the image follows it.
fn add(
    entry: &mut BTreeMap<Digest, Pin>,
    found: Found,
    source: &RegistryName,
    image: &IntentImage,
    out: &mut Pinned,
) {
    let Some(tag) = found.tag else {
        entry.entry(found.digest).or_default().note(found.comment);
        out.notes.extend(found.note);
        return;
    };
    let reference = format!("{source}/{}:{tag}", image.name);
    let pinned_at = entry
        .iter()
        .find(|(_, p)| p.tags.contains(&tag))
        .map(|(d, _)| d.clone());
    let followed = crate::manifest::model::follows(&image.follow, tag.as_str());
    match pinned_at {
        // A followed tag moves: off the digest it had (dropped when
        // nothing else holds it there), onto the new one.
        Some(from) if from != found.digest && followed => {
            if let Some(old) = entry.get_mut(&from) {
                old.tags.remove(&tag);
                if old.tags.is_empty() {
                    entry.remove(&from);
                }
            }
            let pin = entry.entry(found.digest.clone()).or_default();
            pin.tags.insert(tag);
            pin.note(found.comment);
            out.notes.push(Note::Followed {
                reference,
                from,
                to: found.digest,
            });
        }
        Some(kept) if kept != found.digest && found.explicit => {
            out.errors.push(PinError::TagMoves {
                location: image.location.clone(),
                reference,
                wanted: found.digest,
                kept,
            })
        }
        Some(kept) if kept != found.digest => out.notes.push(Note::Moved {
            reference,
            kept,
            now: found.digest,
        }),
        // Pinned already: the same entry, its note written again (a lock
        // read back has lost its comments).
        Some(same) => entry.entry(same).or_default().note(found.comment),
        None => {
            let pin = entry.entry(found.digest).or_default();
            pin.tags.insert(tag);
            pin.note(found.comment);
            out.notes.extend(found.note);
        }
    }
}

/// One digest an image entry selects.
struct Found {
    /// The tag it gets, if any.
    tag: Option<Tag>,
    digest: Digest,
    /// A note for the lock (the platform and index it was taken from).
    comment: Option<String>,
    note: Option<Note>,
    /// Named by digest in the intent, not found through a tag.
    explicit: bool,
}

async fn resolve(
    registry: &dyn Registry,
    source: &RegistryName,
    image: &IntentImage,
    compiled: &Compiled,
    previous: &BTreeMap<Digest, Pin>,
) -> Result<Vec<Found>, PinError> {
    let repo = source.repository(&image.name);
    let listed = if compiled.needs_listing() {
        registry
            .list_tags(&repo)
            .await
            .map_err(|e| PinError::Tags {
                location: image.location.clone(),
                source: Arc::new(e),
            })?
    } else {
        Vec::new()
    };
    let chosen = choose(compiled, &listed);
    log_left_out(&repo, &listed, &chosen);
    let retag = image.select.retag.as_ref().map(|r| r.value.clone());
    let wanted = chosen
        .into_iter()
        .map(|tag| {
            (
                Some(retag.clone().unwrap_or_else(|| tag.clone())),
                ManifestRef::Tag(tag),
                false,
            )
        })
        .chain(image.select.digests.iter().map(|d| {
            (
                d.value.tag.clone(),
                ManifestRef::Digest(d.value.digest.clone()),
                true,
            )
        }));
    let reader = Reader {
        registry,
        repo: &repo,
        image,
        previous,
    };
    let mut out = Vec::new();
    for (tag, reference, explicit) in wanted {
        out.push(reader.found(tag, reference, explicit).await?);
    }
    Ok(out)
}

/// Say (at info level, `-v`) which listed tags the selection leaves out,
/// quoted as text from elsewhere: the names are the registry's.
fn log_left_out(repo: &crate::reference::Repository, listed: &[String], chosen: &[Tag]) {
    let chosen: BTreeSet<&str> = chosen.iter().map(Tag::as_str).collect();
    let left: Vec<&str> = listed
        .iter()
        .map(String::as_str)
        .filter(|t| !chosen.contains(t))
        .collect();
    if left.is_empty() {
        return;
    }
    tracing::info!(
        repo = %repo,
        left_out = left.len(),
        "the selection leaves out {} listed tag(s): {}",
        left.len(),
        printable_cut(&left.join(", "), QUOTED_TEXT_CHARS)
    );
}

/// Whether `digest`, selected under `tag`, enters the lock that `previous`
/// (the image's pins in the lock read back) was: what pin must read and
/// hash before it writes it. A digest the lock has was checked when it
/// came in; a tag it pins and does not follow keeps the digest it has
/// (see [`add`]), so what the source says now never enters.
fn enters_lock(
    previous: &BTreeMap<Digest, Pin>,
    tag: Option<&Tag>,
    digest: &Digest,
    followed: bool,
) -> bool {
    if previous.contains_key(digest) {
        return false;
    }
    match tag {
        Some(tag) if !followed => !previous.values().any(|pin| pin.tags.contains(tag)),
        _ => true,
    }
}

/// The reads of one image entry: a HEAD per selected reference, a GET of
/// what is new to the lock (hashed against the digest it will be pinned
/// at), and for a platform the index and its child.
struct Reader<'a> {
    registry: &'a dyn Registry,
    repo: &'a crate::reference::Repository,
    image: &'a IntentImage,
    /// The image's pins in the lock read back.
    previous: &'a BTreeMap<Digest, Pin>,
}

impl Reader<'_> {
    /// The digest `reference` selects, checked as [`enters_lock`] says.
    async fn found(
        &self,
        tag: Option<Tag>,
        reference: ManifestRef,
        explicit: bool,
    ) -> Result<Found, PinError> {
        let shown = match &reference {
            ManifestRef::Tag(t) => format!("{}:{t}", self.repo),
            ManifestRef::Digest(d) => format!("{}@{d}", self.repo),
        };
        let head = self
            .registry
            .head_manifest(self.repo, &reference)
            .await
            .map_err(|e| self.read_error(&format!("{}:{reference}", self.repo), e))?;
        let Some(head) = head else {
            return Err(self.missing(shown));
        };
        let followed = tag
            .as_ref()
            .is_some_and(|t| crate::manifest::model::follows(&self.image.follow, t.as_str()));
        if let Some(platform) = &self.image.select.platform {
            if media_type::is_index(&head.media_type) {
                let child = self
                    .platform_child(&shown, &head.digest, &platform.value)
                    .await?;
                let new = enters_lock(self.previous, tag.as_ref(), &child, followed);
                self.check_child(&shown, &platform.value, &head.digest, &child, new)
                    .await?;
                return Ok(Found {
                    tag,
                    digest: child,
                    comment: Some(format!("{} of {}", platform.value, head.digest)),
                    note: Some(Note::Platform {
                        reference: shown,
                        platform: platform.value.clone(),
                        index: head.digest,
                    }),
                    explicit,
                });
            }
        }
        if enters_lock(self.previous, tag.as_ref(), &head.digest, followed) {
            self.fetch_hashed(&reference, &shown, &head.digest).await?;
        }
        Ok(Found {
            tag,
            digest: head.digest,
            comment: None,
            note: None,
            explicit,
        })
    }

    /// GET `reference` and check that its bytes hash to `named`, the digest
    /// the HEAD gave and the lock will hold: a registry that names one
    /// digest and serves other bytes is caught here, not at review.
    async fn fetch_hashed(
        &self,
        reference: &ManifestRef,
        shown: &str,
        named: &Digest,
    ) -> Result<(), PinError> {
        let fetched = self
            .registry
            .get_manifest(self.repo, reference)
            .await
            .map_err(|e| self.read_error(shown, e))?;
        let Some(fetched) = fetched else {
            return Err(self.missing(shown.to_string()));
        };
        oci::check_bytes(shown, named, &fetched.bytes)
            .map_err(|e| self.read_error(shown, RegistryError::from(e)))
    }

    /// The digest of the `platform` manifest the index `index` lists.
    async fn platform_child(
        &self,
        shown: &str,
        index: &Digest,
        platform: &str,
    ) -> Result<Digest, PinError> {
        let at = format!("{}@{index}", self.repo);
        let manifest = self
            .registry
            .get_manifest(self.repo, &ManifestRef::Digest(index.clone()))
            .await
            .map_err(|e| self.read_error(shown, e))?;
        let Some(manifest) = manifest else {
            return Err(self.missing(at));
        };
        // Checked by the one reader first: a malformed index is an error.
        oci::references(&manifest, &at)
            .map_err(|e| self.read_error(shown, RegistryError::from(e)))?;
        let body: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
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
                    return Ok(d);
                }
            }
        }
        Err(PinError::NoPlatform {
            location: self.image.location.clone(),
            reference: shown.to_string(),
            platform: platform.to_string(),
        })
    }

    /// Check the `platform` manifest `child` of `index` in the source: there,
    /// and an image manifest (an index pinned for a platform would give the
    /// destination every platform again). A child new to the lock is read
    /// and hashed (by the registry layer's verified GET); one the lock has
    /// is only HEADed.
    async fn check_child(
        &self,
        shown: &str,
        platform: &str,
        index: &Digest,
        child: &Digest,
        new: bool,
    ) -> Result<(), PinError> {
        let at = format!("{}@{child}", self.repo);
        let reference = ManifestRef::Digest(child.clone());
        let refused = if new {
            let fetched = self
                .registry
                .get_manifest(self.repo, &reference)
                .await
                .map_err(|e| self.read_error(&at, e))?;
            match fetched {
                Some(m) => {
                    oci::references(&m, &at)
                        .map_err(|e| self.read_error(&at, RegistryError::from(e)))?;
                    Some(not_an_image(&m.media_type, Some(&m.bytes)))
                }
                None => None,
            }
        } else {
            let head = self
                .registry
                .head_manifest(self.repo, &reference)
                .await
                .map_err(|e| self.read_error(&at, e))?;
            head.map(|d| not_an_image(&d.media_type, None))
        };
        let location = self.image.location.clone();
        match refused {
            None => Err(PinError::NoChild {
                location,
                reference: shown.to_string(),
                platform: platform.to_string(),
                index: index.clone(),
                child: child.clone(),
            }),
            Some(Some(media_type)) => Err(PinError::NotImage {
                location,
                reference: shown.to_string(),
                platform: platform.to_string(),
                index: index.clone(),
                child: child.clone(),
                media_type,
            }),
            Some(None) => Ok(()),
        }
    }

    /// A failed read of `reference`; bytes that do not hash to the digest
    /// they were read for are a [`PinError::Mismatch`], with both digests.
    fn read_error(&self, reference: &str, e: RegistryError) -> PinError {
        match e {
            RegistryError::BadContent(oci::ContentError::DigestMismatch {
                expected,
                actual,
                ..
            }) => PinError::Mismatch {
                location: self.image.location.clone(),
                reference: reference.to_string(),
                named: expected,
                served: actual,
            },
            e => PinError::Read {
                location: self.image.location.clone(),
                reference: reference.to_string(),
                source: Arc::new(e),
            },
        }
    }

    fn missing(&self, reference: String) -> PinError {
        PinError::Missing {
            location: self.image.location.clone(),
            reference,
        }
    }
}

/// The media type a platform's manifest is refused for, if any: the type
/// it was served as, then the one its body declares or has the shape of
/// (the one sniffer), each of which must be an image manifest's.
fn not_an_image(served: &str, bytes: Option<&[u8]>) -> Option<String> {
    std::iter::once(served.to_string())
        .chain(bytes.and_then(media_type::sniff))
        .find(|t| !media_type::is_image_manifest(t))
        .map(|t| printable_cut(&t, QUOTED_TEXT_CHARS))
}

/// The pins of an image the previous lock does not have.
static NOTHING_PINNED: BTreeMap<Digest, Pin> = BTreeMap::new();

/// Pins of a previous lock, by the (source, destinations, image) they belong to.
type Kept = BTreeMap<(RegistryName, Vec<RegistryName>, ImageKey), BTreeMap<Digest, Pin>>;

/// What a previous lock pins.
fn previous_pins(previous: &[Manifest]) -> Kept {
    let mut out = Kept::new();
    for manifest in previous {
        let destinations: Vec<RegistryName> = manifest
            .destinations
            .iter()
            .map(|d| d.name.clone())
            .collect();
        for image in &manifest.images {
            let pins = out
                .entry((
                    manifest.source.name.clone(),
                    destinations.clone(),
                    (image.name.clone(), image.target.clone()),
                ))
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
    for (key, digests) in &lock.images {
        let (name, target) = key;
        out.push_str(&format!("- name: {name}\n"));
        if let Some(target) = target {
            out.push_str(&format!("  target: {target}\n"));
        }
        if let Some(follow) = lock.follow.get(key) {
            // JSON's double-quoted strings are YAML's: any pattern survives.
            let patterns: Vec<String> = follow
                .iter()
                .map(|p| serde_json::to_string(p).expect("a string serialises"))
                .collect();
            out.push_str(&format!("  follow: [{}]\n", patterns.join(", ")));
        }
        out.push_str("  dmap:\n");
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

/// A directory name per lock in a thin tree: its source, and its
/// destination too where two locks read the same source.
pub fn directory_names(locks: &[Lock]) -> Vec<String> {
    let slug = |name: &RegistryName| -> String {
        let text: String = name
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        text.trim_matches('-').to_string()
    };
    let mut names: Vec<String> = locks
        .iter()
        .map(|lock| {
            let shared = locks.iter().filter(|l| l.source == lock.source).count() > 1;
            match lock.destinations.first() {
                Some(d) if shared => format!("{}--{}", slug(&lock.source), slug(d)),
                _ => slug(&lock.source),
            }
        })
        .collect();
    // Slugs can still meet (`a.b` and `a-b`): number the later ones.
    for i in 1..names.len() {
        let mut n = 2;
        let base = names[i].clone();
        while names[..i].contains(&names[i]) {
            names[i] = format!("{base}-{n}");
            n += 1;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn at() -> Location {
        Location {
            file: Arc::from(Path::new("intent.yaml")),
            line: 7,
            col: 3,
        }
    }

    #[test]
    fn pin_errors_say_what_they_said_as_text() {
        let renamed = PinError::BadTarget {
            location: at(),
            path: "team/web".into(),
            to: "mirror//Web".into(),
        };
        assert_eq!(
            renamed.to_string(),
            "intent.yaml:7:3: the mapping writes team/web to \"mirror//Web\", which is not a \
             repository path: make `to` give lowercase components separated by single slashes"
        );
        let moves = PinError::TagMoves {
            location: at(),
            reference: "a.io/app:1.0".into(),
            wanted: Digest::parse(D1).unwrap(),
            kept: Digest::parse(D2).unwrap(),
        };
        assert_eq!(
            moves.to_string(),
            format!(
                "intent.yaml:7:3: the intent pins a.io/app:1.0 at {D1}, but the lock has it at \
                 {D2}: a promoted tag never moves; pin the new digest under another tag"
            )
        );
        let platform = PinError::NoPlatform {
            location: at(),
            reference: "a.io/app:1.0".into(),
            platform: "linux/arm64".into(),
        };
        assert_eq!(
            platform.to_string(),
            "intent.yaml:7:3: a.io/app:1.0 has no linux/arm64 manifest"
        );
        assert!(!moves.is_registry() && !platform.is_registry());
    }

    #[test]
    fn a_refused_source_names_the_entry_and_both_digests() {
        let mismatch = PinError::Mismatch {
            location: at(),
            reference: "a.io/app:1.0".into(),
            named: Digest::parse(D1).unwrap(),
            served: Digest::parse(D2).unwrap(),
        };
        let text = mismatch.to_string();
        assert!(
            text.starts_with(&format!(
                "intent.yaml:7:3: a.io/app:1.0: the source names {D1}, but the manifest it \
                 serves hashes to {D2}"
            )),
            "{text}"
        );
        let nested = PinError::NotImage {
            location: at(),
            reference: "a.io/app:1.0".into(),
            platform: "linux/arm64".into(),
            index: Digest::parse(D1).unwrap(),
            child: Digest::parse(D2).unwrap(),
            media_type: media_type::OCI_INDEX.into(),
        };
        assert!(
            nested.to_string().contains(&format!(
                "the linux/arm64 manifest {D2} of the index {D1} is not an image manifest"
            )),
            "{nested}"
        );
        let absent = PinError::NoChild {
            location: at(),
            reference: "a.io/app:1.0".into(),
            platform: "linux/arm64".into(),
            index: Digest::parse(D1).unwrap(),
            child: Digest::parse(D2).unwrap(),
        };
        assert!(
            absent.to_string().starts_with("intent.yaml:7:3: "),
            "{absent}"
        );
        assert!(mismatch.is_refused_content() && nested.is_refused_content());
        assert!(!absent.is_refused_content() && !mismatch.is_registry());
    }

    fn pins(entries: &[(&str, &[&str])]) -> BTreeMap<Digest, Pin> {
        entries
            .iter()
            .map(|(digest, tags)| {
                let pin = Pin {
                    tags: tags.iter().map(|t| Tag::parse(t).unwrap()).collect(),
                    comment: None,
                };
                (Digest::parse(digest).unwrap(), pin)
            })
            .collect()
    }

    #[test]
    fn only_what_enters_the_lock_is_read_and_hashed() {
        let tag = |t: &str| Tag::parse(t).unwrap();
        let (d1, d2) = (Digest::parse(D1).unwrap(), Digest::parse(D2).unwrap());
        let lock = pins(&[(D1, &["1.0"])]);
        // A digest the lock has was checked when it came in.
        assert!(!enters_lock(&lock, Some(&tag("1.1")), &d1, false));
        assert!(!enters_lock(&lock, None, &d1, false));
        // A pinned tag the source re-pointed keeps its digest: the new one
        // never enters, unless the tag is followed.
        assert!(!enters_lock(&lock, Some(&tag("1.0")), &d2, false));
        assert!(enters_lock(&lock, Some(&tag("1.0")), &d2, true));
        // A new tag, a new digest, a first pin: read.
        assert!(enters_lock(&lock, Some(&tag("2.0")), &d2, false));
        assert!(enters_lock(&lock, None, &d2, false));
        assert!(enters_lock(&NOTHING_PINNED, Some(&tag("1.0")), &d1, false));
    }

    #[test]
    fn a_platform_manifest_must_be_an_image_as_served_and_as_its_body_says() {
        let image = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(not_an_image(media_type::OCI_MANIFEST, Some(image)), None);
        assert_eq!(not_an_image(media_type::DOCKER_MANIFEST, None), None);
        assert_eq!(
            not_an_image(media_type::OCI_INDEX, None).as_deref(),
            Some(media_type::OCI_INDEX)
        );
        // Served as an image, shaped as an index: the body is believed.
        assert_eq!(
            not_an_image(media_type::OCI_MANIFEST, Some(index)).as_deref(),
            Some(media_type::OCI_INDEX)
        );
        // The source's text, escaped and cut.
        let hostile = format!("x/\u{202e}{}", "y".repeat(300));
        let shown = not_an_image(&hostile, None).unwrap();
        assert!(shown.starts_with("x/\\u{202e}yyy"), "{shown}");
        assert!(shown.ends_with("…(103 more characters)"), "{shown}");
    }
}
