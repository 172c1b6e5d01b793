//! Image archives: `load` of docker-archive tars (what `docker save`
//! writes) and OCI image-layout tars, `save` in either layout, and `import`
//! of a root filesystem tarball as a one-layer image.
//!
//! `load` streams the archive once: every regular file goes straight into
//! the content store (a `blobs/<alg>/<hex>` entry must hash to its name,
//! a docker config `<hex>.json` likewise), then the archive's manifests are
//! read back from the store, every layer is unpacked and checked against
//! its diff_id, and all the images are recorded in one transaction. Any
//! error (an entry escaping the archive, a missing blob, a digest mismatch,
//! a truncated stream) leaves the records as they were and removes what the
//! load wrote.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, Write};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Context, EntryError, Error, Result};
use crate::image::{CONFIG_LIMIT, MANIFEST_LIMIT, resolve_manifest};
use crate::images::{ImageRecord, ImageStore, Txn};
use crate::layer::{ApplyOptions, Compression};
use crate::manifest::{Document, Platform, parse_document};
use crate::reference::Reference;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// manifest.json, index.json, repositories: small documents.
const DOC_LIMIT: u64 = 16 << 20;

/// Options of `load` and `import`.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// For an index: which manifest to unpack.
    pub platform: Platform,
    pub apply: ApplyOptions,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            platform: Platform::host(),
            apply: ApplyOptions::default(),
        }
    }
}

/// What an archive entry became.
#[derive(Clone, Debug)]
enum Entry {
    File(Digest),
    Link(String),
    Dir,
}

/// Cleans an archive entry name: relative, no `..`, `./` and `//` folded,
/// trailing `/` dropped.
fn clean_name(raw: &str) -> Result<String> {
    let bad = |kind| Error::Entry {
        entry: raw.to_string(),
        kind,
    };
    if raw.starts_with('/') {
        return Err(bad(EntryError::AbsolutePath));
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(bad(EntryError::ParentDir)),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Ok(String::new());
    }
    Ok(parts.join("/"))
}

