//! Layers made from directories: a container's changes (its overlay upper
//! directory, overlay's whiteouts turned into the OCI ones) become a new
//! layer for `commit`, and a whole tree becomes a tarball for `export`.
//!
//! The walk never follows a symlink and never resolves a path string it
//! did not make: every directory is opened from its parent's descriptor
//! with `O_NOFOLLOW`, every entry is stat'ed with `AT_SYMLINK_NOFOLLOW`, and
//! files are read from descriptors opened the same way. A running container
//! that swaps a directory for a symlink to the host's `/` while we walk
//! gets its symlink archived, not the host's files.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::archive::{apply_change, config_json, rfc3339_now};
use crate::digest::{Algorithm, Hasher};
use crate::error::{Context, Error, Result};
use crate::image::MANIFEST_LIMIT;
use crate::images::{ImageRecord, ImageStore};
use crate::layer::{ApplyOptions, decompress};
use crate::manifest::{Document, Platform, media_types as mt, parse_document};
use crate::reference::Reference;
use crate::sys;

/// What the walk writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeKind {
    /// A whole tree, as it is (`export`).
    Full,
    /// An overlay upper directory: a 0:0 character device is a whiteout
    /// (`.wh.NAME`), an opaque directory (`trusted.overlay.opaque` or
    /// `user.overlay.opaque` = `y`) gets `.wh..wh..opq`; overlay's own
    /// xattrs are left out.
    OverlayUpper,
}

/// Writes the tree under `dir` (not its root entry) as a tar to `out`.
/// Returns the number of entries.
pub fn write_tree(dir: &Path, kind: TreeKind, out: impl Write) -> Result<u64> {
    let root = sys::open_dir(dir).at(dir)?;
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    let mut w = Walker::new(kind, dir);
    w.dir(&mut b, root.as_fd(), Path::new(""))?;
    b.finish().map_err(|e| w.err(Path::new(""), e))?;
    Ok(w.entries)
}

pub(crate) struct Walker {
    kind: TreeKind,
    /// (dev, ino) of files with several links → the first path written.
    links: HashMap<(u64, u64), PathBuf>,
    entries: u64,
    top: PathBuf,
}

fn is_overlay_xattr(k: &OsStr) -> bool {
    let k = k.as_bytes();
    k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay.")
}

impl Walker {
    pub(crate) fn new(kind: TreeKind, top: &Path) -> Walker {
        Walker {
            kind,
            links: HashMap::new(),
            entries: 0,
            top: top.to_path_buf(),
        }
    }

    fn err(&self, rel: &Path, e: io::Error) -> Error {
        Error::Io {
            path: self.top.join(rel),
            err: e,
        }
    }

