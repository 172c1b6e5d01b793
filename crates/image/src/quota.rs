//! Size limits of a container's writable layer (`--storage-opt size=`), as docker's overlay2
//! driver makes them: XFS project quotas. The container's directory gets a project id of
//! its own before its upper and work directories are made, inherited by everything created
//! under it (`FS_XFLAG_PROJINHERIT`), and that
//! project a hard block limit (`quotactl(Q_XSETQLIM)`); a write past it fails with EDQUOT.
//! The filesystem must be XFS mounted with project quotas (`pquota`/`prjquota`).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const XFS_SUPER_MAGIC: i64 = 0x5846_5342;
const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;
/// `_IOR('X', 31, struct fsxattr)` and `_IOW('X', 32, struct fsxattr)`.
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;
/// `QCMD(Q_XSETQLIM, PRJQUOTA)` and `QCMD(Q_XGETQUOTA, PRJQUOTA)`.
const Q_XSETQLIM_PRJ: libc::c_int = (0x5804 << 8) | 2;
const Q_XGETQUOTA_PRJ: libc::c_int = (0x5803 << 8) | 2;
const FS_DQUOT_VERSION: i8 = 1;
const FS_PROJ_QUOTA: i8 = 2;
const FS_DQ_BSOFT: u16 = 1 << 2;
const FS_DQ_BHARD: u16 = 1 << 3;

/// `struct fsxattr` (linux/fs.h).
#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

/// `struct fs_disk_quota` (linux/dqblk_xfs.h).
#[repr(C)]
#[derive(Default)]
struct FsDiskQuota {
    version: i8,
    flags: i8,
    fieldmask: u16,
    id: u32,
    blk_hardlimit: u64,
    blk_softlimit: u64,
    ino_hardlimit: u64,
    ino_softlimit: u64,
    bcount: u64,
    icount: u64,
    itimer: i32,
    btimer: i32,
    iwarns: u16,
    bwarns: u16,
    itimer_hi: i8,
    btimer_hi: i8,
    rtbtimer_hi: i8,
    padding2: i8,
    rtb_hardlimit: u64,
    rtb_softlimit: u64,
    rtbcount: u64,
    rtbtimer: i32,
    rtbwarns: u16,
    padding3: i16,
    padding4: [u8; 8],
}

fn quota_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Rootfs {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether `dir` is on XFS mounted with project quotas enforced.
pub fn supported(dir: &Path) -> bool {
    let Ok(f) = File::open(dir) else {
        return false;
    };
    // SAFETY: statfs is plain integers, for which all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes one statfs into `st`, which lives across the call.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 || st.f_type as i64 != XFS_SUPER_MAGIC
    {
        return false;
    }
    let Ok(dev) = std::fs::metadata(dir).map(|m| m.dev()) else {
        return false;
    };
    // The mount's options (mountinfo's super options: `prjquota` once enforced).
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines().any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.get(2) == Some(&want.as_str())
                && l.split(" - ")
                    .nth(1)
                    .and_then(|post| post.split(' ').nth(2))
                    .is_some_and(|o| o.split(',').any(|o| o == "prjquota" || o == "pquota"))
        })
    })
}

/// The block device node quotactl is given: made under `state_dir` (as docker's
/// `backingFsBlockDev`) with the numbers of the filesystem `dir` is on, so no /dev path
/// has to be found.
fn backing_device(dir: &Path, state_dir: &Path) -> Result<PathBuf> {
    let dev = std::fs::metadata(dir)
        .map_err(|e| quota_err(dir, e.to_string()))?
        .dev();
    let node = state_dir.join("backingFsBlockDev");
    let _ = std::fs::remove_file(&node);
    let c = std::ffi::CString::new(node.as_os_str().as_encoded_bytes())
        .map_err(|_| quota_err(&node, "a NUL in the path"))?;
    // SAFETY: mknod reads the NUL-terminated path; no memory is written.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, dev) } != 0 {
        return Err(quota_err(
            &node,
            format!(
                "making the quota device: {}",
                std::io::Error::last_os_error()
            ),
        ));
    }
    Ok(node)
}

fn quotactl(cmd: libc::c_int, dev: &Path, id: u32, q: &mut FsDiskQuota) -> std::io::Result<()> {
    let c = std::ffi::CString::new(dev.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: quotactl reads the NUL-terminated device path and reads or writes one
    // fs_disk_quota at `q`, which lives across the call.
    let r = unsafe {
        libc::quotactl(
            cmd,
            c.as_ptr(),
            id as libc::c_int,
            (q as *mut FsDiskQuota).cast::<libc::c_char>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The project id of `dir` (0: none).
pub fn project_id(dir: &Path) -> Result<u32> {
    let f = File::open(dir).map_err(|e| quota_err(dir, e.to_string()))?;
    let mut x = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR writes one fsxattr into `x`, which lives across the call.
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSGETXATTR, &mut x) } != 0 {
        return Err(quota_err(dir, std::io::Error::last_os_error().to_string()));
    }
    Ok(x.projid)
}

/// Gives `dir` (a new, empty directory) project `id`, inherited by what is made
/// under it, and limits the project to `bytes`. `state_dir` holds the device node
/// quotactl needs.
pub fn limit(dir: &Path, id: u32, bytes: u64, state_dir: &Path) -> Result<()> {
    if !supported(dir) {
        return Err(quota_err(
            dir,
            "not on XFS mounted with project quotas (pquota)",
        ));
    }
    let f = File::open(dir).map_err(|e| quota_err(dir, e.to_string()))?;
    let mut x = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR writes one fsxattr into `x`, which lives across the call.
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSGETXATTR, &mut x) } != 0 {
        return Err(quota_err(dir, std::io::Error::last_os_error().to_string()));
    }
    x.projid = id;
    x.xflags |= FS_XFLAG_PROJINHERIT;
    // SAFETY: FS_IOC_FSSETXATTR reads the fsxattr at `x`, which lives across the call.
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSSETXATTR, &x) } != 0 {
        return Err(quota_err(
            dir,
            format!(
                "setting project id {id}: {}",
                std::io::Error::last_os_error()
            ),
        ));
    }
    let dev = backing_device(dir, state_dir)?;
    let blocks = bytes.div_ceil(512);
    let mut q = FsDiskQuota {
        version: FS_DQUOT_VERSION,
        flags: FS_PROJ_QUOTA,
        fieldmask: FS_DQ_BHARD | FS_DQ_BSOFT,
        id,
        blk_hardlimit: blocks,
        blk_softlimit: blocks,
        ..Default::default()
    };
    let r = quotactl(Q_XSETQLIM_PRJ, &dev, id, &mut q);
    let _ = std::fs::remove_file(&dev);
    r.map_err(|e| quota_err(dir, format!("setting the quota of project {id}: {e}")))
}

/// The hard limit, in bytes, of project `id` on the filesystem of `dir` (0: none).
pub fn limit_of(dir: &Path, id: u32, state_dir: &Path) -> Result<u64> {
    let dev = backing_device(dir, state_dir)?;
    let mut q = FsDiskQuota::default();
    let r = quotactl(Q_XGETQUOTA_PRJ, &dev, id, &mut q);
    let _ = std::fs::remove_file(&dev);
    match r {
        Ok(()) => Ok(q.blk_hardlimit * 512),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(0),
        Err(e) => Err(quota_err(dir, format!("reading project {id}'s quota: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_struct_sizes() {
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(std::mem::size_of::<FsDiskQuota>(), 112);
    }
}
