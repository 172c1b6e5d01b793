//! `cp` (both ways) and `export`. Every path inside a container is
//! resolved inside its root (`openat2(RESOLVE_IN_ROOT)`) and walked through
//! directory descriptors without following symlinks, so a symlink in the
//! container never points a copy at the host's files.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_image::ContainerRootfs;
use berth_runtime::fs::RootDir;
use berth_runtime::sys;

use crate::error::{Context, Error, Result};
use crate::{Engine, db};

/// What the walk finds.
trait Sink {
    fn dir(&mut self, rel: &Path, st: &libc::stat) -> Result<()>;
    /// After a directory's entries (whose writing changed its mtime).
    fn dir_end(&mut self, rel: &Path, st: &libc::stat) -> Result<()>;
    fn file(&mut self, rel: &Path, st: &libc::stat, f: File) -> Result<()>;
    fn symlink(&mut self, rel: &Path, st: &libc::stat, target: &Path) -> Result<()>;
}

fn walk(parent: BorrowedFd<'_>, name: &OsStr, rel: &Path, sink: &mut dyn Sink) -> Result<()> {
    let st = berth_image::sys::lstatat(parent, name).at(rel)?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            sink.dir(rel, &st)?;
            let d = sys::openat(
                Some(parent),
                Path::new(name),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .at(rel)?;
            let mut names: Vec<_> = std::fs::read_dir(sys::fd_path(d.as_fd()))
                .at(rel)?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            names.sort();
            for n in names {
                walk(d.as_fd(), &n, &rel.join(&n), sink)?;
            }
            sink.dir_end(rel, &st)
        }
        libc::S_IFREG => {
            let f = sys::openat(
                Some(parent),
                Path::new(name),
                libc::O_RDONLY | libc::O_NOFOLLOW,
                0,
            )
            .at(rel)?;
            sink.file(rel, &st, File::from(f))
        }
        libc::S_IFLNK => {
            let t = sys::readlinkat(parent, Path::new(name)).at(rel)?;
            sink.symlink(rel, &st, &t)
        }
        // Devices, fifos and sockets are not copied.
        _ => Ok(()),
    }
}

/// Writes what is walked under a host directory.
struct HostSink {
    dest: PathBuf,
}

impl HostSink {
    fn path(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.dest.clone()
        } else {
            self.dest.join(rel)
        }
    }
}

/// The access and modification times of `st` (docker's cp keeps them).
fn times(st: &libc::stat) -> std::fs::FileTimes {
    let at = |s: i64, ns: i64| {
        std::time::UNIX_EPOCH
            + std::time::Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32)
    };
    std::fs::FileTimes::new()
        .set_accessed(at(st.st_atime, st.st_atime_nsec))
        .set_modified(at(st.st_mtime, st.st_mtime_nsec))
}

impl Sink for HostSink {
    fn dir(&mut self, rel: &Path, st: &libc::stat) -> Result<()> {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).at(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(st.st_mode & 0o7777)).at(&p)
    }
    fn dir_end(&mut self, rel: &Path, st: &libc::stat) -> Result<()> {
        let p = self.path(rel);
        File::open(&p).and_then(|d| d.set_times(times(st))).at(&p)
    }
    fn file(&mut self, rel: &Path, st: &libc::stat, mut f: File) -> Result<()> {
        let p = self.path(rel);
        let mut out = File::create(&p).at(&p)?;
        io::copy(&mut f, &mut out).at(&p)?;
        out.set_times(times(st)).at(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(st.st_mode & 0o7777)).at(&p)
    }
    fn symlink(&mut self, rel: &Path, _: &libc::stat, target: &Path) -> Result<()> {
        let p = self.path(rel);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, &p).at(&p)
    }
}

