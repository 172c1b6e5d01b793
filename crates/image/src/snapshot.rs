//! Layer snapshots: one directory per layer, named by its chain id, so a
//! layer shared by several images (same content on the same parents) is
//! unpacked once.
//!
//! ```text
//! <root>/<chain hex>/fs/                 the layer's files (an overlay lowerdir)
//! <root>/<chain hex>/snapshot.json       chain id, diff id, parent, whiteout format
//! <root>/<chain hex>.<unique>.incomplete/  being written, or being removed
//! ```
//!
//! A layer is extracted into a `.incomplete` directory that its writer
//! holds an flock on; it is synced (`syncfs`) and renamed to its final name
//! only when whole, and removal renames it back to `.incomplete` before
//! deleting anything. So a crash never leaves a partial snapshot under a
//! final name, and `open` removes the `.incomplete` directories no live
//! process holds.

use std::fs;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::fsutil::remove_tree;
use crate::layer::{ApplyOptions, LayerSummary, WhiteoutFormat, apply_layer_checked};
use crate::store::unique_name;
use crate::sys;

const INCOMPLETE: &str = ".incomplete";
const INFO: &str = "snapshot.json";

/// ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " +
/// DiffID(Ln)) (OCI image spec, config.md).
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::sha256(format!("{p} {diff_id}").as_bytes()),
    }
}

/// The chain ids of a stack of layers given bottom first.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let id = chain_id(out.last(), d);
        out.push(id);
    }
    out
}

/// What a snapshot is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotInfo {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub whiteouts: WhiteoutFormat,
    /// Bytes of the uncompressed layer.
    pub size: u64,
    pub entries: u64,
}

/// The snapshot directory under a root.
#[derive(Clone, Debug)]
pub struct Snapshotter {
    root: PathBuf,
}

