//! The last steps before a container process becomes the user's program:
//! rlimits, user and groups, capabilities, no_new_privs, seccomp, working
//! directory, file descriptors, then execve. Shared by init and `exec`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capabilities, LinuxCapabilities, PosixRlimitType, Process};

use crate::error::{Context, Error, Result};
use crate::sys;

/// What execve(2) will be called with, resolved before privileges drop.
pub struct ExecPlan {
    pub path: CString,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
}

/// Finds the program in the container (after pivot_root / setns) using
/// the process's PATH, as runc does, and builds argv/envp.
pub fn plan_exec(process: &Process, extra_env: &[String]) -> Result<ExecPlan> {
    let args = process.args().as_deref().unwrap_or_default();
    let Some(arg0) = args.first() else {
        return Err(Error::Spec("process.args must not be empty".into()));
    };
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    for e in extra_env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let prog = look_path(arg0, &path_var, process.cwd())?;
    let to_c =
        |s: &str| CString::new(s).map_err(|_| Error::Spec(format!("{s:?} contains a NUL byte")));
    Ok(ExecPlan {
        path: CString::new(prog.as_os_str().as_bytes())
            .map_err(|_| Error::Spec("program path contains a NUL byte".into()))?,
        argv: args.iter().map(|a| to_c(a)).collect::<Result<_>>()?,
        env: env.iter().map(|e| to_c(e)).collect::<Result<_>>()?,
    })
}

fn look_path(arg0: &str, path_var: &str, cwd: &Path) -> Result<PathBuf> {
    let not_found = || {
        Error::Container(format!(
            "exec: \"{arg0}\": executable file not found in $PATH"
        ))
    };
    if arg0.contains('/') {
        let p = if Path::new(arg0).is_absolute() {
            PathBuf::from(arg0)
        } else {
            cwd.join(arg0)
        };
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => Ok(PathBuf::from(arg0)),
            Ok(_) => Err(Error::Container(format!("exec: {arg0:?}: is a directory"))),
            Err(e) => Err(Error::Container(format!("exec: {arg0:?}: {e}"))),
        };
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(arg0);
        if let Ok(m) = std::fs::metadata(&p) {
            use std::os::unix::fs::PermissionsExt;
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
        }
    }
    Err(not_found())
}

fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

pub fn apply_rlimits(process: &Process) -> Result<()> {
    for r in process.rlimits().iter().flatten() {
        sys::setrlimit(rlimit_resource(r.typ()), r.soft(), r.hard())
            .what(|| format!("setrlimit {} soft={} hard={}", r.typ(), r.soft(), r.hard()))?;
    }
    Ok(())
}

fn to_caps(set: &Option<Capabilities>) -> Result<caps::CapsHashSet> {
    let mut out = caps::CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        let cap: caps::Capability = name
            .parse()
            .map_err(|_| Error::Spec(format!("unknown capability {name}")))?;
        out.insert(cap);
    }
    Ok(out)
}

fn caps_err(what: &str) -> impl Fn(caps::errors::CapsError) -> Error + '_ {
    move |e| Error::Container(format!("capabilities: {what}: {e}"))
}

/// Drops from the bounding set every capability not listed. Must run while
/// we still hold CAP_SETPCAP, i.e. before changing uid.
fn drop_bounding(c: &LinuxCapabilities) -> Result<()> {
    let keep = to_caps(c.bounding())?;
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, caps::CapSet::Bounding, cap).unwrap_or(false)
        {
            caps::drop(None, caps::CapSet::Bounding, cap).map_err(caps_err("bounding"))?;
        }
    }
    Ok(())
}