/// Splits a container path into its parent (resolved in the root) and
/// last component; `/` is the root itself (name `.`).
fn split(root: &RootDir, path: &str) -> Result<(OwnedFd, PathBuf)> {
    let rel = berth_runtime::fs::clean_relative(Path::new(path)).at(path)?;
    match rel.file_name() {
        None => {
            let fd = root
                .open_in(Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY)
                .at(path)?;
            Ok((fd, PathBuf::from(".")))
        }
        Some(name) => {
            let parent = rel.parent().unwrap_or(Path::new(""));
            let fd = root
                .open_in(parent, libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(|e| missing(path, e))?;
            Ok((fd, PathBuf::from(name)))
        }
    }
}

/// `base` then `target`, `..` stopping at `/`: a symlink's target read the
/// way the kernel resolves it inside the container's root.
fn join_in_root(base: &Path, target: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in base.components().chain(target.components()) {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Where container path `path` leads once the symlinks of its last
/// component are followed (inside the root, as the container would, 40 at
/// most); `path` itself when that is no symlink or does not exist.
fn follow_links(root: &RootDir, path: &str) -> Result<String> {
    let mut cur = join_in_root(Path::new("/"), Path::new(path));
    for _ in 0..40 {
        let at = cur.to_string_lossy().into_owned();
        let (parent, name) = split(root, &at)?;
        let st = match berth_image::sys::lstatat(parent.as_fd(), name.as_os_str()) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(at),
            Err(e) => return Err(missing(path, e)),
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return Ok(at);
        }
        let target = sys::readlinkat(parent.as_fd(), &name).at(&at)?;
        let base = match cur.parent() {
            Some(p) if target.is_relative() => p.to_path_buf(),
            _ => PathBuf::from("/"),
        };
        cur = join_in_root(&base, &target);
    }
    Err(Error::Io {
        path: path.into(),
        err: io::Error::from_raw_os_error(libc::ELOOP),
    })
}

fn missing(path: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::Other(format!("Could not find the file {path} in container"))
    } else {
        Error::Io {
            path: path.into(),
            err: e,
        }
    }
}

impl Engine {
    /// Runs `f` on the container's root filesystem, mounting it for the
    /// time of the call when the container is not running.
    fn with_rootfs<T>(&mut self, key: &str, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        let row = self.get(key)?;
        let dir = self.container_dir(&row.id);
        let images = self.images()?;
        let rootfs = ContainerRootfs::open(images.snapshots(), &dir)?;
        let was = rootfs.is_mounted();
        if !was {
            rootfs.mount()?;
        }
        let r = f(&rootfs.path());
        let running = matches!(
            self.db.find(&row.id).map(|r| r.state),
            Ok(ref s) if s == db::RUNNING || s == db::PAUSED
        );
        if !was && !running {
            let _ = rootfs.unmount();
        }
        r
    }

    /// Runs `f` on the container's filesystem as its processes see it: for
    /// a running (or paused) container its root in its own mount namespace
    /// (`/proc/PID/root`), so volumes, bind mounts and the engine's
    /// /etc/hosts, /etc/hostname and /etc/resolv.conf are the ones the
    /// container uses (docker resolves `cp` paths through the container's
    /// mounts); otherwise the root filesystem, mounted for the call.
    fn with_container_view<T>(
        &mut self,
        key: &str,
        f: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<T> {
        let row = self.get(key)?;
        let running = row.state == db::RUNNING || row.state == db::PAUSED;
        if running && row.pid > 0 && berth_runtime::state::pid_is(row.pid, row.pid_start) {
            let root = PathBuf::from(format!("/proc/{}/root", row.pid));
            // Still the same process once its root is open: a recycled pid
            // would otherwise show another process's files.
            if let Ok(fd) = sys::open(&root, libc::O_PATH | libc::O_DIRECTORY, 0)
                && berth_runtime::state::pid_is(row.pid, row.pid_start)
            {
                return f(&sys::fd_path(fd.as_fd()));
            }
        }
        self.with_rootfs(key, f)
    }

    /// `cp CONTAINER:SRC DEST`: docker's rules (DEST an existing
    /// directory receives SRC under its own name).
    /// With `follow` (`-L`), a symlink SRC is copied as what it leads to
    /// (followed inside the container's root), under SRC's name.
    pub fn copy_from(&mut self, key: &str, src: &str, dest: &Path, follow: bool) -> Result<()> {
        self.with_container_view(key, |rootfs| {
            let root = RootDir::open(rootfs).at(rootfs)?;
            let (_, name) = split(&root, src)?;
            let resolved = if follow {
                follow_links(&root, src)?
            } else {
                src.to_string()
            };
            let (parent, real) = split(&root, &resolved)?;
            berth_image::sys::lstatat(parent.as_fd(), real.as_os_str())
                .map_err(|e| missing(src, e))?;
            let target = if dest.is_dir() && name != Path::new(".") {
                dest.join(&name)
            } else {
                dest.to_path_buf()
            };
            let mut sink = HostSink { dest: target };
            walk(parent.as_fd(), real.as_os_str(), Path::new(""), &mut sink)
        })
    }

    /// `cp CONTAINER:SRC -`: a tar stream of SRC (docker's rules: `SRC/.`
    /// is the directory's contents), resolved in the container's root
    /// (berth-image's archive walker: hard links, devices, fifos and
    /// xattrs kept, symlinks never followed).
    pub fn copy_from_tar(
        &mut self,
        key: &str,
        src: &str,
        follow: bool,
        w: &mut dyn Write,
    ) -> Result<()> {
        self.with_container_view(key, |rootfs| {
            berth_image::copy::archive_path(rootfs, src, follow, None, w).map_err(|e| match e {
                berth_image::Error::Io { err, .. } if err.kind() == io::ErrorKind::NotFound => {
                    missing(src, err)
                }
                e => e.into(),
            })
        })
    }

    /// `export`: the container's filesystem as a tar stream.
    pub fn export(&mut self, key: &str, w: &mut dyn Write) -> Result<()> {
        self.with_rootfs(key, |rootfs| {
            berth_image::write_tree(rootfs, berth_image::TreeKind::Full, w)?;
            Ok(())
        })
    }

    /// What is at `path` in the container as its processes see it (the
    /// final symlink not followed); None when nothing is. With the symlink's
    /// target when it is one.
    pub fn stat_path(
        &mut self,
        key: &str,
        path: &str,
    ) -> Result<Option<(libc::stat, Option<PathBuf>)>> {
        self.with_container_view(key, |rootfs| {
            let Some(st) = berth_image::copy::stat_in_root(rootfs, path, false)? else {
                return Ok(None);
            };
            let link = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                let root = RootDir::open(rootfs).at(rootfs)?;
                let (parent, name) = split(&root, path)?;
                sys::readlinkat(parent.as_fd(), &name).ok()
            } else {
                None
            };
            Ok(Some((st, link)))
        })
    }

    /// `cp - CONTAINER:DIR`: extracts a tar stream into directory `dir` of
    /// the container (its entries cannot leave it).
    pub fn extract_tar(
        &mut self,
        key: &str,
        dir: &str,
        input: &mut dyn io::Read,
        preserve_ownership: bool,
    ) -> Result<()> {
        self.with_container_view(key, |rootfs| {
            berth_image::copy::extract_to(rootfs, dir, input, preserve_ownership)?;
            Ok(())
        })
    }

    /// `cp SRC CONTAINER:DEST`.
    /// With `follow` (`-L`), a symlink SRC is copied as what it leads to.
    /// A DEST that is a symlink in the container is followed there, inside
    /// its root (docker's rule), never to the host.
    pub fn copy_to(&mut self, key: &str, src: &Path, dest: &str, follow: bool) -> Result<()> {
        let real = if follow {
            std::fs::canonicalize(src).at(src)?
        } else {
            src.to_path_buf()
        };
        let meta = std::fs::symlink_metadata(&real).at(src)?;
        self.with_container_view(key, |rootfs| {
            let root = RootDir::open(rootfs).at(rootfs)?;
            let followed;
            let dest = if meta.is_dir() || dest.ends_with('/') {
                dest
            } else {
                followed = follow_links(&root, dest)?;
                followed.as_str()
            };
            let src_name = src
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            // DEST an existing directory: SRC goes inside it.
            let (dir, name) = match root.open_in(
                Path::new(dest.trim_start_matches('/')),
                libc::O_RDONLY | libc::O_DIRECTORY,
            ) {
                Ok(fd) if src_name != Path::new(".") => (fd, src_name),
                _ => {
                    if dest.ends_with('/') && !meta.is_dir() {
                        return Err(Error::Other(format!(
                            "destination directory {dest} does not exist in the container"
                        )));
                    }
                    root.parent_dir(Path::new(dest)).at(dest)?
                }
            };
            put(dir.as_fd(), &name, &real)
        })
    }

    /// `cp - CONTAINER:DIR`: the tar on `input` extracted into DIR (which
    /// must exist), entries confined to it; files belong to the caller
    /// (docker's default without `-a`).
    pub fn copy_tar_to(&mut self, key: &str, dest: &str, input: &mut dyn io::Read) -> Result<()> {
        self.with_container_view(key, |rootfs| {
            berth_image::copy::extract_to(rootfs, dest, input, false).map_err(|e| match e {
                berth_image::Error::Io { err, .. } if err.kind() == io::ErrorKind::NotFound => {
                    missing(dest, err)
                }
                e => e.into(),
            })
        })
    }
}

/// Writes host path `src` as `name` in container directory `dir`.
fn put(dir: BorrowedFd<'_>, name: &Path, src: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(src).at(src)?;
    let mode = meta.mode() & 0o7777;
    let ft = meta.file_type();
    if ft.is_dir() {
        match sys::mkdirat(dir, name, mode) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e).at(name),
        }
        // O_NOFOLLOW: a symlink the container put there is refused.
        let sub = sys::openat(
            Some(dir),
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .at(name)?;
        for e in std::fs::read_dir(src).at(src)? {
            let e = e.at(src)?;
            put(sub.as_fd(), Path::new(&e.file_name()), &e.path())?;
        }
        Ok(())
    } else if ft.is_symlink() {
        let target = std::fs::read_link(src).at(src)?;
        let _ = berth_image::sys::unlinkat(dir, name.as_os_str(), false);
        sys::symlinkat(&target, dir, name).at(name)
    } else if ft.is_file() {
        let fd = sys::openat(
            Some(dir),
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW,
            mode,
        )
        .at(name)?;
        let mut out = File::from(fd);
        let mut inp = File::open(src).at(src)?;
        io::copy(&mut inp, &mut out).at(name)?;
        if let Ok(m) = meta.modified() {
            let t = std::fs::FileTimes::new().set_modified(m);
            out.set_times(meta.accessed().map_or(t, |a| t.set_accessed(a)))
                .at(name)?;
        }
        out.set_permissions(std::fs::Permissions::from_mode(mode))
            .at(name)
    } else {
        Ok(())
    }
}
