//! Plan files: a computed plan with the state it was computed from, written
//! for review (`run --plan-out`) and read back by `apply`. A plan file is
//! data from outside when it is read: bounded, versioned, and only ever a
//! request to do what the manifests say (see [`super::apply`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::plan::{Inventory, Plan, RepoWant};

/// A computed plan together with what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFile {
    /// Format version of this file.
    pub version: u32,
    /// What the manifests wanted when the plan was made; apply checks these
    /// against the manifests again.
    pub wants: Vec<RepoWant>,
    /// The destination (and source) state the plan was computed from.
    pub inventory: Inventory,
    /// The plan itself, for review.
    pub plan: Plan,
}

/// The plan file format this promoter writes and reads; a file of any other
/// version is refused.
pub const PLAN_FILE_VERSION: u32 = 1;

/// Why a plan file could not be read or written. Every variant names the
/// file as the user gave it.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    /// Opening or reading the file failed.
    #[error("{path}: cannot read the plan file: {source}")]
    Read {
        /// The file, as given.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not JSON of the plan file's shape.
    #[error("{path}: not a promoter plan file: {source}")]
    Parse {
        /// The file, as given.
        path: String,
        /// Where and why decoding failed.
        source: serde_json::Error,
    },
    /// The file was written by a promoter with another plan file format.
    #[error("{path}: plan file version {found} is not supported (this promoter reads version {PLAN_FILE_VERSION})")]
    Version {
        /// The file, as given.
        path: String,
        /// The version the file says it has.
        found: u32,
    },
    /// Encoding, writing or renaming the file into place failed.
    #[error("{path}: cannot write the plan file: {source}")]
    Write {
        /// The file, as given.
        path: String,
        /// The underlying error (encoding, temporary file, sync or rename).
        source: std::io::Error,
    },
    /// The path is not a regular file, or is larger than [`PLAN_FILE_LIMIT`].
    #[error("{path}: not a regular file of at most {limit} bytes; a plan file is what `promoter run --plan-out` writes")]
    NotAPlanFile {
        /// The file, as given.
        path: String,
        /// The size limit, in bytes.
        limit: u64,
    },
}

/// Largest plan file read: a plan of the whole registry.k8s.io tree (some
/// 700,000 edges) is well under this; a bigger file is not one of ours.
pub const PLAN_FILE_LIMIT: u64 = 1 << 30;

/// Write the plan file atomically: a reader never sees half a plan.
pub fn write_plan_file(path: &Path, plan: &PlanFile) -> Result<(), PlanFileError> {
    let shown = path.display().to_string();
    let write_err = |source| PlanFileError::Write {
        path: shown.clone(),
        source,
    };
    let json = serde_json::to_vec_pretty(plan).map_err(|e| write_err(std::io::Error::other(e)))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    std::io::Write::write_all(&mut tmp, &json).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}

/// Read and check a plan file written by [`write_plan_file`]: a regular
/// file within [`PLAN_FILE_LIMIT`], of this promoter's version. Its wants
/// still have to be checked against the manifests ([`super::wants_to_apply`]).
pub fn read_plan_file(path: &Path) -> Result<PlanFile, PlanFileError> {
    let shown = path.display().to_string();
    let read_err = |source| PlanFileError::Read {
        path: shown.clone(),
        source,
    };
    // Hostile until checked: a FIFO or /dev/zero would block or never end.
    let bytes = match crate::local_file::read_capped(path, PLAN_FILE_LIMIT) {
        Ok(bytes) => bytes,
        Err(crate::local_file::ReadError::Io(source)) => return Err(read_err(source)),
        Err(_) => {
            return Err(PlanFileError::NotAPlanFile {
                path: shown,
                limit: PLAN_FILE_LIMIT,
            })
        }
    };
    parse_plan_file(&bytes, shown)
}

/// A plan file's bytes (read by [`read_plan_file`], or from standard input
/// within [`PLAN_FILE_LIMIT`]), checked; `shown` names it in errors.
pub fn parse_plan_file(bytes: &[u8], shown: String) -> Result<PlanFile, PlanFileError> {
    if bytes.len() as u64 > PLAN_FILE_LIMIT {
        return Err(PlanFileError::NotAPlanFile {
            path: shown,
            limit: PLAN_FILE_LIMIT,
        });
    }
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let version: VersionOnly =
        serde_json::from_slice(bytes).map_err(|source| PlanFileError::Parse {
            path: shown.clone(),
            source,
        })?;
    if version.version != PLAN_FILE_VERSION {
        return Err(PlanFileError::Version {
            path: shown,
            found: version.version,
        });
    }
    serde_json::from_slice(bytes).map_err(|source| PlanFileError::Parse {
        path: shown,
        source,
    })
}

/// The plan file at `path`, or on standard input for `-` (held to the
/// same cap as a file).
pub fn read_plan(path: &Path) -> Result<PlanFile, PlanFileError> {
    if path.as_os_str() != "-" {
        return read_plan_file(path);
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::io::stdin().lock(), PLAN_FILE_LIMIT + 1),
        &mut bytes,
    )
    .map_err(|source| PlanFileError::Read {
        path: "<stdin>".to_string(),
        source,
    })?;
    parse_plan_file(&bytes, "<stdin>".to_string())
}

/// A plan file as its bytes: what [`write_plan_file`] writes.
pub fn plan_file_bytes(plan: &PlanFile) -> Vec<u8> {
    serde_json::to_vec_pretty(plan).expect("a plan serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::{item, tag_1_0};

    #[test]
    fn plan_files_round_trip_and_refuse_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let file = PlanFile {
            version: PLAN_FILE_VERSION,
            wants: vec![],
            inventory: Inventory::default(),
            plan: Plan {
                items: vec![item(tag_1_0())],
                already_present: 3,
                ..Plan::default()
            },
        };
        write_plan_file(&path, &file).unwrap();
        assert_eq!(read_plan_file(&path).unwrap(), file);
        std::fs::write(&path, br#"{"version": 99}"#).unwrap();
        assert!(matches!(
            read_plan_file(&path),
            Err(PlanFileError::Version { found: 99, .. })
        ));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            read_plan_file(&path),
            Err(PlanFileError::Parse { .. })
        ));
    }
}
