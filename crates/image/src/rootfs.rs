//! Container root filesystems over an image's snapshots.
//!
//! ```text
//! <dir>/rootfs/        what the container sees (the overlay mount, or the copy)
//! <dir>/upper/ work/   overlay: the container's writable layer and overlay's work dir
//! <dir>/rootfs.json    kind and layer chain, to mount again after a reboot
//! ```
//!
//! overlayfs gets the snapshots as lowerdirs (top first) through
//! `/proc/self/fd/N` of descriptors opened beforehand (short, and no path
//! can be swapped between the check and the mount); when the option string
//! would not fit in a page (≈190 layers) the new mount API's `lowerdir+`
//! takes them one by one. Where overlay is not available (or asked not
//! to be used, or the snapshots hold OCI `.wh.` whiteouts), the layers are
//! copied bottom to top into `rootfs/`, applying whiteouts and opaque
//! directories the way overlayfs would show them; every step goes through
//! directory descriptors without following symlinks, so a symlink of one
//! layer never redirects what a later layer writes.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::fsutil::remove_tree;
use crate::layer::{WhiteoutFormat, is_overlay_whiteout, remove_at};
use crate::snapshot::Snapshotter;
use crate::sys::{self, Time};

const STATE: &str = "rootfs.json";

/// How a container's filesystem is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsKind {
    Overlay,
    Copy,
}

/// What `prepare` should use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RootfsMode {
    /// overlayfs when it works here, else a copy.
    #[default]
    Auto,
    Overlay,
    Copy,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    kind: RootfsKind,
    /// Chain ids, bottom first.
    layers: Vec<Digest>,
}

/// A container's root filesystem.
#[derive(Debug)]
pub struct ContainerRootfs {
    dir: PathBuf,
    kind: RootfsKind,
    layers: Vec<Digest>,
    lowers: Vec<PathBuf>,
    fallback: Option<String>,
}

