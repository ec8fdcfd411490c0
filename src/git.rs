//! The manifests as they were at a git revision, read from the local
//! repository with the `git` command (never the network): what
//! `--parse-only --base REV` compares with and `run --since REV` diffs
//! against. Works on a shallow CI checkout as long as REV is in it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the base revision could not be read. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` is not installed, or could not start.
    #[error("cannot run git: {0} (install git, or drop --base/--since)")]
    NoGit(std::io::Error),
    /// The manifests are not in a git work tree.
    #[error("{path}: not inside a git repository; --base and --since compare with a git revision")]
    NotARepository {
        /// The manifest file or tree.
        path: String,
    },
    /// The revision is not in this clone.
    #[error("revision {rev:?} is not in this repository (a shallow clone may lack it: fetch it, e.g. `git fetch --depth=1 origin {rev}`)")]
    UnknownRevision {
        /// The revision as given.
        rev: String,
    },
    /// The manifests did not exist at the revision.
    #[error("{path} does not exist at revision {rev}")]
    Absent {
        /// The manifest file or tree.
        path: String,
        /// The revision.
        rev: String,
    },
    /// git said something unexpected.
    #[error("git {what}: {message}")]
    Failed {
        /// Which git operation.
        what: String,
        /// What it printed on stderr (first line).
        message: String,
    },
    /// A manifest file at the revision is larger than any manifest read.
    #[error("{path} at revision {rev} is {size} bytes, more than the {limit}-byte limit for a manifest file")]
    TooLarge {
        /// The file, in the revision.
        path: String,
        /// The revision.
        rev: String,
        /// Its size, as git stores it.
        size: u64,
        /// The cap ([`crate::limits::MANIFEST_FILE_BYTES`]).
        limit: u64,
    },
    /// Writing the base copy failed.
    #[error("cannot write the base copy: {0}")]
    Io(#[from] std::io::Error),
}

/// One entry of `git ls-tree -r -l -z`: mode, object, size, path.
struct TreeEntry {
    mode: String,
    object: String,
    size: u64,
    path: PathBuf,
}

/// The entries of `commit` under `dir` (`.`: all), blobs only.
fn ls_tree(dir: &Path, commit: &str, path: &str) -> Result<Vec<TreeEntry>, GitError> {
    let listing = git(dir, &["ls-tree", "-r", "-l", "-z", commit, "--", path])?;
    if !listing.status.success() {
        return Err(failed("ls-tree", &listing));
    }
    // `<mode> <type> <object> <size>\t<path>`, NUL-terminated.
    let mut entries = Vec::new();
    for record in listing.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let text = String::from_utf8_lossy(record);
        let Some((meta, path)) = text.split_once('\t') else {
            continue;
        };
        let fields: Vec<&str> = meta.split_whitespace().collect();
        let [mode, kind, object, size] = fields[..] else {
            continue;
        };
        if kind != "blob" {
            continue; // submodules and the like hold no manifests
        }
        entries.push(TreeEntry {
            mode: mode.to_string(),
            object: object.to_string(),
            size: size.parse().unwrap_or(u64::MAX),
            path: PathBuf::from(path),
        });
    }
    Ok(entries)
}

/// Refuse an entry larger than a manifest file may be, before reading it.
fn check_size(entry: &TreeEntry, shown: &Path, rev: &str) -> Result<(), GitError> {
    let limit = crate::limits::MANIFEST_FILE_BYTES;
    if entry.size > limit {
        return Err(GitError::TooLarge {
            path: shown.display().to_string(),
            rev: rev.to_string(),
            size: entry.size,
            limit,
        });
    }
    Ok(())
}

/// Whether the thin-tree loader reads a file of this name (or a link):
/// nothing else of a base tree is read.
fn read_by_the_loader(entry: &TreeEntry) -> bool {
    entry.mode == "120000"
        || entry
            .path
            .file_name()
            .is_some_and(|n| n == "promoter-manifest.yaml" || n == "images.yaml")
}

