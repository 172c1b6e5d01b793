//! Applying a tar layer to a snapshot directory.
//!
//! The stream is read once: decompressed (gzip, zstd or plain, told apart
//! by their magic bytes), hashed into the diff_id, and extracted entry by
//! entry. Nothing is copied to a temp file.
//!
//! Safety rules, each enforced per entry with an error naming it:
//! * names are relative and have no `..` (`../x`, `/etc/x`, `a/../../x`
//!   are refused);
//! * every parent directory is looked up with `openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_MAGICLINKS)` from the snapshot's root fd: a symlink that
//!   stays inside is followed, one that leads out (absolute, or `..` past
//!   the root, planted by an earlier entry or already in the directory) is
//!   refused; the final component is never followed (created with
//!   `O_EXCL`/`O_NOFOLLOW`, an existing entry is replaced, not written
//!   through);
//! * a hardlink's target obeys the same rules, must already exist in this
//!   layer, must not be a directory, and must not be a symlink that leads
//!   out;
//! * device nodes only when the options allow them;
//! * the archive must be complete (every entry's data, the end marker) and,
//!   when the caller passes it, have the expected diff_id.
//!
//! Whiteouts: with [`WhiteoutFormat::Overlay`], `.wh.NAME` becomes a 0:0
//! character device NAME and `.wh..wh..opq` the `trusted.overlay.opaque=y`
//! xattr on its directory, so the snapshot can be an overlayfs lower layer
//! as it is. With [`WhiteoutFormat::Oci`] (no CAP_MKNOD needed) the marker
//! files are kept as they are in the tar, and the copy-based rootfs
//! interprets them.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::digest::{Algorithm, Digest, HashingReader};
use crate::error::{EntryError, Error, Result};
use crate::sys::{self, Time};

/// How a layer stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Tells the compression from the first bytes of a stream. bzip2 and xz
    /// (legal in Docker's old tar layers, never in registries) are refused.
    pub fn detect(head: &[u8]) -> Result<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::Zstd)
        } else if head.starts_with(b"BZh") {
            Err(Error::Archive(
                "bzip2-compressed layers are not supported".into(),
            ))
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Err(Error::Archive(
                "xz-compressed layers are not supported".into(),
            ))
        } else {
            Ok(Compression::None)
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// How whiteouts are stored in a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhiteoutFormat {
    /// overlayfs' own: 0:0 character devices and the opaque xattr (needs
    /// CAP_MKNOD and CAP_SYS_ADMIN for `trusted.*`).
    Overlay,
    /// The tar's `.wh.` files kept as they are.
    Oci,
}

/// What `apply_layer` may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutFormat,
    /// Create character and block devices (else they are refused, or
    /// skipped with `skip_devices`).
    pub allow_devices: bool,
    /// Leave devices out instead of refusing the layer (a rootless store:
    /// mknod is not allowed in a user namespace; podman does the same).
    pub skip_devices: bool,
    /// chown entries to the tar's uid/gid (else they belong to the caller).
    pub preserve_ownership: bool,
}

impl Default for ApplyOptions {
    /// Everything as root; as another user, OCI whiteouts, no devices and
    /// no ownership.
    fn default() -> Self {
        let root = sys::geteuid() == 0;
        // Root in a user namespace (a rootless engine) owns its ids and can
        // make overlay whiteouts (0:0 devices, `user.overlay.opaque`), but
        // no other device.
        let userns = root && sys::in_user_namespace();
        ApplyOptions {
            whiteouts: if root {
                WhiteoutFormat::Overlay
            } else {
                WhiteoutFormat::Oci
            },
            allow_devices: root && !userns,
            skip_devices: userns,
            preserve_ownership: root,
        }
    }
}

/// What applying a layer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSummary {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    pub compression: Compression,
    /// Bytes of the uncompressed stream.
    pub size: u64,
    pub entries: u64,
    /// xattrs the filesystem refused (EPERM/ENOTSUP), as docker ignores
    /// them.
    pub xattrs_skipped: u64,
    /// Device nodes left out (a rootless store).
    pub devices_skipped: u64,
    /// Entries of other owners given to root: a rootless user without
    /// subordinate ids maps only its own id.
    pub owners_flattened: u64,
}

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
const RESOLVE: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;