fn rootfs_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Rootfs {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether this kernel knows overlayfs.
pub fn overlay_supported() -> bool {
    fs::read_to_string("/proc/filesystems").is_ok_and(|s| {
        s.lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"))
    })
}

impl ContainerRootfs {
    /// Makes the root filesystem of a container in `dir` (which must not
    /// hold one already) from the snapshots `chain` (chain ids, bottom
    /// first). On error nothing stays mounted and `dir`'s new content is
    /// removed.
    pub fn prepare(
        snapshots: &Snapshotter,
        chain: &[Digest],
        dir: &Path,
        mode: RootfsMode,
    ) -> Result<ContainerRootfs> {
        let mut formats = Vec::with_capacity(chain.len());
        for id in chain {
            formats.push(snapshots.info(id)?.whiteouts);
        }
        let oci_whiteouts = formats.contains(&WhiteoutFormat::Oci);
        if mode == RootfsMode::Overlay && oci_whiteouts {
            return Err(rootfs_err(
                dir,
                "overlay needs snapshots with overlay whiteouts (these were unpacked with OCI whiteouts)",
            ));
        }
        fs::create_dir_all(dir).at(dir)?;
        if dir.join(STATE).exists() {
            return Err(rootfs_err(dir, "already holds a container filesystem"));
        }
        let mut guard = Cleanup {
            dir: dir.to_path_buf(),
            armed: true,
        };
        let lowers: Vec<PathBuf> = chain.iter().map(|c| snapshots.fs_path(c)).collect();
        let mut r = ContainerRootfs {
            dir: dir.to_path_buf(),
            kind: RootfsKind::Copy,
            layers: chain.to_vec(),
            lowers,
            fallback: None,
        };
        let want_overlay = match mode {
            RootfsMode::Overlay => true,
            RootfsMode::Copy => false,
            // No layers: nothing to stack.
            RootfsMode::Auto => !oci_whiteouts && !chain.is_empty() && overlay_supported(),
        };
        mkdir(&r.path())?;
        if want_overlay {
            r.kind = RootfsKind::Overlay;
            mkdir(&dir.join("upper"))?;
            mkdir(&dir.join("work"))?;
            match r.mount() {
                Ok(()) => {}
                Err(e) if mode == RootfsMode::Auto => {
                    // overlayfs refused (an upper on overlay, no
                    // privilege…): copy instead.
                    r.fallback = Some(e.to_string());
                    r.kind = RootfsKind::Copy;
                    remove_tree(&dir.join("upper")).at(dir.join("upper"))?;
                    remove_tree(&dir.join("work")).at(dir.join("work"))?;
                }
                Err(e) => return Err(e),
            }
        }
        if r.kind == RootfsKind::Copy {
            let layers: Vec<(PathBuf, WhiteoutFormat)> =
                r.lowers.iter().cloned().zip(formats).collect();
            copy_layers(&layers, &r.path())?;
        }
        let state = State {
            kind: r.kind,
            layers: r.layers.clone(),
        };
        let json = serde_json::to_vec_pretty(&state)
            .map_err(|e| rootfs_err(dir, format!("state: {e}")))?;
        let p = dir.join(STATE);
        fs::write(&p, json).at(&p)?;
        guard.armed = false;
        Ok(r)
    }

    /// The filesystem prepared in `dir` earlier (mounted or not: see
    /// `mount`).
    pub fn open(snapshots: &Snapshotter, dir: &Path) -> Result<ContainerRootfs> {
        let p = dir.join(STATE);
        let data = fs::read(&p).at(&p)?;
        let state: State = serde_json::from_slice(&data)
            .map_err(|e| rootfs_err(dir, format!("{}: {e}", p.display())))?;
        let lowers = state.layers.iter().map(|c| snapshots.fs_path(c)).collect();
        Ok(ContainerRootfs {
            dir: dir.to_path_buf(),
            kind: state.kind,
            layers: state.layers,
            lowers,
            fallback: None,
        })
    }

    /// The directory to give the runtime as `root.path`.
    pub fn path(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kind(&self) -> RootfsKind {
        self.kind
    }

    /// Why `RootfsMode::Auto` copied instead of mounting an overlay.
    pub fn overlay_fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The chain ids of the layers, bottom first.
    pub fn layers(&self) -> &[Digest] {
        &self.layers
    }

    /// Whether the overlay is mounted (a copy is always "mounted").
    pub fn is_mounted(&self) -> bool {
        match self.kind {
            RootfsKind::Copy => true,
            RootfsKind::Overlay => {
                match (
                    fs::symlink_metadata(self.path()),
                    fs::symlink_metadata(&self.dir),
                ) {
                    (Ok(a), Ok(b)) => {
                        use std::os::unix::fs::MetadataExt;
                        a.dev() != b.dev()
                    }
                    _ => false,
                }
            }
        }
    }

    /// The overlay's upper directory: the container's changes (`commit`,
    /// `diff`); None for a copy, whose changes are mixed into the tree.
    pub fn upper(&self) -> Option<PathBuf> {
        (self.kind == RootfsKind::Overlay).then(|| self.dir.join("upper"))
    }

    /// Mounts the overlay (again, after a reboot); nothing for a copy or
    /// when mounted.
    pub fn mount(&self) -> Result<()> {
        if self.kind == RootfsKind::Copy || self.is_mounted() {
            return Ok(());
        }
        mount_overlay(
            &self.lowers,
            &self.dir.join("upper"),
            &self.dir.join("work"),
            &self.path(),
        )
    }

    /// Unmounts the overlay (lazily if it is busy); nothing for a copy.
    pub fn unmount(&self) -> Result<()> {
        if self.kind == RootfsKind::Copy {
            return Ok(());
        }
        unmount_all(&self.path())
    }

    /// Unmounts and removes everything in `dir` this filesystem owns
    /// (the directory itself too).
    pub fn remove(self) -> Result<()> {
        self.unmount()?;
        remove_tree(&self.dir).at(&self.dir)
    }
}

/// Unmounts whatever is mounted on `target` (stacked mounts too).
fn unmount_all(target: &Path) -> Result<()> {
    for _ in 0..16 {
        match sys::umount2(target, libc::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                sys::umount2(target, libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW)
                    .what(|| format!("unmounting {}", target.display()))?;
            }
            // Not a mount point (any more), or gone.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {
                return Ok(());
            }
            Err(e) => return Err(e).what(|| format!("unmounting {}", target.display())),
        }
    }
    Ok(())
}

