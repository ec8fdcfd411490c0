//! Sinker's `.images.yaml`, as Sinker reads it: `target` {host,
//! repository}, `sources` [{repository, host, target, tag | digest}]. A
//! source goes where Sinker's `TargetImage` puts it: below its own
//! `target` when that has a host, else the manifest's, its whole
//! repository path (only the last component on Docker Hub, quay.io and
//! ghcr.io, which Sinker flattens), tagged with its tag or, for a source
//! pinned by digest, the digest's hex. Keys Sinker does not read are
//! warned about, not refused; the names of credential variables (`auth`)
//! are never read.

use std::path::Path;
use std::sync::Arc;

use super::{image, intent_of, located, optional_list, CREDENTIALS_HELP};
use crate::manifest::decode::{lenient_fields, Ctx, Fields};
use crate::manifest::intent::map_repository;
use crate::manifest::intent::model::{Format, Intent, IntentImage, PinnedDigest, Selectors};
use crate::manifest::yaml::{Node, Pos};
use crate::reference::{Digest, ImageName, RegistryName, Tag};

pub(crate) mod model;
pub(crate) mod write;

use model::{Auth, SinkerFile, Source, Target};

/// What an unknown key is told.
const IGNORED: &str = "Sinker ignores it, and so does promoter";

/// A Sinker image manifest as an intent.
pub(crate) fn decode(root: &Node<'_>, ctx: &mut Ctx<'_>, file: &Arc<Path>) -> Option<Intent> {
    let (sinker, positions) = read(root, ctx)?;
    let images = sinker
        .sources
        .iter()
        .zip(positions)
        .filter_map(|(source, pos)| mapped(source, pos, ctx))
        .collect();
    intent_of(images, Vec::new(), Format::Sinker, file, root.pos, ctx)
}

