//! Resource usage read from the container's cgroup, in the shape runc's
//! `events --stats` prints (runc's types/events.go), and OOM counters.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cgroups::{CgroupPaths, Hierarchy};

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: serde_json::Value,
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
}

#[derive(Debug, Default, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn read(cg: &CgroupPaths, h: &Hierarchy, f: &str) -> Option<String> {
    std::fs::read_to_string(cg.dir(h).join(f)).ok()
}

fn read_u64(cg: &CgroupPaths, h: &Hierarchy, f: &str) -> u64 {
    read(cg, h, f)
        .and_then(|s| {
            let s = s.trim();
            if s == "max" {
                Some(u64::MAX)
            } else {
                s.parse().ok()
            }
        })
        .unwrap_or(0)
}

/// "key value" lines (memory.stat, cpu.stat, memory.events) as a map.
fn kv(s: &str) -> BTreeMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

fn nums(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// "0-3,5" → [0,1,2,3,5]
fn cpu_list(s: &str) -> Vec<u16> {
    let mut out = vec![];
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

fn find<'a>(cg: &'a CgroupPaths, ctl: &str) -> Option<&'a Hierarchy> {
    cg.hierarchies
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == ctl))
        .or_else(|| cg.unified().filter(|_| cg.is_v2()))
}

/// Reads every statistic the host offers for the cgroup.
pub fn collect(cg: &CgroupPaths) -> Stats {
    let mut st = Stats {
        intel_rdt: serde_json::json!({}),
        ..Default::default()
    };
    if cg.is_v2() {
        collect_v2(cg, &mut st);
    } else {
        collect_v1(cg, &mut st);
    }
    if let Some(h) = find(cg, "cpuset") {
        let eff = |f: &str| read(cg, h, f).map(|s| cpu_list(&s)).unwrap_or_default();
        st.cpuset.cpus = eff("cpuset.effective_cpus");
        if st.cpuset.cpus.is_empty() {
            st.cpuset.cpus = eff("cpuset.cpus");
        }
        st.cpuset.mems = eff("cpuset.effective_mems");
        if st.cpuset.mems.is_empty() {
            st.cpuset.mems = eff("cpuset.mems");
        }
    }
    if let Some(h) = find(cg, "pids") {
        st.pids.current = read_u64(cg, h, "pids.current");
        let l = read_u64(cg, h, "pids.max");
        st.pids.limit = if l == u64::MAX { 0 } else { l };
    }
    st
}

fn collect_v1(cg: &CgroupPaths, st: &mut Stats) {
    if let Some(h) = find(cg, "cpuacct") {
        st.cpu.usage.total = read_u64(cg, h, "cpuacct.usage");
        st.cpu.usage.percpu = read(cg, h, "cpuacct.usage_percpu")
            .map(|s| nums(&s))
            .unwrap_or_default();
        st.cpu.usage.percpu_kernel = read(cg, h, "cpuacct.usage_percpu_sys")
            .map(|s| nums(&s))
            .unwrap_or_default();
        st.cpu.usage.percpu_user = read(cg, h, "cpuacct.usage_percpu_user")
            .map(|s| nums(&s))
            .unwrap_or_default();
        // cpuacct.stat is in USER_HZ ticks; runc reports nanoseconds.
        let ticks = kv(&read(cg, h, "cpuacct.stat").unwrap_or_default());
        let ns = 1_000_000_000 / clock_ticks();
        st.cpu.usage.user = ticks.get("user").copied().unwrap_or(0) * ns;
        st.cpu.usage.kernel = ticks.get("system").copied().unwrap_or(0) * ns;
    }
    if let Some(h) = find(cg, "cpu") {
        let s = kv(&read(cg, h, "cpu.stat").unwrap_or_default());
        st.cpu.throttling.periods = s.get("nr_periods").copied().unwrap_or(0);
        st.cpu.throttling.throttled_periods = s.get("nr_throttled").copied().unwrap_or(0);
        st.cpu.throttling.throttled_time = s.get("throttled_time").copied().unwrap_or(0);
    }
    if let Some(h) = find(cg, "memory") {
        let entry = |prefix: &str| MemoryEntry {
            limit: read_u64(cg, h, &format!("{prefix}.limit_in_bytes")),
            usage: read_u64(cg, h, &format!("{prefix}.usage_in_bytes")),
            max: read_u64(cg, h, &format!("{prefix}.max_usage_in_bytes")),
            failcnt: read_u64(cg, h, &format!("{prefix}.failcnt")),
        };
        st.memory.usage = entry("memory");
        st.memory.swap = entry("memory.memsw");
        st.memory.kernel = entry("memory.kmem");
        st.memory.kernel_tcp = entry("memory.kmem.tcp");
        st.memory.raw = kv(&read(cg, h, "memory.stat").unwrap_or_default());
        st.memory.cache = st.memory.raw.get("total_cache").copied().unwrap_or(0);
    }
    if let Some(h) = find(cg, "blkio") {
        st.blkio.io_service_bytes_recursive =
            blkio_v1(&read(cg, h, "blkio.throttle.io_service_bytes_recursive").unwrap_or_default());
        st.blkio.io_serviced_recursive =
            blkio_v1(&read(cg, h, "blkio.throttle.io_serviced_recursive").unwrap_or_default());
    }
    hugetlb(cg, st);
}