impl Snapshotter {
    /// Opens (creating if needed) the snapshots under `root`, removing
    /// `.incomplete` directories left by a crash.
    pub fn open(root: impl AsRef<Path>) -> Result<Snapshotter> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root).at(&root)?;
        let s = Snapshotter { root };
        s.clean_incomplete()?;
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join(chain_id.hex())
    }

    /// The layer's files: what overlayfs gets as a lowerdir.
    pub fn fs_path(&self, chain_id: &Digest) -> PathBuf {
        self.dir(chain_id).join("fs")
    }

    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.dir(chain_id).join(INFO).is_file()
    }

    pub fn info(&self, chain_id: &Digest) -> Result<SnapshotInfo> {
        let p = self.dir(chain_id).join(INFO);
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Snapshot {
                    id: chain_id.to_string(),
                    reason: "does not exist".into(),
                });
            }
            Err(e) => return Err(e).at(p),
        };
        serde_json::from_slice(&data).map_err(|e| Error::Snapshot {
            id: chain_id.to_string(),
            reason: format!("{}: {e}", p.display()),
        })
    }

    /// Every complete snapshot.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root).at(&self.root)? {
            let e = e.at(&self.root)?;
            if let Some(name) = e.file_name().to_str()
                && let Some(d) = chain_from_name(name)
                && self.exists(&d)
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Unpacks a layer on top of `parent` (the chain id of the layers
    /// below, None for the bottom layer) unless its snapshot already
    /// exists, in which case `layer` is not read. The layer must have
    /// `diff_id`; on any error nothing of it stays.
    pub fn apply(
        &self,
        parent: Option<&Digest>,
        layer: impl Read,
        diff_id: &Digest,
        opts: &ApplyOptions,
    ) -> Result<SnapshotInfo> {
        let chain = chain_id(parent, diff_id);
        if self.exists(&chain) {
            return self.info(&chain);
        }
        let tmp = self
            .root
            .join(format!("{}.{}{INCOMPLETE}", chain.hex(), unique_name("")));
        fs::create_dir(&tmp).at(&tmp)?;
        let guard = RemoveOnDrop(Some(tmp.clone()));
        // Held while we write: a concurrent `open` leaves this one alone.
        let lock = sys::open_dir(&tmp).at(&tmp)?;
        sys::flock_exclusive(lock.as_fd(), true).at(&tmp)?;
        let fs_dir = tmp.join("fs");
        fs::create_dir(&fs_dir).at(&fs_dir)?;

        // The diff_id check below catches a layer cut short, so a tar
        // without its end-of-archive marker (umoci 0.4 writes them) is fine.
        let summary: LayerSummary = apply_layer_checked(layer, &fs_dir, opts, false)?;
        if summary.diff_id != *diff_id {
            return Err(Error::DiffIdMismatch {
                expected: diff_id.clone(),
                actual: summary.diff_id,
            });
        }
        let info = SnapshotInfo {
            chain_id: chain.clone(),
            diff_id: diff_id.clone(),
            parent: parent.cloned(),
            whiteouts: opts.whiteouts,
            size: summary.size,
            entries: summary.entries,
        };
        let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::Snapshot {
            id: chain.to_string(),
            reason: e.to_string(),
        })?;
        let info_path = tmp.join(INFO);
        fs::write(&info_path, json).at(&info_path)?;
        // Everything the layer wrote reaches the disk before the name says
        // it is whole.
        sys::syncfs(lock.as_fd()).at(&tmp)?;
        let dest = self.dir(&chain);
        match fs::rename(&tmp, &dest) {
            Ok(()) => {}
            // Someone else finished the same layer first: theirs is as good.
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST))
                    && self.exists(&chain) =>
            {
                return self.info(&chain);
            }
            Err(e) => return Err(e).at(dest),
        }
        guard.disarm();
        drop(lock);
        let root = sys::open_dir(&self.root).at(&self.root)?;
        sys::fsync(root.as_fd()).at(&self.root)?;
        Ok(info)
    }

    /// Removes a snapshot (the caller knows no image or container uses
    /// it). False when it did not exist.
    pub fn remove(&self, chain_id: &Digest) -> Result<bool> {
        let dir = self.dir(chain_id);
        let tmp = self.root.join(format!(
            "{}.{}{INCOMPLETE}",
            chain_id.hex(),
            unique_name("rm-")
        ));
        match fs::rename(&dir, &tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).at(dir),
        }
        remove_tree(&tmp).at(&tmp)?;
        Ok(true)
    }

    /// Removes `.incomplete` directories whose writer is gone.
    fn clean_incomplete(&self) -> Result<usize> {
        let mut n = 0;
        for e in fs::read_dir(&self.root).at(&self.root)? {
            let e = e.at(&self.root)?;
            if !e.file_name().to_string_lossy().ends_with(INCOMPLETE) {
                continue;
            }
            let p = e.path();
            let Ok(fd) = sys::open_dir(&p) else { continue };
            if sys::flock_exclusive(fd.as_fd(), false).is_ok() {
                remove_tree(&p).at(&p)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A complete snapshot's directory name back to its chain id.
fn chain_from_name(name: &str) -> Option<Digest> {
    use crate::digest::Algorithm;
    let alg = match name.len() {
        64 => Algorithm::Sha256,
        128 => Algorithm::Sha512,
        _ => return None,
    };
    Digest::new(alg, name).ok()
}

struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = remove_tree(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::sha256(b"a");
        let b = Digest::sha256(b"b");
        let c = Digest::sha256(b"c");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::sha256(format!("{a} {b}").as_bytes()));
        assert_eq!(ids[2], Digest::sha256(format!("{} {c}", ids[1]).as_bytes()));
        assert!(chain_ids(&[]).is_empty());
        // A known value: busybox-like single layer chain is its diff id;
        // two layers hash "sha256:… sha256:…".
        let x: Digest = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
            .parse()
            .unwrap();
        assert_eq!(
            chain_id(Some(&x), &x).to_string(),
            Digest::sha256(format!("{x} {x}").as_bytes()).to_string()
        );
    }

    #[test]
    fn names() {
        let d = Digest::sha256(b"x");
        assert_eq!(chain_from_name(d.hex()), Some(d));
        assert_eq!(chain_from_name("abc"), None);
        assert_eq!(chain_from_name(&"z".repeat(64)), None);
    }
}
