//! The monitor: one small process per running container (conmon's role).
//!
//! `berth start`/`run` re-executes itself as `berth --root R __monitor ID
//! FD` with one end of a socket pair as FD. The monitor forks once more
//! (its parent exits, so the CLI never waits for it), starts a session,
//! becomes a child subreaper, takes the container's monitor lock (held
//! for its whole life: "lock held" is how other commands know a monitor
//! is alive), then creates and starts the container in-process with the
//! runtime library. It is single-threaded: the runtime clones the
//! container's init from it.
//!
//! It owns the container's stdio (pipes, or a pty master for `-t`),
//! writes every byte to the json-file log and to attached clients
//! (`attach` protocol, on `<run>/<id>/attach.sock`), feeds stdin from
//! clients, reaps init, records the exit code and OOM kill, removes the
//! cgroup and runtime state, unmounts the root filesystem, and removes
//! the container for `--rm`.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_image::ContainerRootfs;
use berth_runtime::{CreateOpts, sys};

use crate::attach::{self, Decoder};
use crate::db;
use crate::error::{Context, Error, Result};
use crate::logs::LogWriter;
use crate::{Engine, RunConfig, row_config};

/// The hidden subcommand of `berth` that runs a monitor.
pub const SUBCOMMAND: &str = "__monitor";

/// The hidden subcommand of an adopter: `berth --root R __adopt ID`.
pub const ADOPT: &str = "__adopt";

/// What an adopted container's log and `State.Error` say.
pub const MONITOR_DIED: &str =
    "the container's monitor died: its output since then is lost and its exit status is unknown";

/// `State.Error` of an adopted container whose output was kept.
pub const MONITOR_DIED_OUTPUT_KEPT: &str =
    "the container's monitor died: its output was kept, its exit status is unknown";