/// The commit `rev` names, checked to exist, in the repository of `dir`.
pub fn resolve(dir: &Path, rev: &str) -> Result<String, GitError> {
    let out = git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )?;
    if !out.status.success() {
        if !inside_work_tree(dir)? {
            return Err(GitError::NotARepository {
                path: dir.display().to_string(),
            });
        }
        return Err(GitError::UnknownRevision {
            rev: rev.to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The text of `file` at revision `rev`, refused before it is read when
/// it is larger than a manifest file may be.
pub fn file_at(file: &Path, rev: &str) -> Result<String, GitError> {
    let dir = parent_dir(file);
    let commit = resolve(&dir, rev)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let absent = || GitError::Absent {
        path: file.display().to_string(),
        rev: rev.to_string(),
    };
    let entry = ls_tree(&dir, &commit, &name)?
        .into_iter()
        .find(|e| e.path.as_os_str() == name.as_str())
        .ok_or_else(absent)?;
    check_size(&entry, file, rev)?;
    let mut batch = CatFile::start(&dir)?;
    let bytes = batch.read(&entry.object, entry.size)?;
    batch.finish();
    String::from_utf8(bytes).map_err(|_| GitError::Failed {
        what: "cat-file".into(),
        message: format!("{} at {rev} is not UTF-8", file.display()),
    })
}

/// `git cat-file --batch`: objects asked for one at a time, each read to
/// exactly the size its header says (no more is buffered than one object).
struct CatFile {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl CatFile {
    fn start(dir: &Path) -> Result<CatFile, GitError> {
        let mut child = command(dir)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(GitError::NoGit)?;
        let stdin = child.stdin.take().expect("piped");
        let out = BufReader::new(child.stdout.take().expect("piped"));
        Ok(CatFile { child, stdin, out })
    }

    /// Stream `object` (of `size` bytes, as ls-tree said) into `to`.
    fn copy(&mut self, object: &str, size: u64, to: &mut dyn Write) -> Result<(), GitError> {
        writeln!(self.stdin, "{object}")?;
        self.stdin.flush()?;
        let mut header = String::new();
        (&mut self.out).take(1024).read_line(&mut header)?;
        let told: u64 = header
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| GitError::Failed {
                what: "cat-file".into(),
                message: header.trim().to_string(),
            })?;
        if told != size {
            return Err(GitError::Failed {
                what: "cat-file".into(),
                message: format!("{object} is {told} bytes, the tree said {size}"),
            });
        }
        let copied = std::io::copy(&mut (&mut self.out).take(size), to)?;
        let mut newline = [0u8; 1];
        self.out.read_exact(&mut newline)?;
        if copied != size {
            return Err(GitError::Failed {
                what: "cat-file".into(),
                message: format!("{object} ended after {copied} of {size} bytes"),
            });
        }
        Ok(())
    }

    fn read(&mut self, object: &str, size: u64) -> Result<Vec<u8>, GitError> {
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        self.copy(object, size, &mut bytes)?;
        Ok(bytes)
    }

    fn finish(self) {
        drop(self.stdin);
        let mut child = self.child;
        let _ = child.wait();
    }
}

/// A copy of the manifest files of the tree `dir` as they were at
/// revision `rev`, in a temporary directory (removed when the value is
/// dropped): only what the thin-tree loader reads (`promoter-manifest.yaml`,
/// `images.yaml`, and links, as links), each refused before it is read when
/// larger than a manifest file may be, and streamed to disk.
pub fn tree_at(dir: &Path, rev: &str) -> Result<tempfile::TempDir, GitError> {
    let commit = resolve(dir, rev)?;
    let entries: Vec<TreeEntry> = ls_tree(dir, &commit, ".")?
        .into_iter()
        .filter(read_by_the_loader)
        // git never lists these; refuse to follow one anyway.
        .filter(|e| {
            e.path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
        .collect();
    if entries.is_empty() {
        return Err(GitError::Absent {
            path: dir.display().to_string(),
            rev: rev.to_string(),
        });
    }
    for entry in &entries {
        check_size(entry, &dir.join(&entry.path), rev)?;
    }
    let copy = tempfile::Builder::new()
        .prefix("promoter-base-")
        .tempdir()?;
    let mut batch = CatFile::start(dir)?;
    for entry in &entries {
        let target = copy.path().join(&entry.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if entry.mode == "120000" {
            let link = batch.read(&entry.object, entry.size)?;
            #[cfg(unix)]
            std::os::unix::fs::symlink(String::from_utf8_lossy(&link).as_ref(), &target)?;
        } else {
            let mut file = std::fs::File::create(&target)?;
            batch.copy(&entry.object, entry.size, &mut file)?;
        }
    }
    batch.finish();
    Ok(copy)
}

/// What to compare with for "what changed in the last `window`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowBase {
    /// No commit falls in the window: nothing changed.
    Nothing,
    /// The window reaches the repository's first commit: everything is new.
    Everything,
    /// The parent of the oldest commit in the window.
    Commit(String),
}

/// The base for "what changed in the last `window`" in the repository of
/// `dir`: see [`WindowBase`]. `window` is a git approxidate span
/// (`14 days`, `2 weeks`, `3600 seconds`).
pub fn base_of_window(dir: &Path, window: &str) -> Result<WindowBase, GitError> {
    resolve(dir, "HEAD")?;
    let out = git(
        dir,
        &[
            "rev-list",
            "--reverse",
            &format!("--since={window} ago"),
            "HEAD",
        ],
    )?;
    if !out.status.success() {
        return Err(failed("rev-list", &out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(oldest) = text.lines().next() else {
        return Ok(WindowBase::Nothing);
    };
    match resolve(dir, &format!("{oldest}^")) {
        Ok(commit) => Ok(WindowBase::Commit(commit)),
        Err(GitError::UnknownRevision { .. }) => Ok(WindowBase::Everything),
        Err(e) => Err(e),
    }
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn inside_work_tree(dir: &Path) -> Result<bool, GitError> {
    let out = git(dir, &["rev-parse", "--is-inside-work-tree"])?;
    Ok(out.status.success())
}

/// `git -C dir`, reading the repository as its commits say: replace
/// objects (`git replace`) and grafts cannot substitute other content, and
/// nothing is read from a terminal.
fn command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .arg("--no-replace-objects")
        .env("GIT_NO_REPLACE_OBJECTS", "1")
        .env("GIT_GRAFT_FILE", "/nonexistent/promoter-no-grafts")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES");
    command
}

fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output, GitError> {
    command(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::NoGit)
}

fn failed(what: &str, out: &std::process::Output) -> GitError {
    GitError::Failed {
        what: what.to_string(),
        message: String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("failed")
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new repository in a temp directory, `script` run in it.
    fn repo_with(script: &str) -> tempfile::TempDir {
        let repo = tempfile::tempdir().unwrap();
        sh(
            repo.path(),
            &format!(
                "git init -q . && git config user.email t@t && git config user.name t && {script}"
            ),
        );
        repo
    }

    fn sh(dir: &Path, script: &str) {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script}");
    }

    #[test]
    fn a_tree_and_a_file_are_read_back_as_they_were() {
        let repo = repo_with(
            "mkdir -p tree/images/a && echo one > tree/images/a/images.yaml \
             && echo plain > m.yaml && git add -A && git commit -qm base \
             && echo two > tree/images/a/images.yaml && echo changed > m.yaml",
        );
        let base = tree_at(&repo.path().join("tree"), "HEAD").unwrap();
        assert_eq!(
            std::fs::read_to_string(base.path().join("images/a/images.yaml")).unwrap(),
            "one\n"
        );
        assert_eq!(
            file_at(&repo.path().join("m.yaml"), "HEAD").unwrap(),
            "plain\n"
        );
        let err = file_at(&repo.path().join("m.yaml"), "no-such-rev").unwrap_err();
        assert!(matches!(err, GitError::UnknownRevision { .. }), "{err}");
        let outside = tempfile::tempdir().unwrap();
        let err = tree_at(outside.path(), "HEAD").unwrap_err();
        assert!(matches!(err, GitError::NotARepository { .. }), "{err}");
    }

    #[test]
    fn only_manifest_files_are_read_and_each_within_the_limit() {
        let repo = repo_with(
            "mkdir -p tree/images/a tree/docs && echo one > tree/images/a/images.yaml \
             && head -c 1000 /dev/zero > tree/docs/big.bin && git add -A && git commit -qm base",
        );
        let base = tree_at(&repo.path().join("tree"), "HEAD").unwrap();
        assert!(base.path().join("images/a/images.yaml").is_file());
        assert!(
            !base.path().join("docs/big.bin").exists(),
            "not a manifest file"
        );
        // A committed manifest past the limit is refused by its size, unread.
        let limit = crate::limits::MANIFEST_FILE_BYTES;
        sh(
            repo.path(),
            &format!(
                "head -c {} /dev/zero > tree/images/a/images.yaml && git commit -qam big",
                limit + 1
            ),
        );
        let err = tree_at(&repo.path().join("tree"), "HEAD").unwrap_err();
        assert!(matches!(err, GitError::TooLarge { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("images/a/images.yaml at revision HEAD is"),
            "{err}"
        );
    }

    #[test]
    fn a_replace_object_cannot_change_what_a_revision_says() {
        let repo = repo_with(
            "echo committed > m.yaml && git add -A && git commit -qm base \
             && other=$(echo substituted | git hash-object -w --stdin) \
             && git replace $(git rev-parse HEAD:m.yaml) $other",
        );
        assert_eq!(
            file_at(&repo.path().join("m.yaml"), "HEAD").unwrap(),
            "committed\n"
        );
    }
}