/// A symlink's target relative to the archive root; refused when it leaves.
fn link_target(entry: &str, target: &str) -> Result<String> {
    let bad = || Error::Entry {
        entry: entry.to_string(),
        kind: EntryError::ThroughSymlink(target.to_string()),
    };
    if target.starts_with('/') {
        return Err(bad());
    }
    let mut parts: Vec<&str> = entry.split('/').collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(bad());
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// The archive's files, by cleaned name.
struct Files {
    entries: HashMap<String, Entry>,
}

impl Files {
    fn blob(&self, name: &str) -> Result<Digest> {
        let mut name = clean_name(name)?;
        for _ in 0..16 {
            match self.entries.get(&name) {
                Some(Entry::File(d)) => return Ok(d.clone()),
                Some(Entry::Link(t)) => name = t.clone(),
                Some(Entry::Dir) | None => break,
            }
        }
        Err(Error::Archive(format!(
            "the archive has no file {name:?} (a manifest names it)"
        )))
    }

    fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
}

/// Streams the archive's files into the content store.
fn read_archive(t: &Txn<'_>, input: impl Read, written: &mut Vec<Digest>) -> Result<Files> {
    let content = t.store().content();
    let mut ar = tar::Archive::new(input);
    let mut entries = HashMap::new();
    let arch_err = |e: io::Error| Error::Archive(format!("image archive: {e}"));
    for e in ar.entries().map_err(arch_err)? {
        let mut e = e.map_err(arch_err)?;
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let name = clean_name(&raw)?;
        if name.is_empty() {
            continue;
        }
        let kind = e.header().entry_type();
        let entry = if kind.is_file() {
            let size = e.header().size().map_err(arch_err)?;
            // blobs/<alg>/<hex> must hash to its name.
            let expected = name
                .strip_prefix("blobs/")
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(alg, hex)| Algorithm::from_name(alg).map(|a| Digest::new(a, hex)));
            let expected = match expected {
                Some(Ok(d)) => Some(d),
                Some(Err(err)) => {
                    return Err(Error::Archive(format!("entry {raw:?}: {err}")));
                }
                None => None,
            };
            let info = content
                .write_blob_sized(&mut e, expected.as_ref(), Some(size))
                .map_err(|err| match err {
                    Error::SizeMismatch { actual, .. } => Error::Entry {
                        entry: raw.clone(),
                        kind: EntryError::Truncated(format!("{actual} of {size} bytes")),
                    },
                    err => Error::Archive(format!("entry {raw:?}: {err}")),
                })?;
            written.push(info.digest.clone());
            Entry::File(info.digest)
        } else if kind.is_dir() {
            Entry::Dir
        } else if kind.is_symlink() {
            let target = e
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            Entry::Link(link_target(&name, &target)?)
        } else if kind.is_pax_global_extensions() {
            continue;
        } else {
            return Err(Error::Entry {
                entry: raw,
                kind: EntryError::UnsupportedType(format!("{kind:?}")),
            });
        };
        entries.insert(name, entry);
    }
    Ok(Files { entries })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Loads every image of a docker-archive or OCI-layout tar. Returns the
/// records, in archive order.
pub fn load(store: &ImageStore, input: impl Read, opts: &LoadOptions) -> Result<Vec<ImageRecord>> {
    store.transaction(|t| {
        let mut written = Vec::new();
        let r = load_in(t, input, opts, &mut written);
        // What the load wrote and no image references goes, success or not.
        t.discard_unreferenced(&written, r.is_err())?;
        r
    })
}

fn load_in(
    t: &mut Txn<'_>,
    input: impl Read,
    opts: &LoadOptions,
    written: &mut Vec<Digest>,
) -> Result<Vec<ImageRecord>> {
    let files = read_archive(t, input, written)?;
    crate::sys::test_pause("load-blobs-written");
    let content = t.store().content().clone();
    let mut out = Vec::new();
    if files.has("manifest.json") {
        let bytes = content.read_blob(&files.blob("manifest.json")?, DOC_LIMIT)?;
        let list: Vec<DockerManifestEntry> =
            serde_json::from_slice(&bytes).map_err(|e| Error::InvalidDocument {
                what: "archive manifest.json".into(),
                reason: e.to_string(),
            })?;
        for (i, m) in list.iter().enumerate() {
            let config = files.blob(&m.config)?;
            // <hex>.json names its own digest.
            if let Some(hex) = m.config.strip_suffix(".json")
                && hex.len() == 64
                && hex != config.hex()
            {
                return Err(Error::Archive(format!(
                    "entry {:?}: digest mismatch: the name says sha256:{hex}, the content is {config}",
                    m.config
                )));
            }
            let mut layers = Vec::new();
            for l in &m.layers {
                let d = files.blob(l)?;
                let size = content.blob_size(&d)?;
                let mut head = [0u8; 6];
                let n =
                    read_head(&mut content.open_blob(&d)?, &mut head).at(content.blob_path(&d))?;
                let media = match Compression::detect(&head[..n])
                    .map_err(|e| Error::Archive(format!("layer {l:?}: {e}")))?
                {
                    Compression::None => "application/vnd.oci.image.layer.v1.tar",
                    Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                    Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                };
                layers.push(json!({"mediaType": media, "digest": d.to_string(), "size": size}));
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config.to_string(),
                           "size": content.blob_size(&config)?},
                "layers": layers,
            });
            let mb = serde_json::to_vec(&manifest).expect("json");
            let md = content.write_blob_bytes(&mb, None)?.digest;
            written.push(md.clone());
            let mut tags = Vec::new();
            for tag in m.repo_tags.iter().flatten() {
                tags.push(
                    Reference::parse(tag)
                        .map_err(|e| Error::Archive(format!("manifest.json[{i}].RepoTags: {e}")))?,
                );
            }
            out.push(t.add(&md, &opts.platform, &tags, &opts.apply)?);
        }
    } else if files.has("index.json") {
        let layout = content.read_blob(&files.blob("oci-layout")?, DOC_LIMIT)?;
        let v: Value = serde_json::from_slice(&layout).map_err(|e| Error::InvalidDocument {
            what: "archive oci-layout".into(),
            reason: e.to_string(),
        })?;
        if v["imageLayoutVersion"] != "1.0.0" {
            return Err(Error::InvalidDocument {
                what: "archive oci-layout".into(),
                reason: format!(
                    "imageLayoutVersion {} (want \"1.0.0\")",
                    v["imageLayoutVersion"]
                ),
            });
        }
        let bytes = content.read_blob(&files.blob("index.json")?, DOC_LIMIT)?;
        let Document::Index(index) = parse_document(&bytes, None)? else {
            return Err(Error::InvalidDocument {
                what: "archive index.json".into(),
                reason: "not an image index".into(),
            });
        };
        // Several descriptors of one manifest (one per tag) are one image.
        let mut by_digest: Vec<(Digest, Vec<Reference>)> = Vec::new();
        for (i, d) in index.manifests.iter().enumerate() {
            if !content.has_blob(&d.digest) {
                return Err(Error::BlobNotFound(d.digest.clone()));
            }
            let name = d.annotations.get(CONTAINERD_NAME).or_else(|| {
                d.annotations
                    .get(REF_NAME)
                    .filter(|n| n.contains(':') || n.contains('/'))
            });
            let tag =
                match name {
                    Some(n) => Some(Reference::parse(n).map_err(|e| {
                        Error::Archive(format!("index.json manifests[{i}] name: {e}"))
                    })?),
                    None => None,
                };
            match by_digest.iter_mut().find(|(x, _)| *x == d.digest) {
                Some((_, tags)) => tags.extend(tag),
                None => by_digest.push((d.digest.clone(), tag.into_iter().collect())),
            }
        }
        for (d, tags) in by_digest {
            out.push(t.add(&d, &opts.platform, &tags, &opts.apply)?);
        }
    } else if files.has("repositories") {
        return Err(Error::Archive(
            "a legacy (v1, repositories only) docker archive: not supported".into(),
        ));
    } else {
        return Err(Error::Archive(
            "not an image archive: no manifest.json or index.json".into(),
        ));
    }
    if out.is_empty() {
        return Err(Error::Archive("the archive holds no image".into()));
    }
    // An image listed twice appears once, as last recorded.
    let mut seen = Vec::new();
    for r in out.iter().rev() {
        if !seen.iter().any(|s: &ImageRecord| s.id == r.id) {
            seen.push(t.get(&r.id.to_string())?.clone());
        }
    }
    seen.reverse();
    Ok(seen)
}

