//! Images named in Kubernetes YAML (Sinker's `create`/`update`): what
//! `promoter import kubernetes` turns into a mirroring intent.
//!
//! Only the places a cluster pulls from are read: the containers of pod
//! specs (of Pods and of the workloads that template them), the images the
//! common operators run for their own kinds ([`OPERATOR_KINDS`]: the
//! Prometheus operator's, Argo's, Knative's, Tekton's, KEDA's), and, in
//! each container, references passed on in `args`, `command` and `env`
//! values (`--config-reloader-image=jimmidyson/configmap-reload:v0.3.0`,
//! as Sinker finds them). An `image:` anywhere else (a ConfigMap, a Helm
//! value, a CRD we do not know) names nothing a node pulls, so unknown
//! kinds are skipped without a word. Helm's output is read as it comes:
//! `helm template`'s documents, and `helm install --dry-run`'s release
//! header, hooks and manifest (its NOTES are text, not YAML, and left out).
//!
//! A kind is known by its API group as well as its name, as the API server
//! knows it: a CRD that happens to be called `Job` is not a `batch` Job,
//! and its `spec.template` need not be a pod template.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Location};
use crate::limits::{WALK_DEPTH, WALK_ENTRIES};
use crate::local_file::walk::{Entry, Found, Refusal, Walk};
use crate::local_file::ReadError;
use crate::manifest::yaml::{self, quote, Node, Pos, Value};
use crate::reference::ImageReference;

/// Largest file read: the manifest loader's cap. A rendered chart near
/// 16 MiB is already unusual; this only keeps memory bounded.
const MAX_FILE_BYTES: u64 = crate::manifest::MAX_FILE_BYTES;

/// What a path of `-` reads, and what diagnostics call it.
const STDIN_PATH: &str = "-";
const STDIN_NAME: &str = "<stdin>";

/// What help says when a path cannot be used.
const PATH_HELP: &str =
    "pass Kubernetes YAML files, directories holding them, or - for standard input";

/// One image a cluster would pull, and where it is first named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    /// The image as written, normalised (`nginx` is `docker.io/nginx`).
    pub reference: ImageReference,
    /// The image exactly as written (Sinker's files keep it so).
    pub written: String,
    /// Written without tag or digest, so it means whatever `latest` is on
    /// the day of the pull: callers warn about it.
    pub implied_latest: bool,
    /// Where the image is written (for a Prometheus operator `baseImage`,
    /// where the `baseImage` is).
    pub location: Location,
}

/// The images named in one file's `text` (any number of `---`-separated
/// documents); `file` names it in locations and diagnostics. Sorted by
/// reference, one entry per reference (its first location).
pub fn images_in_text(file: &Path, text: &str) -> (Vec<FoundImage>, Vec<Diagnostic>) {
    let mut finder = Finder::default();
    finder.text(&Arc::from(file), text);
    finder.finish(true)
}

/// The images named in `paths`: files (read whatever their name), directories
/// (walked for `.yaml`, `.yml` and `.json` files in sorted order, following
/// symlinks only while they stay inside the directory), and `-` for standard
/// input (named `<stdin>`). Sorted by reference, one entry per reference
/// (its first location). A file that cannot be read or parsed is reported
/// and the others are still read.
pub fn images_in_paths(paths: &[PathBuf]) -> (Vec<FoundImage>, Vec<Diagnostic>) {
    find_in(paths).finish(true)
}

/// [`images_in_paths`] in the order they are named (files in order,
/// documents, containers, then their arguments), the first of each.
pub fn images_in_paths_as_found(paths: &[PathBuf]) -> (Vec<FoundImage>, Vec<Diagnostic>) {
    find_in(paths).finish(false)
}

/// The images Sinker's `create` and `update` find in `paths`, as written
/// and in the order found: each container's `image`, and what Sinker's
/// string rule takes from its `args` (`--test-digest=some/repo@sha256:abc123`
/// included, which no reference grammar takes). Sinker's own files are
/// written from these.
pub fn sinker_images_in_paths(paths: &[PathBuf]) -> (Vec<String>, Vec<Diagnostic>) {
    let finder = find_in(paths);
    let sinker = finder.sinker.clone();
    (sinker, finder.finish(false).1)
}

/// Sinker's `GetImagesFromStandardInput` (`create -`, `update -`, `check
/// -`): Kubernetes YAML when the text holds `---` anywhere, else images
/// separated by spaces (or, without a space, by newlines), each once.
pub fn sinker_images_in_standard_input() -> (Vec<String>, Vec<Diagnostic>) {
    let mut bytes = Vec::new();
    let read = io::stdin()
        .lock()
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes);
    let file: Arc<Path> = Arc::from(Path::new(STDIN_NAME));
    let text = match read.map(|_| String::from_utf8(bytes)) {
        Ok(Ok(text)) if text.len() as u64 <= MAX_FILE_BYTES => text,
        _ => {
            let problem = Diagnostic::error(
                Location::file_only(file),
                "standard input cannot be read as UTF-8 text within the size limit",
            );
            return (Vec::new(), vec![problem]);
        }
    };
    sinker_images_in_input_text(&file, &text)
}

/// [`sinker_images_in_standard_input`] of `text`, named `file`.
pub fn sinker_images_in_input_text(file: &Arc<Path>, text: &str) -> (Vec<String>, Vec<Diagnostic>) {
    if text.contains("---") {
        let mut finder = Finder::default();
        finder.text(file, text);
        let images = crate::manifest::intent::sinker::dedupe(&finder.sinker);
        return (images, finder.finish(false).1);
    }
    let images: Vec<String> = if text.contains(' ') {
        text.split(' ').map(str::to_string).collect()
    } else if text.contains('\n') {
        text.split('\n').map(str::to_string).collect()
    } else {
        Vec::new()
    };
    (crate::manifest::intent::sinker::dedupe(&images), Vec::new())
}

