//! From a manifest in the content store to snapshots: resolving an index
//! to the platform's manifest, checking the config, unpacking each layer
//! that is not unpacked yet.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::ApplyOptions;
use crate::manifest::{Document, ImageConfig, Manifest, Platform, parse_document, select_platform};
use crate::snapshot::{SnapshotInfo, Snapshotter, chain_id};
use crate::store::ContentStore;

/// Registries refuse manifests over 4 MiB; so does the store.
pub const MANIFEST_LIMIT: u64 = 4 << 20;
/// Configs carry the history; 64 MiB is far above any real one.
pub const CONFIG_LIMIT: u64 = 64 << 20;
const MAX_INDEX_DEPTH: usize = 4;

/// Reads the manifest or index `digest` from the store; an index (or
/// manifest list) is resolved to the manifest for `platform`. Returns the
/// manifest's digest and the manifest.
pub fn resolve_manifest(
    store: &ContentStore,
    digest: &Digest,
    media_type: Option<&str>,
    platform: &Platform,
) -> Result<(Digest, Manifest)> {
    let mut digest = digest.clone();
    let mut media_type = media_type.map(str::to_string);
    for _ in 0..MAX_INDEX_DEPTH {
        let bytes = store.read_blob(&digest, MANIFEST_LIMIT)?;
        match parse_document(&bytes, media_type.as_deref())? {
            Document::Manifest(m) => return Ok((digest, *m)),
            Document::Index(idx) => {
                let d = select_platform(&idx, &digest, platform)?;
                media_type = Some(d.media_type.clone());
                digest = d.digest.clone();
            }
        }
    }
    Err(Error::InvalidDocument {
        what: format!("index {digest}"),
        reason: format!("indexes nested more than {MAX_INDEX_DEPTH} deep"),
    })
}

/// An image whose layers are all unpacked.
#[derive(Clone, Debug)]
pub struct UnpackedImage {
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    pub config: ImageConfig,
    /// Chain ids of the layers, bottom first: the snapshots to stack.
    pub chain_ids: Vec<Digest>,
    /// Snapshots this call created (the others were there already).
    pub unpacked: Vec<SnapshotInfo>,
}

/// Unpacks the image `digest` (a manifest, or an index resolved for
/// `platform`) from the store into snapshots. Every blob must be in the
/// store; each layer must have the diff_id its config lists.
pub fn unpack(
    store: &ContentStore,
    snapshots: &Snapshotter,
    digest: &Digest,
    platform: &Platform,
    opts: &ApplyOptions,
) -> Result<UnpackedImage> {
    let (manifest_digest, manifest) = resolve_manifest(store, digest, None, platform)?;
    let config_bytes = store.read_blob(&manifest.config.digest, CONFIG_LIMIT)?;
    let config = ImageConfig::parse(&config_bytes)?;
    if config.diff_ids().len() != manifest.layers.len() {
        return Err(Error::InvalidDocument {
            what: format!("image {manifest_digest}"),
            reason: format!(
                "the manifest has {} layers, the config {} diff_ids",
                manifest.layers.len(),
                config.diff_ids().len()
            ),
        });
    }
    let mut chain: Vec<Digest> = Vec::with_capacity(manifest.layers.len());
    let mut unpacked = Vec::new();
    for (layer, diff_id) in manifest.layers.iter().zip(config.diff_ids()) {
        let parent = chain.last();
        let id = chain_id(parent, diff_id);
        if !snapshots.exists(&id) {
            let d = &layer.descriptor;
            let size = store.blob_size(&d.digest)?;
            if size != d.size {
                return Err(Error::SizeMismatch {
                    digest: d.digest.to_string(),
                    expected: d.size,
                    actual: size,
                });
            }
            let blob = store.open_blob(&d.digest)?;
            // Decompressed on this thread, unpacked on another.
            let done =
                crate::ingest::store_and_apply(store, snapshots, parent, d, diff_id, blob, opts)?;
            unpacked.push(done.snapshot);
        }
        chain.push(id);
    }
    Ok(UnpackedImage {
        manifest_digest,
        manifest,
        config,
        chain_ids: chain,
        unpacked,
    })
}
