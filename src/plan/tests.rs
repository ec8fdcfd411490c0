//! The planner's rules, as examples and as properties over random worlds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::diag::Location;
use crate::reference::{Digest, ImageName, RegistryName, Tag};

fn digest(n: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}
fn tag(name: &str) -> Tag {
    Tag::parse(name).unwrap()
}
fn loc(line: u32) -> Location {
    Location {
        file: Arc::from(Path::new("images/a/images.yaml")),
        line,
        col: 3,
    }
}
fn registry(name: &str) -> RegistryName {
    RegistryName::parse(name).unwrap()
}
fn image(name: &str) -> ImageName {
    ImageName::parse(name).unwrap()
}

const SRC: &str = "src.example/stage";
const DST: &str = "dst.example/prod";

fn source_ref(img: &str) -> SourceRef {
    SourceRef {
        registry: registry(SRC),
        repo: registry(SRC).repository(&image(img)),
    }
}

/// One destination repository `foo` wanting `digests` (digest number -> tags).
fn want(digests: &[(u8, &[&str])]) -> RepoWant {
    let mut map = BTreeMap::new();
    for (i, (n, tags)) in digests.iter().enumerate() {
        map.insert(
            digest(*n),
            DigestWant {
                tags: tags.iter().map(|t| (tag(t), loc(i as u32 + 1))).collect(),
                sources: BTreeSet::from([source_ref("foo")]),
                location: loc(i as u32 + 1),
            },
        );
    }
    RepoWant {
        movable: Default::default(),
        registry: registry(DST),
        image: image("foo"),
        repo: registry(DST).repository(&image("foo")),
        digests: map,
    }
}

fn dest_repo() -> Repository {
    registry(DST).repository(&image("foo"))
}

fn inventory(
    dest_tags: &[(&str, Observed<Digest>)],
    dest_digests: &[(u8, Observed<()>)],
    source: &[(u8, Observed<()>)],
) -> Inventory {
    let mut inv = Inventory::default();
    inv.destinations.insert(
        dest_repo(),
        DestState {
            tags: dest_tags.iter().map(|(t, o)| (tag(t), o.clone())).collect(),
            digests: dest_digests
                .iter()
                .map(|(n, o)| (digest(*n), o.clone()))
                .collect(),
            ..DestState::default()
        },
    );
    inv.sources.insert(
        source_ref("foo").repo,
        source
            .iter()
            .map(|(n, o)| (digest(*n), o.clone()))
            .collect(),
    );
    inv
}

fn kinds(plan: &Plan) -> Vec<(String, u8, Option<String>)> {
    plan.items
        .iter()
        .map(|i| {
            let n = u8::from_str_radix(&i.digest.hex()[..2], 16).unwrap();
            (
                i.action.name().to_string(),
                n,
                i.tag().map(|t| t.to_string()),
            )
        })
        .collect()
}

#[test]
fn already_there_plans_nothing() {
    let w = want(&[(1, &["1.0"])]);
    let inv = inventory(&[("1.0", Observed::Present(digest(1)))], &[], &[]);
    let p = plan(&[w], &inv);
    assert!(p.items.is_empty());
    assert_eq!(p.already_present, 1);
}

#[test]
fn digest_there_tag_missing_adds_the_tag_only() {
    let w = want(&[(1, &["1.0"])]);
    let inv = inventory(
        &[("1.0", Observed::Absent)],
        &[(1, Observed::Present(()))],
        &[],
    );
    let p = plan(&[w], &inv);
    assert_eq!(kinds(&p), vec![("tag".into(), 1, Some("1.0".into()))]);
}

#[test]
fn neither_there_copies_then_tags() {
    let w = want(&[(1, &["1.0", "latest"])]);
    let inv = inventory(
        &[("1.0", Observed::Absent), ("latest", Observed::Absent)],
        &[(1, Observed::Absent)],
        &[(1, Observed::Present(()))],
    );
    let p = plan(&[w], &inv);
    assert_eq!(
        kinds(&p),
        vec![
            ("copy".into(), 1, None),
            ("tag".into(), 1, Some("1.0".into())),
            ("tag".into(), 1, Some("latest".into())),
        ]
    );
    assert_eq!(p.items[0].source(), Some(&source_ref("foo")));
}