fn find_in(paths: &[PathBuf]) -> Finder {
    let mut finder = Finder::default();
    for path in paths {
        if path.as_os_str() == STDIN_PATH {
            finder.stdin();
        } else {
            finder.path(path);
        }
    }
    finder
}

#[derive(Default)]
struct Finder {
    found: Vec<FoundImage>,
    /// What Sinker's discovery takes, as written and in order: container
    /// images and the `args` its string rule accepts.
    sinker: Vec<String>,
    diagnostics: Vec<Diagnostic>,
}

impl Finder {
    fn finish(mut self, sorted: bool) -> (Vec<FoundImage>, Vec<Diagnostic>) {
        if sorted {
            self.found
                .sort_by(|a, b| (&a.reference, &a.location).cmp(&(&b.reference, &b.location)));
            self.found
                .dedup_by(|later, first| later.reference == first.reference);
        } else {
            let mut seen = std::collections::HashSet::new();
            self.found.retain(|f| seen.insert(f.reference.clone()));
        }
        crate::diag::sort(&mut self.diagnostics);
        (self.found, self.diagnostics)
    }

    fn error(&mut self, location: Location, message: impl Into<String>, help: Option<&str>) {
        self.diagnostics
            .push(Diagnostic::error(location, message).with_help_opt(help));
    }

    fn warning(&mut self, location: Location, message: impl Into<String>, help: &str) {
        self.diagnostics
            .push(Diagnostic::warning(location, message).with_help(help));
    }

    // ------------------------------------------------------------ reading

