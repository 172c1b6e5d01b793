//! The content-addressed blob store.
//!
//! ```text
//! <root>/blobs/sha256/<hex>     one file per blob, named by its digest
//! <root>/blobs/sha512/<hex>
//! <root>/ingest/<unique>        blobs being written (locked by their writer)
//! <root>/sources/sha256/<hex>/<repository, '/' as %2F>
//!                               where a blob is known to be in a registry
//! ```
//!
//! A blob is streamed into a temp file under `ingest/` (same filesystem),
//! hashed on the way, fsynced, checked against the digest it should have and
//! only then renamed into `blobs/`: a file under `blobs/` is always whole and
//! always has the content its name says. Two writers of the same blob each
//! write their own temp file; the renames are atomic and the content is the
//! same, so either wins. A writer holds an flock on its temp file, so the
//! clean-up of temp files left by a crash (in `open` and `gc`) never removes
//! one that is still being written.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Context, Error, Result};
use crate::sys;

const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// Repositories remembered per blob, most recently used first, at most this many.
const SOURCES_KEPT: usize = 16;

/// A blob that was written (or already there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// What `gc` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub removed: Vec<Digest>,
    pub bytes_freed: u64,
    /// Temp files of interrupted writes that were removed.
    pub stale_ingests: usize,
}

/// The content store under a root directory.
#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp file name unique to this process and call.
pub(crate) fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{}-{n}-{nanos:08x}", std::process::id())
}

/// A temp file removed when dropped unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A blob being written; see [`ContentStore::writer`].
pub struct BlobWriter {
    store: ContentStore,
    tmp: TempFile,
    hasher: Hasher,
    written: u64,
    expected: Option<Digest>,
    size: Option<u64>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn name(&self) -> String {
        self.expected
            .as_ref()
            .map_or_else(|| "content".to_string(), Digest::to_string)
    }

