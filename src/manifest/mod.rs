//! Loading and validating promoter manifests (plain files and thin trees).
//!
//! Everything here is offline. `load` never stops at the first problem: it
//! returns every diagnostic it found, sorted by file and line.
//!
//! Layers, bottom up: `read` (size cap, UTF-8), `yaml` (spanned tree, raw
//! scalars, duplicate keys, alias budget), `decode` (CIP's schema and the
//! name/digest/tag grammar), `tree` (thin-tree shape and symlink policy),
//! `conflict` (one digest per destination tag across the whole input).
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::diag::{self, Diagnostic, Location};

mod conflict;
mod decode;
pub mod images_file;
pub mod intent;
pub mod model;
mod read;
mod tree;
pub mod yaml;

pub use model::{DigestEntry, Image, Manifest, RegistryEntry, TagEntry};
pub use read::MAX_FILE_BYTES;

/// What to load.
#[derive(Debug, Clone, Copy)]
pub enum ManifestInput<'a> {
    /// `--manifest FILE`: one plain manifest.
    Plain(&'a Path),
    /// `--thin-manifest-dir DIR`: `manifests/<x>/promoter-manifest.yaml` +
    /// `images/<x>/images.yaml` pairs.
    ThinTree(&'a Path),
}

/// The result of loading: the manifests that loaded, and every diagnostic
/// (errors and warnings), sorted. Callers must not use `manifests` for
/// anything but reporting when `has_errors()`.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The manifests that decoded, in the order they were found.
    pub manifests: Vec<Manifest>,
    /// Every error and warning, sorted by file, line and column.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True when any diagnostic is an error: the input must not be planned.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// What a file the user named may be. A one-off run reads a pipe as it
/// comes (`--manifest <(generate)`); a long-running `watch` opens only
/// regular files, so that a path swapped for a FIFO fails its cycle at
/// once instead of blocking every cycle after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Named {
    /// Regular files and pipes.
    #[default]
    PipesToo,
    /// Regular files only.
    RegularOnly,
}

/// Load, validate and conflict-check the input.
pub fn load(input: ManifestInput<'_>) -> Loaded {
    load_named(input, Named::PipesToo)
}

/// [`load`], with what a named file may be.
pub fn load_named(input: ManifestInput<'_>, named: Named) -> Loaded {
    finish(match input {
        ManifestInput::Plain(path) => load_plain(path, named),
        ManifestInput::ThinTree(dir) => load_thin(dir),
    })
}

/// What every input goes through once its files are decoded.
fn finish(mut loaded: Loaded) -> Loaded {
    conflict::check(&loaded.manifests, &mut loaded.diagnostics);
    check_layout_names(&loaded.manifests, &mut loaded.diagnostics);
    diag::sort(&mut loaded.diagnostics);
    loaded
}

/// The conflict check of [`load`] over manifests loaded apart (the locks
/// of one pin): one error per pair of entries promoting different digests
/// to one destination tag.
pub fn check_conflicts(manifests: &[Manifest], out: &mut Vec<Diagnostic>) {
    conflict::check(manifests, out);
}

/// An image whose path, in an `oci:` registry of its manifest, would run
/// through a layout's own files (`x/blobs/y`): refused here, where the
/// manifest line can be named, rather than by the first write.
fn check_layout_names(manifests: &[Manifest], out: &mut Vec<Diagnostic>) {
    for manifest in manifests {
        let source = std::iter::once((&manifest.source, false));
        let registries = source.chain(manifest.destinations.iter().map(|d| (d, true)));
        for (registry, destination) in registries {
            for image in &manifest.images {
                let name = if destination {
                    image.destination_name()
                } else {
                    &image.name
                };
                let repo = registry.name.repository(name);
                if let Some(reserved) = repo.layout_file_component() {
                    out.push(
                        Diagnostic::error(
                            image.location.clone(),
                            format!(
                                "image {:?} cannot be stored in {}: {reserved:?} is a name \
                                 an OCI layout uses for its own files",
                                name.as_str(),
                                registry.name
                            ),
                        )
                        .with_help("rename the image, or promote it to a registry instead"),
                    );
                }
            }
        }
    }
}

/// Validate a plain manifest held in memory, as `load` would the file
/// `name` (which is only used in messages). For fuzzing and tests: no file
/// system, no size cap.
pub fn load_plain_text(name: &Path, text: &str) -> Loaded {
    finish(plain_text(Arc::from(name), text))
}

fn load_plain(path: &Path, named: Named) -> Loaded {
    let display: Arc<Path> = Arc::from(path);
    match read::read_text(path, &display, named == Named::RegularOnly) {
        Ok(text) => plain_text(display, &text),
        Err(d) => Loaded {
            manifests: Vec::new(),
            diagnostics: vec![d],
        },
    }
}

fn plain_text(display: Arc<Path>, text: &str) -> Loaded {
    let mut diagnostics = Vec::new();
    let parsed = yaml::parse(text);
    push_yaml_errors(&display, parsed.errors, &mut diagnostics);
    if parsed.root.is_none() && diagnostics.iter().any(Diagnostic::is_error) {
        return Loaded {
            manifests: Vec::new(),
            diagnostics,
        };
    }
    let mut ctx = decode::Ctx {
        file: display.clone(),
        thin: false,
        diagnostics: &mut diagnostics,
    };
    let (registries, images) = decode::plain(parsed.root.as_ref(), &mut ctx);
    let manifests = registries
        .map(|r| Manifest {
            registries_file: display.clone(),
            images_file: display.clone(),
            source: r.source,
            destinations: r.destinations,
            images,
        })
        .into_iter()
        .collect();
    Loaded {
        manifests,
        diagnostics,
    }
}