fn read_head(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The layout `save` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// manifest.json, `<id>.json`, `<diff_id>/layer.tar` (uncompressed),
    /// repositories: what `docker save` wrote before docker 25.
    Docker,
    /// oci-layout, index.json, blobs/: the blobs as stored.
    Oci,
}

/// One image to save and the tags to name it by in the archive.
struct SaveItem {
    record: ImageRecord,
    tags: Vec<Reference>,
}

/// Writes the images `names` (ids, tags) to `out`. A name that is a tag
/// is saved with that tag; a repository name with all its tags; an id
/// without any.
pub fn save(
    store: &ImageStore,
    names: &[String],
    format: ArchiveFormat,
    out: impl Write,
) -> Result<()> {
    if names.is_empty() {
        return Err(Error::ImageNotFound("no image given".into()));
    }
    let mut items: Vec<SaveItem> = Vec::new();
    for name in names {
        let rec = store.get(name)?;
        let mut tags = Vec::new();
        if let Ok(r) = Reference::parse_normalized(name)
            && r.digest().is_none()
        {
            match r.tag() {
                Some(_) => tags.push(r.clone()),
                None => {
                    // A repository: every tag of it (or :latest).
                    let full = Reference::parse(name)?;
                    if rec.repo_tags.contains(&full.to_string()) {
                        for t in &rec.repo_tags {
                            if let Ok(tr) = Reference::parse(t)
                                && tr.name() == r.name()
                            {
                                tags.push(tr);
                            }
                        }
                    }
                }
            }
            // A name that only matched as an id prefix is no tag.
            tags.retain(|t| rec.repo_tags.contains(&t.to_string()));
        }
        match items.iter_mut().find(|i| i.record.id == rec.id) {
            Some(i) => {
                for t in tags {
                    if !i.tags.contains(&t) {
                        i.tags.push(t);
                    }
                }
            }
            None => items.push(SaveItem { record: rec, tags }),
        }
    }
    let mut b = tar::Builder::new(out);
    match format {
        ArchiveFormat::Docker => save_docker(store, &items, &mut b)?,
        ArchiveFormat::Oci => save_oci(store, &items, &mut b)?,
    }
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| Error::Archive(format!("writing the archive: {e}")))?;
    Ok(())
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn put_bytes(b: &mut tar::Builder<impl Write>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = header(data.len() as u64, 0o644);
    b.append_data(&mut h, name, data)
        .map_err(|e| Error::Archive(format!("writing {name}: {e}")))
}

