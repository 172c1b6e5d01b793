//! Building the container's root filesystem inside its new mount namespace:
//! the spec's mounts, /dev, masked and read-only paths, the console, then
//! `pivot_root`.
//!
//! Runs in the container's init process before `pivot_root`, when the
//! host's /proc is still visible: targets are named `/proc/self/fd/N` of
//! descriptors resolved inside the rootfs (see `fs.rs`).

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::cgroups::CgroupPaths;
use crate::error::{Context, Error, Result};
use crate::fs::{RootDir, clean_relative};
use crate::mounts::{MountOptions, propagation_flag};
use crate::sys;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// What rootfs setup needs besides the spec.
pub struct RootfsContext<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroup: &'a CgroupPaths,
    /// The container has its own cgroup namespace.
    pub new_cgroupns: bool,
    /// The container runs in a new user namespace (no mknod).
    pub userns: bool,
    /// The idmapped mounts the runtime made: (index in mounts, tree).
    pub idmap_trees: Vec<(usize, OwnedFd)>,
}

/// Mount setup up to (not including) pivot_root. Returns the open rootfs.
pub fn prepare(ctx: &RootfsContext<'_>) -> Result<RootDir> {
    let linux = ctx.spec.linux().as_ref();
    // The propagation asked for (rootfsPropagation), else rslave: our mounts
    // never propagate back to the host unless the spec says so. As runc does,
    // it is applied to every mount right away: making them slaves first would
    // take them out of the host's peer groups for good, and `rshared` (what
    // Kubernetes asks for with Bidirectional mount propagation) would then
    // only share within the container.
    let root_prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(crate::mounts::propagation_flag)
        .unwrap_or(libc::MS_SLAVE | libc::MS_REC);
    sys::mount(None, Path::new("/"), None, root_prop, None)
        .what(|| "setting the propagation of /".into())?;
    // pivot_root refuses a new root whose parent mount is shared; the bind
    // of the rootfs must not propagate anywhere either.
    make_parent_mount_private(ctx.rootfs)?;
    // The rootfs must be a mount point for pivot_root.
    sys::mount(
        Some(ctx.rootfs.as_os_str()),
        ctx.rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .what(|| format!("bind mounting rootfs {}", ctx.rootfs.display()))?;
    let root = RootDir::open(ctx.rootfs).at(ctx.rootfs)?;

    let mounts = ctx.spec.mounts().as_deref().unwrap_or_default();
    for (i, m) in mounts.iter().enumerate() {
        mount_one(ctx, &root, i, m)?;
        crate::timing::phase(&format!("mount {}", m.destination().display()));
    }
    let dev_is_bind = mounts.iter().any(|m| {
        clean_relative(m.destination()).is_ok_and(|d| d == Path::new("dev"))
            && MountOptions::parse(m.options().as_deref().unwrap_or_default()).bind
    });
    crate::timing::phase("mounts");
    if !dev_is_bind {
        for d in default_devices() {
            create_device(&root, &d, ctx.userns)?;
        }
        dev_symlinks(&root)?;
    }
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        create_device(&root, d, ctx.userns)?;
    }
    Ok(root)
}

/// Masked and read-only paths, and sysctls. Still before pivot_root.
pub fn protect_paths(spec: &Spec, root: &RootDir) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for p in linux.readonly_paths().iter().flatten() {
        readonly_path(root, Path::new(p))?;
    }
    if linux.masked_paths().as_ref().is_some_and(|m| !m.is_empty()) {
        let devnull = open_devnull(root)?;
        for p in linux.masked_paths().iter().flatten() {
            mask_path(root, Path::new(p), &devnull)?;
        }
    }
    Ok(())
}

