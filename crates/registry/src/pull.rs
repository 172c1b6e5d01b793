//! `pull`: a reference from a registry into the image store.
//!
//! The manifest (and the index above it) and the config are fetched and
//! stored first; then every layer that is not unpacked yet is downloaded,
//! up to `max_concurrent_downloads` at a time, each streamed through
//! [`store_and_apply`]: the compressed bytes are digest-checked into the
//! content store while a second thread unpacks the decompressed tar into
//! its snapshot. The image record is written last, in one transaction, so a
//! pull killed at any point leaves at most complete blobs and snapshots
//! (which the next pull reuses) and temp files that the next open of the
//! store removes.

use std::io::{self, Read};
use std::sync::Arc;

use berth_image::image::{CONFIG_LIMIT, MANIFEST_LIMIT};
use berth_image::manifest::{parse_document, select_platform};
use berth_image::{
    ApplyOptions, Descriptor, Digest, Document, ImageConfig, ImageRecord, ImageStore, Manifest,
    Platform, Reference, chain_id, store_and_apply,
};
use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};

use crate::client::Client;
use crate::error::{Error, Result};

/// How to pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// The platform to pick from an index (the host's by default).
    pub platform: Platform,
    /// Layers downloaded at once (docker's default: 3; ours 6).
    pub max_concurrent_downloads: usize,
    pub apply: ApplyOptions,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            max_concurrent_downloads: 6,
            apply: ApplyOptions::default(),
        }
    }
}

/// What a layer is doing, for progress displays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerState {
    /// Already unpacked here: not downloaded.
    Exists,
    /// Queued behind the download limit.
    Waiting,
    /// Bytes received of the compressed size.
    Downloading { done: u64, total: u64 },
    /// Downloaded, checked and unpacked.
    Complete,
}

/// Progress of a pull.
pub trait Progress: Send + Sync {
    /// The manifest was resolved; `layers` are those of the chosen one.
    fn resolved(&self, _manifest: &Digest, _layers: &[Descriptor]) {}
    fn layer(&self, _layer: &Digest, _state: LayerState) {}
}

/// A [`Progress`] that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a pull did.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub record: ImageRecord,
    /// The digest of what the reference points at (the index when there
    /// is one): docker's "Digest:" line.
    pub digest: Digest,
    /// False when the image was already here under this reference.
    pub changed: bool,
}

/// Pulls `reference` (its tag or digest) from `repo` of the registry
/// `client` talks to, and records it in `images` under `reference` (a tag
/// is set; a digest reference is recorded as a repo digest).
pub async fn pull(
    client: &Client,
    images: &ImageStore,
    repo: &str,
    reference: &Reference,
    opts: &PullOptions,
    progress: Arc<dyn Progress>,
) -> Result<Pulled> {
    // What this pull writes is not recorded until the end: GC leaves it.
    let _lease = images.lease()?;
    let content = images.content();
    let reference = &if reference.tag().is_none() && reference.digest().is_none() {
        reference.with_tag(berth_image::reference::DEFAULT_TAG)?
    } else {
        reference.clone()
    };
    let wanted = match reference.digest() {
        Some(d) => d.to_string(),
        None => reference
            .tag()
            .unwrap_or(berth_image::reference::DEFAULT_TAG)
            .to_string(),
    };
    let top = client.get_manifest(repo, &wanted).await?;
    content.write_blob_bytes(&top.bytes, Some(&top.digest))?;

    // Down the indexes to the platform's manifest.
    let mut doc = parse_document(&top.bytes, Some(&top.media_type))?;
    let mut digest = top.digest.clone();
    let mut depth = 0;
    let manifest: Manifest = loop {
        match doc {
            Document::Manifest(m) => break *m,
            Document::Index(idx) => {
                depth += 1;
                if depth > 4 {
                    return Err(Error::Protocol {
                        url: client.base_url().to_string(),
                        reason: format!("indexes nested more than 4 deep under {}", top.digest),
                    });
                }
                let d = select_platform(&idx, &digest, &opts.platform)?.clone();
                let m = if content.has_blob(&d.digest) {
                    content.read_blob(&d.digest, MANIFEST_LIMIT)?
                } else {
                    let m = client.get_manifest(repo, &d.digest.to_string()).await?;
                    content.write_blob_bytes(&m.bytes, Some(&d.digest))?;
                    m.bytes
                };
                doc = parse_document(&m, Some(&d.media_type))?;
                digest = d.digest;
            }
        }
    };

    let config_bytes = if content.has_blob(&manifest.config.digest) {
        content.read_blob(&manifest.config.digest, CONFIG_LIMIT)?
    } else {
        client.fetch_blob(repo, &manifest.config, content).await?;
        content.read_blob(&manifest.config.digest, CONFIG_LIMIT)?
    };
    let config = ImageConfig::parse(&config_bytes)?;
    let diff_ids = config.diff_ids().to_vec();
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::Image(berth_image::Error::InvalidDocument {
            what: format!("image {digest}"),
            reason: format!(
                "the manifest has {} layers, the config {} diff_ids",
                manifest.layers.len(),
                diff_ids.len()
            ),
        }));
    }
    let descriptors: Vec<Descriptor> = manifest
        .layers
        .iter()
        .map(|l| l.descriptor.clone())
        .collect();
    progress.resolved(&digest, &descriptors);

    // The layers: each one whose snapshot or blob is missing.
    let limit = Arc::new(Semaphore::new(opts.max_concurrent_downloads.max(1)));
    let mut parent: Option<Digest> = None;
    let mut jobs = Vec::new();
    for (desc, diff_id) in descriptors.iter().zip(&diff_ids) {
        let chain = chain_id(parent.as_ref(), diff_id);
        if images.snapshots().exists(&chain) && content.has_blob(&desc.digest) {
            progress.layer(&desc.digest, LayerState::Exists);
        } else {
            progress.layer(&desc.digest, LayerState::Waiting);
            let digest = desc.digest.clone();
            let job = layer_job(
                client,
                images,
                repo,
                desc.clone(),
                diff_id.clone(),
                parent.clone(),
                opts.apply.clone(),
                limit.clone(),
                progress.clone(),
            );
            jobs.push(async move {
                job.await.map_err(|e| match e {
                    e @ Error::Layer { .. } => e,
                    e => Error::Layer {
                        digest,
                        err: Box::new(e),
                    },
                })
            });
        }
        parent = Some(chain);
    }
    // Every job runs to its end (so that a failed one has cleaned up
    // before we return); the first error is the answer.
    let results = futures_util::future::join_all(jobs).await;
    for r in results {
        r?;
    }

    let top_digest = top.digest.clone();
    let platform = opts.platform.clone();
    let apply = opts.apply.clone();
    let reference = reference.clone();
    let images2 = images.clone();
    let (record, changed) = tokio::task::spawn_blocking(move || {
        images2.transaction(|t| {
            let before = t.get(&reference.to_string()).ok().cloned();
            let tags: Vec<Reference> = if reference.digest().is_none() {
                vec![reference.clone()]
            } else {
                Vec::new()
            };
            let rec = t.add(&top_digest, &platform, &tags, &apply)?;
            t.add_repo_digest(
                &rec.id,
                &reference.repository().with_digest(top_digest.clone()),
            )?;
            let rec = t.get(&rec.id.to_string())?.clone();
            let changed = before.is_none_or(|b| b.id != rec.id || b.target != rec.target);
            Ok((rec, changed))
        })
    })
    .await
    .map_err(|e| Error::Io {
        what: "recording the image".into(),
        err: io::Error::other(e),
    })??;
    // Where the blobs came from, so a push to another repository of this
    // registry can mount them (docker's "Mounted from").
    let blobs: Vec<&Digest> = manifest
        .layers
        .iter()
        .filter(|l| !l.foreign)
        .map(|l| &l.descriptor.digest)
        .chain([&manifest.config.digest])
        .collect();
    crate::push::remember_sources(content, client, repo, blobs);
    Ok(Pulled {
        record,
        digest: top.digest,
        changed,
    })
}