fn put_dir(b: &mut tar::Builder<impl Write>, name: &str) -> Result<()> {
    let mut h = header(0, 0o755);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, name, io::empty())
        .map_err(|e| Error::Archive(format!("writing {name}: {e}")))
}

fn put_blob(
    store: &ImageStore,
    b: &mut tar::Builder<impl Write>,
    name: &str,
    d: &Digest,
) -> Result<()> {
    let c = store.content();
    let size = c.blob_size(d)?;
    let mut h = header(size, 0o644);
    b.append_data(&mut h, name, c.open_blob(d)?.take(size))
        .map_err(|e| Error::Archive(format!("writing {name}: {e}")))
}

fn save_oci(
    store: &ImageStore,
    items: &[SaveItem],
    b: &mut tar::Builder<impl Write>,
) -> Result<()> {
    let c = store.content();
    put_bytes(b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    put_dir(b, "blobs")?;
    put_dir(b, "blobs/sha256")?;
    let mut written = std::collections::HashSet::new();
    let mut manifests = Vec::new();
    for it in items {
        let r = &it.record;
        let mbytes = c.read_blob(&r.manifest, MANIFEST_LIMIT)?;
        let Document::Manifest(m) = parse_document(&mbytes, None)? else {
            return Err(Error::InvalidDocument {
                what: format!("image {}", r.id),
                reason: "its manifest is an index".into(),
            });
        };
        let mut blobs = vec![r.manifest.clone(), m.config.digest.clone()];
        blobs.extend(m.layers.iter().map(|l| l.descriptor.digest.clone()));
        for d in blobs {
            if written.insert(d.clone()) {
                put_blob(
                    store,
                    b,
                    &format!("blobs/{}/{}", d.algorithm().name(), d.hex()),
                    &d,
                )?;
            }
        }
        let desc = |ann: Option<(&Reference,)>| {
            let mut v = json!({"mediaType": m.media_type, "digest": r.manifest.to_string(),
                               "size": mbytes.len()});
            if let Some((t,)) = ann {
                v["annotations"] = json!({
                    CONTAINERD_NAME: t.to_string(),
                    REF_NAME: t.familiar(),
                });
            }
            v
        };
        if it.tags.is_empty() {
            manifests.push(desc(None));
        }
        for t in &it.tags {
            manifests.push(desc(Some((t,))));
        }
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    put_bytes(b, "index.json", &serde_json::to_vec(&index).expect("json"))
}

fn save_docker(
    store: &ImageStore,
    items: &[SaveItem],
    b: &mut tar::Builder<impl Write>,
) -> Result<()> {
    let c = store.content();
    let mut list = Vec::new();
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut written = std::collections::HashSet::new();
    let tmpdir = store.root().join("tmp");
    std::fs::create_dir_all(&tmpdir).at(&tmpdir)?;
    for it in items {
        let r = &it.record;
        let (_, m) = resolve_manifest(c, &r.manifest, None, &Platform::host())?;
        let config = store.config(r)?;
        let cfg_name = format!("{}.json", r.id.hex());
        if written.insert(cfg_name.clone()) {
            put_blob(store, b, &cfg_name, &r.id)?;
        }
        let mut layers = Vec::new();
        for (l, diff_id) in m.layers.iter().zip(config.diff_ids()) {
            let dir = diff_id.hex().to_string();
            let name = format!("{dir}/layer.tar");
            if written.insert(name.clone()) {
                put_dir(b, &dir)?;
                put_bytes(b, &format!("{dir}/VERSION"), b"1.0")?;
                let mut blob = c.open_blob(&l.descriptor.digest)?;
                let mut head = [0u8; 6];
                let n = read_head(&mut blob, &mut head).at(c.blob_path(&l.descriptor.digest))?;
                blob.rewind().at(c.blob_path(&l.descriptor.digest))?;
                match Compression::detect(&head[..n])? {
                    Compression::None => put_blob(store, b, &name, &l.descriptor.digest)?,
                    comp => {
                        // The tar header needs the size: decompress to a
                        // temp file (removed when dropped), checking the
                        // diff_id on the way.
                        let mut tmp = tempfile_in(&tmpdir)?;
                        let mut h = Hasher::new(diff_id.algorithm());
                        let mut rd: Box<dyn Read> = match comp {
                            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
                            _ => Box::new(zstd::stream::read::Decoder::new(blob).at(&tmp.1)?),
                        };
                        let mut tee = TeeWriter(&mut tmp.0, &mut h);
                        let size = io::copy(&mut rd, &mut tee).at(&tmp.1)?;
                        let actual = h.finish();
                        if actual != *diff_id {
                            return Err(Error::DiffIdMismatch {
                                expected: diff_id.clone(),
                                actual,
                            });
                        }
                        tmp.0.rewind().at(&tmp.1)?;
                        let mut hd = header(size, 0o644);
                        b.append_data(&mut hd, &name, (&tmp.0).take(size))
                            .map_err(|e| Error::Archive(format!("writing {name}: {e}")))?;
                    }
                }
            }
            layers.push(name);
        }
        let tags: Vec<String> = it.tags.iter().map(|t| t.familiar()).collect();
        for t in &it.tags {
            if let (Some(tag), Some(last)) = (t.tag(), config.diff_ids().last()) {
                repos
                    .entry(t.familiar_name())
                    .or_default()
                    .insert(tag.to_string(), last.hex().to_string());
            }
        }
        list.push(json!({"Config": cfg_name, "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags) }, "Layers": layers}));
    }
    put_bytes(
        b,
        "manifest.json",
        &serde_json::to_vec(&list).expect("json"),
    )?;
    if !repos.is_empty() {
        put_bytes(
            b,
            "repositories",
            &serde_json::to_vec(&repos).expect("json"),
        )?;
    }
    Ok(())
}

struct TeeWriter<'a>(&'a mut File, &'a mut Hasher);

impl Write for TeeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// An unlinked temp file in `dir`.
fn tempfile_in(dir: &std::path::Path) -> Result<(File, std::path::PathBuf)> {
    let p = dir.join(crate::store::unique_name("save-"));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)
        .at(&p)?;
    std::fs::remove_file(&p).at(&p)?;
    Ok((f, p))
}

/// Options of `import`.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Dockerfile instructions applied to the config (`--change`).
    pub changes: Vec<String>,
    /// The history entry's comment (`--message`).
    pub message: Option<String>,
    pub load: LoadOptions,
}

/// Makes a one-layer image of a root filesystem tarball (plain, gzip or
/// zstd), tagged `reference` when given.
pub fn import(
    store: &ImageStore,
    input: impl Read,
    reference: Option<&Reference>,
    opts: &ImportOptions,
) -> Result<ImageRecord> {
    // Parse the changes before writing anything.
    let mut cfg = serde_json::Map::new();
    for c in &opts.changes {
        apply_change(&mut cfg, c)?;
    }
    store.transaction(|t| {
        let mut written = Vec::new();
        let r = import_in(t, input, reference, opts, cfg, &mut written);
        t.discard_unreferenced(&written, r.is_err())?;
        r
    })
}

fn import_in(
    t: &mut Txn<'_>,
    input: impl Read,
    reference: Option<&Reference>,
    opts: &ImportOptions,
    cfg: serde_json::Map<String, Value>,
    written: &mut Vec<Digest>,
) -> Result<ImageRecord> {
    let c = t.store().content().clone();
    let layer = c.write_blob(input, None)?;
    written.push(layer.digest.clone());
    let path = c.blob_path(&layer.digest);
    let mut blob = c.open_blob(&layer.digest)?;
    let mut head = [0u8; 6];
    let n = read_head(&mut blob, &mut head).at(&path)?;
    blob.rewind().at(&path)?;
    let comp = Compression::detect(&head[..n])?;
    let mut rd: Box<dyn Read> = match comp {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(blob).at(&path)?),
    };
    let mut h = Hasher::new(Algorithm::Sha256);
    io::copy(&mut rd, &mut h).map_err(|e| Error::Archive(format!("the imported tarball: {e}")))?;
    let diff_id = h.finish();
    let media = match comp {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    let created = rfc3339_now();
    let p = &opts.load.platform;
    let mut history = json!({"created": created, "created_by": "berth import"});
    if let Some(m) = &opts.message {
        history["comment"] = json!(m);
    }
    let mut config = json!({
        "created": created,
        "architecture": p.architecture,
        "os": p.os,
        "config": Value::Object(cfg),
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [history],
    });
    if let Some(v) = &p.variant {
        config["variant"] = json!(v);
    }
    let cb = serde_json::to_vec(&config).expect("json");
    let cd = c.write_blob_bytes(&cb, None)?;
    written.push(cd.digest.clone());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd.digest.to_string(), "size": cd.size},
        "layers": [{"mediaType": media, "digest": layer.digest.to_string(), "size": layer.size}],
    });
    let md = c.write_blob_bytes(&serde_json::to_vec(&manifest).expect("json"), None)?;
    written.push(md.digest.clone());
    let tags: Vec<Reference> = reference.into_iter().cloned().collect();
    t.add(&md.digest, p, &tags, &opts.load.apply)
}

