//! The mirror tools' own files, read as intents, so that their users switch
//! without rewriting them: Sinker's `.images.yaml`, kyma image-syncer's
//! images file and dregsy's config, one decoder each. Each becomes an
//! [`Intent`] whose images name their own source and destination. Keys are
//! strict, as for our own files; what promoter does differently is a
//! warning that says what to do instead, and what a digest-pinned CIP
//! manifest cannot say is an error. Credentials written in these files are
//! never read nor shown.
//!
//! What the three decoders share is here: how a mapped image and the intent
//! around them are built, and how their lists and registries are read.

use std::path::Path;
use std::sync::Arc;

use super::decode::parsed;
use super::model::{CatalogImages, Format, Intent, IntentImage, Located, Mapped, Selectors};
use crate::manifest::decode::{Ctx, Fields};
use crate::manifest::model::RegistryEntry;
use crate::manifest::yaml::{Node, Pos, Value};
use crate::reference::RegistryName;

pub(crate) mod dregsy;
pub(super) mod image_syncer;
pub(super) mod sinker;

const CREDENTIALS_HELP: &str = "promoter takes credentials from a docker config.json \
     (--auth-file, $DOCKER_CONFIG, ~/.docker/config.json), never from a reviewed file; \
     move them there and remove them from this file";

/// One image of a seed file, mapped: where it is read, its name, where it
/// goes (renamed or not).
fn image(mapped: Mapped, select: Selectors, pos: Pos, ctx: &Ctx<'_>) -> IntentImage {
    IntentImage {
        name: mapped.name,
        target: mapped.target,
        source: Some(mapped.source),
        destinations: Some(vec![mapped.destination]),
        select,
        follow: Vec::new(),
        location: ctx.at(pos),
    }
}

/// An intent of images that each name their source and destination; its
/// default source and destination are the first image's.
fn intent_of(
    images: Vec<IntentImage>,
    catalog: Vec<CatalogImages>,
    format: Format,
    file: &Arc<Path>,
    root: Pos,
    ctx: &mut Ctx<'_>,
) -> Option<Intent> {
    let (source, destination, location) = match (images.first(), catalog.first()) {
        (Some(i), _) => (
            i.source.clone()?,
            i.destinations.as_ref()?.first()?.clone(),
            i.location.clone(),
        ),
        (None, Some(c)) => (c.source.clone(), c.destination.clone(), c.location.clone()),
        (None, None) => {
            if !ctx.diagnostics.iter().any(|d| d.is_error()) {
                ctx.error(root, format!("the {format} names no images"), None);
            }
            return None;
        }
    };
    let entry = |name: RegistryName| RegistryEntry {
        name,
        service_account: None,
        location: location.clone(),
    };
    Some(Intent {
        file: file.clone(),
        source: entry(source),
        destinations: vec![entry(destination)],
        images,
        catalog,
        format,
        schedule: None,
    })
}

/// A registry name as these tools write it (a trailing `/` is allowed).
fn registry(node: &Node<'_>, what: &str, ctx: &mut Ctx<'_>) -> Option<RegistryName> {
    parsed(
        node,
        what,
        |t| RegistryName::parse(t.trim_end_matches('/')),
        ctx,
    )
}

/// `value`, written at `pos`.
fn located<T>(value: T, pos: Pos, ctx: &Ctx<'_>) -> Located<T> {
    Located {
        value,
        location: ctx.at(pos),
    }
}

/// Where `key` number `i` is written, when it is.
fn key_pos<const N: usize>(f: &Fields<'_, '_, N>, i: usize) -> Option<Pos> {
    f.found[i].map(|(k, _)| k.pos)
}

/// The list under a key, empty when the key is absent or null (as the
/// tools' decoders read it), or an error at it with `help`.
fn optional_list<'n, 'a>(
    node: Option<&'n Node<'a>>,
    root: Pos,
    message: &str,
    help: &str,
    ctx: &mut Ctx<'_>,
) -> Option<&'n [Node<'a>]> {
    match node {
        None => Some(&[]),
        Some(n) if n.is_null() => Some(&[]),
        other => list_of(other, root, message, help, ctx),
    }
}

/// The list under a key, or an error at it (or at `root`) with `help`.
fn list_of<'n, 'a>(
    node: Option<&'n Node<'a>>,
    root: Pos,
    message: &str,
    help: &str,
    ctx: &mut Ctx<'_>,
) -> Option<&'n [Node<'a>]> {
    match node {
        Some(Node {
            value: Value::Seq(items),
            ..
        }) => Some(items),
        other => {
            ctx.error(other.map_or(root, |n| n.pos), message, Some(help.into()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::intent::load_text;

    pub(super) fn load(text: &str) -> (Option<Intent>, Vec<String>) {
        let (intent, diagnostics) = load_text(Path::new("seed.yaml"), text);
        (intent, diagnostics.iter().map(|d| d.to_string()).collect())
    }

    /// Each image as `source | name | destination | selectors`.
    pub(super) fn mapped(intent: &Intent) -> Vec<String> {
        intent
            .images
            .iter()
            .map(|i| {
                let s = &i.select;
                let mut what: Vec<String> = s
                    .tags
                    .iter()
                    .map(|t| match &s.retag {
                        Some(r) => format!("{} as {}", t.value, r.value),
                        None => t.value.to_string(),
                    })
                    .collect();
                what.extend(s.digests.iter().map(|d| match &d.value.tag {
                    Some(t) => format!("{t}@{}", &d.value.digest.as_str()[..12]),
                    None => d.value.digest.as_str()[..12].to_string(),
                }));
                if let Some(r) = &s.semver {
                    what.push(format!("semver {}", r.value));
                }
                what.extend(s.regex.iter().map(|r| format!("regex {}", r.value)));
                what.extend(s.exclude.iter().map(|r| format!("exclude {}", r.value)));
                if let Some(n) = &s.latest {
                    what.push(format!("latest {}", n.value));
                }
                if let Some(p) = &s.platform {
                    what.push(p.value.clone());
                }
                let renamed = match &i.target {
                    Some(t) => format!(" -> {t}"),
                    None => String::new(),
                };
                format!(
                    "{} | {}{renamed} | {} | {}",
                    i.source.as_ref().unwrap(),
                    i.name,
                    i.destinations.as_ref().unwrap()[0],
                    what.join(", ")
                )
            })
            .collect()
    }

    #[test]
    fn files_that_are_none_of_them_get_our_intent_errors() {
        let (_, errors) = load("images: []\n");
        assert!(errors.join("\n").contains("registries"), "{errors:?}");
    }
}
