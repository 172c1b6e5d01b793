//! The OCI runtime spec of a container: Docker's defaults (capabilities,
//! mounts, masked and read-only /proc paths, the default seccomp profile,
//! device rules) plus the image config and the run's flags.

use std::path::Path;

use berth_image::{ImageRuntime, RunOverrides, apply_image_config};
use oci_spec::runtime::Spec;
use serde_json::{Value, json};

use crate::config::{MountSpec, RunConfig, rlimit_type};
use crate::error::{Result, invalid};

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability this kernel knows that we hold in our bounding set
/// (`--privileged`, `--cap-add ALL`): a container cannot get more.
pub fn all_caps() -> Vec<String> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let bounding: u64 = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    CAP_NAMES
        .iter()
        .enumerate()
        .take(last as usize + 1)
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, c)| format!("CAP_{c}"))
        .collect()
}

const CAP_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// `net_admin`, `CAP_NET_ADMIN`, `ALL` to canonical names.
fn normalize_cap(c: &str) -> Result<String> {
    let up = c.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let name = up.strip_prefix("CAP_").unwrap_or(&up);
    if !CAP_NAMES.contains(&name) {
        return Err(invalid("capability", format!("{c:?} is not a capability")));
    }
    Ok(format!("CAP_{name}"))
}

/// The capability set: docker's default, `--cap-drop` then `--cap-add`.
pub fn capabilities(cfg: &RunConfig) -> Result<Vec<String>> {
    if cfg.privileged {
        return Ok(all_caps());
    }
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    for d in &cfg.cap_drop {
        let d = normalize_cap(d)?;
        if d == "ALL" {
            caps.clear();
        } else {
            caps.retain(|c| *c != d);
        }
    }
    for a in &cfg.cap_add {
        let a = normalize_cap(a)?;
        if a == "ALL" {
            caps = all_caps();
        } else if !caps.contains(&a) {
            caps.push(a);
        }
    }
    Ok(caps)
}

const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Where a named volume's data lives.
pub fn volume_data(root: &Path, name: &str) -> std::path::PathBuf {
    root.join("volumes").join(name).join("_data")
}

fn user_mount(root: &Path, m: &MountSpec) -> Result<Value> {
    let mut opts: Vec<String> = Vec::new();
    let v = match m.kind.as_str() {
        "bind" => {
            let src = Path::new(&m.source);
            if !src.exists() {
                return Err(invalid(
                    "mount",
                    format!("bind source path does not exist: {}", m.source),
                ));
            }
            opts.push("rbind".into());
            if m.options.is_empty() {
                opts.push("rprivate".into());
            }
            opts.extend(m.options.iter().cloned());
            json!({ "destination": m.target, "type": "bind", "source": m.source })
        }
        "volume" => {
            opts.push("rbind".into());
            opts.push("rprivate".into());
            json!({ "destination": m.target, "type": "bind",
                    "source": crate::volumes::source(root, &m.source)? })
        }
        "tmpfs" => {
            opts.extend(["nosuid", "nodev", "noexec"].map(String::from));
            opts.extend(m.options.iter().cloned());
            json!({ "destination": m.target, "type": "tmpfs", "source": "tmpfs" })
        }
        k => return Err(invalid("mount", format!("unsupported type {k:?}"))),
    };
    if m.readonly {
        opts.push("ro".into());
    }
    let mut v = v;
    v["options"] = json!(opts);
    Ok(v)
}