/// Applies the tar layer read from `reader` (plain, gzip or zstd) to the
/// directory `dir`. Returns the layer's diff_id; the caller compares it
/// with the image config's (and discards `dir` on a mismatch: see
/// `Snapshotter::apply`, which does all of this).
pub fn apply_layer(reader: impl Read, dir: &Path, opts: &ApplyOptions) -> Result<LayerSummary> {
    apply_layer_checked(reader, dir, opts, true)
}

/// The layer stream `reader` decompressed (gzip, zstd, or as is), by its
/// first bytes.
pub fn decompress<'a>(reader: impl Read + 'a) -> Result<(Compression, Box<dyn Read + 'a>)> {
    let mut reader = reader;
    let mut head = [0u8; 6];
    let n = read_up_to(&mut reader, &mut head).map_err(|e| Error::Sys {
        what: "reading layer".into(),
        err: e,
    })?;
    if n == 0 {
        return Err(Error::Archive(
            "empty layer stream (a tar has at least its end marker)".into(),
        ));
    }
    let compression = Compression::detect(&head[..n])?;
    let stream = io::Cursor::new(head[..n].to_vec()).chain(reader);
    let decoded: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(BufReader::with_capacity(256 * 1024, stream)),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(128 * 1024, stream),
        )),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream)
                .map_err(|e| Error::Archive(format!("zstd: {e}")))?,
        ),
    };
    Ok((compression, decoded))
}

