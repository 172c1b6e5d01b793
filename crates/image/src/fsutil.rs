//! Small filesystem helpers shared by the store, snapshots and rootfs.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Removes the directory tree at `path` without following symlinks
/// (std's `remove_dir_all` works by fd). A tree the caller may not write
/// into (a 0555 directory extracted as a non-root user) is made writable
/// first and removed again. Missing is fine.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path);
            match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        }
        Err(e) => Err(e),
    }
}

/// chmod u+rwx on every directory of the tree (never through a symlink).
fn make_writable(path: &Path) {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !m.is_dir() {
        return;
    }
    let mode = m.permissions().mode() | 0o700;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&e.path());
            }
        }
    }
}
