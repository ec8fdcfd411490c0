//! The one walk of a local directory tree, whoever walks (thin manifest
//! trees, `import kubernetes` directories): bounded in depth and in the
//! entries it looks at, with symlinks resolved safely. A tree may come from
//! a pull request or a chart, so a link out of the root must not pull this
//! machine's files into the run, a link back up must not make the walk
//! loop, and a FIFO or device must not hang it: the walk only looks at
//! metadata and never opens a file (reading is [`super::read_capped`]'s job).
//!
//! The walk reports what it found and what it refused, each with the path
//! it was reached by; what to say about each is the caller's (its words,
//! its severity), so the walk has no diagnostics of its own.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::limits::{WALK_DEPTH, WALK_ENTRIES};

/// One entry the walk reached, and what it turned out to be.
#[derive(Debug)]
pub struct Entry {
    /// The path it was reached by: the start's shown path joined with the
    /// names below it (a link's own name, not its target).
    pub shown: PathBuf,
    /// Where it really is, resolved (a followed link's target); for a
    /// refused entry, the path walked. What to open, when it is a file.
    pub path: PathBuf,
    /// Directories between the start and it: the start is 0, what is
    /// directly in it 1.
    pub depth: usize,
    /// What it is.
    pub found: Found,
}

/// What an entry is, links followed.
#[derive(Debug)]
pub enum Found {
    /// A directory, listed next (the start is the first one reported).
    Dir,
    /// A regular file whose name the file filter kept.
    File,
    /// A FIFO, device or socket whose name the file filter kept: never
    /// opened, since opening one can block for ever.
    Special,
    /// Not walked further, and why.
    Refused(Refusal),
}

/// Why an entry is not walked or found.
#[derive(Debug)]
pub enum Refusal {
    /// Its metadata (or its link target's) could not be read.
    Unreadable(io::Error),
    /// A link whose resolution loops (a link to itself, or a cycle of links).
    LinkCycle,
    /// A link to nothing.
    Dangling,
    /// A link that could not be resolved for another reason.
    Unresolved(io::Error),
    /// A link to somewhere outside the root the walk must stay in.
    Escapes,
    /// A link, and this walk does not follow links.
    Link,
    /// A link to a directory that contains it: following it would never end.
    Ancestor,
    /// A directory walked already, through another link: each real
    /// directory is walked once.
    Again,
    /// A directory at the depth bound: it is not listed.
    TooDeep,
    /// A directory that could not be listed.
    Unlisted(io::Error),
    /// The directory being listed when the entry bound was reached; the
    /// whole walk stops there.
    TooMany,
}

/// Where links may lead.
#[derive(Debug, Clone)]
enum Inside {
    /// Anywhere.
    Anywhere,
    /// Below the start, resolved.
    Start,
    /// Below this directory (resolved when the walk starts).
    Root(PathBuf),
}

/// A name filter: which files are found, or which directories entered.
type NameFilter<'f> = Box<dyn Fn(&OsStr) -> bool + 'f>;

/// A walk to run: where it starts and what it follows. Links are followed,
/// anywhere, every file is found and every directory entered, within
/// [`WALK_DEPTH`] and [`WALK_ENTRIES`], unless said otherwise.
pub struct Walk<'f> {
    start: PathBuf,
    shown: PathBuf,
    inside: Inside,
    follow_links: bool,
    files: NameFilter<'f>,
    dirs: NameFilter<'f>,
    max_depth: usize,
    max_entries: usize,
}

/// The state of one run of a [`Walk`].
struct Run {
    /// Where links must stay, resolved.
    root: Option<PathBuf>,
    /// Resolved directories walked so far.
    visited: HashSet<PathBuf>,
    /// Entries listed so far.
    listed: usize,
    out: Vec<Entry>,
}

impl<'f> Walk<'f> {
    /// A walk of the directory at `start`, shown as `start`.
    pub fn new(start: &Path) -> Self {
        Walk {
            start: start.to_path_buf(),
            shown: start.to_path_buf(),
            inside: Inside::Anywhere,
            follow_links: true,
            files: Box::new(|_| true),
            dirs: Box::new(|_| true),
            max_depth: WALK_DEPTH,
            max_entries: WALK_ENTRIES,
        }
    }

    /// Report paths below `shown` instead of below the start (a path
    /// relative to a tree's root, say).
    pub fn shown_as(mut self, shown: &Path) -> Self {
        self.shown = shown.to_path_buf();
        self
    }

    /// Follow links only to what resolves below the start itself.
    pub fn inside_start(mut self) -> Self {
        self.inside = Inside::Start;
        self
    }

    /// Follow links only to what resolves below `root` (a directory the
    /// start is in, resolved or not).
    pub fn inside(mut self, root: &Path) -> Self {
        self.inside = Inside::Root(root.to_path_buf());
        self
    }