#[test]
fn missing_everywhere_is_lost_not_fatal() {
    let w = want(&[(1, &["1.0"])]);
    let inv = inventory(
        &[("1.0", Observed::Absent)],
        &[(1, Observed::Absent)],
        &[(1, Observed::Absent)],
    );
    let p = plan(&[w], &inv);
    assert_eq!(kinds(&p), vec![("lost".into(), 1, Some("1.0".into()))]);
    assert!(!p.has_refusals());
}

#[test]
fn a_tag_on_another_digest_is_refused_and_names_both_digests_and_the_line() {
    let w = want(&[(1, &["1.0"])]);
    let inv = inventory(&[("1.0", Observed::Present(digest(2)))], &[], &[]);
    let p = plan(&[w], &inv);
    assert_eq!(kinds(&p), vec![("refused".into(), 1, Some("1.0".into()))]);
    assert!(p.has_refusals());
    let reason = p.items[0].reason();
    assert!(reason.contains(digest(2).as_str()), "{reason}");
    assert!(reason.contains("images/a/images.yaml:1:3"), "{reason}");
    assert_eq!(p.items[0].digest, digest(1));
}

#[test]
fn a_followed_tag_moves_and_says_from_where() {
    let mut w = want(&[(1, &["latest", "1.0"])]);
    w.movable.insert(tag("latest"));
    let inv = inventory(
        &[
            ("latest", Observed::Present(digest(2))),
            ("1.0", Observed::Absent),
        ],
        &[(1, Observed::Absent)],
        &[(1, Observed::Present(()))],
    );
    let p = plan(&[w], &inv);
    assert_eq!(
        kinds(&p),
        vec![
            ("copy".into(), 1, None),
            ("tag".into(), 1, Some("1.0".into())),
            ("move".into(), 1, Some("latest".into())),
        ]
    );
    assert!(!p.has_refusals());
    assert_eq!(p.counts().moved, 1);
    let moved = &p.items[2];
    assert_eq!(
        moved.action,
        Action::Move {
            tag: tag("latest"),
            from: digest(2)
        }
    );
    assert!(
        moved.reason().contains(digest(2).as_str()),
        "{}",
        moved.reason()
    );
    // Read back from a plan file, it is the same move.
    let json = serde_json::to_string(moved).unwrap();
    assert!(json.contains("\"kind\":\"move\""), "{json}");
    assert_eq!(&serde_json::from_str::<PlanItem>(&json).unwrap(), moved);
}

#[test]
fn a_refused_move_does_not_stop_other_digests() {
    let w = want(&[(1, &["1.0"]), (3, &["2.0"])]);
    let inv = inventory(
        &[
            ("1.0", Observed::Present(digest(2))),
            ("2.0", Observed::Absent),
        ],
        &[(3, Observed::Absent)],
        &[(3, Observed::Present(()))],
    );
    let p = plan(&[w], &inv);
    assert_eq!(
        kinds(&p),
        vec![
            ("refused".into(), 1, Some("1.0".into())),
            ("copy".into(), 3, None),
            ("tag".into(), 3, Some("2.0".into())),
        ]
    );
}

#[test]
fn a_damaged_digest_is_copied_again_though_its_tag_is_in_place() {
    let w = want(&[(1, &["1.0"])]);
    let mut inv = inventory(
        &[("1.0", Observed::Present(digest(1)))],
        &[],
        &[(1, Observed::Present(()))],
    );
    let state = inv.destinations.get_mut(&dest_repo()).unwrap();
    state
        .damaged
        .insert(digest(1), Damage::Incomplete("missing_blob".into()));
    assert_eq!(
        source_reads(std::slice::from_ref(&w), &inv),
        BTreeSet::from([(source_ref("foo").repo, digest(1))]),
        "the source is read for it"
    );
    let p = plan(&[w], &inv);
    assert_eq!(kinds(&p), vec![("copy".into(), 1, None)]);
    assert_eq!(p.already_present, 1, "the tag itself is in place");
}

#[test]
fn a_digest_verify_could_not_check_is_blocked_not_trusted() {
    let w = want(&[(1, &["1.0"])]);
    let mut inv = inventory(&[("1.0", Observed::Present(digest(1)))], &[], &[]);
    let state = inv.destinations.get_mut(&dest_repo()).unwrap();
    state
        .damaged
        .insert(digest(1), Damage::Unchecked("HTTP 500".into()));
    let p = plan(&[w], &inv);
    assert_eq!(kinds(&p), vec![("blocked".into(), 1, None)]);
    assert!(p.has_blocked());
}