/// Downloads one layer (after taking a download slot) and streams it into
/// the store and its snapshot; a blob already in the store is unpacked
/// from there.
#[allow(clippy::too_many_arguments)]
async fn layer_job(
    client: &Client,
    images: &ImageStore,
    repo: &str,
    desc: Descriptor,
    diff_id: Digest,
    parent: Option<Digest>,
    apply: ApplyOptions,
    limit: Arc<Semaphore>,
    progress: Arc<dyn Progress>,
) -> Result<()> {
    let _slot = limit.acquire().await.map_err(|e| Error::Io {
        what: "download slot".into(),
        err: io::Error::other(e),
    })?;
    let content = images.content().clone();
    let snapshots = images.snapshots().clone();
    let task_err = |e: tokio::task::JoinError| Error::Io {
        what: format!("unpacking layer {}", desc.digest),
        err: io::Error::other(e),
    };
    if content.has_blob(&desc.digest) {
        let d = desc.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let blob = content.open_blob(&d.digest)?;
            store_and_apply(
                &content,
                &snapshots,
                parent.as_ref(),
                &d,
                &diff_id,
                blob,
                &apply,
            )?;
            Ok(())
        })
        .await
        .map_err(task_err)??;
        progress.layer(&desc.digest, LayerState::Complete);
        return Ok(());
    }
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(32);
    let d = desc.clone();
    let unpack = tokio::task::spawn_blocking(move || -> Result<()> {
        let reader = ChannelReader::new(rx);
        store_and_apply(
            &content,
            &snapshots,
            parent.as_ref(),
            &d,
            &diff_id,
            reader,
            &apply,
        )?;
        Ok(())
    });
    let total = desc.size;
    let p = progress.clone();
    let digest = desc.digest.clone();
    let report = move |done: u64| p.layer(&digest, LayerState::Downloading { done, total });
    let fetched = client.stream_blob(repo, &desc, &tx, &report).await;
    if let Err(e) = &fetched {
        // The unpacker sees the stream end in an error, not a short layer.
        let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
    }
    drop(tx);
    let unpacked = unpack.await.map_err(task_err)?;
    // The download's own error names the cause; the unpacker's follows
    // from it.
    fetched?;
    unpacked?;
    progress.layer(&desc.digest, LayerState::Complete);
    Ok(())
}

/// The blocking side of the download channel.
/// A blocking reader of byte chunks sent through a channel by async code
/// (a download, a request body), for synchronous consumers (tar, digests).
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> ChannelReader {
        ChannelReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}
