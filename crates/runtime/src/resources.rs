//! Writing `linux.resources` (config-linux.md "Control groups") into cgroup
//! files, on v1, hybrid and v2 hosts, and freezing.
//!
//! Every value that is set in the spec is written; a value the kernel
//! rejects, or a controller the host lacks, is an error naming the
//! controller, the file and the value. v1 values are converted where v2
//! differs, as crun documents (cpu.shares → cpu.weight, blkio.weight →
//! io.weight, memory+swap → swap alone).

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxDeviceType, LinuxMemory, LinuxResources};

use crate::cgroups::{CgroupPaths, Hierarchy};
use crate::devices_bpf::{self, DeviceRule};
use crate::error::{Error, Result};
use crate::sys;

fn write(cg: &CgroupPaths, h: &Hierarchy, file: &str, value: &str) -> Result<()> {
    let p = cg.dir(h).join(file);
    std::fs::write(&p, value).map_err(|e| Error::Cgroup {
        controller: h.dir_name(),
        msg: if e.kind() == std::io::ErrorKind::NotFound || !p.exists() {
            format!(
                "{} does not exist: the kernel lacks this setting",
                p.display()
            )
        } else {
            format!("writing {value:?} to {}: {e}", p.display())
        },
    })
}

fn read(cg: &CgroupPaths, h: &Hierarchy, file: &str) -> Option<String> {
    std::fs::read_to_string(cg.dir(h).join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The hierarchy of a v1 controller, or the unified one when the host
/// runs that controller on cgroup2 (hybrid hosts: hugetlb, say; enabled
/// there on demand).
fn ctl<'a>(cg: &'a CgroupPaths, controller: &str) -> Result<&'a Hierarchy> {
    let h = ctl_lookup(cg, controller)?;
    if h.unified && !cg.is_v2() {
        cg.enable(controller)?;
    }
    Ok(h)
}

fn ctl_lookup<'a>(cg: &'a CgroupPaths, controller: &str) -> Result<&'a Hierarchy> {
    cg.hierarchy_of(controller)
        .filter(|h| {
            !h.unified
                || std::fs::read_to_string(h.mountpoint.join("cgroup.controllers"))
                    .is_ok_and(|s| s.split_whitespace().any(|c| c == controller))
        })
        .ok_or_else(|| Error::Cgroup {
            controller: controller.into(),
            msg: "controller is not available on this host".into(),
        })
}

/// runc treats 0 as "not set" for most values (docker sends zeros for
/// everything it does not change): so do we.
fn set<T: Default + PartialEq + Copy>(v: Option<T>) -> Option<T> {
    v.filter(|v| *v != T::default())
}

/// Whether `r` asks for any limit (device rules alone are not one: a
/// rootless container cannot have them enforced and runc ignores them).
pub fn has_limits(r: &LinuxResources) -> bool {
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().as_ref().is_some_and(|p| p.limit() != 0)
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.network().is_some()
        || r.unified().as_ref().is_some_and(|u| !u.is_empty())
}