#[test]
fn a_damaged_digest_the_source_lost_too_is_lost() {
    let w = want(&[(1, &["1.0"])]);
    let mut inv = inventory(
        &[("1.0", Observed::Present(digest(1)))],
        &[],
        &[(1, Observed::Absent)],
    );
    let state = inv.destinations.get_mut(&dest_repo()).unwrap();
    state
        .damaged
        .insert(digest(1), Damage::Incomplete("missing_child".into()));
    let p = plan(&[w], &inv);
    assert_eq!(kinds(&p), vec![("lost".into(), 1, None)]);
}

#[test]
fn an_untagged_entry_promotes_by_digest() {
    let w = want(&[(1, &[])]);
    let inv = inventory(&[], &[(1, Observed::Absent)], &[(1, Observed::Present(()))]);
    assert_eq!(
        kinds(&plan(std::slice::from_ref(&w), &inv)),
        vec![("copy".into(), 1, None)]
    );
    let there = inventory(&[], &[(1, Observed::Present(()))], &[]);
    let p = plan(&[w], &there);
    assert!(p.items.is_empty());
    assert_eq!(p.already_present, 1);
}

#[test]
fn unknown_reads_block_only_their_own_edges() {
    let w = want(&[(1, &["1.0"]), (3, &["2.0"])]);
    let inv = inventory(
        &[
            ("1.0", Observed::Unknown("HTTP 500".into())),
            ("2.0", Observed::Absent),
        ],
        &[(3, Observed::Present(()))],
        &[],
    );
    let p = plan(&[w], &inv);
    assert_eq!(
        kinds(&p),
        vec![
            ("blocked".into(), 1, Some("1.0".into())),
            ("tag".into(), 3, Some("2.0".into())),
        ]
    );
}

#[test]
fn an_unreadable_source_blocks_rather_than_loses() {
    let w = want(&[(1, &["1.0"])]);
    let inv = inventory(
        &[("1.0", Observed::Absent)],
        &[(1, Observed::Absent)],
        &[(1, Observed::Unknown("connection reset".into()))],
    );
    let p = plan(&[w], &inv);
    assert_eq!(kinds(&p), vec![("blocked".into(), 1, Some("1.0".into()))]);
}

#[test]
fn the_source_is_not_read_when_the_destination_has_everything() {
    let w = want(&[(1, &["1.0"])]);
    let inv = inventory(&[("1.0", Observed::Present(digest(1)))], &[], &[]);
    assert!(source_reads(std::slice::from_ref(&w), &inv).is_empty());
    let refused = inventory(
        &[("1.0", Observed::Present(digest(2)))],
        &[(1, Observed::Absent)],
        &[],
    );
    assert!(
        source_reads(std::slice::from_ref(&w), &refused).is_empty(),
        "a refused tag needs no content"
    );
    let cold = inventory(&[("1.0", Observed::Absent)], &[(1, Observed::Absent)], &[]);
    assert_eq!(
        source_reads(&[w], &cold),
        BTreeSet::from([(source_ref("foo").repo, digest(1))])
    );
}

#[test]
fn two_names_for_one_repository_merge() {
    use crate::manifest::{DigestEntry, Image, Manifest, RegistryEntry, TagEntry};
    let entry = |name: &str| RegistryEntry {
        name: registry(name),
        service_account: None,
        location: loc(1),
    };
    let manifest = |dest: &str, img: &str, n: u8, t: &str| Manifest {
        registries_file: Arc::from(Path::new("m.yaml")),
        images_file: Arc::from(Path::new("m.yaml")),
        source: entry(SRC),
        destinations: vec![entry(dest)],
        images: vec![Image {
            follow: Vec::new(),
            target: None,
            name: image(img),
            location: loc(2),
            digests: vec![DigestEntry {
                digest: digest(n),
                location: loc(3),
                tags: vec![TagEntry {
                    tag: tag(t),
                    location: loc(3),
                }],
            }],
        }],
    };
    let ws = wants(&[
        manifest("dst.example/a", "b/c", 1, "x"),
        manifest("dst.example/a/b", "c", 2, "y"),
    ]);
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0].repo.to_string(), "dst.example/a/b/c");
    assert_eq!(ws[0].digests.len(), 2);
}