fn mount_one(ctx: &RootfsContext<'_>, root: &RootDir, index: usize, m: &Mount) -> Result<()> {
    let dest = m.destination();
    let rel = clean_relative(dest).map_err(|e| Error::Spec(format!("mounts: destination {e}")))?;
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let mount_err = |e: std::io::Error| Error::Sys {
        what: format!(
            "mounting {} ({}) on {}",
            m.source()
                .as_ref()
                .map_or(String::from("none"), |s| s.display().to_string()),
            if typ.is_empty() { "bind" } else { typ },
            dest.display()
        ),
        err: e,
    };
    if (m.uid_mappings().is_some() || m.gid_mappings().is_some()) && !opts.idmap {
        return Err(Error::Spec(format!(
            "mounts: {}: uidMappings/gidMappings need the idmap or ridmap option",
            dest.display()
        )));
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, root, &rel, &opts).map_err(mount_err);
    }
    if opts.idmap {
        let tree = ctx
            .idmap_trees
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, fd)| fd)
            .ok_or_else(|| {
                Error::Container(format!(
                    "mounts: {}: the runtime sent no idmapped mount",
                    dest.display()
                ))
            })?;
        let is_dir = sys::fstat(tree.as_fd())
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map_err(mount_err)?;
        let target = if is_dir {
            root.mkdir_all(&rel, 0o755)
        } else {
            root.ensure_file(&rel)
        }
        .map_err(mount_err)?;
        sys::move_mount(tree.as_fd(), target.as_fd()).map_err(mount_err)?;
        let extra = opts.flags & !(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_REC);
        if extra != 0 {
            remount_bind(root, &rel, extra).map_err(mount_err)?;
        }
    } else if opts.bind || typ == "bind" {
        let src = m.source().as_ref().ok_or_else(|| {
            Error::Spec(format!(
                "mounts: {}: a bind mount needs a source",
                dest.display()
            ))
        })?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            ctx.bundle.join(src)
        };
        let meta = std::fs::metadata(&src).map_err(|e| Error::Io {
            path: src.clone(),
            err: e,
        })?;
        let target = if meta.is_dir() {
            root.mkdir_all(&rel, 0o755)
        } else {
            root.ensure_file(&rel)
        }
        .map_err(mount_err)?;
        let mut flags = libc::MS_BIND;
        if opts.recursive {
            flags |= libc::MS_REC;
        }
        sys::mount(
            Some(src.as_os_str()),
            &sys::fd_path(target.as_fd()),
            None,
            flags,
            None,
        )
        .map_err(mount_err)?;
        let extra = opts.flags & !(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_REC);
        if extra != 0 {
            remount_bind(root, &rel, extra).map_err(mount_err)?;
        }
    } else {
        let target = root.mkdir_all(&rel, 0o755).map_err(mount_err)?;
        // tmpcopyup: what the image had there is still reachable through
        // a descriptor opened before the tmpfs covers it.
        let lower = if opts.tmpcopyup && typ == "tmpfs" {
            Some(
                root.open_in(&rel, libc::O_RDONLY | libc::O_DIRECTORY)
                    .map_err(mount_err)?,
            )
        } else {
            None
        };
        if typ == "proc" || typ == "sysfs" {
            check_plain_dir(root, &rel, &target).map_err(mount_err)?;
        }
        let source = m
            .source()
            .as_ref()
            .map(|s| s.as_os_str().to_os_string())
            .unwrap_or_else(|| typ.into());
        let data = opts.data_string();
        let r = sys::mount(
            Some(&source),
            &sys::fd_path(target.as_fd()),
            Some(OsStr::new(typ)),
            opts.flags & !libc::MS_REMOUNT,
            data.as_deref().map(OsStr::new),
        );
        match r {
            Err(e)
                if typ == "devpts"
                    && e.raw_os_error() == Some(libc::EINVAL)
                    && ctx.userns
                    && data.as_deref().is_some_and(|d| d.contains("gid=")) =>
            {
                // A gid (tty's 5) the user namespace does not map (a
                // rootless user without subordinate ids): without it, as
                // runc does.
                let without: Vec<&str> = data
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|o| !o.starts_with("gid="))
                    .collect();
                sys::mount(
                    Some(&source),
                    &sys::fd_path(target.as_fd()),
                    Some(OsStr::new(typ)),
                    opts.flags & !libc::MS_REMOUNT,
                    Some(OsStr::new(&without.join(","))),
                )
                .map_err(mount_err)?;
            }
            Err(e) if typ == "mqueue" && e.raw_os_error() == Some(libc::EPERM) && ctx.userns => {
                // mqueue of an ipc namespace we do not own: bind the host's.
                sys::mount(
                    Some(OsStr::new("/dev/mqueue")),
                    &sys::fd_path(target.as_fd()),
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )
                .map_err(mount_err)?;
            }
            Err(e) if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) && ctx.userns => {
                // sysfs of a network namespace we do not own: bind the
                // host's, read-only.
                sys::mount(
                    Some(OsStr::new("/sys")),
                    &sys::fd_path(target.as_fd()),
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )
                .map_err(mount_err)?;
                remount_bind(root, &rel, opts.flags | libc::MS_RDONLY).map_err(mount_err)?;
            }
            r => r.map_err(mount_err)?,
        }
        if let Some(lower) = lower {
            let upper = root.resolve(&rel).map_err(mount_err)?;
            copy_tree(&sys::fd_path(lower.as_fd()), &sys::fd_path(upper.as_fd())).map_err(|e| {
                Error::Sys {
                    what: format!("tmpcopyup into {}", dest.display()),
                    err: e,
                }
            })?;
        }
    }
    if opts.attr_set != 0 || opts.attr_clr != 0 {
        let fd = root.resolve(&rel).map_err(mount_err)?;
        mount_setattr(&fd, opts.attr_set, opts.attr_clr, true).map_err(mount_err)?;
    }
    for p in &opts.propagation {
        let fd = root.resolve(&rel).map_err(mount_err)?;
        sys::mount(None, &sys::fd_path(fd.as_fd()), None, *p, None).map_err(mount_err)?;
    }
    Ok(())
}