    fn stdin(&mut self) {
        let file: Arc<Path> = Arc::from(Path::new(STDIN_NAME));
        // Standard input is no `File` for `local_file` to open; the same
        // cap holds, checked the same way (one byte past it is too many).
        let mut bytes = Vec::new();
        let read = io::stdin()
            .lock()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes);
        match read {
            Err(err) => self.error(
                Location::file_only(file),
                format!("cannot read standard input: {}", io_message(&err)),
                None,
            ),
            Ok(_) if bytes.len() as u64 > MAX_FILE_BYTES => self.error(
                Location::file_only(file),
                format!("is more than the {MAX_FILE_BYTES}-byte limit"),
                Some("split the YAML across several files and pass them instead"),
            ),
            Ok(_) => self.bytes(&file, bytes),
        }
    }

    fn path(&mut self, path: &Path) {
        let shown: Arc<Path> = Arc::from(path);
        // A path given on purpose is followed wherever its symlinks lead.
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(err) => {
                self.error(
                    Location::file_only(shown),
                    format!("cannot read: {}", io_message(&err)),
                    Some(PATH_HELP),
                );
                return;
            }
        };
        if !meta.is_dir() {
            self.file(path, shown);
            return;
        }
        // The tree may come from anywhere (a pull request, a chart): a
        // link out of it must not pull this machine's files into the run,
        // and a link back up must not make the walk loop.
        let walk = Walk::new(path).inside_start().files(has_yaml_extension);
        let entries = match walk.run() {
            Ok(entries) => entries,
            Err(err) => {
                self.error(
                    Location::file_only(shown),
                    format!("cannot resolve the directory: {}", io_message(&err)),
                    None,
                );
                return;
            }
        };
        for entry in entries {
            self.entry(entry);
        }
    }

    /// One entry of a walk: a YAML file is read, what was refused said.
    fn entry(&mut self, entry: Entry) {
        let shown = || Location::file_only(Arc::from(entry.shown.as_path()));
        let refusal = match entry.found {
            Found::Dir => return,
            Found::File => return self.file(&entry.path, Arc::from(entry.shown.as_path())),
            Found::Special => return self.not_regular(shown()),
            Found::Refused(refusal) => refusal,
        };
        match refusal {
            Refusal::Unreadable(err) => self.error(
                shown(),
                format!("cannot read: {}", io_message(&err)),
                None,
            ),
            Refusal::Unlisted(err) => self.error(
                shown(),
                format!("cannot list the directory: {}", io_message(&err)),
                None,
            ),
            Refusal::TooDeep => self.warning(
                shown(),
                format!("directories nest more than {WALK_DEPTH} levels deep here: what is below is not read"),
                "pass the deeper directory as a path of its own",
            ),
            // Said once, where the walk stopped.
            Refusal::TooMany => self.warning(
                shown(),
                format!("more than {WALK_ENTRIES} entries in this walk: the rest is not read"),
                "pass the directories that hold Kubernetes YAML instead of their parent",
            ),
            Refusal::LinkCycle | Refusal::Dangling | Refusal::Unresolved(_) => {
                if has_yaml_extension(entry.shown.as_os_str()) {
                    self.warning(shown(), "broken symlink: not read", "fix or remove the symlink");
                }
            }
            // The target is not named: it is a path on this machine,
            // outside what the user asked us to read.
            Refusal::Escapes => self.warning(
                shown(),
                "symlink points outside the directory being read: not followed",
                "replace the symlink with what it points to, or pass its target as a path of its own",
            ),
            // A link back up, or to a directory walked already: walked once.
            Refusal::Ancestor | Refusal::Again | Refusal::Link => {}
        }
    }

    /// Read the file at `path` (called `shown` in diagnostics).
    fn file(&mut self, path: &Path, shown: Arc<Path>) {
        match crate::local_file::read_capped(path, MAX_FILE_BYTES) {
            Ok(bytes) => self.bytes(&shown, bytes),
            Err(ReadError::NotRegular) => self.not_regular(Location::file_only(shown)),
            Err(ReadError::TooLarge { limit, .. }) => self.error(
                Location::file_only(shown),
                format!("is more than the {limit}-byte limit"),
                Some("split the YAML across several files"),
            ),
            Err(ReadError::Io(err)) => self.error(
                Location::file_only(shown),
                format!("cannot read: {}", io_message(&err)),
                Some(PATH_HELP),
            ),
        }
    }

    /// A FIFO, device or socket where a file was expected.
    fn not_regular(&mut self, location: Location) {
        self.error(
            location,
            "is not a regular file",
            Some("pipe it in with - (standard input) instead"),
        );
    }

    fn bytes(&mut self, file: &Arc<Path>, bytes: Vec<u8>) {
        match String::from_utf8(bytes) {
            Ok(text) => self.text(file, &text),
            Err(err) => self.error(
                Location::file_only(file.clone()),
                format!(
                    "is not valid UTF-8 (invalid byte at offset {})",
                    err.utf8_error().valid_up_to()
                ),
                Some("save the file as UTF-8"),
            ),
        }
    }

    // ------------------------------------------------------------ finding

    fn text(&mut self, file: &Arc<Path>, text: &str) {
        let parsed = yaml::parse_stream(without_helm_notes(text));
        for err in parsed.errors {
            self.diagnostics
                .push(Diagnostic::error(at(file, err.pos), err.message).with_help_opt(err.help));
        }
        for document in &parsed.documents {
            self.object(file, document);
        }
    }

    /// One Kubernetes object (a document, or an item of a `List`).
    fn object(&mut self, file: &Arc<Path>, object: &Node<'_>) {
        let Some(kind) = text_of(object, "kind") else {
            return;
        };
        // Without `apiVersion` the API server refuses the object: it runs nothing.
        let Some(api_version) = text_of(object, "apiVersion") else {
            return;
        };
        // `apps/v1` is group `apps`; the core group's `v1` has no slash.
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        let spec = field(object, "spec");
        match (group, kind) {
            ("", "List") => {
                for item in items(field(object, "items")) {
                    self.object(file, item);
                }
            }
            ("", "Pod") => self.pod_spec(file, spec),
            ("", "ReplicationController")
            | ("apps" | "extensions", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
            | ("batch", "Job") => self.pod_spec(file, path(spec, &["template", "spec"])),
            ("batch", "CronJob") => self.pod_spec(
                file,
                path(spec, &["jobTemplate", "spec", "template", "spec"]),
            ),
            _ => {
                let places = OPERATOR_KINDS
                    .iter()
                    .filter(|(g, kinds, _)| *g == group && kinds.contains(&kind))
                    .flat_map(|(_, _, places)| places.iter());
                for (at, place) in places {
                    for node in nodes_at(object, at) {
                        self.place(file, node, *place);
                    }
                }
            }
        }
    }

    /// What `node` is, as `place` says.
    fn place(&mut self, file: &Arc<Path>, node: &Node<'_>, place: Place) {
        match place {
            Place::PodSpec => self.pod_spec(file, Some(node)),
            Place::Containers => self.containers(file, Some(node)),
            Place::Container => self.container(file, node),
            Place::Operator => self.operator_spec(file, Some(node)),
        }
    }

    fn pod_spec(&mut self, file: &Arc<Path>, spec: Option<&Node<'_>>) {
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            self.containers(file, field_of(spec, list));
        }
    }

    fn containers(&mut self, file: &Arc<Path>, list: Option<&Node<'_>>) {
        for container in items(list) {
            self.container(file, container);
        }
    }

    /// A container's `image`, then what its `args`, `command` and `env`
    /// values pass on.
    fn container(&mut self, file: &Arc<Path>, container: &Node<'_>) {
        if let Some(image) = field(container, "image") {
            self.image_node(file, image);
        }
        for list in ["args", "command"] {
            for arg in items(field(container, list)) {
                self.passed_on(file, arg);
            }
        }
        for arg in items(field(container, "args")) {
            if let Some(image) = arg.as_scalar().and_then(|s| sinker_arg(&s.text)) {
                self.sinker.push(image.to_string());
            }
        }
        for var in items(field(container, "env")) {
            if let Some(value) = field(var, "value") {
                self.passed_on(file, value);
            }
        }
    }

    /// The image references in an argument or a variable's value: each word
    /// (or what follows its `=`) that reads as a reference with a tag or
    /// digest, by the reference grammar and Sinker's exclusions (URLs,
    /// variables, `component:level` log settings, `address:port`s). What
    /// does not read as one is not an image, and no error.
    fn passed_on(&mut self, file: &Arc<Path>, node: &Node<'_>) {
        let Some(scalar) = node.as_scalar().filter(|s| !s.is_null()) else {
            return;
        };
        for word in scalar.text.split_whitespace() {
            let Some(candidate) = image_word(word) else {
                continue;
            };
            if let Ok(reference) = ImageReference::parse(candidate) {
                self.found.push(FoundImage {
                    reference,
                    written: candidate.to_string(),
                    implied_latest: false,
                    location: at(file, node.pos),
                });
            }
        }
    }

    /// What the Prometheus operator runs for its kinds: `image` if set,
    /// else `baseImage` completed by `sha`, `tag` or `version` (the
    /// operator's order), plus containers the spec adds. Without either,
    /// the operator picks an image compiled into it, which no YAML names.
    fn operator_spec(&mut self, file: &Arc<Path>, spec: Option<&Node<'_>>) {
        let image = field_of(spec, "image").filter(|node| !node.is_null());
        let base = field_of(spec, "baseImage").filter(|node| !node.is_null());
        if let Some(image) = image {
            self.image_node(file, image);
        } else if let Some(base) = base {
            if let Some(base_text) = self.image_text(file, base) {
                let part = |key: &str| text_of(spec?, key);
                let written = if let Some(sha) = part("sha") {
                    format!("{base_text}@sha256:{sha}")
                } else if let Some(tag) = part("tag").or_else(|| part("version")) {
                    format!("{base_text}:{tag}")
                } else {
                    base_text.to_string()
                };
                self.reference(file, base.pos, &written);
            }
        }
        self.pod_spec(file, spec);
    }

    fn image_node(&mut self, file: &Arc<Path>, node: &Node<'_>) {
        if let Some(text) = self.image_text(file, node) {
            self.reference(file, node.pos, text);
        }
    }

    /// The text of an image field; `None` (reported) when it is a list or
    /// mapping, `None` (silently) when it is empty, as in a container entry
    /// that only patches another field.
    fn image_text<'n>(&mut self, file: &Arc<Path>, node: &'n Node<'_>) -> Option<&'n str> {
        if node.is_null() {
            return None;
        }
        match node.as_scalar() {
            Some(scalar) => Some(&scalar.text),
            None => {
                self.error(
                    at(file, node.pos),
                    format!("expected an image reference, found {}", node.describe()),
                    Some("write the image as text, e.g. image: nginx:1.25.3"),
                );
                None
            }
        }
    }

    fn reference(&mut self, file: &Arc<Path>, pos: Pos, written: &str) {
        match ImageReference::parse_or_latest(written) {
            Ok((reference, implied_latest)) => {
                self.sinker.push(written.to_string());
                self.found.push(FoundImage {
                    reference,
                    written: written.to_string(),
                    implied_latest,
                    location: at(file, pos),
                })
            }
            Err(err) => self.error(
                at(file, pos),
                format!("invalid image {}: {}", quote(written), err.message),
                Some(err.help.as_deref().unwrap_or(
                    "write it as [registry[:port]/]path[:tag][@sha256:digest], e.g. registry.k8s.io/pause:3.9",
                )),
            ),
        }
    }
}