    /// Whether links are followed at all; when not, each is
    /// [`Refusal::Link`].
    pub fn follow_links(mut self, follow: bool) -> Self {
        self.follow_links = follow;
        self
    }

    /// Find only the files (and special files) whose name `keep` accepts.
    pub fn files(mut self, keep: impl Fn(&OsStr) -> bool + 'f) -> Self {
        self.files = Box::new(keep);
        self
    }

    /// Enter only the directories whose name `keep` accepts; the others
    /// are passed over, with everything below them, without a word.
    pub fn dirs(mut self, keep: impl Fn(&OsStr) -> bool + 'f) -> Self {
        self.dirs = Box::new(keep);
        self
    }

    /// List no directory `depth` or more levels below the start.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Look at `entries` directory entries at the most.
    pub fn max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries;
        self
    }

    /// Walk: every entry reached, depth first, each directory's entries in
    /// name order (so that what callers say does not depend on the file
    /// system's order). `Err` when the start (or the root it must stay
    /// in) cannot be resolved; a start outside its root is
    /// [`Refusal::Escapes`], and nothing below it is walked.
    pub fn run(&self) -> io::Result<Vec<Entry>> {
        let start = fs::canonicalize(&self.start)?;
        let root = match &self.inside {
            Inside::Anywhere => None,
            Inside::Start => Some(start.clone()),
            Inside::Root(root) => Some(fs::canonicalize(root)?),
        };
        let mut dir = Entry {
            shown: self.shown.clone(),
            path: start.clone(),
            depth: 0,
            found: Found::Dir,
        };
        if root.as_ref().is_some_and(|root| !start.starts_with(root)) {
            dir.found = Found::Refused(Refusal::Escapes);
            return Ok(vec![dir]);
        }
        let mut run = Run {
            root,
            visited: HashSet::from([start]),
            listed: 0,
            out: Vec::new(),
        };
        self.dir(&mut run, &self.start, dir);
        Ok(run.out)
    }

    /// Report the directory `dir` (reached as `walked`) and walk what is in
    /// it. False when the entry bound stopped the walk.
    fn dir(&self, run: &mut Run, walked: &Path, dir: Entry) -> bool {
        if dir.depth >= self.max_depth {
            run.out.push(Entry {
                found: Found::Refused(Refusal::TooDeep),
                ..dir
            });
            return true;
        }
        let most = self.max_entries.saturating_sub(run.listed);
        let names = match list(walked, most) {
            Ok(names) => names,
            Err(err) => {
                run.out.push(Entry {
                    found: Found::Refused(Refusal::Unlisted(err)),
                    ..dir
                });
                return true;
            }
        };
        let (shown, real, depth) = (dir.shown.clone(), dir.path.clone(), dir.depth);
        run.out.push(dir);
        for name in names {
            run.listed += 1;
            if run.listed > self.max_entries {
                run.out.push(Entry {
                    shown,
                    path: real,
                    depth,
                    found: Found::Refused(Refusal::TooMany),
                });
                return false;
            }
            let walked = walked.join(&name);
            let entry = self.entry(run, &walked, &shown, &real, &name, depth + 1);
            let Some(entry) = entry else { continue };
            if !matches!(entry.found, Found::Dir) {
                run.out.push(entry);
            } else if !self.dir(run, &walked, entry) {
                // Stopped below: stop here too, without saying it again.
                return false;
            }
        }
        true
    }

    /// What the entry `name` of the directory at `real` (shown as `shown`)
    /// is; `None` for what the filters pass over.
    fn entry(
        &self,
        run: &mut Run,
        walked: &Path,
        shown: &Path,
        real: &Path,
        name: &OsStr,
        depth: usize,
    ) -> Option<Entry> {
        let at = |path: PathBuf, found: Found| Entry {
            shown: shown.join(name),
            path,
            depth,
            found,
        };
        let resolved = match resolve(walked, self.follow_links, run.root.as_deref()) {
            Ok(resolved) => resolved,
            Err(refusal) => return Some(at(walked.to_path_buf(), Found::Refused(refusal))),
        };
        // A link's target is resolved; anything else is a name in a
        // resolved directory.
        let path = if resolved.link {
            resolved.path
        } else {
            real.join(name)
        };
        match resolved.kind {
            Kind::Dir if !(self.dirs)(name) => None,
            Kind::Dir if resolved.link && real.starts_with(&path) => {
                Some(at(path, Found::Refused(Refusal::Ancestor)))
            }
            Kind::Dir if depth < self.max_depth && !run.visited.insert(path.clone()) => {
                Some(at(path, Found::Refused(Refusal::Again)))
            }
            Kind::Dir => Some(at(path, Found::Dir)),
            Kind::File | Kind::Special if !(self.files)(name) => None,
            Kind::File => Some(at(path, Found::File)),
            Kind::Special => Some(at(path, Found::Special)),
        }
    }
}

