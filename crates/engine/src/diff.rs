//! `berth container diff`: the files and directories a container added
//! (`A`), changed (`C`) or deleted (`D`), read from its overlay upper
//! directory as docker's overlay2 driver does (moby's `OverlayChanges`):
//!
//! - a whiteout (a 0:0 character device, or a `.wh.NAME` file) is `D NAME`;
//! - an opaque directory (`trusted.overlay.opaque`/`user.overlay.opaque` =
//!   `y`) that hid one of the image's is `D`, and what is in it now `A`;
//! - an entry the image's layers have is `C`, except a directory whose size,
//!   mode and modification time are the image's (it is only on the way to
//!   a change below it); anything else is `A`;
//! - the parent directory of an `A` or `D` is `C` (once, before it).
//!
//! The order is docker's: a depth-first walk, names sorted. The walk opens
//! each directory from its parent's descriptor with `O_NOFOLLOW` and
//! stats without following links, in the upper directory and the layers
//! alike: a running container that swaps a directory for a symlink to the
//! host's `/` gets its symlink listed, never the host's files.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use berth_image::sys;
use serde::Serialize;

use crate::Engine;
use crate::error::{Error, Result};

/// docker's change kinds (the API's `Kind`: 0 modified, 1 added, 2 deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Kind {
    Changed,
    Added,
    Deleted,
}

impl Kind {
    /// The letter `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            Kind::Changed => 'C',
            Kind::Added => 'A',
            Kind::Deleted => 'D',
        }
    }

    /// The API's number.
    pub fn api(self) -> u8 {
        match self {
            Kind::Changed => 0,
            Kind::Added => 1,
            Kind::Deleted => 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Absolute inside the container (`/etc/hosts`).
    pub path: String,
    pub kind: Kind,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_KEYS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

fn is_whiteout_dev(st: &libc::stat) -> bool {
    sys::file_type(st) == libc::S_IFCHR && st.st_rdev == 0
}

fn open_in(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<OwnedFd> {
    sys::openat(
        Some(dir),
        Path::new(name),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

/// What the image's layers have at `rel` (the topmost layer that names it;
/// None when none does or the top one's entry is a whiteout). No link on
/// the way is followed.
fn lower_stat(lowers: &[PathBuf], rel: &Path) -> Option<libc::stat> {
    let parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let (last, dirs) = parts.split_last()?;
    'layer: for lower in lowers.iter().rev() {
        let Ok(mut fd) = sys::open_dir(lower) else {
            continue;
        };
        for d in dirs {
            match open_in(fd.as_fd(), d) {
                Ok(next) => fd = next,
                Err(_) => continue 'layer,
            }
        }
        if let Ok(st) = sys::lstatat(fd.as_fd(), last) {
            return (!is_whiteout_dev(&st)).then_some(st);
        }
    }
    None
}

struct Walk<'a> {
    lowers: &'a [PathBuf],
    changes: Vec<Change>,
    changed_dirs: HashSet<PathBuf>,
}

fn abs(rel: &Path) -> String {
    format!("/{}", rel.display())
}

impl Walk<'_> {
    fn push(&mut self, rel: &Path, kind: Kind, is_dir: bool) {
        if is_dir {
            self.changed_dirs.insert(rel.to_path_buf());
        }
        if matches!(kind, Kind::Added | Kind::Deleted)
            && let Some(parent) = rel.parent()
            && !parent.as_os_str().is_empty()
            && self.changed_dirs.insert(parent.to_path_buf())
        {
            self.changes.push(Change {
                path: abs(parent),
                kind: Kind::Changed,
            });
        }
        self.changes.push(Change {
            path: abs(rel),
            kind,
        });
    }

    fn dir(&mut self, dir: BorrowedFd<'_>, rel: &Path) -> Result<()> {
        let listing = sys::at_path(dir, OsStr::new(""));
        let mut names: Vec<OsString> = std::fs::read_dir(&listing)
            .and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(|err| Error::Io {
                path: PathBuf::from(abs(rel)),
                err,
            })?;
        names.sort();
        for name in names {
            let path = rel.join(&name);
            let Ok(st) = sys::lstatat(dir, &name) else {
                continue; // gone meanwhile (the container runs)
            };
            let is_dir = sys::file_type(&st) == libc::S_IFDIR;
            if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
                if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                    continue; // .wh..wh..opq and friends: overlay's own
                }
                self.push(&rel.join(OsStr::from_bytes(hidden)), Kind::Deleted, false);
                continue;
            }
            if is_whiteout_dev(&st) {
                self.push(&path, Kind::Deleted, false);
                continue;
            }
            let lower = lower_stat(self.lowers, &path);
            let opaque = is_dir
                && OPAQUE_KEYS.iter().any(|k| {
                    sys::lgetxattr_at(dir, &name, OsStr::new(k))
                        .ok()
                        .flatten()
                        .is_some_and(|v| v == b"y")
                });
            let kind = match &lower {
                _ if opaque && lower.is_some() => Some(Kind::Deleted),
                None => Some(Kind::Added),
                Some(l)
                    if is_dir
                        && sys::file_type(l) == libc::S_IFDIR
                        && l.st_size == st.st_size
                        && l.st_mode == st.st_mode
                        && (l.st_mtime, l.st_mtime_nsec) == (st.st_mtime, st.st_mtime_nsec) =>
                {
                    None
                }
                Some(_) => Some(Kind::Changed),
            };
            // None: recorded as changed only if something below is added or deleted.
            if let Some(k) = kind {
                self.push(&path, k, is_dir);
            }
            if is_dir && let Ok(sub) = open_in(dir, &name) {
                self.dir(sub.as_fd(), &path)?;
            }
        }
        Ok(())
    }
}

