//! The container lifecycle of runtime.md: create, start, kill, delete,
//! state, and exec of extra processes.
//!
//! Process model (see docs/architecture.md): `create` clones the
//! container's init with every new namespace in one clone3(2). Parent and
//! init talk over a SOCK_SEQPACKET pair: the parent writes id maps, places
//! init in its cgroup and sends `Go`; init builds the rootfs and reports
//! `MountsReady`; the parent runs prestart/createRuntime hooks and sends
//! `Continue`; init pivots, prepares the process and reports `Created`,
//! then blocks in accept(2) on `exec.sock` in the state dir. `start`
//! connects to that socket; init runs startContainer hooks, drops
//! privileges and execs. Any error before exec travels back as text.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::cgroups::{self, CgroupPaths, Layout};
use crate::error::{Context, Error, Result};
use crate::exeseal::{ExecVia, Report};
use crate::hooks::{self, HookKind};
use crate::namespaces;
use crate::process::{self, FinalizeOpts};
use crate::rootfs::{self, RootfsContext};
use crate::spec::{self, NS_ORDER, ns_flag, ns_name};
use crate::state::{
    self, CONFIG_FILE, Container, ContainerRecord, EXEC_SOCK, OciState, Root, Status,
};
use crate::sys;

// Messages between the runtime and a process it is setting up.
const MSG_GO: u8 = b'G';
const MSG_MOUNTS_READY: u8 = b'M';
const MSG_CONTINUE: u8 = b'C';
const MSG_CREATED: u8 = b'R';
const MSG_ERROR: u8 = b'E';
const MSG_START: u8 = b'S';
/// An idmapped mount's detached tree (SCM_RIGHTS), before `Go`.
const MSG_IDMAP_TREE: u8 = b'I';
/// init → runtime: init made its time namespace; the runtime writes the offsets.
const MSG_TIMENS: u8 = b'T';
/// runtime → init: the network devices moved into init's namespace (JSON),
/// for init to put their addresses back and bring them up.
const MSG_NETDEVS: u8 = b'D';
/// init / exec process → runtime, with SCM_RIGHTS: the seccomp notify fd,
/// which the runtime hands to the profile's listenerPath on the host.
const MSG_SECCOMP_FD: u8 = b'N';

/// Hands a container process's seccomp notify fd to the agent listening on
/// `listenerPath` (a host path), with the state runtime.md describes.
fn forward_seccomp_fd(spec: &Spec, state: &[u8], fd: &OwnedFd) -> Result<()> {
    let Some(sc) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Err(Error::Container(
            "a seccomp notify fd without a profile".into(),
        ));
    };
    let Some(path) = sc.listener_path() else {
        return Err(Error::Container(
            "a seccomp notify fd without a listenerPath".into(),
        ));
    };
    let sock = UnixStream::connect(path)
        .map_err(|e| Error::Container(format!("seccomp listenerPath {}: {e}", path.display())))?;
    let msg = crate::seccomp::notify_message(sc, state);
    sys::send_fd(sock.as_fd(), &msg, fd.as_fd())
        .map_err(|e| Error::Container(format!("seccomp listenerPath {}: {e}", path.display())))
}

/// Options of `create` beyond the bundle's config.
#[derive(Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    /// A connected socket the pty master is sent over (runc's
    /// --console-socket), required when process.terminal is true.
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Added to process.env (LISTEN_FDS passthrough).
    pub extra_env: Vec<String>,
    /// A connected socket a pidfd of init is sent over (--pidfd-socket).
    pub pidfd_socket: Option<OwnedFd>,
}

/// Options of `exec`.
pub struct ExecOpts {
    pub process: Process,
    pub console: Option<OwnedFd>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub pidfd_socket: Option<OwnedFd>,
    /// Exec into a paused container too (runc's --ignore-paused): the
    /// process starts frozen and runs once the container is resumed.
    pub ignore_paused: bool,
}

/// Sends a pidfd of `pid` over `sock`, as runc's --pidfd-socket does.
fn send_pidfd(sock: &OwnedFd, pid: i32) -> Result<()> {
    let pidfd = sys::pidfd_open(pid).what(|| format!("pidfd_open {pid}"))?;
    sys::send_fd(sock.as_fd(), b"pidfd", pidfd.as_fd()).what(|| "sending the pidfd".into())
}

/// A runtime instance bound to a state root.
pub struct Runtime {
    pub root: Root,
    pub rootless: bool,
    /// The runtime itself runs in a user namespace (a rootless engine's:
    /// root there, but no mknod, no host cgroups, no sysfs of namespaces
    /// it does not own).
    pub in_userns: bool,
}

/// Undoes a half-made container when `create` fails.
struct CreateGuard {
    dir: Option<PathBuf>,
    cgroup: Option<CgroupPaths>,
    child: Option<i32>,
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.child {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = sys::waitpid(pid, false);
        }
        if let Some(cg) = &self.cgroup {
            for p in cg.procs() {
                let _ = sys::kill(p, libc::SIGKILL);
            }
            let _ = cg.destroy();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn send_msg(fd: &OwnedFd, tag: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 1);
    buf.push(tag);
    buf.extend_from_slice(payload);
    sys::send(fd.as_fd(), &buf)
}

fn recv_msg(fd: &OwnedFd) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut buf = vec![0u8; 1 << 16];
    let n = sys::recv(fd.as_fd(), &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    buf.truncate(n);
    let tag = buf[0];
    Ok(Some((tag, buf.split_off(1))))
}

/// Waits for `want` from a child in setup; an error message or the child
/// hanging up becomes an error.
fn expect_msg(fd: &OwnedFd, want: u8, what: &str) -> Result<Vec<u8>> {
    match recv_msg(fd).what(|| format!("waiting for {what}"))? {
        Some((t, p)) if t == want => Ok(p),
        Some((MSG_ERROR, p)) => Err(Error::Container(String::from_utf8_lossy(&p).into_owned())),
        Some((t, _)) => Err(Error::Container(format!(
            "unexpected message {:?} while waiting for {what}",
            t as char
        ))),
        None => Err(Error::Container(format!(
            "container init exited while waiting for {what}"
        ))),
    }
}

/// Namespaces of the config split into those to create and those to join.
struct NsPlan {
    /// CLONE_NEW* flags for clone3.
    clone_flags: u64,
    new: Vec<LinuxNamespaceType>,
    joins: Vec<(LinuxNamespaceType, OwnedFd)>,
}

impl NsPlan {
    fn from_spec(spec: &Spec) -> Result<NsPlan> {
        let mut plan = NsPlan {
            clone_flags: 0,
            new: vec![],
            joins: vec![],
        };
        let nss = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for t in NS_ORDER {
            let Some(ns) = nss.iter().find(|n| n.typ() == t) else {
                continue;
            };
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    plan.joins.push((t, namespaces::open_ns(p, t)?));
                }
                _ => {
                    plan.new.push(t);
                    // cgroup and time namespaces are made by init itself:
                    // cgroup after init is in its cgroup (so the namespace
                    // root is the container's cgroup), time to set offsets.
                    if t != LinuxNamespaceType::Cgroup && t != LinuxNamespaceType::Time {
                        plan.clone_flags |= ns_flag(t) as u64;
                    }
                }
            }
        }
        Ok(plan)
    }

    fn has_new(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(&t)
    }

    fn joins(&self, t: LinuxNamespaceType) -> bool {
        self.joins.iter().any(|(x, _)| *x == t)
    }
}

