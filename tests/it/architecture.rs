//! The architecture, checked: which module of `src/` uses which is read
//! from the code (every `crate::…` and, in the binary, `promoter::…` path
//! outside comments, strings and test code) and must be exactly the module
//! graph CONTRIBUTING.md documents, without a cycle and without the edges
//! the layering forbids (the OCI floor and the planner never see a
//! registry; nothing outside the registry layer names `registry::remote`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Edges no change may add, whatever CONTRIBUTING says: (from, to).
const FORBIDDEN: [(&str, &str); 4] = [
    ("oci", "registry"),
    ("plan", "registry"),
    ("plan", "exec"),
    ("exec", "manifest"),
];

/// The module a file of `src/` belongs to: its top-level module, with the
/// registry's HTTP implementation apart (`registry::remote`) and the
/// binary (`main.rs`, `cli/`) as `cli`. `None` for the crate root.
fn module_of(relative: &Path) -> Option<String> {
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let first = parts.first()?.as_str();
    match first {
        "lib.rs" => None,
        "main.rs" | "cli" => Some("cli".to_string()),
        "registry" if parts.get(1).is_some_and(|p| p == "remote") => {
            Some("registry::remote".to_string())
        }
        top => Some(top.trim_end_matches(".rs").to_string()),
    }
}

/// `text` without comments, string and char literals, and without what
/// follows its first `#[cfg(test)]` (tests may use what the code may not).
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let bytes: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let starts = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| bytes.get(i + k) == Some(&c))
    };
    while i < bytes.len() {
        if starts(i, "//") {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
        } else if starts(i, "/*") {
            i += 2;
            while i < bytes.len() && !starts(i, "*/") {
                i += 1;
            }
            i += 2;
        } else if starts(i, "r\"") || starts(i, "r#") {
            let hashes = bytes[i + 1..].iter().take_while(|&&c| c == '#').count();
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            i += 2 + hashes;
            while i < bytes.len() && !starts(i, &close) {
                i += 1;
            }
            i += close.chars().count();
        } else if bytes[i] == '"' {
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                i += if bytes[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if bytes[i] == '\'' && bytes.get(i + 2) == Some(&'\'') {
            i += 3; // 'x'
        } else if bytes[i] == '\'' && bytes.get(i + 1) == Some(&'\\') {
            i += 2;
            while i < bytes.len() && bytes[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// The modules `code` (of module `from`) uses.
fn uses(from: &str, code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for root in ["crate::", "promoter::"] {
        for (at, _) in code.match_indices(root) {
            let preceded = code[..at].chars().last();
            if preceded.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[at + root.len()..];
            let paths: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                group.split(',').map(|p| p.trim().to_string()).collect()
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                vec![rest[..end].to_string()]
            };
            for path in paths {
                let mut parts = path.split("::").filter(|p| !p.is_empty());
                let Some(top) = parts.next() else { continue };
                if !top.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                    continue;
                }
                let to = if top == "registry" && parts.next() == Some("remote") {
                    "registry::remote".to_string()
                } else {
                    top.to_string()
                };
                let same_layer = to == from || (from == "registry::remote" && to == "registry");
                if !same_layer {
                    out.insert(to);
                }
            }
        }
    }
    out
}

/// The graph of `files` (paths relative to `src/`, and their text).
fn graph_of(files: &[(PathBuf, String)]) -> Graph {
    let mut graph = Graph::new();
    for (path, text) in files {
        let Some(from) = module_of(path) else {
            continue;
        };
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let entry = graph.entry(from.clone()).or_default();
        entry.extend(uses(&from, &code_of(text)));
    }
    graph
}

/// The graph CONTRIBUTING.md documents: the lines `module -> a, b` (or
/// `-> nothing`) of the fenced block after the `module-graph` marker.
fn documented(contributing: &str) -> Graph {
    let start = contributing
        .find("<!-- module-graph")
        .expect("CONTRIBUTING.md has a <!-- module-graph --> block");
    let block = &contributing[start..];
    let open = block.find("```").expect("a fenced block") + 3;
    let body = &block[open..];
    let body = &body[body.find('\n').unwrap_or(0)..];
    let body = &body[..body.find("```").expect("the block's end")];
    let mut graph = Graph::new();
    for line in body.lines().filter(|l| l.contains("->")) {
        let (from, to) = line.split_once("->").unwrap();
        let targets: BTreeSet<String> = to
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty() && t != "nothing")
            .collect();
        graph.insert(from.trim().to_string(), targets);
    }
    graph
}

/// Every way `graph` breaks the rules: edges not documented (or documented
/// and gone), forbidden edges, names of `registry::remote` from outside the
/// registry, cycles.
fn problems(actual: &Graph, documented: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    let modules: BTreeSet<&String> = actual.keys().chain(documented.keys()).collect();
    let none = BTreeSet::new();
    for module in modules {
        let (code, doc) = (
            actual.get(module).unwrap_or(&none),
            documented.get(module).unwrap_or(&none),
        );
        for to in code.difference(doc) {
            out.push(format!("{module} -> {to} is in the code, not in CONTRIBUTING's module graph: add it there if it is right, or remove the use"));
        }
        for to in doc.difference(code) {
            out.push(format!("{module} -> {to} is in CONTRIBUTING's module graph, not in the code: remove it there"));
        }
        if !actual.contains_key(module.as_str()) {
            out.push(format!(
                "{module} is in CONTRIBUTING's module graph, and not a module of src/"
            ));
        }
    }
    for (from, tos) in actual {
        for to in tos {
            if FORBIDDEN.contains(&(from.as_str(), to.as_str())) {
                out.push(format!("{from} -> {to} is forbidden by the layering"));
            }
            if to == "registry::remote" && from != "registry" {
                out.push(format!("{from} -> registry::remote: only the registry layer names its HTTP implementation"));
            }
        }
    }
    out.extend(cycle(actual));
    out
}

/// A cycle of `graph`, if there is one.
fn cycle(graph: &Graph) -> Option<String> {
    fn visit<'g>(
        node: &'g str,
        graph: &'g Graph,
        path: &mut Vec<&'g str>,
        done: &mut BTreeSet<&'g str>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node);
            return Some(format!("a cycle: {}", cycle.join(" -> ")));
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn sources(dir: &Path, under: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, under, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.strip_prefix(under).unwrap().to_path_buf(), text));
        }
    }
}

