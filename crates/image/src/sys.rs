//! System calls the image layer needs beyond `berth_runtime::sys`, each in a
//! small function with a `SAFETY:` note.
//!
//! Names inside a directory are always given as (directory fd, single
//! component) so nothing here resolves a path an image could have planted;
//! xattrs of such an entry go through `/proc/self/fd/DIR/NAME` with the
//! `l*` calls, which do not follow the final component.

use std::ffi::{CStr, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

pub use berth_runtime::sys::{
    check, check_long, cstr, fchownat, fstat, geteuid, mkdirat, mknodat, openat, openat2,
    readlinkat, symlinkat, umount2,
};

/// Whether this process runs in a user namespace (a rootless engine's),
/// read once.
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(berth_runtime::sys::in_user_namespace)
}

/// The xattr that marks an overlay directory opaque: `trusted.*` needs
/// CAP_SYS_ADMIN in the initial user namespace; inside another one overlayfs
/// is mounted with `userxattr` and reads `user.overlay.opaque`.
pub fn opaque_xattr() -> &'static str {
    if in_user_namespace() {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}

/// `/proc/self/fd/DIR/NAME`: a name inside an open directory, for the
/// calls that only take paths (xattrs).
pub fn at_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    if !name.is_empty() {
        p.push(name);
    }
    p
}

/// An O_PATH descriptor of the directory at `path` (trusted: the caller's
/// own store paths).
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    openat(None, path, libc::O_PATH | libc::O_DIRECTORY, 0)
}

/// A real (readable) descriptor of the directory at `path`.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    openat(None, path, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// fstatat(2) with AT_SYMLINK_NOFOLLOW: what `name` in `dir` is.
pub fn lstatat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<libc::stat> {
    let n = cstr(name)?;
    // SAFETY: `stat` is plain data that the kernel fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and pointer to a stat buffer.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            n.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// unlinkat(2); `dir_flag` true removes an empty directory.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let n = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid descriptor and C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), n.as_ptr(), flags) }).map(drop)
}

/// linkat(2) without following a symlink at the old name.
pub fn linkat(
    old_dir: BorrowedFd<'_>,
    old: &OsStr,
    new_dir: BorrowedFd<'_>,
    new: &OsStr,
) -> io::Result<()> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: valid descriptors and C strings.
    check(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// renameat(2).
pub fn renameat(
    old_dir: BorrowedFd<'_>,
    old: &OsStr,
    new_dir: BorrowedFd<'_>,
    new: &OsStr,
) -> io::Result<()> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: valid descriptors and C strings.
    check(unsafe {
        libc::renameat(
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
        )
    })
    .map(drop)
}

/// A time for utimensat: seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Time {
    pub sec: i64,
    pub nsec: i64,
}

fn timespec(t: Time) -> libc::timespec {
    libc::timespec {
        tv_sec: t.sec as libc::time_t,
        tv_nsec: t.nsec as _,
    }
}

/// utimensat(2) on `name` in `dir` without following it (an empty name
/// means `dir` itself, which must then be a real, non-O_PATH descriptor).
pub fn utimensat(dir: BorrowedFd<'_>, name: &OsStr, atime: Time, mtime: Time) -> io::Result<()> {
    let times = [timespec(atime), timespec(mtime)];
    if name.is_empty() {
        // SAFETY: valid descriptor and an array of two timespecs.
        return check(unsafe { libc::futimens(dir.as_raw_fd(), times.as_ptr()) }).map(drop);
    }
    let n = cstr(name)?;
    // SAFETY: valid descriptor, C string and an array of two timespecs.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            n.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// fchown(2) on an open file (O_PATH descriptors included).
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid descriptor and an empty C string with AT_EMPTY_PATH.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// fchmod(2) on a real (non-O_PATH) descriptor.
pub fn fchmod(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

/// chmod of what an O_PATH descriptor refers to (must not be a symlink:
/// the caller checked), through its /proc/self/fd link.
pub fn chmod_opath(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    let p = cstr(at_path(fd, OsStr::new("")))?;
    // SAFETY: valid C string.
    check(unsafe { libc::chmod(p.as_ptr(), mode) }).map(drop)
}

/// lsetxattr(2) on `name` in `dir` (not following `name`).
pub fn lsetxattr_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    key: &OsStr,
    value: &[u8],
) -> io::Result<()> {
    let p = cstr(at_path(dir, name))?;
    let k = cstr(key)?;
    // SAFETY: valid C strings and a pointer/length pair for `value`.
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// fsetxattr(2) on a real descriptor.
pub fn fsetxattr(fd: BorrowedFd<'_>, key: &OsStr, value: &[u8]) -> io::Result<()> {
    let k = cstr(key)?;
    // SAFETY: valid descriptor, C string and pointer/length pair.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// lgetxattr(2) on `name` in `dir`; None when the attribute is not set.
pub fn lgetxattr_at(dir: BorrowedFd<'_>, name: &OsStr, key: &OsStr) -> io::Result<Option<Vec<u8>>> {
    let p = cstr(at_path(dir, name))?;
    let k = cstr(key)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid C strings and a buffer of the given length.
        let r =
            unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

/// fgetxattr(2) on a real descriptor; None when the attribute is not set.
pub fn fgetxattr(fd: BorrowedFd<'_>, key: &OsStr) -> io::Result<Option<Vec<u8>>> {
    let k = cstr(key)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid descriptor, C string and a buffer of the given length.
        let r = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                k.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

/// llistxattr(2) on `name` in `dir`.
pub fn llistxattr_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Vec<OsString>> {
    let p = cstr(at_path(dir, name))?;
    let mut buf = vec![0u8; 1024];
    let n = loop {
        // SAFETY: valid C string and a buffer of the given length.
        let r = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    };
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| OsString::from_vec(s.to_vec()))
        .collect())
}

/// syncfs(2): flushes the whole filesystem `fd` is on.
pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::syncfs(fd.as_raw_fd()) }).map(drop)
}

