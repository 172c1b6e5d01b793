//! The builder's `RUN` containers (`berth_build::Runner`).
//!
//! A build container is internal: no record in the state database (so `ps -a` never shows
//! it), no monitor, no log. It runs in this process with the runtime library, as `berth-oci
//! run` does: the spec is the one `run` makes (docker's default capabilities, seccomp profile,
//! masked paths; see [`crate::spec::build`]) for the step's command, environment, user and
//! working directory, on the root filesystem the builder prepared; its stdout and stderr go
//! to one pipe the builder reads. Networking is `none` (a loopback only) or `host`; the
//! default bridge would need an endpoint record, a veth pair and NAT rules per `RUN`.
//!
//! While a [`BuildRunner`] lives, the terminating signals (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT)
//! are held and read from a signalfd: a `RUN` in progress is killed, and the builder stops at
//! the next step and cleans up what it made, instead of dying with a mounted filesystem and
//! a live cgroup. The process must be single-threaded when a container is cloned; this is
//! checked.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use berth_build::{RunMount, RunSpec, Runner, RunnerError};
use berth_runtime::{CreateOpts, sys};

use crate::Engine;
use crate::config::{MountSpec, RunConfig};
use crate::error::{Context, Error, Result};

/// Runs `RUN` steps for the builder; holds the terminating signals while it lives.
pub struct BuildRunner<'a> {
    engine: &'a Engine,
    sfd: OwnedFd,
    old_mask: libc::sigset_t,
    interrupted: bool,
}

