//! The OCI seccomp object (config-linux.md "Seccomp") compiled with
//! libseccomp and loaded into the calling process.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};

fn err(msg: impl std::fmt::Display) -> Error {
    Error::Container(format!("seccomp: {msg}"))
}

/// The action names the spec defines (for `features`).
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

pub const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

fn action(a: LinuxSeccompAction, errno: Option<u32>, default_errno: Option<u32>) -> ScmpAction {
    let errno = errno.or(default_errno).unwrap_or(libc::EPERM as u32) as i32;
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    }
}

fn compare(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    }
}

/// Whether the profile uses SCMP_ACT_NOTIFY anywhere.
pub fn uses_notify(sc: &LinuxSeccomp) -> bool {
    sc.default_action() == LinuxSeccompAction::ScmpActNotify
        || sc
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
}

/// Builds the filter.
pub fn build(sc: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(sc.default_action(), sc.default_errno_ret(), None);
    let mut ctx = ScmpFilterContext::new(default).map_err(err)?;
    // We decide about no_new_privs ourselves (process.noNewPrivileges).
    ctx.set_ctl_nnp(false).map_err(err)?;
    for a in sc.architectures().iter().flatten() {
        let name = serde_json::to_value(a)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let arch: ScmpArch = name
            .parse()
            .map_err(|_| err(format!("unknown architecture {name}")))?;
        ctx.add_arch(arch).map_err(err)?;
    }
    for f in sc.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        }
        .map_err(err)?;
    }
    for rule in sc.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret(), sc.default_errno_ret());
        if act == default {
            // libseccomp refuses rules that repeat the default action.
            continue;
        }
        let args = rule.args().as_deref().unwrap_or_default();
        let cmps: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| {
                let (op, datum) = compare(a.op(), a.value(), a.value_two());
                ScmpArgCompare::new(a.index() as u32, op, datum)
            })
            .collect();
        let mut indices: Vec<usize> = args.iter().map(|a| a.index()).collect();
        indices.sort();
        indices.dedup();
        let same_index = indices.len() != args.len();
        for name in rule.names() {
            // Names unknown on this architecture are skipped, as runc does.
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let r = if cmps.is_empty() {
                ctx.add_rule(act, sys)
            } else if same_index {
                // Several conditions on one argument: any of them matches.
                let mut r = Ok(&mut ctx);
                for c in &cmps {
                    r = r.and_then(|ctx| ctx.add_rule_conditional(act, sys, &[*c]));
                }
                r.map(drop).map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sys, &cmps)
            };
            r.map_err(|e| err(format!("syscall {name}: {e}")))?;
        }
    }
    Ok(ctx)
}

/// The profile compiled to a classic BPF program (`struct sock_filter`
/// array, native endianness) and the seccomp(2) filter flags it needs, for
/// profiles without SCMP_ACT_NOTIFY (those go through libseccomp at load
/// time: the kernel hands out the listener fd then).
///
/// Compiling a Docker-sized profile with libseccomp takes several
/// milliseconds, so the program is kept under `cache` (the runtime's state
/// root, root-only) by the sha256 of the profile, the architecture and
/// libseccomp's version and API level, and made again only for a profile
/// not seen before. The runtime compiles before it clones init; init (a
/// copy of the runtime's memory) only loads the program.
pub fn precompile(sc: &LinuxSeccomp, cache: Option<&std::path::Path>) -> Result<Option<Compiled>> {
    use sha2::Digest as _;
    if uses_notify(sc) {
        return Ok(None);
    }
    let flags = filter_flags(sc);
    let json = serde_json::to_vec(sc).map_err(err)?;
    let version = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(std::env::consts::ARCH.as_bytes());
    h.update(version.as_bytes());
    h.update(libseccomp::get_api().to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(&json);
    let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let path = cache.map(|d| d.join(format!("{key}.bpf")));
    // A cache entry is the program followed by its sha256: a truncated or
    // damaged file is compiled again, never loaded.
    if let Some(p) = &path
        && let Ok(mut prog) = std::fs::read(p)
        && prog.len() > 32
    {
        let sum = prog.split_off(prog.len() - 32);
        if !prog.is_empty()
            && prog.len().is_multiple_of(8)
            && sha2::Sha256::digest(&prog).as_slice() == sum.as_slice()
        {
            return Ok(Some(Compiled { prog, flags }));
        }
    }
    let prog = export(&build(sc)?)?;
    if prog.is_empty() || !prog.len().is_multiple_of(8) {
        return Err(err(format!(
            "libseccomp exported {} bytes of BPF",
            prog.len()
        )));
    }
    if let (Some(dir), Some(p)) = (cache, &path) {
        // Best effort: a cache that cannot be written costs time only, and
        // leaves no empty directory behind in the state root.
        let made = std::fs::create_dir(dir).is_ok();
        let tmp = dir.join(format!(".{key}.{}", std::process::id()));
        let mut entry = prog.clone();
        entry.extend_from_slice(&sha2::Sha256::digest(&prog));
        let written = std::fs::write(&tmp, &entry).is_ok() && std::fs::rename(&tmp, p).is_ok();
        if !written {
            let _ = std::fs::remove_file(&tmp);
            if made {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
    Ok(Some(Compiled { prog, flags }))
}

/// The BPF program of a filter (libseccomp 2.5 exports to a descriptor
/// only: a memfd, read back).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let fd = crate::sys::memfd(c"berth-seccomp").map_err(err)?;
    let mut f = std::fs::File::from(fd);
    ctx.export_bpf(&f).map_err(err)?;
    let mut prog = Vec::new();
    f.rewind()
        .and_then(|()| f.read_to_end(&mut prog))
        .map_err(err)?;
    Ok(prog)
}

/// A compiled profile: see [`precompile`].
#[derive(Clone, Debug)]
pub struct Compiled {
    pub prog: Vec<u8>,
    pub flags: u32,
}

/// seccomp(2)'s filter flags for the profile's `flags`.
fn filter_flags(sc: &LinuxSeccomp) -> u32 {
    const TSYNC: u32 = 1;
    const LOG: u32 = 2;
    const SPEC_ALLOW: u32 = 4;
    const WAIT_KILLABLE_RECV: u32 = 32;
    sc.flags()
        .iter()
        .flatten()
        .map(|f| match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => WAIT_KILLABLE_RECV,
        })
        .fold(0, |a, f| a | f)
}

/// Loads a compiled program into the calling process (seccomp(2),
/// SECCOMP_SET_MODE_FILTER), as libseccomp's load does.
pub fn load_compiled(c: &Compiled) -> Result<()> {
    crate::sys::seccomp_set_filter(&c.prog, c.flags)
        .map_err(|e| err(format!("loading the seccomp filter: {e}")))
}

/// Loads the profile into the calling process. Returns the notify fd when
/// the profile uses SCMP_ACT_NOTIFY.
pub fn apply(sc: &LinuxSeccomp) -> Result<Option<i32>> {
    let ctx = build(sc)?;
    ctx.load().map_err(err)?;
    if uses_notify(sc) {
        return ctx.get_notify_fd().map(Some).map_err(err);
    }
    Ok(None)
}

/// The message runc sends to a seccomp agent with the notify fd: the
/// container process state of runtime.md.
pub fn notify_message(sc: &LinuxSeccomp, state_json: &[u8]) -> Vec<u8> {
    let state: serde_json::Value = serde_json::from_slice(state_json).unwrap_or_default();
    let pid = state.get("pid").cloned().unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": sc.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    })
    .to_string()
    .into_bytes()
}