/// Entry point of an adopter (see [`Engine::adopt`]): takes over a running
/// container whose monitor was killed. The pipes its output went through
/// died with that monitor (nothing can read them again), so the loss is
/// written into its log where `logs` shows it; then the adopter waits for
/// the container's init through a pidfd and records the exit when it
/// happens (FinishedAt is the real end, the code 255: not a child of
/// ours, its status is not ours to read), cleans up what it left, and
/// removes it when it was `--rm`. Returns the first process's exit code.
pub fn adopt_main(root: &Path, id: &str) -> i32 {
    let Ok(engine) = Engine::open(root) else {
        return 125;
    };
    let Ok(row) = engine.db.find(id) else {
        return 1;
    };
    let Ok(lock) = engine.lock_file(&row.id) else {
        return 125;
    };
    // Taken before the fork: the adopter keeps it (the same open file),
    // so the command that spawned this finds the container held when we
    // return.
    if berth_image::sys::flock_exclusive(lock.as_fd(), false).is_err() {
        return 0; // a monitor or another adopter has it
    }
    let Ok(pidfd) = sys::pidfd_open(row.pid) else {
        return 0;
    };
    // The pidfd is of the container's init only if the pid still is it.
    let active = matches!(row.state.as_str(), db::RUNNING | db::PAUSED);
    if !active || !berth_runtime::state::pid_is(row.pid, row.pid_start) {
        return 0;
    }
    let cfg = row_config(&row);
    // The output pipes, from the keeper the dead monitor left; without
    // them, what the container writes is lost, and its log says so.
    let pipes = crate::keeper::take(&engine.state_dir(&row.id));
    let mut log = LogWriter::open(
        &engine.log_path(&row.id),
        cfg.log_max_size,
        cfg.log_max_file,
    )
    .ok();
    if pipes.is_empty()
        && let Some(log) = log.as_mut()
    {
        let _ = log.write(1, format!("berth: {MONITOR_DIED}\n").as_bytes());
    }
    drop(engine);
    if !detach() {
        return 125;
    }
    let Ok(mut engine) = Engine::open(root) else {
        sys::exit_now(125);
    };
    // The dead monitor's hold on the volumes (a tmpfs volume's user count)
    // is the adopter's now.
    let held = crate::volumes::acquire(
        root,
        cfg.mounts
            .iter()
            .filter(|m| m.kind == "volume")
            .map(|m| m.source.as_str()),
    )
    .ok();
    // The container's output goes on into its log until init ends.
    let mut open: Vec<bool> = pipes.iter().map(|_| true).collect();
    let mut buf = vec![0u8; OUTPUT_PIPE];
    loop {
        let mut fds = vec![pidfd.as_fd()];
        let live: Vec<usize> = (0..pipes.len()).filter(|&i| open[i]).collect();
        fds.extend(live.iter().map(|&i| pipes[i].as_fd()));
        let Ok(ready) = sys::poll_in(&fds, 1000) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        for (k, &i) in live.iter().enumerate() {
            if ready[k + 1] {
                match sys::read(pipes[i].as_fd(), &mut buf) {
                    Ok(n) if n > 0 => {
                        if let Some(log) = log.as_mut() {
                            let _ = log.write(i.min(1), &buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    _ => open[i] = false,
                }
            }
        }
        if ready[0] || !berth_runtime::state::pid_is(row.pid, row.pid_start) {
            break;
        }
    }
    let said = if pipes.is_empty() {
        MONITOR_DIED
    } else {
        MONITOR_DIED_OUTPUT_KEPT
    };
    let finished = berth_runtime::state::now_rfc3339();
    if let Some(log) = log.as_mut() {
        crate::keeper::drain(&pipes, log);
    }
    engine.cleanup_runtime(&row.id);
    if let Some(held) = held {
        crate::volumes::release(held);
    }
    let now = engine.db.find(&row.id).unwrap_or_else(|_| row.clone());
    engine.container_event(&now, "die", &[("exitCode", "255")]);
    let _ = engine
        .db
        .set_exited(&row.id, db::EXITED, 255, false, said, &finished);
    crate::health::monitor_gone(&engine.db, &row.id);
    if cfg.auto_remove {
        let _ = engine.destroy(&now, true, Some(lock));
        sys::exit_now(0);
    }
    drop(lock);
    // Its restart policy applies as if its monitor had seen the exit: a
    // new monitor starts it (unless a command took it meanwhile).
    if restart_policy_says_again(&engine, &row.id, &cfg) {
        let _ = engine.db.bump_restart_count(&row.id);
        std::thread::sleep(Duration::from_millis(100));
        if !engine.stopped_by_user(&row.id)
            && let Ok(exe) = std::env::current_exe()
        {
            let _ = engine.start(&row.id, &exe);
        }
    }
    sys::exit_now(0)
}

/// Whether the container's restart policy starts it again now that it
/// exited (not when `--rm`, or stopped by the user).
fn restart_policy_says_again(engine: &Engine, id: &str, cfg: &RunConfig) -> bool {
    if cfg.auto_remove || engine.stopped_by_user(id) {
        return false;
    }
    // Read from the record, not the config the container started with:
    // `update --restart` changes it for a running container.
    let Ok(row) = engine.db.find(id) else {
        return false;
    };
    let Ok(policy) = crate::config::parse_restart(&crate::row_config(&row).restart) else {
        return false;
    };
    match policy {
        crate::config::RestartPolicy::No => false,
        crate::config::RestartPolicy::Always => true,
        crate::config::RestartPolicy::UnlessStopped => !engine.killed_by_user(id),
        crate::config::RestartPolicy::OnFailure(max) => {
            row.exit_code != 0 && max.is_none_or(|m| row.restart_count < i64::from(m))
        }
    }
}

/// Takes ownership of the socket the CLI passed as `fd`.
fn inherited_socket(fd: i32) -> Option<UnixStream> {
    if fd < 3 {
        return None;
    }
    // Check that the descriptor is open before owning it.
    sys::clear_cloexec(fd).ok()?;
    // SAFETY: the CLI passed this descriptor number to us across exec and
    // nothing else in this process refers to it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Some(UnixStream::from(owned))
}

/// Entry point; returns the process exit code.
pub fn main(root: &Path, id: &str, fd: i32) -> i32 {
    let Some(ready) = inherited_socket(fd) else {
        return 125;
    };
    run_detached(root, id, ready)
}

/// Forks and goes on in the child, in a session of its own; the parent
/// exits 0 (its caller waits only for it). False when the fork failed.
fn detach() -> bool {
    match sys::clone3(&sys::CloneArgs {
        flags: 0,
        cgroup: None,
        pidfd: false,
    }) {
        Ok((0, _)) => {}
        Ok(_) => sys::exit_now(0),
        Err(_) => return false,
    }
    let _ = sys::setsid();
    true
}

/// The monitor's life from its first process (a child of the CLI, forked
/// or re-executed): forks the real monitor, which outlives the CLI, and
/// exits. Returns the first process's exit code.
pub fn run_detached(root: &Path, id: &str, mut ready: UnixStream) -> i32 {
    // Detach: the CLI waits only for this first process.
    if !detach() {
        return 125;
    }
    if berth_runtime::timing::requested() {
        berth_runtime::timing::enable();
    }
    berth_runtime::timing::phase("monitor detached");
    match Monitor::start(root, id) {
        Ok(mut m) => {
            let _ = attach::write_frame(&mut ready, attach::STARTED, b"");
            m.add_client(ready);
            m.run();
            // --restart: this monitor starts the container again (until a
            // stop, or the policy says no), with docker's doubling delay.
            let mut delay = Duration::from_millis(100);
            while let Some(wait) = m.restart_wait(&mut delay) {
                let _ = m.engine.db.bump_restart_count(&m.id);
                drop(m);
                std::thread::sleep(wait);
                let Ok(engine) = Engine::open(root) else {
                    break;
                };
                if engine.stopped_by_user(id) {
                    break;
                }
                drop(engine);
                match Monitor::start_again(root, id) {
                    Ok(next) => {
                        m = next;
                        m.run();
                    }
                    Err(_) => break,
                }
            }
            0
        }
        Err((e, code)) => {
            let msg = format!("{code}\n{e}");
            let _ = attach::write_frame(&mut ready, attach::FAILED, msg.as_bytes());
            1
        }
    }
}

/// docker's exit codes for a program that cannot start.
fn start_code(msg: &str) -> i32 {
    let m = msg.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied") || m.contains("is a directory") {
        126
    } else {
        125
    }
}

/// The size of the container's output pipes and of the monitor's reads.
const OUTPUT_PIPE: usize = 1 << 20;

/// Grows a pipe (best effort: a pty, or a limit below `size`, keeps its own).
fn set_pipe_size(fd: BorrowedFd<'_>, size: usize) {
    // SAFETY: F_SETPIPE_SZ on a descriptor we own; no memory is passed.
    let _ = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
}

struct Client {
    sock: UnixStream,
    dec: Decoder,
    /// Frames not yet taken by the client (its socket is non-blocking:
    /// the monitor never waits on a client, so a client busy sending
    /// input cannot stall the output it should be reading).
    out: Vec<u8>,
    /// Hung up or failed: dropped at the end of the loop iteration (the
    /// poll indexes must stay valid until then).
    dead: bool,
}

struct Monitor {
    engine: Engine,
    id: String,
    cfg: RunConfig,
    row: db::ContainerRow,
    lock: Option<File>,
    container: berth_runtime::Container,
    spec: oci_spec::runtime::Spec,
    rootfs: ContainerRootfs,
    log: LogWriter,
    sfd: OwnedFd,
    listener: UnixListener,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    master: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    /// Input from attached clients not yet taken by the container (the
    /// stdin pipe or pty is non-blocking: a container that does not read
    /// must not stop the monitor).
    stdin_pending: Vec<u8>,
    /// A client closed stdin while input was still pending.
    stdin_close_pending: bool,
    clients: Vec<Client>,
    /// When this run of the container started (restart backoff).
    started: Instant,
    /// The container's resolver at 127.0.0.11 (user-defined networks only).
    dns: Option<berth_net::dns::Resolver>,
    /// A rootless container's user-mode network.
    slirp: Option<berth_net::slirp::Slirp>,
    /// The container's hold on its volumes, let go when it exits.
    volumes: Option<crate::volumes::Held>,
    /// Holds the output pipes should this monitor be killed (ended with it).
    _keeper: Option<crate::keeper::Keeper>,
}

/// Most of a client's pending output kept before it counts as gone (a
/// stopped `berth attach` must not make the monitor hold the container's
/// output forever).
const CLIENT_BACKLOG: usize = 64 << 20;

/// Writes what the client takes of its pending output, without waiting.
fn flush_client(c: &mut Client) {
    while !c.out.is_empty() {
        match std::io::Write::write(&mut c.sock, &c.out) {
            Ok(0) => {
                c.dead = true;
                return;
            }
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                c.dead = true;
                return;
            }
        }
    }
    if c.out.len() > CLIENT_BACKLOG {
        c.dead = true;
    }
}

/// `--network container:ID`: the spec's network namespace becomes the other container's
/// (looked up at each start, as docker does: its init's pid changes when it restarts).
fn join_network_of(
    engine: &mut Engine,
    spec: &mut oci_spec::runtime::Spec,
    other: &str,
) -> Result<()> {
    join_namespace_of(
        engine,
        spec,
        other,
        oci_spec::runtime::LinuxNamespaceType::Network,
        "network namespace",
    )
    .map(drop)
}

/// Points the spec's namespace of type `typ` at running container `other`'s (`--network`,
/// `--pid`, `--ipc` `container:X`); `what` names it in docker's error. Returns `other`'s
/// record.
fn join_namespace_of(
    engine: &mut Engine,
    spec: &mut oci_spec::runtime::Spec,
    other: &str,
    typ: oci_spec::runtime::LinuxNamespaceType,
    what: &str,
) -> Result<db::ContainerRow> {
    let o = engine.get(other)?;
    if o.state != db::RUNNING && o.state != db::PAUSED {
        return Err(Error::Other(format!(
            "cannot join {what} of a non running container: {}",
            &o.id[..12.min(o.id.len())]
        )));
    }
    let path = std::path::PathBuf::from(format!(
        "/proc/{}/ns/{}",
        o.pid,
        berth_runtime::spec::ns_name(typ)
    ));
    if let Some(linux) = spec.linux_mut()
        && let Some(nss) = linux.namespaces_mut()
    {
        for ns in nss.iter_mut() {
            if ns.typ() == typ {
                ns.set_path(Some(path.clone()));
            }
        }
    }
    Ok(o)
}

/// `--pid`/`--ipc` `container:X` and `--ipc shareable`, made real as the container starts:
/// X's namespaces (X must run), X's /dev/shm bound in place of ours, our own shareable
/// /dev/shm mounted on the host.
fn shared_namespaces(
    engine: &mut Engine,
    spec: &mut oci_spec::runtime::Spec,
    cfg: &RunConfig,
    dir: &Path,
) -> Result<()> {
    use oci_spec::runtime::LinuxNamespaceType as T;
    if let Some(other) = crate::config::mode_container(&cfg.pid_mode) {
        join_namespace_of(engine, spec, other, T::Pid, "PID namespace")?;
    }
    if let Some(other) = crate::config::mode_container(&cfg.ipc_mode) {
        let o = join_namespace_of(engine, spec, other, T::Ipc, "IPC namespace")?;
        let theirs = engine.container_dir(&o.id).join(crate::shm::DIR);
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in mounts.iter_mut() {
            if m.destination() == Path::new("/dev/shm") {
                m.set_source(Some(theirs.clone()));
            }
        }
        spec.set_mounts(Some(mounts));
    }
    if cfg.ipc_mode == "shareable" {
        let size = cfg
            .shm_size
            .filter(|s| *s > 0)
            .unwrap_or(crate::config::DEFAULT_SHM_SIZE);
        crate::shm::mount_shareable(dir, size)?;
    }
    Ok(())
}

/// The threads of this process (`Threads:` of /proc/self/status; 1 when unreadable).
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(1)
}

