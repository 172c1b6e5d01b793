//! `berth security CONTAINER`: what a running container can actually do,
//! read from the kernel (its init's `/proc/PID/status`, namespace links,
//! id maps, mount table and cgroup files), not from its configuration: a
//! setting the engine asked for but the kernel did not apply shows as it is.
//!
//! Two items the kernel does not tell are taken from the engine, and the
//! report says so: the number of syscalls the seccomp filter allows (from
//! the profile the engine gave the runtime: the kernel only shows the mode
//! and the number of filters) and the published ports (the engine's
//! endpoint records).

use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::{Engine, db};

/// Namespace types as /proc/PID/ns names them.
const NAMESPACES: &[&str] = &["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

/// Capabilities that amount to control over the host or its kernel when a
/// container holds them (docker's default set has none of these).
const DANGEROUS_CAPS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_BOOT",
    "CAP_SYS_TIME",
    "CAP_DAC_READ_SEARCH",
    "CAP_NET_ADMIN",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_SYSLOG",
];

/// Files of the host's procfs and sysfs a default container has masked.
const MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/proc/acpi",
];

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Namespace {
    pub r#type: String,
    /// Whether it is the host's (PID 1's) namespace.
    pub shared_with_host: bool,
    /// Whether it is the engine's own (where `berth` runs; the same as the
    /// host's unless berth itself runs in a namespace).
    pub shared_with_engine: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Capabilities {
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    pub bounding: Vec<String>,
    pub ambient: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    pub id: String,
    pub name: String,
    pub pid: i32,
    pub namespaces: Vec<Namespace>,
    /// What "the host" is: PID 1's namespaces, or (where those cannot be
    /// read, as in some sandboxes) berth's own.
    pub host_reference: String,
    pub capabilities: Capabilities,
    pub no_new_privileges: bool,
    /// 0 disabled, 1 strict, 2 filter (the kernel's numbers).
    pub seccomp_mode: u32,
    pub seccomp_filters: u32,
    /// Its bounding set is the engine's own: every capability the host has.
    pub all_host_capabilities: bool,
    pub uid_map: String,
    pub gid_map: String,
    pub read_only_root: bool,
    /// The host paths a default container has masked, and whether they are.
    pub masked_paths: Vec<(String, bool)>,
    /// The device cgroup's rules (v1 `devices.list`); empty where the kernel
    /// does not show them (v2 filters devices with eBPF).
    pub device_rules: Vec<String>,
    pub memory_limit: Option<String>,
    pub pids_limit: Option<String>,
    pub cpu_quota: Option<String>,
    /// Host sockets of container engines mounted into the container.
    pub engine_sockets: Vec<String>,
    /// `/proc/sys` is mounted read-only in the container.
    pub proc_sys_read_only: bool,
    /// How devices are filtered: v1 `devices.list`, or the number of eBPF
    /// device programs attached to its v2 cgroup.
    pub device_filter: String,
    /// Nothing filters its device access: a v1 `a *:* rwm` rule, or no
    /// eBPF device program on its v2 cgroup.
    pub all_devices_allowed: bool,
    /// The device nodes in its `/dev` (`null c 1:3`).
    pub device_nodes: Vec<String>,
    /// Syscalls the seccomp profile allows by name (some under argument
    /// conditions) when its default is to deny; None without a profile or
    /// with a default-allow one.
    pub seccomp_syscalls_allowed: Option<usize>,
    /// Where that number comes from (the kernel does not tell).
    pub seccomp_syscalls_source: String,
    /// The LSM label of its init (`/proc/PID/attr/current`; "" when none).
    pub lsm_label: String,
    /// Published ports, `HOST_IP:HOST_PORT->PORT/PROTO` (from the engine).
    pub published_ports: Vec<String>,
    /// Host paths of the engine's state mounted into the container.
    pub engine_state_mounts: Vec<String>,
    /// The risky settings found, one short phrase each; empty is good.
    pub verdict: Vec<String>,
}

/// The id map's lines, whitespace folded ("0 0 4294967295": the host's ids).
fn id_map(pid: i32, file: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/{file}"))
        .map(|t| {
            t.lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

fn cap_names(hex: Option<&str>) -> Vec<String> {
    let bits = hex
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    let mut v: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| bits & c.bitmask() != 0)
        .map(|c| c.to_string())
        .collect();
    v.sort();
    v
}

/// The allowed-syscall count of an OCI seccomp profile (see
/// `Report::seccomp_syscalls_allowed`).
pub fn allowed_syscalls(seccomp: &serde_json::Value) -> Option<usize> {
    let default = seccomp["defaultAction"].as_str()?;
    if default == "SCMP_ACT_ALLOW" || default == "SCMP_ACT_LOG" {
        return None;
    }
    let mut names: Vec<&str> = seccomp["syscalls"]
        .as_array()?
        .iter()
        .filter(|r| r["action"].as_str() == Some("SCMP_ACT_ALLOW"))
        .flat_map(|r| r["names"].as_array().into_iter().flatten())
        .filter_map(|n| n.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    Some(names.len())
}

/// The device nodes under `dev` (a container's /dev seen through
/// /proc/PID/root), not following links.
fn device_nodes(dev: &Path) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![(dev.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            let t = m.file_type();
            let kind = if t.is_char_device() {
                'c'
            } else if t.is_block_device() {
                'b'
            } else {
                if t.is_dir() && out.len() < 4096 {
                    stack.push((e.path(), format!("{name}/")));
                }
                continue;
            };
            let rdev = m.rdev();
            out.push(format!(
                "{name} {kind} {}:{}",
                libc::major(rdev),
                libc::minor(rdev)
            ));
        }
    }
    out.sort();
    out
}

/// Whether the spec's device cgroup rules end up allowing every device (its
/// last rule for all devices is an allow; runc's semantics).
fn spec_allows_all_devices(spec: &serde_json::Value) -> bool {
    spec["linux"]["resources"]["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .rfind(|r| {
            matches!(r["type"].as_str(), None | Some("a"))
                && r["major"].is_null()
                && r["minor"].is_null()
                && r["access"]
                    .as_str()
                    .is_none_or(|a| a.contains('r') && a.contains('w'))
        })
        .is_some_and(|r| r["allow"] == true)
}

fn ns_id(pid: &str, ns: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn first_line(p: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(p)
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
}

/// The cgroup directory of `pid` for `controller`: its v1 hierarchy, or the
/// unified one (v2, or the hybrid host's cgroup2 mount).
fn cgroup_dir(pid: i32, controller: &str) -> Option<std::path::PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut unified = None;
    for l in text.lines() {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if ctrls.split(',').any(|c| c == controller) {
            return Some(Path::new("/sys/fs/cgroup").join(controller).join(rel));
        }
        if ctrls.is_empty() {
            let base = Path::new("/sys/fs/cgroup/unified");
            let base = if base.is_dir() {
                base
            } else {
                Path::new("/sys/fs/cgroup")
            };
            unified = Some(base.join(rel));
        }
    }
    unified
}

fn cgroup_file(pid: i32, controller: &str, file: &str) -> Option<String> {
    first_line(cgroup_dir(pid, controller)?.join(file))
}

impl Engine {
    /// The security report of a running container (see the module doc).
    pub fn security_report(&mut self, key: &str) -> Result<Report> {
        let row = self.get(key)?;
        if !(row.state == db::RUNNING || row.state == db::PAUSED)
            || !berth_runtime::state::pid_is(row.pid, row.pid_start)
        {
            return Err(Error::BadState {
                id: row.id,
                state: row.state,
                what: "container is not running: the report reads the running process".into(),
            });
        }
        let pid = row.pid;
        let p = pid.to_string();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let namespaces: Vec<Namespace> = NAMESPACES
            .iter()
            .filter_map(|ns| {
                let theirs = ns_id(&p, ns)?;
                // "The host" is PID 1's; berth may itself run in a namespace.
                let engine = ns_id("self", ns);
                let host = ns_id("1", ns).or_else(|| engine.clone());
                Some(Namespace {
                    r#type: (*ns).to_string(),
                    shared_with_host: host.is_some_and(|h| h == theirs),
                    shared_with_engine: engine.is_some_and(|h| h == theirs),
                })
            })
            .collect();
        let host_reference = if ns_id("1", "mnt").is_some() {
            "pid 1".to_string()
        } else {
            "berth's own namespaces (pid 1's cannot be read here)".to_string()
        };
        let capabilities = Capabilities {
            effective: cap_names(status_field(&status, "CapEff")),
            permitted: cap_names(status_field(&status, "CapPrm")),
            inheritable: cap_names(status_field(&status, "CapInh")),
            bounding: cap_names(status_field(&status, "CapBnd")),
            ambient: cap_names(status_field(&status, "CapAmb")),
        };
        let num = |k: &str| status_field(&status, k).and_then(|v| v.parse::<u32>().ok());
        let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        // mountinfo: id parent major:minor root mountpoint options … - fstype source super
        let mounts: Vec<(String, String)> = mountinfo
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                Some((f.get(4)?.to_string(), f.get(5)?.to_string()))
            })
            .collect();
        let read_only_root = mounts
            .iter()
            .rev()
            .find(|(mp, _)| mp == "/")
            .is_some_and(|(_, o)| o.split(',').any(|x| x == "ro"));
        let masked_paths: Vec<(String, bool)> = MASKED
            .iter()
            .filter(|m| Path::new(&format!("/proc/{pid}/root{m}")).exists())
            .map(|m| (m.to_string(), mounts.iter().any(|(mp, _)| mp == m)))
            .collect();
        let engine_sockets: Vec<String> = mounts
            .iter()
            .map(|(mp, _)| mp.clone())
            .filter(|mp| {
                mp.ends_with("docker.sock")
                    || mp.ends_with("berth.sock")
                    || mp.ends_with("containerd.sock")
                    || mp.ends_with("podman.sock")
            })
            .collect();
        let device_rules: Vec<String> = cgroup_dir(pid, "devices")
            .and_then(|d| fs::read_to_string(d.join("devices.list")).ok())
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default();
        let memory_limit = cgroup_file(pid, "memory", "memory.limit_in_bytes")
            .or_else(|| cgroup_file(pid, "memory", "memory.max"));
        let pids_limit = cgroup_file(pid, "pids", "pids.max");
        let cpu_quota = cgroup_file(pid, "cpu", "cpu.cfs_quota_us")
            .or_else(|| cgroup_file(pid, "cpu", "cpu.max"));
        let proc_sys_read_only = mounts
            .iter()
            .rev()
            .find(|(mp, _)| mp == "/proc/sys")
            .is_some_and(|(_, o)| o.split(',').any(|x| x == "ro"));
        let spec: serde_json::Value = fs::read(self.container_dir(&row.id).join("config.json"))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        let (device_filter, all_devices_allowed) = match cgroup_dir(pid, "devices") {
            Some(d) if d.join("devices.list").exists() => (
                "cgroup v1 devices.list".to_string(),
                device_rules.iter().any(|l| l.starts_with("a ")),
            ),
            // The kernel shows that programs are attached, not what they
            // allow: that is read from the rules they were made from.
            Some(d) => match berth_runtime::devices_bpf::attached_programs(&d) {
                Ok(0) => (
                    "none (cgroup v2: no eBPF device program attached)".into(),
                    true,
                ),
                Ok(n) => (
                    format!(
                        "cgroup v2: {n} eBPF device program(s) attached (what they allow: from the spec's rules)"
                    ),
                    spec_allows_all_devices(&spec),
                ),
                Err(e) => (format!("cgroup v2: unknown ({e})"), false),
            },
            None => ("none (no device cgroup)".into(), true),
        };
        let device_nodes = device_nodes(Path::new(&format!("/proc/{pid}/root/dev")));
        let seccomp_syscalls_allowed = allowed_syscalls(&spec["linux"]["seccomp"]);
        let lsm_label = fs::read_to_string(format!("/proc/{pid}/attr/current"))
            .map(|s| s.trim_end_matches(['\0', '\n']).to_string())
            .unwrap_or_default();
        let published_ports: Vec<String> = crate::network::endpoints_of(self, &row.id)
            .unwrap_or_default()
            .iter()
            .flat_map(|ep| ep.ports.iter())
            .map(|b| {
                format!(
                    "{}:{}->{}/{}",
                    b.host_ip_text(),
                    b.host_port,
                    b.container_port,
                    b.protocol
                )
            })
            .collect();
        // mountinfo's 4th field is the path inside the mounted filesystem:
        // for bind mounts of the host's root filesystem, the host path.
        // What the engine mounts in by design is not a risk: the
        // container's own files (hosts, resolv.conf…), volumes, berth-init.
        let own = [
            self.container_dir(&row.id),
            self.root.join("volumes"),
            self.root.join("berth-init"),
        ];
        let is_state = |src: &Path| {
            [&self.root, &self.run_dir]
                .iter()
                .any(|r| src.starts_with(r))
                && !own.iter().any(|o| src.starts_with(o))
        };
        let mut engine_state_mounts: Vec<String> = mountinfo
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let (src, mp) = (*f.get(3)?, *f.get(4)?);
                is_state(Path::new(src)).then(|| format!("{src} at {mp}"))
            })
            .collect();
        // The config names the host paths whatever filesystem they are on.
        for m in &crate::row_config(&row).mounts {
            let src = Path::new(&m.source);
            if m.kind == "bind" && is_state(src) {
                let t = format!("{} at {}", m.source, m.target);
                if !engine_state_mounts.contains(&t) {
                    engine_state_mounts.push(t);
                }
            }
        }
        let mut r = Report {
            id: row.id.clone(),
            name: row.name.clone(),
            pid,
            namespaces,
            host_reference,
            capabilities,
            no_new_privileges: num("NoNewPrivs") == Some(1),
            seccomp_mode: num("Seccomp").unwrap_or(0),
            seccomp_filters: num("Seccomp_filters").unwrap_or(0),
            uid_map: id_map(pid, "uid_map"),
            gid_map: id_map(pid, "gid_map"),
            all_host_capabilities: status_field(&status, "CapBnd")
                == status_field(
                    &fs::read_to_string("/proc/self/status").unwrap_or_default(),
                    "CapBnd",
                ),
            read_only_root,
            masked_paths,
            device_rules,
            memory_limit,
            pids_limit,
            cpu_quota,
            engine_sockets,
            proc_sys_read_only,
            device_filter,
            all_devices_allowed,
            device_nodes,
            seccomp_syscalls_allowed,
            seccomp_syscalls_source: "the profile the engine gave the runtime (the kernel shows only the mode and the filter count)".into(),
            lsm_label,
            published_ports,
            engine_state_mounts,
            verdict: Vec::new(),
        };
        r.verdict = verdict(&r);
        Ok(r)
    }
}