/// The changes in an overlay `upper` directory over the layers `lowers`
/// (bottom first), in docker's order.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let root = sys::open_dir(upper).map_err(|err| Error::Io {
        path: upper.to_path_buf(),
        err,
    })?;
    let mut w = Walk {
        lowers,
        changes: Vec::new(),
        changed_dirs: HashSet::new(),
    };
    w.dir(root.as_fd(), Path::new(""))?;
    Ok(w.changes)
}

impl Engine {
    /// `container diff` (see the module doc).
    pub fn diff(&mut self, key: &str) -> Result<Vec<Change>> {
        let row = self.get(key)?;
        let images = self.images()?;
        let rootfs =
            berth_image::ContainerRootfs::open(images.snapshots(), &self.container_dir(&row.id))?;
        let Some(upper) = rootfs.upper() else {
            return Err(Error::BadState {
                id: row.id,
                state: row.state,
                what: "its root filesystem is a copy (no overlay): its changes are not kept apart"
                    .into(),
            });
        };
        let lowers: Vec<PathBuf> = rootfs
            .layers()
            .iter()
            .map(|c| images.snapshots().fs_path(c))
            .collect();
        let mut list = changes(&upper, &lowers)?;
        let dests: Vec<String> = crate::row_spec(self, &row)
            .and_then(|s| s.mounts().clone())
            .unwrap_or_default()
            .iter()
            .map(|m| m.destination().to_string_lossy().into_owned())
            .collect();
        hide_mount_points(&mut list, &dests);
        Ok(list)
    }
}

/// Leaves out what the runtime made for the container's mounts (their
/// mount points, what is hidden under them, and a parent directory changed
/// only by that): docker keeps those in its "-init" layer, out of the diff.
pub fn hide_mount_points(list: &mut Vec<Change>, dests: &[String]) {
    let under = |p: &str, d: &str| p == d || p.strip_prefix(d).is_some_and(|r| r.starts_with('/'));
    list.retain(|c| !dests.iter().any(|d| under(&c.path, d)));
    let remaining: Vec<String> = list.iter().map(|c| c.path.clone()).collect();
    list.retain(|c| {
        let ancestor_of_mount = dests.iter().any(|d| {
            d.strip_prefix(c.path.as_str())
                .is_some_and(|r| r.starts_with('/'))
        });
        let has_changes_below = remaining.iter().any(|p| {
            p.strip_prefix(c.path.as_str())
                .is_some_and(|r| r.starts_with('/'))
        });
        !(c.kind == Kind::Changed && ancestor_of_mount && !has_changes_below)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn docker_order_and_kinds() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        let upper = t.path().join("upper");
        for d in ["etc", "usr/lib", "var/log", "same"] {
            fs::create_dir_all(lower.join(d)).unwrap();
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        fs::write(lower.join("usr/lib/gone"), "x").unwrap();
        fs::write(upper.join("etc/passwd"), "root\nuser").unwrap();
        fs::write(upper.join("etc/new"), "n").unwrap();
        fs::write(upper.join("usr/lib/.wh.gone"), "").unwrap();
        fs::create_dir(upper.join("tmp")).unwrap();
        fs::write(upper.join("tmp/a"), "a").unwrap();
        // Same mode, size and mtime as the image's: not a change by itself.
        let m = fs::metadata(lower.join("same"))
            .unwrap()
            .modified()
            .unwrap();
        fs::File::open(upper.join("same"))
            .unwrap()
            .set_modified(m)
            .unwrap();
        let got: Vec<String> = changes(&upper, &[lower])
            .unwrap()
            .iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path))
            .collect();
        // Directories whose mtime moved are changes of their own (docker
        // too); `same` kept the image's and is not listed.
        assert!(!got.iter().any(|l| l == "C /same"), "{got:?}");
        for w in [
            "C /etc",
            "A /etc/new",
            "C /etc/passwd",
            "A /tmp",
            "A /tmp/a",
            "C /usr/lib",
            "D /usr/lib/gone",
        ] {
            assert!(got.iter().any(|l| l == w), "{w} missing from {got:?}");
        }
        let mut hidden = vec![
            Change {
                path: "/etc".into(),
                kind: Kind::Changed,
            },
            Change {
                path: "/etc/hosts".into(),
                kind: Kind::Added,
            },
            Change {
                path: "/dev".into(),
                kind: Kind::Added,
            },
            Change {
                path: "/dev/shm".into(),
                kind: Kind::Added,
            },
            Change {
                path: "/var".into(),
                kind: Kind::Changed,
            },
            Change {
                path: "/var/x".into(),
                kind: Kind::Added,
            },
            Change {
                path: "/var/run".into(),
                kind: Kind::Added,
            },
        ];
        hide_mount_points(
            &mut hidden,
            &["/etc/hosts".into(), "/dev".into(), "/var/run".into()],
        );
        let kept: Vec<&str> = hidden.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(kept, ["/var", "/var/x"]);
        let pos = |s: &str| got.iter().position(|l| l == s).unwrap();
        assert!(pos("C /etc") < pos("A /etc/new"));
        assert!(pos("A /etc/new") < pos("C /etc/passwd"));
        assert!(pos("C /usr/lib") < pos("D /usr/lib/gone"));
    }
}