fn blkio_v1(s: &str) -> Vec<BlkioEntry> {
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 {
                return None;
            }
            let (maj, min) = f[0].split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: f[1].to_string(),
                value: f[2].parse().ok()?,
            })
        })
        .collect()
}

fn collect_v2(cg: &CgroupPaths, st: &mut Stats) {
    let h = &cg.hierarchies[0];
    let cpu = kv(&read(cg, h, "cpu.stat").unwrap_or_default());
    let g = |k: &str| cpu.get(k).copied().unwrap_or(0);
    st.cpu.usage.total = g("usage_usec") * 1000;
    st.cpu.usage.user = g("user_usec") * 1000;
    st.cpu.usage.kernel = g("system_usec") * 1000;
    st.cpu.throttling.periods = g("nr_periods");
    st.cpu.throttling.throttled_periods = g("nr_throttled");
    st.cpu.throttling.throttled_time = g("throttled_usec") * 1000;
    let limit = |f: &str| {
        let v = read_u64(cg, h, f);
        if v == u64::MAX { 0 } else { v }
    };
    st.memory.raw = kv(&read(cg, h, "memory.stat").unwrap_or_default());
    st.memory.cache = st.memory.raw.get("file").copied().unwrap_or(0);
    let events = kv(&read(cg, h, "memory.events").unwrap_or_default());
    st.memory.usage = MemoryEntry {
        limit: limit("memory.max"),
        usage: read_u64(cg, h, "memory.current"),
        max: read_u64(cg, h, "memory.peak"),
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    st.memory.swap = MemoryEntry {
        limit: limit("memory.swap.max"),
        usage: read_u64(cg, h, "memory.swap.current"),
        max: read_u64(cg, h, "memory.swap.peak"),
        failcnt: 0,
    };
    for l in read(cg, h, "io.stat").unwrap_or_default().lines() {
        let mut it = l.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut st.blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut st.blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut st.blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut st.blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    hugetlb(cg, st);
}

fn hugetlb(cg: &CgroupPaths, st: &mut Stats) {
    let Some(h) = cg
        .hierarchies
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == "hugetlb"))
        .or_else(|| cg.unified())
    else {
        return;
    };
    let Ok(rd) = std::fs::read_dir(cg.dir(h)) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("hugetlb.") else {
            continue;
        };
        if h.unified {
            if let Some(size) = rest.strip_suffix(".current") {
                let events =
                    kv(&read(cg, h, &format!("hugetlb.{size}.events")).unwrap_or_default());
                st.hugetlb.insert(
                    size.to_string(),
                    Hugetlb {
                        usage: read_u64(cg, h, &name),
                        max: 0,
                        failcnt: events.get("max").copied().unwrap_or(0),
                    },
                );
            }
        } else if let Some(size) = rest.strip_suffix(".usage_in_bytes") {
            st.hugetlb.insert(
                size.to_string(),
                Hugetlb {
                    usage: read_u64(cg, h, &name),
                    max: read_u64(cg, h, &format!("hugetlb.{size}.max_usage_in_bytes")),
                    failcnt: read_u64(cg, h, &format!("hugetlb.{size}.failcnt")),
                },
            );
        }
    }
}

/// The header and the rows of `ps` output whose PID column is one of
/// `pids` (what `ps`/`top` of a container print); None when the output has
/// no PID column.
pub fn filter_ps(text: &str, pids: &[i32]) -> Option<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header.split_whitespace().position(|h| h == "PID")?;
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Some(out)
}

/// How many times the kernel OOM-killed a process of the cgroup.
pub fn oom_kills(cg: &CgroupPaths) -> u64 {
    if cg.is_v2() {
        let h = &cg.hierarchies[0];
        let ev = kv(&read(cg, h, "memory.events").unwrap_or_default());
        return ev.get("oom_kill").copied().unwrap_or(0);
    }
    find(cg, "memory")
        .map(|h| {
            kv(&read(cg, h, "memory.oom_control").unwrap_or_default())
                .get("oom_kill")
                .copied()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(cpu_list("0-2,5"), vec![0, 1, 2, 5]);
        assert_eq!(kv("a 1\nb 2\n").get("b"), Some(&2));
        let e = blkio_v1("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].op, "Read");
    }
}