/// Copies a directory tree (files, directories, symlinks, device nodes and
/// fifos, with modes, owners and times), never following symlinks.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst)?;
        } else {
            let c = sys::cstr(&dst)?;
            // SAFETY: valid C string; mode and device come from the source.
            if unsafe { libc::mknod(c.as_ptr(), meta.mode(), meta.rdev()) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()))?;
        if !ft.is_symlink() {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    Ok(())
}

/// Re-applies flags to a bind mount (MS_REMOUNT|MS_BIND); flags the kernel
/// keeps locked (in a user namespace) are carried over on EPERM.
fn remount_bind(root: &RootDir, rel: &Path, flags: libc::c_ulong) -> std::io::Result<()> {
    let fd = root.resolve(rel)?;
    let path = sys::fd_path(fd.as_fd());
    let base = libc::MS_REMOUNT | libc::MS_BIND;
    match sys::mount(None, &path, None, base | flags, None) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let locked = current_mount_flags(fd.as_fd())?;
            sys::mount(None, &path, None, base | flags | locked, None)
        }
        r => r,
    }
}

/// The MS_* flags of the mount `fd` is on (from statvfs), to carry over in
/// a remount: in a user namespace the kernel refuses to clear locked ones.
fn current_mount_flags(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<libc::c_ulong> {
    let cur = sys::fstatvfs_flags(fd)?;
    Ok([
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
    ]
    .iter()
    .filter(|(st, _)| cur & st != 0)
    .fold(0, |acc, (_, ms)| acc | ms))
}

fn mount_setattr(fd: &OwnedFd, set: u64, clr: u64, recursive: bool) -> std::io::Result<()> {
    sys::mount_setattr(fd.as_fd(), set, clr, None, recursive)
}

/// /proc and /sys must be mounted on a real directory of the rootfs, not
/// through a symlink an image planted (CVE-2019-16884 class).
fn check_plain_dir(root: &RootDir, rel: &Path, _target: &OwnedFd) -> std::io::Result<()> {
    let rel_s = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel.to_path_buf()
    };
    sys::openat2(
        root.fd(),
        &rel_s,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
    )
    .map(drop)
    .map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            std::io::Error::new(
                e.kind(),
                // runc's wording, which callers match.
                format!(
                    "/{} must be mounted on ordinary directory: it is a symlink or reached through one",
                    rel.display()
                ),
            )
        } else {
            e
        }
    })
}

