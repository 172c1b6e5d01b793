//! Rootless Berth: the engine run by an ordinary user.
//!
//! As podman does, every `berth` command of a non-root user runs inside one
//! user namespace (with its own mount namespace) that maps root to the user
//! and the user's subordinate ids (`/etc/subuid`, `/etc/subgid`, written
//! through the setuid `newuidmap`/`newgidmap`) to 1…N. A small "pause"
//! process holds the two namespaces; the first command creates it, every
//! later one joins it (`setns`) before it does anything else, so the
//! overlay mounts of one command are there for the next. Inside, the
//! engine is root: it unpacks layers with their owners, mounts overlayfs
//! (`userxattr`), creates namespaces and runs containers, and everything it
//! writes on disk belongs to the user or the user's subordinate ids.
//!
//! ```text
//! $XDG_DATA_HOME/berth (~/.local/share/berth)   images, containers, volumes, state.db
//! $XDG_RUNTIME_DIR/berth/                       runtime state, monitors
//! $XDG_RUNTIME_DIR/berth/pause.pid, pause.lock  the namespace holder
//! ```
//!
//! Must be entered first thing in `main`: joining a user namespace needs a
//! single-threaded process.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::sys;

/// Set (to `1`) by [`enter`] for this process and everything it starts:
/// the monitors, which are re-executed `berth`s, find themselves rootless
/// inside the namespace.
pub const ENV: &str = "_BERTH_ROOTLESS";

/// The pause process' name (`/proc/PID/comm`).
const PAUSE_COMM: &str = "berth-pause";

#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error(
        "rootless berth needs XDG_RUNTIME_DIR, the user's runtime directory \
         (systemd-logind makes /run/user/{uid}); set it, e.g. \
         `export XDG_RUNTIME_DIR=/run/user/{uid}` with that directory owned by you and mode 0700"
    )]
    NoRuntimeDir { uid: u32 },
    #[error("XDG_RUNTIME_DIR {path}: {reason}")]
    BadRuntimeDir { path: PathBuf, reason: String },
    #[error("rootless berth needs HOME or XDG_DATA_HOME for its store")]
    NoDataDir,
    #[error("{what}: {err}")]
    Sys { what: String, err: io::Error },
    #[error("{prog} failed ({status}): {stderr}")]
    IdMap {
        prog: String,
        status: String,
        stderr: String,
    },
}

type Result<T> = std::result::Result<T, RootlessError>;

fn sys_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> RootlessError {
    let what = what.into();
    move |err| RootlessError::Sys { what, err }
}

/// Whether this berth is rootless: run by a user other than root, or inside
/// the namespace [`enter`] made.
pub fn active() -> bool {
    std::env::var_os(ENV).is_some_and(|v| v == "1") || sys::geteuid() != 0
}

/// The rootless store: `$XDG_DATA_HOME/berth`, else `~/.local/share/berth`.
pub fn data_root() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d).join("berth"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".local/share/berth"))
        .ok_or(RootlessError::NoDataDir)
}

/// The rootless runtime directory: `$XDG_RUNTIME_DIR/berth`.
pub fn run_root() -> Result<PathBuf> {
    let uid = host_uid();
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or(RootlessError::NoRuntimeDir { uid })?;
    Ok(dir.join("berth"))
}

/// The state root when none is given: the user's store when rootless, else
/// `/var/lib/berth`.
pub fn default_root() -> PathBuf {
    if active()
        && let Ok(d) = data_root()
    {
        return d;
    }
    PathBuf::from(crate::DEFAULT_ROOT)
}

/// The user's id on the host (outside the namespace: its uid_map's entry
/// for 0; our own uid before entering).
pub fn host_uid() -> u32 {
    outside_id("/proc/self/uid_map").unwrap_or_else(sys::geteuid)
}

/// The user's group on the host.
pub fn host_gid() -> u32 {
    outside_id("/proc/self/gid_map").unwrap_or_else(sys::getegid)
}