/// The spec for container `id` whose filesystem is `rootfs` and whose
/// files (hostname, hosts, resolv.conf) are in `dir`. `root` is the
/// Berth root (for volumes).
pub fn build(
    id: &str,
    cfg: &RunConfig,
    image: Option<&oci_spec::image::Config>,
    rootfs: &Path,
    dir: &Path,
    root: &Path,
) -> Result<(Spec, ImageRuntime)> {
    let caps = capabilities(cfg)?;
    let host_net = cfg.network == "host";
    let mut mounts = vec![
        json!({ "destination": "/proc", "type": "proc", "source": "proc",
                "options": ["nosuid", "noexec", "nodev"] }),
        json!({ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }),
        json!({ "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] }),
        json!({ "destination": "/sys", "type": "sysfs", "source": "sysfs",
                "options": if cfg.privileged { json!(["nosuid", "noexec", "nodev"]) }
                           else { json!(["nosuid", "noexec", "nodev", "ro"]) } }),
        json!({ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }),
        json!({ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"] }),
    ];
    // Rootless with the host's pid namespace: a new proc mount needs CAP_SYS_ADMIN over the
    // namespace's owner (the host's user namespace), so the host's /proc is bound instead,
    // as podman does (the masked and read-only paths still apply over it).
    if cfg.pid_mode == "host" && crate::rootless::active() {
        mounts[0] = json!({ "destination": "/proc", "type": "bind", "source": "/proc",
                            "options": ["rbind", "nosuid", "noexec", "nodev"] });
    }
    // /dev/shm by `--ipc`: a tmpfs of its own; the host's; none; or, to be shared, a tmpfs
    // the engine mounts on the host (`shm` in the container's directory, see
    // `shm::mount_shareable`) that joiners bind too (the monitor points a `container:X`
    // joiner's at X's when it starts).
    let shm_bind = |source: &Path| {
        json!({ "destination": "/dev/shm", "type": "bind", "source": source,
                "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"] })
    };
    match cfg.ipc_mode.as_str() {
        "none" => {}
        "host" => mounts.push(shm_bind(Path::new("/dev/shm"))),
        // A joiner's source is a placeholder until the monitor points it at X's.
        m if m == "shareable" || crate::config::mode_container(m).is_some() => {
            mounts.push(shm_bind(&dir.join(crate::shm::DIR)))
        }
        _ => mounts.push(json!({ "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777",
                        format!("size={}", cfg.shm_size.filter(|s| *s > 0).unwrap_or(crate::config::DEFAULT_SHM_SIZE))] })),
    }
    let user_targets: Vec<&str> = cfg.mounts.iter().map(|m| m.target.as_str()).collect();
    for f in ["resolv.conf", "hostname", "hosts"] {
        let target = format!("/etc/{f}");
        if user_targets.contains(&target.as_str()) {
            continue;
        }
        let mut o = vec!["rbind", "rprivate"];
        if cfg.read_only {
            o.push("ro");
        }
        mounts.push(json!({ "destination": target, "type": "bind",
                            "source": dir.join(f), "options": o }));
    }
    for m in &cfg.mounts {
        mounts.push(user_mount(root, m)?);
    }
    if cfg.init {
        // Read-only: the container cannot change the file through
        // /proc/1/exe (it is berth-init's own copy, not the runtime).
        mounts.push(json!({ "destination": INIT_PATH, "type": "bind",
                            "source": init_binary(root)?, "options": ["bind", "ro", "nodev", "nosuid"] }));
    }
    // `host` modes share the engine's namespace; `container:X` ones get X's path when the
    // monitor starts the container.
    let mut namespaces = vec![json!({"type": "mount"})];
    if cfg.cgroupns_mode != "host" {
        namespaces.push(json!({"type": "cgroup"}));
    }
    if cfg.pid_mode != "host" {
        namespaces.push(json!({"type": "pid"}));
    }
    if cfg.ipc_mode != "host" {
        namespaces.push(json!({"type": "ipc"}));
    }
    let host_uts = cfg.uts_mode == "host";
    if !host_uts {
        namespaces.push(json!({"type": "uts"}));
    }
    if !host_net {
        namespaces.push(json!({"type": "network"}));
    }
    let userns = crate::rootless::container_userns(cfg)?;
    let mapping = |maps: &[crate::rootless::IdMapping]| -> Vec<serde_json::Value> {
        maps.iter()
            .map(|(c, h, n)| json!({"containerID": c, "hostID": h, "size": n}))
            .collect()
    };
    if userns.is_some() {
        namespaces.push(json!({"type": "user"}));
    }
    let mut devices = vec![
        json!({ "allow": false, "access": "rwm" }),
        json!({ "allow": true, "type": "c", "access": "m" }),
        json!({ "allow": true, "type": "b", "access": "m" }),
        json!({ "allow": true, "type": "c", "major": 136, "access": "rwm" }),
        json!({ "allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm" }),
        json!({ "allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm" }),
    ];
    let mut linux_devices = vec![];
    for d in &cfg.devices {
        let (node, rule) = device_entry(d)?;
        linux_devices.push(node);
        devices.push(rule);
    }
    for r in &cfg.device_cgroup_rules {
        devices.push(crate::config::device_cgroup_rule(r)?);
    }
    if cfg.privileged {
        devices = vec![json!({ "allow": true, "access": "rwm" })];
    }
    let mut resources = limits(cfg)?;
    resources["devices"] = json!(devices);
    let mut rlimits = vec![];
    let mut have_nofile = false;
    for u in &cfg.ulimits {
        let t = rlimit_type(&u.name)
            .ok_or_else(|| invalid("--ulimit", format!("unknown limit {:?}", u.name)))?;
        have_nofile |= t == "RLIMIT_NOFILE";
        rlimits.push(json!({ "type": t, "soft": u.soft, "hard": u.hard }));
    }
    if !have_nofile {
        // containerd's default, within what we may raise it to.
        let hard: u64 = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(4).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(1024 * 1024);
        let n = hard.min(1024 * 1024);
        rlimits.push(json!({ "type": "RLIMIT_NOFILE", "soft": n, "hard": n }));
    }
    let hostname = hostname(id, cfg);
    let under = cfg
        .cgroup_parent
        .as_deref()
        .map(|p| format!("/{}", p.trim_matches('/')))
        .filter(|p| p != "/")
        .unwrap_or_default();
    let cgroups_path = match crate::rootless::delegated_cgroup() {
        Some(parent) => format!("{}{under}/berth-{id}", parent.display()),
        None => format!("{under}/berth-{id}"),
    };
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": cgroups_path,
    });
    if !cfg.privileged {
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(READONLY);
    }
    match cfg.seccomp.as_deref() {
        _ if cfg.privileged => {}
        Some("unconfined") => {}
        Some(profile) => {
            linux["seccomp"] = serde_json::to_value(crate::seccomp::parse_profile(profile)?)
                .map_err(|e| invalid("seccomp profile", e.to_string()))?
        }
        None => {
            linux["seccomp"] = serde_json::to_value(crate::seccomp::default_profile(&caps)?)
                .map_err(|e| invalid("seccomp profile", e.to_string()))?
        }
    }
    if let Some((uids, gids, _)) = &userns {
        linux["uidMappings"] = json!(mapping(uids));
        linux["gidMappings"] = json!(mapping(gids));
    }
    let v = json!({
        "ociVersion": berth_runtime::spec::OCI_VERSION,
        "process": {
            "terminal": cfg.tty,
            "user": { "uid": 0, "gid": 0 },
            "args": ["/bin/sh"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "rlimits": rlimits,
            "noNewPrivileges": cfg.no_new_privileges,
            "oomScoreAdj": cfg.oom_score_adj.unwrap_or(0),
        },
        "root": { "path": rootfs, "readonly": cfg.read_only },
        "mounts": mounts,
        "linux": linux,
    });
    let mut v = v;
    if !host_uts {
        v["hostname"] = json!(hostname);
        if let Some(d) = cfg.domainname.as_deref().filter(|d| !d.is_empty()) {
            v["domainname"] = json!(d);
        }
    }
    if !cfg.sysctls.is_empty() {
        v["linux"]["sysctl"] = json!(cfg.sysctls);
    }
    if !linux_devices.is_empty() {
        v["linux"]["devices"] = json!(linux_devices);
    }
    let mut spec: Spec =
        serde_json::from_value(v).map_err(|e| invalid("container spec", e.to_string()))?;
    let mut env = vec![format!("HOSTNAME={hostname}")];
    if cfg.tty {
        env.push("TERM=xterm".into());
    }
    env.extend(cfg.env.iter().cloned());
    let o = RunOverrides {
        entrypoint: cfg.entrypoint.clone(),
        cmd: cfg.cmd.clone(),
        env,
        workdir: cfg.workdir.clone(),
        user: cfg
            .user
            .clone()
            .or_else(|| userns.as_ref().and_then(|u| u.2.clone())),
        group_add: cfg.group_add.clone(),
        labels: cfg.labels.clone(),
    };
    let rt = apply_image_config(&mut spec, image, rootfs, &o)?;
    // `--annotation`s over the labels the annotations already carry, and the list of their
    // keys (what `inspect` and the label filters tell apart from labels).
    if !cfg.annotations.is_empty() {
        let mut ann = spec.annotations().clone().unwrap_or_default();
        for (k, v) in &cfg.annotations {
            if k.is_empty() {
                return Err(invalid(
                    "--annotation",
                    "the empty string is not permitted as an annotation key",
                ));
            }
            // Keys the engine itself reads back from the spec.
            if k == ANNOTATION_KEYS || k == berth_image::runtime_config::STOP_SIGNAL_ANNOTATION {
                return Err(invalid(
                    "--annotation",
                    format!("{k} is reserved (set by the engine)"),
                ));
            }
            ann.insert(k.clone(), v.clone());
        }
        let keys: Vec<&String> = cfg.annotations.keys().collect();
        ann.insert(ANNOTATION_KEYS.into(), json!(keys).to_string());
        spec.set_annotations(Some(ann));
    }
    if cfg.init
        && let Some(p) = spec.process_mut()
    {
        let mut args = vec![INIT_PATH.to_string(), "--".to_string()];
        args.extend(p.args().clone().unwrap_or_default());
        p.set_args(Some(args));
    }
    Ok((spec, rt))
}

/// A `--device`'s node (`linux.devices`: type, numbers, mode and owner of the host's) and
/// its device cgroup rule.
fn device_entry(d: &crate::config::DeviceMapping) -> Result<(Value, Value)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let host = &d.path_on_host;
    let m = std::fs::metadata(host).map_err(|e| {
        invalid(
            "--device",
            format!("error gathering device information while adding custom device {host:?}: {e}"),
        )
    })?;
    let kind = if m.file_type().is_char_device() {
        "c"
    } else if m.file_type().is_block_device() {
        "b"
    } else {
        return Err(invalid(
            "--device",
            format!("{host:?} is not a device node (a character or block device)"),
        ));
    };
    let (major, minor) = (libc::major(m.rdev()), libc::minor(m.rdev()));
    Ok((
        json!({ "path": d.path_in_container, "type": kind, "major": major, "minor": minor,
                "fileMode": m.mode() & 0o7777, "uid": m.uid(), "gid": m.gid() }),
        json!({ "allow": true, "type": kind, "major": major, "minor": minor,
                "access": d.cgroup_permissions }),
    ))
}

