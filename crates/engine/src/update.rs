//! `berth update`: a container's limits (memory, swap, CPU, pids) and
//! restart policy changed in place. A running (or paused) container's
//! cgroup is written at once (v1 or v2, through the runtime's
//! `resources::apply`); then the new values are stored in its record (what
//! `inspect` shows) and its OCI spec (what its next start applies).

use std::fs;

use serde_json::{Value, json};

use crate::config::{RestartPolicy, parse_restart};
use crate::error::{Context, Error, Result, invalid};
use crate::{Engine, db, row_config};

/// What to change; `None` leaves a value as it is.
#[derive(Clone, Debug, Default)]
pub struct UpdateRequest {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub restart: Option<String>,
    pub memory_reservation: Option<i64>,
    pub cpuset_mems: Option<String>,
    pub blkio_weight: Option<u16>,
    pub cpu_rt_period: Option<i64>,
    pub cpu_rt_runtime: Option<i64>,
}

impl UpdateRequest {
    /// Whether it changes anything at all.
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.memory_swap.is_none()
            && self.nano_cpus.is_none()
            && self.cpu_shares.is_none()
            && self.cpu_period.is_none()
            && self.cpu_quota.is_none()
            && self.cpuset_cpus.is_none()
            && self.pids_limit.is_none()
            && self.restart.is_none()
            && self.memory_reservation.is_none()
            && self.cpuset_mems.is_none()
            && self.blkio_weight.is_none()
            && self.cpu_rt_period.is_none()
            && self.cpu_rt_runtime.is_none()
    }
}

