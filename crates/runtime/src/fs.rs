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

/// Cleans `p` the way the kernel resolves it inside a root: `..` at the
/// root stays at the root.
fn clamp_in_root(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

enum Walk {
    Done(OwnedFd),
    Dangling {
        link: PathBuf,
        target: PathBuf,
        rest: PathBuf,
    },
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

    /// Like `resolve`, but no symlink may be crossed (ELOOP if one is).
    pub fn resolve_no_symlinks(&self, rel: &Path) -> io::Result<OwnedFd> {
        let rel = clean_relative(rel)?;
        sys::openat2(
            self.fd.as_fd(),
            &rel,
            libc::O_PATH,
            0,
            RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
        )
    }

    /// Creates `rel` and its missing parents as directories inside the
    /// root; returns an O_PATH descriptor of it. A dangling symlink on the
    /// way is followed the way the kernel would inside the root (its
    /// target is created, never anything outside the root).
    pub fn mkdir_all(&self, rel: &Path, mode: libc::mode_t) -> io::Result<OwnedFd> {
        let mut want = clean_relative(rel)?;
        for _ in 0..40 {
            match self.mkdir_walk(&want, mode)? {
                Walk::Done(fd) => return Ok(fd),
                Walk::Dangling { link, target, rest } => {
                    let base = if target.is_absolute() {
                        PathBuf::new()
                    } else {
                        link.parent().map(Path::to_path_buf).unwrap_or_default()
                    };
                    want = clamp_in_root(&base.join(target).join(rest));
                }
            }
        }
        Err(io::Error::from_raw_os_error(libc::ELOOP))
    }

    fn mkdir_walk(&self, rel: &Path, mode: libc::mode_t) -> io::Result<Walk> {
        let mut prefix = PathBuf::new();
        let mut cur = self.open_in(Path::new("."), libc::O_PATH | libc::O_DIRECTORY)?;
        let comps: Vec<_> = rel.components().collect();
        for (i, c) in comps.iter().enumerate() {
            prefix.push(c.as_os_str());
            match self.open_in(&prefix, libc::O_PATH | libc::O_DIRECTORY) {
                Ok(fd) => cur = fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    match sys::mkdirat(cur.as_fd(), Path::new(c.as_os_str()), mode) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                            // Something is there but does not resolve: a
                            // dangling symlink.
                            if let Ok(target) =
                                sys::readlinkat(cur.as_fd(), Path::new(c.as_os_str()))
                            {
                                let rest: PathBuf =
                                    comps[i + 1..].iter().map(|c| c.as_os_str()).collect();
                                return Ok(Walk::Dangling {
                                    link: prefix,
                                    target,
                                    rest,
                                });
                            }
                        }
                        Err(e) => return Err(with_path(e, &prefix)),
                    }
                    cur = self
                        .open_in(&prefix, libc::O_PATH | libc::O_DIRECTORY)
                        .map_err(|e| with_path(e, &prefix))?;
                }
                Err(e) => return Err(with_path(e, &prefix)),
            }
        }
        Ok(Walk::Done(cur))
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

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Writes to a file under /proc (`rel` like `self/oom_score_adj`) only if
/// /proc is a real procfs and nothing is mounted over any part of the path
/// (RESOLVE_NO_XDEV): a write meant for our own process can't be redirected
/// to another procfs file by a bind mount (CVE-2025-52881 class).
pub fn write_proc(rel: &str, data: &[u8]) -> io::Result<()> {
    let proc = sys::open(Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    if sys::fstatfs_type(proc.as_fd())? != PROC_SUPER_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "/proc is not a procfs mount",
        ));
    }
    let fd = sys::openat2(
        proc.as_fd(),
        Path::new(rel),
        libc::O_WRONLY | libc::O_NOFOLLOW,
        0,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV,
    )
    .map_err(|e| with_path(e, &Path::new("/proc").join(rel)))?;
    sys::write_all(fd.as_fd(), data).map_err(|e| with_path(e, &Path::new("/proc").join(rel)))
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

#[cfg(test)]
mod dangling_tests {
    use super::*;

    #[test]
    fn dangling_symlinks_are_created_inside() {
        let t = std::env::temp_dir().join(format!("berth-fs-dangle-{}", std::process::id()));
        let root = t.join("root");
        std::fs::create_dir_all(root.join("vol")).unwrap();
        std::os::unix::fs::symlink("../../../../outside/x", root.join("vol/t")).unwrap();
        std::os::unix::fs::symlink("/abs/y", root.join("vol/u")).unwrap();
        let r = RootDir::open(&root).unwrap();
        r.mkdir_all(Path::new("vol/t/sub"), 0o755).unwrap();
        assert!(root.join("outside/x/sub").is_dir());
        r.mkdir_all(Path::new("vol/u"), 0o755).unwrap();
        assert!(root.join("abs/y").is_dir());
        assert!(!t.join("outside").exists());
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(r.mkdir_all(Path::new("loop/x"), 0o755).is_err());
        std::fs::remove_dir_all(&t).unwrap();
    }
}