/// The host id that 0 maps to, when this process is in a user namespace
/// other than the initial one.
fn outside_id(map: &str) -> Option<u32> {
    let maps = parse_id_map(&fs::read_to_string(map).ok()?);
    if maps.len() == 1 && maps[0] == (0, 0, u32::MAX) {
        return None;
    }
    maps.iter()
        .find(|(inside, _, _)| *inside == 0)
        .map(|(_, outside, _)| *outside)
}

/// `/proc/PID/uid_map`: (inside, outside, count) lines.
pub fn parse_id_map(text: &str) -> Vec<(u32, u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().map(|x| x.parse::<u32>());
            match (w.next(), w.next(), w.next()) {
                (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Some((a, b, c)),
                _ => None,
            }
        })
        .collect()
}

/// Whether this process is in a user namespace other than the initial one.
pub fn in_user_namespace() -> bool {
    sys::in_user_namespace()
}

/// A user's subordinate ids, from `/etc/subuid` or `/etc/subgid`: lines
/// `NAME:START:COUNT` or `UID:START:COUNT`.
pub fn subordinate_ranges(text: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut f = l.splitn(3, ':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != name && who.parse::<u32>().ok() != Some(id) {
                return None;
            }
            let start = start.trim().parse::<u32>().ok()?;
            let count = count.trim().parse::<u32>().ok()?;
            (count > 0).then_some((start, count))
        })
        .collect()
}

/// The maps of the namespace for `id`: 0 is the user, 1… the ranges in
/// order. (inside, outside, count) triples.
pub fn id_maps(id: u32, ranges: &[(u32, u32)]) -> Vec<(u32, u32, u32)> {
    let mut maps = vec![(0, id, 1)];
    let mut next = 1u32;
    for &(start, count) in ranges {
        maps.push((next, start, count));
        next = next.saturating_add(count);
    }
    maps
}

/// The user's name, from the passwd database.
fn user_name(uid: u32) -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _ = f.next();
        (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// The ranges of the calling user (before entering).
/// (start, count) ranges of subordinate ids.
type Ranges = Vec<(u32, u32)>;

fn own_ranges() -> (Ranges, Ranges) {
    let uid = sys::geteuid();
    let read = |f: &str| fs::read_to_string(f).unwrap_or_default();
    let uname = user_name(uid).unwrap_or_default();
    // newgidmap, too, looks the user (not the group) up in /etc/subgid.
    let sub_uid = subordinate_ranges(&read("/etc/subuid"), &uname, uid);
    let sub_gid = subordinate_ranges(&read("/etc/subgid"), &uname, uid);
    (sub_uid, sub_gid)
}

/// What `berth info` shows of the namespace.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Info {
    pub rootless: bool,
    /// (inside, outside, count).
    pub uid_map: Vec<(u32, u32, u32)>,
    pub gid_map: Vec<(u32, u32, u32)>,
}

pub fn info() -> Info {
    let read = |f: &str| parse_id_map(&fs::read_to_string(f).unwrap_or_default());
    Info {
        rootless: active(),
        uid_map: read("/proc/self/uid_map"),
        gid_map: read("/proc/self/gid_map"),
    }
}

/// Whether the namespace maps only the user (no subordinate ids): layers
/// with files of other owners are then given to root.
pub fn single_id() -> bool {
    let map = parse_id_map(&fs::read_to_string("/proc/self/uid_map").unwrap_or_default());
    active() && map.iter().map(|m| u64::from(m.2)).sum::<u64>() == 1
}

/// podman's words for the same case.
pub const LIMITS_IGNORED: &str =
    "Resource limits are not supported and ignored on cgroups V1 rootless systems";

