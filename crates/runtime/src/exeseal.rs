//! CVE-2019-5736: no process of a container may ever reach a writable copy
//! of the runtime's own binary (berth-oci, or berth, which runs this
//! library in-process).
//!
//! The attack: a container process execs a script whose `#!` line names
//! `/proc/self/exe`. When the *runtime's* process inside the container
//! (init, an `exec`'d process, a startContainer hook) calls execve on that
//! script, the kernel starts `/proc/self/exe` of that process, the host's
//! runtime binary, as an ordinary, dumpable process in the container.
//! Another container process opens `/proc/PID/exe` of it (O_PATH is
//! enough), keeps the descriptor, and once nothing executes the binary any
//! more re-opens it for writing through `/proc/self/fd/N`. Making runtime
//! processes non-dumpable does not help: the process the attacker
//! inspects is the binary executed afresh by the kernel.
//!
//! The guard: whenever a process of ours calls execve inside a container,
//! its `/proc/self/exe` is something the container cannot write:
//!
//! * **sealed runtime** ([`exe_is_sealed`]): the runtime itself runs from a
//!   read-only detached bind mount of its binary (`open_tree` +
//!   `mount_setattr(MOUNT_ATTR_RDONLY)`, executed with `execveat`: no copy,
//!   a few system calls) or, where that is not allowed, from a memfd copy
//!   sealed against writes. The engine starts every container monitor that
//!   way, so everything a monitor clones is sealed.
//! * **exec helper** ([`ExecVia::Helper`]): otherwise (berth-oci, `berth
//!   exec`) the last execve goes through `berth-exec`, a 5 KB static program
//!   (crates/nolibc) placed in a memfd sealed with `F_SEAL_WRITE|GROW|
//!   SHRINK|SEAL` before the container is touched; it execs the real
//!   program. `/proc/self/exe` during that last execve, and for anything a
//!   hostile `#!` line makes the kernel run, is that sealed memfd; run as an
//!   interpreter, berth-exec refuses and exits. This costs one memfd and one
//!   extra exec of a tiny static binary (measured in docs/benchmarks.md),
//!   where re-executing the runtime would cost a dynamic program's start.
//!
//! The helper needs the container's seccomp profile to allow `execveat`
//! (docker's and Berth's defaults do). A profile that may refuse it, a
//! container that could ptrace our processes before their execve (it keeps
//! CAP_SYS_PTRACE and has no user namespace of its own: it could open
//! `/proc/PID/exe` of a non-dumpable runtime process), and one that joins a
//! pid namespace shared with processes we know nothing of, need a sealed
//! runtime: [`needs_sealed_runtime`] says so, the callers re-execute with
//! [`reexec_sealed`] first, and `create`/`exec` refuse to go on unsealed.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, Process, Spec};

use crate::error::{Context, Error, Result};
use crate::process::ExecPlan;
use crate::sys;

/// The static `berth-exec` program (crates/nolibc/src/exec.rs).
pub const HELPER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-exec"));

/// argv[0] the helper insists on.
const HELPER_ARGV0: &std::ffi::CStr = c"berth-exec";

/// How a container process makes its last execve.
pub enum ExecVia {
    /// Our binary is sealed: exec the program directly.
    Direct,
    /// Through berth-exec in this sealed memfd.
    Helper(OwnedFd),
}

/// Where a failed last execve is reported.
#[derive(Clone, Copy)]
pub enum Report {
    /// The error message alone (init's `start` connection).
    Raw(RawFd),
    /// One message behind the runtime's error tag (the setup socket).
    Tagged(RawFd),
}

impl ExecVia {
    /// What a container about to be created or exec'd into needs, decided
    /// by the runtime before it clones. `min_fd`: the helper's descriptor
    /// is placed at or above it (above the descriptors a process keeps).
    pub fn for_spec(spec: &Spec, process: Option<&Process>, min_fd: RawFd) -> Result<ExecVia> {
        if exe_is_sealed() {
            return Ok(ExecVia::Direct);
        }
        if needs_sealed_runtime(spec, process) {
            return Err(Error::Container(
                "the runtime's binary is not sealed, and this container could reach it \
                 (CAP_SYS_PTRACE without a user namespace, or a seccomp profile that may \
                 refuse execveat): re-execute the runtime sealed first (CVE-2019-5736)"
                    .into(),
            ));
        }
        let fd = helper_memfd().what(|| "a sealed memfd for berth-exec".into())?;
        let fd = sys::dup_cloexec_at_least(fd.as_fd(), min_fd.max(3))
            .what(|| "placing berth-exec's descriptor".into())?;
        Ok(ExecVia::Helper(fd))
    }

