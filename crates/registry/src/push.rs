//! `push`: an image of the store to a registry.
//!
//! The image's platform manifest goes up as it is (its digest does not
//! change): first its blobs (the layers and the config, several at a time),
//! each skipped when the registry has it, mounted from another repository
//! of the same registry when it can be (one the blob was pulled from or
//! pushed to, remembered per blob in the content store, or one the image is
//! tagged in), uploaded otherwise; then the manifest under the tag.

use std::sync::Arc;

use berth_image::manifest::parse_document;
use berth_image::{
    Descriptor, Digest, Document, ImageRecord, ImageStore, Reference, distributable_manifest,
};
use tokio::sync::Semaphore;

use crate::client::Client;
use crate::error::{Error, Result};

/// What happened to one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobPush {
    Preparing,
    Waiting,
    /// The registry had it already.
    Exists,
    /// Mounted from this repository of the same registry.
    Mounted(String),
    Pushed,
}

pub trait PushProgress: Send + Sync {
    fn blob(&self, _digest: &Digest, _state: BlobPush) {}
}

pub struct NoPushProgress;
impl PushProgress for NoPushProgress {}

/// Reports every blob but the config.
struct LayersOnly {
    inner: Arc<dyn PushProgress>,
    config: Digest,
}

impl PushProgress for LayersOnly {
    fn blob(&self, digest: &Digest, state: BlobPush) {
        if *digest != self.config {
            self.inner.blob(digest, state);
        }
    }
}

/// What a push did.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub digest: Digest,
    pub size: u64,
    /// Layers compressed for this push (not found in the cache).
    pub compressed: Vec<Digest>,
}

/// Mount attempts per blob before it is uploaded (docker's too).
const MOUNT_ATTEMPTS: usize = 3;

/// Records in the content store that `repo` of `client`'s registry has
/// these blobs. Best effort: a failure to remember (a full disk) costs a
/// later push an upload, never this pull or push.
pub(crate) fn remember_sources<'a>(
    content: &berth_image::ContentStore,
    client: &Client,
    repo: &str,
    blobs: impl IntoIterator<Item = &'a Digest>,
) {
    let here = format!("{}/{repo}", client.registry());
    for d in blobs {
        let _ = content.add_source(d, &here);
    }
}

/// The repositories of `client`'s registry to mount blob `digest` from
/// when pushing it to `repo`: those it was last pulled from or pushed to
/// (remembered per blob, the newest first), then the repositories the
/// image is tagged in; at most [`MOUNT_ATTEMPTS`].
fn mount_sources(
    content: &berth_image::ContentStore,
    client: &Client,
    repo: &str,
    digest: &Digest,
    image_repos: &[String],
) -> Vec<String> {
    let host = format!("{}/", client.registry());
    let mut out: Vec<String> = Vec::new();
    let known = content.sources(digest).unwrap_or_default();
    let known = known
        .iter()
        .filter_map(|r| r.strip_prefix(&host))
        .map(str::to_string);
    for r in known.chain(image_repos.iter().cloned()) {
        if r != repo && !out.contains(&r) && crate::client::check_repo(&r).is_ok() {
            out.push(r);
        }
    }
    out.truncate(MOUNT_ATTEMPTS);
    out
}

/// Pushes `image` to `repo` of the registry `client` talks to, under
/// `reference` (a tag, or the manifest's digest). At most `concurrency`
/// blobs go up at once.
pub async fn push(
    client: &Client,
    images: &ImageStore,
    image: &ImageRecord,
    repo: &str,
    reference: &str,
    concurrency: usize,
    progress: Arc<dyn PushProgress>,
) -> Result<Pushed> {
    let content = images.content();
    // The compressed layers and manifest are recorded only at the end.
    let _lease = images.lease()?;
    // Uncompressed layers go up gzipped (made once, cached by diff_id).
    let dist = {
        let images = images.clone();
        let image = image.clone();
        tokio::task::spawn_blocking(move || distributable_manifest(&images, &image))
            .await
            .map_err(|e| Error::Io {
                what: "compressing layers".into(),
                err: std::io::Error::other(e),
            })??
    };
    let bytes = dist.bytes.clone();
    let manifest = match parse_document(&bytes, None)? {
        Document::Manifest(m) => m,
        Document::Index(_) => {
            return Err(Error::Image(berth_image::Error::InvalidDocument {
                what: format!("image {}", image.id),
                reason: "its manifest is an index".into(),
            }));
        }
    };
    // Repositories of the same registry the image is known under: blobs
    // can be mounted from them instead of uploaded.
    let image_repos: Vec<String> = image
        .repo_digests
        .iter()
        .chain(&image.repo_tags)
        .filter_map(|r| Reference::parse(r).ok())
        .filter(|r| r.domain() == client.registry() && r.path() != repo)
        .map(|r| r.path().to_string())
        .collect();

    let mut blobs: Vec<Descriptor> = manifest
        .layers
        .iter()
        .filter(|l| !l.foreign)
        .map(|l| l.descriptor.clone())
        .collect();
    for b in &blobs {
        progress.blob(&b.digest, BlobPush::Preparing);
    }
    // The config goes up with the layers but is not shown (as docker).
    let config = manifest.config.digest.clone();
    let progress_of = progress.clone();
    let progress: Arc<dyn PushProgress> = Arc::new(LayersOnly {
        inner: progress_of,
        config,
    });
    blobs.push(manifest.config.clone());
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let jobs = blobs.iter().map(|desc| {
        let limit = limit.clone();
        let progress = progress.clone();
        let sources = mount_sources(content, client, repo, &desc.digest, &image_repos);
        async move {
            let _slot = match limit.try_acquire() {
                Ok(slot) => slot,
                Err(_) => {
                    progress.blob(&desc.digest, BlobPush::Waiting);
                    limit.acquire().await.map_err(|e| Error::Io {
                        what: "upload slot".into(),
                        err: std::io::Error::other(e),
                    })?
                }
            };
            if client.blob_exists(repo, &desc.digest).await? {
                progress.blob(&desc.digest, BlobPush::Exists);
                remember_sources(content, client, repo, [&desc.digest]);
                return Ok(());
            }
            let mut state = None;
            for from in &sources {
                if client.mount_blob(repo, desc, from).await? {
                    state = Some(BlobPush::Mounted(from.clone()));
                    break;
                }
            }
            let state = match state {
                Some(s) => s,
                None if client.push_blob(repo, desc, content).await? => BlobPush::Pushed,
                None => BlobPush::Exists,
            };
            remember_sources(content, client, repo, [&desc.digest]);
            progress.blob(&desc.digest, state);
            Ok::<(), Error>(())
        }
    });
    for r in futures_util::future::join_all(jobs).await {
        r?;
    }
    let digest = client
        .put_manifest(repo, reference, &bytes, &manifest.media_type)
        .await?;
    if dist.digest != image.manifest {
        // The image now has its pushed (compressed) form too: the record
        // references the new manifest and keeps the blobs of both, so the
        // compressed layers are not collected and the next push finds them.
        let images = images.clone();
        let target = dist.digest.clone();
        tokio::task::spawn_blocking(move || {
            images.transaction(|t| {
                t.add(
                    &target,
                    &berth_image::Platform::host(),
                    &[],
                    &berth_image::ApplyOptions::default(),
                )
            })
        })
        .await
        .map_err(|e| Error::Io {
            what: "recording the pushed manifest".into(),
            err: std::io::Error::other(e),
        })??;
    }
    Ok(Pushed {
        digest,
        size: bytes.len() as u64,
        compressed: dist.compressed,
    })
}
