//! Lifecycle hooks (config.md "POSIX-platform Hooks"): each hook runs with
//! the container's state JSON on its stdin, with an optional timeout.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::error::{Error, Result};
use crate::exeseal::ExecVia;
use crate::process::ExecPlan;

/// The hook's execve as an [`ExecPlan`] (what `Command` would run).
fn hook_plan(h: &Hook) -> Result<ExecPlan> {
    let c = |s: &[u8]| {
        std::ffi::CString::new(s)
            .map_err(|_| Error::Spec(format!("hook {:?}: a NUL byte", h.path())))
    };
    use std::os::unix::ffi::OsStrExt;
    let path = c(h.path().as_os_str().as_bytes())?;
    let args = h.args().as_deref().unwrap_or_default();
    let argv = if args.is_empty() {
        vec![path.clone()]
    } else {
        args.iter()
            .map(|a| c(a.as_bytes()))
            .collect::<Result<_>>()?
    };
    let env = h
        .env()
        .iter()
        .flatten()
        .filter(|e| e.contains('='))
        .map(|e| c(e.as_bytes()))
        .collect::<Result<_>>()?;
    Ok(ExecPlan { path, argv, env })
}

/// The hook points, named as in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    pub fn list(self, hooks: &Hooks) -> &[Hook] {
        #[allow(deprecated)]
        let l = match self {
            HookKind::Prestart => hooks.prestart(),
            HookKind::CreateRuntime => hooks.create_runtime(),
            HookKind::CreateContainer => hooks.create_container(),
            HookKind::StartContainer => hooks.start_container(),
            HookKind::Poststart => hooks.poststart(),
            HookKind::Poststop => hooks.poststop(),
        };
        l.as_deref().unwrap_or_default()
    }
}

/// Names of all hook points (for `features`).
pub const ALL: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Runs every hook of `kind` in order; stops at the first failure.
pub fn run(kind: HookKind, hooks: Option<&Hooks>, state_json: &[u8]) -> Result<()> {
    run_via(kind, hooks, state_json, &ExecVia::Direct)
}

/// [`run`] for hooks that run inside the container (startContainer): each
/// hook's execve goes `via` the sealed exec helper when the runtime's own
/// binary is not sealed, since the file at the hook's path belongs to the
/// image (a `#!/proc/self/exe` script there is CVE-2019-5736).
pub fn run_via(
    kind: HookKind,
    hooks: Option<&Hooks>,
    state_json: &[u8],
    via: &ExecVia,
) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    for h in kind.list(hooks) {
        run_one(kind, h, state_json, via)?;
    }
    Ok(())
}

/// Runs every hook of `kind`, reporting failures to `warn` and going on
/// (poststart and poststop failures only warn, per the spec).
pub fn run_warn(
    kind: HookKind,
    hooks: Option<&Hooks>,
    state_json: &[u8],
    warn: &mut dyn FnMut(&Error),
) {
    let Some(hooks) = hooks else { return };
    for h in kind.list(hooks) {
        if let Err(e) = run_one(kind, h, state_json, &ExecVia::Direct) {
            warn(&e);
        }
    }
}

fn run_one(kind: HookKind, h: &Hook, state_json: &[u8], via: &ExecVia) -> Result<()> {
    let fail = |msg: String| Error::Hook {
        hook: kind.name(),
        path: h.path().clone(),
        msg,
    };
    let args = h.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    if args.len() > 1 {
        cmd.args(&args[1..]);
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    if let ExecVia::Helper(_) = via {
        let plan = hook_plan(h).map_err(|e| fail(e.to_string()))?;
        let (helper, argv) = via
            .helper_call(&plan, None)
            .map_err(|e| fail(format!("berth-exec: {e}")))?;
        let env = plan.env;
        // SAFETY: runs in the forked child before Command's own execve; the
        // runtime is single-threaded, so allocating there is sound. On
        // success execveat never returns.
        unsafe {
            cmd.pre_exec(move || Err(crate::sys::execveat_empty(helper.as_fd(), &argv, &env)));
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state_json);
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = match deadline {
        None => child.wait().map_err(|e| fail(e.to_string()))?,
        Some(deadline) => {
            let mut nap = Duration::from_micros(200);
            loop {
                if let Some(st) = child.try_wait().map_err(|e| fail(e.to_string()))? {
                    break st;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!(
                        "timed out after {} s",
                        h.timeout().unwrap_or_default()
                    )));
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
        }
    };
    if !status.success() {
        return Err(fail(format!("exited with {status}")));
    }
    Ok(())
}
