//! The build cache: what a layer-producing step (`RUN`, `COPY`, `ADD`) made, by cache key.
//!
//! A key is a sha256 chained through the stage (see `exec`): the base image id (or the key of
//! the stage it starts from), then every instruction after substitution, the state a `RUN`
//! sees (environment, user, working directory, shell, network, build args) and, for
//! `COPY`/`ADD`, a digest of the files they read (names, contents, modes, owners, link targets;
//! never mtimes). Equal keys mean equal inputs, so the step's layer can be reused.
//!
//! ```text
//! <root>/builder/cache/<key hex>    {"digest", "size", "diff_id", "created"} or {"empty": true, …}
//! ```
//!
//! An entry is written (temp file, then rename) only after its layer blob and snapshot are in
//! the store, so a build killed at any point leaves either no entry or a whole one. An entry
//! whose blob the image GC removed since reads as a miss.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_image::{Digest, ImageStore};
use serde::{Deserialize, Serialize};

/// What a cached step made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The step changed nothing: no layer (`empty_layer` in the history).
    #[serde(default)]
    pub empty: bool,
    /// The layer blob (gzip) and its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
    /// When the step ran (the history entry's `created`).
    pub created: String,
}

/// The cache directory of a store.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(root: &Path) -> Cache {
        Cache {
            dir: root.join("builder").join("cache"),
        }
    }

    fn path(&self, key: &Digest) -> PathBuf {
        self.dir.join(key.hex())
    }

    /// The entry of `key` when it is whole and its layer blob is still in the store.
    pub fn get(&self, store: &ImageStore, key: &Digest) -> Option<Entry> {
        let data = fs::read(self.path(key)).ok()?;
        let e: Entry = serde_json::from_slice(&data).ok()?;
        if e.empty {
            return Some(e);
        }
        let (Some(d), Some(_)) = (&e.digest, &e.diff_id) else {
            return None;
        };
        store.content().has_blob(d).then_some(e)
    }

    /// Records `entry` under `key` (atomically). Errors are the caller's to ignore: a cache
    /// that cannot be written only makes the next build slower.
    pub fn put(&self, key: &Digest, entry: &Entry) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let data = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", key.hex(), std::process::id()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, self.path(key)).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    /// Removes every entry (and temp files of writers that died); the number removed.
    pub fn clear(&self) -> std::io::Result<usize> {
        let mut n = 0;
        match fs::read_dir(&self.dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    if fs::remove_file(e.path()).is_ok() {
                        n += 1;
                    }
                }
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// What [`prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The cache keys removed.
    pub keys: Vec<String>,
    /// Cache mount directories removed (`--all`).
    pub mounts: usize,
    /// Bytes freed: the blobs and snapshots only the cache held, and the cache mounts.
    pub reclaimed: u64,
}

/// `builder prune`: the cache entries (older than `older_than`, when given), with `all` the
/// `RUN --mount=type=cache` directories too; then the store's GC takes the layers no image
/// uses any more.
pub fn prune(
    store: &ImageStore,
    all: bool,
    older_than: Option<std::time::Duration>,
) -> Result<PruneReport, berth_image::Error> {
    let root = store.root().join("builder");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| berth_image::Error::Io { path, err }
    };
    let mut report = PruneReport::default();
    let now = std::time::SystemTime::now();
    let dir = root.join("cache");
    match fs::read_dir(&dir) {
        Ok(rd) => {
            for e in rd.flatten() {
                let old_enough = match older_than {
                    None => true,
                    Some(age) => e
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|m| now.duration_since(m).ok())
                        .is_some_and(|d| d >= age),
                };
                if old_enough {
                    fs::remove_file(e.path()).map_err(io(&e.path()))?;
                    report
                        .keys
                        .push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&dir)(e)),
    }
    if all && older_than.is_none() {
        let mounts = root.join("mounts");
        if let Ok(rd) = fs::read_dir(&mounts) {
            for e in rd.flatten() {
                report.reclaimed += dir_bytes(&e.path());
                fs::remove_dir_all(e.path()).map_err(io(&e.path()))?;
                report.mounts += 1;
            }
        }
    }
    let gc = store.gc()?;
    report.reclaimed += gc.gc.bytes_freed;
    Ok(report)
}

/// One record of the build cache, as `system df` lists it (docker's `BuildCache` items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The cache key (hex) of a step, or the id of a cache mount.
    pub id: String,
    /// `regular` (a step's layer) or `exec.cachemount` (a `RUN --mount=type=cache` directory).
    pub kind: &'static str,
    pub description: String,
    /// Bytes: the layer blob, or the mount directory's files.
    pub size: u64,
    /// RFC 3339.
    pub created: String,
    /// When the record was last written or used, RFC 3339.
    pub last_used: String,
    /// The layer belongs to an image too (counted there, not here, as docker does).
    pub shared: bool,
}

