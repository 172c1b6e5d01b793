//! Lifecycle hooks (config.md "POSIX-platform Hooks"): each hook runs with
//! the container's state JSON on its stdin, with an optional timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::error::{Error, Result};

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
    let Some(hooks) = hooks else { return Ok(()) };
    for h in kind.list(hooks) {
        run_one(kind, h, state_json)?;
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
        if let Err(e) = run_one(kind, h, state_json) {
            warn(&e);
        }
    }
}

fn run_one(kind: HookKind, h: &Hook, state_json: &[u8]) -> Result<()> {
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