/// Where the common operators' kinds name images a node pulls: (API
/// group, kinds, [(path, what is there)]); `*` in a path is every item of a
/// list. Extend it with a line per operator.
pub const OPERATOR_KINDS: &[OperatorKinds] = &[
    (
        "monitoring.coreos.com",
        &[
            "Prometheus",
            "PrometheusAgent",
            "Alertmanager",
            "ThanosRuler",
        ],
        &[("spec", Place::Operator)],
    ),
    (
        "monitoring.coreos.com",
        &["Prometheus"],
        &[("spec.thanos", Place::Operator)],
    ),
    (
        "argoproj.io",
        &["Rollout"],
        &[("spec.template.spec", Place::PodSpec)],
    ),
    (
        "argoproj.io",
        &["Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate"],
        &[
            ("spec.templates.*.container", Place::Container),
            ("spec.templates.*.script", Place::Container),
            ("spec.templates.*.initContainers", Place::Containers),
            ("spec.templates.*.sidecars", Place::Containers),
        ],
    ),
    (
        "argoproj.io",
        &["CronWorkflow"],
        &[
            ("spec.workflowSpec.templates.*.container", Place::Container),
            ("spec.workflowSpec.templates.*.script", Place::Container),
            (
                "spec.workflowSpec.templates.*.initContainers",
                Place::Containers,
            ),
            ("spec.workflowSpec.templates.*.sidecars", Place::Containers),
        ],
    ),
    (
        "serving.knative.dev",
        &["Service", "Configuration"],
        &[("spec.template.spec", Place::PodSpec)],
    ),
    (
        "tekton.dev",
        &["Task", "ClusterTask"],
        &[
            ("spec.steps", Place::Containers),
            ("spec.sidecars", Place::Containers),
        ],
    ),
    (
        "keda.sh",
        &["ScaledJob"],
        &[("spec.jobTargetRef.template.spec", Place::PodSpec)],
    ),
];

/// One line of [`OPERATOR_KINDS`]: an API group, its kinds, and the paths
/// in them that name images with what is there.
pub type OperatorKinds = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, Place)],
);

/// What an operator's kind holds at a path of [`OPERATOR_KINDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A pod spec: its containers, init and ephemeral containers.
    PodSpec,
    /// A list of containers.
    Containers,
    /// One container (`image`, `args`, `command`, `env`).
    Container,
    /// The Prometheus operator's way: `image`, else `baseImage` with `sha`,
    /// `tag` or `version`, and the containers it adds.
    Operator,
}

/// The nodes at `path` (dot-separated keys, `*` for every list item).
fn nodes_at<'n, 'a>(node: &'n Node<'a>, path: &str) -> Vec<&'n Node<'a>> {
    let mut nodes = vec![node];
    for key in path.split('.') {
        nodes = nodes
            .into_iter()
            .flat_map(|n| match key {
                "*" => items(Some(n)).iter().collect::<Vec<_>>(),
                key => field(n, key).into_iter().collect(),
            })
            .collect();
    }
    nodes
}

