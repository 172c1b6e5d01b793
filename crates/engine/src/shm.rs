//! The /dev/shm of a container others may join (`--ipc shareable`): a tmpfs the engine
//! mounts on the host at `shm` in the container's directory, bound into it and into every
//! `--ipc container:X` joiner, as dockerd does. A private container's /dev/shm is a tmpfs
//! of its own mount namespace instead (nothing on the host).
//!
//! Mounted when the container starts, unmounted when it stops (its content goes, as it
//! would with the container's own tmpfs); a joiner keeps its own bind of it.

use std::ffi::OsStr;
use std::path::Path;

use berth_runtime::sys;

use crate::error::{Context, Result};

/// The mount point in the container's directory.
pub const DIR: &str = "shm";

/// Whether `path` is a mount point of its own (a tmpfs there), not just a directory.
fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Mounts the shareable tmpfs of the container in `dir` (size in bytes), if not there yet.
pub fn mount_shareable(dir: &Path, size: i64) -> Result<()> {
    let target = dir.join(DIR);
    if is_mounted(&target) {
        return Ok(());
    }
    std::fs::create_dir_all(&target).at(&target)?;
    let data = format!("mode=1777,size={size}");
    sys::mount(
        Some(OsStr::new("shm")),
        &target,
        Some(OsStr::new("tmpfs")),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(OsStr::new(&data)),
    )
    .at(&target)
}

/// Unmounts it (best effort: it may not be there).
pub fn unmount(dir: &Path) {
    let target = dir.join(DIR);
    if is_mounted(&target) {
        let _ = sys::umount2(&target, libc::MNT_DETACH);
    }
}