/// The `cgroup` mount: cgroup2 on a unified host; on v1 and hybrid hosts a
/// tmpfs with one directory per hierarchy, each the container's own cgroup
/// (a fresh cgroup mount in a cgroup namespace, else a bind mount).
fn mount_cgroup(
    ctx: &RootfsContext<'_>,
    root: &RootDir,
    rel: &Path,
    opts: &MountOptions,
) -> std::io::Result<()> {
    let flags = opts.flags & !(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_REC);
    let target = root.mkdir_all(rel, 0o755)?;
    if ctx.cgroup.is_v2() {
        if ctx.new_cgroupns {
            return sys::mount(
                Some(OsStr::new("cgroup2")),
                &sys::fd_path(target.as_fd()),
                Some(OsStr::new("cgroup2")),
                flags,
                None,
            );
        }
        let h = &ctx.cgroup.hierarchies[0];
        let src = ctx.cgroup.dir(h);
        sys::mount(
            Some(src.as_os_str()),
            &sys::fd_path(target.as_fd()),
            None,
            libc::MS_BIND,
            None,
        )?;
        return remount_bind(root, rel, flags);
    }
    sys::mount(
        Some(OsStr::new("tmpfs")),
        &sys::fd_path(target.as_fd()),
        Some(OsStr::new("tmpfs")),
        flags & !libc::MS_RDONLY,
        Some(OsStr::new("mode=755")),
    )?;
    for h in &ctx.cgroup.hierarchies {
        let name = h.dir_name();
        let sub = rel.join(&name);
        let fd = root.mkdir_all(&sub, 0o755)?;
        let fdp = sys::fd_path(fd.as_fd());
        let fresh = if !ctx.new_cgroupns {
            Err(std::io::Error::from_raw_os_error(libc::EPERM))
        } else if h.unified {
            sys::mount(
                Some(OsStr::new("cgroup2")),
                &fdp,
                Some(OsStr::new("cgroup2")),
                flags,
                None,
            )
        } else {
            let data = h.controllers.join(",");
            sys::mount(
                Some(OsStr::new("cgroup")),
                &fdp,
                Some(OsStr::new("cgroup")),
                flags,
                Some(OsStr::new(&data)),
            )
        };
        if fresh.is_err() {
            let src = ctx.cgroup.dir(h);
            sys::mount(Some(src.as_os_str()), &fdp, None, libc::MS_BIND, None)?;
            remount_bind(root, &sub, flags)?;
        }
        // A hierarchy with several controllers (cpu,cpuacct) gets a link
        // per controller, as distributions set it up.
        if h.controllers.len() > 1 {
            let (dir, _) = root.parent_dir(&sub)?;
            for c in &h.controllers {
                if c.starts_with("name=") || *c == name {
                    continue;
                }
                let _ = sys::symlinkat(Path::new(&name), dir.as_fd(), Path::new(c));
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        let fd = root.resolve(rel)?;
        sys::mount(
            None,
            &sys::fd_path(fd.as_fd()),
            None,
            libc::MS_REMOUNT | flags,
            Some(OsStr::new("mode=755")),
        )?;
    }
    Ok(())
}

fn default_devices() -> Vec<LinuxDevice> {
    let mk = |path: &str, major: i64, minor: i64| {
        let mut d = LinuxDevice::default();
        d.set_path(PathBuf::from(path));
        d.set_typ(LinuxDeviceType::C);
        d.set_major(major);
        d.set_minor(minor);
        d.set_file_mode(Some(0o666));
        d.set_uid(Some(0));
        d.set_gid(Some(0));
        d
    };
    vec![
        mk("/dev/null", 1, 3),
        mk("/dev/zero", 1, 5),
        mk("/dev/full", 1, 7),
        mk("/dev/random", 1, 8),
        mk("/dev/urandom", 1, 9),
        mk("/dev/tty", 5, 0),
    ]
}

fn create_device(root: &RootDir, d: &LinuxDevice, userns: bool) -> Result<()> {
    let path = d.path();
    let err = |e: std::io::Error| Error::Sys {
        what: format!("creating device {}", path.display()),
        err: e,
    };
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::Spec(format!(
                "linux.devices: {}: type \"a\" is not a device node type",
                path.display()
            )));
        }
    };
    let (dir, name) = root.parent_dir(path).map_err(err)?;
    if userns {
        // mknod is not allowed in a user namespace: bind the host's node.
        let target = root.ensure_file(path).map_err(err)?;
        return sys::mount(
            Some(path.as_os_str()),
            &sys::fd_path(target.as_fd()),
            None,
            libc::MS_BIND,
            None,
        )
        .map_err(err);
    }
    let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
    // SAFETY: makedev is a pure computation.
    let dev = libc::makedev(d.major() as u32, d.minor() as u32);
    match sys::mknodat(dir.as_fd(), &name, kind | mode, dev) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            // Replace whatever the image had there.
            let c = sys::cstr(&name).map_err(err)?;
            // SAFETY: valid descriptor and C string.
            unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
            sys::mknodat(dir.as_fd(), &name, kind | mode, dev).map_err(err)?;
        }
        Err(e) => return Err(err(e)),
    }
    // mknod is subject to the umask: set the mode exactly.
    sys::fchmodat(dir.as_fd(), &name, mode).map_err(err)?;
    sys::fchownat(
        dir.as_fd(),
        &name,
        d.uid().unwrap_or(0),
        d.gid().unwrap_or(0),
    )
    .map_err(err)?;
    Ok(())
}