/// The word of an argument that may be an image reference: what follows
/// its first `=` (up to a second one), else the word; `None` for what
/// Sinker leaves out too (no `:` nor `@`, a `$` variable, a URL, an
/// `address:port`, Envoy and Istio `component:level` log settings).
fn image_word(word: &str) -> Option<&str> {
    let candidate = match word.split_once('=') {
        Some((_, value)) => value.split('=').next().unwrap_or(value),
        None => word,
    };
    let candidate = candidate.trim_matches(|c| matches!(c, '"' | '\'' | ',' | ';'));
    let unlike = candidate.contains("://") || candidate.contains('=');
    if !candidate.contains([':', '@']) || unlike || sinker_leaves_out(candidate) {
        return None;
    }
    // `localhost:8080`, `host.example:443`: an address, no repository.
    if let Some((name, port)) = candidate.split_once(':') {
        let host_like = !name.contains('/') && (name == "localhost" || name.contains('.'));
        if host_like && !port.contains('/') {
            return None;
        }
    }
    Some(candidate)
}

/// What Sinker leaves out of arguments: `$` variables, URLs, Envoy and
/// Istio `component:level` log settings (a substring test, as Sinker's),
/// and `address:port`s (its `.*\d*\.\d*:\d`: `0.0.0.0:6443`).
fn sinker_leaves_out(candidate: &str) -> bool {
    const LEFT_OUT: [&str; 10] = [
        "$",
        "http://",
        "https://",
        ":trace",
        ":debug",
        ":info",
        ":warn",
        ":error",
        ":critical",
        ":off",
    ];
    let address = regex::Regex::new(r"[0-9]*\.[0-9]*:[0-9]").expect("a valid expression");
    LEFT_OUT.iter().any(|s| candidate.contains(s)) || address.is_match(candidate)
}

/// Sinker's `getImagesFromContainers` rule for one argument, to the
/// letter: the text between the first and second `=` (or the whole
/// argument), with a `:`, none of Sinker's left-out strings, not an
/// `address:port`, and a repository by Sinker's string rules.
fn sinker_arg(arg: &str) -> Option<&str> {
    let candidate = if arg.contains('=') {
        arg.split('=').nth(1).unwrap_or_default()
    } else {
        arg
    };
    if !candidate.contains(':') || sinker_leaves_out(candidate) {
        return None;
    }
    let repository = crate::manifest::intent::sinker::registry_path::repository(candidate);
    (!repository.is_empty() && !repository.contains(':')).then_some(candidate)
}

/// Helm's release output (`helm install --dry-run`, `helm get all`): the
/// release header, hooks and manifest are YAML, the NOTES that follow
/// them are not: the text before them.
fn without_helm_notes(text: &str) -> &str {
    let release = text.starts_with("NAME:") || text.contains("\nMANIFEST:\n");
    match text.find("\nNOTES:\n") {
        Some(at) if release => &text[..=at],
        _ => text,
    }
}

/// The extensions `kubectl apply -R` reads (JSON is YAML); like kubectl,
/// case matters.
fn has_yaml_extension(name: &OsStr) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json")
}

fn at(file: &Arc<Path>, pos: Pos) -> Location {
    Location {
        file: file.clone(),
        line: pos.line,
        col: pos.col,
    }
}

/// The value of `key` in a mapping; `None` for anything else.
fn field<'n, 'a>(node: &'n Node<'a>, key: &str) -> Option<&'n Node<'a>> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key))
            .map(|(_, value)| value),
        _ => None,
    }
}

fn field_of<'n, 'a>(node: Option<&'n Node<'a>>, key: &str) -> Option<&'n Node<'a>> {
    field(node?, key)
}

fn path<'n, 'a>(node: Option<&'n Node<'a>>, keys: &[&str]) -> Option<&'n Node<'a>> {
    keys.iter().try_fold(node?, |node, key| field(node, key))
}

/// The non-empty text of `key` in a mapping.
fn text_of<'n>(node: &'n Node<'_>, key: &str) -> Option<&'n str> {
    field(node, key)
        .filter(|value| !value.is_null())
        .and_then(Node::as_scalar)
        .map(|scalar| &*scalar.text)
        .filter(|text| !text.is_empty())
}

/// The items of a list; none for anything else.
fn items<'n, 'a>(node: Option<&'n Node<'a>>) -> &'n [Node<'a>] {
    match node.map(|node| &node.value) {
        Some(Value::Seq(items)) => items,
        _ => &[],
    }
}