/// What a path is, links followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A FIFO, device or socket.
    Special,
}

/// A path, resolved by [`resolve`].
#[derive(Debug)]
pub struct Resolved {
    /// What it is.
    pub kind: Kind,
    /// The link's resolved target, or the path itself.
    pub path: PathBuf,
    /// Whether the path is a link.
    pub link: bool,
}

/// What `path` is. A link is followed only when `follow_links`, and only
/// to what resolves below `root` when there is one (a resolved path). The
/// one symlink policy: the walk applies it to every entry, and callers to
/// the paths they look up themselves.
pub fn resolve(path: &Path, follow_links: bool, root: Option<&Path>) -> Result<Resolved, Refusal> {
    let meta = fs::symlink_metadata(path).map_err(Refusal::Unreadable)?;
    if !meta.file_type().is_symlink() {
        return Ok(Resolved {
            kind: kind(&meta),
            path: path.to_path_buf(),
            link: false,
        });
    }
    if !follow_links {
        return Err(Refusal::Link);
    }
    let target = fs::canonicalize(path).map_err(|err| {
        if is_loop(&err) {
            Refusal::LinkCycle
        } else if err.kind() == io::ErrorKind::NotFound {
            Refusal::Dangling
        } else {
            Refusal::Unresolved(err)
        }
    })?;
    if root.is_some_and(|root| !target.starts_with(root)) {
        return Err(Refusal::Escapes);
    }
    let meta = fs::metadata(&target).map_err(Refusal::Unreadable)?;
    Ok(Resolved {
        kind: kind(&meta),
        path: target,
        link: true,
    })
}

fn kind(meta: &fs::Metadata) -> Kind {
    if meta.is_dir() {
        Kind::Dir
    } else if meta.is_file() {
        Kind::File
    } else {
        Kind::Special
    }
}

/// The names in `dir`, sorted so that output does not depend on the file
/// system's order. At most `most + 1` are read, so that a caller can tell
/// there are more than `most` without holding a huge directory's names.
pub fn list(dir: &Path, most: usize) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)?.take(most.saturating_add(1)) {
        names.push(entry?.file_name());
    }
    names.sort();
    Ok(names)
}

