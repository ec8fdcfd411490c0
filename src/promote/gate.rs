//! Gates (`--gate`): asked about every source digest a plan copies, before
//! anything is written; a refused digest is written nowhere.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};

use crate::exec::ExecOptions;
use crate::hooks::{GateInput, Verdict};
use crate::plan::{self, GateVerdict, Plan, RepoWant};
use crate::reference::{Digest, ManifestRef, Repository, Tag};
use crate::registry::{ManifestCache, Registries, RegistryError};

/// Ask the gates (`--gate`) about every digest `plan` copies, and apply
/// their verdicts: refused digests are written nowhere.
pub(super) async fn gate(
    plan: &mut Plan,
    wants: &[RepoWant],
    registries: &Registries,
    options: &ExecOptions,
    manifests: &ManifestCache,
) {
    let Some(hooks) = options.hooks.as_ref().filter(|h| h.has_gate()) else {
        return;
    };
    let copies = plan::gated_copies(plan);
    let verdicts: Vec<_> = stream::iter(copies)
        .map(|(source, digest)| async move {
            let verdict = match gate_input(&source, &digest, wants, registries, manifests).await {
                Ok(input) => hooks.gate(&source, &input).await,
                Err(why) => Verdict::Undecided(why.to_string()),
            };
            (source, digest, verdict)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let verdicts: BTreeMap<(Repository, Digest), GateVerdict> = verdicts
        .into_iter()
        .filter_map(|(source, digest, verdict)| {
            let verdict = match verdict {
                Verdict::Admit => return None,
                Verdict::Refuse(reason) => GateVerdict::Refused(reason),
                Verdict::Undecided(reason) => GateVerdict::Undecided(reason),
            };
            Some(((source, digest), verdict))
        })
        .collect();
    plan::apply_verdicts(plan, &verdicts);
}

/// What the gates are told about `digest` of the source repository
/// `source`: read from the source (once; the executor reuses it), with
/// every destination and tag `wants` give it.
async fn gate_input(
    source: &Repository,
    digest: &Digest,
    wants: &[RepoWant],
    registries: &Registries,
    manifests: &ManifestCache,
) -> Result<GateInput, RegistryError> {
    let manifest = match manifests.get(source, digest) {
        Some(manifest) => manifest,
        None => {
            let registry = registries.get(source.endpoint());
            let manifest = registry
                .get_manifest(source, &ManifestRef::Digest(digest.clone()))
                .await?
                .ok_or_else(|| RegistryError::Vanished {
                    what: format!("{source}@{digest}"),
                    message: "vanished from the source".to_string(),
                })?;
            manifests.insert(source, &manifest);
            manifest
        }
    };
    let what = format!("{source}@{digest}");
    let refs = crate::oci::references(&manifest, &what)?;
    let mut destinations = Vec::new();
    let mut tags = BTreeSet::new();
    for want in wants {
        let Some(d) = want.digests.get(digest) else {
            continue;
        };
        if d.sources.iter().any(|s| &s.repo == source) {
            destinations.push(format!("{}/{}", want.registry, want.image));
            tags.extend(d.tags.keys().map(Tag::to_string));
        }
    }
    Ok(GateInput {
        hook: "gate",
        source: what,
        digest: digest.clone(),
        media_type: manifest.media_type.clone(),
        platforms: refs.platforms,
        destinations,
        tags: tags.into_iter().collect(),
    })
}
