//! `berth system check` for the image store: blobs against their digests, snapshots against
//! their layers' chain, image records against their blobs and snapshots, and content nothing
//! references. Each problem says what it is and what `--repair` does about it; a repair
//! removes or rebuilds what is broken and leaves what is sound alone.

use std::collections::HashSet;

use crate::digest::Digest;
use crate::error::Result;
use crate::images::{ImageStore, Txn};
use crate::manifest::{ImageConfig, Platform};
use crate::snapshot::chain_ids;

/// One problem found, and what the repair does (or did) about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong, naming the object.
    pub what: String,
    /// What `--repair` does.
    pub repair: String,
    /// Whether the repair was made (only with `repair`).
    pub repaired: bool,
}

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub blobs: usize,
    pub snapshots: usize,
    pub images: usize,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    fn problem(&mut self, what: String, repair: impl Into<String>) -> usize {
        self.problems.push(Problem {
            what,
            repair: repair.into(),
            repaired: false,
        });
        self.problems.len() - 1
    }
}

impl ImageStore {
    /// Checks the whole store (every blob is read and hashed), under the store's lock.
    /// `in_use` says which image ids containers use: a damaged image they use is reported
    /// but kept (the containers still run from its snapshots). With `repair`: corrupt blobs
    /// and snapshots are removed, missing snapshots rebuilt from sound layer blobs, images
    /// whose blobs are gone removed, unreferenced content collected.
    pub fn check(&self, repair: bool, in_use: &dyn Fn(&Digest) -> bool) -> Result<CheckReport> {
        self.transaction(|t| check_in(t, repair, in_use))
    }
}

