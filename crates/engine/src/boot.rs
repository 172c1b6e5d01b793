//! `berth system boot`: what a daemon does when it comes up, for a daemonless
//! engine, run once at boot (by `contrib/systemd/berth-boot.service`).
//!
//! A reboot takes every monitor and container with it; what they held is in
//! one of three states: gone with the machine (processes, `/run` on a tmpfs:
//! monitor locks, attach sockets, the runtime's state), stale on disk (the
//! database still says "running", the container's cgroup directory on a
//! simulated reboot, a root filesystem still mounted, network endpoint
//! records and published ports), or sound (the container's files, logs and
//! markers under `<root>/containers/<id>/`). `boot` clears the stale part of
//! every container that is no longer running and then starts the ones
//! whose restart policy says so, as dockerd's restore does:
//!
//! - `always`: started, if it was ever started (even one the user stopped:
//!   docker restarts those when its daemon comes up);
//! - `unless-stopped`: started unless the user stopped or killed it (the
//!   `stopped-by-user`/`killed-by-user` markers live in the container's
//!   directory, not in `/run`, to survive the reboot);
//! - `no` and `on-failure`: left exited. docker would restart an
//!   `on-failure` container that was running at the reboot (its exit code
//!   becomes 255); a reboot is not a failure of the container, and podman's
//!   `podman-restart.service` does not either.
//!
//! Containers that are really still running (a monitor holds them, or their
//! init is alive) are left alone, so running `boot` twice does nothing the
//! second time. After a real reboot (the kernel's boot id changed since the
//! last `boot`), a container the database calls running is dead whatever
//! its recorded pid now names.

use std::fs;
use std::path::Path;

use crate::config::{RestartPolicy, parse_restart};
use crate::error::Result;
use crate::{Engine, db, row_config, row_spec};

/// What one `boot` did.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BootReport {
    /// Containers whose state was cleared (they died without their monitor).
    pub cleared: Vec<String>,
    /// Containers started again (by their restart policy).
    pub started: Vec<String>,
    /// Containers left alone because they are running.
    pub running: Vec<String>,
    /// Containers whose start failed, with why.
    pub failed: Vec<(String, String)>,
}

/// The kernel's id of this boot.
fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether a restart policy brings the container back at boot (see the
/// module doc).
pub fn restarts_at_boot(policy: RestartPolicy, stopped_by_user: bool) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::UnlessStopped => !stopped_by_user,
        RestartPolicy::No | RestartPolicy::OnFailure(_) => false,
    }
}

impl Engine {
    /// The file holding the boot id of the last `boot`.
    fn boot_id_file(&self) -> std::path::PathBuf {
        self.root.join("engine").join("boot-id")
    }

    /// `system boot` (see the module doc). `exe` is the berth binary the
    /// monitors run from.
    pub fn boot(&mut self, exe: &Path) -> Result<BootReport> {
        let mut report = BootReport::default();
        let now = boot_id();
        let rebooted = match (&now, fs::read_to_string(self.boot_id_file())) {
            (Some(n), Ok(last)) => last.trim() != n,
            _ => false,
        };
        // Oldest first: what a container depends on was usually made before it.
        let mut rows = self.db.list()?;
        rows.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        for row in rows {
            if self.monitor_alive(&row.id) {
                report.running.push(row.name);
                continue;
            }
            let active = matches!(row.state.as_str(), db::RUNNING | db::PAUSED);
            if active && rebooted {
                // Its recorded pid may name another process of this boot.
                self.cleanup_runtime(&row.id);
                self.db.set_exited(
                    &row.id,
                    db::EXITED,
                    255,
                    false,
                    "the machine restarted while the container ran",
                    &berth_runtime::state::now_rfc3339(),
                )?;
            }
            // The crash-truth rule: a dead container is marked exited and
            // its runtime state, overlay mount and endpoints released.
            let row = match self.get(&row.id) {
                Ok(r) => r,
                Err(crate::Error::NoSuchContainer(_)) => continue,
                Err(e) => return Err(e),
            };
            if matches!(row.state.as_str(), db::RUNNING | db::PAUSED) {
                report.running.push(row.name);
                continue;
            }
            if self.clear_leftovers(&row) || active {
                report.cleared.push(row.name.clone());
            }
            let cfg = row_config(&row);
            let policy = parse_restart(&cfg.restart).unwrap_or(RestartPolicy::No);
            let user_stopped = self.stopped_by_user(&row.id) || self.killed_by_user(&row.id);
            if row.started_at.is_empty()
                || cfg.auto_remove
                || self.removal_pending(&row.id)
                || !restarts_at_boot(policy, user_stopped)
            {
                continue;
            }
            match self.start(&row.id, exe) {
                Ok(_) => report.started.push(row.name),
                Err(e) => report.failed.push((row.name, e.to_string())),
            }
        }
        if let Some(n) = now {
            berth_runtime::state::write_atomic(&self.boot_id_file(), n.as_bytes())?;
        }
        Ok(report)
    }

    /// What a stopped container may still hold after its runtime state is
    /// gone (wiped with `/run`): its cgroup directories (found from its
    /// spec's cgroupsPath) and its attach socket. Whether anything was
    /// removed.
    fn clear_leftovers(&self, row: &db::ContainerRow) -> bool {
        let mut cleared = false;
        let sock = self.state_dir(&row.id).join("attach.sock");
        cleared |= fs::remove_file(sock).is_ok();
        let Some(spec) = row_spec(self, row) else {
            return cleared;
        };
        let cg_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
        let (Ok(layout), Ok(path)) = (
            berth_runtime::cgroups::Layout::detect(),
            berth_runtime::cgroups::resolve_path(cg_path.as_deref(), &row.id),
        ) else {
            return cleared;
        };
        let cg = berth_runtime::cgroups::CgroupPaths::new(&layout, path);
        let exists = cg.hierarchies.iter().any(|h| cg.dir(h).is_dir());
        // A cgroup with processes in it is someone's: left alone.
        if exists && cg.procs().is_empty() && cg.destroy().is_ok() {
            cleared = true;
        }
        cleared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_at_boot() {
        assert!(restarts_at_boot(RestartPolicy::Always, false));
        assert!(restarts_at_boot(RestartPolicy::Always, true));
        assert!(restarts_at_boot(RestartPolicy::UnlessStopped, false));
        assert!(!restarts_at_boot(RestartPolicy::UnlessStopped, true));
        assert!(!restarts_at_boot(RestartPolicy::No, false));
        assert!(!restarts_at_boot(RestartPolicy::OnFailure(None), false));
        assert!(!restarts_at_boot(RestartPolicy::OnFailure(Some(3)), false));
    }
}
