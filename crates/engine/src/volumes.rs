//! Named and anonymous volumes: a directory `<root>/volumes/<name>/_data`
//! and a row in the state database.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::Engine;
use crate::db::VolumeRow;
use crate::error::{Context, Error, Result, invalid};

/// Creates volume `name` unless it exists; returns whether it was made.
pub fn ensure(e: &mut Engine, name: &str, anonymous: bool) -> Result<bool> {
    create(e, name, anonymous, &BTreeMap::new(), &BTreeMap::new())
}

/// docker's local driver options (`volume create -o type=… -o device=…
/// -o o=…`) that Berth mounts: a tmpfs (`type=tmpfs`), or a bind of a host
/// directory (`type=none,o=bind,device=/path`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Driver {
    /// The volume's own directory.
    #[default]
    Dir,
    /// A tmpfs mounted on the volume's directory, with `o`'s options.
    Tmpfs { options: String },
    /// The host directory `device`.
    Bind { device: PathBuf },
}

/// The options file beside a volume's `_data` (none for a plain volume).
fn options_path(root: &Path, name: &str) -> PathBuf {
    root.join("volumes").join(name).join("options.json")
}

/// A volume's `-o` options as given (empty for a plain volume).
pub fn options(root: &Path, name: &str) -> Result<BTreeMap<String, String>> {
    let p = options_path(root, name);
    match fs::read(&p) {
        Ok(data) => serde_json::from_slice(&data)
            .map_err(|x| invalid("volume options", format!("{}: {x}", p.display()))),
        Err(x) if x.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(x) => Err(x).at(&p),
    }
}

/// What `-o` options make of a volume; an error for those Berth cannot mount.
pub fn driver(opts: &BTreeMap<String, String>) -> Result<Driver> {
    if let Some(k) = opts
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "device" | "o"))
    {
        return Err(invalid(
            "volume option",
            format!("invalid option key: {k:?}"),
        ));
    }
    let o = opts.get("o").map(String::as_str).unwrap_or("");
    match opts.get("type").map(String::as_str) {
        None if opts.is_empty() => Ok(Driver::Dir),
        Some("tmpfs") => Ok(Driver::Tmpfs {
            options: o.to_string(),
        }),
        Some("none") if o.split(',').any(|x| x == "bind" || x == "rbind") => {
            let device = opts
                .get("device")
                .filter(|d| d.starts_with('/'))
                .ok_or_else(|| {
                    invalid(
                        "volume option",
                        "a bind volume needs an absolute device=/path",
                    )
                })?;
            Ok(Driver::Bind {
                device: PathBuf::from(device),
            })
        }
        t => Err(invalid(
            "volume option",
            format!(
                "type={} is not supported yet (type=tmpfs, or type=none with o=bind)",
                t.unwrap_or("")
            ),
        )),
    }
}

