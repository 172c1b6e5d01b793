//! `cp` between a container's root filesystem and tar streams: paths are
//! resolved inside the root as the container would see them
//! (`openat2(RESOLVE_IN_ROOT)`: `..` and absolute symlinks stop at the
//! root), never on the host, and archives are written and extracted from
//! descriptors (see [`crate::diff`] and [`crate::layer`]).

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::diff::{TreeKind, Walker};
use crate::error::{Context, Error, Result};
use crate::layer::{ApplyOptions, WhiteoutFormat, apply_layer};
use crate::sys;

const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

fn not_found(root: &Path, path: &str) -> Error {
    Error::Io {
        path: root.join(path.trim_start_matches('/')),
        err: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no such file or directory in the container: {path}"),
        ),
    }
}

/// A path inside a root: its parent directory (an `O_PATH` descriptor
/// resolved in the root) and its last component (empty for the root).
struct Located {
    parent: OwnedFd,
    name: OsString,
}

/// The components of a container path, `.` and empty ones dropped.
fn components(path: &str) -> Vec<OsString> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

fn locate(root_fd: &OwnedFd, root: &Path, path: &str, follow: bool) -> Result<Located> {
    let mut comps = components(path);
    if follow {
        // The symlinks of the whole path, resolved in the root; then the
        // real location, taken apart again.
        let full: PathBuf = comps.iter().collect();
        let target = if full.as_os_str().is_empty() {
            sys::openat2(root_fd.as_fd(), Path::new("."), libc::O_PATH, 0, IN_ROOT)
        } else {
            sys::openat2(root_fd.as_fd(), &full, libc::O_PATH, 0, IN_ROOT)
        }
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                not_found(root, path)
            } else {
                Error::Io {
                    path: root.join(&full),
                    err: e,
                }
            }
        })?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", target.as_raw_fd()))
            .at(root.join(&full))?;
        let root_real = std::fs::canonicalize(root).at(root)?;
        let rel = real.strip_prefix(&root_real).map_err(|_| Error::Io {
            path: real.clone(),
            err: std::io::Error::other("resolved outside the container's root"),
        })?;
        comps = rel.iter().map(OsStr::to_os_string).collect();
    }
    // `..` as the last component: the directory it names.
    if comps.last().is_some_and(|c| c == "..") {
        let full: PathBuf = comps.iter().collect();
        let fd = sys::openat2(
            root_fd.as_fd(),
            &full,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            IN_ROOT,
        )
        .at(root.join(&full))?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).at(root)?;
        let root_real = std::fs::canonicalize(root).at(root)?;
        let rel = real.strip_prefix(&root_real).unwrap_or(Path::new(""));
        comps = rel.iter().map(OsStr::to_os_string).collect();
    }
    let Some(name) = comps.pop() else {
        return Ok(Located {
            parent: sys::openat2(root_fd.as_fd(), Path::new("."), libc::O_PATH, 0, IN_ROOT)
                .at(root)?,
            name: OsString::new(),
        });
    };
    let parent_path: PathBuf = comps.iter().collect();
    let parent = sys::openat2(
        root_fd.as_fd(),
        if parent_path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &parent_path
        },
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        IN_ROOT,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => not_found(root, path),
        _ => Error::Io {
            path: root.join(&parent_path),
            err: e,
        },
    })?;
    Ok(Located { parent, name })
}

