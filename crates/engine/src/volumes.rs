//! Named and anonymous volumes: a directory `<root>/volumes/<name>/_data`
//! and a row in the state database.

use std::fs;

use crate::Engine;
use crate::db::VolumeRow;
use crate::error::{Context, Error, Result, invalid};

/// Creates volume `name` unless it exists; returns whether it was made.
pub fn ensure(e: &mut Engine, name: &str, anonymous: bool) -> Result<bool> {
    create(e, name, anonymous, &std::collections::BTreeMap::new())
}

/// `volume create --label`: a named volume with labels (an existing one is
/// kept as it is, as docker does); whether it was made.
pub fn create(
    e: &mut Engine,
    name: &str,
    anonymous: bool,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<bool> {
    if !crate::config::valid_volume_name(name) {
        return Err(invalid(
            "volume name",
            format!("{name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        ));
    }
    let data = crate::spec::volume_data(&e.root, name);
    fs::create_dir_all(&data).at(&data)?;
    e.db.volume_insert(&VolumeRow {
        name: name.into(),
        created_at: berth_runtime::state::now_rfc3339(),
        labels: serde_json::to_string(labels).unwrap_or_else(|_| "{}".into()),
        anonymous,
    })
}

/// Copies what the image has at `target` (resolved in the container's root
/// `rootfs`) into volume `name` when the volume is empty, with owners,
/// modes and the directory's own owner and mode: docker's copy of image
/// content into a new volume. Nothing when the image has no directory
/// there.
pub fn seed(
    root: &std::path::Path,
    name: &str,
    rootfs: &std::path::Path,
    target: &str,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let data = crate::spec::volume_data(root, name);
    if fs::read_dir(&data).at(&data)?.next().is_some() {
        return Ok(());
    }
    let Some(st) = berth_image::copy::stat_in_root(rootfs, target, true)? else {
        return Ok(());
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Ok(());
    }
    // Into a directory beside `_data`, renamed over it when whole: a
    // failed copy leaves the volume empty (and seeded again next time).
    let tmp = data.with_file_name(format!("_data.seeding.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).at(&tmp)?;
    let r = (|| -> Result<()> {
        let (rd, wr) = berth_runtime::sys::pipe().what(|| "pipe".into())?;
        let src = format!("{}/.", target.trim_end_matches('/'));
        std::thread::scope(|s| -> Result<()> {
            let writer = s.spawn(move || {
                let mut w = fs::File::from(wr);
                berth_image::copy::archive_path(rootfs, &src, true, None, &mut w)
            });
            let extracted = berth_image::copy::extract_to(&tmp, "/", fs::File::from(rd), true);
            let written = writer
                .join()
                .map_err(|_| Error::Other(format!("seeding volume {name} panicked")))?;
            written?;
            extracted?;
            Ok(())
        })?;
        std::os::unix::fs::chown(&tmp, Some(st.st_uid), Some(st.st_gid)).at(&tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(st.st_mode & 0o7777)).at(&tmp)?;
        // `_data` is empty: rename(2) replaces an empty directory.
        fs::rename(&tmp, &data).at(&data)
    })();
    if r.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    r
}

/// Containers (ids) that mount volume `name`.
pub fn users(e: &Engine, name: &str) -> Result<Vec<String>> {
    Ok(e.db
        .list()?
        .into_iter()
        .filter(|r| {
            crate::row_config(r)
                .mounts
                .iter()
                .any(|m| m.kind == "volume" && m.source == name)
        })
        .map(|r| r.id)
        .collect())
}

/// Removes a volume; `force` skips the in-use check (for the container
/// that owns an anonymous volume, being removed).
pub fn remove(e: &mut Engine, name: &str, force: bool) -> Result<()> {
    e.db.volume_get(name)?;
    if !force {
        let u = users(e, name)?;
        if !u.is_empty() {
            return Err(Error::InUse(format!(
                "remove {name}: volume is in use - [{}]",
                u.join(", ")
            )));
        }
    }
    let dir = e.root.join("volumes").join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).at(&dir)?;
    }
    e.db.volume_remove(name)
}

/// `volume prune`: unused anonymous volumes (all unused with `all`);
/// their names and the bytes freed.
pub fn prune(e: &mut Engine, all: bool) -> Result<(Vec<String>, u64)> {
    let mut removed = Vec::new();
    let mut bytes = 0;
    for v in e.db.volume_list()? {
        if (v.anonymous || all) && users(e, &v.name)?.is_empty() {
            bytes += crate::dir_size(&crate::spec::volume_data(&e.root, &v.name));
            remove(e, &v.name, true)?;
            removed.push(v.name);
        }
    }
    Ok((removed, bytes))
}