/// The risky settings of a report, worst first.
pub fn verdict(r: &Report) -> Vec<String> {
    let mut v = Vec::new();
    if r.all_host_capabilities && r.seccomp_mode == 0 {
        v.push("privileged: every capability of the host and no seccomp filter".to_string());
    }
    for s in &r.engine_sockets {
        v.push(format!("a container engine's socket is mounted at {s}"));
    }
    for m in &r.engine_state_mounts {
        v.push(format!("the engine's state is mounted in: {m}"));
    }
    for ns in r.namespaces.iter().filter(|n| n.shared_with_host) {
        // The cgroup and time namespaces are shared by default on v1 hosts
        // and by docker; the rest isolate.
        if matches!(ns.r#type.as_str(), "pid" | "net" | "ipc" | "uts" | "mnt") {
            v.push(format!("shares the host's {} namespace", ns.r#type));
        }
    }
    let dangerous: Vec<&str> = DANGEROUS_CAPS
        .iter()
        .copied()
        .filter(|c| r.capabilities.effective.iter().any(|e| e == c))
        .collect();
    if !dangerous.is_empty() {
        v.push(format!("dangerous capabilities: {}", dangerous.join(", ")));
    }
    if r.seccomp_mode == 0 {
        v.push("no seccomp filter".to_string());
    }
    if r.all_devices_allowed {
        v.push("every device allowed".to_string());
    }
    if !r.proc_sys_read_only && !r.all_host_capabilities {
        v.push("/proc/sys is writable".to_string());
    }
    let unmasked: Vec<&str> = r
        .masked_paths
        .iter()
        .filter(|(_, masked)| !masked)
        .map(|(p, _)| p.as_str())
        .collect();
    if !unmasked.is_empty() {
        v.push(format!("not masked: {}", unmasked.join(", ")));
    }
    v
}