/// What is at `path` inside `root` (its final symlink followed or not);
/// None when nothing is.
pub fn stat_in_root(root: &Path, path: &str, follow: bool) -> Result<Option<libc::stat>> {
    let root_fd = sys::open_dir_path(root).at(root)?;
    let loc = match locate(&root_fd, root, path, follow) {
        Ok(l) => l,
        Err(Error::Io { err, .. }) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if loc.name.is_empty() {
        return Ok(Some(sys::fstat(loc.parent.as_fd()).at(root)?));
    }
    match sys::lstatat(loc.parent.as_fd(), &loc.name) {
        Ok(st) => Ok(Some(st)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(root.join(path.trim_start_matches('/'))),
    }
}

/// The names in the directory `path` (resolved in `root`, its symlinks followed inside the
/// root), sorted; for wildcards (`COPY --from=stage /app/*.so`).
pub fn list_in_root(root: &Path, path: &str) -> Result<Vec<OsString>> {
    let root_fd = sys::open_dir_path(root).at(root)?;
    let comps: PathBuf = components(path).iter().collect();
    let dir = sys::openat2(
        root_fd.as_fd(),
        if comps.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &comps
        },
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        IN_ROOT,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => not_found(root, path),
        _ => Error::Io {
            path: root.join(&comps),
            err: e,
        },
    })?;
    let listing = sys::at_path(dir.as_fd(), OsStr::new(""));
    let mut names: Vec<OsString> = std::fs::read_dir(&listing)
        .and_then(|rd| rd.map(|e| e.map(|e| e.file_name())).collect())
        .at(root.join(&comps))?;
    names.sort();
    Ok(names)
}

/// Writes `path` (resolved in `root`) as a tar: one top entry named as the
/// path's last component (or `rename`) with everything under it; a path
/// ending in `/.` (or the root) writes the directory's contents instead,
/// docker cp's rule. `follow_link`: a final symlink is followed (`-L`).
pub fn archive_path(
    root: &Path,
    path: &str,
    follow_link: bool,
    rename: Option<&OsStr>,
    out: impl Write,
) -> Result<()> {
    let root_fd = sys::open_dir_path(root).at(root)?;
    let contents = path.ends_with("/.") || components(path).is_empty();
    let loc = locate(&root_fd, root, path, follow_link)?;
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    let mut w = Walker::new(TreeKind::Full, root);
    if contents {
        let dir = if loc.name.is_empty() {
            sys::openat2(
                loc.parent.as_fd(),
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
                IN_ROOT,
            )
        } else {
            sys::openat(
                Some(loc.parent.as_fd()),
                Path::new(&loc.name),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
        }
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => not_found(root, path),
            _ => Error::Io {
                path: root.join(path.trim_start_matches('/')),
                err: e,
            },
        })?;
        w.dir(&mut b, dir.as_fd(), Path::new(""))?;
    } else {
        if sys::lstatat(loc.parent.as_fd(), &loc.name).is_err() {
            return Err(not_found(root, path));
        }
        let as_name = rename.unwrap_or(&loc.name);
        w.entry(&mut b, loc.parent.as_fd(), &loc.name, Path::new(as_name))?;
    }
    b.into_inner()
        .and_then(|mut o| o.flush())
        .map_err(|e| Error::Io {
            path: root.join(path.trim_start_matches('/')),
            err: e,
        })
}

/// Extracts the tar `input` into the directory `dir` (resolved in
/// `root`). Entries cannot leave it (the layer applier's rules: no `..`,
/// no absolute names, parents looked up beneath the directory without
/// following symlinks); `.wh.` names are ordinary files here. Without
/// `preserve_ownership` the files belong to the caller (docker cp's
/// default; `-a` keeps the archive's owners).
pub fn extract_to(
    root: &Path,
    dir: &str,
    input: impl Read,
    preserve_ownership: bool,
) -> Result<()> {
    let root_fd = sys::open_dir_path(root).at(root)?;
    let comps: PathBuf = components(dir).iter().collect();
    let target = sys::openat2(
        root_fd.as_fd(),
        if comps.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &comps
        },
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        IN_ROOT,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => not_found(root, dir),
        Some(libc::ENOTDIR) => Error::Io {
            path: root.join(&comps),
            err: std::io::Error::other(format!("{dir} is not a directory in the container")),
        },
        _ => Error::Io {
            path: root.join(&comps),
            err: e,
        },
    })?;
    let opts = ApplyOptions {
        whiteouts: WhiteoutFormat::Oci,
        preserve_ownership,
        ..ApplyOptions::default()
    };
    let via = PathBuf::from(format!("/proc/self/fd/{}", target.as_raw_fd()));
    apply_layer(input, &via, &opts)?;
    Ok(())
}