fn mkdir(p: &Path) -> Result<()> {
    match fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).at(p),
    }
}

/// Removes what `prepare` created when it fails.
struct Cleanup {
    dir: PathBuf,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
            let _ = unmount_all(&self.dir.join("rootfs"));
            let _ = remove_tree(&self.dir);
        }
    }
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Mounts overlayfs on `target` with `lowers` (bottom first).
pub fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    if lowers.is_empty() {
        return Err(rootfs_err(target, "overlay needs at least one layer"));
    }
    let open = |p: &Path| sys::open_dir_path(p).at(p);
    let lower_fds = lowers
        .iter()
        .rev()
        .map(|p| open(p))
        .collect::<Result<Vec<_>>>()?;
    let upper_fd = open(upper)?;
    let work_fd = open(work)?;
    let target_fd = open(target)?;
    let lowerdir = lower_fds.iter().map(fd_path).collect::<Vec<_>>().join(":");
    let mut base = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        fd_path(&upper_fd),
        fd_path(&work_fd)
    );
    // In a user namespace overlayfs keeps its own xattrs (opaque, redirect)
    // as user.overlay.* (Linux 5.11+).
    let userxattr = sys::in_user_namespace();
    if userxattr {
        base.push_str(",userxattr");
    }
    let what = || {
        format!(
            "mounting overlay on {} ({} layers)",
            target.display(),
            lowers.len()
        )
    };
    // mount(2) takes at most a page of options.
    if base.len() + ",index=off".len() < 4096 {
        let mount = |data: &str| {
            berth_runtime::sys::mount(
                Some(OsStr::new("overlay")),
                Path::new(&fd_path(&target_fd)),
                Some(OsStr::new("overlay")),
                0,
                Some(OsStr::new(data)),
            )
        };
        // index=off: the snapshots are shared by many mounts with
        // different uppers; a kernel without the option gets none.
        return match mount(&format!("{base},index=off")) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => mount(&base).what(what),
            r => r.what(what),
        };
    }
    // Too long for mount(2): the new mount API, one lower at a time
    // (Linux 6.8+).
    let fs = sys::fsopen(c"overlay").what(what)?;
    for fd in &lower_fds {
        sys::fsconfig_string(fs.as_fd(), "lowerdir+", OsStr::new(&fd_path(fd))).what(|| {
            format!(
                "{}: this kernel's overlayfs takes no \"lowerdir+\" (Linux 6.8+ needed for this many layers)",
                what()
            )
        })?;
    }
    sys::fsconfig_string(fs.as_fd(), "upperdir", OsStr::new(&fd_path(&upper_fd))).what(what)?;
    sys::fsconfig_string(fs.as_fd(), "workdir", OsStr::new(&fd_path(&work_fd))).what(what)?;
    let _ = sys::fsconfig_string(fs.as_fd(), "index", OsStr::new("off"));
    if userxattr {
        sys::fsconfig_flag(fs.as_fd(), "userxattr").what(what)?;
    }
    sys::fsconfig_create(fs.as_fd()).what(what)?;
    let mnt = sys::fsmount(fs.as_fd()).what(what)?;
    sys::move_mount_to(mnt.as_fd(), target_fd.as_fd()).what(what)
}

/// State of a copy across layers.
struct Copier {
    root: OwnedFd,
    preserve_owner: bool,
    /// Directories copied: mode and times, set once every layer is in.
    dirs: BTreeMap<PathBuf, (u32, Time, Time)>,
    /// Hardlinks of the current layer: source inode → first copy.
    links: HashMap<(u64, u64), PathBuf>,
}