/// Now as RFC 3339 UTC with nanoseconds, as docker writes `created`.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

// --- `--change`: Dockerfile instructions on an image config -------------

fn change_err(change: &str, reason: impl Into<String>) -> Error {
    Error::InvalidDocument {
        what: format!("change {change:?}"),
        reason: reason.into(),
    }
}

/// Splits words as the Dockerfile parser does for ENV/LABEL: whitespace
/// separates, quotes group (and are removed), a backslash escapes.
fn split_words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(ch);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => cur.push('\\'),
                }
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `k=v k2="v 2"` pairs, or the legacy `k v…` form when `legacy`.
fn key_values(change: &str, rest: &str, legacy: bool) -> Result<Vec<(String, String)>> {
    let words = split_words(rest).map_err(|e| change_err(change, e))?;
    if words.is_empty() {
        return Err(change_err(change, "needs at least one argument"));
    }
    if !words[0].contains('=') {
        if !legacy || words.len() < 2 {
            return Err(change_err(change, "needs key=value"));
        }
        // ENV key value with spaces: the rest of the line as written.
        let key = words[0].clone();
        let value = rest.trim_start()[rest.trim_start().find(char::is_whitespace).unwrap_or(0)..]
            .trim()
            .to_string();
        return Ok(vec![(key, value)]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(change_err(change, format!("{w:?} is not key=value"))),
        })
        .collect()
}