/// The file as Sinker's `Get` reads it (the manifest's target given to
/// every source without a host of its own), and where each source is.
pub(crate) fn read(root: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<(SinkerFile, Vec<Pos>)> {
    let top = lenient_fields(
        root,
        "a Sinker image manifest",
        &["target", "sources"],
        IGNORED,
        ctx,
    )?;
    let target = match top.value(0) {
        Some(n) if !n.is_null() => target(n, "the `target`", ctx)?,
        _ => Target::default(),
    };
    let items = optional_list(
        top.value(1),
        root.pos,
        "`sources` is not a list of images",
        "write each image as `- repository: coreos/prometheus-operator` with its `host` and `tag`",
        ctx,
    )?;
    let mut sources = Vec::new();
    let mut positions = Vec::new();
    for item in items {
        if let Some(source) = source(item, ctx) {
            sources.push(source);
            positions.push(item.pos);
        }
    }
    Some((SinkerFile { target, sources }.inherit(), positions))
}

/// A string field as Go's yaml.v2 reads it: a scalar's text, `""` for a
/// null; anything else is an error.
fn string<const N: usize>(
    f: &Fields<'_, '_, N>,
    i: usize,
    what: &str,
    ctx: &mut Ctx<'_>,
) -> Option<String> {
    match f.value(i) {
        None => Some(String::new()),
        Some(n) if n.is_null() => Some(String::new()),
        Some(n) => match n.as_scalar() {
            Some(s) => Some(s.text.to_string()),
            None => {
                ctx.error(
                    n.pos,
                    format!("expected {what}, found {}", n.describe()),
                    None,
                );
                None
            }
        },
    }
}

fn target(node: &Node<'_>, what: &str, ctx: &mut Ctx<'_>) -> Option<Target> {
    let f = lenient_fields(node, what, &["host", "repository", "auth"], IGNORED, ctx)?;
    let auth = f.value(2).filter(|n| !n.is_null()).map(|n| {
        ctx.warning(
            n.pos,
            format!("{what}'s `auth` is not read"),
            Some(CREDENTIALS_HELP.to_string()),
        );
        auth(n, ctx)
    });
    Some(Target {
        host: string(&f, 0, "a registry host", ctx)?,
        repository: string(&f, 1, "a repository path", ctx)?,
        auth: auth.flatten().unwrap_or_default(),
    })
}

/// `auth`: kept as written (the names of variables), so that `update`
/// writes it back; never read.
fn auth(node: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<Auth> {
    let f = lenient_fields(node, "an `auth`", &["username", "password"], IGNORED, ctx)?;
    Some(Auth {
        username: string(&f, 0, "a variable name", ctx)?,
        password: string(&f, 1, "a variable name", ctx)?,
    })
}

fn source(item: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<Source> {
    let f = lenient_fields(
        item,
        "a Sinker source",
        &["repository", "host", "target", "tag", "digest", "auth"],
        IGNORED,
        ctx,
    )?;
    let own_auth = f.value(5).filter(|n| !n.is_null()).map(|n| {
        ctx.warning(
            n.pos,
            "the source's `auth` is not read",
            Some(CREDENTIALS_HELP.to_string()),
        );
        auth(n, ctx)
    });
    let target = match f.value(2) {
        Some(n) if !n.is_null() => target(n, "the source's `target`", ctx)?,
        _ => Target::default(),
    };
    Some(Source {
        repository: string(&f, 0, "a repository path", ctx)?,
        host: string(&f, 1, "a registry host", ctx)?,
        target,
        tag: string(&f, 3, "a tag", ctx)?,
        digest: string(&f, 4, "a digest", ctx)?,
        auth: own_auth.flatten().unwrap_or_default(),
    })
}

/// A source as an intent image: read at `Image()`, written at `TargetImage()`.
fn mapped(source: &Source, pos: Pos, ctx: &mut Ctx<'_>) -> Option<IntentImage> {
    let select = selectors(source, pos, ctx)?;
    let host = |h: &str| {
        if h.is_empty() {
            "docker.io".to_string()
        } else {
            h.to_string()
        }
    };
    let repository = source.repository.trim_matches('/');
    if ImageName::parse(repository).is_err() {
        ctx.error(
            pos,
            format!("{:?} is not a repository path", source.repository),
            Some("write `repository: <path>` in lowercase, e.g. coreos/prometheus-operator".into()),
        );
        return None;
    }
    let from = registry_name(&host(&source.host), pos, ctx)?;
    let below = match source.target.repository.trim_matches('/') {
        "" => host(&source.target.host),
        path => format!("{}/{path}", host(&source.target.host)),
    };
    let to = registry_name(&below, pos, ctx)?;
    match map_repository(&from, repository, &to, &source.target_path()) {
        Some(mapped) => Some(image(mapped, select, pos, ctx)),
        None => {
            ctx.error(
                pos,
                format!("{} is not a repository path", source.target_image()),
                None,
            );
            None
        }
    }
}

fn registry_name(text: &str, pos: Pos, ctx: &mut Ctx<'_>) -> Option<RegistryName> {
    RegistryName::parse(text)
        .map_err(|e| ctx.name_error(pos, e))
        .ok()
}

/// What a source selects: its tag (which wins, as in Sinker), else its
/// digest, tagged with the digest's hex in the target.
fn selectors(source: &Source, pos: Pos, ctx: &mut Ctx<'_>) -> Option<Selectors> {
    let mut select = Selectors::default();
    if !source.tag.is_empty() {
        if !source.digest.is_empty() {
            ctx.warning(
                pos,
                "`digest` is not read when the source has a `tag`: Sinker mirrors the tag",
                Some(
                    "leave out `tag` to mirror the digest (tagged with its hex, as Sinker tags it)"
                        .into(),
                ),
            );
        }
        let tag = Tag::parse(&source.tag)
            .map_err(|e| ctx.name_error(pos, e))
            .ok()?;
        select.tags.push(located(tag, pos, ctx));
        return Some(select);
    }
    if source.digest.is_empty() {
        ctx.error(
            pos,
            format!(
                "the source {} has neither `tag` nor `digest`",
                source.repository
            ),
            Some("add the `tag` to mirror (or the `digest`)".into()),
        );
        return None;
    }
    let digest = Digest::parse(&source.digest)
        .map_err(|e| ctx.name_error(pos, e))
        .ok()?;
    let hex = Tag::parse(&source.digest.replace("sha256:", ""))
        .map_err(|e| ctx.name_error(pos, e))
        .ok()?;
    select.digests.push(located(
        PinnedDigest {
            tag: Some(hex),
            digest,
        },
        pos,
        ctx,
    ));
    Some(select)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, mapped};
    use super::*;

    const D: &str = "sha256:31a54a0cf86d7354788a8265f60ae6acb4b348a67efbcf7c1007dd3cf7af05ab";

    #[test]
    fn sinker_images_go_below_the_target_with_their_whole_path() {
        let (intent, errors) = load(&format!(
            "target:\n  host: organization.com\n  repository: team\nsources:\n\
             - repository: coreos/prometheus-operator\n  host: quay.io\n  tag: v0.40.0\n\
             - repository: jimmidyson/configmap-reload\n  tag: v0.4.0\n\
             - repository: busybox\n  digest: {D}\n"
        ));
        assert!(errors.is_empty(), "{errors:?}");
        let intent = intent.unwrap();
        assert_eq!(intent.format, Format::Sinker);
        assert_eq!(
            mapped(&intent),
            [
                "quay.io | coreos/prometheus-operator | organization.com/team | v0.40.0",
                "docker.io | jimmidyson/configmap-reload | organization.com/team | v0.4.0",
                &format!(
                    "docker.io/library | busybox | organization.com/team | {}@sha256:31a54",
                    &D[7..]
                ),
            ]
        );
    }

    /// Sinker's test/list fixture: a Docker Hub target flattens the path
    /// (expected-target.txt: plexsystems/sinker-test:v1.0.0 and :v2.0.0).
    #[test]
    fn docker_hub_quay_and_ghcr_targets_are_flattened() {
        let (intent, errors) = load(
            "target:\n  repository: plexsystems\nsources:\n\
             - repository: nested/sinker-test\n  host: host.com\n  tag: v1.0.0\n\
             - repository: sinker-test\n  host: host.com\n  tag: v2.0.0\n\
             - repository: a/b/c\n  host: host.com\n  tag: v3\n  target:\n    host: ghcr.io\n    repository: me\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            mapped(&intent.unwrap()),
            [
                "host.com/nested | sinker-test | docker.io/plexsystems | v1.0.0",
                "host.com | sinker-test | docker.io/plexsystems | v2.0.0",
                "host.com/a/b | c | ghcr.io/me | v3",
            ]
        );
    }

    /// Sinker's test/update/original.yaml: a source's own `target`.
    #[test]
    fn a_source_target_with_a_host_is_its_own() {
        let (intent, errors) = load(&format!(
            "target:\n  host: myhost.com\nsources:\n- repository: some/image\n  tag: v1.0.0\n  auth:\n    username: MY_USER\n    password: MY_PASS\n\
             - repository: some/repo\n  target:\n    host: my-host.example\n    repository: my-repo\n  digest: {D}\n\
             - repository: other/repo\n  target:\n    repository: ignored-without-a-host\n  tag: \"1.0\"\n  colour: red\n"
        ));
        let all = errors.join("\n");
        assert!(!all.contains("error"), "{all}");
        assert!(
            all.contains("unknown key \"colour\" in a Sinker source: Sinker ignores it"),
            "{all}"
        );
        assert!(
            !all.contains("MY_PASS") || all.contains("`auth` is not read"),
            "{all}"
        );
        assert_eq!(
            mapped(&intent.unwrap()),
            [
                "docker.io | some/image | myhost.com | v1.0.0",
                &format!(
                    "docker.io | some/repo | my-host.example/my-repo | {}@sha256:31a54",
                    &D[7..]
                ),
                "docker.io | other/repo | myhost.com | 1.0",
            ]
        );
    }

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/seeds/sinker")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Sinker's test/update: `update` keeps a per-source target and the
    /// auth variables, changes the tag, and writes Sinker's own format
    /// byte for byte (test/update/expected.yaml).
    #[test]
    fn update_writes_sinkers_expected_file() {
        let name: Arc<Path> = Arc::from(Path::new("original.yaml"));
        let (file, diagnostics) =
            crate::manifest::intent::sinker::load_text(name, &fixture("update/original.yaml"));
        assert!(!diagnostics.iter().any(|d| d.is_error()), "{diagnostics:?}");
        let images = [
            "some/image:v2.0.0".to_string(),
            "some/repo@sha256:abc123".to_string(),
        ];
        let updated = file.unwrap().update(&images);
        assert_eq!(
            write::sinker_text(&updated),
            fixture("update/expected.yaml")
        );
    }

    /// Sinker's test/list and example: `list source` and `list target`.
    #[test]
    fn list_gives_sinkers_expected_lists() {
        for (file, source, target) in [
            (
                "list/.images.yaml",
                "list/expected-source.txt",
                "list/expected-target.txt",
            ),
            (
                "example/.images.yaml",
                "example/source.txt",
                "example/target.txt",
            ),
        ] {
            let (sinker, _) = crate::manifest::intent::sinker::load_text(
                Arc::from(Path::new(file)),
                &fixture(file),
            );
            let sinker = sinker.unwrap();
            let list = |f: fn(&Source) -> String| -> String {
                sinker
                    .sources
                    .iter()
                    .map(|s| format!("{}\n", f(s)))
                    .collect()
            };
            assert_eq!(list(Source::image), fixture(source), "{file}");
            assert_eq!(list(Source::target_image), fixture(target), "{file}");
        }
    }

    #[test]
    fn sinker_credentials_warn_and_missing_tags_are_errors() {
        let (intent, errors) = load(
            "target:\n  host: organization.com\n  auth:\n    password: SECRET_VAR\nsources:\n- repository: a/b\n",
        );
        assert!(intent.is_none());
        let all = errors.join("\n");
        assert!(
            all.contains("seed.yaml:4:5: warning: the `target`'s `auth` is not read"),
            "{all}"
        );
        assert!(
            all.contains("seed.yaml:6:3: error: the source a/b has neither `tag` nor `digest`"),
            "{all}"
        );
        assert!(!all.contains("SECRET_VAR"), "{all}");
    }
}