fn set_caps(c: &LinuxCapabilities) -> Result<()> {
    let permitted = to_caps(c.permitted())?;
    let effective = to_caps(c.effective())?;
    let inheritable = to_caps(c.inheritable())?;
    let ambient = to_caps(c.ambient())?;
    caps::set(None, caps::CapSet::Inheritable, &inheritable).map_err(caps_err("inheritable"))?;
    // Effective must be a subset of permitted: set permitted first only if
    // it grows; the kernel accepts the pair in one capset, which the caps
    // crate does per set, so order effective/permitted carefully.
    caps::set(
        None,
        caps::CapSet::Effective,
        &effective.intersection(&permitted).copied().collect(),
    )
    .map_err(caps_err("effective"))?;
    caps::set(None, caps::CapSet::Permitted, &permitted).map_err(caps_err("permitted"))?;
    caps::set(None, caps::CapSet::Effective, &effective).map_err(caps_err("effective"))?;
    let _ = caps::clear(None, caps::CapSet::Ambient);
    for cap in ambient {
        // Ambient needs the cap in permitted and inheritable; the spec lets
        // the runtime skip what the kernel refuses.
        let _ = caps::raise(None, caps::CapSet::Ambient, cap);
    }
    Ok(())
}

/// Options of `finalize` beyond the Process object.
pub struct FinalizeOpts<'a> {
    /// Extra descriptors (3..3+n) the program inherits.
    pub preserve_fds: u32,
    pub seccomp: Option<&'a oci_spec::runtime::LinuxSeccomp>,
    /// `seccomp` compiled by the runtime before it forked (see
    /// `seccomp::precompile`); loaded as is when present.
    pub seccomp_compiled: Option<&'a crate::seccomp::Compiled>,
    /// Where the seccomp notify fd goes (SCM_RIGHTS, behind this tag byte):
    /// the runtime outside the container, which hands it to `listenerPath`
    /// (a host path, not reachable from inside the container).
    pub seccomp_notify_to: Option<(std::os::fd::BorrowedFd<'a>, u8)>,
    /// Set user/groups (false when joining as-is).
    pub set_user: bool,
}

fn load_seccomp(opts: &FinalizeOpts<'_>) -> Result<()> {
    let Some(sc) = opts.seccomp else {
        return Ok(());
    };
    if let Some(c) = opts.seccomp_compiled {
        return crate::seccomp::load_compiled(c);
    }
    let notify = crate::seccomp::apply(sc)?;
    if let Some(fd) = notify {
        use std::os::fd::BorrowedFd;
        let sent = match opts.seccomp_notify_to {
            Some((sock, tag)) if sc.listener_path().is_some() => {
                // SAFETY: `fd` is the notify descriptor libseccomp just
                // returned and keeps open until we close it below.
                let nfd = unsafe { BorrowedFd::borrow_raw(fd) };
                sys::send_fd(sock, &[tag], nfd).what(|| "sending the seccomp notify fd".into())
            }
            _ => Ok(()),
        };
        // SAFETY: we are done with the descriptor: the runtime has its own
        // copy (or there is no listener, and notified calls get ENOSYS).
        unsafe { libc::close(fd) };
        sent?;
    }
    Ok(())
}