/// Creates volume `name` with labels and `-o` options unless it exists;
/// returns whether it was made.
pub fn create(
    e: &mut Engine,
    name: &str,
    anonymous: bool,
    labels: &BTreeMap<String, String>,
    opts: &BTreeMap<String, String>,
) -> Result<bool> {
    if !crate::config::valid_volume_name(name) {
        return Err(invalid(
            "volume name",
            format!("{name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        ));
    }
    let drv = driver(opts)?;
    if e.db.volume_get(name).is_ok() {
        return Ok(false);
    }
    if let Driver::Bind { device } = &drv {
        check_device(name, device)?;
    }
    let data = crate::spec::volume_data(&e.root, name);
    fs::create_dir_all(&data).at(&data)?;
    if !opts.is_empty() {
        let p = options_path(&e.root, name);
        let text =
            serde_json::to_vec(opts).map_err(|x| invalid("volume options", x.to_string()))?;
        fs::write(&p, text).at(&p)?;
    }
    if let Driver::Tmpfs { .. } = drv {
        // Mounted once to refuse bad options now (not at the first run);
        // the volume's tmpfs is mounted while containers use it.
        let r = activate(&e.root, name).and_then(|()| unmount(&data));
        if let Err(x) = r {
            let _ = fs::remove_dir_all(e.root.join("volumes").join(name));
            return Err(x);
        }
    }
    let labels =
        serde_json::to_string(labels).map_err(|x| invalid("volume labels", x.to_string()))?;
    let made = e.db.volume_insert(&VolumeRow {
        name: name.into(),
        created_at: berth_runtime::state::now_rfc3339(),
        labels,
        anonymous,
    })?;
    if made {
        e.event("volume", "create", name, &[("driver", "local")]);
    }
    Ok(made)
}

/// A bind volume's device must be a directory (docker's local driver
/// fails the mount otherwise).
fn check_device(name: &str, device: &Path) -> Result<()> {
    match fs::metadata(device) {
        Ok(st) if st.is_dir() => Ok(()),
        Ok(_) => Err(invalid(
            format!("volume {name}"),
            format!("device {} is not a directory", device.display()),
        )),
        Err(x) => Err(invalid(
            format!("volume {name}"),
            format!("device {}: {x}", device.display()),
        )),
    }
}

/// A running container's hold on its volumes (see [`acquire`]).
#[derive(Debug, Default)]
pub struct Held {
    root: PathBuf,
    tmpfs: Vec<(String, fs::File)>,
}

/// Makes the volumes `names` ready for a container that is starting, as
/// docker's local driver mounts them: a tmpfs volume's tmpfs is mounted on
/// its directory unless a running container already has it there, and a
/// bind volume's device must exist. The container holds a shared flock on
/// each tmpfs volume's lock file while it runs: the count of its users,
/// which [`release`] reads to unmount the tmpfs after the last one stops.
pub fn acquire<'a>(root: &Path, names: impl IntoIterator<Item = &'a str>) -> Result<Held> {
    let mut held = Held {
        root: root.to_path_buf(),
        tmpfs: Vec::new(),
    };
    for name in names {
        match driver(&options(root, name)?)? {
            Driver::Dir => {}
            Driver::Bind { device } => check_device(name, &device)?,
            Driver::Tmpfs { .. } => {
                if held.tmpfs.iter().any(|(n, _)| n == name) {
                    continue;
                }
                let p = root.join("volumes").join(name).join("lock");
                let f = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&p)
                    .at(&p)?;
                berth_image::sys::flock_shared(std::os::fd::AsFd::as_fd(&f)).at(&p)?;
                activate(root, name)?;
                held.tmpfs.push((name.to_string(), f));
            }
        }
    }
    Ok(held)
}

/// Lets go of a stopped container's volumes: each tmpfs volume no other
/// running container holds is unmounted (its content goes, as with
/// docker's local driver).
pub fn release(held: Held) {
    for (name, f) in held.tmpfs {
        drop(f);
        let p = held.root.join("volumes").join(&name).join("lock");
        let Ok(f) = fs::OpenOptions::new().read(true).write(true).open(&p) else {
            continue;
        };
        // Busy: another container uses it (or is starting with it).
        if berth_image::sys::flock_exclusive(std::os::fd::AsFd::as_fd(&f), false).is_err() {
            continue;
        }
        let data = crate::spec::volume_data(&held.root, &name);
        if is_tmpfs(&data) {
            let _ = unmount(&data);
        }
    }
}

fn unmount(data: &Path) -> Result<()> {
    berth_runtime::sys::umount2(data, libc::MNT_DETACH).at(data)
}

/// Mounts a tmpfs volume's tmpfs on its directory unless it is there.
fn activate(root: &Path, name: &str) -> Result<()> {
    let Driver::Tmpfs { options } = driver(&options(root, name)?)? else {
        return Ok(());
    };
    let data = crate::spec::volume_data(root, name);
    if is_tmpfs(&data) {
        return Ok(());
    }
    let o = (!options.is_empty()).then_some(std::ffi::OsStr::new(&options));
    berth_runtime::sys::mount(
        Some("tmpfs".as_ref()),
        &data,
        Some("tmpfs".as_ref()),
        libc::MS_NOSUID | libc::MS_NODEV,
        o,
    )
    .at(&data)
}

fn is_tmpfs(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct; `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC }
}

/// Where a container's bind of volume `name` comes from: the volume's
/// directory, or a bind volume's host directory.
pub fn source(root: &Path, name: &str) -> Result<PathBuf> {
    Ok(match driver(&options(root, name)?)? {
        Driver::Bind { device } => device,
        _ => crate::spec::volume_data(root, name),
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
    // A tmpfs or bind volume is not replaced by a seeded copy.
    if driver(&options(root, name)?)? != Driver::Dir {
        return Ok(());
    }
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
    Ok(mounted_by(&e.db.list()?, name))
}

fn mounted_by(rows: &[crate::ContainerRow], name: &str) -> Vec<String> {
    rows.iter()
        .filter(|r| {
            crate::row_config(r)
                .mounts
                .iter()
                .any(|m| m.kind == "volume" && m.source == name)
        })
        .map(|r| r.id.clone())
        .collect()
}

/// Removes a volume; `force` skips the in-use check (for the container
/// that owns an anonymous volume, being removed).
///
/// The in-use check and the record's deletion are one transaction, and `create` makes sure
/// of its volumes again once its container is recorded: a `run -v NAME:…` racing this
/// either is seen here (refused, in use) or finds the volume gone and makes it anew, never a
/// container whose volume directory vanished under it (issue 19).
pub fn remove(e: &mut Engine, name: &str, force: bool) -> Result<()> {
    e.db.volume_get(name)?;
    e.db.remove_volume_unless_used(name, |rows| {
        let u = mounted_by(rows, name);
        match u.is_empty() || force {
            true => Ok(()),
            false => Err(Error::InUse(format!(
                "remove {name}: volume is in use - [{}]",
                u.join(", ")
            ))),
        }
    })?;
    let dir = e.root.join("volumes").join(name);
    if let Driver::Tmpfs { .. } = driver(&options(&e.root, name)?)? {
        let data = crate::spec::volume_data(&e.root, name);
        if is_tmpfs(&data) {
            unmount(&data)?;
        }
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).at(&dir)?;
    }
    e.event("volume", "destroy", name, &[("driver", "local")]);
    Ok(())
}

/// `volume prune`: unused anonymous volumes (all unused with `all`);
/// their names and the bytes freed.
pub fn prune(e: &mut Engine, all: bool) -> Result<(Vec<String>, u64)> {
    e.prune_volumes(all, &crate::prune::PruneFilter::default())
}