/// The exec (JSON array) or shell form of CMD/ENTRYPOINT.
fn command(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(t)
    {
        return v;
    }
    vec!["/bin/sh".into(), "-c".into(), t.to_string()]
}

/// Sets `KEY=VALUE` in the config's `Env` (replacing KEY's entry; an `Env`
/// that is not a list is replaced).
pub fn config_set_env(cfg: &mut serde_json::Map<String, Value>, key: &str, value: &str) {
    let env = cfg.entry("Env").or_insert_with(|| json!([]));
    if !env.is_array() {
        *env = json!([]);
    }
    if let Some(list) = env.as_array_mut() {
        // Replaced where it is, as docker's builders do (BuildKit's image keeps PATH first).
        let prefix = format!("{key}=");
        let is_key = |e: &Value| e.as_str().is_some_and(|s| s.starts_with(&prefix));
        let new = json!(format!("{key}={value}"));
        match list.iter().position(is_key) {
            Some(i) => {
                list[i] = new;
                let mut n = 0;
                list.retain(|e| {
                    n += 1;
                    n - 1 <= i || !is_key(e)
                });
            }
            None => list.push(new),
        }
    }
}

/// Sets `key` in the config's object `field` (`Labels`, `ExposedPorts`,
/// `Volumes`), made when missing (or not an object).
pub fn config_map_insert(
    cfg: &mut serde_json::Map<String, Value>,
    field: &str,
    key: &str,
    value: Value,
) {
    let map = cfg.entry(field).or_insert_with(|| json!({}));
    if !map.is_object() {
        *map = json!({});
    }
    if let Some(m) = map.as_object_mut() {
        m.insert(key.to_string(), value);
    }
}