/// fsync(2).
pub fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::fsync(fd.as_raw_fd()) }).map(drop)
}

/// flock(2) exclusive; `wait` false returns WouldBlock when held elsewhere.
pub fn flock_exclusive(fd: BorrowedFd<'_>, wait: bool) -> io::Result<()> {
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: valid descriptor.
    check(unsafe { libc::flock(fd.as_raw_fd(), op) }).map(drop)
}

/// flock(LOCK_SH), waiting for an exclusive holder.
pub fn flock_shared(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH) }).map(drop)
}

/// ioctl(FICLONE): makes `dst` share `src`'s extents (reflink) where the
/// filesystem can.
pub fn ficlone(dst: BorrowedFd<'_>, src: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid descriptors; FICLONE takes the source fd as argument.
    check(unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) }).map(drop)
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// fsopen(2).
pub fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: valid C string.
    let fd =
        check_long(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: the kernel returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// fsconfig(FSCONFIG_SET_STRING).
pub fn fsconfig_string(fs: BorrowedFd<'_>, key: &str, value: &OsStr) -> io::Result<()> {
    let k = cstr(key)?;
    let v = cstr(value)?;
    // SAFETY: valid descriptor and C strings.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            k.as_ptr(),
            v.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// fsconfig(FSCONFIG_SET_FLAG).
pub fn fsconfig_flag(fs: BorrowedFd<'_>, key: &str) -> io::Result<()> {
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    let k = cstr(key)?;
    // SAFETY: valid descriptor and C string; a flag takes no value.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            k.as_ptr(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })
    .map(drop)
}

/// fsconfig(FSCONFIG_CMD_CREATE).
pub fn fsconfig_create(fs: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid descriptor; the command takes no pointers.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })
    .map(drop)
}

/// fsmount(2): a detached mount of the configured filesystem.
pub fn fsmount(fs: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor.
    let fd = check_long(unsafe {
        libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0)
    })?;
    // SAFETY: the kernel returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// move_mount(2) of a detached mount onto the directory `target` refers to.
pub fn move_mount_to(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid descriptors and empty C strings with the EMPTY_PATH
    // flags.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | 0x0000_0040, /* MOVE_MOUNT_T_EMPTY_PATH */
        )
    })
    .map(drop)
}

/// The file type bits of a stat.
pub fn file_type(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

/// A pause point for the tests that make a race between two commands certain:
/// with `BERTH_TEST_PAUSE=POINT:DIR`, reaching POINT creates `DIR/reached` and
/// waits (30 s at most) for `DIR/go`. Nothing happens without the variable.
pub fn test_pause(point: &str) {
    let Some(v) = std::env::var_os("BERTH_TEST_PAUSE") else {
        return;
    };
    let v = v.to_string_lossy().into_owned();
    let Some((p, dir)) = v.split_once(':') else {
        return;
    };
    if p != point {
        return;
    }
    let dir = Path::new(dir);
    let _ = std::fs::write(dir.join("reached"), point);
    let t = std::time::Instant::now();
    while !dir.join("go").exists() && t.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn xattrs_at_do_not_follow() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("f", t.path().join("l")).unwrap();
        let dir = std::fs::File::open(t.path()).unwrap();
        lsetxattr_at(dir.as_fd(), OsStr::new("f"), OsStr::new("user.a"), b"1").unwrap();
        assert_eq!(
            lgetxattr_at(dir.as_fd(), OsStr::new("f"), OsStr::new("user.a")).unwrap(),
            Some(b"1".to_vec())
        );
        // Through the symlink: the link itself is asked, not its target.
        assert_eq!(
            lgetxattr_at(dir.as_fd(), OsStr::new("l"), OsStr::new("user.a")).unwrap(),
            None
        );
        let names = llistxattr_at(dir.as_fd(), OsStr::new("f")).unwrap();
        assert!(names.iter().any(|n| n == "user.a"));
        let st = lstatat(dir.as_fd(), OsStr::new("l")).unwrap();
        assert_eq!(file_type(&st), libc::S_IFLNK);
    }
}