/// What the child process knows when it starts (copied by the fork).
struct InitArgs<'a> {
    spec: &'a Spec,
    bundle: &'a Path,
    rootfs: &'a Path,
    id: &'a str,
    cgroup: &'a CgroupPaths,
    ns: &'a NsPlan,
    sync: &'a OwnedFd,
    exec_listener: &'a UnixListener,
    console: Option<&'a OwnedFd>,
    no_pivot: bool,
    no_new_keyring: bool,
    preserve_fds: u32,
    extra_env: &'a [String],
    seccomp: Option<&'a crate::seccomp::Compiled>,
    /// How init's last execve (and startContainer hooks) run.
    exec_via: &'a ExecVia,
    /// Init moves itself into the v1 hierarchies.
    move_self_into_cgroup: bool,
    /// The runtime runs in a user namespace (see `Runtime::in_userns`).
    in_userns: bool,
}

/// Clones a child with `flags`, entering the pid/time/user namespaces in
/// `pre_joins` for it. Joining a user namespace needs an intermediate
/// process (the caller cannot leave it again); pid and time namespaces are
/// entered "for children" and left again right after.
fn spawn(
    flags: u64,
    pre_joins: &[(LinuxNamespaceType, &OwnedFd)],
    cgroup_fd: Option<i32>,
    rootless: bool,
    in_userns: bool,
) -> Result<i32> {
    // The child enters the container's pid namespace at once; it must be
    // born non-dumpable, or a container process could open /proc/PID/exe
    // (the runtime's binary) in the moment before the child says so itself
    // (CVE-2019-5736). A rootless runtime cannot: it writes the child's id
    // maps, which a non-dumpable child's /proc files (owned by root) refuse;
    // its init turns non-dumpable after `Go` (init_setup).
    if rootless {
        return spawn_inner(flags, pre_joins, cgroup_fd, in_userns);
    }
    let was = sys::prctl(libc::PR_GET_DUMPABLE, 0).unwrap_or(1);
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    let r = spawn_inner(flags, pre_joins, cgroup_fd, in_userns);
    if !matches!(r, Ok(0)) && was != 0 {
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, was as libc::c_ulong);
    }
    r
}

fn spawn_inner(
    flags: u64,
    pre_joins: &[(LinuxNamespaceType, &OwnedFd)],
    cgroup_fd: Option<i32>,
    in_userns: bool,
) -> Result<i32> {
    // In a user namespace (a rootless engine) we could enter the
    // container's pid namespace but not come back to ours, which the
    // initial user namespace owns: an intermediate process joins instead.
    let has_user = in_userns && !pre_joins.is_empty()
        || pre_joins
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::User);
    let args = sys::CloneArgs {
        flags,
        cgroup: cgroup_fd,
        pidfd: false,
    };
    if !has_user {
        let mut restore = vec![];
        for (t, fd) in pre_joins {
            let own = match t {
                LinuxNamespaceType::Pid => "/proc/self/ns/pid",
                LinuxNamespaceType::Time => "/proc/self/ns/time",
                _ => continue,
            };
            restore.push((*t, sys::open(Path::new(own), libc::O_RDONLY, 0).at(own)?));
            namespaces::join(fd, *t)?;
        }
        let r = sys::clone3(&args);
        if let Ok((0, _)) = r {
            return Ok(0);
        }
        for (t, fd) in &restore {
            namespaces::join(fd, *t)?;
        }
        return r.map(|(pid, _)| pid).what(|| "clone3".into());
    }
    let (rd, wr) = sys::pipe().what(|| "pipe".into())?;
    let (mid, _) = sys::clone3(&sys::CloneArgs {
        flags: 0,
        cgroup: None,
        pidfd: false,
    })
    .what(|| "fork".into())?;
    if mid == 0 {
        // Intermediate: join, clone init, report its pid, leave.
        drop(rd);
        let mut result: std::result::Result<i32, String> = Ok(0);
        for (t, fd) in pre_joins {
            if let Err(e) = namespaces::join(fd, *t) {
                result = Err(e.to_string());
                break;
            }
        }
        if result.is_ok() {
            // CLONE_PARENT: the child is ours, not the intermediate's, which
            // exits at once (its death would fire the child's
            // PDEATHSIG, and we wait for the child).
            let args = sys::CloneArgs {
                flags: args.flags | libc::CLONE_PARENT as u64,
                ..args
            };
            result = match sys::clone3(&args) {
                Ok((0, _)) => return Ok(0),
                Ok((pid, _)) => Ok(pid),
                Err(e) => Err(format!("clone3: {e}")),
            };
        }
        let msg = match result {
            Ok(pid) => pid.to_string(),
            Err(e) => format!("E{e}"),
        };
        let _ = sys::write_all(wr.as_fd(), msg.as_bytes());
        sys::exit_now(0);
    }
    drop(wr);
    let mut buf = [0u8; 512];
    let n = sys::read(rd.as_fd(), &mut buf).what(|| "reading init's pid".into())?;
    let _ = sys::waitpid(mid, false);
    let s = String::from_utf8_lossy(&buf[..n]).into_owned();
    if let Some(e) = s.strip_prefix('E') {
        return Err(Error::Container(e.to_string()));
    }
    s.parse()
        .map_err(|_| Error::Container(format!("bad pid from intermediate process: {s:?}")))
}