/// A rootless engine cannot enforce cgroup limits without a cgroup tree of
/// its own (cgroup v2 with a delegated subtree): they are dropped, with
/// podman's warning, which is returned. Nothing when none was asked for.
pub fn drop_limits(cfg: &mut crate::RunConfig) -> Option<String> {
    let cpu = cfg.nano_cpus.is_some()
        || cfg.cpu_shares.is_some()
        || cfg.cpu_quota.is_some()
        || cfg.cpu_period.is_some()
        || cfg.cpu_rt_period.is_some()
        || cfg.cpu_rt_runtime.is_some();
    let memory = cfg.memory.is_some()
        || cfg.memory_swap.is_some()
        || cfg.memory_reservation.is_some()
        || cfg.memory_swappiness.is_some()
        || cfg.oom_kill_disable;
    let need: Vec<&str> = [
        (memory, "memory"),
        (cpu, "cpu"),
        (
            cfg.cpuset_cpus.is_some() || cfg.cpuset_mems.is_some(),
            "cpuset",
        ),
        (cfg.pids_limit.is_some_and(|p| p > 0), "pids"),
        (crate::spec::wants_block_io(cfg), "io"),
    ]
    .into_iter()
    .filter_map(|(asked, c)| asked.then_some(c))
    .collect();
    if need.is_empty() {
        return None;
    }
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let why = match delegated_cgroup() {
        Some(parent) => {
            let have = fs::read_to_string(unified_dir(&parent).join("cgroup.subtree_control"))
                .unwrap_or_default();
            let missing: Vec<&str> = need
                .into_iter()
                .filter(|c| !have.split_whitespace().any(|h| h == *c))
                .collect();
            if missing.is_empty() {
                return None;
            }
            format!(
                "Resource limits are ignored: the delegated cgroup {} does not enable {}",
                parent.display(),
                missing.join(", ")
            )
        }
        None if v2 => {
            "Resource limits are ignored: this rootless user has no delegated cgroup v2 subtree"
                .into()
        }
        None => LIMITS_IGNORED.into(),
    };
    cfg.memory = None;
    cfg.memory_swap = None;
    cfg.nano_cpus = None;
    cfg.cpu_shares = None;
    cfg.cpu_quota = None;
    cfg.cpu_period = None;
    cfg.cpuset_cpus = None;
    cfg.pids_limit = None;
    cfg.memory_reservation = None;
    cfg.memory_swappiness = None;
    cfg.oom_kill_disable = false;
    cfg.cpuset_mems = None;
    cfg.cpu_rt_period = None;
    cfg.cpu_rt_runtime = None;
    cfg.blkio_weight = None;
    cfg.blkio_weight_device.clear();
    cfg.device_read_bps.clear();
    cfg.device_write_bps.clear();
    cfg.device_read_iops.clear();
    cfg.device_write_iops.clear();
    Some(why)
}

/// An id mapping of a container's own user namespace: (container id, id in
/// the engine's namespace, count).
pub type IdMapping = (u32, u32, u32);

/// `--uidmap`/`--gidmap`: `CONTAINER:HOST:SIZE`.
pub fn parse_id_mapping(flag: &str, s: &str) -> crate::Result<IdMapping> {
    let bad = || crate::error::invalid(flag, format!("{s:?}: expected CONTAINER_ID:HOST_ID:SIZE"));
    let mut f = s.split(':').map(|x| x.trim().parse::<u32>());
    match (f.next(), f.next(), f.next(), f.next()) {
        (Some(Ok(c)), Some(Ok(h)), Some(Ok(n)), None) if n > 0 => Ok((c, h, n)),
        _ => Err(bad()),
    }
}

/// `--userns keep-id`: the user's own id `id` inside the container is the
/// user (0 in the engine's namespace, which maps `total` ids); the ids
/// below and above it are the subordinate ones, in order.
pub fn keep_id_maps(id: u32, total: u32) -> Vec<IdMapping> {
    let mut maps = vec![];
    let below = id.min(total.saturating_sub(1));
    if below > 0 {
        maps.push((0, 1, below));
    }
    maps.push((id, 0, 1));
    let above = total.saturating_sub(below + 1);
    if above > 0 {
        maps.push((id + 1, below + 1, above));
    }
    maps
}

/// How many ids the engine's namespace maps (all of them for root).
fn mapped_count(map_file: &str) -> u32 {
    let maps = parse_id_map(&fs::read_to_string(map_file).unwrap_or_default());
    maps.iter()
        .map(|m| u64::from(m.2))
        .sum::<u64>()
        .min(u64::from(u32::MAX)) as u32
}

