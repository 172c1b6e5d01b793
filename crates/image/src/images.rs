//! Image records: which images the store holds, their tags and digests, and
//! the garbage collection of blobs and snapshots no image references.
//!
//! ```text
//! <root>/images.json   the records (replaced whole: temp file, fsync, rename)
//! <root>/images.lock   flock'ed by every command that changes the store
//! <root>/content/      ContentStore
//! <root>/snapshots/    Snapshotter
//! ```
//!
//! Every change happens under the lock in one [`ImageStore::transaction`]:
//! blobs and snapshots are written first, the records last (one atomic
//! rename), so a crash at any point leaves the previous records, whose blobs
//! and snapshots are all there; what the interrupted command wrote is
//! unreferenced and the next GC removes it. GC runs under the same lock, so
//! it never sees a blob a running load has written but not yet recorded.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::image::{CONFIG_LIMIT, MANIFEST_LIMIT, unpack};
use crate::layer::ApplyOptions;
use crate::manifest::{Document, ImageConfig, Platform, parse_document};
use crate::reference::Reference;
use crate::snapshot::Snapshotter;
use crate::store::{ContentStore, GcReport, unique_name};
use crate::sys;

/// The engine's state root when neither `--root` nor `BERTH_ROOT` says.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";

const RECORDS: &str = "images.json";
const LOCK: &str = "images.lock";
const VERSION: u32 = 1;

const INGEST_LOCK: &str = "ingest.lock";

/// See [`ImageStore::lease`].
#[derive(Debug)]
pub struct Lease(#[allow(dead_code)] File);

/// One image the store holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config blob's digest: the image id.
    pub id: Digest,
    /// What the image was added as: a manifest, or an index / manifest list.
    pub target: Digest,
    pub target_media_type: String,
    /// The platform manifest (`target` itself unless it is an index).
    pub manifest: Digest,
    /// Full references (`docker.io/library/busybox:latest`).
    pub repo_tags: Vec<String>,
    /// `name@digest` references (set when an image comes from a registry
    /// or an archive that names its digest).
    pub repo_digests: Vec<String>,
    /// The config's `created`, RFC 3339, as the image says.
    pub created: Option<String>,
    /// Bytes of the unpacked layers.
    pub size: u64,
    /// Every blob the image needs: target, manifests, config, layers.
    pub blobs: Vec<Digest>,
    /// The layer snapshots, bottom first.
    pub chain_ids: Vec<Digest>,
    /// When the record was written (seconds since the epoch).
    pub added: u64,
}

impl ImageRecord {
    pub fn is_dangling(&self) -> bool {
        self.repo_tags.is_empty()
    }

    /// The tags as docker shows them (`busybox:latest`).
    pub fn familiar_tags(&self) -> Vec<String> {
        self.repo_tags
            .iter()
            .map(|t| {
                Reference::parse(t)
                    .map(|r| r.familiar())
                    .unwrap_or_else(|_| t.clone())
            })
            .collect()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Records {
    version: u32,
    /// By image id.
    images: BTreeMap<String, ImageRecord>,
}

/// What `remove` and `prune` did, in docker's words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveReport {
    /// Tags removed (full references).
    pub untagged: Vec<String>,
    /// Image ids removed.
    pub deleted: Vec<Digest>,
    pub gc: GcReport,
    /// Snapshots removed by the GC.
    pub snapshots_removed: Vec<Digest>,
}

/// The image store under a root.
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
    snapshots: Snapshotter,
}