/// Applies one Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER,
/// EXPOSE, VOLUME, LABEL, STOPSIGNAL) to the config's `config` object.
pub fn apply_change(cfg: &mut serde_json::Map<String, Value>, change: &str) -> Result<()> {
    let change_t = change.trim();
    let (kw, rest) = match change_t.find(char::is_whitespace) {
        Some(i) => (&change_t[..i], change_t[i..].trim()),
        None => (change_t, ""),
    };
    let need = |what: &str| -> Result<()> {
        if rest.is_empty() {
            Err(change_err(change, format!("{what} needs an argument")))
        } else {
            Ok(())
        }
    };
    match kw.to_ascii_uppercase().as_str() {
        "CMD" => {
            need("CMD")?;
            cfg.insert("Cmd".into(), json!(command(rest)));
        }
        "ENTRYPOINT" => {
            need("ENTRYPOINT")?;
            cfg.insert("Entrypoint".into(), json!(command(rest)));
            // As docker: a new ENTRYPOINT resets an inherited CMD.
            cfg.remove("Cmd");
        }
        "ENV" => {
            for (k, v) in key_values(change, rest, true)? {
                config_set_env(cfg, &k, &v);
            }
        }
        "LABEL" => {
            for (k, v) in key_values(change, rest, true)? {
                config_map_insert(cfg, "Labels", &k, json!(v));
            }
        }
        "WORKDIR" => {
            need("WORKDIR")?;
            let w = split_words(rest)
                .map_err(|e| change_err(change, e))?
                .join(" ");
            let w = if w.starts_with('/') {
                w
            } else {
                // Relative to the previous WORKDIR, as docker does.
                let base = cfg.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                format!("{}/{w}", base.trim_end_matches('/'))
            };
            cfg.insert("WorkingDir".into(), json!(w));
        }
        "USER" => {
            need("USER")?;
            cfg.insert("User".into(), json!(rest));
        }
        "STOPSIGNAL" => {
            need("STOPSIGNAL")?;
            cfg.insert("StopSignal".into(), json!(rest));
        }
        "EXPOSE" => {
            let ports = split_words(rest).map_err(|e| change_err(change, e))?;
            if ports.is_empty() {
                return Err(change_err(change, "EXPOSE needs a port"));
            }
            for p in ports {
                let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let proto = proto.to_ascii_lowercase();
                let ok_num = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
                let ok = match num.split_once('-') {
                    Some((a, b)) => ok_num(a) && ok_num(b),
                    None => ok_num(num),
                };
                if !ok || !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
                    return Err(change_err(change, format!("invalid port {p:?}")));
                }
                config_map_insert(cfg, "ExposedPorts", &format!("{num}/{proto}"), json!({}));
            }
        }
        "VOLUME" => {
            need("VOLUME")?;
            let vols: Vec<String> = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) if rest.starts_with('[') => v,
                _ => split_words(rest).map_err(|e| change_err(change, e))?,
            };
            for v in vols {
                if v.is_empty() {
                    return Err(change_err(change, "empty volume path"));
                }
                config_map_insert(cfg, "Volumes", &v, json!({}));
            }
        }
        "" => return Err(change_err(change, "empty instruction")),
        other => {
            return Err(change_err(
                change,
                format!(
                    "{other} is not a supported --change instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)"
                ),
            ));
        }
    }
    Ok(())
}

