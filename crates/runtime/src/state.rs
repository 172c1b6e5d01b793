//! Container state kept under the runtime root (`--root`, default
//! `/run/berth-oci`): one directory per container with `state.json`, a copy
//! of the config, and `exec.sock` while the container is created but not
//! yet started.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups::CgroupPaths;
use crate::error::{Context, Error, Result};
use crate::spec::OCI_VERSION;

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
/// Unix socket init listens on until `start` connects to it.
pub const EXEC_SOCK: &str = "exec.sock";

/// The runtime-spec's container statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the runtime records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/PID/stat) so that a reused
    /// pid is never mistaken for the container.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: CgroupPaths,
    #[serde(default)]
    pub rootless: bool,
}

/// The state object of runtime.md, as `state` prints it and hooks read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// Checks a container id the way runc does: letters, digits and `_+-.`,
/// never `.` or `..`, so an id can never name a path outside the root.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidId(id.into(), "must not be empty"));
    }
    if id == "." || id == ".." {
        return Err(Error::InvalidId(id.into(), "must not be . or .."));
    }
    if id.len() > 1024 {
        return Err(Error::InvalidId(id.into(), "longer than 1024 bytes"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
    {
        return Err(Error::InvalidId(
            id.into(),
            "only letters, digits and _ + - . are allowed",
        ));
    }
    Ok(())
}

/// The runtime's state root.
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
}

impl Root {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Root { path: path.into() }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.path.join(id)
    }

    /// Compiled seccomp programs (`seccomp::precompile`); `@` is not
    /// allowed in a container id, so this never names a container.
    pub fn seccomp_cache(&self) -> PathBuf {
        self.path.join("@seccomp")
    }

    /// Creates the container's state directory; fails if the id is taken.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        std::fs::create_dir_all(&self.path).at(&self.path)?;
        set_mode(&self.path, 0o711);
        let dir = self.dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                set_mode(&dir, 0o711);
                Ok(dir)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.into()))
            }
            Err(e) => Err(e).at(dir),
        }
    }

    pub fn load(&self, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = self.dir(id);
        let path = dir.join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotExist(id.into()));
            }
            Err(e) => return Err(e).at(path),
        };
        let record: ContainerRecord = serde_json::from_slice(&data).map_err(|e| Error::State {
            id: id.into(),
            msg: format!("{}: {e}", path.display()),
        })?;
        Ok(Container { dir, record })
    }

    /// Ids of every container with a state file, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let rd = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e).at(&self.path),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}

/// A container known to the runtime.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub record: ContainerRecord,
}

impl Container {
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The current status, derived from the process and the exec socket.
    pub fn status(&self) -> Status {
        if !pid_is(self.record.pid, self.record.pid_start) {
            return Status::Stopped;
        }
        if self.dir.join(EXEC_SOCK).exists() {
            return Status::Created;
        }
        if self.record.cgroup.is_frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn oci_state(&self) -> OciState {
        let status = self.status();
        OciState {
            oci_version: OCI_VERSION.into(),
            id: self.record.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.record.pid
            },
            status,
            bundle: self.record.bundle.clone(),
            rootfs: self.record.rootfs.clone(),
            created: self.record.created.clone(),
            owner: self.record.owner.clone(),
            annotations: self.record.annotations.clone(),
        }
    }

    pub fn config(&self) -> Result<Spec> {
        let p = self.dir.join(CONFIG_FILE);
        let data = std::fs::read(&p).at(&p)?;
        serde_json::from_slice(&data).map_err(|e| Error::State {
            id: self.record.id.clone(),
            msg: format!("{}: {e}", p.display()),
        })
    }
}

/// Writes `data` to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_replace(path, data, true)
}

/// Writes `data` to a temp file and renames it over `path`, so readers see
/// the old or the new content, never a part. `durable` adds an fsync; the
/// runtime's own state lives only as long as the boot and skips it.
pub fn write_replace(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).at(&tmp)?;
    f.write_all(data).at(&tmp)?;
    if durable {
        f.sync_all().at(&tmp)?;
    }
    drop(f);
    std::fs::rename(&tmp, path).at(path)
}

pub fn save_record(dir: &Path, record: &ContainerRecord) -> Result<()> {
    let data = serde_json::to_vec(record).map_err(|e| Error::State {
        id: record.id.clone(),
        msg: e.to_string(),
    })?;
    write_replace(&dir.join(STATE_FILE), &data, false)
}

/// Start time (clock ticks since boot) of a process, from /proc/PID/stat.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    // Fields after the command: state is field 3, starttime field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The one-letter state of a process ('Z' for a zombie).
pub fn pid_state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    rest.split_whitespace().next()?.chars().next()
}

/// Whether `pid` is alive (not a zombie) and is the process started at
/// `start`.
pub fn pid_is(pid: i32, start: u64) -> bool {
    pid > 0 && pid_start_time(pid) == Some(start) && pid_state(pid).is_some_and(|c| c != 'Z')
}

/// Current time as RFC 3339 with nanoseconds, in UTC (what runc prints).
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b", "a\0b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_790_000_000, 0), "2026-09-21T14:13:20.000000000Z");
    }

    #[test]
    fn own_pid_is_alive() {
        let pid = std::process::id() as i32;
        let st = pid_start_time(pid).unwrap();
        assert!(pid_is(pid, st));
        assert!(!pid_is(pid, st + 1));
    }
}