    /// Appends `data`; more bytes than the announced size is an error.
    pub fn append(&mut self, data: &[u8]) -> Result<()> {
        if let Some(s) = self.size
            && self.written + data.len() as u64 > s
        {
            return Err(Error::SizeMismatch {
                digest: self.name(),
                expected: s,
                actual: self.written + data.len() as u64,
            });
        }
        self.hasher.update(data);
        self.tmp.file.write_all(data).at(&self.tmp.path)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Checks size and digest, then makes the blob visible under its
    /// digest (fsynced first).
    pub fn commit(mut self) -> Result<BlobInfo> {
        let actual = std::mem::replace(&mut self.hasher, Hasher::new(Algorithm::Sha256)).finish();
        if let Some(s) = self.size
            && s != self.written
        {
            return Err(Error::SizeMismatch {
                digest: self.name(),
                expected: s,
                actual: self.written,
            });
        }
        if let Some(e) = &self.expected
            && *e != actual
        {
            return Err(Error::DigestMismatch {
                expected: e.clone(),
                actual,
            });
        }
        self.tmp.file.sync_all().at(&self.tmp.path)?;
        let dest = self.store.blob_path(&actual);
        fs::rename(&self.tmp.path, &dest).at(&dest)?;
        self.tmp.keep = true;
        self.store.sync_dir(actual.algorithm())?;
        Ok(BlobInfo {
            digest: actual,
            size: self.written,
        })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ContentStore {
    /// Opens (creating if needed) the store under `root`; temp files left
    /// by writers that died are removed.
    pub fn open(root: impl AsRef<Path>) -> Result<ContentStore> {
        let root = root.as_ref().to_path_buf();
        let store = ContentStore { root };
        for a in ALGORITHMS {
            let d = store.algorithm_dir(a);
            fs::create_dir_all(&d).at(&d)?;
        }
        let ingest = store.ingest_dir();
        fs::create_dir_all(&ingest).at(&ingest)?;
        store.clean_ingest()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn algorithm_dir(&self, a: Algorithm) -> PathBuf {
        self.root.join("blobs").join(a.name())
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.algorithm_dir(digest.algorithm()).join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        fs::symlink_metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file())
    }

    /// The blob's size; `BlobNotFound` when it is not there.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        match fs::symlink_metadata(self.blob_path(digest)) {
            Ok(m) if m.is_file() => Ok(m.len()),
            Ok(_) => Err(Error::BlobNotFound(digest.clone())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(e).at(self.blob_path(digest)),
        }
    }

    /// Opens the blob for reading; `BlobNotFound` when it is not there.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.blob_path(digest);
        match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
        {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(e).at(p),
        }
    }

    /// Reads a whole blob, refusing one larger than `limit` bytes (for
    /// manifests and configs, which are small).
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let f = self.open_blob(digest)?;
        let mut v = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut v)
            .at(self.blob_path(digest))?;
        if v.len() as u64 > limit {
            return Err(Error::InvalidDocument {
                what: format!("blob {digest}"),
                reason: format!("larger than {limit} bytes"),
            });
        }
        Ok(v)
    }

    /// Streams `reader` into the store. With `expected`, the content must
    /// have that digest (hashed with its algorithm) and an existing blob of
    /// that digest is kept without reading `reader` at all; without it, the
    /// content is hashed with sha256. Returns the digest and size.
    pub fn write_blob(&self, reader: impl Read, expected: Option<&Digest>) -> Result<BlobInfo> {
        self.write_blob_sized(reader, expected, None)
    }

    /// `write_blob` that also checks the size, reading at most one byte
    /// more than `size` (a source that sends too much is cut off).
    pub fn write_blob_sized(
        &self,
        reader: impl Read,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<BlobInfo> {
        if let Some(d) = expected
            && let Ok(have) = self.blob_size(d)
        {
            return match size {
                Some(s) if s != have => Err(Error::SizeMismatch {
                    digest: d.to_string(),
                    expected: s,
                    actual: have,
                }),
                _ => Ok(BlobInfo {
                    digest: d.clone(),
                    size: have,
                }),
            };
        }
        let mut writer = self.writer(expected, size)?;
        let mut reader = reader.take(size.map_or(u64::MAX, |s| s.saturating_add(1)));
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Sys {
                        what: format!(
                            "reading blob {}",
                            expected.map_or("content".to_string(), Digest::to_string)
                        ),
                        err: e,
                    });
                }
            };
            writer.append(&buf[..n])?;
        }
        writer.commit()
    }

    /// A writer of one new blob: bytes written to it are hashed and go to a
    /// locked temp file under `ingest/`; [`BlobWriter::commit`] checks the
    /// digest (`expected`, hashed with its algorithm, else sha256) and the
    /// size, and only then renames the file into `blobs/`. Dropped without
    /// a commit, the temp file is removed.
    pub fn writer(&self, expected: Option<&Digest>, size: Option<u64>) -> Result<BlobWriter> {
        let algorithm = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        Ok(BlobWriter {
            store: self.clone(),
            tmp: self.temp_file()?,
            hasher: Hasher::new(algorithm),
            written: 0,
            expected: expected.cloned(),
            size,
        })
    }

    /// `write_blob` from a byte slice.
    pub fn write_blob_bytes(&self, data: &[u8], expected: Option<&Digest>) -> Result<BlobInfo> {
        self.write_blob_sized(data, expected, Some(data.len() as u64))
    }

    fn temp_file(&self) -> Result<TempFile> {
        let dir = self.ingest_dir();
        loop {
            let path = dir.join(unique_name("blob-"));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
            {
                Ok(file) => {
                    // Held until the file is closed: marks it as live.
                    sys::flock_exclusive(file.as_fd(), true).at(&path)?;
                    // A clean-up that ran between create and lock may have
                    // removed the name: then start again.
                    let ours = file.metadata().at(&path)?;
                    match fs::symlink_metadata(&path) {
                        Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => {}
                        _ => continue,
                    }
                    return Ok(TempFile {
                        path,
                        file,
                        keep: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).at(path),
            }
        }
    }

    fn sync_dir(&self, a: Algorithm) -> Result<()> {
        let d = self.algorithm_dir(a);
        let f = File::open(&d).at(&d)?;
        f.sync_all().at(&d)
    }

    /// Removes the blob (and the repositories it was known in); false
    /// when it was not there.
    pub fn delete_blob(&self, digest: &Digest) -> Result<bool> {
        let p = self.blob_path(digest);
        let r = match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).at(p),
        }?;
        self.forget_sources(digest)?;
        Ok(r)
    }

    fn sources_dir(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("sources")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// Remembers that the registry repository `repository` (`host/path`,
    /// as `127.0.0.1:5000/team/app`) has the blob `digest`: it was pulled
    /// from there or pushed there. A later push to another repository of
    /// that registry mounts the blob from it instead of uploading it.
    ///
    /// One empty file per repository, made with `O_CREAT`: concurrent
    /// writers and a crash at any point leave either the entry or nothing,
    /// never a torn one. Its mtime is the last use (the newest are tried
    /// first); the oldest beyond [`SOURCES_KEPT`] are dropped.
    pub fn add_source(&self, digest: &Digest, repository: &str) -> Result<()> {
        let name = encode_source(repository);
        if name.is_empty() || name.len() > 255 || name.starts_with('.') {
            // Not a name a file can carry: simply not remembered.
            return Ok(());
        }
        let dir = self.sources_dir(digest);
        fs::create_dir_all(&dir).at(&dir)?;
        let p = dir.join(&name);
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .at(&p)?;
        f.set_modified(std::time::SystemTime::now()).at(&p)?;
        let known = self.sources(digest)?;
        for old in known.iter().skip(SOURCES_KEPT) {
            let _ = fs::remove_file(dir.join(encode_source(old)));
        }
        Ok(())
    }

    /// The repositories known to have blob `digest` (see
    /// [`add_source`](Self::add_source)), the most recently used first.
    pub fn sources(&self, digest: &Digest) -> Result<Vec<String>> {
        let dir = self.sources_dir(digest);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).at(dir),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.at(&dir)?;
            let Some(repo) = e.file_name().to_str().and_then(decode_source) else {
                continue;
            };
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_file() {
                out.push((meta.modified().ok(), repo));
            }
        }
        out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    fn forget_sources(&self, digest: &Digest) -> Result<()> {
        let dir = self.sources_dir(digest);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at(dir),
        }
    }

    /// Source entries of blobs no longer here (a crash between a blob's
    /// removal and its entries').
    fn clean_sources(&self) -> Result<()> {
        for a in ALGORITHMS {
            let dir = self.root.join("sources").join(a.name());
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let Some(d) = e.file_name().to_str().and_then(|n| Digest::new(a, n).ok()) else {
                    continue;
                };
                if !self.has_blob(&d) {
                    self.forget_sources(&d)?;
                }
            }
        }
        Ok(())
    }

    /// Every blob in the store.
    pub fn list_blobs(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for a in ALGORITHMS {
            let d = self.algorithm_dir(a);
            for e in fs::read_dir(&d).at(&d)? {
                let e = e.at(&d)?;
                // Anything that is not a well-formed blob name is not ours.
                if let Some(name) = e.file_name().to_str()
                    && let Ok(digest) = Digest::new(a, name)
                {
                    out.push(digest);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes a blob and checks it still has its digest.
    pub fn verify_blob(&self, digest: &Digest) -> Result<()> {
        let mut f = self.open_blob(digest)?;
        let mut h = Hasher::new(digest.algorithm());
        io::copy(&mut f, &mut h).at(self.blob_path(digest))?;
        let actual = h.finish();
        if actual != *digest {
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Removes every blob not in `referenced`, and temp files of writes
    /// that died. The caller holds whatever lock keeps new references from
    /// appearing meanwhile (a blob written but not yet referenced would be
    /// collected).
    pub fn gc(&self, referenced: &HashSet<Digest>) -> Result<GcReport> {
        let mut report = GcReport::default();
        for d in self.list_blobs()? {
            if referenced.contains(&d) {
                continue;
            }
            let size = self.blob_size(&d).unwrap_or(0);
            if self.delete_blob(&d)? {
                report.bytes_freed += size;
                report.removed.push(d);
            }
        }
        report.stale_ingests = self.clean_ingest()?;
        self.clean_sources()?;
        Ok(report)
    }

    /// Removes temp files whose writer is gone (no flock held on them).
    fn clean_ingest(&self) -> Result<usize> {
        let dir = self.ingest_dir();
        let mut n = 0;
        for e in fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let p = e.path();
            let Ok(f) = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&p)
            else {
                continue;
            };
            if sys::flock_exclusive(f.as_fd(), false).is_ok() {
                match fs::remove_file(&p) {
                    Ok(()) => n += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).at(p),
                }
            }
        }
        Ok(n)
    }
}

/// A repository name as a file name: `%` and `/` escaped.
fn encode_source(repository: &str) -> String {
    repository.replace('%', "%25").replace('/', "%2F")
}

fn decode_source(name: &str) -> Option<String> {
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    let out = name.replace("%2F", "/").replace("%25", "%");
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_delete() {
        let t = tempfile::tempdir().unwrap();
        let s = ContentStore::open(t.path()).unwrap();
        let info = s.write_blob(&b"hello"[..], None).unwrap();
        assert_eq!(info.digest, Digest::sha256(b"hello"));
        assert_eq!(info.size, 5);
        assert!(s.has_blob(&info.digest));
        assert_eq!(s.blob_size(&info.digest).unwrap(), 5);
        assert_eq!(s.read_blob(&info.digest, 100).unwrap(), b"hello");
        assert!(s.read_blob(&info.digest, 4).is_err());
        assert!(
            s.blob_path(&info.digest)
                .ends_with(format!("blobs/sha256/{}", info.digest.hex()))
        );
        s.verify_blob(&info.digest).unwrap();
        assert_eq!(s.list_blobs().unwrap(), vec![info.digest.clone()]);
        assert!(s.delete_blob(&info.digest).unwrap());
        assert!(!s.delete_blob(&info.digest).unwrap());
        assert!(matches!(
            s.open_blob(&info.digest),
            Err(Error::BlobNotFound(_))
        ));
    }

    #[test]
    fn sha512_blobs() {
        let t = tempfile::tempdir().unwrap();
        let s = ContentStore::open(t.path()).unwrap();
        let d = Digest::of(Algorithm::Sha512, b"abc");
        let info = s.write_blob(&b"abc"[..], Some(&d)).unwrap();
        assert_eq!(info.digest, d);
        assert!(t.path().join("blobs/sha512").join(d.hex()).is_file());
    }

    #[test]
    fn mismatch_names_both_digests_and_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let s = ContentStore::open(t.path()).unwrap();
        let want = Digest::sha256(b"good");
        let e = s.write_blob(&b"evil"[..], Some(&want)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&want.to_string()), "{msg}");
        assert!(msg.contains(&Digest::sha256(b"evil").to_string()), "{msg}");
        assert!(!s.has_blob(&want));
        assert!(!s.has_blob(&Digest::sha256(b"evil")));
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
        // Size checks cut off a source that sends too much.
        let e = s
            .write_blob_sized(&b"good and more"[..], Some(&want), Some(4))
            .unwrap_err();
        assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn existing_blob_is_not_reread() {
        let t = tempfile::tempdir().unwrap();
        let s = ContentStore::open(t.path()).unwrap();
        let info = s.write_blob(&b"x"[..], None).unwrap();
        struct Fail;
        impl Read for Fail {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("must not be read"))
            }
        }
        assert_eq!(s.write_blob(Fail, Some(&info.digest)).unwrap(), info);
        let e = s.write_blob(Fail, None).unwrap_err();
        assert!(e.to_string().contains("must not be read"));
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn stale_ingest_removed_live_kept() {
        let t = tempfile::tempdir().unwrap();
        let s = ContentStore::open(t.path()).unwrap();
        fs::write(t.path().join("ingest/blob-dead"), b"partial").unwrap();
        let live = s.temp_file().unwrap();
        let r = s.gc(&HashSet::new()).unwrap();
        assert_eq!(r.stale_ingests, 1);
        assert!(live.path.exists());
        drop(live);
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn gc_keeps_referenced() {
        let t = tempfile::tempdir().unwrap();
        let s = ContentStore::open(t.path()).unwrap();
        let a = s.write_blob_bytes(b"a", None).unwrap().digest;
        let b = s.write_blob_bytes(b"bb", None).unwrap().digest;
        let keep: HashSet<_> = [a.clone()].into();
        let r = s.gc(&keep).unwrap();
        assert_eq!(r.removed, vec![b.clone()]);
        assert_eq!(r.bytes_freed, 2);
        assert!(s.has_blob(&a));
        assert!(!s.has_blob(&b));
        // Stray files in the blob dirs are not blobs and are left alone.
        fs::write(t.path().join("blobs/sha256/README"), b"x").unwrap();
        s.gc(&HashSet::new()).unwrap();
        assert!(t.path().join("blobs/sha256/README").exists());
    }

    #[test]
    fn sources_are_remembered_newest_first_and_go_with_the_blob() {
        let t = tempfile::tempdir().unwrap();
        let s = ContentStore::open(t.path()).unwrap();
        let a = s.write_blob_bytes(b"a", None).unwrap().digest;
        assert!(s.sources(&a).unwrap().is_empty());
        s.add_source(&a, "reg:5000/team/one").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.add_source(&a, "reg:5000/two").unwrap();
        assert_eq!(
            s.sources(&a).unwrap(),
            vec!["reg:5000/two".to_string(), "reg:5000/team/one".to_string()]
        );
        // Used again: first.
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.add_source(&a, "reg:5000/team/one").unwrap();
        assert_eq!(s.sources(&a).unwrap()[0], "reg:5000/team/one");
        // A stray file is not a source.
        fs::write(s.sources_dir(&a).join(".tmp"), b"").unwrap();
        assert_eq!(s.sources(&a).unwrap().len(), 2);
        // At most SOURCES_KEPT.
        for i in 0..SOURCES_KEPT + 3 {
            s.add_source(&a, &format!("reg/r{i}")).unwrap();
        }
        assert_eq!(s.sources(&a).unwrap().len(), SOURCES_KEPT);
        s.gc(&HashSet::new()).unwrap();
        assert!(!s.has_blob(&a));
        assert!(!t.path().join("sources/sha256").join(a.hex()).exists());
        // Entries whose blob vanished (a crash between the two) go at the next gc.
        let b = s.write_blob_bytes(b"b", None).unwrap().digest;
        s.add_source(&b, "reg/x").unwrap();
        fs::remove_file(s.blob_path(&b)).unwrap();
        s.gc(&HashSet::new()).unwrap();
        assert!(s.sources(&b).unwrap().is_empty());
    }

    #[test]
    fn concurrent_writers_of_one_blob() {
        let t = tempfile::tempdir().unwrap();
        let s = ContentStore::open(t.path()).unwrap();
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let want = Digest::sha256(&data);
        std::thread::scope(|sc| {
            for _ in 0..4 {
                let (s, data) = (&s, &data);
                sc.spawn(move || {
                    // No expected digest: each writes its own copy.
                    for _ in 0..3 {
                        let info = s.write_blob(&data[..], None).unwrap();
                        assert_eq!(info.size, data.len() as u64);
                        // A reader never sees a partial blob.
                        let got = fs::read(s.blob_path(&info.digest)).unwrap();
                        assert_eq!(got.len(), data.len());
                    }
                });
            }
        });
        s.verify_blob(&want).unwrap();
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
    }
}