    /// The last execve of a container process (or a hook inside it): only
    /// returns on failure. `report`: where the helper reports a failure of
    /// the real execve (it cannot return to us).
    pub fn exec(&self, plan: &ExecPlan, report: Option<Report>) -> io::Error {
        match self {
            ExecVia::Direct => sys::execve(&plan.path, &plan.argv, &plan.env),
            ExecVia::Helper(fd) => {
                let argv = match helper_argv(plan, report) {
                    Ok(a) => a,
                    Err(e) => return e,
                };
                if let Some(Report::Raw(r) | Report::Tagged(r)) = report
                    && let Err(e) = sys::clear_cloexec(r)
                {
                    return e;
                }
                sys::execveat_empty(fd.as_fd(), &argv, &plan.env)
            }
        }
    }

    /// For a call made later by someone else (a `Command`'s pre_exec): a
    /// duplicate of the helper's descriptor and the helper's argv. None
    /// for [`ExecVia::Direct`].
    pub fn helper_call(
        &self,
        plan: &ExecPlan,
        report: Option<Report>,
    ) -> io::Result<(OwnedFd, Vec<CString>)> {
        match self {
            ExecVia::Direct => Err(io::Error::other("no exec helper in use")),
            ExecVia::Helper(fd) => Ok((fd.try_clone()?, helper_argv(plan, report)?)),
        }
    }
}

fn helper_argv(plan: &ExecPlan, report: Option<Report>) -> io::Result<Vec<CString>> {
    let r = match report {
        None => "-".to_string(),
        Some(Report::Raw(fd)) => format!("r{fd}"),
        Some(Report::Tagged(fd)) => format!("t{fd}"),
    };
    let mut argv = Vec::with_capacity(plan.argv.len() + 3);
    argv.push(HELPER_ARGV0.to_owned());
    argv.push(CString::new(r).map_err(io::Error::other)?);
    argv.push(plan.path.clone());
    argv.extend(plan.argv.iter().cloned());
    Ok(argv)
}

/// berth-exec in a memfd sealed against any change (close-on-exec).
pub fn helper_memfd() -> io::Result<OwnedFd> {
    let fd = sys::memfd_exec(c"berth-exec")?;
    sys::write_all(fd.as_fd(), HELPER)?;
    sys::seal_all(fd.as_fd())?;
    Ok(fd)
}

/// Whether our own executable is one a container cannot write: a memfd
/// sealed against writes, or a file on a read-only mount.
pub fn exe_is_sealed() -> bool {
    let Ok(exe) = sys::open(Path::new("/proc/self/exe"), libc::O_RDONLY, 0) else {
        return false;
    };
    if sys::seals(exe.as_fd()).is_ok_and(|s| s & libc::F_SEAL_WRITE != 0) {
        return true;
    }
    sys::fstatvfs_flags(exe.as_fd()).is_ok_and(|f| f & libc::ST_RDONLY != 0)
}

/// Whether a container process could reach a runtime process's binary
/// before the exec helper runs, or the helper could not run: the runtime
/// must then run sealed ([`reexec_sealed`]).
pub fn needs_sealed_runtime(spec: &Spec, process: Option<&Process>) -> bool {
    let linux = spec.linux().as_ref();
    let own_userns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        });
    let process = process.or(spec.process().as_ref());
    let ptrace = process.is_some_and(|p| crate::process::could_ptrace_runtime(p, own_userns));
    // In a pid namespace shared with others (joined by path: a pod's
    // shared process namespace, `--pid container:X`), processes we do not
    // know the capabilities of see our runtime processes too.
    let shared_pid_ns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_some()
            })
        });
    ptrace || shared_pid_ns || !seccomp_allows_execveat(linux.and_then(|l| l.seccomp().as_ref()))
}

/// Whether the profile surely lets `execveat(fd, "", …, AT_EMPTY_PATH)`
/// through: its default action allows and no rule names execveat with
/// another action, or a rule allows execveat without conditions.
pub fn seccomp_allows_execveat(sc: Option<&LinuxSeccomp>) -> bool {
    let Some(sc) = sc else { return true };
    let allows = |a: LinuxSeccompAction| {
        matches!(
            a,
            LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog
        )
    };
    let rules: Vec<_> = sc
        .syscalls()
        .iter()
        .flatten()
        .filter(|r| r.names().iter().any(|n| n == "execveat"))
        .collect();
    if allows(sc.default_action()) {
        return rules.iter().all(|r| allows(r.action()));
    }
    rules
        .iter()
        .any(|r| allows(r.action()) && r.args().as_ref().is_none_or(|a| a.is_empty()))
        && rules.iter().all(|r| allows(r.action()))
}