    pub(crate) fn dir<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        dir: BorrowedFd<'_>,
        rel: &Path,
    ) -> Result<()> {
        let listing = sys::at_path(dir, OsStr::new(""));
        let mut names: Vec<OsString> = std::fs::read_dir(&listing)
            .map_err(|e| self.err(rel, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| self.err(rel, e))?;
        names.sort();
        for name in names {
            self.entry(b, dir, &name, &rel.join(&name))?;
        }
        Ok(())
    }

    fn xattrs(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
    ) -> Result<Vec<(OsString, Vec<u8>)>> {
        let mut out = Vec::new();
        for k in sys::llistxattr_at(dir, name).map_err(|e| self.err(rel, e))? {
            if self.kind == TreeKind::OverlayUpper && is_overlay_xattr(&k) {
                continue;
            }
            // Only the namespaces docker carries (security.capability,
            // user.*, trusted.* other than overlay's).
            if let Some(v) = sys::lgetxattr_at(dir, name, &k).map_err(|e| self.err(rel, e))? {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    fn opaque(&self, dir: BorrowedFd<'_>, name: &OsStr, rel: &Path) -> Result<bool> {
        for k in ["trusted.overlay.opaque", "user.overlay.opaque"] {
            if sys::lgetxattr_at(dir, name, OsStr::new(k))
                .map_err(|e| self.err(rel, e))?
                .is_some_and(|v| v == b"y")
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) fn entry<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
    ) -> Result<()> {
        let st = match sys::lstatat(dir, name) {
            Ok(st) => st,
            // Gone since the listing (a running container): skip it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.err(rel, e)),
        };
        let ft = sys::file_type(&st);
        if self.kind == TreeKind::OverlayUpper && ft == libc::S_IFCHR && st.st_rdev == 0 {
            let wh = rel
                .parent()
                .unwrap_or(Path::new(""))
                .join(format!(".wh.{}", name.to_string_lossy()));
            // Mode 0600, as docker's overlay diff writes whiteouts.
            let mut h = header(&st, tar::EntryType::Regular);
            h.set_mode(0o600);
            h.set_size(0);
            return self.append(b, h, &wh, io::empty(), &[]);
        }
        let xattrs = match self.xattrs(dir, name, rel) {
            Ok(x) => x,
            // Gone since the stat (a running container): skip it.
            Err(Error::Io { err, .. }) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        match ft {
            libc::S_IFDIR => {
                let fd: OwnedFd = match sys::openat(
                    Some(dir),
                    Path::new(name),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                ) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(self.err(rel, e)),
                };
                let mut h = header(&st, tar::EntryType::Directory);
                h.set_size(0);
                self.append(b, h, rel, io::empty(), &xattrs)?;
                if self.kind == TreeKind::OverlayUpper && self.opaque(dir, name, rel)? {
                    // The directory's permissions and owner, as docker's overlay diff.
                    let mut h = header(&st, tar::EntryType::Regular);
                    h.set_mode(st.st_mode & 0o777);
                    h.set_size(0);
                    self.append(b, h, &rel.join(".wh..wh..opq"), io::empty(), &[])?;
                }
                self.dir(b, fd.as_fd(), rel)
            }
            libc::S_IFREG => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1
                    && let Some(first) = self.links.get(&key).cloned()
                {
                    let mut h = header(&st, tar::EntryType::Link);
                    h.set_size(0);
                    self.entries += 1;
                    return b
                        .append_link(&mut h, rel, &first)
                        .map_err(|e| self.err(rel, e));
                }
                let fd = match sys::openat(
                    Some(dir),
                    Path::new(name),
                    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                    0,
                ) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(self.err(rel, e)),
                };
                // The size of what was opened (not of what was stat'ed).
                let fst = sys::fstat(fd.as_fd()).map_err(|e| self.err(rel, e))?;
                if sys::file_type(&fst) != libc::S_IFREG {
                    return Ok(());
                }
                let mut h = header(&fst, tar::EntryType::Regular);
                h.set_size(fst.st_size as u64);
                let reader = Exactly {
                    inner: std::fs::File::from(fd),
                    left: fst.st_size as u64,
                };
                self.append(b, h, rel, reader, &xattrs)?;
                // Only an entry that was written can be linked to.
                if st.st_nlink > 1 {
                    self.links.insert(key, rel.to_path_buf());
                }
                Ok(())
            }
            libc::S_IFLNK => {
                let target = match sys::readlinkat(dir, Path::new(name)) {
                    Ok(t) => t,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(self.err(rel, e)),
                };
                let mut h = header(&st, tar::EntryType::Symlink);
                h.set_size(0);
                self.pax(b, &xattrs, rel)?;
                self.entries += 1;
                append_symlink(b, &mut h, rel, &target).map_err(|e| self.err(rel, e))
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                let t = match ft {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = header(&st, t);
                h.set_size(0);
                let (maj, min) = if ft == libc::S_IFIFO {
                    (0, 0)
                } else {
                    (libc::major(st.st_rdev), libc::minor(st.st_rdev))
                };
                h.set_device_major(maj).map_err(|e| self.err(rel, e))?;
                h.set_device_minor(min).map_err(|e| self.err(rel, e))?;
                self.append(b, h, rel, io::empty(), &xattrs)
            }
            // Sockets are not archived (docker leaves them out too).
            _ => Ok(()),
        }
    }

    fn pax<W: Write>(
        &self,
        b: &mut tar::Builder<W>,
        xattrs: &[(OsString, Vec<u8>)],
        rel: &Path,
    ) -> Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = xattrs
            .iter()
            .map(|(k, _)| format!("SCHILY.xattr.{}", k.to_string_lossy()))
            .collect();
        b.append_pax_extensions(
            keys.iter()
                .zip(xattrs)
                .map(|(k, (_, v))| (k.as_str(), v.as_slice())),
        )
        .map_err(|e| self.err(rel, e))
    }

    fn append<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        mut h: tar::Header,
        rel: &Path,
        data: impl Read,
        xattrs: &[(OsString, Vec<u8>)],
    ) -> Result<()> {
        self.pax(b, xattrs, rel)?;
        self.entries += 1;
        b.append_data(&mut h, rel, data)
            .map_err(|e| self.err(rel, e))
    }
}