impl<'a> BuildRunner<'a> {
    pub fn new(engine: &'a Engine) -> Result<BuildRunner<'a>> {
        let old_mask = sys::block_all_signals();
        let sfd = match sys::signalfd_all() {
            Ok(fd) => fd,
            Err(e) => {
                restore_mask(&old_mask);
                return Err(e).what(|| "signalfd".into());
            }
        };
        // Orphans of a build container (its init when the runtime double-forks) come to us.
        let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        Ok(BuildRunner {
            engine,
            sfd,
            old_mask,
            interrupted: false,
        })
    }

    /// Reads pending signals; true when one asks us to stop.
    fn poll_signals(&mut self) -> bool {
        while let Ok(r) = sys::poll_in(&[self.sfd.as_fd()], 0) {
            if !r[0] {
                break;
            }
            match sys::read_signal(self.sfd.as_fd()) {
                Ok(libc::SIGINT | libc::SIGTERM | libc::SIGHUP | libc::SIGQUIT) => {
                    self.interrupted = true
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.interrupted
    }

    fn run_container(
        &mut self,
        id: &str,
        rootfs: &Path,
        dir: &Path,
        step: &RunSpec,
        output: &mut dyn FnMut(&[u8]),
    ) -> Result<i32> {
        let network = match step.network {
            berth_build::NetworkMode::Host => "host",
            _ => "none",
        };
        let mounts = step
            .mounts
            .iter()
            .map(|m| match m {
                RunMount::Bind {
                    source,
                    target,
                    readonly,
                } => MountSpec {
                    kind: "bind".into(),
                    source: source.to_string_lossy().into_owned(),
                    target: target.clone(),
                    readonly: *readonly,
                    options: vec![],
                    anonymous: false,
                },
                RunMount::Tmpfs { target, size } => MountSpec {
                    kind: "tmpfs".into(),
                    source: String::new(),
                    target: target.clone(),
                    readonly: false,
                    options: size.map(|s| vec![format!("size={s}")]).unwrap_or_default(),
                    anonymous: false,
                },
            })
            .collect();
        let mut ulimits = Vec::new();
        for u in &step.ulimits {
            ulimits.push(crate::config::parse_ulimit(u)?);
        }
        let mut hosts = String::from(
            "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        );
        for h in &step.add_hosts {
            let (name, ip) = crate::config::parse_add_host(h)?;
            if ip == "host-gateway" {
                return Err(Error::Other(format!(
                    "--add-host {h}: host-gateway needs a bridge network (builds run on none or host)"
                )));
            }
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
        let cfg = RunConfig {
            entrypoint: Some(step.args.clone()),
            env: step.env.clone(),
            workdir: Some(step.cwd.clone()),
            user: (!step.user.is_empty()).then(|| step.user.clone()),
            network: network.into(),
            hostname: Some("buildkitsandbox".into()),
            mounts,
            ulimits,
            log_max_file: 1,
            ..RunConfig::default()
        };
        for (f, content) in [
            ("hosts", hosts),
            ("hostname", "buildkitsandbox\n".to_string()),
            ("resolv.conf", crate::network::resolv_conf(&cfg, false)),
        ] {
            let p = dir.join(f);
            fs::write(&p, content).at(&p)?;
        }
        let (mut spec, _) = crate::spec::build(id, &cfg, None, rootfs, dir, &self.engine.root)?;
        // BuildKit's RUN has no HOSTNAME variable (`docker run` sets one; the hostname itself
        // is `buildkitsandbox` either way).
        if let Some(p) = spec.process_mut() {
            let env: Vec<String> = p
                .env()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| !e.starts_with("HOSTNAME="))
                .collect();
            p.set_env(Some(env));
        }
        if let Some(size) = step.shm_size {
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            for m in mounts
                .iter_mut()
                .filter(|m| m.destination() == Path::new("/dev/shm"))
            {
                let mut o: Vec<String> = m.options().clone().unwrap_or_default();
                o.retain(|o| !o.starts_with("size="));
                o.push(format!("size={size}"));
                m.set_options(Some(o));
            }
            spec.set_mounts(Some(mounts));
        }
        let p = dir.join("config.json");
        let data = serde_json::to_vec(&spec).map_err(|e| Error::Other(e.to_string()))?;
        fs::write(&p, data).at(&p)?;
        let bundle = berth_runtime::spec::load_bundle(dir)?;
        let threads = fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
        if threads > 1 {
            return Err(Error::Other(format!(
                "internal error: {threads} threads alive where the runtime must clone a build container"
            )));
        }
        let rt = self.engine.runtime();
        let _ = rt.delete(id, true);
        let (out_r, out_w) = sys::pipe().what(|| "pipe".into())?;
        let null = sys::open(Path::new("/dev/null"), libc::O_RDWR, 0).at("/dev/null")?;
        // The container inherits our stdio: point it at the pipe while it is created.
        let saved: Vec<OwnedFd> = [
            std::io::stdin().as_fd().try_clone_to_owned(),
            std::io::stdout().as_fd().try_clone_to_owned(),
            std::io::stderr().as_fd().try_clone_to_owned(),
        ]
        .into_iter()
        .collect::<std::io::Result<_>>()
        .what(|| "dup".into())?;
        let redirected = sys::dup2(null.as_raw_fd(), 0)
            .and_then(|_| sys::dup2(out_w.as_raw_fd(), 1))
            .and_then(|_| sys::dup2(out_w.as_raw_fd(), 2));
        let created = match redirected {
            Ok(()) => Some(rt.create_from(
                &bundle,
                CreateOpts {
                    id: id.to_string(),
                    bundle: dir.to_path_buf(),
                    ..Default::default()
                },
            )),
            Err(_) => None,
        };
        for (i, fd) in saved.iter().enumerate() {
            let _ = sys::dup2(fd.as_raw_fd(), i as i32);
        }
        drop(out_w);
        let container = match created {
            Some(c) => c?,
            None => {
                return Err(Error::Other(
                    "redirecting the build container's stdio".into(),
                ));
            }
        };
        let started = (|| -> Result<()> {
            if network == "none" {
                crate::monitor::lo_up(container.record.pid)?;
            }
            rt.start_container(&container, Some(&bundle.spec))?;
            Ok(())
        })();
        if let Err(e) = started {
            let _ = rt.kill(id, libc::SIGKILL, true);
            reap(container.record.pid);
            let _ = rt.destroy_container(&container, Some(&bundle.spec));
            return Err(e);
        }
        let pid = container.record.pid;
        let mut status = None;
        let mut open = true;
        let mut buf = vec![0u8; 32 * 1024];
        while status.is_none() || open {
            let ready = match sys::poll_in(&[out_r.as_fd(), self.sfd.as_fd()], 100) {
                Ok(r) => r,
                Err(_) => continue,
            };
            if ready[1] {
                while let Ok(r) = sys::poll_in(&[self.sfd.as_fd()], 0) {
                    if !r[0] {
                        break;
                    }
                    match sys::read_signal(self.sfd.as_fd()) {
                        Ok(libc::SIGINT | libc::SIGTERM | libc::SIGHUP | libc::SIGQUIT) => {
                            self.interrupted = true;
                            let _ = rt.kill(id, libc::SIGKILL, true);
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
            while let Ok(Some((p, st))) = sys::waitpid(-1, true) {
                if p == pid {
                    status = Some(st.code());
                }
            }
            if ready[0] && open {
                match sys::read(out_r.as_fd(), &mut buf) {
                    Ok(0) | Err(_) => open = false,
                    Ok(n) => output(&buf[..n]),
                }
            } else if status.is_some() && open {
                // Init is gone (and its pid namespace with it): what is left in the pipe.
                let _ = sys::set_nonblocking(out_r.as_fd());
                match sys::read(out_r.as_fd(), &mut buf) {
                    Ok(n) if n > 0 => output(&buf[..n]),
                    _ => open = false,
                }
            }
        }
        rt.destroy_container(&container, Some(&bundle.spec))?;
        Ok(status.unwrap_or(255))
    }
}

/// While it lives, the terminating signals act as usual again (the [`BuildRunner`] holds
/// them otherwise): for the builder's pulls, which happen before any step has made anything
/// to clean up, so that Ctrl-C stops a long download at once, as it stops `berth pull`.
pub struct SignalsDefault {
    set: libc::sigset_t,
}

impl SignalsDefault {
    pub fn new() -> SignalsDefault {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset; SIG_UNBLOCK only changes this thread's mask.
        unsafe {
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
        SignalsDefault { set }
    }
}

impl Default for SignalsDefault {
    fn default() -> Self {
        SignalsDefault::new()
    }
}

impl Drop for SignalsDefault {
    fn drop(&mut self) {
        // SAFETY: blocks again the signals `new` unblocked.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &self.set, std::ptr::null_mut());
        }
    }
}

/// Waits for `pid` (and any other child that ended).
fn reap(pid: i32) {
    while let Ok(Some((p, _))) = sys::waitpid(-1, false) {
        if p == pid {
            break;
        }
    }
}

fn restore_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is a mask sigprocmask returned; SIG_SETMASK only changes this thread's
    // mask (the builder is single-threaded).
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

impl Drop for BuildRunner<'_> {
    fn drop(&mut self) {
        // A signal that came meanwhile is delivered once unblocked (the default action: the
        // build's cleanup is done by now).
        restore_mask(&self.old_mask);
    }
}

impl Runner for BuildRunner<'_> {
    fn run(
        &mut self,
        id: &str,
        rootfs: &Path,
        dir: &Path,
        spec: &RunSpec,
        output: &mut dyn FnMut(&[u8]),
    ) -> std::result::Result<i32, RunnerError> {
        if self.poll_signals() {
            return Err(RunnerError::Interrupted);
        }
        let r = self.run_container(id, rootfs, dir, spec, output);
        if self.interrupted {
            return Err(RunnerError::Interrupted);
        }
        r.map_err(|e| RunnerError::Failed(e.to_string()))
    }

    fn interrupted(&mut self) -> bool {
        self.poll_signals()
    }

    fn cleanup(&mut self, id: &str) {
        let rt = self.engine.runtime();
        let cgroup = rt.load(id).ok().map(|c| c.record.cgroup.clone());
        let deleted = rt.delete(id, true);
        if berth_runtime::timing::requested() {
            eprintln!(
                "berth build: removing the build container {id} of a dead build: {deleted:?}"
            );
        }
        // Its processes die after its init; until the last is gone its mount namespace
        // holds the build's overlay (removing that directory fails with EBUSY).
        if let Some(cg) = cgroup {
            for _ in 0..250 {
                if cg.procs().is_empty() {
                    break;
                }
                for p in cg.procs() {
                    let _ = sys::kill(p, libc::SIGKILL);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = cg.destroy();
        }
    }
}

/// The Engine API's `BuildCache` list of `/system/df`: the builder's cache records.
pub fn cache_json(store: &berth_image::ImageStore) -> Result<serde_json::Value> {
    let images = store.list()?;
    let blobs: std::collections::HashSet<_> = images
        .iter()
        .flat_map(|i| i.blobs.iter().cloned())
        .collect();
    let list: Vec<serde_json::Value> = berth_build::cache::records(store, &blobs)
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "ID": r.id, "Parent": "", "Parents": [], "Type": r.kind,
                "Description": r.description, "InUse": false, "Shared": r.shared,
                "Size": r.size, "CreatedAt": r.created, "LastUsedAt": r.last_used,
                "UsageCount": 1,
            })
        })
        .collect();
    Ok(serde_json::Value::Array(list))
}
