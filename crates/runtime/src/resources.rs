//! Writing `linux.resources` into cgroup files, v1 and v2, and freezing.

use oci_spec::runtime::LinuxResources;

use crate::cgroups::{CgroupPaths, Hierarchy};
use crate::error::{Error, Result};

fn write(cg: &CgroupPaths, h: &Hierarchy, file: &str, value: &str) -> Result<()> {
    let p = cg.dir(h).join(file);
    std::fs::write(&p, value).map_err(|e| Error::Cgroup {
        controller: h.dir_name(),
        msg: format!("writing {value:?} to {}: {e}", p.display()),
    })
}

fn v1<'a>(cg: &'a CgroupPaths, controller: &str) -> Result<&'a Hierarchy> {
    cg.hierarchies
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == controller))
        .ok_or_else(|| Error::Cgroup {
            controller: controller.into(),
            msg: "controller is not mounted on this host".into(),
        })
}

/// Applies the resources the runtime supports so far: memory, cpu, pids
/// on v1 and v2, and the raw `unified` map on v2.
pub fn apply(cg: &CgroupPaths, r: &LinuxResources) -> Result<()> {
    if cg.hierarchies.is_empty() {
        return Ok(());
    }
    if cg.is_v2() {
        apply_v2(cg, r)
    } else {
        apply_v1(cg, r)
    }
}

fn apply_v1(cg: &CgroupPaths, r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        let h = v1(cg, "memory")?;
        if let Some(l) = m.limit() {
            write(cg, h, "memory.limit_in_bytes", &l.to_string())?;
        }
        if let Some(s) = m.swap() {
            write(cg, h, "memory.memsw.limit_in_bytes", &s.to_string())?;
        }
        if let Some(res) = m.reservation() {
            write(cg, h, "memory.soft_limit_in_bytes", &res.to_string())?;
        }
        if let Some(sw) = m.swappiness() {
            write(cg, h, "memory.swappiness", &sw.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            write(cg, h, "memory.oom_control", "1")?;
        }
    }
    if let Some(c) = r.cpu() {
        if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
            let h = v1(cg, "cpu")?;
            if let Some(s) = c.shares() {
                write(cg, h, "cpu.shares", &s.to_string())?;
            }
            if let Some(p) = c.period() {
                write(cg, h, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                write(cg, h, "cpu.cfs_quota_us", &q.to_string())?;
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            let h = v1(cg, "cpuset")?;
            if let Some(cpus) = c.cpus() {
                write(cg, h, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                write(cg, h, "cpuset.mems", mems)?;
            }
        }
    }
    if let Some(p) = r.pids() {
        let h = v1(cg, "pids")?;
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        write(cg, h, "pids.max", &v)?;
    }
    Ok(())
}

fn apply_v2(cg: &CgroupPaths, r: &LinuxResources) -> Result<()> {
    let h = &cg.hierarchies[0];
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            write(cg, h, "memory.max", &limit_v2(l))?;
        }
        if let Some(res) = m.reservation() {
            write(cg, h, "memory.low", &limit_v2(res))?;
        }
        if let Some(s) = m.swap() {
            // v1 swap is memory+swap; v2 swap.max is swap alone.
            let v = match (s, m.limit()) {
                (-1, _) => "max".to_string(),
                (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
                (s, _) => s.to_string(),
            };
            write(cg, h, "memory.swap.max", &v)?;
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            write(cg, h, "cpu.weight", &shares_to_weight(s).to_string())?;
        }
        if c.quota().is_some() || c.period().is_some() {
            let quota = match c.quota() {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".into(),
            };
            let period = c.period().unwrap_or(100_000);
            write(cg, h, "cpu.max", &format!("{quota} {period}"))?;
        }
        if let Some(cpus) = c.cpus() {
            write(cg, h, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems() {
            write(cg, h, "cpuset.mems", mems)?;
        }
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        write(cg, h, "pids.max", &v)?;
    }
    for (k, v) in r.unified().iter().flatten() {
        if k.contains('/') || k.starts_with('.') {
            return Err(Error::Cgroup {
                controller: "unified".into(),
                msg: format!("invalid file name {k:?} in linux.resources.unified"),
            });
        }
        write(cg, h, k, v)?;
    }
    Ok(())
}

fn limit_v2(l: i64) -> String {
    if l < 0 { "max".into() } else { l.to_string() }
}

/// crun's conversion of v1 cpu.shares [2, 262144] to v2 cpu.weight
/// [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// Freezes or thaws the cgroup and waits until the kernel says it is done.
pub fn set_frozen(cg: &CgroupPaths, frozen: bool) -> Result<()> {
    if let Some(h) = cg
        .hierarchies
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == "freezer"))
    {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        for _ in 0..1000 {
            write(cg, h, "freezer.state", want)?;
            let cur = std::fs::read_to_string(cg.dir(h).join("freezer.state")).unwrap_or_default();
            if cur.trim() == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        return Err(Error::Cgroup {
            controller: "freezer".into(),
            msg: format!("cgroup did not reach {want}"),
        });
    }
    if let Some(h) = cg.unified() {
        write(cg, h, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        let events = cg.dir(h).join("cgroup.events");
        for _ in 0..1000 {
            let s = std::fs::read_to_string(&events).unwrap_or_default();
            let is = s.lines().any(|l| l == "frozen 1");
            if is == frozen {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        return Err(Error::Cgroup {
            controller: "unified".into(),
            msg: format!("{} did not report frozen {}", events.display(), frozen as u8),
        });
    }
    Err(Error::Cgroup {
        controller: "freezer".into(),
        msg: "no freezer on this host".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_conversion() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}