/// The user namespace a container gets of its own (`--userns keep-id`,
/// `--uidmap`/`--gidmap`): its uid and gid maps, and the user it runs as
/// unless `--user` says otherwise. None: it shares the engine's.
#[allow(clippy::type_complexity)]
pub fn container_userns(
    cfg: &crate::RunConfig,
) -> crate::Result<Option<(Vec<IdMapping>, Vec<IdMapping>, Option<String>)>> {
    fn invalid(what: &str, reason: impl Into<String>) -> crate::Error {
        crate::error::invalid(what, reason)
    }
    match cfg.userns.as_str() {
        "" => {}
        "host" if active() => {
            return Err(invalid(
                "--userns",
                "host: a rootless container cannot share the host's user namespace \
                 (it runs in the user's, where root is the user)",
            ));
        }
        "host" => {}
        "keep-id" if !active() => {
            return Err(invalid("--userns", "keep-id is only for a rootless berth"));
        }
        "keep-id" => {
            if !cfg.uid_maps.is_empty() || !cfg.gid_maps.is_empty() {
                return Err(invalid(
                    "--userns",
                    "keep-id cannot be combined with --uidmap/--gidmap",
                ));
            }
            let (uid, gid) = (host_uid(), host_gid());
            let uids = keep_id_maps(uid, mapped_count("/proc/self/uid_map"));
            let gids = keep_id_maps(gid, mapped_count("/proc/self/gid_map"));
            return Ok(Some((uids, gids, Some(format!("{uid}:{gid}")))));
        }
        other => {
            return Err(invalid(
                "--userns",
                format!("{other:?}: supported are host and keep-id (rootless)"),
            ));
        }
    }
    if cfg.uid_maps.is_empty() && cfg.gid_maps.is_empty() {
        return Ok(None);
    }
    if cfg.userns == "host" {
        return Err(invalid(
            "--userns",
            "host cannot be combined with --uidmap/--gidmap",
        ));
    }
    let parse = |flag: &str, v: &[String]| -> crate::Result<Vec<IdMapping>> {
        v.iter().map(|s| parse_id_mapping(flag, s)).collect()
    };
    let uids = parse("--uidmap", &cfg.uid_maps)?;
    // podman: one of the two stands for both when the other is missing.
    let gids = if cfg.gid_maps.is_empty() {
        uids.clone()
    } else {
        parse("--gidmap", &cfg.gid_maps)?
    };
    let uids = if cfg.uid_maps.is_empty() {
        gids.clone()
    } else {
        uids
    };
    for (flag, maps, file) in [
        ("--uidmap", &uids, "/proc/self/uid_map"),
        ("--gidmap", &gids, "/proc/self/gid_map"),
    ] {
        let have = u64::from(mapped_count(file));
        if let Some(m) = maps.iter().find(|m| u64::from(m.1) + u64::from(m.2) > have) {
            return Err(invalid(
                flag,
                format!(
                    "{}:{}:{} reaches past the {have} ids berth's namespace has",
                    m.0, m.1, m.2
                ),
            ));
        }
    }
    // The container's root filesystem and its files (resolv.conf, hosts)
    // belong to the engine's root; a namespace without it cannot reach them.
    if !uids.iter().any(|m| m.1 == 0) {
        return Err(invalid(
            "--uidmap",
            "the maps must include HOST id 0 (berth's own root, who owns the container's files)",
        ));
    }
    Ok(Some((uids, gids, None)))
}

/// The cgroup v2 mount point (`/sys/fs/cgroup`) joined with a cgroup path.
fn unified_dir(cgroup: &Path) -> PathBuf {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    PathBuf::from("/sys/fs/cgroup").join(rel)
}

/// cgroup v2 delegation (systemd's `Delegate=yes` for user@UID.service, or an
/// administrator's chown): the cgroup under which a rootless engine makes
/// its containers' cgroups, the parent of its own when the user owns it and
/// its `cgroup.procs`. None on cgroup v1 or without delegation.
pub fn delegated_cgroup() -> Option<PathBuf> {
    if !active() || !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return None;
    }
    let own = berth_runtime::cgroups::own_unified_path()?;
    let parent = own.parent()?;
    if parent == Path::new("/") {
        return None;
    }
    let dir = unified_dir(parent);
    let me = sys::geteuid();
    let owned = |p: &Path| fs::metadata(p).is_ok_and(|m| m.uid() == me);
    (owned(&dir) && owned(&dir.join("cgroup.procs")) && owned(&dir.join("cgroup.subtree_control")))
        .then(|| parent.to_path_buf())
}