/// Copies `layers` (bottom first) into the empty directory `target`,
/// as overlayfs would show them stacked.
pub fn copy_layers(layers: &[(PathBuf, WhiteoutFormat)], target: &Path) -> Result<()> {
    let root = sys::open_dir(target).at(target)?;
    let mut c = Copier {
        root,
        preserve_owner: sys::geteuid() == 0,
        dirs: BTreeMap::new(),
        links: HashMap::new(),
    };
    for (src, format) in layers {
        c.links.clear();
        let s = sys::open_dir(src).at(src)?;
        let d = sys::open_dir(target).at(target)?;
        c.merge(s.as_fd(), d.as_fd(), Path::new(""), *format, false)
            .map_err(|(rel, err)| Error::Io {
                path: src.join(rel),
                err,
            })?;
    }
    for (rel, (mode, atime, mtime)) in &c.dirs {
        let fail = |err| Error::Io {
            path: target.join(rel),
            err,
        };
        let fd = sys::openat2(
            c.root.as_fd(),
            rel,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        )
        .map_err(fail)?;
        sys::fchmod(fd.as_fd(), *mode).map_err(fail)?;
        sys::utimensat(fd.as_fd(), OsStr::new(""), *atime, *mtime).map_err(fail)?;
    }
    Ok(())
}

type CResult<T> = std::result::Result<T, (PathBuf, io::Error)>;

fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for e in fs::read_dir(sys::at_path(dir, OsStr::new("")))? {
        names.push(e?.file_name());
    }
    names.sort();
    Ok(names)
}

fn time(sec: i64, nsec: i64) -> Time {
    Time { sec, nsec }
}