fn dev_symlinks(root: &RootDir) -> Result<()> {
    let (dev, _) = root
        .parent_dir(Path::new("dev/x"))
        .what(|| "opening /dev in the rootfs".into())?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match sys::symlinkat(Path::new(target), dev.as_fd(), Path::new(name)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(Error::Sys {
                    what: format!("creating symlink /dev/{name}"),
                    err: e,
                });
            }
        }
    }
    Ok(())
}

/// /dev/null of the container, checked to be the real null device so a
/// planted symlink or file can't turn masking into an exposure
/// (CVE-2025-31133).
fn open_devnull(root: &RootDir) -> Result<OwnedFd> {
    let fd = root
        .open_in(Path::new("dev/null"), libc::O_PATH | libc::O_NOFOLLOW)
        .what(|| "opening /dev/null in the container".into())?;
    let st = sys::fstat(fd.as_fd()).what(|| "stat /dev/null".into())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(Error::Container(
            "/dev/null in the container is not the null device (1:3); refusing to mask paths with it".into(),
        ));
    }
    Ok(fd)
}

fn mask_path(root: &RootDir, p: &Path, devnull: &OwnedFd) -> Result<()> {
    let err = |e: std::io::Error| Error::Sys {
        what: format!("masking {}", p.display()),
        err: e,
    };
    let fd = match root.resolve(p) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Ok(());
        }
        Err(e) => return Err(err(e)),
    };
    let st = sys::fstat(fd.as_fd()).map_err(err)?;
    let target = sys::fd_path(fd.as_fd());
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        sys::mount(
            Some(OsStr::new("tmpfs")),
            &target,
            Some(OsStr::new("tmpfs")),
            libc::MS_RDONLY,
            None,
        )
        .map_err(err)
    } else {
        sys::mount(
            Some(sys::fd_path(devnull.as_fd()).as_os_str()),
            &target,
            None,
            libc::MS_BIND,
            None,
        )
        .map_err(err)
    }
}

fn readonly_path(root: &RootDir, p: &Path) -> Result<()> {
    let err = |e: std::io::Error| Error::Sys {
        what: format!("making {} read-only", p.display()),
        err: e,
    };
    let fd = match root.resolve(p) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Ok(());
        }
        Err(e) => return Err(err(e)),
    };
    let target = sys::fd_path(fd.as_fd());
    sys::mount(
        Some(target.as_os_str()),
        &target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(err)?;
    let rel = clean_relative(p).map_err(err)?;
    remount_bind(
        root,
        &rel,
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    )
    .map_err(err)
}

/// Opens a pty from the container's devpts, binds its slave over
/// /dev/console, and returns (master, slave).
pub fn setup_console(root: &RootDir) -> Result<(OwnedFd, OwnedFd)> {
    let err = |e: std::io::Error| Error::Sys {
        what: "creating the console".into(),
        err: e,
    };
    let ptmx = root
        .open_in(Path::new("dev/pts/ptmx"), libc::O_PATH)
        .or_else(|_| root.open_in(Path::new("dev/ptmx"), libc::O_PATH))
        .map_err(err)?;
    let (master, slave, _n) = sys::open_pty(&sys::fd_path(ptmx.as_fd())).map_err(err)?;
    // The bind target must be a plain file or device node reached without
    // any symlink: otherwise the pty could be mounted over a file the image
    // points at, e.g. in /proc (CVE-2025-52565).
    let console = match root.resolve_no_symlinks(Path::new("dev/console")) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            root.ensure_file(Path::new("dev/console")).map_err(err)?;
            root.resolve_no_symlinks(Path::new("dev/console"))
                .map_err(err)?
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::Container(
                "/dev/console in the container is (or is reached through) a symlink; refusing to mount the console there".into(),
            ));
        }
        Err(e) => return Err(err(e)),
    };
    let st = sys::fstat(console.as_fd()).map_err(err)?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG && kind != libc::S_IFCHR {
        return Err(Error::Container(
            "/dev/console in the container is not a file or character device".into(),
        ));
    }
    sys::mount(
        Some(sys::fd_path(slave.as_fd()).as_os_str()),
        &sys::fd_path(console.as_fd()),
        None,
        libc::MS_BIND,
        None,
    )
    .map_err(err)?;
    Ok((master, slave))
}