fn check_in(
    t: &mut Txn<'_>,
    repair: bool,
    in_use: &dyn Fn(&Digest) -> bool,
) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    let content = t.store().content().clone();
    let snaps = t.store().snapshots().clone();

    // Blobs: each must hash to its name.
    let mut bad_blobs = HashSet::new();
    for d in content.list_blobs()? {
        r.blobs += 1;
        if let Err(e) = content.verify_blob(&d) {
            let i = r.problem(
                format!("blob {d}: {e}"),
                "remove the blob (images that need it are handled below)",
            );
            bad_blobs.insert(d.clone());
            if repair {
                content.delete_blob(&d)?;
                r.problems[i].repaired = true;
            }
        }
    }

    // Snapshots: the info must name this chain, and the chain must follow from its parent
    // and diff_id; the parent must exist; the files must be there.
    let mut bad_snaps = HashSet::new();
    let all_snaps = snaps.list()?;
    let present: HashSet<&Digest> = all_snaps.iter().collect();
    for c in &all_snaps {
        r.snapshots += 1;
        let problem = match snaps.info(c) {
            Err(e) => Some(format!("snapshot {c}: {e}")),
            Ok(info) if &info.chain_id != c => Some(format!(
                "snapshot {c}: its record names chain {}",
                info.chain_id
            )),
            Ok(info) if crate::snapshot::chain_id(info.parent.as_ref(), &info.diff_id) != *c => {
                Some(format!(
                    "snapshot {c}: parent {:?} and diff_id {} make another chain",
                    info.parent.as_ref().map(|p| p.to_string()),
                    info.diff_id
                ))
            }
            Ok(info) if info.parent.as_ref().is_some_and(|p| !present.contains(p)) => {
                Some(format!(
                    "snapshot {c}: its parent {} is missing",
                    info.parent.unwrap_or_else(|| c.clone())
                ))
            }
            Ok(_) if !snaps.fs_path(c).is_dir() => {
                Some(format!("snapshot {c}: its files are missing"))
            }
            Ok(_) => None,
        };
        if let Some(what) = problem {
            let i = r.problem(
                what,
                "remove the snapshot (images that need it are rebuilt below)",
            );
            bad_snaps.insert(c.clone());
            if repair {
                snaps.remove(c)?;
                r.problems[i].repaired = true;
            }
        }
    }

    // Image records: every blob present and sound, the config readable, the chain what the
    // config's diff_ids make, every snapshot present and sound.
    let records: Vec<_> = t.images().cloned().collect();
    let mut remove = vec![];
    for img in &records {
        r.images += 1;
        let name = img
            .repo_tags
            .first()
            .cloned()
            .unwrap_or_else(|| img.id.to_string());
        let missing: Vec<&Digest> = img
            .blobs
            .iter()
            .filter(|b| bad_blobs.contains(*b) || !content.has_blob(b))
            .collect();
        if !missing.is_empty() {
            let used = in_use(&img.id);
            let i = r.problem(
                format!(
                    "image {name}: blob{} {} missing or corrupt",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                ),
                if used {
                    "keep it (a container uses it and runs from its snapshots); pull it again to save or push it"
                } else {
                    "remove the image (pull or load it again)"
                },
            );
            if repair && !used {
                remove.push(img.id.to_string());
                r.problems[i].repaired = true;
            }
            continue;
        }
        let config = content
            .read_blob(&img.id, 1 << 22)
            .and_then(|b| ImageConfig::parse(&b));
        let config = match config {
            Ok(c) => c,
            Err(e) => {
                let i = r.problem(format!("image {name}: config: {e}"), "remove the image");
                if repair && !in_use(&img.id) {
                    remove.push(img.id.to_string());
                    r.problems[i].repaired = true;
                }
                continue;
            }
        };
        if chain_ids(config.diff_ids()) != img.chain_ids {
            let i = r.problem(
                format!("image {name}: its record's layers are not its config's"),
                "remove the image",
            );
            if repair && !in_use(&img.id) {
                remove.push(img.id.to_string());
                r.problems[i].repaired = true;
            }
            continue;
        }
        let gone: Vec<&Digest> = img
            .chain_ids
            .iter()
            .filter(|c| bad_snaps.contains(*c) || !snaps.exists(c))
            .collect();
        if !gone.is_empty() {
            let i = r.problem(
                format!(
                    "image {name}: snapshot{} {} missing or damaged",
                    if gone.len() > 1 { "s" } else { "" },
                    gone.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "unpack it again from its layer blobs",
            );
            if repair {
                crate::image::unpack(
                    &content,
                    &snaps,
                    &img.manifest,
                    &Platform::host(),
                    &crate::layer::ApplyOptions::default(),
                )?;
                r.problems[i].repaired = true;
            }
        }
    }
    if repair && !remove.is_empty() {
        t.forget(&remove);
    }

    // Content no image references (a killed pull, load or commit).
    let mut blobs = HashSet::new();
    let mut chains = HashSet::new();
    for img in t.images() {
        blobs.extend(img.blobs.iter().cloned());
        chains.extend(img.chain_ids.iter().cloned());
    }
    let stray_blobs: Vec<Digest> = content
        .list_blobs()?
        .into_iter()
        .filter(|b| !blobs.contains(b))
        .collect();
    let stray_snaps: Vec<Digest> = snaps
        .list()?
        .into_iter()
        .filter(|c| !chains.contains(c))
        .collect();
    if !stray_blobs.is_empty() || !stray_snaps.is_empty() {
        let bytes: u64 = stray_blobs
            .iter()
            .map(|b| content.blob_size(b).unwrap_or(0))
            .chain(
                stray_snaps
                    .iter()
                    .map(|c| snaps.info(c).map(|i| i.size).unwrap_or(0)),
            )
            .sum();
        let i = r.problem(
            format!(
                "{} blob(s) and {} snapshot(s) no image references ({bytes} bytes)",
                stray_blobs.len(),
                stray_snaps.len()
            ),
            "collect them",
        );
        if repair {
            t.collect()?;
            r.problems[i].repaired = true;
        }
    }
    Ok(r)
}