/// Applies every resource set in `r`.
pub fn apply(cg: &CgroupPaths, r: &LinuxResources) -> Result<()> {
    if cg.hierarchies.is_empty() {
        return Ok(());
    }
    if let Some(m) = r.memory() {
        memory(cg, m)?;
    }
    if let Some(c) = r.cpu() {
        cpu(cg, c)?;
    }
    if let Some(p) = r.pids().as_ref().filter(|p| p.limit() != 0) {
        let h = ctl(cg, "pids")?;
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        write(cg, h, "pids.max", &v)?;
    }
    if let Some(b) = r.block_io() {
        block_io(cg, b)?;
    }
    for l in r.hugepage_limits().iter().flatten() {
        let h = ctl(cg, "hugetlb")?;
        let size = l.page_size();
        if !size.ends_with('B') || size.contains('/') {
            return Err(Error::Cgroup {
                controller: "hugetlb".into(),
                msg: format!("invalid hugepage size {size:?} (like 2MB or 1GB)"),
            });
        }
        let (file, rsvd) = if h.unified {
            (
                format!("hugetlb.{size}.max"),
                format!("hugetlb.{size}.rsvd.max"),
            )
        } else {
            (
                format!("hugetlb.{size}.limit_in_bytes"),
                format!("hugetlb.{size}.rsvd.limit_in_bytes"),
            )
        };
        write(cg, h, &file, &l.limit().to_string())?;
        // The reservation limit too where the kernel has it (5.7+), as
        // runc does: otherwise pages reserved by mmap escape the limit.
        if cg.dir(h).join(&rsvd).exists() {
            write(cg, h, &rsvd, &l.limit().to_string())?;
        }
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            write(cg, ctl(cg, "net_cls")?, "net_cls.classid", &id.to_string())?;
        }
        for p in n.priorities().iter().flatten() {
            write(
                cg,
                ctl(cg, "net_prio")?,
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    if let Some(devs) = r.devices() {
        devices(cg, devs)?;
    }
    if let Some(u) = r.unified() {
        let h = cg.unified().ok_or_else(|| Error::Cgroup {
            controller: "unified".into(),
            msg: "linux.resources.unified needs a cgroup v2 hierarchy".into(),
        })?;
        for (k, v) in u {
            if k.contains('/') || k.starts_with('.') || k.is_empty() {
                return Err(Error::Cgroup {
                    controller: "unified".into(),
                    msg: format!("invalid file name {k:?} in linux.resources.unified"),
                });
            }
            write(cg, h, k, v)?;
        }
    }
    Ok(())
}

fn memory(cg: &CgroupPaths, m: &LinuxMemory) -> Result<()> {
    let h = ctl(cg, "memory")?;
    let (limit, swap, reservation) = (set(m.limit()), set(m.swap()), set(m.reservation()));
    if h.unified {
        if let Some(l) = limit {
            write(cg, h, "memory.max", &max_or(l))?;
        }
        if let Some(r) = reservation {
            write(cg, h, "memory.low", &max_or(r))?;
        }
        if let Some(s) = swap {
            // v1's swap is memory+swap; v2's swap.max is swap alone.
            let v = match (s, limit) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l > 0 => {
                    if s < l {
                        return Err(Error::Cgroup {
                            controller: "memory".into(),
                            msg: format!("memory+swap limit {s} is below the memory limit {l}"),
                        });
                    }
                    (s - l).to_string()
                }
                (s, _) => s.to_string(),
            };
            write(cg, h, "memory.swap.max", &v)?;
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(Error::Cgroup {
                controller: "memory".into(),
                msg: "disableOOMKiller is not supported on cgroup v2".into(),
            });
        }
        return Ok(());
    }
    // v1: memory.memsw.limit_in_bytes must stay >= memory.limit_in_bytes,
    // so the order of the two writes depends on the direction of change.
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let cur_sw: i64 = read(cg, h, "memory.memsw.limit_in_bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(i64::MAX);
            if s < 0 || s > cur_sw {
                write(cg, h, "memory.memsw.limit_in_bytes", &s.to_string())?;
                write(cg, h, "memory.limit_in_bytes", &l.to_string())?;
            } else {
                write(cg, h, "memory.limit_in_bytes", &l.to_string())?;
                write(cg, h, "memory.memsw.limit_in_bytes", &s.to_string())?;
            }
        }
        (Some(l), None) => write(cg, h, "memory.limit_in_bytes", &l.to_string())?,
        (None, Some(s)) => write(cg, h, "memory.memsw.limit_in_bytes", &s.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = reservation {
        write(cg, h, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(t) = set(m.kernel_tcp()) {
        write(cg, h, "memory.kmem.tcp.limit_in_bytes", &t.to_string())?;
    }
    if let Some(sw) = m.swappiness() {
        if sw > 100 {
            return Err(Error::Cgroup {
                controller: "memory".into(),
                msg: format!("swappiness {sw} is not in 0..=100"),
            });
        }
        write(cg, h, "memory.swappiness", &sw.to_string())?;
    }
    if let Some(d) = m.disable_oom_killer() {
        write(cg, h, "memory.oom_control", if d { "1" } else { "0" })?;
    }
    Ok(())
}

fn cpu(cg: &CgroupPaths, c: &LinuxCpu) -> Result<()> {
    let shares = set(c.shares());
    let quota = set(c.quota());
    let period = set(c.period());
    let rt_runtime = set(c.realtime_runtime());
    let rt_period = set(c.realtime_period());
    let needs_cpu = shares.is_some()
        || quota.is_some()
        || period.is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || rt_runtime.is_some()
        || rt_period.is_some();
    if needs_cpu {
        let h = ctl(cg, "cpu")?;
        if h.unified {
            if let Some(s) = shares {
                write(cg, h, "cpu.weight", &shares_to_weight(s).to_string())?;
            }
            if quota.is_some() || period.is_some() {
                let cur = read(cg, h, "cpu.max").unwrap_or_else(|| "max 100000".into());
                let mut it = cur.split_whitespace();
                let cur_q = it.next().unwrap_or("max").to_string();
                let cur_p = it.next().unwrap_or("100000").to_string();
                let quota = match quota {
                    Some(q) if q > 0 => q.to_string(),
                    Some(_) => "max".into(),
                    None => cur_q,
                };
                let period = period.map_or(cur_p, |p| p.to_string());
                write(cg, h, "cpu.max", &format!("{quota} {period}"))?;
            }
            if let Some(b) = c.burst() {
                write(cg, h, "cpu.max.burst", &b.to_string())?;
            }
            if let Some(i) = c.idle() {
                write(cg, h, "cpu.idle", &i.to_string())?;
            }
            if c.realtime_runtime().is_some_and(|r| r != 0)
                || c.realtime_period().is_some_and(|p| p != 0)
            {
                return Err(Error::Cgroup {
                    controller: "cpu".into(),
                    msg: "realtime runtime/period are not supported on cgroup v2".into(),
                });
            }
        } else {
            if let Some(s) = shares {
                write(cg, h, "cpu.shares", &s.to_string())?;
            }
            if let Some(p) = period {
                write(cg, h, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = quota {
                write(cg, h, "cpu.cfs_quota_us", &q.to_string())?;
            }
            if let Some(b) = c.burst() {
                write(cg, h, "cpu.cfs_burst_us", &b.to_string())?;
            }
            if let Some(i) = c.idle() {
                write(cg, h, "cpu.idle", &i.to_string())?;
            }
            // The runtime may never exceed the period: a period lowered below the current
            // runtime is written again after the new runtime (runc's order).
            let period_first = match rt_period {
                Some(p) => write(cg, h, "cpu.rt_period_us", &p.to_string()),
                None => Ok(()),
            };
            if let Some(r) = rt_runtime {
                write(cg, h, "cpu.rt_runtime_us", &r.to_string())?;
            }
            if period_first.is_err()
                && let Some(p) = rt_period
            {
                write(cg, h, "cpu.rt_period_us", &p.to_string())?;
            }
        }
    }
    if c.cpus().is_some() || c.mems().is_some() {
        let h = ctl(cg, "cpuset")?;
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(cg, h, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            write(cg, h, "cpuset.mems", mems)?;
        }
    }
    Ok(())
}

fn block_io(cg: &CgroupPaths, b: &LinuxBlockIo) -> Result<()> {
    let h = ctl(cg, if cg.is_v2() { "io" } else { "blkio" })?;
    if h.unified {
        let weight_file = if cg.dir(h).join("io.bfq.weight").exists() {
            "io.bfq.weight"
        } else {
            "io.weight"
        };
        if let Some(w) = set(b.weight()) {
            let v = if weight_file == "io.bfq.weight" {
                w as u64
            } else {
                blkio_weight_to_io(w)
            };
            write(cg, h, weight_file, &format!("default {v}"))?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = set(d.weight()) {
                let v = if weight_file == "io.bfq.weight" {
                    w as u64
                } else {
                    blkio_weight_to_io(w)
                };
                write(
                    cg,
                    h,
                    weight_file,
                    &format!("{}:{} {v}", d.major(), d.minor()),
                )?;
            }
        }
        for (list, key) in [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ] {
            for d in list.iter().flatten() {
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                write(
                    cg,
                    h,
                    "io.max",
                    &format!("{}:{} {key}={rate}", d.major(), d.minor()),
                )?;
            }
        }
        return Ok(());
    }
    let dir = cg.dir(h);
    let weight_file = if dir.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    let wants_weight = set(b.weight()).is_some()
        || set(b.leaf_weight()).is_some()
        || b.weight_device().iter().flatten().next().is_some();
    if wants_weight && !dir.join(weight_file).exists() {
        return Err(Error::Cgroup {
            controller: "blkio".into(),
            msg: "linux.resources.blockIO weights: this kernel's blkio controller has no \
                  weight file (blkio.weight or blkio.bfq.weight: neither CFQ nor BFQ is the \
                  I/O scheduler); leave the weights out"
                .into(),
        });
    }
    if let Some(w) = set(b.weight()) {
        write(cg, h, weight_file, &w.to_string())?;
    }
    if let Some(w) = set(b.leaf_weight()) {
        write(cg, h, "blkio.leaf_weight", &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = set(d.weight()) {
            write(
                cg,
                h,
                &format!("{weight_file}_device"),
                &format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
        if let Some(w) = set(d.leaf_weight()) {
            write(
                cg,
                h,
                "blkio.leaf_weight_device",
                &format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
    }
    for (list, file) in [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ] {
        for d in list.iter().flatten() {
            write(
                cg,
                h,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

/// The spec's device rules, then the devices every container needs (what
/// runc always allows: null, zero, tty, ptys, …).
pub fn device_rules(devs: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Vec<DeviceRule> {
    let mut rules: Vec<DeviceRule> = devs
        .iter()
        .map(|d| DeviceRule {
            allow: d.allow(),
            typ: d.typ().map(|t| match t {
                LinuxDeviceType::B => 'b',
                LinuxDeviceType::C | LinuxDeviceType::U => 'c',
                LinuxDeviceType::P => 'p',
                LinuxDeviceType::A => 'a',
            }),
            major: d.major(),
            minor: d.minor(),
            access: d.access().clone().unwrap_or_default(),
        })
        .collect();
    rules.extend(devices_bpf::default_allowed());
    rules
}

fn rule_v1(r: &DeviceRule) -> String {
    let t = r.typ.unwrap_or('a');
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = if r.access.is_empty() {
        "rwm"
    } else {
        &r.access
    };
    if t == 'a' {
        return "a".into();
    }
    format!("{t} {}:{} {access}", num(r.major), num(r.minor))
}

fn devices(cg: &CgroupPaths, devs: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<()> {
    let rules = device_rules(devs);
    if cg.is_v2() {
        // A runtime in a user namespace (rootless) cannot attach BPF
        // programs, as runc's rootless mode: the container's device nodes are
        // bind mounts of the host's, which the host's permissions guard.
        if sys::in_user_namespace() {
            return Ok(());
        }
        let h = &cg.hierarchies[0];
        return devices_bpf::apply(&cg.dir(h), &rules);
    }
    let h = ctl(cg, "devices")?;
    for r in &rules {
        if r.typ == Some('p') {
            continue;
        }
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(cg, h, file, &rule_v1(r))?;
    }
    Ok(())
}

fn max_or(l: i64) -> String {
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

/// crun's conversion of blkio.weight [10, 1000] to io.weight [1, 10000].
pub fn blkio_weight_to_io(w: u16) -> u64 {
    let w = (w as u64).clamp(10, 1000);
    1 + (w - 10) * 9999 / 990
}

/// Freezes or thaws the cgroup and waits until the kernel says it is done.
pub fn set_frozen(cg: &CgroupPaths, frozen: bool) -> Result<()> {
    if let Some(h) = cg
        .hierarchies
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == "freezer"))
    {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        for _ in 0..5000 {
            write(cg, h, "freezer.state", want)?;
            if read(cg, h, "freezer.state").as_deref() == Some(want) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        return Err(Error::Cgroup {
            controller: "freezer".into(),
            msg: format!("cgroup {} did not reach {want}", cg.dir(h).display()),
        });
    }
    if let Some(h) = cg.unified() {
        write(cg, h, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        let events = cg.dir(h).join("cgroup.events");
        for _ in 0..5000 {
            let s = std::fs::read_to_string(&events).unwrap_or_default();
            let is = s.lines().any(|l| l == "frozen 1");
            if is == frozen {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        return Err(Error::Cgroup {
            controller: "unified".into(),
            msg: format!(
                "{} did not report frozen {}",
                events.display(),
                frozen as u8
            ),
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
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(500), 4950);
        assert_eq!(blkio_weight_to_io(1000), 10_000);
    }

    #[test]
    fn v1_device_rules() {
        let r = DeviceRule {
            allow: true,
            typ: Some('c'),
            major: Some(1),
            minor: None,
            access: "rw".into(),
        };
        assert_eq!(rule_v1(&r), "c 1:* rw");
        let all = DeviceRule {
            allow: false,
            typ: None,
            major: None,
            minor: None,
            access: String::new(),
        };
        assert_eq!(rule_v1(&all), "a");
    }
}