/// Makes `rootfs` the root: pivot_root(".", ".") then detaches the old
/// root; with `no_pivot`, MS_MOVE + chroot (for ramfs roots).
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| Error::Sys { what, err: e }
    };
    if no_pivot {
        std::env::set_current_dir(rootfs).at(rootfs)?;
        sys::mount(
            Some(rootfs.as_os_str()),
            Path::new("/"),
            None,
            libc::MS_MOVE,
            None,
        )
        .map_err(err("moving the rootfs to /"))?;
        sys::chroot(Path::new(".")).map_err(err("chroot"))?;
        std::env::set_current_dir("/").at("/")?;
        return Ok(());
    }
    let old = sys::open(Path::new("/"), libc::O_DIRECTORY | libc::O_RDONLY, 0).at("/")?;
    let new = sys::open(rootfs, libc::O_DIRECTORY | libc::O_RDONLY, 0).at(rootfs)?;
    sys::fchdir(new.as_fd()).at(rootfs)?;
    sys::pivot_root_dot().map_err(err("pivot_root"))?;
    sys::fchdir(old.as_fd()).map_err(err("fchdir to the old root"))?;
    // Make sure the unmount does not propagate to the host.
    sys::mount(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .map_err(err("making the old root a slave"))?;
    sys::umount2(Path::new("."), libc::MNT_DETACH).map_err(err("detaching the old root"))?;
    std::env::set_current_dir("/").at("/")?;
    Ok(())
}

/// Makes the mount that holds `path` private (not recursively): the mount
/// point itself when `path` is one, else the nearest one above it.
fn make_parent_mount_private(path: &Path) -> Result<()> {
    let mut p = path;
    loop {
        match sys::mount(None, p, None, libc::MS_PRIVATE, None) {
            Ok(()) => return Ok(()),
            // EINVAL: not a mount point; try the directory above.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match p.parent() {
                Some(up) => p = up,
                None => return Err(e).what(|| "making / private".into()),
            },
            Err(e) => {
                return Err(e).what(|| format!("making the mount of {} private", p.display()));
            }
        }
    }
}

/// After pivot_root: the rootfs propagation and a read-only root.
pub fn finish(spec: &Spec) -> Result<()> {
    if let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_flag)
    {
        sys::mount(None, Path::new("/"), None, p, None)
            .what(|| "setting rootfsPropagation".into())?;
    }
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly() == Some(true))
    {
        let root = sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0).at("/")?;
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
        let keep = current_mount_flags(root.as_fd()).at("/")?
            & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
        sys::mount(None, Path::new("/"), None, flags | keep, None)
            .what(|| "remounting / read-only".into())?;
    }
    Ok(())
}

/// Writes the spec's sysctls through /proc/sys (the values belong to the
/// namespaces of the writing process).
pub fn apply_sysctl(spec: &Spec) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    let proc_fd =
        sys::open(Path::new("/proc/sys"), libc::O_PATH | libc::O_DIRECTORY, 0).at("/proc/sys")?;
    if sys::fstatfs_type(proc_fd.as_fd()).at("/proc/sys")? != PROC_SUPER_MAGIC {
        return Err(Error::Container("/proc/sys is not on procfs".into()));
    }
    for (k, v) in sysctl {
        let rel = PathBuf::from(k.replace('.', "/"));
        let fd = sys::openat2(
            proc_fd.as_fd(),
            &rel,
            libc::O_WRONLY | libc::O_TRUNC,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        )
        .map_err(|e| Error::Sys {
            what: format!("sysctl {k}"),
            err: e,
        })?;
        sys::write_all(fd.as_fd(), v.as_bytes()).map_err(|e| Error::Sys {
            what: format!("sysctl {k}={v}"),
            err: e,
        })?;
    }
    Ok(())
}