/// The records while a transaction holds the lock.
pub struct Txn<'a> {
    store: &'a ImageStore,
    records: Records,
    dirty: bool,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<ImageStore> {
        let root = root.as_ref().to_path_buf();
        // Only root (the engine) reads the store: 0700 when it is created.
        std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
            .create(&root)
            .at(&root)?;
        let content = ContentStore::open(root.join("content"))?;
        let snapshots = Snapshotter::open(root.join("snapshots"))?;
        let store = ImageStore {
            root,
            content,
            snapshots,
        };
        // Fail early on a damaged record file.
        store.read_records()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn snapshots(&self) -> &Snapshotter {
        &self.snapshots
    }

    fn records_path(&self) -> PathBuf {
        self.root.join(RECORDS)
    }

    fn read_records(&self) -> Result<Records> {
        let p = self.records_path();
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Records {
                    version: VERSION,
                    images: BTreeMap::new(),
                });
            }
            Err(e) => return Err(e).at(p),
        };
        let r: Records = serde_json::from_slice(&data).map_err(|e| Error::ImageStore {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        if r.version != VERSION {
            return Err(Error::ImageStore {
                path: p,
                reason: format!("record version {} (this berth reads {VERSION})", r.version),
            });
        }
        Ok(r)
    }

    fn write_records(&self, r: &Records) -> Result<()> {
        let tmp = self
            .root
            .join(format!(".{RECORDS}.{}", unique_name("tmp-")));
        let data = serde_json::to_vec_pretty(r).map_err(|e| Error::ImageStore {
            path: self.records_path(),
            reason: e.to_string(),
        })?;
        let res = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .at(&tmp)?;
            f.write_all(&data).at(&tmp)?;
            f.sync_all().at(&tmp)?;
            fs::rename(&tmp, self.records_path()).at(self.records_path())?;
            let d = sys::open_dir(&self.root).at(&self.root)?;
            sys::fsync(d.as_fd()).at(&self.root)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// A lease on content being written outside a transaction (a pull, a
    /// push's compression, a commit): while any lease is held, GC removes
    /// records but no blob or snapshot, so what is written but not yet
    /// recorded is not collected under the writer. Held until dropped.
    pub fn lease(&self) -> Result<Lease> {
        let f = self.open_ingest_lock()?;
        let p = self.root.join(INGEST_LOCK);
        sys::flock_shared(f.as_fd()).at(&p)?;
        Ok(Lease(f))
    }

    fn open_ingest_lock(&self) -> Result<File> {
        let p = self.root.join(INGEST_LOCK);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .at(&p)
    }

    fn lock(&self) -> Result<File> {
        let p = self.root.join(LOCK);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .at(&p)?;
        sys::flock_exclusive(f.as_fd(), true).at(&p)?;
        Ok(f)
    }

    /// Runs `f` with the store locked against other `berth` commands; the
    /// records it changed are written (atomically) when it returns Ok, and
    /// left as they were when it fails.
    pub fn transaction<T>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        // Temp record files of a command that died.
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!(".{RECORDS}."))
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let mut txn = Txn {
            store: self,
            records: self.read_records()?,
            dirty: false,
        };
        let out = f(&mut txn)?;
        if txn.dirty {
            self.write_records(&txn.records)?;
        }
        Ok(out)
    }

    /// Bytes of content no image references: blobs and snapshots left by a killed `pull`,
    /// `load` or `commit` (collected by `image prune` and the next removal), so `system df`
    /// can count them as reclaimable.
    pub fn unreferenced_size(&self) -> Result<u64> {
        let records = self.read_records()?;
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        for r in records.images.values() {
            blobs.extend(r.blobs.iter().cloned());
            chains.extend(r.chain_ids.iter().cloned());
        }
        let mut total = 0;
        for b in self.content.list_blobs()? {
            if !blobs.contains(&b) {
                total += self.content.blob_size(&b).unwrap_or(0);
            }
        }
        for c in self.snapshots.list()? {
            if !chains.contains(&c) {
                total += self.snapshots.info(&c).map(|i| i.size).unwrap_or(0);
            }
        }
        Ok(total)
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let mut v: Vec<_> = self.read_records()?.images.into_values().collect();
        sort_newest_first(&mut v);
        Ok(v)
    }

    /// Finds an image by full id, id prefix (hex, with or without
    /// `sha256:`), tag, or `name@digest`.
    pub fn get(&self, name: &str) -> Result<ImageRecord> {
        find(&self.read_records()?, name).cloned()
    }

    /// Reads and parses an image's config.
    pub fn config(&self, image: &ImageRecord) -> Result<ImageConfig> {
        ImageConfig::parse(&self.content.read_blob(&image.id, CONFIG_LIMIT)?)
    }

    /// Adds the image whose manifest or index `target` is in the content
    /// store: unpacks its layers (each checked against its diff_id) and
    /// records it with `tags` (moved from any image that had them).
    pub fn add(
        &self,
        target: &Digest,
        platform: &Platform,
        tags: &[Reference],
        opts: &ApplyOptions,
    ) -> Result<ImageRecord> {
        self.transaction(|t| t.add(target, platform, tags, opts))
    }

    /// Points `tag` at the image `name`.
    pub fn tag(&self, name: &str, tag: &Reference) -> Result<ImageRecord> {
        self.transaction(|t| {
            let id = find(&t.records, name)?.id.clone();
            t.set_tag(&id, tag)?;
            Ok(t.records.images[&id.to_string()].clone())
        })
    }

    /// Removes a tag; the image stays (possibly dangling). Returns the id
    /// it pointed at.
    pub fn untag(&self, tag: &Reference) -> Result<Digest> {
        self.transaction(|t| t.untag(tag))
    }

    /// `docker rmi`: a tag of an image with other tags is only untagged;
    /// otherwise the image is deleted and its blobs and snapshots collected.
    /// An image in use (`in_use(id)`) is refused unless `force`, and then
    /// only loses its tags (the container keeps it). An image with several
    /// tags named by id is refused unless `force`.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<RemoveReport> {
        self.transaction(|t| {
            let mut report = t.remove(name, force, in_use)?;
            if !report.deleted.is_empty() {
                t.gc_into(&mut report)?;
            }
            Ok(report)
        })
    }

    /// Removes dangling images no container uses (with `all`, every image
    /// no container uses, tagged or not), then collects.
    pub fn prune(&self, all: bool, in_use: &dyn Fn(&Digest) -> bool) -> Result<RemoveReport> {
        self.transaction(|t| {
            let mut report = RemoveReport::default();
            let ids: Vec<String> = t
                .records
                .images
                .values()
                .filter(|r| (all || r.is_dangling()) && !in_use(&r.id))
                .map(|r| r.id.to_string())
                .collect();
            for id in ids {
                if let Some(r) = t.records.images.remove(&id) {
                    report.untagged.extend(r.repo_tags);
                    report.deleted.push(r.id);
                    t.dirty = true;
                }
            }
            t.gc_into(&mut report)?;
            Ok(report)
        })
    }

    /// Removes the blobs and snapshots no image references.
    pub fn gc(&self) -> Result<RemoveReport> {
        self.transaction(|t| {
            let mut report = RemoveReport::default();
            t.gc_into(&mut report)?;
            Ok(report)
        })
    }
}