impl Runtime {
    /// The spec's seccomp profile compiled to BPF (from the runtime's
    /// cache when it was compiled before); None without a profile or for
    /// one that uses notify (loaded through libseccomp then).
    fn compiled_seccomp(&self, spec: &Spec) -> Result<Option<crate::seccomp::Compiled>> {
        match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(sc) => crate::seccomp::precompile(sc, Some(&self.root.seccomp_cache())),
            None => Ok(None),
        }
    }

    pub fn new(root: impl Into<PathBuf>, rootless: bool) -> Runtime {
        Runtime {
            root: Root::new(root),
            rootless,
            in_userns: sys::in_user_namespace(),
        }
    }

    pub fn load(&self, id: &str) -> Result<Container> {
        self.root.load(id)
    }

    /// `create`: everything up to a waiting init. Returns the container.
    pub fn create(&self, opts: CreateOpts) -> Result<Container> {
        state::validate_id(&opts.id)?;
        let bundle = spec::load_bundle(&opts.bundle)?;
        self.create_from(&bundle, opts)
    }

    /// `create` for a bundle already loaded (what `run` does).
    pub fn create_from(&self, bundle: &spec::Bundle, opts: CreateOpts) -> Result<Container> {
        state::validate_id(&opts.id)?;
        crate::timing::phase("config loaded");
        let spec = &bundle.spec;
        let cfg_path = bundle.path.join("config.json");
        // process is only required by `start` (runtime.md); create works
        // without it and start then fails.
        if let Some(process) = spec.process() {
            if process.terminal() == Some(true) && opts.console.is_none() {
                return Err(Error::Container(
                    "process.terminal is true: a --console-socket is required".into(),
                ));
            }
            crate::lsm::check(process)?;
        }
        let ns = NsPlan::from_spec(spec)?;
        if !ns.has_new(LinuxNamespaceType::Mount) && !ns.joins(LinuxNamespaceType::Mount) {
            // Setting up a root filesystem in the runtime's own mount
            // namespace would leave mounts on the host: refused.
            return Err(Error::Config {
                path: cfg_path,
                msg: "linux.namespaces: a mount namespace (new, or joined by path) is required"
                    .into(),
            });
        }
        let layout = Layout::detect()?;
        let cg_path = cgroups::resolve_path(
            spec.linux()
                .as_ref()
                .and_then(|l| l.cgroups_path().as_deref()),
            &opts.id,
        )?;
        let cgroup = CgroupPaths::new(&layout, cg_path);
        crate::timing::phase("cgroup layout");

        // From here on, failures undo what was made.
        let dir = self.root.create_dir(&opts.id)?;
        let mut guard = CreateGuard {
            dir: Some(dir.clone()),
            cgroup: None,
            child: None,
        };
        std::fs::copy(&cfg_path, dir.join(CONFIG_FILE)).at(dir.join(CONFIG_FILE))?;
        let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
        let make_cgroup = |guard: &mut CreateGuard| -> Result<()> {
            match cgroup.create() {
                Ok(()) => guard.cgroup = Some(cgroup.clone()),
                // Rootless without a delegated cgroup: fine as long as no
                // limit was asked for (runc behaves the same).
                Err(e) if self.rootless || self.in_userns => {
                    if resources.is_some_and(crate::resources::has_limits) {
                        return Err(e);
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            if let Some(res) = resources {
                crate::resources::apply(&cgroup, res)?;
            }
            crate::timing::phase("cgroup created");
            Ok(())
        };
        // The cgroup exists before init: on v2 init is born in it
        // (CLONE_INTO_CGROUP); on v1 we move it in while it waits idle for
        // `Go` (moving a task waits for an RCU grace period, which a busy
        // init would stretch).
        make_cgroup(&mut guard)?;
        let exec_path = dir.join(EXEC_SOCK);
        // Through /proc/self/fd/N of the state dir: a unix socket path is
        // limited to 108 bytes and --root plus a 64-character id can be
        // longer (dockerd's are).
        let dir_fd = sys::open(&dir, libc::O_PATH | libc::O_DIRECTORY, 0).at(&dir)?;
        let exec_listener =
            UnixListener::bind(sys::fd_path(dir_fd.as_fd()).join(EXEC_SOCK)).at(&exec_path)?;
        drop(dir_fd);
        let (parent_sock, child_sock) = sys::seqpacket_pair().what(|| "socketpair".into())?;

        // On v1 hierarchies init moves itself in (cheap: see
        // CgroupPaths::move_self_v1) unless it cannot write there (a user
        // namespace, a rootless runtime); it is born in the unified one.
        let userns = ns.has_new(LinuxNamespaceType::User) || ns.joins(LinuxNamespaceType::User);
        let self_move = guard.cgroup.is_some()
            && !cgroup.is_v2()
            && !userns
            && !self.rootless
            && !self.in_userns;
        let cgroup_fd = if guard.cgroup.is_some() && (cgroup.is_v2() || self_move) {
            cgroup
                .unified()
                .and_then(|h| sys::open(&cgroup.dir(h), libc::O_PATH | libc::O_DIRECTORY, 0).ok())
        } else {
            None
        };
        let pre_joins: Vec<(LinuxNamespaceType, &OwnedFd)> = ns
            .joins
            .iter()
            .filter(|(t, _)| {
                matches!(
                    t,
                    LinuxNamespaceType::User | LinuxNamespaceType::Pid | LinuxNamespaceType::Time
                )
            })
            .map(|(t, fd)| (*t, fd))
            .collect();
        // Compiled now (or found compiled): init, a copy of this process,
        // only loads it.
        let seccomp_prog = self.compiled_seccomp(spec)?;
        crate::timing::phase("seccomp compiled");
        let exec_via = ExecVia::for_spec(spec, None, 3 + opts.preserve_fds as RawFd)?;
        let timens_offsets = namespaces::timens_offsets_text(
            spec.linux()
                .as_ref()
                .and_then(|l| l.time_offsets().as_ref()),
        )?;
        let net_devices = spec
            .linux()
            .as_ref()
            .and_then(|l| l.net_devices().as_ref())
            .filter(|d| !d.is_empty());
        if net_devices.is_some() && !ns.has_new(LinuxNamespaceType::Network) {
            return Err(Error::Spec(
                "linux.netDevices needs a new network namespace (not the host's, not a joined one)"
                    .into(),
            ));
        }
        let pid = spawn(
            ns.clone_flags,
            &pre_joins,
            cgroup_fd.as_ref().map(|f| f.as_raw_fd()),
            self.rootless,
            self.in_userns,
        )?;
        if pid == 0 {
            drop(parent_sock);
            let args = InitArgs {
                spec,
                bundle: &bundle.path,
                rootfs: &bundle.rootfs,
                id: &opts.id,
                cgroup: &cgroup,
                ns: &ns,
                sync: &child_sock,
                exec_listener: &exec_listener,
                console: opts.console.as_ref(),
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                preserve_fds: opts.preserve_fds,
                extra_env: &opts.extra_env,
                seccomp: seccomp_prog.as_ref(),
                exec_via: &exec_via,
                move_self_into_cgroup: self_move,
                in_userns: self.in_userns,
            };
            init_main(&args);
        }
        guard.child = Some(pid);
        crate::timing::phase("cloned");
        drop(child_sock);
        drop(exec_listener);
        drop(opts.console);

        let linux = spec.linux().as_ref();
        if ns.has_new(LinuxNamespaceType::User) {
            namespaces::write_id_maps(
                pid,
                linux
                    .and_then(|l| l.uid_mappings().as_deref())
                    .unwrap_or_default(),
                linux
                    .and_then(|l| l.gid_mappings().as_deref())
                    .unwrap_or_default(),
                self.rootless,
            )?;
        }
        if guard.cgroup.is_some() && cgroup_fd.is_none() && !self_move {
            cgroup.add_pid(pid)?;
        }
        crate::timing::phase("cgroup joined");
        if ns.has_new(LinuxNamespaceType::Time) {
            expect_msg(&parent_sock, MSG_TIMENS, "init's time namespace")?;
            if !timens_offsets.is_empty() {
                let p = PathBuf::from(format!("/proc/{pid}/timens_offsets"));
                let f = sys::open(&p, libc::O_WRONLY | libc::O_NOFOLLOW, 0).at(&p)?;
                sys::write_all(f.as_fd(), timens_offsets.as_bytes()).at(&p)?;
            }
        }
        if let Some(devices) = net_devices {
            let p = PathBuf::from(format!("/proc/{pid}/ns/net"));
            let netns = sys::open(&p, libc::O_RDONLY, 0).at(&p)?;
            let moved = crate::netdev::move_into(devices, netns.as_fd())?;
            let json = serde_json::to_vec(&moved)
                .map_err(|e| Error::Container(format!("linux.netDevices: {e}")))?;
            send_msg(&parent_sock, MSG_NETDEVS, &json).what(|| "signalling init".into())?;
            crate::timing::phase("network devices moved");
        }
        let pid_start = state::pid_start_time(pid)
            .ok_or_else(|| Error::Container("container init exited right after clone".into()))?;
        let record = ContainerRecord {
            id: opts.id.clone(),
            pid,
            pid_start,
            bundle: bundle.path.clone(),
            rootfs: bundle.rootfs.clone(),
            created: state::now_rfc3339(),
            owner: owner_name(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            cgroup: cgroup.clone(),
            rootless: self.rootless,
        };
        // Hooks from prestart to createContainer run after lifecycle step 2
        // (the environment exists): their state says "created", as state.md
        // defines it (crun does the same; runc says "creating").
        let creating = oci_state(&record, Status::Created);
        // Idmapped mounts are made here (init lacks the privilege) now
        // that init's user namespace has its maps, and handed to init.
        let mounts = spec.mounts().as_deref().unwrap_or_default();
        let idmapped = crate::idmap::idmapped(mounts);
        if !idmapped.is_empty() {
            if self.rootless {
                return Err(Error::Spec(
                    "idmapped mounts need a privileged runtime (mount_setattr)".into(),
                ));
            }
            let trees = crate::idmap::make_trees(mounts, &idmapped, &bundle.path, pid, userns)?;
            for t in &trees {
                sys::send_fd(parent_sock.as_fd(), &[MSG_IDMAP_TREE], t.as_fd())
                    .what(|| "sending an idmapped mount to init".into())?;
            }
            crate::timing::phase("idmapped mounts");
        }
        send_msg(&parent_sock, MSG_GO, &creating).what(|| "signalling init".into())?;
        expect_msg(&parent_sock, MSG_MOUNTS_READY, "the root filesystem")?;
        crate::timing::phase("mounts ready");
        hooks::run(HookKind::Prestart, spec.hooks().as_ref(), &creating)?;
        hooks::run(HookKind::CreateRuntime, spec.hooks().as_ref(), &creating)?;
        send_msg(&parent_sock, MSG_CONTINUE, &[]).what(|| "signalling init".into())?;
        expect_msg(&parent_sock, MSG_CREATED, "the container to be created")?;
        crate::timing::phase("created");

        state::save_record(&dir, &record)?;
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, pid)?;
        }
        if let Some(sock) = &opts.pidfd_socket {
            send_pidfd(sock, pid)?;
        }
        guard.child = None;
        guard.cgroup = None;
        guard.dir = None;
        Ok(Container { dir, record })
    }

    /// `start`: releases init; returns once the program is exec'd.
    pub fn start(&self, id: &str) -> Result<()> {
        let c = self.load(id)?;
        self.start_container(&c, None)
    }

    /// `start` of a loaded container; `spec` saves reading its config again.
    pub fn start_container(&self, c: &Container, spec: Option<&Spec>) -> Result<()> {
        let status = c.status();
        if status != Status::Created {
            let msg = match status {
                Status::Stopped => "cannot start a container that has stopped".to_string(),
                Status::Running => "cannot start an already running container".to_string(),
                s => format!("cannot start a container in the {s} state"),
            };
            return Err(Error::Container(msg));
        }
        let sock_path = c.dir.join(EXEC_SOCK);
        let dir_fd = sys::open(&c.dir, libc::O_PATH | libc::O_DIRECTORY, 0).at(&c.dir)?;
        let mut conn =
            UnixStream::connect(sys::fd_path(dir_fd.as_fd()).join(EXEC_SOCK)).at(&sock_path)?;
        use std::io::Write;
        conn.write_all(&[MSG_START]).at(&sock_path)?;
        let _ = std::fs::remove_file(&sock_path);
        crate::timing::phase("start sent");
        let loaded;
        let spec = match spec {
            Some(s) => s,
            None => {
                loaded = c.config()?;
                &loaded
            }
        };
        // EOF (init's exec closed the connection) means the program runs;
        // bytes are an error; an fd is the seccomp notify fd to forward.
        let mut reply = Vec::new();
        loop {
            match sys::recv_fd(conn.as_fd()) {
                Ok((d, Some(fd))) if d.first() == Some(&MSG_SECCOMP_FD) => {
                    let st = oci_state(&c.record, Status::Running);
                    if let Err(e) = forward_seccomp_fd(spec, &st, &fd) {
                        drop(fd);
                        let _ = kill_and_wait(c);
                        return Err(e);
                    }
                }
                Ok((d, _)) if d.is_empty() => break,
                Ok((d, _)) => reply.extend_from_slice(&d),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        crate::timing::phase("exec done");
        if !reply.is_empty() {
            return Err(Error::Container(
                String::from_utf8_lossy(&reply).into_owned(),
            ));
        }
        if let Some(h) = spec.hooks() {
            let st = oci_state(&c.record, Status::Running);
            // As runc: the first failing poststart hook ends the container
            // (it has started) and `start` fails with the hook's error;
            // callers and engines treat a failed start as a failed container.
            if let Err(e) = hooks::run(HookKind::Poststart, Some(h), &st) {
                let _ = kill_and_wait(c);
                return Err(e);
            }
        }
        Ok(())
    }

    /// `kill`: one signal to init, or with `all` to every process of the
    /// container's cgroup.
    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        let c = self.load(id)?;
        if all {
            // Every process still in the container's cgroup, whatever init's
            // state: containerd kills what is left of a container whose init
            // exited in a shared pid namespace this way (runc does the same).
            let cg = &c.record.cgroup;
            let procs = cg.procs();
            if procs.is_empty() {
                // No cgroup to read (a rootless container on cgroup v1):
                // init, whose end takes its pid namespace with it.
                if c.status() != Status::Stopped {
                    let _ = signal_init(&c, sig);
                }
                return Ok(());
            }
            for p in procs {
                let _ = sys::kill(p, sig);
            }
            // A frozen process only dies once thawed (runc thaws for SIGKILL).
            if sig == libc::SIGKILL {
                thaw(cg);
            }
            return Ok(());
        }
        if c.status() == Status::Stopped {
            return Err(Error::NotRunning(id.into()));
        }
        signal_init(&c, sig)
    }

    /// `delete`: removes a stopped container (any container with `force`).
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let c = match self.load(id) {
            Ok(c) => c,
            Err(Error::NotExist(_)) if force => {
                // Leftovers of a `create` that was killed before it wrote
                // the state file: its config copy says where its cgroup is.
                if state::validate_id(id).is_ok() {
                    let dir = self.root.dir(id);
                    if let Ok(data) = std::fs::read(dir.join(CONFIG_FILE))
                        && let Ok(spec) = serde_json::from_slice::<Spec>(&data)
                        && let Ok(path) = cgroups::resolve_path(
                            spec.linux()
                                .as_ref()
                                .and_then(|l| l.cgroups_path().as_deref()),
                            id,
                        )
                        && let Ok(layout) = Layout::detect()
                    {
                        let cg = CgroupPaths::new(&layout, path);
                        thaw(&cg);
                        for p in cg.procs() {
                            let _ = sys::kill(p, libc::SIGKILL);
                        }
                        let _ = cg.destroy();
                    }
                    if dir.join(EXEC_SOCK).exists() || dir.join(CONFIG_FILE).exists() {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let status = c.status();
        if status != Status::Stopped {
            if !force {
                return Err(Error::Container(format!(
                    "cannot delete container {id} that is not stopped: {status}"
                )));
            }
            kill_and_wait(&c)?;
        }
        self.destroy(&c)
    }

    /// Tears down a container whose init is gone: remaining processes,
    /// cgroup, poststop hooks, state directory.
    pub fn destroy(&self, c: &Container) -> Result<()> {
        self.destroy_container(c, None)
    }

    /// `destroy` with the container's config when the caller has it.
    pub fn destroy_container(&self, c: &Container, spec: Option<&Spec>) -> Result<()> {
        crate::timing::phase("destroy");
        let cg = &c.record.cgroup;
        thaw(cg);
        for p in cg.procs() {
            let _ = sys::kill(p, libc::SIGKILL);
        }
        let cg_result = cg.destroy();
        let loaded;
        let spec = match spec {
            Some(s) => Some(s),
            None => {
                loaded = c.config().ok();
                loaded.as_ref()
            }
        };
        if let Some(h) = spec.and_then(|s| s.hooks().as_ref()) {
            let st = oci_state(&c.record, Status::Stopped);
            hooks::run_warn(HookKind::Poststop, Some(h), &st, &mut |e| {
                eprintln!("warning: {e}")
            });
        }
        std::fs::remove_dir_all(&c.dir).at(&c.dir)?;
        crate::timing::phase("destroyed");
        if let Err(e) = cg_result
            && !c.record.rootless
        {
            return Err(e);
        }
        Ok(())
    }

    pub fn state(&self, id: &str) -> Result<OciState> {
        Ok(self.load(id)?.oci_state())
    }

    /// `exec`: starts `opts.process` in the container's namespaces and
    /// cgroup. Returns its pid once it has exec'd (it is our child).
    pub fn exec(&self, id: &str, opts: ExecOpts) -> Result<i32> {
        let c = self.load(id)?;
        let status = c.status();
        if status == Status::Paused && !opts.ignore_paused {
            return Err(Error::Container(
                "cannot exec in a paused container (use --ignore-paused to override)".into(),
            ));
        }
        if !matches!(status, Status::Running | Status::Created | Status::Paused) {
            return Err(Error::Container(format!(
                "cannot exec in a {status} container"
            )));
        }
        crate::lsm::check(&opts.process)?;
        let spec = c.config()?;
        let init = c.record.pid;
        let mut joins = vec![];
        for t in NS_ORDER {
            let theirs = PathBuf::from(format!("/proc/{init}/ns/{}", ns_name(t)));
            let ours = PathBuf::from(format!("/proc/self/ns/{}", ns_name(t)));
            match (namespaces::ns_id(&theirs), namespaces::ns_id(&ours)) {
                (Some(a), Some(b)) if a != b => {
                    joins.push((t, namespaces::open_ns(&theirs, t)?));
                }
                _ => {}
            }
        }
        let (parent_sock, child_sock) = sys::seqpacket_pair().what(|| "socketpair".into())?;
        let cg = &c.record.cgroup;
        // As for init: the process moves itself into the v1 hierarchies
        // when it can write there, and is born in the unified one.
        let userns = joins.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
        let self_move = !cg.is_v2()
            && !userns
            && !c.record.rootless
            && !self.in_userns
            && cg.hierarchies.iter().any(|h| cg.dir(h).is_dir());
        let cgroup_fd = if cg.is_v2() || self_move {
            cg.unified()
                .and_then(|h| sys::open(&cg.dir(h), libc::O_PATH | libc::O_DIRECTORY, 0).ok())
        } else {
            None
        };
        let pre: Vec<(LinuxNamespaceType, &OwnedFd)> = joins
            .iter()
            .filter(|(t, _)| matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time))
            .map(|(t, fd)| (*t, fd))
            .collect();
        let seccomp_prog = self.compiled_seccomp(&spec)?;
        let exec_via =
            ExecVia::for_spec(&spec, Some(&opts.process), 3 + opts.preserve_fds as RawFd)?;
        let pid = spawn(
            0,
            &pre,
            cgroup_fd.as_ref().map(|f| f.as_raw_fd()),
            c.record.rootless || self.rootless,
            self.in_userns,
        )?;
        if pid == 0 {
            drop(parent_sock);
            exec_child(
                &spec,
                &opts,
                self_move.then_some(cg),
                seccomp_prog.as_ref(),
                &exec_via,
                &joins,
                &child_sock,
            );
        }
        drop(child_sock);
        let kill_child = |e: Error| {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = sys::waitpid(pid, false);
            e
        };
        if cgroup_fd.is_none() && !self_move {
            // Best effort for a rootless container without a cgroup.
            if let Err(e) = cg.add_pid(pid)
                && !c.record.rootless
                && !self.in_userns
            {
                return Err(kill_child(e));
            }
        }
        let st = oci_state(&c.record, status);
        send_msg(&parent_sock, MSG_GO, &st)
            .what(|| "signalling the exec process".into())
            .map_err(kill_child)?;
        // EOF (close-on-exec) means the program is running; an fd is the
        // seccomp notify fd to forward.
        loop {
            match sys::recv_fd(parent_sock.as_fd()) {
                Ok((d, _)) if d.is_empty() => break,
                Ok((d, Some(fd))) if d.first() == Some(&MSG_SECCOMP_FD) => {
                    if let Err(e) = forward_seccomp_fd(&spec, &st, &fd) {
                        return Err(kill_child(e));
                    }
                }
                Ok((d, _)) if d.first() == Some(&MSG_ERROR) => {
                    return Err(kill_child(Error::Container(
                        String::from_utf8_lossy(&d[1..]).into_owned(),
                    )));
                }
                Ok(_) => {
                    return Err(kill_child(Error::Container(
                        "unexpected message from the exec process".into(),
                    )));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(kill_child(Error::Sys {
                        what: "waiting for the exec process".into(),
                        err: e,
                    }));
                }
            }
        }
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, pid)?;
        }
        if let Some(sock) = &opts.pidfd_socket {
            send_pidfd(sock, pid)?;
        }
        Ok(pid)
    }

    /// Sends a signal to the container's init (for `run` in the foreground).
    pub fn signal(&self, c: &Container, sig: i32) -> Result<()> {
        signal_init(c, sig)
    }
}

fn signal_init(c: &Container, sig: i32) -> Result<()> {
    let pid = c.record.pid;
    let pidfd = sys::pidfd_open(pid).map_err(|_| Error::NotRunning(c.id().into()))?;
    // Check after opening the pidfd: if it is still our process now, the
    // pidfd pins it and the signal cannot reach a recycled pid.
    if !state::pid_is(pid, c.record.pid_start) {
        return Err(Error::NotRunning(c.id().into()));
    }
    sys::pidfd_send_signal(pidfd.as_fd(), sig).what(|| format!("signalling pid {pid}"))
}

fn thaw(cg: &CgroupPaths) {
    if cg.is_frozen() {
        let _ = crate::resources::set_frozen(cg, false);
    }
}

/// SIGKILLs the container and waits (up to 10 s) for init to be gone.
fn kill_and_wait(c: &Container) -> Result<()> {
    thaw(&c.record.cgroup);
    for p in c.record.cgroup.procs() {
        let _ = sys::kill(p, libc::SIGKILL);
    }
    let _ = signal_init(c, libc::SIGKILL);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state::pid_is(c.record.pid, c.record.pid_start) {
        // Our own child (foreground run): reap it.
        let _ = sys::waitpid(c.record.pid, true);
        if std::time::Instant::now() > deadline {
            return Err(Error::Container(format!(
                "container {} (pid {}) did not die after SIGKILL",
                c.id(),
                c.record.pid
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(())
}

fn oci_state(r: &ContainerRecord, status: Status) -> Vec<u8> {
    let st = OciState {
        oci_version: spec::OCI_VERSION.into(),
        id: r.id.clone(),
        pid: r.pid,
        status,
        bundle: r.bundle.clone(),
        rootfs: r.rootfs.clone(),
        created: r.created.clone(),
        owner: r.owner.clone(),
        annotations: r.annotations.clone(),
    };
    serde_json::to_vec(&st).unwrap_or_default()
}

fn owner_name() -> String {
    let uid = sys::geteuid();
    if uid == 0 {
        return "root".into();
    }
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().at(".")?.join(path)
    };
    state::write_atomic(&abs, pid.to_string().as_bytes())
}

/// Reports `e` to the parent and leaves. Never returns.
fn child_fail(sync: &OwnedFd, e: &Error) -> ! {
    let _ = send_msg(sync, MSG_ERROR, e.to_string().as_bytes());
    sys::exit_now(1);
}

/// The container's init, from clone to execve. Never returns.
fn init_main(a: &InitArgs<'_>) -> ! {
    // A failing runtime must not leave init waiting forever.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    let (conn, state) = match init_setup(a) {
        Ok(c) => c,
        Err(e) => child_fail(a.sync, &e),
    };
    // After `start`: report failures over the start connection.
    let fail = |conn: &UnixStream, e: Error| -> ! {
        let _ = sys::write_all(conn.as_fd(), e.to_string().as_bytes());
        sys::exit_now(127)
    };
    let spec = a.spec;
    let mut started: OciState = match serde_json::from_slice(&state) {
        Ok(s) => s,
        Err(e) => fail(&conn, Error::Container(format!("bad state: {e}"))),
    };
    started.status = Status::Created;
    let started = serde_json::to_vec(&started).unwrap_or_default();
    let Some(process) = spec.process().as_ref() else {
        fail(&conn, Error::Spec("process is required".into()))
    };
    let plan = match process::plan_exec(process, a.extra_env) {
        Ok(p) => p,
        Err(e) => fail(&conn, e),
    };
    // startContainer hooks run in the container with the process's
    // environment unless they name their own (as runc runs them).
    let hooks = spec.hooks().as_ref().map(|h| {
        let mut h = h.clone();
        if let Some(list) = h.start_container().clone() {
            let env: Vec<String> = plan
                .env
                .iter()
                .map(|e| e.to_string_lossy().into_owned())
                .collect();
            let list = list
                .into_iter()
                .map(|mut hook| {
                    if hook.env().is_none() {
                        hook.set_env(Some(env.clone()));
                    }
                    hook
                })
                .collect();
            h.set_start_container(Some(list));
        }
        h
    });
    if let Err(e) = hooks::run_via(
        HookKind::StartContainer,
        hooks.as_ref(),
        &started,
        a.exec_via,
    ) {
        fail(&conn, e);
    }
    let opts = FinalizeOpts {
        preserve_fds: a.preserve_fds,
        seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()),
        seccomp_compiled: a.seccomp,
        seccomp_notify_to: Some((conn.as_fd(), MSG_SECCOMP_FD)),
        set_user: true,
    };
    if let Err(e) = process::finalize(process, &opts) {
        fail(&conn, e);
    }
    let e = process::exec(&plan, a.exec_via, Some(Report::Raw(conn.as_raw_fd())));
    fail(&conn, e)
}

/// Init's work up to `Created`; returns the `start` connection and the
/// state JSON the runtime sent with `Go`.
fn init_setup(a: &InitArgs<'_>) -> Result<(UnixStream, Vec<u8>)> {
    let spec = a.spec;
    let linux = spec.linux().as_ref();
    let ns = a.ns;
    let userns =
        ns.has_new(LinuxNamespaceType::User) || ns.joins(LinuxNamespaceType::User) || a.in_userns;
    if ns.has_new(LinuxNamespaceType::Time) {
        namespaces::unshare_time_ns()?;
        send_msg(a.sync, MSG_TIMENS, &[]).what(|| "signalling the runtime".into())?;
    }
    if let Some(list) = spec
        .process()
        .as_ref()
        .and_then(|p| p.exec_cpu_affinity().as_ref())
        .and_then(|a| a.initial().as_deref())
    {
        process::set_cpu_affinity(list, "initial")?;
    }
    if a.move_self_into_cgroup {
        a.cgroup.move_self_v1()?;
        crate::timing::phase("init in its v1 cgroups");
    }
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .is_some_and(|d| !d.is_empty())
    {
        let json = expect_msg(a.sync, MSG_NETDEVS, "the network devices")?;
        let moved: Vec<crate::netdev::Moved> = serde_json::from_slice(&json)
            .map_err(|e| Error::Container(format!("linux.netDevices: {e}")))?;
        crate::netdev::configure(&moved)?;
    }
    // The idmapped mounts' trees, then `Go`: the id maps are written and
    // init is in its cgroup.
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let mut idmap_trees = Vec::new();
    for i in crate::idmap::idmapped(mounts) {
        match sys::recv_fd(a.sync.as_fd()).what(|| "receiving an idmapped mount".into())? {
            (d, Some(fd)) if d.first() == Some(&MSG_IDMAP_TREE) => idmap_trees.push((i, fd)),
            (d, _) => {
                return Err(Error::Container(format!(
                    "expected an idmapped mount from the runtime, got {:?}",
                    String::from_utf8_lossy(&d)
                )));
            }
        }
    }
    let state = expect_msg(a.sync, MSG_GO, "the go-ahead")?;
    // Keep /proc/1/exe and /proc/1/mem (the runtime binary) out of the
    // container's reach until exec replaces us (CVE-2019-5736). Not before
    // `Go`: an unprivileged runtime must still be able to write our id maps,
    // and no process of the container exists yet.
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    if ns.has_new(LinuxNamespaceType::User) {
        // Become the namespace's root (when mapped) so files we create
        // belong to the container's root.
        let maps_root = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
            m.is_some_and(|m| m.iter().any(|x| x.container_id() == 0))
        };
        if maps_root(linux.and_then(|l| l.gid_mappings().as_ref())) {
            sys::setresgid(0).what(|| "setgid 0 in the user namespace".into())?;
        }
        if maps_root(linux.and_then(|l| l.uid_mappings().as_ref())) {
            sys::setresuid(0).what(|| "setuid 0 in the user namespace".into())?;
        }
    }
    if ns.has_new(LinuxNamespaceType::Time) {
        namespaces::enter_time_ns_for_children()?;
    }
    for (t, fd) in &ns.joins {
        if matches!(
            t,
            LinuxNamespaceType::User | LinuxNamespaceType::Pid | LinuxNamespaceType::Time
        ) {
            continue;
        }
        namespaces::join(fd, *t)?;
    }
    // After `Go`, so the cgroup namespace is rooted at the container's cgroup.
    if ns.has_new(LinuxNamespaceType::Cgroup) {
        sys::unshare(libc::CLONE_NEWCGROUP).what(|| "creating the cgroup namespace".into())?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sys::sethostname(h).what(|| format!("sethostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        sys::setdomainname(d).what(|| format!("setdomainname {d:?}"))?;
    }
    if ns.joins(LinuxNamespaceType::Mount) && !a.rootfs.is_dir() {
        // The root is set up inside the joined mount namespace, where the
        // bundle's path must exist too (runc refuses this case as well).
        return Err(Error::Container(format!(
            "root.path {} does not exist in the joined mount namespace (linux.namespaces: mount with a path)",
            a.rootfs.display()
        )));
    }
    let ctx = RootfsContext {
        spec,
        bundle: a.bundle,
        rootfs: a.rootfs,
        cgroup: a.cgroup,
        new_cgroupns: ns.has_new(LinuxNamespaceType::Cgroup),
        userns,
        idmap_trees,
    };
    let root = rootfs::prepare(&ctx)?;
    send_msg(a.sync, MSG_MOUNTS_READY, &[]).what(|| "signalling the runtime".into())?;
    expect_msg(a.sync, MSG_CONTINUE, "prestart hooks")?;
    hooks::run(HookKind::CreateContainer, spec.hooks().as_ref(), &state)?;
    crate::timing::phase("devices");
    rootfs::protect_paths(spec, &root)?;
    crate::timing::phase("protected");
    rootfs::apply_sysctl(spec)?;
    let console = match a.console {
        Some(sock) => {
            let (master, slave) = rootfs::setup_console(&root)?;
            if let Some(size) = spec.process().as_ref().and_then(|p| p.console_size()) {
                let _ = sys::set_winsize(slave.as_fd(), size.height() as u16, size.width() as u16);
            }
            sys::send_fd(sock.as_fd(), b"/dev/ptmx", master.as_fd())
                .what(|| "sending the pty master to the console socket".into())?;
            Some(slave)
        }
        None => None,
    };
    drop(root);
    rootfs::pivot(a.rootfs, a.no_pivot)?;
    crate::timing::phase("pivoted");
    // A missing working directory is made (owned by root, 0755), as runc
    // and docker do; before a read-only root is remounted. We are inside
    // the container's root now: the path cannot leave it.
    if let Some(cwd) = spec.process().as_ref().map(|p| p.cwd())
        && cwd.is_absolute()
        && std::fs::symlink_metadata(cwd).is_err()
    {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(cwd);
    }
    rootfs::finish(spec)?;
    if let Some(slave) = console {
        attach_tty(&slave)?;
    }
    if !a.no_new_keyring {
        join_session_keyring(a.id);
    }
    process::apply_personality(linux.and_then(|l| l.personality().as_ref()))?;
    process::apply_memory_policy(linux.and_then(|l| l.memory_policy().as_ref()))?;
    if let Some(p) = spec.process().as_ref() {
        // Fail `create` (not `start`) for a missing program, as runc does.
        process::plan_exec(p, a.extra_env)?;
    }
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, 0);
    send_msg(a.sync, MSG_CREATED, &[]).what(|| "signalling the runtime".into())?;
    loop {
        let (mut conn, _) = match a.exec_listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).what(|| "waiting for start".into()),
        };
        use std::io::Read;
        let mut b = [0u8; 1];
        if conn.read_exact(&mut b).is_ok() && b[0] == MSG_START {
            return Ok((conn, state));
        }
    }
}

/// Makes `slave` the controlling terminal and stdio of this process.
fn attach_tty(slave: &OwnedFd) -> Result<()> {
    sys::setsid().what(|| "setsid".into())?;
    sys::set_controlling_tty(slave.as_fd()).what(|| "TIOCSCTTY".into())?;
    for fd in 0..3 {
        sys::dup2(slave.as_raw_fd(), fd).what(|| format!("dup2 pty to {fd}"))?;
    }
    Ok(())
}

/// A fresh session keyring named after the container, so containers do not
/// share the host's keys. Failure (keyctl denied) is not fatal, as in runc.
fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    if let Ok(name) = std::ffi::CString::new(id) {
        // SAFETY: keyctl(JOIN_SESSION_KEYRING, name) reads a C string.
        unsafe {
            libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr());
        }
    }
}

