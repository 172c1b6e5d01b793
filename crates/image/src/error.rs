//! The image layer's typed errors. Each names the reference, digest, path or
//! layer entry it is about.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference that does not parse; `reason` names the bad part.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: String },

    /// Content whose digest is not the one it was asked to have.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },

    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },

    /// A layer whose uncompressed content is not the diff_id the image
    /// config lists for it.
    #[error("layer diff_id mismatch: the image config says {expected}, the layer is {actual}")]
    DiffIdMismatch { expected: Digest, actual: Digest },

    #[error("blob {0} is not in the content store")]
    BlobNotFound(Digest),

    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },

    #[error("{what}: {err}")]
    Sys { what: String, err: io::Error },

    /// A manifest, index or config that is not what it claims to be.
    #[error("invalid {what}: {reason}")]
    InvalidDocument { what: String, reason: String },

    #[error("unsupported media type {media_type:?}{}", context_suffix(.context))]
    UnsupportedMediaType { media_type: String, context: String },

    /// No manifest of an index or manifest list matches the platform.
    #[error(
        "no image for platform {wanted} in {digest} (available: {})",
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    NoMatchingPlatform {
        wanted: String,
        digest: String,
        available: Vec<String>,
    },

    #[error("invalid platform {platform:?}: {reason}")]
    InvalidPlatform { platform: String, reason: String },

    /// A layer entry that was refused or could not be applied.
    #[error("layer entry {entry:?}: {kind}")]
    Entry { entry: String, kind: EntryError },

    /// A layer stream that is not a (complete) tar archive.
    #[error("layer archive: {0}")]
    Archive(String),

    #[error("snapshot {id}: {reason}")]
    Snapshot { id: String, reason: String },

    #[error("container filesystem {path}: {reason}")]
    Rootfs { path: PathBuf, reason: String },

    /// No image record matches the name (id, id prefix, tag or digest).
    #[error("No such image: {0}")]
    ImageNotFound(String),

    /// An image operation that conflicts with the store's state (an image in
    /// use, an ambiguous id prefix, an image with several tags).
    #[error("conflict: {name}: {reason}")]
    ImageConflict { name: String, reason: String },

    /// The image store's record file is damaged.
    #[error("image store {path}: {reason}")]
    ImageStore { path: PathBuf, reason: String },
}

fn context_suffix(c: &str) -> String {
    if c.is_empty() {
        String::new()
    } else {
        format!(" ({c})")
    }
}

/// Why a layer entry was refused (or failed).
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("absolute names are not allowed in a layer")]
    AbsolutePath,
    #[error("\"..\" is not allowed in a layer path")]
    ParentDir,
    #[error("empty name")]
    EmptyName,
    /// The path resolves outside the snapshot through a symlink (planted by
    /// an earlier entry or already present), or crosses one that can't be
    /// followed safely.
    #[error("path leads outside the snapshot through symlink: {0}")]
    ThroughSymlink(String),
    #[error("a parent of the path is not a directory")]
    ParentNotDirectory,
    #[error("hardlink target {target:?}: {reason}")]
    Hardlink { target: String, reason: String },
    #[error("device nodes are not allowed in this store")]
    DeviceNotAllowed,
    #[error(
        "owner {uid}:{gid} is outside the {mapped} ids this rootless user's namespace maps; \
         give the user a larger range in /etc/subuid and /etc/subgid, then run `berth system migrate`"
    )]
    IdNotMapped { uid: u32, gid: u32, mapped: u64 },
    #[error("invalid whiteout {0:?}")]
    InvalidWhiteout(String),
    #[error("unsupported tar entry type {0}")]
    UnsupportedType(String),
    #[error("archive truncated: {0}")]
    Truncated(String),
    #[error("{what}: {err}")]
    Io { what: &'static str, err: io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a path or a description to io errors.
pub(crate) trait Context<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
    fn what(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|err| Error::Io {
            path: path.into(),
            err,
        })
    }
    fn what(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|err| Error::Sys { what: what(), err })
    }
}