impl Txn<'_> {
    pub fn store(&self) -> &ImageStore {
        self.store
    }

    pub fn get(&self, name: &str) -> Result<&ImageRecord> {
        find(&self.records, name)
    }

    pub fn images(&self) -> impl Iterator<Item = &ImageRecord> {
        self.records.images.values()
    }

    /// See [`ImageStore::add`].
    pub fn add(
        &mut self,
        target: &Digest,
        platform: &Platform,
        tags: &[Reference],
        opts: &ApplyOptions,
    ) -> Result<ImageRecord> {
        let store = self.store;
        let content = &store.content;
        let bytes = content.read_blob(target, MANIFEST_LIMIT)?;
        let doc = parse_document(&bytes, None)?;
        let target_media_type = match &doc {
            Document::Manifest(m) => m.media_type.clone(),
            Document::Index(i) => i.media_type.clone(),
        };
        let img = unpack(content, &store.snapshots, target, platform, opts)?;
        let mut blobs = vec![target.clone()];
        // The manifests between the index and the platform's manifest.
        let mut cur = doc;
        let mut depth = 0;
        while let Document::Index(idx) = cur {
            let d = crate::manifest::select_platform(&idx, target, platform)?
                .digest
                .clone();
            blobs.push(d.clone());
            depth += 1;
            if depth > 4 {
                break;
            }
            cur = parse_document(&content.read_blob(&d, MANIFEST_LIMIT)?, None)?;
        }
        blobs.push(img.manifest.config.digest.clone());
        blobs.extend(
            img.manifest
                .layers
                .iter()
                .map(|l| l.descriptor.digest.clone()),
        );
        blobs.sort();
        blobs.dedup();
        let mut size = 0;
        for c in &img.chain_ids {
            size += store.snapshots.info(c)?.size;
        }
        let id = img.config.digest.clone();
        let key = id.to_string();
        let prev = self.records.images.remove(&key);
        let mut record = ImageRecord {
            id: id.clone(),
            target: target.clone(),
            target_media_type,
            manifest: img.manifest_digest.clone(),
            repo_tags: prev
                .as_ref()
                .map(|p| p.repo_tags.clone())
                .unwrap_or_default(),
            repo_digests: prev
                .as_ref()
                .map(|p| p.repo_digests.clone())
                .unwrap_or_default(),
            created: img.config.config.created().clone(),
            size,
            blobs,
            chain_ids: img.chain_ids.clone(),
            added: now(),
        };
        // A re-added image (the same config under another manifest, e.g.
        // recompressed layers) takes the new manifest and keeps the blobs of
        // its earlier form too, so nothing either lists is collected.
        if let Some(p) = prev {
            record.blobs.extend(p.blobs);
            record.blobs.sort();
            record.blobs.dedup();
        }
        self.records.images.insert(key.clone(), record);
        self.dirty = true;
        for t in tags {
            self.set_tag(&id, t)?;
        }
        Ok(self.records.images[&key].clone())
    }

    /// Points `tag` (a reference with a tag and no digest) at image `id`.
    pub fn set_tag(&mut self, id: &Digest, tag: &Reference) -> Result<()> {
        if tag.digest().is_some() || tag.tag().is_none() {
            return Err(Error::InvalidReference {
                reference: tag.to_string(),
                reason: "a tag must be name:tag, without a digest".into(),
            });
        }
        let key = id.to_string();
        if !self.records.images.contains_key(&key) {
            return Err(Error::ImageNotFound(key));
        }
        let s = tag.to_string();
        for r in self.records.images.values_mut() {
            r.repo_tags.retain(|t| *t != s);
        }
        let r = self.records.images.get_mut(&key).expect("checked above");
        r.repo_tags.push(s);
        r.repo_tags.sort();
        self.dirty = true;
        Ok(())
    }

    /// Adds a `name@digest` to image `id`.
    pub fn add_repo_digest(&mut self, id: &Digest, reference: &Reference) -> Result<()> {
        let Some(d) = reference.digest() else {
            return Err(Error::InvalidReference {
                reference: reference.to_string(),
                reason: "a repo digest must be name@digest".into(),
            });
        };
        let s = format!("{}@{d}", reference.name());
        let r = self
            .records
            .images
            .get_mut(&id.to_string())
            .ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
        if !r.repo_digests.contains(&s) {
            r.repo_digests.push(s);
            r.repo_digests.sort();
            self.dirty = true;
        }
        Ok(())
    }

    pub fn untag(&mut self, tag: &Reference) -> Result<Digest> {
        let s = tag.to_string();
        for r in self.records.images.values_mut() {
            if let Some(i) = r.repo_tags.iter().position(|t| *t == s) {
                r.repo_tags.remove(i);
                self.dirty = true;
                return Ok(r.id.clone());
            }
        }
        Err(Error::ImageNotFound(tag.familiar()))
    }

    /// See [`ImageStore::remove`] (without the GC).
    pub fn remove(
        &mut self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<RemoveReport> {
        let rec = find(&self.records, name)?.clone();
        let mut report = RemoveReport::default();
        let by_tag = tag_of(name).filter(|t| rec.repo_tags.contains(t));
        if let Some(t) = &by_tag
            && rec.repo_tags.len() > 1
        {
            self.untag(&Reference::parse(t)?)?;
            report.untagged.push(t.clone());
            return Ok(report);
        }
        if by_tag.is_none() && rec.repo_tags.len() > 1 && !force {
            return Err(Error::ImageConflict {
                name: name.to_string(),
                reason: format!(
                    "image {} is referenced in multiple repositories ({}); remove it by tag or force",
                    rec.id.short(),
                    rec.familiar_tags().join(", ")
                ),
            });
        }
        if in_use(&rec.id) {
            if !force {
                return Err(Error::ImageConflict {
                    name: name.to_string(),
                    reason: format!("image {} is being used by a container", rec.id.short()),
                });
            }
            let r = self
                .records
                .images
                .get_mut(&rec.id.to_string())
                .expect("found");
            report.untagged = std::mem::take(&mut r.repo_tags);
            self.dirty = true;
            return Ok(report);
        }
        let r = self
            .records
            .images
            .remove(&rec.id.to_string())
            .expect("found");
        self.dirty = true;
        report.untagged = r.repo_tags;
        report.deleted.push(r.id);
        Ok(report)
    }

    /// Removes the blobs in `written` that no image references (what a
    /// load or import wrote besides its images). With `rollback`, the
    /// changes of this transaction are dropped first and snapshots no
    /// image references go too: nothing of a failed command stays.
    pub fn discard_unreferenced(&mut self, written: &[Digest], rollback: bool) -> Result<()> {
        if rollback {
            self.records = self.store.read_records()?;
            self.dirty = false;
        }
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        for r in self.records.images.values() {
            blobs.extend(r.blobs.iter().cloned());
            chains.extend(r.chain_ids.iter().cloned());
        }
        for d in written {
            if !blobs.contains(d) {
                self.store.content.delete_blob(d)?;
            }
        }
        if rollback {
            for c in self.store.snapshots.list()? {
                if !chains.contains(&c) {
                    self.store.snapshots.remove(&c)?;
                }
            }
        }
        Ok(())
    }

    /// Drops image records by id (`system check --repair`), leaving their content to
    /// [`collect`](Self::collect).
    pub fn forget(&mut self, ids: &[String]) {
        for id in ids {
            if self.records.images.remove(id).is_some() {
                self.dirty = true;
            }
        }
    }

    /// Collects the blobs and snapshots no image references (as `image prune` does).
    pub fn collect(&mut self) -> Result<RemoveReport> {
        let mut report = RemoveReport::default();
        self.gc_into(&mut report)?;
        Ok(report)
    }

    fn gc_into(&mut self, report: &mut RemoveReport) -> Result<()> {
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        for r in self.records.images.values() {
            blobs.extend(r.blobs.iter().cloned());
            chains.extend(r.chain_ids.iter().cloned());
        }
        // Records first: a crash after this leaves garbage, never a record
        // naming something collected.
        if self.dirty {
            self.store.write_records(&self.records)?;
            self.dirty = false;
        }
        // Content being written under a lease (a pull, a push, a commit)
        // is not recorded yet: collect nothing while one is held.
        let ingest = self.store.open_ingest_lock()?;
        if sys::flock_exclusive(ingest.as_fd(), false).is_err() {
            return Ok(());
        }
        report.gc = self.store.content.gc(&blobs)?;
        for c in self.store.snapshots.list()? {
            if !chains.contains(&c) && self.store.snapshots.remove(&c)? {
                report.snapshots_removed.push(c);
            }
        }
        Ok(())
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sort_newest_first(v: &mut [ImageRecord]) {
    v.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then(b.added.cmp(&a.added))
            .then(a.id.cmp(&b.id))
    });
}

