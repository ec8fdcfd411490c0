//! `run --snapshot` and `run --manifest-based-snapshot-of`: what a registry
//! holds, or what the manifests promote into it, as images.yaml or CSV;
//! and `promoter diff`, which compares two of them.

use clap::Args;

use promoter::manifest::ManifestInput;
use promoter::reference::RegistryName;
use promoter::snapshot::{self, SideError, Snapshot};

use super::args::RegistryArgs;
use super::output::{self, emit, Exit};

/// How a snapshot is cut: `--minimal-snapshot`, `--snapshot-tag`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shape {
    pub(crate) minimal: bool,
    pub(crate) tag: Option<String>,
}

impl Shape {
    fn apply(&self, snapshot: Snapshot) -> Snapshot {
        let snapshot = if self.minimal {
            snapshot.minimal()
        } else {
            snapshot
        };
        match &self.tag {
            Some(tag) => snapshot.with_tag(tag),
            None => snapshot,
        }
    }
}

/// How a snapshot is printed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SnapshotFormat {
    Yaml,
    Csv,
}

/// `--snapshot REGISTRY`.
pub(crate) struct OfRegistry {
    pub(crate) registry: String,
    pub(crate) shape: Shape,
    pub(crate) format: SnapshotFormat,
    pub(crate) registry_args: RegistryArgs,
}

/// `--manifest-based-snapshot-of REGISTRY`.
pub(crate) struct OfManifests<'a> {
    pub(crate) input: ManifestInput<'a>,
    pub(crate) root: String,
    pub(crate) shape: Shape,
    pub(crate) format: SnapshotFormat,
    pub(crate) registry_args: RegistryArgs,
}

/// A registry name from a flag. The argument itself is never echoed: it
/// may hold credentials (`https://user:password@host`); the parser's
/// message names only what is safe to show.
fn parse_registry(text: &str, flag: &str) -> anyhow::Result<RegistryName> {
    RegistryName::parse(text).map_err(|e| {
        let help = e.help.map(|h| format!(" ({h})")).unwrap_or_default();
        anyhow::anyhow!("{flag}: {}{help}", e.message)
    })
}

fn print(snapshot: Snapshot, shape: &Shape, format: SnapshotFormat) {
    let snapshot = shape.apply(snapshot);
    match format {
        SnapshotFormat::Csv => emit(&snapshot.to_csv()),
        SnapshotFormat::Yaml => emit(&snapshot.to_yaml()),
    }
}

/// `run --snapshot`.
pub(crate) async fn of_registry(of: OfRegistry) -> anyhow::Result<Exit> {
    let root = parse_registry(&of.registry, "--snapshot")?;
    let open = of.registry_args.open_options()?;
    let snapshot = snapshot::of_named(&root, &open).await?;
    print(snapshot, &of.shape, of.format);
    Ok(Exit::Ok)
}

/// `run --manifest-based-snapshot-of`.
pub(crate) async fn of_manifests(of: OfManifests<'_>) -> anyhow::Result<Exit> {
    let root = parse_registry(&of.root, "--manifest-based-snapshot-of")?;
    let loaded = promoter::manifest::load(of.input);
    super::output::diagnostics(&loaded.diagnostics);
    if loaded.has_errors() {
        let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
        output::error(format_args!(
            "{errors} problem(s) in the manifests; nothing was planned"
        ));
        return Ok(Exit::Invalid);
    }
    let mut snapshot = snapshot::of_manifests(&loaded.manifests, &root);
    if of.shape.minimal {
        // Which untagged digests are index children is only known by
        // reading the sources.
        let open = of.registry_args.open_options()?;
        let names = promoter::promote::registry_names(&loaded.manifests);
        let registries = promoter::registry::open_all(names.iter(), &open)?;
        snapshot =
            snapshot::mark_index_children(snapshot, &loaded.manifests, &root, &registries).await?;
    }
    print(snapshot, &of.shape, of.format);
    Ok(Exit::Ok)
}

/// `diff`'s flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter diff gcr.io/staging gcr.io/prod          what prod lacks or has besides
  promoter diff before.yaml oci:mirror              a saved snapshot against a tree
  promoter diff --minimal-snapshot a.example/x b.example/x

Exit: 0 the same, 1 different, 2 an argument that is neither a snapshot file
nor a registry, 4 a registry that could not be read.")]
pub(crate) struct DiffArgs {
    /// A registry path, an oci: tree, or a snapshot file (images.yaml format).
    a: String,
    /// The same, to compare with.
    b: String,
    /// Leave out untagged children of indexes on both sides.
    #[arg(long, help_heading = "Snapshots")]
    minimal_snapshot: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `promoter diff`.
pub(crate) async fn diff(args: DiffArgs, color: bool) -> anyhow::Result<Exit> {
    let open = args.registry.open_options()?;
    let side = |name: String| {
        let open = &open;
        async move {
            snapshot::of_side(&name, open).await.map_err(|e| {
                let exit = match e {
                    SideError::Registry(_) => Exit::Failed,
                    _ => Exit::Usage,
                };
                output::error(format_args!("{}", super::output::shown(&e)));
                exit
            })
        }
    };
    let a = match side(args.a.clone()).await {
        Ok(a) => a,
        Err(exit) => return Ok(exit),
    };
    let b = match side(args.b.clone()).await {
        Ok(b) => b,
        Err(exit) => return Ok(exit),
    };
    let shape = Shape {
        minimal: args.minimal_snapshot,
        tag: None,
    };
    match snapshot::diff(&args.a, &shape.apply(a), &args.b, &shape.apply(b)) {
        None => Ok(Exit::Ok),
        Some(text) => {
            emit(&painted_diff(&text, color));
            Ok(Exit::Different)
        }
    }
}

/// A unified diff with its removed lines red and added lines green.
fn painted_diff(text: &str, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let code = match line.as_bytes().first() {
            Some(b'-') if !line.starts_with("---") => "31",
            Some(b'+') if !line.starts_with("+++") => "32",
            Some(b'@') => "36",
            _ => {
                out.push_str(line);
                continue;
            }
        };
        let body = line.trim_end_matches('\n');
        out.push_str(&format!("\x1b[{code}m{body}\x1b[0m"));
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}
