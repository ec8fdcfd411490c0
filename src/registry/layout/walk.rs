//! The walk of a tree: every repository (a directory holding `oci-layout`
//! and `index.json`) at or below a prefix, without leaving the root or
//! looping through links.

use std::path::{Path, PathBuf};

use super::{io_error, is_absent, INDEX_JSON, OCI_LAYOUT_FILE, RESERVED_NAMES};
use crate::reference::ImageName;
use crate::registry::RegistryError;

/// Symlinked directories are followed inside the root; this bounds the depth
/// of the walk whatever the links do.
const MAX_WALK_DEPTH: usize = 64;

/// Every repository at or below `start` (whose repository path is `prefix`),
/// sorted. Symlinked directories are followed only while they resolve inside
/// the root and not to one of their own ancestors (no escape, no loop).
pub(super) fn walk_repositories(
    root: &Path,
    start: &Path,
    prefix: &str,
) -> Result<Vec<String>, RegistryError> {
    let canonical_root = match std::fs::canonicalize(root) {
        Ok(p) => p,
        Err(e) if is_absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_error(root, e)),
    };
    // The directories between the root and `start` count as ancestors too:
    // a link from below `start` back up to them is a loop as well.
    let mut ancestors = Vec::new();
    let mut dir = root.to_path_buf();
    for component in prefix.split('/').filter(|c| !c.is_empty()) {
        match std::fs::canonicalize(&dir) {
            Ok(p) => ancestors.push(p),
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&dir, e)),
        }
        dir.push(component);
    }
    let mut found = Vec::new();
    walk_dir(&canonical_root, start, prefix, &mut ancestors, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk_dir(
    canonical_root: &Path,
    dir: &Path,
    name: &str,
    ancestors: &mut Vec<PathBuf>,
    found: &mut Vec<String>,
) -> Result<(), RegistryError> {
    let canonical = match std::fs::canonicalize(dir) {
        Ok(p) => p,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(io_error(dir, e)),
    };
    if !canonical.starts_with(canonical_root)
        || ancestors.contains(&canonical)
        || ancestors.len() >= MAX_WALK_DEPTH
    {
        return Ok(());
    }
    let is_repo =
        !name.is_empty() && dir.join(OCI_LAYOUT_FILE).is_file() && dir.join(INDEX_JSON).is_file();
    if is_repo {
        found.push(name.to_string());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let Ok(file_name) = entry.file_name().into_string() else {
            continue; // not UTF-8: cannot be part of a repository name
        };
        // A layout's own files are never part of a repository name (and its
        // blob store is big).
        if RESERVED_NAMES.contains(&file_name.as_str()) {
            continue;
        }
        let child_name = if name.is_empty() {
            file_name
        } else {
            format!("{name}/{file_name}")
        };
        // Temp files, hidden directories and anything else that cannot be a
        // repository path are skipped, with everything below them.
        if ImageName::parse(&child_name).is_err() {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| io_error(&path, e))?;
        let is_dir = file_type.is_dir() || (file_type.is_symlink() && path.is_dir());
        if is_dir {
            children.push((child_name, path));
        }
    }
    children.sort();
    ancestors.push(canonical);
    for (child_name, path) in children {
        walk_dir(canonical_root, &path, &child_name, ancestors, found)?;
    }
    ancestors.pop();
    Ok(())
}