/// `name` as a full tag reference, when it parses as one.
fn tag_of(name: &str) -> Option<String> {
    let r = Reference::parse(name).ok()?;
    (r.digest().is_none()).then(|| r.to_string())
}

fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn find<'a>(records: &'a Records, name: &str) -> Result<&'a ImageRecord> {
    let not_found = || Error::ImageNotFound(name.to_string());
    if name.is_empty() {
        return Err(not_found());
    }
    // A full id.
    if let Ok(d) = name.parse::<Digest>() {
        if let Some(r) = records.images.get(&d.to_string()) {
            return Ok(r);
        }
        // Or the manifest / index digest.
        if let Some(r) = records
            .images
            .values()
            .find(|r| r.target == d || r.manifest == d)
        {
            return Ok(r);
        }
        return Err(not_found());
    }
    // A tag (docker looks names up before short ids).
    if let Ok(r) = Reference::parse(name) {
        if let Some(d) = r.digest() {
            let full = format!("{}@{d}", r.name());
            return records
                .images
                .values()
                .find(|i| i.repo_digests.contains(&full) || i.target == *d || i.manifest == *d)
                .ok_or_else(not_found);
        }
        let s = r.to_string();
        if let Some(i) = records.images.values().find(|i| i.repo_tags.contains(&s)) {
            return Ok(i);
        }
    }
    // An id prefix.
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if is_hex(hex) {
        let mut hits = records
            .images
            .values()
            .filter(|i| i.id.hex().starts_with(hex));
        if let Some(first) = hits.next() {
            if hits.next().is_some() {
                return Err(Error::ImageConflict {
                    name: name.to_string(),
                    reason: "the id prefix matches several images".into(),
                });
            }
            return Ok(first);
        }
    }
    Err(not_found())
}