/// Enters (creating it if needed) the user's namespace and executes this
/// program again inside it (with [`ENV`] set); nothing for root or when
/// already inside. Call before any thread is started.
pub fn enter() -> Result<()> {
    if sys::geteuid() == 0 {
        return Ok(());
    }
    let uid = sys::geteuid();
    let run = run_root()?;
    check_runtime_dir(run.parent().unwrap_or(Path::new("/")), uid)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&run)
        .map_err(sys_err(format!("creating {}", run.display())))?;
    let cwd = std::env::current_dir().ok();
    let lock_path = run.join("pause.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&lock_path)
        .map_err(sys_err(format!("opening {}", lock_path.display())))?;
    flock(&lock)?;
    let pid_file = run.join("pause.pid");
    let pid = match read_pause_pid(&pid_file).filter(|&p| is_pause(p, uid)) {
        Some(p) => p,
        None => {
            let p = spawn_pause(lock.as_fd())?;
            let tmp = run.join("pause.pid.tmp");
            fs::write(&tmp, format!("{p}\n"))
                .and_then(|()| fs::rename(&tmp, &pid_file))
                .map_err(sys_err(format!("writing {}", pid_file.display())))?;
            p
        }
    };
    join(pid)?;
    drop(lock);
    // setns(CLONE_NEWNS) moved us to the namespace's root: back to where
    // the user was (the same path: the namespace is a copy of the host's).
    if let Some(c) = cwd {
        let _ = std::env::set_current_dir(c);
    }
    // Executed again, now inside: a process keeps the user namespace its
    // memory was made in, and the kernel checks access to the /proc files
    // of its non-dumpable children (a container's init before its exec)
    // against that one, where we are nobody.
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    let err = Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env(ENV, "1")
        .exec();
    Err(RootlessError::Sys {
        what: "executing berth again inside the user namespace".into(),
        err,
    })
}

fn check_runtime_dir(dir: &Path, uid: u32) -> Result<()> {
    let bad = |reason: String| RootlessError::BadRuntimeDir {
        path: dir.to_path_buf(),
        reason,
    };
    let m = fs::metadata(dir).map_err(|e| bad(e.to_string()))?;
    if !m.is_dir() {
        return Err(bad("not a directory".into()));
    }
    if m.uid() != uid {
        return Err(bad(format!(
            "owned by uid {}, not by you (uid {uid})",
            m.uid()
        )));
    }
    Ok(())
}

fn flock(f: &fs::File) -> Result<()> {
    // SAFETY: a valid descriptor.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    sys::check(r)
        .map(drop)
        .map_err(sys_err("locking pause.lock"))
}

fn read_pause_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A live pause process of ours (not a pid reused by something else).
fn is_pause(pid: i32, uid: u32) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let comm_ok = fs::read_to_string(proc.join("comm")).is_ok_and(|c| c.trim() == PAUSE_COMM);
    let owner_ok = fs::metadata(&proc).is_ok_and(|m| m.uid() == uid);
    // A zombie (killed, not yet reaped) keeps its name and, with its
    // credentials, its user namespace, but not its mount namespace.
    let alive =
        fs::metadata(proc.join("ns/user")).is_ok() && fs::metadata(proc.join("ns/mnt")).is_ok();
    comm_ok && owner_ok && alive
}

fn join(pid: i32) -> Result<()> {
    let open = |ns: &str| {
        let p = PathBuf::from(format!("/proc/{pid}/ns/{ns}"));
        sys::open(&p, libc::O_RDONLY | libc::O_CLOEXEC, 0)
            .map_err(sys_err(format!("opening {}", p.display())))
    };
    let user = open("user")?;
    let mnt = open("mnt")?;
    sys::setns(user.as_fd(), libc::CLONE_NEWUSER)
        .map_err(sys_err(format!("joining the user namespace of pid {pid}")))?;
    sys::setns(mnt.as_fd(), libc::CLONE_NEWNS)
        .map_err(sys_err(format!("joining the mount namespace of pid {pid}")))?;
    Ok(())
}