/// Every record of the build cache of `store`: the steps whose layer is still stored, and the
/// cache mounts. `image_blobs`: the blobs images use (a step's layer in one is `shared`).
pub fn records(store: &ImageStore, image_blobs: &std::collections::HashSet<Digest>) -> Vec<Record> {
    let root = store.root().join("builder");
    let cache = Cache::new(store.root());
    let mtime = |p: &Path| -> u64 {
        fs::symlink_metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    };
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(&cache.dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(key) = format!("sha256:{name}").parse::<Digest>() else {
                continue; // a writer's temp file
            };
            let Some(entry) = cache.get(store, &key) else {
                continue;
            };
            let shared = entry
                .digest
                .as_ref()
                .is_some_and(|d| image_blobs.contains(d));
            out.push(Record {
                id: name,
                kind: "regular",
                description: entry
                    .digest
                    .as_ref()
                    .map_or_else(|| "empty step".to_string(), |d| format!("layer {d}")),
                size: entry.size,
                created: entry.created.clone(),
                last_used: rfc3339(mtime(&e.path())),
                shared,
            });
        }
    }
    if let Ok(rd) = fs::read_dir(root.join("mounts")) {
        for e in rd.flatten() {
            let t = mtime(&e.path());
            out.push(Record {
                id: e.file_name().to_string_lossy().into_owned(),
                kind: "exec.cachemount",
                description: "cache mount".into(),
                size: dir_bytes(&e.path()),
                created: rfc3339(t),
                last_used: rfc3339(t),
                shared: false,
            });
        }
    }
    out.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.id.cmp(&b.id)));
    out
}

/// Seconds since the epoch as RFC 3339 UTC.
fn rfc3339(secs: u64) -> String {
    let secs = secs as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = berth_image::archive::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn dir_bytes(p: &Path) -> u64 {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| dir_bytes(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) if m.is_file() => m.len(),
        _ => 0,
    }
}

/// A running sha256 over length-prefixed fields (no field can run into the next).
pub struct KeyHasher(berth_image::digest::Hasher);

impl KeyHasher {
    pub fn new(kind: &str) -> KeyHasher {
        let mut h = KeyHasher(berth_image::digest::Hasher::new(
            berth_image::Algorithm::Sha256,
        ));
        h.field(kind.as_bytes());
        h
    }

    pub fn field(&mut self, data: &[u8]) -> &mut Self {
        self.0.update(&(data.len() as u64).to_le_bytes());
        self.0.update(data);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.field(s.as_bytes())
    }

    pub fn finish(self) -> Digest {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_run_together() {
        let mut a = KeyHasher::new("k");
        a.str("ab").str("c");
        let mut b = KeyHasher::new("k");
        b.str("a").str("bc");
        assert_ne!(a.finish(), b.finish());
        let mut c = KeyHasher::new("k");
        c.str("ab").str("c");
        let mut d = KeyHasher::new("k");
        d.str("ab").str("c");
        assert_eq!(c.finish(), d.finish());
    }

    #[test]
    fn entries_round_trip_and_need_their_blob() {
        let t = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::open(t.path()).expect("store");
        let cache = Cache::new(t.path());
        let key = Digest::sha256(b"key");
        assert!(cache.get(&store, &key).is_none());
        let empty = Entry {
            empty: true,
            digest: None,
            size: 0,
            diff_id: None,
            created: "2024-01-01T00:00:00Z".into(),
        };
        cache.put(&key, &empty).expect("put");
        assert_eq!(cache.get(&store, &key), Some(empty));
        // A layer entry whose blob is gone is a miss; with the blob, a hit.
        let blob = b"layer bytes";
        let d = Digest::sha256(blob);
        let e = Entry {
            empty: false,
            digest: Some(d.clone()),
            size: blob.len() as u64,
            diff_id: Some(d.clone()),
            created: "2024-01-01T00:00:00Z".into(),
        };
        let key2 = Digest::sha256(b"key2");
        cache.put(&key2, &e).expect("put");
        assert!(cache.get(&store, &key2).is_none());
        store
            .content()
            .write_blob_bytes(blob, Some(&d))
            .expect("blob");
        assert_eq!(cache.get(&store, &key2), Some(e));
        // A torn entry (a writer killed mid-write never renames, but a damaged file) is a miss.
        fs::write(cache.path(&key2), b"{\"digest\":").expect("write");
        assert!(cache.get(&store, &key2).is_none());
        assert_eq!(cache.clear().expect("clear"), 2);
    }
}