impl Copier {
    /// Merges the layer directory `src` into `dst` (at `rel`).
    fn merge(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
        format: WhiteoutFormat,
        opaque: bool,
    ) -> CResult<()> {
        let at = |name: &OsStr| rel.join(name);
        let names = list_dir(src).map_err(|e| (rel.to_path_buf(), e))?;
        let is_oci_marker =
            |n: &OsStr| format == WhiteoutFormat::Oci && n.as_bytes().starts_with(b".wh.");
        // First what this layer hides of the lower ones.
        let opaque = opaque
            || (format == WhiteoutFormat::Oci
                && names.iter().any(|n| n.as_bytes() == b".wh..wh..opq"));
        if opaque {
            for n in list_dir(dst).map_err(|e| (rel.to_path_buf(), e))? {
                remove_at(dst, &n).map_err(|e| (at(&n), e))?;
            }
        }
        for n in &names {
            let hidden: Option<&OsStr> = if is_oci_marker(n) {
                let t = &n.as_bytes()[4..];
                (!t.starts_with(b".wh.") && !t.is_empty()).then(|| OsStr::from_bytes(t))
            } else if format == WhiteoutFormat::Overlay {
                let st = sys::lstatat(src, n).map_err(|e| (at(n), e))?;
                is_overlay_whiteout(&st).then_some(n.as_os_str())
            } else {
                None
            };
            if let Some(h) = hidden {
                remove_at(dst, h).map_err(|e| (at(h), e))?;
            }
        }
        // Then its own entries.
        for n in &names {
            if is_oci_marker(n) {
                continue;
            }
            let st = sys::lstatat(src, n).map_err(|e| (at(n), e))?;
            if format == WhiteoutFormat::Overlay && is_overlay_whiteout(&st) {
                continue;
            }
            self.entry(src, dst, rel, n, &st, format)
                .map_err(|e| (at(n), e))?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
        name: &OsStr,
        st: &libc::stat,
        format: WhiteoutFormat,
    ) -> io::Result<()> {
        let ftype = sys::file_type(st);
        let atime = time(st.st_atime, st.st_atime_nsec);
        let mtime = time(st.st_mtime, st.st_mtime_nsec);
        let mode = st.st_mode & 0o7777;
        if ftype == libc::S_IFDIR {
            let existing = sys::lstatat(dst, name).ok();
            let keep = existing.is_some_and(|e| sys::file_type(&e) == libc::S_IFDIR);
            if !keep {
                remove_at(dst, name)?;
                sys::mkdirat(dst, Path::new(name), 0o700)?;
            }
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            let s = sys::openat(Some(src), Path::new(name), flags, 0)?;
            let d = sys::openat(Some(dst), Path::new(name), flags, 0)?;
            let opaque = format == WhiteoutFormat::Overlay
                && sys::fgetxattr(s.as_fd(), OsStr::new(sys::opaque_xattr()))?.as_deref()
                    == Some(b"y");
            if self.preserve_owner {
                sys::fchown(d.as_fd(), st.st_uid, st.st_gid)?;
            }
            self.copy_xattrs(src, name, dst)?;
            let sub = rel.join(name);
            self.dirs.insert(sub.clone(), (mode, atime, mtime));
            return self
                .merge(s.as_fd(), d.as_fd(), &sub, format, opaque)
                .map_err(|(p, e)| io::Error::new(e.kind(), format!("{}: {e}", p.display())));
        }
        remove_at(dst, name)?;
        if ftype == libc::S_IFSOCK {
            return Ok(());
        }
        if st.st_nlink > 1 && ftype != libc::S_IFLNK {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let (p, n) = (first.parent().unwrap_or(Path::new("")), first.file_name());
                if let Some(n) = n {
                    let pdir = sys::openat2(
                        self.root.as_fd(),
                        if p.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            p
                        },
                        libc::O_PATH | libc::O_DIRECTORY,
                        0,
                        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
                    )?;
                    return sys::linkat(pdir.as_fd(), n, dst, name);
                }
            }
            self.links.insert(key, rel.join(name));
        }
        match ftype {
            libc::S_IFREG => {
                let s = sys::openat(
                    Some(src),
                    Path::new(name),
                    libc::O_RDONLY | libc::O_NOFOLLOW,
                    0,
                )?;
                let d = sys::openat(
                    Some(dst),
                    Path::new(name),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                    0o600,
                )?;
                if sys::ficlone(d.as_fd(), s.as_fd()).is_err() {
                    let mut sf = fs::File::from(s);
                    let mut df = fs::File::from(d.try_clone()?);
                    io::copy(&mut sf, &mut df)?;
                }
                if self.preserve_owner {
                    sys::fchown(d.as_fd(), st.st_uid, st.st_gid)?;
                }
                sys::fchmod(d.as_fd(), mode)?;
                self.copy_xattrs(src, name, dst)?;
                sys::utimensat(d.as_fd(), OsStr::new(""), atime, mtime)
            }
            libc::S_IFLNK => {
                let target = sys::readlinkat(src, Path::new(name))?;
                sys::symlinkat(&target, dst, Path::new(name))?;
                if self.preserve_owner {
                    sys::fchownat(dst, Path::new(name), st.st_uid, st.st_gid)?;
                }
                self.copy_xattrs(src, name, dst)?;
                sys::utimensat(dst, name, atime, mtime)
            }
            _ => {
                sys::mknodat(dst, Path::new(name), ftype | mode, st.st_rdev)?;
                if self.preserve_owner {
                    sys::fchownat(dst, Path::new(name), st.st_uid, st.st_gid)?;
                }
                let fd = sys::openat(
                    Some(dst),
                    Path::new(name),
                    libc::O_PATH | libc::O_NOFOLLOW,
                    0,
                )?;
                sys::chmod_opath(fd.as_fd(), mode)?;
                self.copy_xattrs(src, name, dst)?;
                sys::utimensat(dst, name, atime, mtime)
            }
        }
    }

    fn copy_xattrs(
        &self,
        src: BorrowedFd<'_>,
        name: &OsStr,
        dst: BorrowedFd<'_>,
    ) -> io::Result<()> {
        for k in sys::llistxattr_at(src, name)? {
            if k.as_bytes().starts_with(b"trusted.overlay.") {
                continue;
            }
            if let Some(v) = sys::lgetxattr_at(src, name, &k)?
                && let Err(e) = sys::lsetxattr_at(dst, name, &k, &v)
                && !matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::ENOTSUP | libc::EACCES)
                )
            {
                return Err(e);
            }
        }
        Ok(())
    }
}