/// The exec'd process, after clone: joins, finalizes, execs.
fn exec_child(
    spec: &Spec,
    opts: &ExecOpts,
    move_self_into: Option<&CgroupPaths>,
    seccomp: Option<&crate::seccomp::Compiled>,
    via: &ExecVia,
    joins: &[(LinuxNamespaceType, OwnedFd)],
    sync: &OwnedFd,
) -> ! {
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    if expect_msg(sync, MSG_GO, "the go-ahead").is_err() {
        sys::exit_now(1);
    }
    let r = (|| -> Result<()> {
        if let Some(cg) = move_self_into {
            cg.move_self_v1()?;
        }
        if let Some(list) = opts
            .process
            .exec_cpu_affinity()
            .as_ref()
            .and_then(|a| a.initial().as_deref())
        {
            process::set_cpu_affinity(list, "initial")?;
        }
        for (t, fd) in joins {
            if matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
                continue;
            }
            namespaces::join(fd, *t)?;
        }
        if let Some(sock) = &opts.console {
            let (master, slave, _) =
                sys::open_pty(Path::new("/dev/ptmx")).what(|| "opening /dev/ptmx".into())?;
            if let Some(size) = opts.process.console_size().as_ref() {
                let _ = sys::set_winsize(slave.as_fd(), size.height() as u16, size.width() as u16);
            }
            sys::send_fd(sock.as_fd(), b"/dev/ptmx", master.as_fd())
                .what(|| "sending the pty master to the console socket".into())?;
            attach_tty(&slave)?;
        }
        let plan = process::plan_exec(&opts.process, &[])?;
        let fin = FinalizeOpts {
            preserve_fds: opts.preserve_fds,
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()),
            seccomp_compiled: seccomp,
            seccomp_notify_to: Some((sync.as_fd(), MSG_SECCOMP_FD)),
            set_user: true,
        };
        process::finalize(&opts.process, &fin)?;
        let _ = sys::prctl(libc::PR_SET_PDEATHSIG, 0);
        Err(process::exec(
            &plan,
            via,
            Some(Report::Tagged(sync.as_raw_fd())),
        ))
    })();
    match r {
        Ok(()) => sys::exit_now(0),
        Err(e) => child_fail(sync, &e),
    }
}

