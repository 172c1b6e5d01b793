//! `--storage-opt size=SIZE`: the container's writable layer limited as docker's overlay2
//! driver limits it, by an XFS project quota on the container's directory, set before its
//! upper and work directories are made in it so both inherit the project
//! (`berth_image::quota`). Each container gets a project id of its own: one above the
//! highest that the containers' directories have, chosen under a lock so two `create`s
//! never share one.

use std::fs::File;
use std::path::Path;

use crate::config::parse_size;
use crate::error::{Error, Result, invalid};
use crate::{Engine, RunConfig};

/// Where project ids start (docker starts above its home directory's).
const FIRST_PROJECT: u32 = 100_000;

const UNSUPPORTED: &str =
    "--storage-opt is supported only for overlay over xfs with 'pquota' mount option";

/// Where the upper directories are made (the root itself before the first container).
fn upper_parent(engine: &Engine) -> std::path::PathBuf {
    let containers = engine.root.join("containers");
    if containers.is_dir() {
        containers
    } else {
        engine.root.clone()
    }
}

/// The size `--storage-opt` asks for, checked as dockerd checks it: `size` is the only
/// option, and only on XFS with project quotas (not rootless: quotactl needs the host's
/// root).
pub fn requested(engine: &Engine, cfg: &RunConfig) -> Result<Option<u64>> {
    // dockerd's order: the driver's support first, then the options.
    if cfg
        .storage_opt
        .keys()
        .any(|k| k.eq_ignore_ascii_case("size"))
        && (crate::rootless::active() || !berth_image::quota::supported(&upper_parent(engine)))
    {
        return Err(Error::BadConfig(UNSUPPORTED.into()));
    }
    let mut size = None;
    for (k, v) in &cfg.storage_opt {
        match k.to_ascii_lowercase().as_str() {
            "size" => {
                let b = parse_size(v)
                    .map_err(|_| invalid("--storage-opt", format!("invalid size {v:?}")))?;
                size = Some(
                    u64::try_from(b)
                        .map_err(|_| invalid("--storage-opt", format!("invalid size {v:?}")))?,
                );
            }
            _ => return Err(invalid("--storage-opt", format!("Unknown option {k}"))),
        }
    }
    Ok(size)
}

/// Limits `dir` (a new container's directory, before its upper and work directories are
/// made in it) to `bytes`.
pub fn apply(engine: &Engine, dir: &Path, bytes: u64) -> Result<()> {
    let containers = engine.root.join("containers");
    let lock_path = engine.root.join("quota.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| Error::Io {
            path: lock_path.clone(),
            err,
        })?;
    // Held until it is dropped at the end: the scan and the new project are one step.
    lock.lock().map_err(|err| Error::Io {
        path: lock_path.clone(),
        err,
    })?;
    // docker's rule: above the project of the directory the containers are in (when it
    // has one), and above every container's.
    let base = berth_image::quota::project_id(&containers).unwrap_or(0);
    let mut highest = if base > 0 { base } else { FIRST_PROJECT - 1 };
    for e in std::fs::read_dir(&containers)
        .into_iter()
        .flatten()
        .flatten()
    {
        let d = e.path();
        if d != dir
            && let Ok(p) = berth_image::quota::project_id(&d)
        {
            highest = highest.max(p);
        }
    }
    let id = highest
        .checked_add(1)
        .ok_or_else(|| Error::Other("no XFS project id left for --storage-opt".into()))?;
    berth_image::quota::limit(dir, id, bytes, &engine.root)?;
    Ok(())
}
