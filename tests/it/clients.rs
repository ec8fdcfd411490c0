//! What the common clients read from an `oci:` tree promoter wrote: README's
//! table ("Reading an `oci:` tree with other clients"), cell by cell. One
//! image of each kind of entry (OCI manifest, OCI index, Docker schema 2
//! manifest, Docker manifest list, all with real tar layers, so that podman
//! can unpack them) is promoted through the binary into an `oci:` tree, and
//! each client of the table reads each tag: a cell says `reads` or
//! `refused: TEXT`, where TEXT is part of the client's error.
//!
//! The table names the client versions it was found with. A machine with
//! other versions still checks that every `reads` cell reads (a newer client
//! must not read less); its refusals are not asserted, since newer clients
//! read more (containers/image 5.35 reads Docker-typed entries).

use std::path::Path;

use crate::support::cli::Promoter;
use crate::support::images::{write_oci_layout, Flavor, Platform, TestBlob, TestImage};
use crate::support::podman::Podman;
use crate::support::skopeo;
use crate::support::world::{images_yaml, manifest_yaml};

const TABLE_MARKER: &str = "<!-- clients-table: checked by tests/it/clients.rs -->";
const REPO: &str = "clients";

/// README's table: the header's cells (`skopeo 1.9.3: copy`) and each row's
/// entry kind with its cells.
struct Table {
    columns: Vec<String>,
    rows: Vec<(String, Vec<String>)>,
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

fn readme_table() -> Table {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut lines = readme
        .lines()
        .skip_while(|l| l.trim() != TABLE_MARKER)
        .skip(1)
        .take_while(|l| l.starts_with('|'));
    let mut header = cells(
        lines
            .next()
            .expect("README: the clients table has a header"),
    );
    header.remove(0);
    lines.next().expect("README: the clients table's rule line");
    let rows = lines
        .map(|l| {
            let mut row = cells(l);
            let kind = row.remove(0);
            assert_eq!(row.len(), header.len(), "README clients table row {l:?}");
            (kind, row)
        })
        .collect();
    Table {
        columns: header,
        rows,
    }
}

/// A scratch directory whose whole path is lowercase: podman names an image
/// it pulls from `oci:PATH` `localhost/PATH`, which a temporary directory's
/// mixed-case random name would make an invalid name. Removed on drop.
struct LowercaseDir(std::path::PathBuf);

impl LowercaseDir {
    fn new() -> LowercaseDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            Path::new("/tmp").join(format!("promoter-clients-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        LowercaseDir(dir)
    }
}

impl Drop for LowercaseDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One image of each kind of entry, under the tag the test reads it by.
fn images() -> Vec<(&'static str, &'static str, TestImage)> {
    let image = |seed: u64, flavor: Flavor, architecture: &str| {
        let layer = TestBlob::tar_layer(seed, 600);
        TestImage::image(seed, flavor, Platform::linux(architecture), vec![layer])
    };
    let index = |seed: u64, flavor: Flavor| {
        TestImage::index_of(
            flavor,
            vec![
                image(seed, flavor, "amd64"),
                image(seed + 1, flavor, "arm64"),
            ],
        )
    };
    vec![
        (
            "OCI image manifest",
            "oci-image",
            image(3101, Flavor::Oci, "amd64"),
        ),
        ("OCI image index", "oci-index", index(3111, Flavor::Oci)),
        (
            "Docker schema 2 manifest",
            "docker-image",
            image(3121, Flavor::Docker, "amd64"),
        ),
        (
            "Docker manifest list",
            "docker-list",
            index(3131, Flavor::Docker),
        ),
    ]
}

/// `column` (`NAME VERSION: OPERATION`) run on `target`: `None` when the
/// client is missing (a skip), else its answer and the version it reported.
fn read_with(column: &str, target: &str, podman: &Podman) -> (Result<(), String>, String) {
    let (client, operation) = column
        .split_once(": ")
        .unwrap_or_else(|| panic!("README clients table column {column:?}: NAME VERSION: OP"));
    match (client.split_whitespace().next(), operation) {
        (Some("skopeo"), "inspect --raw") => (
            skopeo::try_inspect_raw(target)
                .expect("skopeo checked")
                .map(drop),
            skopeo::version().expect("skopeo checked"),
        ),
        (Some("skopeo"), "copy") => (
            skopeo::try_copy_to_dir(target).expect("skopeo checked"),
            skopeo::version().expect("skopeo checked"),
        ),
        (Some("podman"), "pull") => (podman.try_pull(target), podman.version()),
        _ => panic!("README clients table column {column:?}: no such client operation here"),
    }
}

#[test]
fn the_common_clients_read_each_kind_of_entry_as_readme_says() {
    let table = readme_table();
    assert!(!table.rows.is_empty(), "README: the clients table is empty");
    let (Some(_), Some(podman)) = (skopeo::version(), Podman::new()) else {
        return;
    };
    let images = images();
    let work = LowercaseDir::new();
    let src = work.0.join("src");
    let tagged: Vec<(&TestImage, Option<&str>)> =
        images.iter().map(|(_, tag, i)| (i, Some(*tag))).collect();
    write_oci_layout(&src, REPO, &tagged).unwrap();
    let wanted: Vec<(&str, &promoter::reference::Digest, [&str; 1])> = images
        .iter()
        .map(|(_, tag, i)| (REPO, i.digest(), [*tag]))
        .collect();
    let entries: Vec<(&str, &promoter::reference::Digest, &[&str])> =
        wanted.iter().map(|(r, d, t)| (*r, *d, &t[..])).collect();
    std::fs::write(
        work.0.join("promote.yaml"),
        manifest_yaml("oci:src", "oci:dst", &images_yaml(&entries)),
    )
    .unwrap();
    let out = Promoter::new(&work.0)
        .args(["run", "--manifest", "promote.yaml", "--confirm"])
        .run();
    assert_eq!(out.code, 0, "{}", out.all());

    // promoter names each manifest by its own type: the refusals below are
    // the clients' reading of Docker types, not a wrong entry.
    let dst = work.0.join("dst").join(REPO);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dst.join("index.json")).unwrap()).unwrap();
    for (kind, tag, image) in &images {
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == *tag)
            .unwrap_or_else(|| panic!("{kind}: no index.json entry tagged {tag}"));
        assert_eq!(entry["mediaType"], image.media_type(), "{kind}");
        assert_eq!(entry["digest"], image.digest().as_str(), "{kind}");
    }

    let mut wrong = Vec::new();
    for (kind, row) in &table.rows {
        let (_, tag, _) = images
            .iter()
            .find(|(k, _, _)| k == kind)
            .unwrap_or_else(|| panic!("README clients table row {kind:?}: no such entry kind"));
        let target = format!("oci:{}:{tag}", dst.display());
        for (column, cell) in table.columns.iter().zip(row) {
            let (answer, version) = read_with(column, &target, &podman);
            let client = column.split_once(": ").map_or("", |(client, _)| client);
            let documented_version = client.split_whitespace().nth(1) == Some(version.as_str());
            let agrees = match (cell.strip_prefix("refused: "), &answer) {
                (None, Ok(())) => true,
                (Some(refusal), Err(error)) => error.contains(refusal),
                (Some(_), Ok(())) => !documented_version,
                (None, Err(_)) => false,
            };
            if !agrees {
                wrong.push(format!(
                    "{kind} / {column} (installed {version}): README says {cell:?}, got {answer:?}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "README's clients table differs from the clients:\n{}",
        wrong.join("\n")
    );
}