/// A read-only detached bind mount of the executable `path` (e.g.
/// `/proc/self/exe`), to execute with `execveat` or through
/// `/proc/self/fd/N`: a process started from it has a `/proc/PID/exe` that
/// cannot be opened for writing (EROFS). Needs CAP_SYS_ADMIN over the
/// mount namespace (`open_tree(OPEN_TREE_CLONE)`); costs two system calls.
///
/// A magic link such as `/proc/self/exe` may lead to a mount of another
/// mount namespace (a process that entered ours after its execve, as a
/// rootless berth does), which `open_tree` refuses (EINVAL): then the file
/// is taken by its path here, and used only if it is the same file.
pub fn read_only_exe(path: &Path) -> io::Result<OwnedFd> {
    let t = match sys::open_tree_clone(path, false) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let target = std::fs::read_link(path).map_err(|_| e)?;
            let want = sys::fstat(sys::open(path, libc::O_PATH | libc::O_CLOEXEC, 0)?.as_fd())?;
            let t = sys::open_tree_clone(&target, false)?;
            let got = sys::fstat(t.as_fd())?;
            if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino) {
                return Err(io::Error::other(format!(
                    "{} is no longer the file {} leads to",
                    target.display(),
                    path.display()
                )));
            }
            t
        }
        r => r?,
    };
    let ro = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
    sys::mount_setattr(t.as_fd(), ro, 0, None, false)?;
    Ok(t)
}

/// Our own binary as something a container cannot write, to execute with
/// `execveat` or through `/proc/self/fd/N`: a read-only view of it
/// ([`read_only_exe`]), or where no mount can be made a memfd copy sealed
/// against writes.
pub fn sealed_self() -> io::Result<OwnedFd> {
    read_only_exe(Path::new("/proc/self/exe")).or_else(|_| sealed_copy_of_self())
}

/// Re-executes this program, with the same arguments and environment, from
/// a read-only detached bind mount of its binary ([`read_only_exe`]), or,
/// where this process may not make mounts, from a memfd copy sealed against
/// writes. Only returns on failure.
pub fn reexec_sealed() -> io::Error {
    let exe = match sealed_self() {
        Ok(t) => t,
        Err(e) => return e,
    };
    let to_c = |s: &std::ffi::OsStr| CString::new(s.as_bytes()).ok();
    let argv: Vec<CString> = std::env::args_os().filter_map(|a| to_c(&a)).collect();
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(&kv)
        })
        .collect();
    sys::execveat_empty(exe.as_fd(), &argv, &envp)
}

fn sealed_copy_of_self() -> io::Result<OwnedFd> {
    let exe = sys::open(Path::new("/proc/self/exe"), libc::O_RDONLY, 0)?;
    let m = sys::memfd_exec(c"berth-runtime")?;
    sys::copy_all(exe.as_fd(), m.as_fd())?;
    sys::seal_all(m.as_fd())?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("a valid seccomp object")
    }

    #[test]
    fn execveat_decisions() {
        assert!(seccomp_allows_execveat(None));
        let allow_all = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}));
        assert!(seccomp_allows_execveat(Some(&allow_all)));
        let deny_execveat = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]
        }));
        assert!(!seccomp_allows_execveat(Some(&deny_execveat)));
        let allowlist = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "execve", "execveat"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert!(seccomp_allows_execveat(Some(&allowlist)));
        let without = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "execve"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert!(!seccomp_allows_execveat(Some(&without)));
        let conditional = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_KILL",
            "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 4, "value": 0, "op": "SCMP_CMP_EQ"}]}]
        }));
        assert!(!seccomp_allows_execveat(Some(&conditional)));
    }

    #[test]
    fn helper_memfd_is_sealed_and_exact() {
        let fd = helper_memfd().expect("memfd");
        let seals = sys::seals(fd.as_fd()).expect("F_GET_SEALS");
        for s in [
            libc::F_SEAL_WRITE,
            libc::F_SEAL_GROW,
            libc::F_SEAL_SHRINK,
            libc::F_SEAL_SEAL,
        ] {
            assert_ne!(seals & s, 0, "seal {s:#x} missing");
        }
        let data = std::fs::read(sys::fd_path(fd.as_fd())).expect("read back");
        assert_eq!(data, HELPER);
        // Re-opened for writing, it still cannot change.
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(sys::fd_path(fd.as_fd()));
        if let Ok(mut w) = w {
            use std::io::Write;
            assert!(w.write_all(b"x").is_err(), "wrote into the sealed helper");
        }
    }
}
