//! Berth's image layer: image references, the content-addressed blob
//! store, OCI and Docker image metadata, tar layers applied to snapshot
//! directories, and container root filesystems over them.
//!
//! State lives under one root (the engine's `/var/lib/berth`):
//!
//! ```text
//! <root>/content/blobs/sha256/<hex>   ContentStore
//! <root>/snapshots/<chain hex>/fs     Snapshotter (one per layer chain)
//! <root>/containers/<id>/rootfs       ContainerRootfs (overlay or copy)
//! <root>/images.json                   ImageStore records (tags, digests)
//! ```
//!
//! The library is synchronous; the engine runs it on blocking threads.

pub mod archive;
pub mod check;
pub mod compress;
pub mod copy;
pub mod diff;
pub mod digest;
pub mod error;
mod fsutil;
pub mod image;
pub mod images;
pub mod ingest;
pub mod layer;
pub mod manifest;
pub mod quota;
pub mod reference;
pub mod rootfs;
pub mod runtime_config;
pub mod snapshot;
pub mod store;
pub mod sys;

pub use archive::{ArchiveFormat, ImportOptions, LoadOptions, import, load, save};
pub use compress::{Distributable, distributable_manifest};
pub use diff::{CommitOptions, NewLayer, TreeKind, commit, create_layer, write_tree};
pub use digest::{Algorithm, Digest};
pub use error::{EntryError, Error, Result};
pub use image::{UnpackedImage, resolve_manifest, unpack};
pub use images::{DEFAULT_ROOT, ImageRecord, ImageStore, Lease, RemoveReport, Txn};
pub use ingest::{Ingested, store_and_apply};
pub use layer::{ApplyOptions, Compression, LayerSummary, WhiteoutFormat, apply_layer};
pub use manifest::{Descriptor, Document, ImageConfig, Index, Manifest, Platform};
pub use reference::Reference;
pub use rootfs::{ContainerRootfs, RootfsKind, RootfsMode};
pub use runtime_config::{ImageRuntime, RunOverrides, apply_image_config};
pub use snapshot::{SnapshotInfo, Snapshotter, chain_id, chain_ids};
pub use store::{BlobInfo, BlobWriter, ContentStore, GcReport};