/// Forks the pause process, maps its namespace and returns its pid. `lock`
/// is closed in the child (the lock belongs to this command).
fn spawn_pause(lock: std::os::fd::BorrowedFd<'_>) -> Result<i32> {
    let (ours, theirs) = UnixStream::pair().map_err(sys_err("socketpair"))?;
    let pid = fork().map_err(sys_err("fork"))?;
    if pid == 0 {
        drop(ours);
        pause_child(theirs, lock.as_raw_fd());
    }
    drop(theirs);
    let mut ours = ours;
    let fail = |what: &str, err: io::Error, pid: i32| {
        let _ = sys::kill(pid, libc::SIGKILL);
        let _ = sys::waitpid(pid, false);
        RootlessError::Sys {
            what: what.to_string(),
            err,
        }
    };
    let mut b = [0u8; 1];
    if let Err(e) = ours.read_exact(&mut b) {
        return Err(fail("the pause process did not start", e, pid));
    }
    if b[0] != b'U' {
        return Err(fail(
            "creating a user namespace (unshare)",
            io::Error::from_raw_os_error(b[0] as i32),
            pid,
        ));
    }
    if let Err(e) = write_maps(pid) {
        let _ = sys::kill(pid, libc::SIGKILL);
        let _ = sys::waitpid(pid, false);
        return Err(e);
    }
    if let Err(e) = ours.write_all(b"G") {
        return Err(fail("the pause process", e, pid));
    }
    if let Err(e) = ours.read_exact(&mut b) {
        return Err(fail("the pause process did not finish its setup", e, pid));
    }
    if b[0] != b'R' {
        return Err(fail(
            "setting up the pause process' mount namespace",
            io::Error::from_raw_os_error(b[0] as i32),
            pid,
        ));
    }
    // The child double-forked nothing: it lives on, a child of this process
    // until we exit, then init's.
    Ok(pid)
}