#[test]
fn a_renamed_image_is_wanted_at_its_target_and_read_from_its_name() {
    let text = format!(
        "registries:\n- name: {SRC}\n  src: true\n- name: {DST}\n- name: dst.example/dr\nimages:\n\
         - name: library/busybox\n  target: base/busybox-arm64\n  dmap:\n    \"{}\": [\"latest\"]\n\
         - name: library/busybox\n  dmap:\n    \"{}\": [\"latest\"]\n",
        digest(1),
        digest(2)
    );
    let loaded = crate::manifest::load_plain_text(Path::new("m.yaml"), &text);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let ws = wants(&loaded.manifests);
    let shown: Vec<(String, String, String)> = ws
        .iter()
        .map(|w| {
            let (d, want) = w.digests.iter().next().unwrap();
            let source = want.sources.iter().next().unwrap();
            (w.repo.to_string(), source.repo.to_string(), d.to_string())
        })
        .collect();
    let src = format!("{SRC}/library/busybox");
    assert_eq!(
        shown,
        [
            (
                "dst.example/dr/base/busybox-arm64".into(),
                src.clone(),
                digest(1).to_string()
            ),
            (
                "dst.example/dr/library/busybox".into(),
                src.clone(),
                digest(2).to_string()
            ),
            (
                "dst.example/prod/base/busybox-arm64".into(),
                src.clone(),
                digest(1).to_string()
            ),
            (
                "dst.example/prod/library/busybox".into(),
                src,
                digest(2).to_string()
            ),
        ]
    );
    assert_eq!(ws[0].image.as_str(), "base/busybox-arm64");
}

// ---------------------------------------------------------------- properties

/// A random world: wants over a few digests and tags (tags unique per repo,
/// as the loader guarantees), and random destination and source states.
fn world() -> impl Strategy<Value = (RepoWant, Inventory)> {
    let observed_digest = prop_oneof![
        (0u8..4).prop_map(|n| Observed::Present(digest(n))),
        Just(Observed::Absent),
        Just(Observed::Unknown("boom".to_string())),
    ];
    let observed_unit = prop_oneof![
        Just(Observed::Present(())),
        Just(Observed::Absent),
        Just(Observed::Unknown("boom".to_string())),
    ];
    let damage = prop_oneof![
        3 => Just(None),
        1 => Just(Some(Damage::Incomplete("missing_blob".to_string()))),
        1 => Just(Some(Damage::Unchecked("boom".to_string()))),
    ];
    (
        proptest::collection::vec(0u8..4, 5), // owner digest of tags t0..t4 (>=3 means unwanted)
        proptest::collection::btree_set(0u8..4, 0..4), // untagged/tagged digests wanted
        proptest::collection::vec(observed_digest, 5),
        proptest::collection::vec(observed_unit.clone(), 4),
        proptest::collection::vec(observed_unit, 4),
        proptest::collection::vec(any::<bool>(), 5), // whether t0..t4 may move (`follow`)
        proptest::collection::vec(damage, 4),        // what verify found of d0..d3
    )
        .prop_map(
            |(owners, extra, tag_states, dest_digests, src_digests, follow, damage)| {
                let names = ["t0", "t1", "t2", "t3", "t4"];
                let mut spec: BTreeMap<u8, Vec<&str>> = BTreeMap::new();
                for n in extra {
                    spec.entry(n).or_default();
                }
                for (i, owner) in owners.iter().enumerate() {
                    if *owner < 3 {
                        spec.entry(*owner).or_default().push(names[i]);
                    }
                }
                let spec: Vec<(u8, &[&str])> =
                    spec.iter().map(|(n, t)| (*n, t.as_slice())).collect();
                let mut w = want(&spec);
                w.movable = names
                    .iter()
                    .zip(&follow)
                    .filter(|(_, f)| **f)
                    .map(|(n, _)| tag(n))
                    .collect();
                let tags: Vec<(&str, Observed<Digest>)> =
                    names.iter().copied().zip(tag_states).collect();
                let dd: Vec<(u8, Observed<()>)> = (0u8..4).zip(dest_digests).collect();
                let sd: Vec<(u8, Observed<()>)> = (0u8..4).zip(src_digests).collect();
                // A present tag implies its digest is present: keep the world consistent.
                let mut inv = inventory(&tags, &dd, &sd);
                let state = inv.destinations.get_mut(&dest_repo()).unwrap();
                let tagged: Vec<Digest> = state.tagged_digests().cloned().collect();
                for d in tagged {
                    state.digests.insert(d, Observed::Present(()));
                }
                for (n, damage) in (0u8..4).zip(damage) {
                    if let Some(damage) = damage {
                        state.damaged.insert(digest(n), damage);
                    }
                }
                (w, inv)
            },
        )
}