/// The memory the container's cgroup uses now (v1 or v2), if readable.
fn memory_usage(cg: &berth_runtime::cgroups::CgroupPaths) -> Option<i64> {
    let h = cg.hierarchy_of("memory")?;
    let file = if h.unified {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    fs::read_to_string(cg.dir(h).join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What the kernel cannot reclaim from a v2 cgroup without swap (its
/// anonymous and shared memory, from `memory.stat`); None on v1.
fn unreclaimable_v2(cg: &berth_runtime::cgroups::CgroupPaths) -> Option<i64> {
    let h = cg.hierarchy_of("memory").filter(|h| h.unified)?;
    let stat = fs::read_to_string(cg.dir(h).join("memory.stat")).ok()?;
    let get = |k: &str| -> i64 {
        stat.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    };
    Some(get("anon") + get("shmem"))
}

/// The request applied to a container's config, checked as docker's daemon
/// checks an update.
pub fn updated_config(cfg: &crate::RunConfig, req: &UpdateRequest) -> Result<crate::RunConfig> {
    let mut new = cfg.clone();
    if let Some(m) = req.memory.filter(|m| *m != 0) {
        if m > 0 && m < crate::spec::MIN_MEMORY {
            return Err(invalid("--memory", "Minimum memory limit allowed is 6MB"));
        }
        // A swap limit the user set stays; it must still hold the memory.
        if req.memory_swap.is_none()
            && let Some(s) = cfg.memory_swap.filter(|s| *s > 0)
            && m > s
        {
            return Err(invalid(
                "--memory",
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
            ));
        }
        new.memory = Some(m);
    }
    if let Some(s) = req.memory_swap.filter(|s| *s != 0) {
        new.memory_swap = Some(s);
    }
    if let Some(n) = req.nano_cpus.filter(|n| *n != 0) {
        new.nano_cpus = Some(n);
    }
    if let Some(s) = req.cpu_shares.filter(|s| *s != 0) {
        if s < 2 {
            return Err(invalid(
                "--cpu-shares",
                "the minimum allowed cpu-shares is 2",
            ));
        }
        new.cpu_shares = Some(s);
    }
    if let Some(p) = req.cpu_period.filter(|p| *p != 0) {
        new.cpu_period = Some(p);
    }
    if let Some(q) = req.cpu_quota.filter(|q| *q != 0) {
        new.cpu_quota = Some(q);
    }
    if let Some(c) = &req.cpuset_cpus {
        validate_cpuset(c)?;
        new.cpuset_cpus = Some(c.clone());
    }
    if let Some(r) = req.memory_reservation.filter(|r| *r != 0) {
        new.memory_reservation = Some(r);
    }
    if let Some(m) = req.cpuset_mems.as_ref().filter(|m| !m.is_empty()) {
        new.cpuset_mems = Some(m.clone());
    }
    if let Some(w) = req.blkio_weight.filter(|w| *w != 0) {
        new.blkio_weight = Some(w);
    }
    if let Some(p) = req.cpu_rt_period.filter(|p| *p != 0) {
        new.cpu_rt_period = Some(p);
    }
    if let Some(r) = req.cpu_rt_runtime.filter(|r| *r != 0) {
        new.cpu_rt_runtime = Some(r);
    }
    if let Some(p) = req.pids_limit.filter(|p| *p != 0) {
        // docker: 0 and -1 both mean unlimited; -1 is what is written.
        new.pids_limit = Some(if p < 0 { -1 } else { p });
    }
    if let Some(r) = &req.restart {
        let policy = parse_restart(r)?;
        if policy != RestartPolicy::No && cfg.auto_remove {
            return Err(Error::BadConfig(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            ));
        }
        new.restart = r.clone();
    }
    // The combination checks (swap below memory, --cpus with a CFS
    // period or quota, …) are the spec's.
    crate::spec::limits(&new)?;
    Ok(new)
}

/// `--cpuset-cpus`: `0-3`, `0,2`, `1`; every CPU must exist here.
pub fn validate_cpuset(s: &str) -> Result<()> {
    let bad = || {
        invalid(
            "--cpuset-cpus",
            format!("invalid value {s:?} (like 0-3 or 0,2)"),
        )
    };
    let online = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b {
            return Err(bad());
        }
        if b >= online {
            return Err(invalid(
                "--cpuset-cpus",
                format!(
                    "Requested CPUs are not available - requested {s}, available: 0-{}",
                    online - 1
                ),
            ));
        }
    }
    Ok(())
}

impl Engine {
    /// `update` (see the module doc).
    pub fn update(&mut self, key: &str, req: &UpdateRequest) -> Result<()> {
        // This update's warnings only (see `create`).
        self.warnings.borrow_mut().clear();
        let row = self.get(key)?;
        if self.removal_pending(&row.id) {
            return Err(crate::marked_for_removal(&row));
        }
        let cfg = row_config(&row);
        let mut new = updated_config(&cfg, req)?;
        if new.blkio_weight != cfg.blkio_weight
            || new.cpu_rt_period != cfg.cpu_rt_period
            || new.cpu_rt_runtime != cfg.cpu_rt_runtime
        {
            for w in crate::spec::drop_unsupported(&mut new) {
                self.warnings.borrow_mut().push(w);
            }
        }
        let limits = crate::spec::limits(&new)?;
        if matches!(row.state.as_str(), db::RUNNING | db::PAUSED) {
            self.apply_limits(&row.id, &cfg, &new, &limits)?;
        }
        let spec_path = self.container_dir(&row.id).join("config.json");
        let mut spec: Value = serde_json::from_slice(&fs::read(&spec_path).at(&spec_path)?)
            .map_err(|e| Error::Other(format!("{}: {e}", spec_path.display())))?;
        let devices = spec["linux"]["resources"]["devices"].take();
        let mut res = limits;
        if !devices.is_null() {
            res["devices"] = devices;
        }
        spec["linux"]["resources"] = res;
        let data = serde_json::to_vec(&spec).map_err(|e| Error::Other(e.to_string()))?;
        berth_runtime::state::write_atomic(&spec_path, &data)?;
        let text = serde_json::to_string(&new).map_err(|e| Error::Other(e.to_string()))?;
        let path = self.db.path().to_path_buf();
        self.db
            .conn()
            .execute(
                "UPDATE containers SET config = ?2 WHERE id = ?1",
                rusqlite::params![row.id, text],
            )
            .map_err(|err| Error::Db { path, err })?;
        Ok(())
    }

    /// Writes the new limits into a running container's cgroup. Values
    /// that were set and are now unset are not written back (docker
    /// leaves them too); lowering the memory below what the container
    /// uses is refused by the kernel when it cannot reclaim enough.
    fn apply_limits(
        &self,
        id: &str,
        old: &crate::RunConfig,
        new: &crate::RunConfig,
        limits: &Value,
    ) -> Result<()> {
        let c = self.runtime().load(id)?;
        let cg = &c.record.cgroup;
        let mut res = limits.clone();
        // Unchanged memory is not written again (the v1 swap order needs
        // both values only when one of them moves), nor are the settings
        // `update` cannot change (swappiness, the OOM killer).
        if let Some(m) = res.get_mut("memory").and_then(Value::as_object_mut) {
            if new.memory.is_none()
                || (old.memory == new.memory && old.memory_swap == new.memory_swap)
            {
                m.remove("limit");
                m.remove("swap");
            }
            if old.memory_reservation == new.memory_reservation {
                m.remove("reservation");
            }
            m.remove("swappiness");
            m.remove("disableOOMKiller");
            if m.is_empty() {
                res.as_object_mut().map(|o| o.remove("memory"));
            }
        }
        // v1 refuses a limit below what it cannot reclaim (EBUSY); v2 takes
        // it and OOM-kills the container: refused here first.
        if let (Some(m), Some(floor)) = (new.memory, unreclaimable_v2(cg))
            && new.memory != old.memory
            && m > 0
            && m < floor
        {
            return Err(invalid(
                "--memory",
                format!(
                    "{m} bytes is below what container {id} uses now ({floor} bytes it cannot give back): the kernel would kill it"
                ),
            ));
        }
        let lr: oci_spec::runtime::LinuxResources = serde_json::from_value(json!(res))
            .map_err(|e| Error::Other(format!("linux.resources: {e}")))?;
        match berth_runtime::resources::apply(cg, &lr) {
            Ok(()) => Ok(()),
            Err(e) => {
                if let (Some(m), Some(used)) = (new.memory, memory_usage(cg))
                    && Some(m) != old.memory
                    && m < used
                {
                    return Err(invalid(
                        "--memory",
                        format!(
                            "{m} bytes is below what container {id} uses now ({used} bytes) and the kernel could not reclaim enough: {e}"
                        ),
                    ));
                }
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunConfig;

    #[test]
    fn docker_checks() {
        let cfg = RunConfig::default();
        let small = UpdateRequest {
            memory: Some(1 << 20),
            ..Default::default()
        };
        assert!(
            updated_config(&cfg, &small)
                .unwrap_err()
                .to_string()
                .contains("6MB")
        );
        let swap_low = UpdateRequest {
            memory: Some(64 << 20),
            memory_swap: Some(32 << 20),
            ..Default::default()
        };
        let e = updated_config(&cfg, &swap_low).unwrap_err().to_string();
        assert!(e.contains("larger than memory limit"), "{e}");
        let ok = UpdateRequest {
            memory: Some(64 << 20),
            pids_limit: Some(-1),
            restart: Some("always".into()),
            ..Default::default()
        };
        let n = updated_config(&cfg, &ok).unwrap();
        assert_eq!((n.memory, n.pids_limit), (Some(64 << 20), Some(-1)));
        assert_eq!(n.restart, "always");
        // A swap limit already set must still hold the new memory.
        let e = updated_config(
            &n.clone(),
            &UpdateRequest {
                memory_swap: Some(100 << 20),
                ..Default::default()
            },
        )
        .and_then(|n2| {
            updated_config(
                &n2,
                &UpdateRequest {
                    memory: Some(200 << 20),
                    ..Default::default()
                },
            )
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("already set memoryswap"), "{e}");
        let conflict = RunConfig {
            cpu_quota: Some(50_000),
            ..Default::default()
        };
        let cpus = UpdateRequest {
            nano_cpus: Some(1_000_000_000),
            ..Default::default()
        };
        assert!(updated_config(&conflict, &cpus).is_err());
        let rm = RunConfig {
            auto_remove: true,
            ..Default::default()
        };
        let r = UpdateRequest {
            restart: Some("always".into()),
            ..Default::default()
        };
        assert!(updated_config(&rm, &r).is_err());
        assert!(validate_cpuset("0").is_ok());
        assert!(validate_cpuset("x").is_err());
        assert!(validate_cpuset("9999").is_err());
    }
}