/// A header with `st`'s mode, owner and mtime.
fn header(st: &libc::stat, t: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(t);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(st.st_mtime.max(0) as u64);
    h
}

/// Exactly `left` bytes of a file that may shrink while read (a running
/// container): zeros make up the difference, so the archive stays whole.
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Appends a symlink entry `path` → `target` with its target as written: the tar crate's
/// own setter cleans it (`/` becomes `//`), so targets that fit the header go in literally
/// (longer ones need its GNU long-link record).
pub fn append_symlink<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    path: impl AsRef<Path>,
    target: impl AsRef<Path>,
) -> io::Result<()> {
    let t = target.as_ref().as_os_str().as_bytes();
    if t.len() <= 100 {
        h.set_link_name_literal(t)?;
        b.append_data(h, path, io::empty())
    } else {
        b.append_link(h, path, target)
    }
}

/// Options of [`commit`].
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// The image config's `config` (Cmd, Env, …): the container's, as
    /// docker commit takes it; None keeps the base image's.
    pub container_config: Option<serde_json::Map<String, Value>>,
    /// Dockerfile instructions applied on top (`--change`).
    pub changes: Vec<String>,
    pub author: Option<String>,
    /// The history entry's comment (`--message`).
    pub message: Option<String>,
    /// The history entry's `created_by` (docker: the container's command).
    pub created_by: Option<String>,
    pub platform: Option<Platform>,
    pub apply: ApplyOptions,
}

/// Docker layer media types in their OCI spelling (a committed image is an
/// OCI image on top of the base's layers).
fn oci_layer_type(m: &str) -> &str {
    match m {
        mt::DOCKER_LAYER => mt::OCI_LAYER,
        mt::DOCKER_LAYER_GZIP => mt::OCI_LAYER_GZIP,
        mt::DOCKER_LAYER_ZSTD => mt::OCI_LAYER_ZSTD,
        mt::DOCKER_FOREIGN_LAYER_GZIP => mt::OCI_LAYER_ND_GZIP,
        other => other,
    }
}

/// Hashes the tar (diff_id) while gzip-compressing it into the store.
struct LayerWriter {
    diff: Hasher,
    gz: flate2::write::GzEncoder<crate::store::BlobWriter>,
}

impl Write for LayerWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.gz.write(buf)?;
        self.diff.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.gz.flush()
    }
}

/// A layer written into the store by [`create_layer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLayer {
    /// The compressed blob (gzip).
    pub digest: crate::digest::Digest,
    pub size: u64,
    /// The uncompressed tar's digest.
    pub diff_id: crate::digest::Digest,
    /// The snapshot of the layer on top of `parent`.
    pub chain_id: crate::digest::Digest,
}

impl NewLayer {
    pub const MEDIA_TYPE: &'static str = mt::OCI_LAYER_GZIP;
}

/// Writes the tree `dir` (`kind`: an overlay upper directory, whose
/// whiteouts become OCI ones, or a whole tree) as a gzip layer blob into
/// the store and applies it as the snapshot on top of `parent` (a chain
/// id). The caller holds a lease ([`ImageStore::lease`]) until the blob
/// is referenced by a record; a failure leaves no snapshot (the blob may
/// stay until the next GC).
pub fn create_layer(
    images: &ImageStore,
    dir: &Path,
    kind: TreeKind,
    parent: Option<&crate::digest::Digest>,
    apply: &ApplyOptions,
) -> Result<NewLayer> {
    let content = images.content();
    let blob = content.writer(None, None)?;
    let mut lw = LayerWriter {
        diff: Hasher::new(Algorithm::Sha256),
        gz: flate2::write::GzEncoder::new(blob, flate2::Compression::default()),
    };
    write_tree(dir, kind, &mut lw)?;
    let diff_id = lw.diff.finish();
    let blob = lw
        .gz
        .finish()
        .map_err(|e| Error::Sys {
            what: format!("compressing the layer of {}", dir.display()),
            err: e,
        })?
        .commit()?;
    let chain_id = crate::snapshot::chain_id(parent, &diff_id);
    if !images.snapshots().exists(&chain_id) {
        let (_, rd) = decompress(content.open_blob(&blob.digest)?)?;
        images.snapshots().apply(parent, rd, &diff_id, apply)?;
    }
    Ok(NewLayer {
        digest: blob.digest,
        size: blob.size,
        diff_id,
        chain_id,
    })
}