/// Whether resolving a path failed because its links loop.
fn is_loop(err: &io::Error) -> bool {
    // `io::ErrorKind::FilesystemLoop` is not stable yet.
    #[cfg(unix)]
    return err.raw_os_error() == Some(libc::ELOOP);
    #[cfg(not(unix))]
    return false;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a walk reached, one line each: `shown kind`, paths relative to
    /// the start's parent.
    fn walked(walk: &Walk<'_>, base: &Path) -> Vec<String> {
        walk.run()
            .unwrap()
            .iter()
            .map(|e| {
                let shown = e.shown.strip_prefix(base).unwrap_or(&e.shown);
                let what = match &e.found {
                    Found::Dir => "dir".to_string(),
                    Found::File => "file".to_string(),
                    Found::Special => "special".to_string(),
                    Found::Refused(r) => format!("{r:?}"),
                };
                format!("{} {what}", shown.display())
            })
            .collect()
    }

    fn tree() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("t/b/c")).unwrap();
        fs::write(tmp.path().join("t/z.yaml"), "").unwrap();
        fs::write(tmp.path().join("t/a.txt"), "").unwrap();
        fs::write(tmp.path().join("t/b/c/deep.yaml"), "").unwrap();
        tmp
    }

    #[test]
    fn entries_come_depth_first_in_name_order_with_their_depth() {
        let tmp = tree();
        let start = tmp.path().join("t");
        let entries = Walk::new(&start).run().unwrap();
        let depths: Vec<(String, usize)> = entries
            .iter()
            .map(|e| (e.shown.display().to_string(), e.depth))
            .collect();
        let at = |p: &str| start.join(p).display().to_string();
        assert_eq!(
            depths,
            [
                (start.display().to_string(), 0),
                (at("a.txt"), 1),
                (at("b"), 1),
                (at("b/c"), 2),
                (at("b/c/deep.yaml"), 3),
                (at("z.yaml"), 1),
            ]
        );
        let real = fs::canonicalize(&start).unwrap();
        assert_eq!(entries[4].path, real.join("b/c/deep.yaml"));
    }

    #[test]
    fn filters_and_a_shown_path_apply() {
        let tmp = tree();
        let walk = Walk::new(&tmp.path().join("t"))
            .shown_as(Path::new("shown"))
            .files(|name| Path::new(name).extension().is_some_and(|e| e == "yaml"))
            .dirs(|name| name != "c");
        assert_eq!(
            walked(&walk, Path::new("")),
            ["shown dir", "shown/b dir", "shown/z.yaml file"]
        );
    }

    #[test]
    fn no_directory_at_the_depth_bound_is_listed() {
        let tmp = tree();
        let walk = Walk::new(&tmp.path().join("t")).max_depth(2);
        assert_eq!(
            walked(&walk, tmp.path()),
            [
                "t dir",
                "t/a.txt file",
                "t/b dir",
                "t/b/c TooDeep",
                "t/z.yaml file"
            ]
        );
    }

    #[test]
    fn the_entry_bound_stops_the_whole_walk_once() {
        let tmp = tree();
        // Entries: a.txt, b, c, deep.yaml, z.yaml; the fourth is one too many.
        let walk = Walk::new(&tmp.path().join("t")).max_entries(3);
        assert_eq!(
            walked(&walk, tmp.path()),
            [
                "t dir",
                "t/a.txt file",
                "t/b dir",
                "t/b/c dir",
                "t/b/c TooMany"
            ]
        );
    }

    #[test]
    fn a_directory_listing_reads_one_name_past_its_bound() {
        let tmp = tree();
        let names = list(&tmp.path().join("t"), 1).unwrap();
        assert_eq!(names.len(), 2);
        assert_eq!(
            list(&tmp.path().join("t"), 9).unwrap(),
            ["a.txt", "b", "z.yaml"]
        );
        assert!(list(&tmp.path().join("absent"), 9).is_err());
    }

    #[test]
    fn a_start_that_cannot_be_resolved_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(Walk::new(&tmp.path().join("absent")).run().is_err());
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_the_root_are_refused_and_loops_end() {
        use std::os::unix::fs::symlink;
        let tmp = tree();
        let t = tmp.path().join("t");
        fs::write(tmp.path().join("outside.yaml"), "").unwrap();
        symlink("../../outside.yaml", t.join("b/escape.yaml")).unwrap();
        symlink("..", t.join("b/up")).unwrap();
        symlink("c", t.join("b/same")).unwrap();
        symlink("cycle", t.join("cycle")).unwrap();
        symlink("absent", t.join("dangling")).unwrap();
        symlink("z.yaml", t.join("link.yaml")).unwrap();
        let walk = Walk::new(&t).inside_start().files(|n| n != "a.txt");
        assert_eq!(
            walked(&walk, tmp.path()),
            [
                "t dir",
                "t/b dir",
                "t/b/c dir",
                "t/b/c/deep.yaml file",
                "t/b/escape.yaml Escapes",
                "t/b/same Again",
                "t/b/up Ancestor",
                "t/cycle LinkCycle",
                "t/dangling Dangling",
                "t/link.yaml file",
                "t/z.yaml file",
            ]
        );
        let entries = walk.run().unwrap();
        let link = entries
            .iter()
            .find(|e| e.shown.ends_with("link.yaml"))
            .unwrap();
        assert_eq!(link.path, fs::canonicalize(t.join("z.yaml")).unwrap());
        // Outside the start but inside a root given, a link is followed;
        // a start outside its root is not walked.
        let shown = walked(&Walk::new(&t.join("b")).inside(tmp.path()), &t);
        assert!(
            shown.contains(&"b/escape.yaml file".to_string()),
            "{shown:?}"
        );
        let walk = Walk::new(tmp.path()).inside(&t);
        assert_eq!(walked(&walk, tmp.path()), [" Escapes"]);
        // Anywhere, the link to the parent is still a loop.
        let shown = walked(&Walk::new(&t.join("b")), &t);
        assert!(shown.contains(&"b/up Ancestor".to_string()), "{shown:?}");
        // Not following links, none is resolved.
        let shown = walked(&Walk::new(&t).follow_links(false), tmp.path());
        assert!(shown.contains(&"t/b/up Link".to_string()), "{shown:?}");
        assert!(shown.contains(&"t/link.yaml Link".to_string()), "{shown:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_found_as_special_and_never_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("images.yaml");
        super::super::tests::mkfifo(&fifo);
        std::os::unix::fs::symlink("images.yaml", tmp.path().join("link.yaml")).unwrap();
        // Opening the FIFO without a writer would block this test for ever.
        let kinds: Vec<String> = Walk::new(tmp.path())
            .run()
            .unwrap()
            .into_iter()
            .skip(1)
            .map(|e| format!("{:?}", e.found))
            .collect();
        assert_eq!(kinds, ["Special", "Special"]);
        let resolved = resolve(&fifo, true, None).unwrap();
        assert_eq!(resolved.kind, Kind::Special);
    }
}
