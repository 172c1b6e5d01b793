//! Helpers for the integration tests: tar layers built in the test (hostile
//! ones included, with raw names the `tar` crate's checked setters would
//! refuse), tree snapshots for "nothing else changed" checks.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

pub fn is_root() -> bool {
    berth_image::sys::geteuid() == 0
}

/// A tar layer under construction.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

pub struct Opts {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
        }
    }
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// An entry with a raw name and link name (no checks at all).
    pub fn raw(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        data: &[u8],
        o: &Opts,
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(o.mode);
        h.set_uid(o.uid);
        h.set_gid(o.gid);
        h.set_mtime(o.mtime);
        h.set_size(data.len() as u64);
        {
            let old = h.as_old_mut();
            assert!(name.len() <= 100 && link.len() <= 100);
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name);
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        let n = if name.ends_with('/') {
            name.to_string()
        } else {
            format!("{name}/")
        };
        self.raw(
            EntryType::Directory,
            n.as_bytes(),
            b"",
            b"",
            &Opts {
                mode,
                ..Opts::default()
            },
        )
    }

    pub fn dir_with(&mut self, name: &str, o: &Opts) -> &mut Self {
        let n = format!("{}/", name.trim_end_matches('/'));
        self.raw(EntryType::Directory, n.as_bytes(), b"", b"", o)
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.raw(
            EntryType::Regular,
            name.as_bytes(),
            b"",
            data,
            &Opts {
                mode,
                ..Opts::default()
            },
        )
    }

    pub fn file_with(&mut self, name: &str, data: &[u8], o: &Opts) -> &mut Self {
        self.raw(EntryType::Regular, name.as_bytes(), b"", data, o)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            b"",
            &Opts {
                mode: 0o777,
                ..Opts::default()
            },
        )
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            EntryType::Link,
            name.as_bytes(),
            target.as_bytes(),
            b"",
            &Opts::default(),
        )
    }

    pub fn device(
        &mut self,
        kind: EntryType,
        name: &str,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        h.set_path(name).unwrap();
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    /// A PAX header (xattrs, times…) for the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    /// A file with a name longer than the header holds (GNU long name).
    pub fn long_file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, name, data).unwrap();
        self
    }

    /// The tar with its end marker.
    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }

    /// The tar without its end marker (as if cut at a header boundary).
    pub fn finish_unterminated(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        let mut v = b.into_inner().unwrap();
        // into_inner wrote two zero blocks (and nothing else).
        v.truncate(v.len() - 1024);
        v
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// Type, mode, owner, size, content digest or link target of every entry
/// under `root` (not following symlinks): to check a tree did not change.
pub fn snapshot_tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, p: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return;
    };
    let rel = p.strip_prefix(root).unwrap().to_path_buf();
    let ft = m.file_type();
    let what = if ft.is_symlink() {
        format!("link {}", std::fs::read_link(p).unwrap().display())
    } else if ft.is_file() {
        format!(
            "file {:?}",
            berth_image::Digest::sha256(&std::fs::read(p).unwrap())
        )
    } else if ft.is_dir() {
        "dir".to_string()
    } else if ft.is_char_device() {
        format!("char {}", m.rdev())
    } else {
        "other".to_string()
    };
    out.insert(
        rel,
        format!("{what} {:o} {}:{}", m.mode(), m.uid(), m.gid()),
    );
    if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for n in names {
            walk(root, &n, out);
        }
    }
}

/// An xattr of `p` (not following a symlink at `p`).
pub fn xattr(p: &Path, key: &str) -> Option<Vec<u8>> {
    let dir = std::fs::File::open(p.parent().unwrap()).unwrap();
    berth_image::sys::lgetxattr_at(
        std::os::fd::AsFd::as_fd(&dir),
        p.file_name().unwrap(),
        std::ffi::OsStr::new(key),
    )
    .unwrap()
}

/// Makes every directory under `p` writable (not through symlinks), so a
/// tree with read-only directories (extracted as a non-root user) can be
/// removed by the temp dir's drop.
pub fn make_removable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return;
    };
    if m.is_dir() {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                make_removable(&e.path());
            }
        }
    }
}
