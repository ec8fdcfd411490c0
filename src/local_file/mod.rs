//! The one way a local file is read, whoever asks (manifests, plan files,
//! auth files, registry options, certificates, the files of an `oci:`
//! tree): opened without blocking, checked to be a regular file (a FIFO or
//! device would hang the run or never end), and read up to a cap that is
//! checked against the size the file system reports and again while
//! reading (a file that grows is caught too). [`walk`] is the one walk of
//! a local directory tree, which finds the files this reads.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub mod walk;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The operating system refused (absent, no permission...).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A FIFO, device, socket or directory where a file was expected.
    #[error("is not a regular file")]
    NotRegular,
    /// Larger than the cap for this kind of file.
    #[error("is {size} bytes, more than the {limit}-byte limit for it")]
    TooLarge {
        /// The size seen (at least `limit + 1` for a file that grew).
        size: u64,
        /// The cap.
        limit: u64,
    },
}

impl ReadError {
    /// Whether the file is simply not there.
    pub fn is_absent(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound
            || e.kind() == io::ErrorKind::NotADirectory)
    }
}

/// Open `path` for reading, without following a last symlink when
/// `nofollow` (callers that resolved the path themselves), and without ever
/// blocking; refuse anything but a regular file. Returns it with its size.
pub fn open_regular(path: &Path, nofollow: bool) -> Result<(File, u64), ReadError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
        if nofollow {
            flags |= libc::O_NOFOLLOW;
        }
        options.custom_flags(flags);
    }
    #[cfg(not(unix))]
    let _ = nofollow;
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    Ok((file, meta.len()))
}

/// The whole of the regular file at `path`, refused past `limit` bytes.
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let (file, size) = open_regular(path, false)?;
    read_open(file, size, limit)
}

/// The rest of `file` (of `size` bytes when opened), refused past `limit`.
pub fn read_open(file: File, size: u64, limit: u64) -> Result<Vec<u8>, ReadError> {
    if size > limit {
        return Err(ReadError::TooLarge { size, limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_within_its_cap_is_read_and_others_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_capped(&file, 5).unwrap(), b"12345");
        assert!(matches!(
            read_capped(&file, 4),
            Err(ReadError::TooLarge { size: 5, limit: 4 })
        ));
        assert!(matches!(
            read_capped(tmp.path(), 9),
            Err(ReadError::NotRegular)
        ));
        assert!(read_capped(&tmp.path().join("absent"), 9)
            .unwrap_err()
            .is_absent());
    }

    /// Make a FIFO at `path`: opening it for reading without a writer blocks.
    #[cfg(unix)]
    pub(super) fn mkfifo(path: &Path) {
        assert!(std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap()
            .success());
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_a_device_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        mkfifo(&fifo);
        assert!(matches!(read_capped(&fifo, 9), Err(ReadError::NotRegular)));
        assert!(matches!(
            read_capped(Path::new("/dev/zero"), 9),
            Err(ReadError::NotRegular)
        ));
    }
}