#[test]
fn the_module_graph_is_the_one_contributing_documents_and_has_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &root.join("src"), &mut files);
    let actual = graph_of(&files);
    let contributing = std::fs::read_to_string(root.join("CONTRIBUTING.md")).unwrap();
    let found = problems(&actual, &documented(&contributing));
    let shown: Vec<String> = actual
        .iter()
        .map(|(from, to)| {
            let to: Vec<&str> = to.iter().map(String::as_str).collect();
            let to = if to.is_empty() {
                "nothing".to_string()
            } else {
                to.join(", ")
            };
            format!("{from} -> {to}")
        })
        .collect();
    assert!(
        found.is_empty(),
        "{}\n\nthe graph the code has:\n{}",
        found.join("\n"),
        shown.join("\n")
    );
}

/// The check itself can fail: `src/oci/` gaining `use crate::registry` is
/// caught three ways (undocumented, forbidden, and here a cycle), and a
/// `crate::` in a comment, a string or a test is not a use.
#[test]
fn the_check_catches_an_oci_module_that_uses_the_registry() {
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_string());
    let clean = vec![
        file("oci/mod.rs", "use crate::reference::Digest; // crate::registry in a comment\nconst S: &str = \"crate::registry\";\n#[cfg(test)]\nmod tests { use crate::registry::X; }\n"),
        file("registry/mod.rs", "use crate::oci::RawManifest;\n"),
        file("registry/remote/mod.rs", "use crate::registry::Registry; use crate::{oci, reference};\n"),
        file("reference.rs", "pub struct Digest;\n"),
    ];
    let doc = "<!-- module-graph -->\n```\noci -> reference\nregistry -> oci\nregistry::remote -> oci, reference\nreference -> nothing\n```\n";
    assert_eq!(
        problems(&graph_of(&clean), &documented(doc)),
        Vec::<String>::new()
    );
    let mut broken = clean.clone();
    broken[0]
        .1
        .insert_str(0, "use crate::registry::Registry;\n");
    let found = problems(&graph_of(&broken), &documented(doc));
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("oci -> registry is in the code")),
        "{found:?}"
    );
    assert!(found.iter().any(|p| p.contains("forbidden")), "{found:?}");
    assert!(found.iter().any(|p| p.starts_with("a cycle")), "{found:?}");
    let mut remote = clean;
    remote[0]
        .1
        .insert_str(0, "use crate::registry::remote::RemoteRegistry;\n");
    let found = problems(&graph_of(&remote), &documented(doc));
    assert!(
        found.iter().any(|p| p.contains("only the registry layer")),
        "{found:?}"
    );
}