/// Makes an image of `base` (None: from scratch) plus the changes in the
/// overlay upper directory `upper`: the changes become a gzip layer (and
/// its snapshot), the config is the base's with the new diff_id, a history
/// entry and the options applied. Tagged `reference` when given. Nothing of
/// a failed commit stays in the store.
pub fn commit(
    images: &ImageStore,
    base: Option<&ImageRecord>,
    upper: &Path,
    reference: Option<&Reference>,
    opts: &CommitOptions,
) -> Result<ImageRecord> {
    // The changes first: a bad one writes nothing.
    let mut base_config = match base {
        Some(b) => config_json(images, b)?,
        None => {
            let p = opts.platform.clone().unwrap_or_else(Platform::host);
            json!({"architecture": p.architecture, "os": p.os, "rootfs": {"type": "layers", "diff_ids": []}})
        }
    };
    let mut cfg = match (&opts.container_config, base_config.get("config")) {
        (Some(c), _) => c.clone(),
        (None, Some(Value::Object(c))) => c.clone(),
        _ => serde_json::Map::new(),
    };
    for c in &opts.changes {
        apply_change(&mut cfg, c)?;
    }
    let content = images.content();
    let mut written = Vec::new();
    let _lease = images.lease()?;
    let result = (|| -> Result<ImageRecord> {
        let parent = base.and_then(|b| b.chain_ids.last());
        let layer = create_layer(images, upper, TreeKind::OverlayUpper, parent, &opts.apply)?;
        written.push(layer.digest.clone());
        let blob = crate::store::BlobInfo {
            digest: layer.digest.clone(),
            size: layer.size,
        };
        let diff_id = layer.diff_id;

        let now = rfc3339_now();
        base_config["created"] = json!(now);
        base_config["config"] = Value::Object(cfg.clone());
        if let Some(a) = &opts.author {
            base_config["author"] = json!(a);
        }
        match base_config["rootfs"]["diff_ids"].as_array_mut() {
            Some(ids) => ids.push(json!(diff_id.to_string())),
            None => {
                base_config["rootfs"] = json!({"type": "layers", "diff_ids": [diff_id.to_string()]})
            }
        }
        let mut h = json!({"created": now});
        if let Some(c) = &opts.created_by {
            h["created_by"] = json!(c);
        }
        if let Some(a) = &opts.author {
            h["author"] = json!(a);
        }
        if let Some(m) = &opts.message {
            h["comment"] = json!(m);
        }
        match base_config["history"].as_array_mut() {
            Some(hs) => hs.push(h),
            None => base_config["history"] = json!([h]),
        }
        let cb = serde_json::to_vec(&base_config).map_err(|e| Error::InvalidDocument {
            what: "the committed config".into(),
            reason: e.to_string(),
        })?;
        let config = content.write_blob_bytes(&cb, None)?;
        written.push(config.digest.clone());

        let mut layers = Vec::new();
        if let Some(b) = base {
            let bytes = content.read_blob(&b.manifest, MANIFEST_LIMIT)?;
            let Document::Manifest(m) = parse_document(&bytes, None)? else {
                return Err(Error::InvalidDocument {
                    what: format!("image {}", b.id),
                    reason: "its manifest is an index".into(),
                });
            };
            for l in &m.layers {
                let d = &l.descriptor;
                layers.push(json!({"mediaType": oci_layer_type(&d.media_type),
                    "digest": d.digest.to_string(), "size": d.size}));
            }
        }
        layers.push(json!({"mediaType": mt::OCI_LAYER_GZIP, "digest": blob.digest.to_string(), "size": blob.size}));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_MANIFEST,
            "config": {"mediaType": mt::OCI_CONFIG, "digest": config.digest.to_string(), "size": config.size},
            "layers": layers,
        });
        let mb = serde_json::to_vec(&manifest).map_err(|e| Error::InvalidDocument {
            what: "the committed manifest".into(),
            reason: e.to_string(),
        })?;
        let md = content.write_blob_bytes(&mb, None)?;
        written.push(md.digest.clone());
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let tags: Vec<Reference> = reference.into_iter().cloned().collect();
        images.transaction(|t| t.add(&md.digest, &platform, &tags, &opts.apply))
    })();
    if result.is_err() {
        // Blobs only this commit wrote go; the records are untouched.
        let _ = images.transaction(|t| t.discard_unreferenced(&written, false));
    }
    result
}