/// Each YAML error of `file` as a diagnostic.
fn push_yaml_errors(file: &Arc<Path>, errors: Vec<yaml::YamlError>, out: &mut Vec<Diagnostic>) {
    for e in errors {
        let d = Diagnostic::error(
            Location {
                file: file.clone(),
                line: e.pos.line,
                col: e.pos.col,
            },
            e.message,
        );
        out.push(d.with_help_opt(e.help));
    }
}

/// One file of a thin tree, decoded on a worker thread.
enum Decoded {
    Registries(Option<decode::Registries>),
    Images(Option<Vec<Image>>),
}

fn load_thin(dir: &Path) -> Loaded {
    let mut diagnostics = Vec::new();
    let pairs = tree::discover(dir, &mut diagnostics);
    let jobs: Vec<(&Path, &Arc<Path>, bool)> = pairs
        .iter()
        .flat_map(|p| {
            [
                (p.registries_path.as_path(), &p.registries_display, true),
                (p.images_path.as_path(), &p.images_display, false),
            ]
        })
        .collect();
    let results = parallel_map(&jobs, |&(path, display, is_registries)| {
        let mut diagnostics = Vec::new();
        let decoded = decode_thin_file(path, display, is_registries, &mut diagnostics);
        (decoded, diagnostics)
    });
    let mut manifests = Vec::new();
    let mut results = results.into_iter();
    for pair in &pairs {
        let (Some((registries, d1)), Some((images, d2))) = (results.next(), results.next()) else {
            break;
        };
        diagnostics.extend(d1);
        diagnostics.extend(d2);
        if let (Decoded::Registries(Some(r)), Decoded::Images(Some(images))) = (registries, images)
        {
            manifests.push(Manifest {
                registries_file: pair.registries_display.clone(),
                images_file: pair.images_display.clone(),
                source: r.source,
                destinations: r.destinations,
                images,
            });
        }
    }
    Loaded {
        manifests,
        diagnostics,
    }
}

fn decode_thin_file(
    path: &Path,
    display: &Arc<Path>,
    is_registries: bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> Decoded {
    let failed = || {
        if is_registries {
            Decoded::Registries(None)
        } else {
            Decoded::Images(None)
        }
    };
    let text = match read::read_text(path, display, true) {
        Ok(text) => text,
        Err(d) => {
            diagnostics.push(d);
            return failed();
        }
    };
    let parsed = yaml::parse(&text);
    let fatal = parsed.root.is_none() && !parsed.errors.is_empty();
    push_yaml_errors(display, parsed.errors, diagnostics);
    if fatal {
        return failed();
    }
    let mut ctx = decode::Ctx {
        file: display.clone(),
        thin: true,
        diagnostics,
    };
    if is_registries {
        Decoded::Registries(decode::thin_registries(parsed.root.as_ref(), &mut ctx))
    } else {
        // Invalid entries are left out but the rest is kept, so the
        // conflict check still reports clashes among the valid ones.
        Decoded::Images(Some(decode::thin_images(parsed.root.as_ref(), &mut ctx)))
    }
}

/// Map `f` over `items` on up to as many threads as there are cores; results
/// keep the order of `items`. Threads take the next item when free, so one
/// large file does not hold up the rest.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .min(16);
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<R>> = Vec::with_capacity(items.len());
    slots.resize_with(items.len(), || None);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            // A panicking worker is a bug; propagate it rather than drop files.
            let done = match worker.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            for (i, r) in done {
                slots[i] = Some(r);
            }
        }
    });
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fragments that real and broken manifests are made of; random
    /// sequences of them reach deep into the parser and the decoder.
    const PIECES: &[&str] = &[
        "registries:",
        "images:",
        "- name: ",
        "name: ",
        "src: true",
        "src: yes",
        "dmap:",
        "service-account: sa@x",
        "\n",
        "\n  ",
        "\n    ",
        "\n- ",
        "  ",
        "\t",
        "\r\n",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "\"",
        "'",
        "&a ",
        "*a",
        "*b",
        "&b [*a, *a]",
        "!!str ",
        "!!int ",
        "? ",
        "---\n",
        "...\n",
        "# c",
        "|\n  x",
        ">\n  y",
        "\u{FEFF}",
        "~",
        "null",
        "1.10",
        "gcr.io/p",
        "https://u:hunter2@h",
        "Foo",
        "a//b",
        "../x",
        "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "\"latest\"",
        "%YAML 1.2\n",
        "%TAG ! tag:x,2000:\n",
        "\\x",
        "\u{0}",
        "é",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        #[test]
        fn no_input_panics_or_leaks(picks in proptest::collection::vec(0..PIECES.len(), 0..80)) {
            let text: String = picks.iter().map(|&i| PIECES[i]).collect();
            let loaded = load_plain_text(Path::new("fuzz.yaml"), &text);
            for d in &loaded.diagnostics {
                let shown = d.to_string();
                // The parser's panic guard must never have fired.
                proptest::prop_assert!(!shown.contains("YAML parser failed"), "{text:?}: {shown}");
                proptest::prop_assert!(!shown.contains("hunter2"), "{text:?}: {shown}");
                proptest::prop_assert!(d.location.line <= text.lines().count() as u32 + 1, "{text:?}: {shown}");
            }
        }
    }

    #[test]
    fn parallel_map_keeps_order() {
        let items: Vec<u32> = (0..1000).collect();
        let out = parallel_map(&items, |x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
    }
}