/// The config blob of an image as JSON (for inspect and history).
pub fn config_json(store: &ImageStore, image: &ImageRecord) -> Result<Value> {
    let b = store.content().read_blob(&image.id, CONFIG_LIMIT)?;
    serde_json::from_slice(&b).map_err(|e| Error::InvalidDocument {
        what: format!("config {}", image.id),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(changes: &[&str]) -> Value {
        let mut m = serde_json::Map::new();
        for c in changes {
            apply_change(&mut m, c).unwrap();
        }
        Value::Object(m)
    }

    #[test]
    fn changes_as_docker_parses_them() {
        let c = cfg(&[
            r#"CMD ["echo", "hi there"]"#,
            "ENV A=1 B=\"two words\" C=x\\ y",
            "env LEGACY some value here",
            "ENV A=3",
            "WORKDIR /srv",
            "WORKDIR app",
            "USER 1000:1000",
            "EXPOSE 80 53/udp 8000-8010",
            r#"VOLUME ["/data", "/logs"]"#,
            "VOLUME /cache /tmp/x",
            "LABEL a=b \"c d\"=e",
            "STOPSIGNAL SIGTERM",
        ]);
        assert_eq!(c["Cmd"], json!(["echo", "hi there"]));
        assert_eq!(
            c["Env"],
            // Replaced in place, as moby's dispatchEnv does.
            json!(["A=3", "B=two words", "C=x y", "LEGACY=some value here"])
        );
        assert_eq!(c["WorkingDir"], "/srv/app");
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000-8010/tcp": {}})
        );
        assert_eq!(
            c["Volumes"],
            json!({"/data": {}, "/logs": {}, "/cache": {}, "/tmp/x": {}})
        );
        assert_eq!(c["Labels"], json!({"a": "b", "c d": "e"}));
        assert_eq!(c["StopSignal"], "SIGTERM");
        let c = cfg(&["CMD echo $HOME", "ENTRYPOINT [\"/bin/sh\"]"]);
        assert_eq!(c["Entrypoint"], json!(["/bin/sh"]));
        assert!(c.get("Cmd").is_none(), "ENTRYPOINT resets CMD");
        let c = cfg(&["ENTRYPOINT top -b", "CMD [\"-n\", \"1\"]"]);
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "top -b"]));
        assert_eq!(c["Cmd"], json!(["-n", "1"]));
    }

    #[test]
    fn bad_changes_are_refused_naming_them() {
        for bad in [
            "RUN echo",
            "CMD",
            "EXPOSE 0",
            "EXPOSE 80/xyz",
            "EXPOSE http",
            "ENV =x",
            "LABEL novalue",
            "ENV A=\"unterminated",
            "",
        ] {
            let mut m = serde_json::Map::new();
            let e = apply_change(&mut m, bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn names_and_links() {
        assert_eq!(clean_name("./a//b/").unwrap(), "a/b");
        assert!(clean_name("../x").is_err());
        assert!(clean_name("/etc/x").is_err());
        assert!(clean_name("a/../../x").is_err());
        assert_eq!(
            link_target("a/layer.tar", "../b/layer.tar").unwrap(),
            "b/layer.tar"
        );
        assert!(link_target("a/layer.tar", "../../etc/passwd").is_err());
        assert!(link_target("a", "/etc/passwd").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert!(rfc3339_now().ends_with('Z'));
    }
}