/// Carry out the plan's work on the destination state, as a perfect executor would.
fn apply(plan: &Plan, inv: &Inventory) -> Inventory {
    let mut next = inv.clone();
    for item in plan.work() {
        let state = next.destinations.entry(item.repo.clone()).or_default();
        state
            .digests
            .insert(item.digest.clone(), Observed::Present(()));
        if matches!(item.action, Action::Copy { .. }) {
            state.damaged.remove(&item.digest);
        }
        if let Some(t) = item.tag() {
            state
                .tags
                .insert(t.clone(), Observed::Present(item.digest.clone()));
        }
    }
    next
}

proptest! {
    #[test]
    fn every_wanted_edge_is_accounted_for_exactly_once((w, inv) in world()) {
        let p = plan(std::slice::from_ref(&w), &inv);
        let mut tagged = 0;
        let mut untagged = 0;
        for d in w.digests.values() {
            if d.tags.is_empty() { untagged += 1 } else { tagged += d.tags.len() }
        }
        let tag_items = p.items.iter().filter(|i| i.tag().is_some()).count();
        let untagged_items = p.items.iter()
            .filter(|i| i.tag().is_none() && w.digests[&i.digest].tags.is_empty())
            .count();
        prop_assert_eq!(tag_items + untagged_items + p.already_present, tagged + untagged);
    }

    #[test]
    fn only_a_followed_tag_ever_moves((w, inv) in world()) {
        let p = plan(std::slice::from_ref(&w), &inv);
        let state = &inv.destinations[&dest_repo()];
        for item in p.work() {
            if let Some(t) = item.tag() {
                match &item.action {
                    Action::Move { from, .. } => {
                        prop_assert!(w.movable.contains(t));
                        prop_assert_eq!(state.tags.get(t), Some(&Observed::Present(from.clone())));
                        prop_assert_ne!(from, &item.digest);
                    }
                    _ => prop_assert_eq!(state.tags.get(t), Some(&Observed::Absent)),
                }
            }
        }
        // A tag that may not move and points elsewhere is refused, never moved.
        for item in &p.items {
            if let Action::RefusedTagMove { .. } = item.action {
                prop_assert!(!w.movable.contains(item.tag().unwrap()));
            }
        }
    }

    #[test]
    fn copies_only_what_the_destination_lacks_and_the_source_has((w, inv) in world()) {
        let p = plan(&[w], &inv);
        let state = &inv.destinations[&dest_repo()];
        let is_copy = |i: &&PlanItem| matches!(i.action, Action::Copy { .. });
        for item in p.items.iter().filter(is_copy) {
            prop_assert_eq!(state.digest(&item.digest), Observed::Absent);
            let source = item.source().unwrap();
            prop_assert_eq!(inv.sources[&source.repo].get(&item.digest), Some(&Observed::Present(())));
        }
        // Every tag write has its digest in place or copied first.
        let writes_tag = |i: &&PlanItem| matches!(i.action, Action::Tag { .. } | Action::Move { .. });
        for item in p.items.iter().filter(writes_tag) {
            let copied = p.items.iter().any(|c| is_copy(&c) && c.digest == item.digest);
            prop_assert!(copied || state.digest(&item.digest) == Observed::Present(()));
        }
    }

    #[test]
    fn plans_are_sorted_and_deterministic((w, inv) in world()) {
        let a = plan(std::slice::from_ref(&w), &inv);
        let b = plan(&[w], &inv);
        prop_assert_eq!(&a, &b);
        let keys: Vec<_> = a.items.iter().map(|i| i.sort_key()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        prop_assert_eq!(keys, sorted);
    }

    #[test]
    fn a_second_run_plans_nothing((w, inv) in world()) {
        let first = plan(std::slice::from_ref(&w), &inv);
        let second = plan(&[w], &apply(&first, &inv));
        prop_assert_eq!(second.work().count(), 0);
        // Whatever was refused, lost or blocked stays so: nothing was hidden.
        let problems = |p: &Plan| p.items.iter().filter(|i| !i.action.is_work()).count();
        prop_assert_eq!(problems(&first), problems(&second));
    }

    #[test]
    fn a_damaged_digest_is_copied_again_or_held_back_never_trusted((w, inv) in world()) {
        let p = plan(std::slice::from_ref(&w), &inv);
        let state = &inv.destinations[&dest_repo()];
        for (digest, damage) in &state.damaged {
            if !w.digests.contains_key(digest) {
                continue;
            }
            let mine: Vec<&PlanItem> = p.items.iter().filter(|i| &i.digest == digest).collect();
            // The digest itself is an edge: copied, or why it cannot be.
            let own = mine.iter().find(|i| i.tag().is_none() && !matches!(i.action, Action::Attach { .. }));
            let own = own.map(|i| i.action.name());
            match damage {
                Damage::Incomplete(_) => {
                    let source = &inv.sources[&source_ref("foo").repo];
                    let expected = match source.get(digest) {
                        Some(Observed::Present(())) => "copy",
                        Some(Observed::Absent) => "lost",
                        _ => "blocked",
                    };
                    prop_assert_eq!(own, Some(expected));
                }
                Damage::Unchecked(_) => {
                    prop_assert_eq!(own, Some("blocked"));
                    prop_assert!(mine.iter().all(|i| !i.action.is_work()));
                }
            }
            // A tag already at the digest is never written again.
            for item in mine.iter().filter(|i| matches!(i.action, Action::Tag { .. })) {
                let t = item.tag().unwrap();
                prop_assert_ne!(state.tags.get(t), Some(&Observed::Present(digest.clone())));
            }
        }
    }

    #[test]
    fn source_reads_cover_exactly_the_copies_and_losses((w, inv) in world()) {
        let reads = source_reads(std::slice::from_ref(&w), &inv);
        let p = plan(&[w], &inv);
        let reads_source = |i: &&PlanItem| matches!(i.action, Action::Copy { .. } | Action::Lost(_));
        for item in p.items.iter().filter(reads_source) {
            let source = item.source().unwrap();
            prop_assert!(reads.contains(&(source.repo.clone(), item.digest.clone())));
        }
        for (_, d) in &reads {
            let needs_content = |i: &PlanItem| !matches!(i.action, Action::Tag { .. });
            prop_assert!(p.items.iter().any(|i| &i.digest == d && needs_content(i)));
        }
    }
}

#[test]
fn shard_specs_parse_and_refuse_nonsense() {
    assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
    for bad in ["3/3", "0/0", "1", "a/b", "-1/2", ""] {
        assert!(bad.parse::<Shard>().is_err(), "{bad:?}");
    }
}

proptest! {
    #[test]
    fn shards_cover_every_repository_exactly_once(
        repos in proptest::collection::btree_set("[a-z]{1,8}(/[a-z0-9]{1,6}){0,2}", 0..40),
        count in 1u32..9,
    ) {
        let wants: Vec<RepoWant> = repos.iter().map(|r| RepoWant {
            movable: Default::default(),
            registry: registry(DST),
            image: image(r),
            repo: registry(DST).repository(&image(r)),
            digests: BTreeMap::new(),
        }).collect();
        let mut seen = Vec::new();
        for index in 0..count {
            for w in shard(wants.clone(), Shard { index, count }) {
                seen.push(w.repo);
            }
        }
        seen.sort();
        let mut all: Vec<Repository> = wants.into_iter().map(|w| w.repo).collect();
        all.sort();
        prop_assert_eq!(seen, all);
    }
}

// ---------------------------------------------------------------- attachments

fn attachment(n: u8, tag: Option<&str>, nested: Vec<Attachment>) -> Attachment {
    Attachment {
        digest: digest(n),
        artifact_type: Some("application/vnd.dev.cosign.simplesigning.v1+json".into()),
        tag: tag.map(self::tag),
        attachments: nested,
    }
}

/// `inv` with `list` as the source's attachments of digest `n`.
fn attached(mut inv: Inventory, n: u8, list: Observed<Vec<Attachment>>) -> Inventory {
    inv.attachments
        .entry(source_ref("foo").repo)
        .or_default()
        .insert(digest(n), list);
    inv
}

#[test]
fn a_late_signature_of_a_present_image_is_attached_on_its_own() {
    let inv = inventory(&[("1.0", Observed::Present(digest(1)))], &[], &[]);
    let sig = attachment(9, Some("sha256-x.sig"), vec![]);
    let mut inv = attached(inv, 1, Observed::Present(vec![sig]));
    inv.destinations
        .get_mut(&dest_repo())
        .unwrap()
        .tags
        .insert(tag("sha256-x.sig"), Observed::Absent);
    let plan = plan(&[want(&[(1, &["1.0"])])], &inv);
    assert_eq!(
        kinds(&plan),
        vec![("attach".into(), 1, Some("sha256-x.sig".into()))]
    );
    assert_eq!(plan.counts().attach, 1);
    assert_eq!(plan.already_present, 1, "the tag itself");
    // Once it is there, nothing is left to do.
    inv.destinations
        .get_mut(&dest_repo())
        .unwrap()
        .tags
        .insert(tag("sha256-x.sig"), Observed::Present(digest(9)));
    let plan = plan_of(&inv);
    assert!(plan.items.is_empty(), "{:?}", plan.items);
    assert_eq!(plan.already_present, 2);
}

fn plan_of(inv: &Inventory) -> Plan {
    plan(&[want(&[(1, &["1.0"])])], inv)
}

#[test]
fn a_copied_image_brings_its_attachments_before_its_tags_and_theirs_too() {
    let inv = inventory(
        &[("1.0", Observed::Absent)],
        &[
            (1, Observed::Absent),
            (8, Observed::Absent),
            (9, Observed::Absent),
        ],
        &[(1, Observed::Present(()))],
    );
    // An SBOM referrer, itself signed under a cosign tag.
    let sbom = attachment(
        8,
        None,
        vec![attachment(9, Some("sha256-sbom.sig"), vec![])],
    );
    let mut inv = attached(inv, 1, Observed::Present(vec![sbom]));
    inv.destinations
        .get_mut(&dest_repo())
        .unwrap()
        .tags
        .insert(tag("sha256-sbom.sig"), Observed::Absent);
    let plan = plan_of(&inv);
    let order: Vec<_> = plan
        .items
        .iter()
        .map(|i| (i.action.name(), i.digest.clone()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("copy", digest(1)),
            ("attach", digest(1)),
            ("tag", digest(1)),
            ("attach", digest(8)),
        ]
    );
}

#[test]
fn an_image_whose_attachments_cannot_be_read_is_not_promoted() {
    let inv = inventory(
        &[("1.0", Observed::Absent)],
        &[(1, Observed::Absent)],
        &[(1, Observed::Present(()))],
    );
    let inv = attached(inv, 1, Observed::Unknown("listing failed".into()));
    let plan = plan_of(&inv);
    assert!(plan
        .items
        .iter()
        .all(|i| matches!(i.action, Action::Blocked { .. })));
    assert_eq!(plan.counts().blocked, 2, "{:?}", plan.items);
    assert!(plan.work().next().is_none());
}

#[test]
fn an_attachment_tag_moves_only_when_the_source_keeps_what_it_had() {
    let mut inv = inventory(&[("1.0", Observed::Present(digest(1)))], &[], &[]);
    inv.destinations
        .get_mut(&dest_repo())
        .unwrap()
        .tags
        .insert(tag("sha256-x.sig"), Observed::Present(digest(7)));
    let mut inv = attached(
        inv,
        1,
        Observed::Present(vec![attachment(9, Some("sha256-x.sig"), vec![])]),
    );
    let refused = plan_of(&inv);
    assert_eq!(kinds(&refused)[0].0, "refused");
    assert!(refused.has_refusals());
    inv.destinations
        .get_mut(&dest_repo())
        .unwrap()
        .replaceable
        .insert(tag("sha256-x.sig"));
    let replaced = plan_of(&inv);
    assert_eq!(
        kinds(&replaced),
        vec![("attach".into(), 1, Some("sha256-x.sig".into()))]
    );
}