/// Everything after which only execve remains. Runs in the container.
pub fn finalize(process: &Process, opts: &FinalizeOpts<'_>) -> Result<()> {
    let cwd = process.cwd();
    std::env::set_current_dir(cwd)
        .map_err(|e| Error::Container(format!("process.cwd {}: {e}", cwd.display())))?;
    // The cwd must be inside the container (CVE-2024-21626: a leaked host
    // directory fd as cwd shows up as "(unreachable)").
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => {}
        _ => {
            return Err(Error::Container(format!(
                "process.cwd {} is outside the container's root",
                cwd.display()
            )));
        }
    }
    apply_rlimits(process)?;
    apply_scheduler(process)?;
    apply_io_priority(process)?;
    if let Some(list) = process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.cpu_affinity_final().as_deref())
    {
        set_cpu_affinity(list, "final")?;
    }
    if let Some(adj) = process.oom_score_adj() {
        // A non-dumpable process in a user namespace (a rootless engine's
        // exec) cannot open its own /proc files for writing: fine when the
        // score is already the one asked for.
        let already = std::fs::read_to_string("/proc/self/oom_score_adj")
            .is_ok_and(|v| v.trim() == adj.to_string());
        if !already {
            crate::fs::write_proc("self/oom_score_adj", adj.to_string().as_bytes())
                .what(|| format!("setting oom_score_adj {adj}"))?;
        }
    }
    // Every descriptor the program is not meant to inherit is closed on
    // exec, whatever leaked into us. Before the seccomp filter: a profile
    // may well not allow close_range (older ones do not know it).
    sys::cloexec_from(3 + opts.preserve_fds).what(|| "marking descriptors close-on-exec".into())?;
    for fd in 3..3 + opts.preserve_fds {
        let _ = sys::clear_cloexec(fd as i32);
    }
    sys::reset_signals();
    let nnp = process.no_new_privileges() == Some(true);
    // Without no_new_privs the filter must be loaded while we still hold
    // CAP_SYS_ADMIN; with it, as late as possible.
    if !nnp {
        load_seccomp(opts)?;
    }
    let caps = process.capabilities().as_ref();
    if let Some(c) = caps {
        drop_bounding(c)?;
    }
    if opts.set_user {
        let user = process.user();
        sys::prctl(libc::PR_SET_KEEPCAPS, 1).what(|| "PR_SET_KEEPCAPS".into())?;
        let groups = user.additional_gids().clone().unwrap_or_default();
        match sys::setgroups(&groups) {
            Ok(()) => {}
            // setgroups is denied in user namespaces set up for rootless
            // use; only an error when groups were asked for.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && groups.is_empty() => {}
            Err(e) => return Err(e).what(|| format!("setgroups {groups:?}")),
        }
        sys::setresgid(user.gid()).what(|| format!("setgid {}", user.gid()))?;
        sys::setresuid(user.uid()).what(|| format!("setuid {}", user.uid()))?;
        sys::prctl(libc::PR_SET_KEEPCAPS, 0).what(|| "PR_SET_KEEPCAPS".into())?;
        if let Some(mask) = user.umask() {
            sys::umask(mask as libc::mode_t);
        }
    }
    if let Some(c) = caps {
        set_caps(c)?;
    }
    crate::lsm::set_exec_labels(process)?;
    if nnp {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).what(|| "PR_SET_NO_NEW_PRIVS".into())?;
    }
    if nnp {
        load_seccomp(opts)?;
    }
    Ok(())
}

/// The last execve, `via` the sealed exec helper when the runtime is not
/// sealed (`exeseal`): only returns an error. `report`: where the helper
/// reports a failure of the real execve.
pub fn exec(
    plan: &ExecPlan,
    via: &crate::exeseal::ExecVia,
    report: Option<crate::exeseal::Report>,
) -> Error {
    let e = via.exec(plan, report);
    Error::Container(format!("exec {}: {e}", plan.path.to_string_lossy()))
}

/// Whether a container process could reach the runtime's binary through
/// /proc/PID/exe while a runtime process is in its pid namespace: it needs
/// CAP_SYS_PTRACE over the runtime (no user namespace of its own and the
/// capability in its bounding set, or no capability restriction at all).
/// Such containers get a runtime re-executed from a sealed memfd.
pub fn could_ptrace_runtime(process: &Process, own_userns: bool) -> bool {
    if own_userns {
        return false;
    }
    match process.capabilities() {
        None => true,
        Some(c) => c
            .bounding()
            .iter()
            .flatten()
            .any(|cap| matches!(cap, oci_spec::runtime::Capability::SysPtrace)),
    }
}

/// process.scheduler via sched_setattr(2).
pub fn apply_scheduler(process: &Process) -> Result<()> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let Some(s) = process.scheduler() else {
        return Ok(());
    };
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
        util_min: u32,
        util_max: u32,
    }
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: sched_setattr reads a properly sized, initialised sched_attr
    // for the calling thread (pid 0).
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .what(|| format!("process.scheduler (policy {:?})", s.policy()));
    }
    Ok(())
}