/// The spec annotation listing which annotations are `--annotation`s (a JSON array of
/// keys); the others, but the stop signal's, are the container's labels.
pub const ANNOTATION_KEYS: &str = "io.berth.annotation-keys";

/// Where `--init` puts berth-init in the container (docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";

/// berth-init's executable under the Berth root, written from the copy
/// embedded in this binary when it is missing or differs.
/// The OCI `linux.resources` of a container's limits (memory, swap, CPU,
/// pids), without its device rules: what `create` writes into the spec and
/// `update` applies to a running container's cgroup.
pub fn limits(cfg: &RunConfig) -> Result<Value> {
    let mut resources = json!({});
    if let Some(m) = cfg.memory.filter(|m| *m > 0) {
        if m < MIN_MEMORY {
            return Err(invalid("--memory", "Minimum memory limit allowed is 6MB"));
        }
        // docker: swap as large as the memory unless told otherwise.
        let swap = match cfg.memory_swap {
            Some(-1) => -1,
            Some(s) if s > 0 && s < m => {
                return Err(invalid(
                    "--memory-swap",
                    "Minimum memoryswap limit should be larger than memory limit, see usage",
                ));
            }
            Some(s) if s > 0 => s,
            _ => m * 2,
        };
        resources["memory"] = json!({ "limit": m, "swap": swap });
    } else if cfg.memory_swap.is_some_and(|s| s > 0) {
        return Err(invalid(
            "--memory-swap",
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if let Some(r) = cfg.memory_reservation.filter(|r| *r > 0) {
        if r < MIN_MEMORY {
            return Err(invalid(
                "--memory-reservation",
                "Minimum memory reservation allowed is 6MB",
            ));
        }
        if cfg.memory.is_some_and(|m| m > 0 && m < r) {
            return Err(invalid(
                "--memory-reservation",
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
        resources["memory"]["reservation"] = json!(r);
    }
    if let Some(sw) = cfg.memory_swappiness.filter(|s| *s != -1) {
        if !(0..=100).contains(&sw) {
            return Err(invalid(
                "--memory-swappiness",
                format!("Invalid value: {sw}, valid memory swappiness range is 0-100"),
            ));
        }
        resources["memory"]["swappiness"] = json!(sw);
    }
    if cfg.oom_kill_disable {
        resources["memory"]["disableOOMKiller"] = json!(true);
    }
    let mut cpu = json!({});
    if let Some(n) = cfg.nano_cpus.filter(|n| *n > 0) {
        if cfg.cpu_period.is_some_and(|p| p > 0) || cfg.cpu_quota.is_some_and(|q| q > 0) {
            return Err(invalid(
                "--cpus",
                "Conflicting options: Nano CPUs and CPU Period or CPU Quota cannot both be set",
            ));
        }
        cpu["period"] = json!(100_000u64);
        cpu["quota"] = json!(n / 10_000);
    }
    if let Some(p) = cfg.cpu_period.filter(|p| *p != 0) {
        if !(1000..=1_000_000).contains(&p) {
            return Err(invalid(
                "--cpu-period",
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ));
        }
        cpu["period"] = json!(p);
    }
    if let Some(q) = cfg.cpu_quota.filter(|q| *q != 0) {
        if q > 0 && q < 1000 {
            return Err(invalid(
                "--cpu-quota",
                "CPU cfs quota can not be less than 1ms (i.e. 1000)",
            ));
        }
        cpu["quota"] = json!(q);
    }
    if let Some(s) = cfg.cpu_shares.filter(|s| *s > 0) {
        cpu["shares"] = json!(s);
    }
    if let Some(c) = cfg.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        cpu["cpus"] = json!(c);
    }
    if let Some(m) = cfg.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        cpu["mems"] = json!(m);
    }
    let (rt_period, rt_runtime) = (
        cfg.cpu_rt_period.filter(|p| *p != 0),
        cfg.cpu_rt_runtime.filter(|r| *r != 0),
    );
    if let (Some(p), Some(r)) = (rt_period, rt_runtime)
        && r > p
    {
        return Err(invalid(
            "--cpu-rt-runtime",
            "cpu real-time runtime cannot be higher than cpu real-time period",
        ));
    }
    if let Some(p) = rt_period {
        cpu["realtimePeriod"] = json!(u64::try_from(p).map_err(|_| invalid(
            "--cpu-rt-period",
            format!("{p} is not a period in microseconds")
        ))?);
    }
    if let Some(r) = rt_runtime {
        cpu["realtimeRuntime"] = json!(r);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        resources["cpu"] = cpu;
    }
    if let Some(p) = cfg.pids_limit.filter(|p| *p != 0) {
        resources["pids"] = json!({ "limit": p });
    }
    let block_io = block_io(cfg)?;
    if block_io.as_object().is_some_and(|o| !o.is_empty()) {
        resources["blockIO"] = block_io;
    }
    Ok(resources)
}

/// The OCI `linux.resources.blockIO` of `--blkio-weight`, `--blkio-weight-device` and the
/// `--device-{read,write}-{bps,iops}` throttles, their device paths taken to the numbers
/// of the block devices they name.
fn block_io(cfg: &RunConfig) -> Result<Value> {
    let mut b = json!({});
    if let Some(w) = cfg.blkio_weight.filter(|w| *w > 0) {
        if !(10..=1000).contains(&w) {
            return Err(invalid(
                "--blkio-weight",
                "Range of blkio weight is from 10 to 1000",
            ));
        }
        b["weight"] = json!(w);
    }
    let mut weights = vec![];
    for d in &cfg.blkio_weight_device {
        if d.weight != 0 && !(10..=1000).contains(&d.weight) {
            return Err(invalid(
                "--blkio-weight-device",
                format!("invalid weight for device: {}:{}", d.path, d.weight),
            ));
        }
        let (major, minor) = block_device("--blkio-weight-device", &d.path)?;
        weights.push(json!({ "major": major, "minor": minor, "weight": d.weight }));
    }
    if !weights.is_empty() {
        b["weightDevice"] = json!(weights);
    }
    for (list, flag, key) in [
        (
            &cfg.device_read_bps,
            "--device-read-bps",
            "throttleReadBpsDevice",
        ),
        (
            &cfg.device_write_bps,
            "--device-write-bps",
            "throttleWriteBpsDevice",
        ),
        (
            &cfg.device_read_iops,
            "--device-read-iops",
            "throttleReadIOPSDevice",
        ),
        (
            &cfg.device_write_iops,
            "--device-write-iops",
            "throttleWriteIOPSDevice",
        ),
    ] {
        let mut v = vec![];
        for d in list {
            let (major, minor) = block_device(flag, &d.path)?;
            v.push(json!({ "major": major, "minor": minor, "rate": d.rate }));
        }
        if !v.is_empty() {
            b[key] = json!(v);
        }
    }
    Ok(b)
}

/// What of `cfg`'s limits this host's kernel cannot enforce, dropped from it as docker's
/// daemon drops them (block I/O weights and throttles, real-time CPU time); the returned
/// warnings are docker's.
pub fn drop_unsupported(cfg: &mut RunConfig) -> Vec<String> {
    let mut warnings = drop_unsupported_block_io(cfg);
    let asked = |v: Option<i64>| v.is_some_and(|v| v != 0);
    if asked(cfg.cpu_rt_period) || asked(cfg.cpu_rt_runtime) {
        let realtime = berth_runtime::cgroups::Layout::detect().is_ok_and(|l| {
            l.v1_mountpoint("cpu")
                .is_some_and(|d| d.join("cpu.rt_runtime_us").exists())
        });
        if !realtime {
            if cfg.cpu_rt_period.take().is_some_and(|p| p != 0) {
                warnings.push(
                    "Your kernel does not support cgroup cpu real-time period. Period discarded."
                        .into(),
                );
            }
            if cfg.cpu_rt_runtime.take().is_some_and(|r| r != 0) {
                warnings.push(
                    "Your kernel does not support cgroup cpu real-time runtime. Runtime discarded."
                        .into(),
                );
            }
        }
    }
    warnings
}

/// Whether `cfg` asks for any block I/O weight or throttle.
pub fn wants_block_io(cfg: &RunConfig) -> bool {
    cfg.blkio_weight.is_some_and(|w| w > 0)
        || !cfg.blkio_weight_device.is_empty()
        || !cfg.device_read_bps.is_empty()
        || !cfg.device_write_bps.is_empty()
        || !cfg.device_read_iops.is_empty()
        || !cfg.device_write_iops.is_empty()
}

/// What of the block I/O limits this host's kernel cannot enforce (no CFQ or BFQ scheduler
/// for a weight, no throttling), dropped from `cfg` as docker's daemon drops them; the
/// returned warnings are docker's.
fn drop_unsupported_block_io(cfg: &mut RunConfig) -> Vec<String> {
    if !wants_block_io(cfg) {
        return vec![];
    }
    let have = berth_runtime::cgroups::Layout::detect()
        .map(|l| l.block_io_support())
        .unwrap_or_default();
    let mut warnings = vec![];
    let mut warn = |w: &str| warnings.push(w.to_string());
    if !have.weight && cfg.blkio_weight.take().is_some_and(|w| w > 0) {
        warn(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
        );
    }
    if !have.weight_device && !std::mem::take(&mut cfg.blkio_weight_device).is_empty() {
        warn(
            "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.",
        );
    }
    if !have.throttle {
        for (list, what) in [
            (
                &mut cfg.device_read_bps,
                "BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit",
            ),
            (
                &mut cfg.device_write_bps,
                "BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit",
            ),
            (
                &mut cfg.device_read_iops,
                "IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit",
            ),
            (
                &mut cfg.device_write_iops,
                "IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit",
            ),
        ] {
            if !std::mem::take(list).is_empty() {
                warn(&format!("Your kernel does not support {what} discarded."));
            }
        }
    }
    warnings
}

/// The major and minor numbers of the block device at `path` (a limit of `flag`).
fn block_device(flag: &str, path: &str) -> Result<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    // Only device nodes are looked at (an API client's path could name anything, a FUSE
    // mount that never answers among them).
    if !path.starts_with("/dev/") {
        return Err(invalid(
            flag,
            format!("bad format for device path: {path} (a block device under /dev)"),
        ));
    }
    let m = std::fs::metadata(path).map_err(|e| invalid(flag, format!("stat {path}: {e}")))?;
    if !m.file_type().is_block_device() {
        return Err(invalid(flag, format!("{path} is not a block device")));
    }
    Ok((libc::major(m.rdev()), libc::minor(m.rdev())))
}

/// docker's smallest memory limit.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

pub fn init_binary(root: &Path) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join("berth-init");
    if std::fs::read(&path).is_ok_and(|b| b == berth_init::BINARY) {
        return Ok(path);
    }
    let tmp = root.join(format!(".berth-init.{}", std::process::id()));
    let io = |e| crate::Error::Io {
        path: path.clone(),
        err: e,
    };
    std::fs::write(&tmp, berth_init::BINARY).map_err(io)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    Ok(path)
}

/// The container's hostname: `-h`, the host's with `--network host`, else
/// the short id.
pub fn hostname(id: &str, cfg: &RunConfig) -> String {
    if let Some(h) = cfg.hostname.as_deref().filter(|h| !h.is_empty()) {
        return h.to_string();
    }
    if (cfg.network == "host" || cfg.uts_mode == "host")
        && let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname")
    {
        return h.trim().to_string();
    }
    id[..12.min(id.len())].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_add_drop_and_privileged() {
        let mut c = RunConfig::default();
        assert_eq!(capabilities(&c).unwrap().len(), DEFAULT_CAPS.len());
        c.cap_drop = vec!["chown".into()];
        c.cap_add = vec!["NET_ADMIN".into()];
        let caps = capabilities(&c).unwrap();
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        c.cap_add = vec!["bogus".into()];
        assert!(capabilities(&c).is_err());
        c.cap_add = vec![];
        c.cap_drop = vec!["ALL".into()];
        assert!(capabilities(&c).unwrap().is_empty());
        c.privileged = true;
        assert!(capabilities(&c).unwrap().len() > 30);
    }

    #[test]
    fn spec_has_docker_defaults() {
        let t = tempfile::tempdir().unwrap();
        let rootfs = t.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        let cfg = RunConfig {
            cmd: vec!["true".into()],
            network: "none".into(),
            memory: Some(64 << 20),
            pids_limit: Some(10),
            ..Default::default()
        };
        let id = "0123456789abcdef";
        let (spec, _) = build(id, &cfg, None, &rootfs, t.path(), t.path()).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["hostname"], "0123456789ab");
        assert_eq!(v["process"]["args"], json!(["true"]));
        assert!(v["linux"]["seccomp"]["syscalls"].is_array());
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 10);
        assert!(v["linux"]["maskedPaths"].as_array().unwrap().len() > 5);
        let env = v["process"]["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e == "HOSTNAME=0123456789ab"));
        let small = RunConfig {
            memory: Some(1024),
            ..cfg.clone()
        };
        assert!(build(id, &small, None, &rootfs, t.path(), t.path()).is_err());
        let priv_ = RunConfig {
            privileged: true,
            ..cfg
        };
        let (spec, _) = build(id, &priv_, None, &rootfs, t.path(), t.path()).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert!(v["linux"]["seccomp"].is_null() && v["linux"]["maskedPaths"].is_null());
    }
}