/// Writes the pause process' uid and gid maps: through newuidmap and
/// newgidmap with the user's subordinate ids, or just the user's own ids
/// (no subordinate ranges).
fn write_maps(pid: i32) -> Result<()> {
    let uid = sys::geteuid();
    let gid = sys::getegid();
    let (sub_uid, sub_gid) = own_ranges();
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if sub_uid.is_empty() || sub_gid.is_empty() {
        // Our own id only: allowed to an unprivileged writer once
        // setgroups is denied.
        let w = |f: &str, s: String| {
            fs::write(proc.join(f), s).map_err(sys_err(format!("writing /proc/{pid}/{f}")))
        };
        w("setgroups", "deny".into())?;
        w("uid_map", format!("0 {uid} 1\n"))?;
        w("gid_map", format!("0 {gid} 1\n"))?;
        return Ok(());
    }
    for (prog, maps) in [
        ("newuidmap", id_maps(uid, &sub_uid)),
        ("newgidmap", id_maps(gid, &sub_gid)),
    ] {
        let mut c = Command::new(prog);
        c.arg(pid.to_string());
        for (a, b, n) in maps {
            c.args([a.to_string(), b.to_string(), n.to_string()]);
        }
        let out = c.output().map_err(|e| RootlessError::IdMap {
            prog: prog.into(),
            status: "not run".into(),
            stderr: format!(
                "{e} (rootless berth with subordinate ids needs {prog} from Debian's uidmap package)"
            ),
        })?;
        if !out.status.success() {
            return Err(RootlessError::IdMap {
                prog: prog.into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

/// fork(2).
fn fork() -> io::Result<i32> {
    // SAFETY: called while the process is single-threaded (enter's
    // contract); the child only makes system calls before it pauses.
    sys::check(unsafe { libc::fork() })
}

/// The pause process: unshares, waits to be mapped, makes the mount tree
/// a slave of the host's and sleeps for good.
fn pause_child(mut sock: UnixStream, lock: i32) -> ! {
    // SAFETY: closing the descriptor that holds the creator's flock (it
    // must not outlive that command).
    unsafe { libc::close(lock) };
    let code = |e: io::Error| e.raw_os_error().unwrap_or(libc::EIO).clamp(1, 255) as u8;
    if let Err(e) = sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) {
        let _ = sock.write_all(&[code(e)]);
        sys::exit_now(1);
    }
    let _ = sock.write_all(b"U");
    let mut b = [0u8; 1];
    if sock.read_exact(&mut b).is_err() || b[0] != b'G' {
        sys::exit_now(1);
    }
    // Host mounts (a new USB disk, a bind) keep appearing here; ours never
    // reach the host.
    if let Err(e) = sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_SLAVE,
        None,
    ) {
        let _ = sock.write_all(&[code(e)]);
        sys::exit_now(1);
    }
    let _ = sys::setsid();
    let _ = sys::prctl(libc::PR_SET_NAME, c"berth-pause".as_ptr() as libc::c_ulong);
    let _ = std::env::set_current_dir("/");
    if let Ok(null) = sys::open(Path::new("/dev/null"), libc::O_RDWR, 0) {
        for fd in 0..3 {
            let _ = sys::dup2(null.as_raw_fd(), fd);
        }
    }
    let _ = sock.write_all(b"R");
    drop(sock);
    let _ = sys::cloexec_from(3);
    loop {
        // SAFETY: pause(2) only waits for a signal.
        unsafe { libc::pause() };
    }
}

/// The rootless engine's network namespace for user-defined networks
/// (podman's rootless-netns): bridges, veths' host ends, Berth's nftables
/// table and the published ports' DNAT live there instead of on the host,
/// and a slirp4netns of its own connects it to the host (outbound traffic;
/// published ports as host forwards to 10.0.2.100). Bound on
/// `$XDG_RUNTIME_DIR/berth/netns` in the namespace's mount tree.
pub fn netns_path() -> Result<PathBuf> {
    Ok(run_root()?.join("netns"))
}

/// The directory of the rootless namespace's slirp4netns (API socket, pid).
pub fn netns_slirp_dir() -> Result<PathBuf> {
    Ok(run_root()?.join("netns-slirp"))
}

const NSFS_MAGIC: i64 = 0x6e73_6673;

fn is_bound_netns(path: &Path) -> bool {
    sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .and_then(|fd| berth_runtime::sys::fstatfs_type(fd.as_fd()))
        .is_ok_and(|t| t == NSFS_MAGIC)
}

fn slirp_alive(dir: &Path) -> bool {
    fs::read_to_string(dir.join("pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "slirp4netns")
        })
}

/// Runs `f` in the rootless network namespace (on a thread of its own, so
/// the caller's namespace stays as it is); rootful, runs it here.
pub fn in_netns<T: Send>(f: impl FnOnce() -> T + Send) -> crate::Result<T> {
    if !active() {
        return Ok(f());
    }
    std::thread::scope(|s| {
        s.spawn(|| -> crate::Result<T> {
            enter_netns()?;
            Ok(f())
        })
        .join()
        .map_err(|_| crate::Error::Other("a thread in the rootless network namespace".into()))?
    })
}

/// Makes the rootless network namespace (and its slirp4netns) if missing
/// and moves the calling thread into it; nothing when not rootless. Later
/// threads of this one start there too.
pub fn enter_netns() -> crate::Result<()> {
    if !active() {
        return Ok(());
    }
    let path = netns_path()?;
    let slirp_dir = netns_slirp_dir()?;
    let run = run_root()?;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(run.join("netns.lock"))
        .map_err(sys_err("opening netns.lock"))?;
    flock(&lock)?;
    if !is_bound_netns(&path) {
        fs::write(&path, b"").map_err(sys_err(format!("creating {}", path.display())))?;
        let target = path.clone();
        // A thread of its own unshares: only it changes namespace.
        std::thread::spawn(move || -> io::Result<()> {
            sys::unshare(libc::CLONE_NEWNET)?;
            sys::mount(
                Some(std::ffi::OsStr::new("/proc/thread-self/ns/net")),
                &target,
                None,
                libc::MS_BIND,
                None,
            )?;
            crate::monitor::set_iface_up("lo")
        })
        .join()
        .map_err(|_| crate::Error::Other("making the rootless network namespace".into()))?
        .map_err(sys_err("making the rootless network namespace"))?;
    }
    if !slirp_alive(&slirp_dir) {
        fs::create_dir_all(&slirp_dir)
            .map_err(sys_err(format!("creating {}", slirp_dir.display())))?;
        let pid = berth_net::slirp::Slirp::start_detached(&path, &slirp_dir)?;
        fs::write(slirp_dir.join("pid"), pid.to_string())
            .map_err(sys_err("writing the slirp4netns pid"))?;
    }
    drop(lock);
    let fd = sys::open(&path, libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .map_err(sys_err(format!("opening {}", path.display())))?;
    sys::setns(fd.as_fd(), libc::CLONE_NEWNET)
        .map_err(sys_err("entering the rootless network namespace"))?;
    Ok(())
}

/// The API of the rootless namespace's slirp4netns (published ports).
pub fn netns_slirp() -> crate::Result<berth_net::slirp::Api> {
    Ok(berth_net::slirp::Api::open(&netns_slirp_dir()?)?)
}

/// Stops the pause process (`berth system migrate`): the next command
/// creates the namespace anew, with the ranges /etc/subuid has now.
/// Containers still running keep the old namespace until they stop.
pub fn stop_pause() -> Result<Option<i32>> {
    let run = run_root()?;
    let pid = read_pause_pid(&run.join("pause.pid"));
    // Owners as this process sees them: inside the namespace the user is 0.
    let uid = sys::geteuid();
    let Some(pid) = pid.filter(|&p| is_pause(p, uid)) else {
        return Ok(None);
    };
    if let Some(p) = fs::read_to_string(run.join("netns-slirp/pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        && slirp_alive(&run.join("netns-slirp"))
    {
        let _ = sys::kill(p, libc::SIGKILL);
    }
    sys::kill(pid, libc::SIGKILL).map_err(sys_err(format!("killing pause process {pid}")))?;
    let _ = fs::remove_file(run.join("pause.pid"));
    Ok(Some(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_and_uid() {
        let t = "alice:100000:65536\n# c\nbob:165536:65536\n1001:300000:10\nalice:500000:5\nbad\n";
        assert_eq!(
            subordinate_ranges(t, "alice", 1000),
            vec![(100000, 65536), (500000, 5)]
        );
        assert_eq!(subordinate_ranges(t, "carol", 1001), vec![(300000, 10)]);
        assert!(subordinate_ranges(t, "dave", 1002).is_empty());
    }

    #[test]
    fn maps_put_the_user_at_zero_and_ranges_after() {
        assert_eq!(
            id_maps(1000, &[(100000, 65536), (500000, 5)]),
            vec![(0, 1000, 1), (1, 100000, 65536), (65537, 500000, 5)]
        );
        assert_eq!(id_maps(1000, &[]), vec![(0, 1000, 1)]);
    }

    #[test]
    fn keep_id_puts_the_user_at_its_own_id() {
        // 0 → the user, 1..65536 → subordinate ids (65537 in all).
        assert_eq!(
            keep_id_maps(1000, 65537),
            vec![(0, 1, 1000), (1000, 0, 1), (1001, 1001, 64536)]
        );
        // No subordinate ids: only the user.
        assert_eq!(keep_id_maps(1000, 1), vec![(1000, 0, 1)]);
        let total: u32 = keep_id_maps(1000, 65537).iter().map(|m| m.2).sum();
        assert_eq!(total, 65537);
    }

    #[test]
    fn id_mapping_flags() {
        assert_eq!(
            parse_id_mapping("--uidmap", "0:1:100").unwrap(),
            (0, 1, 100)
        );
        assert!(parse_id_mapping("--uidmap", "0:1").is_err());
        assert!(parse_id_mapping("--uidmap", "0:1:0").is_err());
        assert!(parse_id_mapping("--uidmap", "a:1:2").is_err());
    }

    #[test]
    fn id_map_lines() {
        assert_eq!(
            parse_id_map("         0       1000          1\n         1     100000      65536\n"),
            vec![(0, 1000, 1), (1, 100000, 65536)]
        );
        assert_eq!(parse_id_map("0 0 4294967295\n"), vec![(0, 0, u32::MAX)]);
    }
}