/// The OS error without the "(os error N)" suffix, for messages.
fn io_message(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => {
            let text = err.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097";

    fn found(text: &str) -> Vec<(String, bool, u32)> {
        let (images, diagnostics) = images_in_text(Path::new("k.yaml"), text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        images
            .into_iter()
            .map(|i| (i.reference.to_string(), i.implied_latest, i.location.line))
            .collect()
    }

    fn shown(images: &[FoundImage]) -> String {
        images
            .iter()
            .map(|image| {
                let implied = if image.implied_latest {
                    " (latest implied)"
                } else {
                    ""
                };
                format!("{}{implied}\n", image.reference)
            })
            .collect()
    }

    #[test]
    fn the_testdata_tree_yields_the_golden_list() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kubernetes");
        let (images, diagnostics) = images_in_paths(std::slice::from_ref(&root));
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        let expected = fs::read_to_string(root.join("expected-images.txt")).unwrap();
        let actual = shown(&images);
        assert!(
            actual == expected,
            "testdata/kubernetes/expected-images.txt differs; found:\n{actual}"
        );
    }

    #[test]
    fn every_workload_kind_is_read_at_its_pod_spec() {
        let pod_spec = "containers:\n- name: a\n  image: app:1\n";
        let indent = |text: &str, by: usize| -> String {
            text.lines()
                .map(|l| format!("{}{l}\n", " ".repeat(by)))
                .collect()
        };
        let mut cases = vec![
            ("v1", "Pod", "spec:\n".to_string() + &indent(pod_spec, 2), 6),
            (
                "v1",
                "ReplicationController",
                format!("spec:\n  template:\n    spec:\n{}", indent(pod_spec, 6)),
                8,
            ),
        ];
        for (group, kind) in [
            ("apps/v1", "Deployment"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("apps/v1", "ReplicaSet"),
            ("extensions/v1beta1", "Deployment"),
            ("batch/v1", "Job"),
        ] {
            let body = format!("spec:\n  template:\n    spec:\n{}", indent(pod_spec, 6));
            cases.push((group, kind, body, 8));
        }
        cases.push((
            "batch/v1",
            "CronJob",
            format!(
                "spec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n{}",
                indent(pod_spec, 10)
            ),
            10,
        ));
        for (api, kind, body, line) in cases {
            let text = format!("apiVersion: {api}\nkind: {kind}\n{body}");
            assert_eq!(
                found(&text),
                [("docker.io/app:1".to_string(), false, line)],
                "{kind}:\n{text}"
            );
        }
    }

    #[test]
    fn init_and_ephemeral_containers_are_read() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: a:1\n  \
                    initContainers:\n  - image: b:1\n  ephemeralContainers:\n  - image: c:1\n";
        let names: Vec<String> = found(text).into_iter().map(|(r, ..)| r).collect();
        assert_eq!(names, ["docker.io/a:1", "docker.io/b:1", "docker.io/c:1"]);
    }

    #[test]
    fn unknown_kinds_groups_and_non_mappings_are_skipped() {
        let text = "\
apiVersion: v1
kind: ConfigMap
data:
  image: nginx:1
spec:
  containers:
  - image: nginx:2
---
apiVersion: example.com/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
      - image: nginx:3
---
kind: Pod
spec:
  containers:
  - image: nginx:4
---
- just a list
---
plain text
";
        assert_eq!(found(text), []);
    }

    #[test]
    fn list_items_are_read_recursively() {
        let text = "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  spec:
    containers:
    - image: a:1
- apiVersion: v1
  kind: List
  items:
  - apiVersion: apps/v1
    kind: Deployment
    spec:
      template:
        spec:
          containers:
          - image: b:1
";
        assert_eq!(
            found(text),
            [
                ("docker.io/a:1".to_string(), false, 8),
                ("docker.io/b:1".to_string(), false, 18)
            ]
        );
    }

    #[test]
    fn prometheus_operator_kinds_resolve_their_images() {
        let text = "\
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
spec:
  image: quay.io/prometheus/prometheus:v2.48.1
  baseImage: quay.io/ignored/because-image-wins
  version: v9
  containers:
  - name: config-reloader
    resources: {}
  - name: sidecar
    image: quay.io/thanos/thanos:v0.33.0
---
apiVersion: monitoring.coreos.com/v1
kind: Alertmanager
spec:
  baseImage: quay.io/prometheus/alertmanager
  version: v0.26.0
---
apiVersion: monitoring.coreos.com/v1
kind: Alertmanager
spec:
  baseImage: example.com/am
  tag: t1
  version: v0.26.0
---
apiVersion: monitoring.coreos.com/v1alpha1
kind: PrometheusAgent
spec:
  baseImage: example.com/agent
  initContainers:
  - image: busybox:1.36
---
apiVersion: monitoring.coreos.com/v1
kind: ThanosRuler
spec:
  image: quay.io/thanos/thanos:v0.33.0
---
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
spec:
  baseImage: example.com/prom
  sha: 7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097
  tag: ignored
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
spec:
  image: not-an-image:1
";
        assert_eq!(
            found(text),
            [
                ("docker.io/busybox:1.36".to_string(), false, 31),
                ("example.com/agent:latest".to_string(), true, 29),
                ("example.com/am:t1".to_string(), false, 22),
                (format!("example.com/prom@{DIGEST}"), false, 41),
                (
                    "quay.io/prometheus/alertmanager:v0.26.0".to_string(),
                    false,
                    16
                ),
                (
                    "quay.io/prometheus/prometheus:v2.48.1".to_string(),
                    false,
                    4
                ),
                ("quay.io/thanos/thanos:v0.33.0".to_string(), false, 11),
            ]
        );
    }

    fn pod_with(container: &str) -> String {
        let body: String = container.lines().map(|l| format!("    {l}\n")).collect();
        format!("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: c\n{body}")
    }

    /// internal/manifest/kubernetes_test.go (Sinker), its four cases, and
    /// the derived table of TESTCASES.md §F5.
    #[test]
    fn args_pass_on_images_as_sinkers_tests_say() {
        let names = |container: &str| -> Vec<String> {
            found(&pod_with(container))
                .into_iter()
                .map(|(r, ..)| r)
                .collect()
        };
        let mut with_equal_sign = names(
            "image: baseimage:v1\nargs: [\"--arg=argimage:v1\", \"--newline\", \"newlineimage:v1\"]",
        );
        with_equal_sign.sort();
        assert_eq!(
            with_equal_sign,
            [
                "docker.io/argimage:v1",
                "docker.io/baseimage:v1",
                "docker.io/newlineimage:v1"
            ]
        );
        for args in [
            "[\"--events-addr=http://service/\", \"--events-addr=https://service/\"]",
            "[\"--proxyComponentLogLevel=misc:error\", \"--log_output_level=default:info\"]",
            "[\"--serving-address=0.0.0.0:6443\"]",
            "[\"--a=b=c:d\", \"$(IMG):v1\", \"--x=foo:information\", \"--x=1.2.3.4:5000/img:v1\", \"--x=registry.k8s.io/a:v1.2:3\", \"--port=:8080\", \"a:b:c\", \"--addr=localhost:8080\"]",
        ] {
            assert_eq!(names(&format!("image: baseimage:v1\nargs: {args}")), ["docker.io/baseimage:v1"], "{args}");
        }
        let derived = names(
            "image: a:1\nargs:\n- --config-reloader-image=jimmidyson/configmap-reload:v0.3.0\n\
             - --prometheus-config-reloader=quay.io/coreos/prometheus-config-reloader:v0.39.0\n\
             - --test-digest=some/repo@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097\n\
             - --x=k8s.gcr.io/pause:3.2",
        );
        assert_eq!(derived.len(), 5, "{derived:?}");
    }

    #[test]
    fn command_and_env_values_pass_on_images_too() {
        let text = pod_with(
            "image: app:1\ncommand: [\"sh\", \"-c\", \"exec run --sidecar=quay.io/x/side:v2 --debug\"]\n\
             env:\n- name: HELPER_IMAGE\n  value: registry.k8s.io/helper:v3\n- name: URL\n  value: https://example.com:443/x\n\
             - name: FROM\n  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}",
        );
        let (images, _) = images_in_text(Path::new("k.yaml"), &text);
        let written: Vec<&str> = images.iter().map(|i| i.written.as_str()).collect();
        assert_eq!(
            written,
            ["app:1", "quay.io/x/side:v2", "registry.k8s.io/helper:v3"]
        );
    }

    #[test]
    fn the_common_operators_kinds_name_their_images() {
        let text = "\
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
spec:
  image: quay.io/prometheus/prometheus:v2.48.1
  thanos:
    baseImage: quay.io/thanos/thanos
    version: v0.33.0
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
spec:
  template:
    spec:
      containers:
      - image: rollout:1
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
spec:
  templates:
  - name: a
    container:
      image: step:1
  - name: b
    script:
      image: script:1
    sidecars:
    - image: side:1
---
apiVersion: serving.knative.dev/v1
kind: Service
spec:
  template:
    spec:
      containers:
      - image: knative:1
---
apiVersion: tekton.dev/v1
kind: Task
spec:
  steps:
  - image: tekton-step:1
    args: [\"--image=tekton-arg:1\"]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
spec:
  jobTargetRef:
    template:
      spec:
        containers:
        - image: keda:1
---
apiVersion: other.example/v1
kind: Workflow
spec:
  templates:
  - container:
      image: not-this:1
";
        let (images, diagnostics) = images_in_paths_in_text(text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(
            images,
            [
                "quay.io/prometheus/prometheus:v2.48.1",
                "quay.io/thanos/thanos:v0.33.0",
                "rollout:1",
                "step:1",
                "script:1",
                "side:1",
                "knative:1",
                "tekton-step:1",
                "tekton-arg:1",
                "keda:1",
            ]
        );
    }

    /// The written images of `text`, in the order they are found.
    fn images_in_paths_in_text(text: &str) -> (Vec<String>, Vec<Diagnostic>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.yaml");
        fs::write(&file, text).unwrap();
        let (images, diagnostics) = images_in_paths_as_found(&[file]);
        (images.into_iter().map(|i| i.written).collect(), diagnostics)
    }

    #[test]
    fn helm_release_output_is_read_without_its_notes() {
        let text = "\
NAME: demo
LAST DEPLOYED: Mon Jan  1 00:00:00 2024
NAMESPACE: default
STATUS: pending-install
REVISION: 1
TEST SUITE: None
HOOKS:
---
# Source: demo/templates/tests/test.yaml
apiVersion: v1
kind: Pod
spec:
  containers:
  - image: busybox:1.36
MANIFEST:
---
# Source: demo/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
      - image: nginx:1.25.3
        args: [\"--sidecar-image=ghcr.io/x/side:v1\"]

NOTES:
1. Get the application URL by running these commands:
  export POD_NAME=$(kubectl get pods -l \"app=demo\" -o jsonpath=\"{.items[0].metadata.name}\")
  echo \"Visit http://127.0.0.1:8080 to use your application\": {
";
        let (images, diagnostics) = images_in_paths_in_text(text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(
            images,
            ["busybox:1.36", "nginx:1.25.3", "ghcr.io/x/side:v1"]
        );
    }

    /// TESTCASES.md §F8 (Sinker's standard input, derived).
    #[test]
    fn sinkers_standard_input_splits_as_sinker_splits_it() {
        let file: Arc<Path> = Arc::from(Path::new("-"));
        let images = |t: &str| sinker_images_in_input_text(&file, t).0;
        assert_eq!(images("a:1 b:2"), ["a:1", "b:2"]);
        assert_eq!(images("a:1 b:2\n"), ["a:1", "b:2\n"]);
        assert_eq!(images("a:1\nb:2\n"), ["a:1", "b:2"]);
        assert!(images("a:1").is_empty());
        let yaml = "---\napiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: x:1\n";
        assert_eq!(images(yaml), ["x:1"]);
    }

    #[test]
    fn images_without_tag_or_digest_imply_latest() {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: nginx\n  \
             - image: nginx:1\n  - image: nginx@{DIGEST}\n  - image: localhost:5000/team/app\n"
        );
        assert_eq!(
            found(&text),
            [
                // A reference without a tag sorts before those with one.
                (format!("docker.io/nginx@{DIGEST}"), false, 7),
                ("docker.io/nginx:1".to_string(), false, 6),
                ("docker.io/nginx:latest".to_string(), true, 5),
                ("localhost:5000/team/app:latest".to_string(), true, 8),
            ]
        );
    }

    #[test]
    fn duplicates_collapse_to_their_first_location() {
        let pod = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: nginx:1.25.3\n  \
                   - image: docker.io/library/nginx:1.25.3\n  - image: library/nginx:1.25.3\n";
        let text = format!("{pod}---\n{pod}");
        assert_eq!(
            found(&text),
            [("docker.io/nginx:1.25.3".to_string(), false, 5)]
        );
    }

    #[test]
    fn a_bad_image_is_an_error_at_its_line_and_the_rest_is_found() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: nginx:1\n  \
                    - image: Nginx:1\n  - image: {name: x}\n  - image: app:1@sha256:12\n";
        let (images, diagnostics) = images_in_text(Path::new("pod.yaml"), text);
        assert_eq!(shown(&images), "docker.io/nginx:1\n");
        let lines: Vec<String> = diagnostics
            .iter()
            .map(|d| d.to_string().lines().next().unwrap().to_string())
            .collect();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].starts_with("pod.yaml:6:12: error: invalid image \"Nginx:1\""),
            "{lines:#?}"
        );
        assert!(
            lines[1]
                .starts_with("pod.yaml:7:12: error: expected an image reference, found a mapping"),
            "{lines:#?}"
        );
        // `app:1@` reads like `user:password@` to the redaction every
        // message goes through, so only the line and the reason are checked.
        assert!(
            lines[2].starts_with("pod.yaml:8:12: error: invalid image")
                && lines[2].contains("wrong length"),
            "{lines:#?}"
        );
        assert!(
            diagnostics.iter().all(|d| d.help.is_some()),
            "{diagnostics:#?}"
        );
    }

    #[test]
    fn an_oci_directory_is_not_an_image_a_cluster_pulls() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: oci:build/app:1\n";
        let (images, diagnostics) = images_in_text(Path::new("pod.yaml"), text);
        assert!(images.is_empty(), "{images:?}");
        assert_eq!(diagnostics.len(), 1);
        assert!(
            diagnostics[0]
                .to_string()
                .starts_with("pod.yaml:5:12: error: invalid image \"oci:build/app:1\": an image reference names a registry host"),
            "{}",
            diagnostics[0]
        );
    }

    #[test]
    fn a_yaml_error_is_reported_and_other_files_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: Pod\nspec: [\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: b:1\n",
        )
        .unwrap();
        let (images, diagnostics) = images_in_paths(&[dir.path().to_path_buf()]);
        assert_eq!(shown(&images), "docker.io/b:1\n");
        assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
        assert_eq!(&*diagnostics[0].location.file, dir.path().join("a.yaml"));
        assert!(diagnostics[0].location.line >= 3, "{diagnostics:#?}");
        assert!(diagnostics[0].message.starts_with("invalid YAML"));
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("deploy");
        let (images, diagnostics) = images_in_paths(std::slice::from_ref(&missing));
        assert!(images.is_empty());
        assert_eq!(diagnostics.len(), 1);
        let shown = diagnostics[0].to_string();
        assert!(
            shown.starts_with(&format!(
                "{}: error: cannot read: no such file",
                missing.display()
            )),
            "{shown}"
        );
        assert!(
            shown.contains("help: pass Kubernetes YAML files"),
            "{shown}"
        );
    }

    #[test]
    fn directories_are_walked_for_yaml_and_json_only_and_named_files_always_read() {
        let dir = tempfile::tempdir().unwrap();
        let pod = |image: &str| {
            format!("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: {image}\n")
        };
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/deep.yml"), pod("deep:1")).unwrap();
        fs::write(dir.path().join("a/x.json"), pod("json:1")).unwrap();
        fs::write(dir.path().join("a/notes.txt"), pod("txt:1")).unwrap();
        fs::write(dir.path().join("a/upper.YAML"), pod("upper:1")).unwrap();
        let (images, diagnostics) = images_in_paths(&[dir.path().to_path_buf()]);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        assert_eq!(shown(&images), "docker.io/deep:1\ndocker.io/json:1\n");
        let (images, _) = images_in_paths(&[dir.path().join("a/notes.txt")]);
        assert_eq!(shown(&images), "docker.io/txt:1\n");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_tree_are_not_followed_and_loops_end() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        fs::write(
            outside.path().join("secret.yaml"),
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: outside:1\n",
        )
        .unwrap();
        let tree = tempfile::tempdir().unwrap();
        fs::create_dir(tree.path().join("apps")).unwrap();
        fs::write(
            tree.path().join("apps/pod.yaml"),
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: inside:1\n",
        )
        .unwrap();
        symlink(outside.path(), tree.path().join("escape")).unwrap();
        symlink(
            outside.path().join("secret.yaml"),
            tree.path().join("file.yaml"),
        )
        .unwrap();
        symlink(tree.path(), tree.path().join("apps/loop")).unwrap();
        symlink(tree.path().join("apps"), tree.path().join("same")).unwrap();
        let (images, diagnostics) = images_in_paths(&[tree.path().to_path_buf()]);
        assert_eq!(shown(&images), "docker.io/inside:1\n");
        let warned: Vec<&Path> = diagnostics
            .iter()
            .map(|d| {
                assert!(!d.is_error(), "{d}");
                assert!(d.message.contains("outside"), "{d}");
                assert!(
                    !d.to_string().contains(&*outside.path().to_string_lossy()),
                    "{d}"
                );
                &*d.location.file
            })
            .collect();
        assert_eq!(
            warned,
            [tree.path().join("escape"), tree.path().join("file.yaml")]
        );
        // Named on purpose, the outside directory is read.
        let (images, _) = images_in_paths(&[tree.path().join("escape")]);
        assert_eq!(shown(&images), "docker.io/outside:1\n");
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        fs::write(&file, b"kind: \xff\n").unwrap();
        let (_, diagnostics) = images_in_paths(std::slice::from_ref(&file));
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(&*diagnostics[0].location.file, file);
        assert!(diagnostics[0].message.contains("UTF-8"), "{diagnostics:?}");
    }
}