/// What `exec ID ARGS...` changes in the container's process (runc's flags).
#[derive(Default)]
pub struct ExecOverrides {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub user: Option<(u32, Option<u32>)>,
    pub add_caps: Vec<String>,
    pub tty: bool,
    pub no_new_privs: Option<bool>,
}

/// Builds the process for `exec` from the container's config the way runc
/// does for `runc exec ID ARGS...`.
pub fn exec_process_from_config(spec: &Spec, o: ExecOverrides) -> Result<Process> {
    let ExecOverrides {
        args,
        env,
        cwd,
        user,
        add_caps,
        tty,
        no_new_privs,
    } = o;
    let env = &env[..];
    let add_caps = &add_caps[..];
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(args));
    let mut e = p.env().clone().unwrap_or_default();
    for kv in env {
        let key = kv.split('=').next().unwrap_or("");
        e.retain(|x| x.split('=').next() != Some(key));
        e.push(kv.clone());
    }
    p.set_env(Some(e));
    if let Some(c) = cwd {
        p.set_cwd(c);
    }
    if let Some((uid, gid)) = user {
        let mut u = p.user().clone();
        u.set_uid(uid);
        if let Some(g) = gid {
            u.set_gid(g);
        }
        p.set_user(u);
    }
    p.set_terminal(Some(tty));
    if let Some(n) = no_new_privs {
        p.set_no_new_privileges(Some(n));
    }
    if !add_caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let mut parsed = Vec::new();
        for c in add_caps {
            let name = c.trim_start_matches("CAP_").to_ascii_uppercase();
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::Value::String(format!("CAP_{name}")))
                    .map_err(|_| Error::Spec(format!("unknown capability {c:?}")))?;
            parsed.push(cap);
        }
        let add = |set: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.extend(parsed.iter().copied());
            Some(s)
        };
        caps.set_bounding(add(caps.bounding()));
        caps.set_effective(add(caps.effective()));
        caps.set_permitted(add(caps.permitted()));
        // Never inheritable (CVE-2022-29162: a program with inheritable file
        // capabilities would gain them); ambient needs a capability in the
        // inheritable set, so only where the config already has one there
        // (runc's rule).
        if caps.inheritable().as_ref().is_some_and(|i| !i.is_empty()) {
            caps.set_ambient(add(caps.ambient()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// The annotations of a container, for callers that list them.
pub fn annotations(c: &Container) -> &HashMap<String, String> {
    &c.record.annotations
}
