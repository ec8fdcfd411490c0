//! Reading one input file as UTF-8 text, with a size cap checked before any
//! byte is read.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::diag::Diagnostic;
use crate::diag::Location;

/// Largest manifest file accepted ([`crate::limits::MANIFEST_FILE_BYTES`]).
pub const MAX_FILE_BYTES: u64 = crate::limits::MANIFEST_FILE_BYTES;

/// Read `path` (shown to the user as `display`). `regular_only` refuses FIFOs
/// and devices, which would block or never end; it is set for files found by
/// walking a tree, where nobody chose them on purpose.
pub(super) fn read_text(
    path: &Path,
    display: &Arc<Path>,
    regular_only: bool,
) -> Result<String, Diagnostic> {
    let at_file = || Location::file_only(display.clone());
    let io_error = |what: &str, err: std::io::Error| {
        Diagnostic::error(
            at_file(),
            format!("cannot {what} the file: {}", io_message(&err)),
        )
    };
    let bytes = if regular_only {
        match crate::local_file::read_capped(path, MAX_FILE_BYTES) {
            Ok(bytes) => bytes,
            Err(crate::local_file::ReadError::Io(err)) => return Err(io_error("read", err)),
            Err(crate::local_file::ReadError::NotRegular) => {
                return Err(Diagnostic::error(at_file(), "is not a regular file")
                    .with_help("replace it with a plain YAML file"))
            }
            Err(crate::local_file::ReadError::TooLarge { size, .. }) => {
                return Err(too_large(at_file(), size))
            }
        }
    } else {
        // A file named on purpose may be a pipe (`<(generate-manifest)`):
        // it is read as it comes, still capped.
        let file = File::open(path).map_err(|err| io_error("open", err))?;
        let meta = file.metadata().map_err(|err| io_error("inspect", err))?;
        if meta.is_dir() {
            return Err(Diagnostic::error(at_file(), "is a directory, not a file"));
        }
        let size = if meta.is_file() { meta.len() } else { 0 };
        match crate::local_file::read_open(file, size, MAX_FILE_BYTES) {
            Ok(bytes) => bytes,
            Err(crate::local_file::ReadError::TooLarge { size, .. }) => {
                return Err(too_large(at_file(), size))
            }
            Err(crate::local_file::ReadError::Io(err)) => return Err(io_error("read", err)),
            Err(crate::local_file::ReadError::NotRegular) => unreachable!("only opening checks"),
        }
    };
    String::from_utf8(bytes).map_err(|err| {
        let offset = err.utf8_error().valid_up_to();
        let valid = &err.as_bytes()[..offset];
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        // Columns count characters, as the YAML positions do.
        let col = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        Diagnostic::error(
            Location {
                file: display.clone(),
                line: u32::try_from(line).unwrap_or(u32::MAX),
                col: u32::try_from(col).unwrap_or(u32::MAX),
            },
            format!("the file is not valid UTF-8 (invalid byte at offset {offset})"),
        )
        .with_help("save the file as UTF-8")
    })
}

fn too_large(location: Location, len: u64) -> Diagnostic {
    Diagnostic::error(
        location,
        format!(
            "the file is {}, larger than the {} MiB limit",
            human_size(len),
            MAX_FILE_BYTES / (1024 * 1024)
        ),
    )
    .with_help("split the images across several manifests (thin tree: manifests/<x> + images/<x>)")
}

fn human_size(len: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if len >= MIB {
        format!("{:.1} MiB", len as f64 / MIB as f64)
    } else {
        format!("{len} bytes")
    }
}

/// The OS error without the "(os error N)" suffix, lowercase, for messages.
pub(super) fn io_message(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn display() -> Arc<Path> {
        Arc::from(Path::new("x.yaml"))
    }

    #[test]
    fn invalid_utf8_names_line_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.yaml");
        std::fs::write(&path, b"a: 1\nb: \xffoo\n").unwrap();
        let err = read_text(&path, &display(), true).unwrap_err();
        assert_eq!(
            err.to_string().lines().next().unwrap(),
            "x.yaml:2:4: error: the file is not valid UTF-8 (invalid byte at offset 8)"
        );
    }

    #[test]
    fn oversized_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.yaml");
        let file = File::create(&path).unwrap();
        // Sparse: costs no disk and proves the size is checked before reading.
        file.set_len(100 * 1024 * 1024).unwrap();
        let err = read_text(&path, &display(), true).unwrap_err();
        assert!(err.message.contains("100.0 MiB"), "{err}");
        assert!(err.message.contains("16 MiB"), "{err}");
    }

    #[test]
    fn directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_text(dir.path(), &display(), false).is_err());
    }
}
