//! Path resolution scoped to a container's root filesystem.
//!
//! Every lookup under the rootfs goes through openat2(2) with
//! `RESOLVE_IN_ROOT`, so `..` and symlinks (absolute or relative) planted in
//! an image can never lead outside it, and mount targets are named through
//! `/proc/self/fd/N` of the descriptor we checked, never by a string path a
//! container could swap underneath us (CVE-2021-30465).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::sys;

const RESOLVE_IN_ROOT: u64 = libc::RESOLVE_IN_ROOT;
const RESOLVE_NO_MAGICLINKS: u64 = libc::RESOLVE_NO_MAGICLINKS;

/// Cleans `p` lexically into a path relative to a root: leading `/` and
/// `.` dropped, `..` applied. A `..` that would climb above the root is an
/// error naming the path.
pub fn clean_relative(p: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "{} escapes the container's root through \"..\"",
                            p.display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// An open container root directory.
pub struct RootDir {
    fd: OwnedFd,
    pub path: PathBuf,
}

impl RootDir {
    pub fn open(path: &Path) -> io::Result<RootDir> {
        let fd = sys::open(path, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        Ok(RootDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `rel` (resolved inside the root) with `flags`.
    pub fn open_in(&self, rel: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
        let rel = clean_relative(rel)?;
        let rel = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        };
        sys::openat2(
            self.fd.as_fd(),
            &rel,
            flags,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        )
    }

    /// An O_PATH descriptor of `rel` inside the root.
    pub fn resolve(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.open_in(rel, libc::O_PATH)
    }

    /// Creates `rel` and its missing parents as directories inside the
    /// root; returns an O_PATH descriptor of it.
    pub fn mkdir_all(&self, rel: &Path, mode: libc::mode_t) -> io::Result<OwnedFd> {
        let rel = clean_relative(rel)?;
        let mut prefix = PathBuf::new();
        let mut cur = self.open_in(Path::new("."), libc::O_PATH | libc::O_DIRECTORY)?;
        for c in rel.components() {
            prefix.push(c.as_os_str());
            match self.open_in(&prefix, libc::O_PATH | libc::O_DIRECTORY) {
                Ok(fd) => cur = fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    match sys::mkdirat(cur.as_fd(), Path::new(c.as_os_str()), mode) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(with_path(e, &prefix)),
                    }
                    cur = self
                        .open_in(&prefix, libc::O_PATH | libc::O_DIRECTORY)
                        .map_err(|e| with_path(e, &prefix))?;
                }
                Err(e) => return Err(with_path(e, &prefix)),
            }
        }
        Ok(cur)
    }

    /// Makes sure `rel` exists as a non-directory (an empty file is created
    /// when missing, with its parents); returns an O_PATH descriptor.
    pub fn ensure_file(&self, rel: &Path) -> io::Result<OwnedFd> {
        if let Ok(fd) = self.resolve(rel) {
            return Ok(fd);
        }
        let rel = clean_relative(rel)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let dir = self.mkdir_all(parent, 0o755)?;
        let dir = sys::openat(
            Some(dir.as_fd()),
            Path::new("."),
            libc::O_DIRECTORY | libc::O_RDONLY,
            0,
        )?;
        match sys::openat(
            Some(dir.as_fd()),
            Path::new(name),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
            0o644,
        ) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(with_path(e, &rel)),
        }
        self.resolve(&rel).map_err(|e| with_path(e, &rel))
    }

    /// The parent directory of `rel` (created if missing) as a real
    /// directory descriptor, and the final name.
    pub fn parent_dir(&self, rel: &Path) -> io::Result<(OwnedFd, PathBuf)> {
        let rel = clean_relative(rel)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let dir = self.mkdir_all(parent, 0o755)?;
        let dir = sys::openat(
            Some(dir.as_fd()),
            Path::new("."),
            libc::O_DIRECTORY | libc::O_RDONLY,
            0,
        )?;
        Ok((dir, PathBuf::from(name)))
    }
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean() {
        assert_eq!(
            clean_relative(Path::new("/a/./b/../c")).unwrap(),
            PathBuf::from("a/c")
        );
        assert!(clean_relative(Path::new("/../etc")).is_err());
        assert!(clean_relative(Path::new("a/../../etc")).is_err());
        assert_eq!(clean_relative(Path::new("/")).unwrap(), PathBuf::new());
    }

    #[test]
    fn symlinks_stay_inside() {
        let t = tempdir();
        let root = t.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("etc/evil")).unwrap();
        let r = RootDir::open(&root).unwrap();
        // Creating through an absolute symlink lands inside the root.
        r.mkdir_all(Path::new("up/made/here"), 0o755).unwrap();
        assert!(root.join("made/here").is_dir());
        r.ensure_file(Path::new("etc/evil/file")).unwrap();
        assert!(root.join("file").is_file());
        assert!(!t.join("file").exists());
        std::fs::remove_dir_all(&t).unwrap();
    }

    fn tempdir() -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "berth-fs-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}