/// Brings the loopback interface of `pid`'s network namespace up.
pub(crate) fn lo_up(pid: i32) -> Result<()> {
    let p = format!("/proc/{pid}/ns/net");
    let theirs = sys::open(Path::new(&p), libc::O_RDONLY, 0).at(&p)?;
    // On a thread of its own, which ends in the container's namespace: a
    // rootless monitor could not setns back into the host's (owned by the
    // initial user namespace). Joined before the runtime clones again.
    std::thread::spawn(move || -> Result<()> {
        sys::setns(theirs.as_fd(), libc::CLONE_NEWNET)
            .what(|| "setns into the container".into())?;
        set_iface_up("lo").what(|| "bringing lo up".into())
    })
    .join()
    .map_err(|_| Error::Other("bringing lo up: the thread panicked".into()))?
}

/// SIOCSIFFLAGS IFF_UP on `name` in the current network namespace.
pub(crate) fn set_iface_up(name: &str) -> std::io::Result<()> {
    // SAFETY: plain syscall returning a new descriptor we own.
    let fd = sys::check(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: `fd` was just returned by socket(2).
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
        req.ifr_name[i] = b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills `req`, which outlives the call.
    sys::check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the flags member of the union is what SIOCGIFFLAGS set.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads `req`.
    sys::check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(drop)
}

/// docker's network `connect`/`disconnect` events of the container's networks.
fn network_events(engine: &Engine, row: &db::ContainerRow, action: &str) {
    for (_, n) in crate::network::container_networks(engine, &row.id).unwrap_or_default() {
        engine.event(
            "network",
            action,
            &n.id,
            &[
                ("container", &row.id),
                ("name", &n.name),
                ("type", "bridge"),
            ],
        );
    }
}

/// docker's volume `mount`/`unmount` events of the container's volumes.
fn volume_events(engine: &Engine, row: &db::ContainerRow, cfg: &RunConfig, action: &str) {
    for m in cfg.mounts.iter().filter(|m| m.kind == "volume") {
        let rw = if m.readonly { "false" } else { "true" };
        let attrs: &[(&str, &str)] = if action == "mount" {
            &[
                ("container", &row.id),
                ("destination", &m.target),
                ("driver", "local"),
                ("propagation", ""),
                ("read/write", rw),
            ]
        } else {
            &[("container", &row.id), ("driver", "local")]
        };
        engine.event("volume", action, &m.source, attrs);
    }
}

impl Monitor {
    /// Takes the lock, creates and starts the container.
    fn start(root: &Path, id: &str) -> Result<Monitor, (Error, i32)> {
        Self::start_with(root, id, false)
    }

    /// A restart under the container's policy: refused (as by the lock)
    /// when the user stopped or is removing the container meanwhile.
    fn start_again(root: &Path, id: &str) -> Result<Monitor, (Error, i32)> {
        Self::start_with(root, id, true)
    }

    fn start_with(root: &Path, id: &str, restart: bool) -> Result<Monitor, (Error, i32)> {
        let fail = |e: Error| (e, 125);
        let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        sys::block_all_signals();
        let sfd = sys::signalfd_all()
            .what(|| "signalfd".into())
            .map_err(fail)?;
        let mut engine = Engine::open(root).map_err(fail)?;
        // Settle what a dead monitor may have left before taking over.
        let row = engine.get(id).map_err(fail)?;
        let lock = engine.lock_file(&row.id).map_err(fail)?;
        if berth_image::sys::flock_exclusive(lock.as_fd(), false).is_err() {
            // An `rm` holds it (a removal racing this start), or another monitor does.
            if engine.removal_pending(&row.id) {
                return Err(fail(crate::marked_for_removal(&row)));
            }
            return Err(fail(Error::BadState {
                id: row.id,
                state: "running".into(),
                what: "another monitor is starting it".into(),
            }));
        }
        let row = match engine.db.find(&row.id) {
            Ok(r) => r,
            Err(e) => {
                // Removed while this monitor was on its way: taking the lock made its state
                // directory again, which nothing else would remove.
                engine.forget_state(&row.id);
                return Err(fail(e));
            }
        };
        crate::test_pause("monitor-locked");
        // Checked under the lock, which an `rm` takes after marking: either it sees this
        // monitor (and kills what it starts) or this monitor sees its mark.
        if engine.removal_pending(&row.id) {
            return Err(fail(crate::marked_for_removal(&row)));
        }
        // From here the container is the monitor's: a `run` killed now loses nothing.
        engine.release_run_lease(&row.id);
        crate::test_pause("monitor-committed");
        // Checked under the lock: a stop or rm -f that came during the
        // restart delay wins.
        if restart && engine.stopped_by_user(&row.id) {
            return Err(fail(Error::BadState {
                id: row.id,
                state: row.state,
                what: "stopped by the user".into(),
            }));
        }
        if matches!(row.state.as_str(), db::RUNNING | db::PAUSED) {
            return Err(fail(Error::BadState {
                id: row.id,
                state: row.state,
                what: "it is already running".into(),
            }));
        }
        let cfg = row_config(&row);
        // The volumes are made ready (a tmpfs volume mounted) and held
        // while the container runs.
        let held = crate::volumes::acquire(
            root,
            cfg.mounts
                .iter()
                .filter(|m| m.kind == "volume")
                .map(|m| m.source.as_str()),
        );
        let launched = match held {
            Ok(held) => match Self::launch(engine, row.clone(), cfg.clone(), lock, sfd) {
                Ok(mut m) => {
                    m.volumes = Some(held);
                    Ok(m)
                }
                Err(x) => {
                    crate::volumes::release(held);
                    Err(x)
                }
            },
            // docker's code for a volume that cannot be mounted.
            Err(e) => Err((
                engine,
                lock,
                Error::Start {
                    msg: e.to_string(),
                    code: 125,
                },
            )),
        };
        match launched {
            Ok(m) => Ok(m),
            Err((mut engine, lock, e)) => {
                let msg = e.to_string();
                let code = match &e {
                    Error::Start { code, .. } => *code,
                    _ => start_code(&msg),
                };
                engine.cleanup_runtime(&row.id);
                let state = if row.state == db::CREATED {
                    db::CREATED
                } else {
                    db::EXITED
                };
                let _ = engine.db.set_exited(
                    &row.id,
                    state,
                    code,
                    false,
                    &msg,
                    &berth_runtime::state::now_rfc3339(),
                );
                if cfg.auto_remove {
                    let _ = engine.destroy(&row, true, Some(lock));
                }
                Err((e, code))
            }
        }
    }

    #[allow(clippy::result_large_err)]
    fn launch(
        mut engine: Engine,
        row: db::ContainerRow,
        cfg: RunConfig,
        lock: File,
        sfd: OwnedFd,
    ) -> Result<Monitor, (Engine, File, Error)> {
        let r = (|| -> Result<_> {
            let id = row.id.clone();
            let dir = engine.container_dir(&id);
            let images = engine.images()?;
            let rootfs = ContainerRootfs::open(images.snapshots(), &dir)?;
            rootfs.mount()?;
            berth_runtime::timing::phase("monitor: rootfs mounted");
            let mut bundle = berth_runtime::spec::load_bundle(&dir)?;
            if let Some(other) = cfg.network.strip_prefix("container:") {
                join_network_of(&mut engine, &mut bundle.spec, other)?;
            }
            shared_namespaces(&mut engine, &mut bundle.spec, &cfg, &dir)?;
            let rt = engine.runtime();
            // Leftovers of an earlier run.
            let _ = rt.delete(&id, true);
            let sd = engine.state_dir(&id);
            std::fs::create_dir_all(&sd).at(&sd)?;
            let _ = std::fs::remove_file(sd.join("attach.sock"));
            let sd_fd = sys::open(&sd, libc::O_PATH | libc::O_DIRECTORY, 0).at(&sd)?;
            let listener = UnixListener::bind(sys::fd_path(sd_fd.as_fd()).join("attach.sock"))
                .at(sd.join("attach.sock"))?;
            let null = sys::open(Path::new("/dev/null"), libc::O_RDWR, 0).at("/dev/null")?;
            let mut opts = CreateOpts {
                id: id.clone(),
                bundle: dir.clone(),
                ..Default::default()
            };
            let mut console = None;
            let (mut out, mut err, mut stdin) = (None, None, None);
            if cfg.tty {
                let (ours, theirs) = UnixStream::pair().what(|| "socketpair".into())?;
                opts.console = Some(theirs.into());
                console = Some(ours);
                for fd in 0..3 {
                    sys::dup2(null.as_raw_fd(), fd).what(|| "dup2".into())?;
                }
            } else {
                let (or, ow) = sys::pipe().what(|| "pipe".into())?;
                let (er, ew) = sys::pipe().what(|| "pipe".into())?;
                if cfg.open_stdin {
                    let (ir, iw) = sys::pipe().what(|| "pipe".into())?;
                    sys::dup2(ir.as_raw_fd(), 0).what(|| "dup2".into())?;
                    stdin = Some(iw);
                } else {
                    sys::dup2(null.as_raw_fd(), 0).what(|| "dup2".into())?;
                }
                sys::dup2(ow.as_raw_fd(), 1).what(|| "dup2".into())?;
                sys::dup2(ew.as_raw_fd(), 2).what(|| "dup2".into())?;
                out = Some(or);
                err = Some(er);
            }
            let log = LogWriter::open(&engine.log_path(&id), cfg.log_max_size, cfg.log_max_file)?;
            // The runtime clones the container's init from this process, which is only sound
            // with no other thread alive (network work of an earlier run joined its threads).
            let threads = thread_count();
            if threads > 1 {
                return Err(Error::Other(format!(
                    "internal error: the monitor has {threads} threads where the runtime must clone"
                )));
            }
            let created = rt.create_from(&bundle, opts);
            // Our own stdio back to /dev/null: the container holds the
            // only write ends of its output pipes.
            for fd in 0..3 {
                let _ = sys::dup2(null.as_raw_fd(), fd);
            }
            let container = created?;
            // Still one thread: the keeper of the output pipes is forked now.
            let keeper = match (&out, &err) {
                (Some(o), Some(e)) => crate::keeper::Keeper::spawn(&sd, &[o.as_fd(), e.as_fd()]),
                _ => None,
            };
            let master = match &console {
                Some(sock) => match sys::recv_fd(sock.as_fd()) {
                    Ok((_, Some(m))) => Some(m),
                    _ => return Err(Error::Other("the container sent no pty master".into())),
                },
                None => None,
            };
            berth_runtime::timing::phase("monitor: runtime created");
            let mut dns = None;
            let mut slirp = None;
            if cfg.network == "none" {
                lo_up(container.record.pid)?;
            } else if cfg.network == crate::network::SLIRP4NETNS {
                lo_up(container.record.pid)?;
                slirp = Some(crate::network::start_slirp(
                    &engine,
                    &id,
                    &cfg,
                    container.record.pid,
                )?);
                berth_runtime::timing::phase("monitor: slirp4netns started");
            } else if cfg.network != "host" && !cfg.network.starts_with("container:") {
                // Netlink on a current-thread runtime, its namespace helper thread joined
                // before this returns: nothing but this thread is alive when the runtime
                // clones again (a restart).
                crate::network::connect_container(&engine, &id, container.record.pid)?;
                network_events(&engine, &row, "connect");
                berth_runtime::timing::phase("monitor: network connected");
                dns = crate::dns::start_resolver(&engine, &id, &cfg, container.record.pid)?;
                berth_runtime::timing::phase("monitor: resolver started");
            }
            berth_runtime::timing::phase("monitor: created");
            volume_events(&engine, &row, &cfg, "mount");
            rt.start_container(&container, Some(&bundle.spec))?;
            berth_runtime::timing::phase("monitor: started");
            let me = sys::getpid();
            let me_start = berth_runtime::state::pid_start_time(me).unwrap_or(0);
            engine.db.set_running(
                &id,
                (container.record.pid, container.record.pid_start),
                (me, me_start),
                &berth_runtime::state::now_rfc3339(),
            )?;
            engine.container_event(&row, "start", &[]);
            berth_runtime::timing::phase("monitor: running recorded");
            Ok((
                id,
                container,
                bundle.spec,
                rootfs,
                log,
                listener,
                out,
                err,
                master,
                stdin,
                dns,
                slirp,
                keeper,
            ))
        })();
        match r {
            Ok((
                id,
                container,
                spec,
                rootfs,
                log,
                listener,
                out,
                err,
                master,
                stdin,
                dns,
                slirp,
                keeper,
            )) => Ok(Monitor {
                engine,
                id,
                cfg,
                row,
                lock: Some(lock),
                container,
                spec,
                rootfs,
                log,
                sfd,
                listener,
                out,
                err,
                master,
                stdin,
                stdin_pending: Vec::new(),
                stdin_close_pending: false,
                clients: vec![],
                started: Instant::now(),
                dns,
                slirp,
                volumes: None,
                _keeper: keeper,
            }),
            Err(e) => Err((engine, lock, e)),
        }
    }

    fn add_client(&mut self, sock: UnixStream) {
        let _ = sock.set_nonblocking(true);
        self.clients.push(Client {
            sock,
            dec: Decoder::default(),
            out: Vec::new(),
            dead: false,
        });
    }

    fn broadcast(&mut self, kind: u8, data: &[u8]) {
        let mut frame = Vec::with_capacity(data.len() + 5);
        let _ = attach::write_frame(&mut frame, kind, data);
        for c in self.clients.iter_mut().filter(|c| !c.dead) {
            c.out.extend_from_slice(&frame);
            flush_client(c);
        }
    }

    /// Whether some client still has output to take.
    fn clients_pending(&self) -> bool {
        self.clients.iter().any(|c| !c.dead && !c.out.is_empty())
    }

    fn output(&mut self, stream: usize, data: &[u8]) {
        // A full disk must not stop the container: the bytes still reach
        // attached clients.
        let _ = self.log.write(stream, data);
        let kind = if stream == 0 {
            attach::STDOUT
        } else {
            attach::STDERR
        };
        self.broadcast(kind, data);
    }

    fn handle_frame(&mut self, kind: u8, p: &[u8]) {
        match kind {
            attach::STDIN if self.master.is_some() || self.stdin.is_some() => {
                self.stdin_pending.extend_from_slice(p);
                self.flush_stdin();
            }
            attach::STDIN_CLOSE => {
                self.stdin_close_pending = true;
                self.flush_stdin();
            }
            attach::RESIZE => {
                if let (Some(m), Ok(s)) = (&self.master, std::str::from_utf8(p))
                    && let Some((r, c)) = s.split_once(' ')
                    && let (Ok(r), Ok(c)) = (r.parse(), c.parse())
                {
                    let _ = sys::set_winsize(m.as_fd(), r, c);
                }
            }
            attach::SIGNAL => {
                if let Some(sig) = std::str::from_utf8(p).ok().and_then(|s| s.parse().ok()) {
                    let _ = self.engine.runtime().signal(&self.container, sig);
                }
            }
            _ => {}
        }
    }

    /// Reads what a stream has; false once it is closed.
    /// Writes what the container takes of the pending input; closes its
    /// stdin once everything is written after a client closed it.
    fn flush_stdin(&mut self) {
        while !self.stdin_pending.is_empty() {
            let Some(fd) = self.master.as_ref().or(self.stdin.as_ref()) else {
                self.stdin_pending.clear();
                break;
            };
            match sys::write(fd.as_fd(), &self.stdin_pending) {
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.stdin = None;
                    self.stdin_pending.clear();
                }
            }
        }
        if self.stdin_close_pending {
            self.stdin_close_pending = false;
            if let Some(m) = &self.master {
                let _ = sys::write(m.as_fd(), &[4]);
            }
            self.stdin = None;
        }
    }

    fn pump(&mut self, which: usize, buf: &mut [u8]) -> bool {
        let fd = match which {
            0 => self.out.as_ref(),
            1 => self.err.as_ref(),
            _ => self.master.as_ref(),
        };
        let Some(fd) = fd else { return false };
        match sys::read(fd.as_fd(), buf) {
            Ok(n) if n > 0 => {
                let data = buf[..n].to_vec();
                self.output(if which == 1 { 1 } else { 0 }, &data);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) =>
            {
                true
            }
            _ => false,
        }
    }

    fn run(&mut self) {
        let init = self.container.record.pid;
        let mut status: Option<i32> = None;
        let mut oom = false;
        let mut drain_deadline: Option<Instant> = None;
        // A flood of output is taken in large reads: the output pipes hold
        // up to OUTPUT_PIPE bytes (64 KiB by default), so each wakeup of
        // the monitor logs many lines at once.
        let mut buf = vec![0u8; OUTPUT_PIPE];
        for fd in [&self.out, &self.err].into_iter().flatten() {
            set_pipe_size(fd.as_fd(), OUTPUT_PIPE);
        }
        for fd in [&self.stdin, &self.master].into_iter().flatten() {
            let _ = sys::set_nonblocking(fd.as_fd());
        }
        let mut health = crate::health::Runner::start(&self.engine.db, &self.row);
        loop {
            if status.is_none()
                && let Some(h) = health.as_mut()
            {
                h.tick(&mut self.engine, &self.row);
            }
            self.flush_stdin();
            if let Some(d) = self.dns.as_mut() {
                d.tick();
            }
            for c in self.clients.iter_mut().filter(|c| !c.dead) {
                flush_client(c);
            }
            let streams_open = self.out.is_some() || self.err.is_some() || self.master.is_some();
            if status.is_some()
                && (!streams_open || drain_deadline.is_some_and(|d| Instant::now() > d))
            {
                break;
            }
            let mut fds: Vec<BorrowedFd<'_>> = vec![self.sfd.as_fd(), self.listener.as_fd()];
            let mut kinds: Vec<usize> = vec![100, 101];
            for (i, f) in [&self.out, &self.err, &self.master].into_iter().enumerate() {
                if let Some(f) = f {
                    fds.push(f.as_fd());
                    kinds.push(i);
                }
            }
            // Backpressure: while 64 MiB of input waits for the container,
            // clients are not read (an attached CLI then blocks sending
            // more, which also stops it reading output: the cap is set high
            // so that only a container that never reads a flood of input
            // gets there).
            let reading_clients = self.stdin_pending.len() < 64 << 20;
            for (i, c) in self.clients.iter().enumerate().filter(|_| reading_clients) {
                fds.push(c.sock.as_fd());
                kinds.push(200 + i);
            }
            if let Some(d) = &self.dns {
                fds.extend(d.fds());
                kinds.extend([102, 103, 104]);
            }
            if let Some(fd) = health.as_ref().and_then(|h| h.output_fd()) {
                fds.push(fd);
                kinds.push(105);
            }
            let mut timeout =
                if status.is_some() || !self.stdin_pending.is_empty() || self.clients_pending() {
                    20
                } else {
                    -1
                };
            let health_due = health
                .as_ref()
                .filter(|_| status.is_none())
                .map(|h| h.deadline());
            if let Some(due) = self
                .dns
                .as_ref()
                .and_then(|d| d.next_deadline())
                .into_iter()
                .chain(health_due)
                .min()
            {
                let ms = due.saturating_duration_since(Instant::now()).as_millis() + 1;
                let ms = i32::try_from(ms).unwrap_or(i32::MAX);
                timeout = if timeout < 0 { ms } else { timeout.min(ms) };
            }
            let ready = match sys::poll_in(&fds, timeout) {
                Ok(r) => r,
                Err(_) => continue,
            };
            drop(fds);
            for (k, r) in kinds.iter().zip(ready) {
                if !r {
                    continue;
                }
                match *k {
                    100 => {
                        let _ = sys::read_signal(self.sfd.as_fd());
                        while let Ok(Some((pid, st))) = sys::waitpid(-1, true) {
                            if pid == init {
                                status = Some(st.code());
                            } else if let Some(h) = health.as_mut()
                                && h.probe_pid() == Some(pid)
                            {
                                h.reaped(st.code());
                            }
                        }
                        if status.is_some() && drain_deadline.is_none() {
                            // Read the OOM counter before the cgroup goes;
                            // kill what is left so the pipes close.
                            oom =
                                berth_runtime::stats::oom_kills(&self.container.record.cgroup) > 0;
                            let _ = self
                                .engine
                                .runtime()
                                .destroy_container(&self.container, Some(&self.spec));
                            drain_deadline = Some(Instant::now() + Duration::from_secs(2));
                        }
                    }
                    101 => {
                        if let Ok((s, _)) = self.listener.accept() {
                            self.add_client(s);
                        }
                    }
                    102..=104 => self.serve_dns(*k),
                    105 => {
                        if let Some(h) = health.as_mut() {
                            h.read_output();
                        }
                    }
                    0..=2 => {
                        if !self.pump(*k, &mut buf) {
                            match *k {
                                0 => self.out = None,
                                1 => self.err = None,
                                _ => self.master = None,
                            }
                        }
                    }
                    i => {
                        let i = i - 200;
                        if self.clients[i].dead {
                            continue;
                        }
                        let mut b = [0u8; 16 * 1024];
                        let n = match self.clients[i].sock.read(&mut b) {
                            Ok(n) => n,
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock
                                        | std::io::ErrorKind::Interrupted
                                ) =>
                            {
                                continue;
                            }
                            Err(_) => 0,
                        };
                        if n == 0 {
                            self.clients[i].dead = true;
                            continue;
                        }
                        self.clients[i].dec.push(&b[..n]);
                        loop {
                            match self.clients[i].dec.next_frame() {
                                Ok(Some((kind, p))) => self.handle_frame(kind, &p),
                                Ok(None) => break,
                                Err(_) => {
                                    self.clients[i].dead = true;
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            let before = self.clients.len();
            self.clients.retain(|c| !c.dead);
            // docker's StdinOnce: stdin closes with the attached client
            // (not for `run -d -i`, whose stdin waits for the next attach).
            if before > 0 && self.clients.is_empty() && self.cfg.stdin_once && !self.cfg.tty {
                self.stdin = None;
            }
        }
        if let Some(h) = health {
            h.stopped(&self.engine.db, &self.id);
        }
        self.finish(status.unwrap_or(255), oom);
    }

    /// Serves the container's resolver: `kind` 102 is its UDP socket, 103 its TCP listener,
    /// 104 the upstream socket.
    fn serve_dns(&mut self, kind: usize) {
        let Some(d) = self.dns.as_mut() else {
            return;
        };
        let mut names = crate::dns::ContainerNames {
            engine: &self.engine,
            id: &self.id,
        };
        match kind {
            102 => d.serve_udp(&mut names),
            103 => d.serve_tcp(&mut names),
            _ => d.relay(),
        }
    }

    /// How long to wait before starting the container again under its
    /// restart policy, or None. `delay` doubles each time (at most a
    /// minute) and starts over after a run of ten seconds or more.
    fn restart_wait(&self, delay: &mut Duration) -> Option<Duration> {
        if !restart_policy_says_again(&self.engine, &self.id, &self.cfg) {
            return None;
        }
        if self.started.elapsed() >= Duration::from_secs(10) {
            *delay = Duration::from_millis(100);
        }
        let wait = *delay;
        *delay = (*delay * 2).min(Duration::from_secs(60));
        Some(wait)
    }

    fn finish(&mut self, code: i32, oom: bool) {
        // Its sockets hold the container's network namespace, whose end takes the veths.
        self.dns = None;
        // Killed now, reaped once the clients have the exit code.
        let mut slirp = self.slirp.take();
        if let Some(sl) = slirp.as_mut() {
            sl.kill();
        }
        let _ = std::fs::remove_file(
            self.engine
                .state_dir(&self.id)
                .join(crate::network::PORTS_FILE),
        );
        let _ = self.log.flush();
        berth_runtime::timing::phase("monitor: exited");
        let _ = self.rootfs.unmount();
        crate::shm::unmount(&self.engine.container_dir(&self.id));
        berth_runtime::timing::phase("monitor: unmounted");
        // docker's order: oom, die, then the network and volumes let go; all journalled
        // before the exit is recorded, so a `stop` waiting for it records its `stop` after
        // them. The record is read afresh: the container may have been renamed meanwhile.
        let now = self
            .engine
            .db
            .find(&self.id)
            .unwrap_or_else(|_| self.row.clone());
        if oom {
            self.engine.container_event(&now, "oom", &[]);
        }
        let ran = self.started.elapsed().as_secs().to_string();
        self.engine.container_event(
            &now,
            "die",
            &[("exitCode", &code.to_string()), ("execDuration", &ran)],
        );
        network_events(&self.engine, &now, "disconnect");
        let _ = crate::network::disconnect_container(&self.engine, &self.id);
        volume_events(&self.engine, &now, &self.cfg, "unmount");
        if let Some(held) = self.volumes.take() {
            crate::volumes::release(held);
        }
        let sd = self.engine.state_dir(&self.id);
        let _ = std::fs::remove_file(sd.join("attach.sock"));
        let _ = self.engine.db.set_exited(
            &self.id,
            db::EXITED,
            code,
            oom,
            "",
            &berth_runtime::state::now_rfc3339(),
        );
        berth_runtime::timing::phase("monitor: exit recorded");
        // --rm: gone before the attached `run` returns, as docker's.
        if self.cfg.auto_remove {
            let lock = self.lock.take();
            let row = self.row.clone();
            let _ = self.engine.destroy(&row, true, lock);
            berth_runtime::timing::phase("monitor: removed");
        }
        // Everything is recorded: the container is free for the next
        // command before its client hears of the exit (a `start` right after
        // `start -a` returned found it still held).
        drop(self.lock.take());
        self.broadcast(attach::EXITED, code.to_string().as_bytes());
        // The last output and the exit code reach every client still
        // reading (waiting at most 5 s for each).
        for c in self
            .clients
            .iter_mut()
            .filter(|c| !c.dead && !c.out.is_empty())
        {
            let _ = c.sock.set_nonblocking(false);
            let _ = c.sock.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = std::io::Write::write_all(&mut c.sock, &c.out);
        }
        self.clients.clear();
        if let Some(sl) = slirp {
            sl.reap();
        }
    }
}