/// `apply_layer`; with `require_end_marker` false, a tar that ends at a
/// header boundary without its end-of-archive marker is accepted (Go's
/// archive/tar does, and umoci 0.4's `insert` writes such layers). Only
/// for callers that compare the diff_id afterwards, which catches a
/// stream cut short (`Snapshotter::apply`).
pub(crate) fn apply_layer_checked(
    reader: impl Read,
    dir: &Path,
    opts: &ApplyOptions,
    require_end_marker: bool,
) -> Result<LayerSummary> {
    let (compression, decoded) = decompress(reader)?;
    let mut hashing = EofReader {
        inner: HashingReader::new(decoded, Algorithm::Sha256),
        eof: false,
    };

    let root = sys::open_dir_path(dir).map_err(|err| Error::Io {
        path: dir.to_path_buf(),
        err,
    })?;
    let mut applier = Applier {
        root,
        opts,
        cache: None,
        dirs: BTreeMap::new(),
        xattrs_skipped: 0,
        devices_skipped: 0,
        owners_flattened: 0,
        buf: vec![0u8; 256 * 1024],
    };

    let mut entries = 0u64;
    let mut last = String::from("(start of archive)");
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let iter = archive
            .entries()
            .map_err(|e| Error::Archive(e.to_string()))?;
        for entry in iter {
            let mut entry = entry
                .map_err(|e| Error::Archive(format!("reading the entry after {last:?}: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            last = String::from_utf8_lossy(&raw).into_owned();
            applier
                .entry(&mut entry, &raw)
                .map_err(|kind| Error::Entry {
                    entry: last.clone(),
                    kind,
                })?;
            entries += 1;
        }
    }
    if hashing.eof && require_end_marker {
        return Err(Error::Archive(format!(
            "truncated: the archive ends after {last:?} without its end-of-archive marker"
        )));
    }
    // What follows the end marker (padding to the record size) is part of
    // the diff_id too.
    hashing
        .inner
        .drain()
        .map_err(|e| Error::Archive(format!("after the end of the tar: {e}")))?;
    applier
        .finish_dirs()
        .map_err(|(entry, kind)| Error::Entry { entry, kind })?;
    let xattrs_skipped = applier.xattrs_skipped;
    let (diff_id, size) = hashing.inner.finish();
    Ok(LayerSummary {
        diff_id,
        compression,
        size,
        entries,
        xattrs_skipped,
        devices_skipped: applier.devices_skipped,
        owners_flattened: applier.owners_flattened,
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Notes whether a read ever hit the end of the stream: the tar reader
/// only does at a header boundary when the end marker is missing.
struct EofReader<R> {
    inner: R,
    eof: bool,
}

impl<R: Read> Read for EofReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        Ok(n)
    }
}

/// Cleans a tar name into a relative path: `.` and empty components
/// dropped; absolute names and `..` refused. An empty result is the root.
/// The root itself may be spelled `/` (umoci's `insert … /` writes that
/// entry): it names no path outside the snapshot.
pub fn clean_entry_path(raw: &[u8]) -> std::result::Result<PathBuf, EntryError> {
    if raw.is_empty() {
        return Err(EntryError::EmptyName);
    }
    if raw[0] == b'/' {
        if raw.split(|&b| b == b'/').all(|c| c.is_empty() || c == b".") {
            return Ok(PathBuf::new());
        }
        return Err(EntryError::AbsolutePath);
    }
    let mut out = PathBuf::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(EntryError::ParentDir),
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

struct DirMeta {
    dev: u64,
    ino: u64,
    mode: u32,
    atime: Time,
    mtime: Time,
}

struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    atime: Time,
    mtime: Time,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

type EResult<T> = std::result::Result<T, EntryError>;

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> EntryError {
    move |err| EntryError::Io { what, err }
}

/// How many uids this process' user namespace maps.
fn mapped_ids() -> u64 {
    std::fs::read_to_string("/proc/self/uid_map")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

struct Applier<'a> {
    root: OwnedFd,
    opts: &'a ApplyOptions,
    /// The last parent directory looked up.
    cache: Option<(PathBuf, Rc<OwnedFd>)>,
    /// Directories of this layer, by path: mode and times are set last.
    dirs: BTreeMap<PathBuf, DirMeta>,
    xattrs_skipped: u64,
    devices_skipped: u64,
    owners_flattened: u64,
    buf: Vec<u8>,
}

impl Applier<'_> {
    /// The result of a chown of an entry: an id the user namespace does not
    /// map (EINVAL) leaves the entry to root when only one id is mapped (a
    /// user without subordinate ids; counted), else it is an error that
    /// says which id and why.
    fn chown(&mut self, r: io::Result<()>, meta: &Meta) -> EResult<()> {
        match r {
            Err(e) if errno(&e) == libc::EINVAL && sys::in_user_namespace() => {
                let mapped = mapped_ids();
                if mapped <= 1 {
                    self.owners_flattened += 1;
                    return Ok(());
                }
                Err(EntryError::IdNotMapped {
                    uid: meta.uid,
                    gid: meta.gid,
                    mapped,
                })
            }
            r => r.map_err(io_err("chown")),
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> EResult<()> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            return Ok(());
        }
        let rel = clean_entry_path(raw)?;
        let (parent, name) = match (rel.parent(), rel.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), n.to_os_string()),
            // The root itself ("./"): its attributes are the snapshot's,
            // not the layer's.
            _ if kind == T::Directory => return Ok(()),
            _ => return Err(EntryError::EmptyName),
        };
        let meta = self.meta(entry)?;
        let name_b = name.as_bytes();

        if name_b.starts_with(WHITEOUT_PREFIX) && self.opts.whiteouts == WhiteoutFormat::Overlay {
            let pdir = self.parent(&parent, true)?;
            return self.whiteout(pdir.as_fd(), name_b);
        }
        if name_b.starts_with(WHITEOUT_PREFIX) && name_b.len() == WHITEOUT_PREFIX.len() {
            return Err(EntryError::InvalidWhiteout(
                name.to_string_lossy().into_owned(),
            ));
        }

        match kind {
            T::Regular | T::Continuous | T::GNUSparse => {
                let pdir = self.parent(&parent, true)?;
                self.file(entry, pdir.as_fd(), &name, &meta)
            }
            T::Directory => {
                let pdir = self.parent(&parent, true)?;
                self.dir(pdir.as_fd(), &rel, &name, &meta)
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| io_err("symlink")(io::Error::other("empty symlink target")))?
                    .into_owned();
                let pdir = self.parent(&parent, true)?;
                self.create(pdir.as_fd(), &name, |d, n| {
                    sys::symlinkat(Path::new(OsStr::from_bytes(&target)), d, Path::new(n))
                })?;
                self.finish_node(pdir.as_fd(), &name, &meta, false)
            }
            T::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let pdir = self.parent(&parent, true)?;
                self.hardlink(pdir.as_fd(), &name, &target)
            }
            T::Char | T::Block | T::Fifo => {
                let ftype = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                if ftype != libc::S_IFIFO && !self.opts.allow_devices {
                    if self.opts.skip_devices {
                        self.devices_skipped += 1;
                        return Ok(());
                    }
                    return Err(EntryError::DeviceNotAllowed);
                }
                let h = entry.header();
                let major = h
                    .device_major()
                    .map_err(io_err("device major"))?
                    .unwrap_or(0);
                let minor = h
                    .device_minor()
                    .map_err(io_err("device minor"))?
                    .unwrap_or(0);
                let dev = libc::makedev(major, minor);
                let pdir = self.parent(&parent, true)?;
                self.create(pdir.as_fd(), &name, |d, n| {
                    sys::mknodat(d, Path::new(n), ftype | (meta.mode & 0o7777), dev)
                })?;
                self.finish_node(pdir.as_fd(), &name, &meta, true)
            }
            other => Err(EntryError::UnsupportedType(format!("{other:?}"))),
        }
    }

    /// Ownership, mode, times and xattrs of an entry's header.
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> EResult<Meta> {
        let h = entry.header();
        let old = h.as_old();
        let mode =
            numeric(h.mode().map(u64::from), &old.mode).map_err(io_err("mode"))? as u32 & 0o7777;
        let uid = numeric(h.uid(), &old.uid).map_err(io_err("uid"))?;
        let gid = numeric(h.gid(), &old.gid).map_err(io_err("gid"))?;
        let mtime = numeric(h.mtime(), &old.mtime).map_err(io_err("mtime"))?;
        let id = |v: u64, what: &'static str| {
            u32::try_from(v)
                .map_err(|_| io_err(what)(io::Error::other(format!("{v} is out of range"))))
        };
        let (uid, gid) = (id(uid, "uid")?, id(gid, "gid")?);
        let mut meta = Meta {
            uid,
            gid,
            mode,
            mtime: Time {
                sec: i64::try_from(mtime).unwrap_or(i64::MAX),
                nsec: 0,
            },
            atime: Time::default(),
            xattrs: Vec::new(),
        };
        let mut atime = None;
        if let Some(pax) = entry.pax_extensions().map_err(io_err("PAX header"))? {
            for ext in pax {
                let ext = ext.map_err(io_err("PAX header"))?;
                let key = ext.key_bytes();
                if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                    if !x.is_empty() {
                        meta.xattrs.push((
                            OsStr::from_bytes(x).to_os_string(),
                            ext.value_bytes().to_vec(),
                        ));
                    }
                } else if key == b"mtime" {
                    if let Some(t) = pax_time(ext.value_bytes()) {
                        meta.mtime = t;
                    }
                } else if key == b"atime" {
                    atime = pax_time(ext.value_bytes());
                }
            }
        }
        meta.atime = atime.unwrap_or(meta.mtime);
        Ok(meta)
    }

    /// The directory `parent` (relative to the root) as an O_PATH fd,
    /// created when missing and `create`.
    fn parent(&mut self, parent: &Path, create: bool) -> EResult<Rc<OwnedFd>> {
        if let Some((p, fd)) = &self.cache
            && p == parent
        {
            return Ok(fd.clone());
        }
        let fd = match self.lookup_dir(parent) {
            Ok(fd) => fd,
            Err(e) if matches!(errno(&e), libc::ENOENT | libc::ENOTDIR) && create => {
                self.mkdir_parents(parent)?
            }
            Err(e) => return Err(self.lookup_error(parent, e)),
        };
        let fd = Rc::new(fd);
        self.cache = Some((parent.to_path_buf(), fd.clone()));
        Ok(fd)
    }

    fn lookup_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        sys::openat2(
            self.root.as_fd(),
            rel,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            RESOLVE,
        )
    }

    fn mkdir_parents(&mut self, parent: &Path) -> EResult<OwnedFd> {
        self.cache = None;
        let mut cur = self
            .lookup_dir(Path::new(""))
            .map_err(io_err("opening the snapshot"))?;
        let mut prefix = PathBuf::new();
        for c in parent.components() {
            prefix.push(c);
            match self.lookup_dir(&prefix) {
                Ok(fd) => cur = fd,
                Err(e) if errno(&e) == libc::ENOENT => {
                    match sys::mkdirat(cur.as_fd(), Path::new(c.as_os_str()), 0o755) {
                        Ok(()) => {}
                        Err(e) if errno(&e) == libc::EEXIST => {}
                        Err(e) => return Err(io_err("creating a parent directory")(e)),
                    }
                    cur = self
                        .lookup_dir(&prefix)
                        .map_err(|e| self.lookup_error(&prefix, e))?;
                }
                // This layer's whiteout where its entries now need a
                // directory: the directory replaces it, opaque so the lower
                // layers' one stays hidden.
                Err(e)
                    if errno(&e) == libc::ENOTDIR
                        && self.opts.whiteouts == WhiteoutFormat::Overlay
                        && sys::lstatat(cur.as_fd(), c.as_os_str())
                            .is_ok_and(|st| is_overlay_whiteout(&st)) =>
                {
                    let name = c.as_os_str();
                    sys::unlinkat(cur.as_fd(), name, false)
                        .map_err(io_err("replacing a whiteout"))?;
                    sys::mkdirat(cur.as_fd(), Path::new(name), 0o755).map_err(io_err("mkdir"))?;
                    let d = sys::openat(
                        Some(cur.as_fd()),
                        Path::new(name),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )
                    .map_err(io_err("opening the directory"))?;
                    sys::fsetxattr(d.as_fd(), OsStr::new(sys::opaque_xattr()), b"y")
                        .map_err(io_err("setting trusted.overlay.opaque"))?;
                    cur = self
                        .lookup_dir(&prefix)
                        .map_err(|e| self.lookup_error(&prefix, e))?;
                }
                Err(e) => return Err(self.lookup_error(&prefix, e)),
            }
        }
        Ok(cur)
    }

    /// Turns a failed lookup of `rel` into the error that says why.
    fn lookup_error(&self, rel: &Path, e: io::Error) -> EntryError {
        match errno(&e) {
            libc::EXDEV | libc::ELOOP | libc::ENOENT => match self.find_symlink(rel) {
                Some(s) => EntryError::ThroughSymlink(s),
                None if errno(&e) == libc::ENOENT => io_err("looking up the parent")(e),
                None => EntryError::ThroughSymlink(format!("{} ({e})", rel.display())),
            },
            libc::ENOTDIR => EntryError::ParentNotDirectory,
            _ => io_err("looking up the parent")(e),
        }
    }

    /// The first symlink on `rel` whose target leaves the root (or does
    /// not resolve), as "path -> target", for error messages.
    fn find_symlink(&self, rel: &Path) -> Option<String> {
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            let dir = self.lookup_dir(&prefix).ok()?;
            let name = c.as_os_str();
            prefix.push(name);
            if let Ok(target) = sys::readlinkat(dir.as_fd(), Path::new(name))
                && self.lookup_dir(&prefix).is_err()
            {
                return Some(format!("{} -> {}", prefix.display(), target.display()));
            }
        }
        None
    }

    /// Runs `make` to create `name` in `dir`; whatever was there (from an
    /// earlier entry) is removed first, never written through.
    fn create(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        make: impl Fn(BorrowedFd<'_>, &OsStr) -> io::Result<()>,
    ) -> EResult<()> {
        match make(dir, name) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == libc::EEXIST => {
                self.remove(dir, name)?;
                make(dir, name).map_err(io_err("creating"))
            }
            Err(e) => Err(io_err("creating")(e)),
        }
    }

    /// Removes `name` from `dir` (a directory with everything in it).
    fn remove(&mut self, dir: BorrowedFd<'_>, name: &OsStr) -> EResult<()> {
        // Anything cached may be under what goes away.
        self.cache = None;
        remove_at(dir, name).map_err(io_err("replacing an earlier entry"))
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
    ) -> EResult<()> {
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
        let open = |d: BorrowedFd<'_>| sys::openat(Some(d), Path::new(name), flags, 0o600);
        let fd = match open(dir) {
            Ok(fd) => fd,
            Err(e) if errno(&e) == libc::EEXIST => {
                self.remove(dir, name)?;
                open(dir).map_err(io_err("creating"))?
            }
            Err(e) => return Err(io_err("creating")(e)),
        };
        let mut file = std::fs::File::from(fd);
        let want = entry.size();
        let mut got = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(EntryError::Truncated(e.to_string())),
            };
            file.write_all(&self.buf[..n]).map_err(io_err("writing"))?;
            got += n as u64;
        }
        if got != want {
            return Err(EntryError::Truncated(format!(
                "{got} of {want} bytes of content"
            )));
        }
        let fd = file.as_fd();
        if self.opts.preserve_ownership {
            self.chown(sys::fchown(fd, meta.uid, meta.gid), meta)?;
        }
        sys::fchmod(fd, meta.mode).map_err(io_err("chmod"))?;
        for (k, v) in &meta.xattrs {
            if skip_xattr(k) {
                continue;
            }
            if let Err(e) = sys::fsetxattr(fd, k, v) {
                self.xattr_error(k, e)?;
            }
        }
        sys::utimensat(fd, OsStr::new(""), meta.atime, meta.mtime).map_err(io_err("utimes"))
    }

    fn dir(&mut self, pdir: BorrowedFd<'_>, rel: &Path, name: &OsStr, meta: &Meta) -> EResult<()> {
        let mut opaque = false;
        match sys::mkdirat(pdir, Path::new(name), 0o700) {
            Ok(()) => {}
            Err(e) if errno(&e) == libc::EEXIST => {
                let st = sys::lstatat(pdir, name).map_err(io_err("stat"))?;
                if sys::file_type(&st) != libc::S_IFDIR {
                    self.remove(pdir, name)?;
                    sys::mkdirat(pdir, Path::new(name), 0o700).map_err(io_err("mkdir"))?;
                    // A directory where this layer's whiteout was: what the
                    // lower layers have under the name stays hidden.
                    if is_overlay_whiteout(&st) && self.opts.whiteouts == WhiteoutFormat::Overlay {
                        opaque = true;
                    }
                }
            }
            Err(e) => return Err(io_err("mkdir")(e)),
        }
        let fd = sys::openat(
            Some(pdir),
            Path::new(name),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(io_err("opening the directory"))?;
        if self.opts.preserve_ownership {
            self.chown(sys::fchown(fd.as_fd(), meta.uid, meta.gid), meta)?;
        }
        for (k, v) in &meta.xattrs {
            if skip_xattr(k) {
                continue;
            }
            if let Err(e) = sys::fsetxattr(fd.as_fd(), k, v) {
                self.xattr_error(k, e)?;
            }
        }
        if opaque {
            sys::fsetxattr(fd.as_fd(), OsStr::new(sys::opaque_xattr()), b"y")
                .map_err(io_err("setting trusted.overlay.opaque"))?;
        }
        let st = sys::fstat(fd.as_fd()).map_err(io_err("stat"))?;
        // The path as it resolves (through in-root symlinks): the final
        // pass looks it up again and checks it is still this directory.
        self.dirs.insert(
            rel.to_path_buf(),
            DirMeta {
                dev: st.st_dev,
                ino: st.st_ino,
                mode: meta.mode,
                atime: meta.atime,
                mtime: meta.mtime,
            },
        );
        Ok(())
    }

    /// Owner, mode (not for symlinks), xattrs and times of a node that was
    /// just created as `name` in `dir`.
    fn finish_node(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        chmod: bool,
    ) -> EResult<()> {
        if self.opts.preserve_ownership {
            self.chown(
                sys::fchownat(dir, Path::new(name), meta.uid, meta.gid),
                meta,
            )?;
        }
        if chmod {
            let fd = sys::openat(
                Some(dir),
                Path::new(name),
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
            )
            .map_err(io_err("opening"))?;
            let st = sys::fstat(fd.as_fd()).map_err(io_err("stat"))?;
            if sys::file_type(&st) != libc::S_IFLNK {
                sys::chmod_opath(fd.as_fd(), meta.mode).map_err(io_err("chmod"))?;
            }
        }
        for (k, v) in &meta.xattrs {
            if skip_xattr(k) {
                continue;
            }
            if let Err(e) = sys::lsetxattr_at(dir, name, k, v) {
                self.xattr_error(k, e)?;
            }
        }
        sys::utimensat(dir, name, meta.atime, meta.mtime).map_err(io_err("utimes"))
    }

    fn xattr_error(&mut self, _key: &OsStr, e: io::Error) -> EResult<()> {
        // Like docker: a filesystem that can't hold an xattr (or a
        // namespace we may not write) is not a reason to fail the layer.
        if matches!(errno(&e), libc::EPERM | libc::ENOTSUP | libc::EACCES) {
            self.xattrs_skipped += 1;
            Ok(())
        } else {
            Err(io_err("setting an xattr")(e))
        }
    }

    fn hardlink(&mut self, dir: BorrowedFd<'_>, name: &OsStr, target_raw: &[u8]) -> EResult<()> {
        let target_str = String::from_utf8_lossy(target_raw).into_owned();
        let bad = |reason: String| EntryError::Hardlink {
            target: target_str.clone(),
            reason,
        };
        let target = match clean_entry_path(target_raw) {
            Ok(t) => t,
            Err(e) => return Err(bad(e.to_string())),
        };
        let (tparent, tname) = match (target.parent(), target.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), n.to_os_string()),
            _ => return Err(bad("the root can't be linked".into())),
        };
        let tdir = match self.lookup_dir(&tparent) {
            Ok(fd) => fd,
            Err(e) if errno(&e) == libc::ENOENT && self.find_symlink(&tparent).is_none() => {
                return Err(bad("not found in this layer".into()));
            }
            Err(e) => return Err(bad(self.lookup_error(&tparent, e).to_string())),
        };
        let tst = match sys::lstatat(tdir.as_fd(), &tname) {
            Ok(st) => st,
            Err(e) if errno(&e) == libc::ENOENT => {
                return Err(bad("not found in this layer".into()));
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        match sys::file_type(&tst) {
            libc::S_IFDIR => return Err(bad("is a directory".into())),
            libc::S_IFLNK => {
                // Linking the symlink itself is harmless, but one that
                // points out of the snapshot is refused outright.
                if let Err(e) = sys::openat2(self.root.as_fd(), &target, libc::O_PATH, 0, RESOLVE)
                    && matches!(errno(&e), libc::EXDEV | libc::ELOOP)
                {
                    let to = sys::readlinkat(tdir.as_fd(), Path::new(&tname))
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    return Err(bad(format!(
                        "is a symlink to {to:?}, which leads outside the snapshot"
                    )));
                }
            }
            _ => {}
        }
        match sys::lstatat(dir, name) {
            Ok(st) if st.st_dev == tst.st_dev && st.st_ino == tst.st_ino => return Ok(()),
            Ok(_) => self.remove(dir, name)?,
            Err(_) => {}
        }
        sys::linkat(tdir.as_fd(), &tname, dir, name).map_err(io_err("link"))
    }

    fn whiteout(&mut self, dir: BorrowedFd<'_>, name: &[u8]) -> EResult<()> {
        if name == WHITEOUT_OPAQUE {
            let fd = sys::openat(
                Some(dir),
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            )
            .map_err(io_err("opening the directory"))?;
            return sys::fsetxattr(fd.as_fd(), OsStr::new(sys::opaque_xattr()), b"y")
                .map_err(io_err("setting trusted.overlay.opaque"));
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            // Other aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
            return Ok(());
        }
        let target = &name[WHITEOUT_PREFIX.len()..];
        if target.is_empty() || target == b"." || target == b".." {
            return Err(EntryError::InvalidWhiteout(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        let target = OsStr::from_bytes(target);
        // A whiteout hides what lower layers have. What this layer itself
        // put under the name stays: a file already hides the lower one, a
        // directory is made opaque.
        match sys::lstatat(dir, target) {
            Ok(st) if sys::file_type(&st) == libc::S_IFDIR => {
                let fd = sys::openat(
                    Some(dir),
                    Path::new(target),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(io_err("opening the directory"))?;
                sys::fsetxattr(fd.as_fd(), OsStr::new(sys::opaque_xattr()), b"y")
                    .map_err(io_err("setting trusted.overlay.opaque"))
            }
            Ok(_) => Ok(()),
            Err(_) => sys::mknodat(dir, Path::new(target), libc::S_IFCHR, 0).map_err(|e| {
                EntryError::Io {
                    what: if errno(&e) == libc::EPERM {
                        "creating an overlay whiteout (needs CAP_MKNOD; use the OCI whiteout format)"
                    } else {
                        "creating an overlay whiteout"
                    },
                    err: e,
                }
            }),
        }
    }

    /// Modes and times of the layer's directories, now that nothing more
    /// is created in them. Each is looked up again and must still be the
    /// same directory (a later entry may have replaced it).
    fn finish_dirs(&mut self) -> std::result::Result<(), (String, EntryError)> {
        for (rel, d) in &self.dirs {
            let fd = match sys::openat2(
                self.root.as_fd(),
                rel,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
                RESOLVE,
            ) {
                Ok(fd) => fd,
                Err(_) => continue,
            };
            let fail = |what| move |err| (rel.display().to_string(), EntryError::Io { what, err });
            let st = sys::fstat(fd.as_fd()).map_err(fail("stat"))?;
            if st.st_dev != d.dev || st.st_ino != d.ino {
                continue;
            }
            sys::fchmod(fd.as_fd(), d.mode).map_err(fail("chmod"))?;
            sys::utimensat(fd.as_fd(), OsStr::new(""), d.atime, d.mtime).map_err(fail("utimes"))?;
        }
        Ok(())
    }
}

/// An overlayfs whiteout: a 0:0 character device.
pub(crate) fn is_overlay_whiteout(st: &libc::stat) -> bool {
    sys::file_type(st) == libc::S_IFCHR && st.st_rdev == 0
}

/// overlayfs' own attributes are never taken from an image: they would
/// redirect lookups or fake whiteouts in the merged view.
fn skip_xattr(k: &OsStr) -> bool {
    k.as_bytes().starts_with(b"trusted.overlay.") || k.as_bytes().starts_with(b"user.overlay.")
}

/// A numeric header field; a blank one (all NULs or spaces) is 0, as Go's
/// archive/tar (docker's) reads it.
fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        r => r,
    }
}

/// PAX time: seconds with an optional fraction.
fn pax_time(v: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let sec: i64 = sec.parse().ok()?;
    let mut nsec = 0i64;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        nsec += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
    }
    // "-1.5" is 1.5 s before the epoch.
    if (sec < 0 || s.starts_with('-')) && nsec > 0 {
        return Some(Time {
            sec: sec - 1,
            nsec: 1_000_000_000 - nsec,
        });
    }
    Some(Time { sec, nsec })
}

/// Removes `name` in `dir` without following it: a directory with
/// everything in it (std's `remove_dir_all` walks by fd, never following
/// symlinks), anything else unlinked.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match sys::lstatat(dir, name) {
        Ok(st) => st,
        Err(e) if errno(&e) == libc::ENOENT => return Ok(()),
        Err(e) => return Err(e),
    };
    if sys::file_type(&st) == libc::S_IFDIR {
        crate::fsutil::remove_tree(&sys::at_path(dir, name))
    } else {
        sys::unlinkat(dir, name, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        let ok = |s: &str| clean_entry_path(s.as_bytes()).unwrap();
        assert_eq!(ok("a/b"), PathBuf::from("a/b"));
        assert_eq!(ok("./a//b/"), PathBuf::from("a/b"));
        assert_eq!(ok("./"), PathBuf::new());
        assert_eq!(ok("/"), PathBuf::new());
        assert_eq!(ok("/./"), PathBuf::new());
        assert!(matches!(
            clean_entry_path(b"/etc/x"),
            Err(EntryError::AbsolutePath)
        ));
        assert!(matches!(
            clean_entry_path(b"../x"),
            Err(EntryError::ParentDir)
        ));
        assert!(matches!(
            clean_entry_path(b"a/../../x"),
            Err(EntryError::ParentDir)
        ));
        assert!(matches!(
            clean_entry_path(b"a/../b"),
            Err(EntryError::ParentDir)
        ));
        assert!(matches!(clean_entry_path(b""), Err(EntryError::EmptyName)));
    }

    #[test]
    fn compression_magic() {
        assert_eq!(
            Compression::detect(&[0x1f, 0x8b, 8]).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/").unwrap(), Compression::None);
        assert!(Compression::detect(b"BZh91AY").is_err());
        assert!(Compression::detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]).is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(pax_time(b"12"), Some(Time { sec: 12, nsec: 0 }));
        assert_eq!(
            pax_time(b"12.5"),
            Some(Time {
                sec: 12,
                nsec: 500_000_000
            })
        );
        assert_eq!(
            pax_time(b"1.123456789123"),
            Some(Time {
                sec: 1,
                nsec: 123_456_789
            })
        );
        assert_eq!(
            pax_time(b"-1.5"),
            Some(Time {
                sec: -2,
                nsec: 500_000_000
            })
        );
        assert_eq!(pax_time(b"x"), None);
    }
}