/// process.ioPriority via ioprio_set(2).
pub fn apply_io_priority(process: &Process) -> Result<()> {
    use oci_spec::runtime::IOPriorityClass as C;
    let Some(p) = process.io_priority() else {
        return Ok(());
    };
    let class: i64 = match p.class() {
        C::IoprioClassRt => 1,
        C::IoprioClassBe => 2,
        C::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::Spec(format!(
            "process.ioPriority.priority {} is not in 0..=7",
            p.priority()
        )));
    }
    const IOPRIO_WHO_PROCESS: i64 = 1;
    // SAFETY: plain integer syscall on the calling process.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << 13) | p.priority(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).what(|| "process.ioPriority".into());
    }
    Ok(())
}

/// linux.personality via personality(2).
pub fn apply_personality(p: Option<&oci_spec::runtime::LinuxPersonality>) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    let Some(p) = p else { return Ok(()) };
    let persona: libc::c_ulong = match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    };
    // SAFETY: personality(2) only takes an integer.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(std::io::Error::last_os_error()).what(|| "linux.personality".into());
    }
    Ok(())
}

/// Pins the calling process to a CPU list like "0-3,7"
/// (process.execCPUAffinity).
pub fn set_cpu_affinity(list: &str, what: &str) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET edit it in place.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let bad = || {
        Error::Spec(format!(
            "process.execCPUAffinity.{what}: {list:?} is not a CPU list"
        ))
    };
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.parse::<usize>().map_err(|_| bad())?,
                b.parse::<usize>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<usize>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if a > b || b >= libc::CPU_SETSIZE as usize {
            return Err(bad());
        }
        for cpu in a..=b {
            // SAFETY: cpu < CPU_SETSIZE, checked above.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
    }
    // SAFETY: valid pointer and size of the set for the calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } < 0 {
        return Err(std::io::Error::last_os_error())
            .what(|| format!("process.execCPUAffinity.{what} {list:?}"));
    }
    Ok(())
}

/// linux.memoryPolicy via set_mempolicy(2).
pub fn apply_memory_policy(p: Option<&oci_spec::runtime::LinuxMemoryPolicy>) -> Result<()> {
    use oci_spec::runtime::{MemoryPolicyFlagType as F, MemoryPolicyModeType as M};
    let Some(p) = p else { return Ok(()) };
    let mut mode: libc::c_int = match p.mode() {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    for f in p.flags().iter().flatten() {
        mode |= match f {
            F::MpolFStaticNodes => 1 << 15,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFNumaBalancing => 1 << 13,
        };
    }
    // A node mask of up to 1024 nodes.
    let mut mask = [0u64; 16];
    let bad = |nodes: &str| {
        Error::Spec(format!(
            "linux.memoryPolicy.nodes {nodes:?} is not a node list"
        ))
    };
    if let Some(nodes) = p.nodes().as_deref() {
        for part in nodes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (
                    a.parse::<usize>().map_err(|_| bad(nodes))?,
                    b.parse::<usize>().map_err(|_| bad(nodes))?,
                ),
                None => {
                    let n = part.parse::<usize>().map_err(|_| bad(nodes))?;
                    (n, n)
                }
            };
            if a > b || b >= 1024 {
                return Err(bad(nodes));
            }
            for n in a..=b {
                mask[n / 64] |= 1 << (n % 64);
            }
        }
    }
    let empty = mask.iter().all(|w| *w == 0);
    // SAFETY: the mask pointer/length (in bits) describe `mask`; a null mask
    // is allowed for the modes that take none.
    let r = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            mode,
            if empty {
                std::ptr::null()
            } else {
                mask.as_ptr()
            },
            if empty { 0 } else { 1024 + 1 },
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .what(|| format!("linux.memoryPolicy (mode {:?})", p.mode()));
    }
    Ok(())
}
