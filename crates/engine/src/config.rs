//! What a container was created with (`docker create`'s flags), kept as
//! JSON in the state database, and the parsers of the flag values.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, invalid};

/// A mount of `-v`, `--mount` or `--tmpfs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// Host path (bind), volume name (volume; empty for an anonymous one
    /// until created), unused for tmpfs.
    pub source: String,
    pub target: String,
    pub readonly: bool,
    /// tmpfs options (`size=64m,mode=1777`), bind propagation.
    #[serde(default)]
    pub options: Vec<String>,
    /// An anonymous volume (removed by `rm -v` and `--rm`).
    #[serde(default)]
    pub anonymous: bool,
}

/// A `--device` (docker's `DeviceMapping`): a host device node made in the container, and
/// the cgroup's permission to use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    /// Some of `r`, `w`, `m`.
    pub cgroup_permissions: String,
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]` as docker parses it: one field is both
/// paths; of two, the second is the permissions if it reads as such; permissions default
/// to `rwm`.
pub fn parse_device(s: &str) -> Result<DeviceMapping> {
    let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, perms) = match parts[..] {
        [src] => (src, src, "rwm"),
        [src, p] if perms_ok(p) => (src, src, p),
        [src, dst] => (src, dst, "rwm"),
        [src, dst, p] => (src, dst, p),
        _ => {
            return Err(invalid(
                "--device",
                format!("invalid device specification: {s}"),
            ));
        }
    };
    if !perms_ok(perms) {
        return Err(invalid("--device", format!("bad mode specified: {perms}")));
    }
    if !dst.starts_with('/') {
        return Err(invalid("--device", format!("bad format for path: {dst}")));
    }
    if src.is_empty() {
        return Err(invalid("--device", format!("bad format for path: {s}")));
    }
    Ok(DeviceMapping {
        path_on_host: src.to_string(),
        path_in_container: dst.to_string(),
        cgroup_permissions: perms.to_string(),
    })
}

/// A `--blkio-weight-device` (docker's `WeightDevice`): the relative I/O weight on one
/// block device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WeightDevice {
    pub path: String,
    pub weight: u16,
}

/// A `--device-read-bps`, `--device-write-bps`, `--device-read-iops` or
/// `--device-write-iops` (docker's `ThrottleDevice`): bytes or operations per second on one
/// block device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
}

/// Splits docker's `<device-path>:<value>`; the path must be under /dev.
fn device_and_value<'a>(flag: &str, s: &'a str) -> Result<(&'a str, &'a str)> {
    let Some((path, value)) = s.split_once(':').filter(|(_, v)| !v.contains(':')) else {
        return Err(invalid(flag, format!("bad format: {s}")));
    };
    if !path.starts_with("/dev/") {
        return Err(invalid(flag, format!("bad format for device path: {s}")));
    }
    Ok((path, value))
}

/// `--blkio-weight-device /dev/sda:300` as docker parses it (a weight of 10 to 1000; 0
/// leaves the device at the container's weight).
pub fn parse_weight_device(s: &str) -> Result<WeightDevice> {
    let flag = "--blkio-weight-device";
    let (path, value) = device_and_value(flag, s)?;
    match value.parse::<u16>() {
        Ok(w) if w == 0 || (10..=1000).contains(&w) => Ok(WeightDevice {
            path: path.to_string(),
            weight: w,
        }),
        _ => Err(invalid(flag, format!("invalid weight for device: {s}"))),
    }
}

/// `--device-read-bps /dev/sda:1mb` (a size: kb, mb, gb) or, `iops`, `--device-read-iops
/// /dev/sda:1000` (a plain number) as docker parses them.
pub fn parse_throttle_device(flag: &str, s: &str, iops: bool) -> Result<ThrottleDevice> {
    let (path, value) = device_and_value(flag, s)?;
    let rate = if iops {
        value.parse::<u64>().ok()
    } else if value.starts_with(|c: char| c.is_ascii_digit()) {
        parse_size(value).ok().and_then(|r| u64::try_from(r).ok())
    } else {
        None
    };
    let Some(rate) = rate else {
        let unit = if iops {
            "<number>. Number must be a positive integer"
        } else {
            "<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb"
        };
        return Err(invalid(
            flag,
            format!("invalid rate for device: {s}. The correct format is <device-path>:{unit}"),
        ));
    };
    Ok(ThrottleDevice {
        path: path.to_string(),
        rate,
    })
}

/// One `--device-cgroup-rule` (docker's form, `TYPE MAJOR:MINOR ACCESS`: `c 1:3 mr`,
/// `b 7:* rw`, `a *:* rwm`) as an OCI `linux.resources.devices` entry.
pub fn device_cgroup_rule(s: &str) -> Result<serde_json::Value> {
    let bad = || {
        invalid(
            "--device-cgroup-rule",
            format!("invalid device cgroup format '{s}'"),
        )
    };
    let number = |n: &str| -> Result<Option<i64>> {
        if n == "*" {
            return Ok(None);
        }
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        n.parse().map(Some).map_err(|_| bad())
    };
    let f: Vec<&str> = s.split(' ').collect();
    let [kind, numbers, access] = f[..] else {
        return Err(bad());
    };
    if !matches!(kind, "a" | "b" | "c") {
        return Err(bad());
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let (major, minor) = (number(major)?, number(minor)?);
    if access.is_empty()
        || access.len() > 3
        || !access.bytes().all(|b| matches!(b, b'r' | b'w' | b'm'))
    {
        return Err(bad());
    }
    let mut rule = serde_json::json!({ "allow": true, "type": kind, "access": access });
    if let Some(m) = major {
        rule["major"] = m.into();
    }
    if let Some(m) = minor {
        rule["minor"] = m.into();
    }
    Ok(rule)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// A container's configuration as `create`/`run` were given it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// The image as the user named it.
    pub image: String,
    pub cmd: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub open_stdin: bool,
    /// docker's StdinOnce: the container's stdin closes when the attached
    /// client's input ends (`run -i` attached; not `-d -i`, not a tty).
    pub stdin_once: bool,
    pub auto_remove: bool,
    pub hostname: Option<String>,
    pub labels: Vec<(String, String)>,
    pub mounts: Vec<MountSpec>,
    pub read_only: bool,
    /// `bridge` (the default), `none`, `host`, or a user network's name or id.
    pub network: String,
    /// `-p/--publish` values as given (docker's syntax).
    pub publish: Vec<String>,
    /// `-P/--publish-all`: the image's exposed ports on random host ports.
    pub publish_all: bool,
    /// `--ip`, `--ip6`.
    pub ip: Option<String>,
    pub ip6: Option<String>,
    /// `--mac-address`.
    pub mac_address: Option<String>,
    /// `--network-alias`.
    pub network_aliases: Vec<String>,
    /// `--dns`, `--dns-search`, `--dns-option`.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub add_hosts: Vec<String>,
    /// `--group-add`: more supplementary groups (names in the image's
    /// /etc/group, or numbers).
    pub group_add: Vec<String>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// `--memory-swap`: memory plus swap, bytes (-1: unlimited swap).
    pub memory_swap: Option<i64>,
    /// `--cpu-period`, `--cpu-quota` (microseconds; CFS).
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus` (`0-3`, `0,1`).
    pub cpuset_cpus: Option<String>,
    pub ulimits: Vec<Ulimit>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub no_new_privileges: bool,
    /// `--security-opt seccomp=FILE` (its content) or `unconfined`.
    pub seccomp: Option<String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    /// `--log-opt max-size`, bytes (0: no rotation).
    pub log_max_size: u64,
    /// `--log-opt max-file` (at least 1).
    pub log_max_file: u32,
    /// `--init`: berth-init runs as pid 1 and the command as its child.
    pub init: bool,
    /// `--restart` as given (`no`, `always`, `unless-stopped`,
    /// `on-failure[:N]`); empty is `no`.
    pub restart: String,
    /// `--userns`: empty (the engine's own namespace), `host`, `keep-id`
    /// (rootless: the user's own id inside).
    pub userns: String,
    /// `--uidmap`/`--gidmap` (podman's `CONTAINER:HOST:SIZE`, HOST in the
    /// engine's namespace): a user namespace of the container's own.
    pub uid_maps: Vec<String>,
    pub gid_maps: Vec<String>,
    /// `--health-*`, `--no-healthcheck` (`Test: ["NONE"]`); merged with the image's
    /// `HEALTHCHECK` at create.
    pub healthcheck: Option<crate::health::HealthConfig>,
    /// `--pid`: empty (a namespace of its own), `host`, or `container:NAME|ID`.
    pub pid_mode: String,
    /// `--ipc`: empty or `private` (a namespace of its own), `shareable` (one others may
    /// join, its /dev/shm a tmpfs on the host they bind too), `none` (no /dev/shm), `host`,
    /// or `container:NAME|ID` of a shareable one.
    pub ipc_mode: String,
    /// `--uts`: empty (a namespace of its own) or `host`.
    pub uts_mode: String,
    /// `--shm-size` in bytes; docker's 64 MiB when unset.
    pub shm_size: Option<i64>,
    /// `--sysctl`: kernel parameters of the container's own namespaces.
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// `--oom-score-adj`, -1000 to 1000.
    pub oom_score_adj: Option<i64>,
    /// `--domainname`: the NIS domain name of its UTS namespace.
    pub domainname: Option<String>,
    /// `--device`.
    pub devices: Vec<DeviceMapping>,
    /// `--expose PORT[/PROTO]` or a range: ports exposed beside the image's `EXPOSE`
    /// (`create` stores them as `PORT/PROTO`, one port each).
    pub expose: Vec<String>,
    /// `--volumes-from CONTAINER[:ro|rw]` as given (their mounts are copied into `mounts`
    /// at create).
    pub volumes_from: Vec<String>,
    /// `--cgroupns`: empty or `private` (a cgroup namespace of its own), or `host`.
    pub cgroupns_mode: String,
    /// `--cgroup-parent`: the cgroup the container's is made under (cgroupfs style,
    /// `/a/b`), instead of the hierarchy's root.
    pub cgroup_parent: Option<String>,
    /// `--memory-reservation`: the soft limit (v1 `memory.soft_limit_in_bytes`, v2
    /// `memory.low`).
    pub memory_reservation: Option<i64>,
    /// `--memory-swappiness` 0..=100 (cgroup v1 only; -1 or unset: the host's).
    pub memory_swappiness: Option<i64>,
    /// `--oom-kill-disable` (cgroup v1 only).
    pub oom_kill_disable: bool,
    /// `--cpuset-mems`: the memory nodes it may use.
    pub cpuset_mems: Option<String>,
    /// `--blkio-weight` 10..=1000 (0 or unset: the host's).
    pub blkio_weight: Option<u16>,
    /// `--blkio-weight-device`.
    pub blkio_weight_device: Vec<WeightDevice>,
    /// `--device-read-bps`.
    pub device_read_bps: Vec<ThrottleDevice>,
    /// `--device-write-bps`.
    pub device_write_bps: Vec<ThrottleDevice>,
    /// `--device-read-iops`.
    pub device_read_iops: Vec<ThrottleDevice>,
    /// `--device-write-iops`.
    pub device_write_iops: Vec<ThrottleDevice>,
    /// `--device-cgroup-rule` as given (`c 1:3 mr`).
    pub device_cgroup_rules: Vec<String>,
    /// `--link NAME[:ALIAS]` as given (see `crate::links`).
    pub links: Vec<String>,
    /// `--annotation KEY=VALUE`: OCI annotations passed to the runtime (docker's
    /// HostConfig.Annotations).
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `--cpu-rt-period` (µs; cgroup v1's real-time group scheduling).
    pub cpu_rt_period: Option<i64>,
    /// `--cpu-rt-runtime` (µs of real-time running per period).
    pub cpu_rt_runtime: Option<i64>,
    /// `--storage-opt KEY=VALUE` (docker's overlay2 driver's one: `size`, see
    /// `crate::quota`).
    pub storage_opt: std::collections::BTreeMap<String, String>,
}

/// docker's default size of a container's /dev/shm.
pub const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;

/// The sysctls docker's `--sysctl` accepts (others are "not allowed"): those the
/// container's own IPC or network namespace holds.
pub fn sysctl_whitelisted(key: &str) -> bool {
    use oci_spec::runtime::LinuxNamespaceType as T;
    matches!(
        berth_runtime::spec::sysctl_namespace(key),
        Some(T::Ipc | T::Network)
    )
}

/// The container a `container:NAME|ID` mode names.
pub fn mode_container(mode: &str) -> Option<&str> {
    mode.strip_prefix("container:").filter(|c| !c.is_empty())
}

impl RunConfig {
    /// The checks across fields a front end cannot make one value at a
    /// time (the CLI's flags and the API's JSON alike).
    pub fn validate(&self) -> Result<()> {
        if self.log_max_file > 1 && self.log_max_size == 0 {
            return Err(Error::BadConfig(
                "max-file cannot be set without max-size".into(),
            ));
        }
        if let Some(h) = &self.healthcheck {
            h.validate()?;
        }
        let restart = parse_restart(&self.restart)?;
        if restart != RestartPolicy::No && self.auto_remove {
            return Err(Error::BadConfig(
                "Conflicting options: --restart and --rm".into(),
            ));
        }
        self.validate_namespaces()
    }

    /// `--pid`, `--ipc`, `--uts` and what depends on them: docker's modes and conflicts,
    /// and sysctls only of namespaces the container has of its own (runc's rule: anything
    /// else would be the host's).
    pub fn validate_namespaces(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::BadConfig(m.to_string()));
        if !(matches!(self.pid_mode.as_str(), "" | "host")
            || mode_container(&self.pid_mode).is_some())
        {
            return bad("--pid: invalid PID mode");
        }
        if !(matches!(
            self.ipc_mode.as_str(),
            "" | "private" | "shareable" | "none" | "host"
        ) || mode_container(&self.ipc_mode).is_some())
        {
            return bad("--ipc: invalid IPC mode");
        }
        if !matches!(self.uts_mode.as_str(), "" | "host") {
            return bad("--uts: invalid UTS mode");
        }
        if !matches!(self.cgroupns_mode.as_str(), "" | "host" | "private") {
            return bad("--cgroupns: invalid CGROUP mode");
        }
        if let Some(p) = &self.cgroup_parent
            && (p.is_empty()
                || p.split('/').any(|c| c == ".." || c == ".")
                || p.ends_with(".slice"))
        {
            return Err(Error::BadConfig(format!(
                "--cgroup-parent {p:?}: a cgroupfs path such as /parent/child (no '.' or '..'; systemd slices are not supported)"
            )));
        }
        if self.uts_mode == "host" && self.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
            return bad("conflicting options: hostname and the UTS mode");
        }
        if self.uts_mode == "host" && self.domainname.as_deref().is_some_and(|h| !h.is_empty()) {
            return bad("conflicting options: domainname and the UTS mode");
        }
        if self.shm_size.is_some_and(|s| s < 0) {
            return bad("SHM size can not be less than 0");
        }
        if let Some(a) = self.oom_score_adj
            && !(-1000..=1000).contains(&a)
        {
            return Err(Error::BadConfig(format!(
                "Invalid value {a}, range for oom score adj is [-1000, 1000]"
            )));
        }
        for key in self.sysctls.keys() {
            use oci_spec::runtime::LinuxNamespaceType as T;
            let in_host_ipc = self.ipc_mode == "host" || mode_container(&self.ipc_mode).is_some();
            match berth_runtime::spec::sysctl_namespace(key) {
                Some(T::Network) if self.network == "host" => {
                    return Err(Error::BadConfig(format!(
                        "sysctl {key:?} not allowed in host network namespace"
                    )));
                }
                Some(T::Network) if mode_container(&self.network).is_some() => {
                    return Err(Error::BadConfig(format!(
                        "sysctl {key:?} not allowed in the network namespace of another container"
                    )));
                }
                Some(T::Ipc) if in_host_ipc => {
                    return Err(Error::BadConfig(format!(
                        "sysctl {key:?} is not allowed in the hosts ipc namespace"
                    )));
                }
                Some(T::Network | T::Ipc) => {}
                _ => {
                    return Err(Error::BadConfig(format!(
                        "sysctl {key:?} is not in a separate kernel namespace"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// docker's restart policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    Always,
    UnlessStopped,
    /// At most this many restarts (None: no limit).
    OnFailure(Option<u32>),
}

/// `--restart` (`no`, `always`, `unless-stopped`, `on-failure[:N]`).
pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let bad = || invalid("--restart", format!("invalid restart policy {s:?}"));
    Ok(match s.split_once(':') {
        None if s.is_empty() || s == "no" => RestartPolicy::No,
        None if s == "always" => RestartPolicy::Always,
        None if s == "unless-stopped" => RestartPolicy::UnlessStopped,
        None if s == "on-failure" => RestartPolicy::OnFailure(None),
        Some(("on-failure", n)) => {
            RestartPolicy::OnFailure(Some(n.parse::<u32>().map_err(|_| bad())?))
        }
        Some(("no" | "always" | "unless-stopped", _)) => {
            return Err(invalid(
                "--restart",
                format!("{s:?}: a maximum restart count is only for on-failure"),
            ));
        }
        _ => return Err(bad()),
    })
}

/// `512`, `64k`, `1.5g`, `100MB`… as docker's RAMInBytes.
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let n: f64 = num
        .parse()
        .map_err(|_| invalid("size", format!("{s:?} is not a size")))?;
    let mult: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        _ => return Err(invalid("size", format!("{s:?}: unknown unit {unit:?}"))),
    };
    Ok((n * mult) as i64)
}

/// `--cpus 1.5` to nano CPUs.
pub fn parse_cpus(s: &str) -> Result<i64> {
    let n: f64 = s
        .parse()
        .map_err(|_| invalid("--cpus", format!("{s:?} is not a number")))?;
    if n.is_nan() || n <= 0.0 || n > 1024.0 {
        return Err(invalid("--cpus", format!("{s:?} is out of range")));
    }
    Ok((n * 1e9) as i64)
}

/// `nofile=1024:2048`, `nproc=512`.
pub fn parse_ulimit(s: &str) -> Result<Ulimit> {
    let bad = |r: &str| invalid("--ulimit", format!("{s:?}: {r}"));
    let (name, v) = s
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=SOFT[:HARD]"))?;
    if rlimit_type(name).is_none() {
        return Err(bad("unknown limit"));
    }
    let num = |x: &str| -> Result<u64> {
        if x == "-1" || x == "unlimited" {
            return Ok(u64::MAX);
        }
        x.parse().map_err(|_| bad("not a number"))
    };
    let (soft, hard) = match v.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(v)?, num(v)?),
    };
    if soft > hard {
        return Err(bad("soft limit is above the hard limit"));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// The OCI rlimit type of a docker ulimit name.
pub fn rlimit_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        "as" => "RLIMIT_AS",
        _ => return None,
    })
}

fn check_target(t: &str, flag: &str) -> Result<()> {
    if !t.starts_with('/') {
        return Err(invalid(
            flag,
            format!("mount destination {t:?} is not absolute"),
        ));
    }
    if t == "/" {
        return Err(invalid(flag, "mount destination cannot be \"/\""));
    }
    Ok(())
}

/// Whether `s` is a valid volume name (docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn valid_volume_name(s: &str) -> bool {
    crate::names::valid_name(s) && s.len() > 1
}

/// `-v SRC:DST[:ro|rw]`, `-v NAME:DST`, `-v DST` (anonymous volume).
pub fn parse_volume_flag(s: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(invalid("-v", format!("{s:?}: expected [SRC:]DST[:MODE]"))),
    };
    check_target(dst, "-v")?;
    let mut readonly = false;
    let mut options = Vec::new();
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "z" | "Z" => {}
            // A new volume is not seeded from the image (kept for volumes).
            "nocopy" => options.push(m.to_string()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                options.push(m.to_string())
            }
            _ => return Err(invalid("-v", format!("{s:?}: unknown mode {m:?}"))),
        }
    }
    let (kind, anonymous) = if src.is_empty() {
        ("volume", true)
    } else if src.starts_with('/') {
        ("bind", false)
    } else if valid_volume_name(src) {
        ("volume", false)
    } else {
        return Err(invalid(
            "-v",
            format!("{src:?} is neither an absolute path nor a valid volume name"),
        ));
    };
    if kind == "bind" {
        options.retain(|o| o != "nocopy");
    }
    Ok(MountSpec {
        kind: kind.into(),
        source: src.into(),
        target: dst.into(),
        readonly,
        options,
        anonymous,
    })
}

/// `--mount type=bind,source=/a,target=/b,readonly` (and volume, tmpfs).
pub fn parse_mount_flag(s: &str) -> Result<MountSpec> {
    let mut m = MountSpec {
        kind: "volume".into(),
        source: String::new(),
        target: String::new(),
        readonly: false,
        options: vec![],
        anonymous: false,
    };
    for kv in s.split(',') {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (kv, None),
        };
        match (k, v) {
            ("type", Some(v)) => m.kind = v.to_string(),
            ("source" | "src", Some(v)) => m.source = v.to_string(),
            ("target" | "destination" | "dst", Some(v)) => m.target = v.to_string(),
            ("readonly" | "ro", None) => m.readonly = true,
            ("readonly" | "ro", Some(v)) => m.readonly = v == "true" || v == "1",
            ("bind-propagation", Some(v)) => m.options.push(v.to_string()),
            ("tmpfs-size", Some(v)) => m.options.push(format!("size={}", parse_size(v)?)),
            ("tmpfs-mode", Some(v)) => m.options.push(format!("mode={v}")),
            ("volume-nocopy", v) => {
                if v.is_none_or(|v| v == "true" || v == "1") {
                    m.options.push("nocopy".into());
                }
            }
            ("consistency", _) => {}
            _ => return Err(invalid("--mount", format!("{s:?}: unexpected key {k:?}"))),
        }
    }
    check_target(&m.target, "--mount")?;
    match m.kind.as_str() {
        "bind" => {
            if !m.source.starts_with('/') {
                return Err(invalid(
                    "--mount",
                    format!("{s:?}: a bind mount needs an absolute source"),
                ));
            }
        }
        "volume" => {
            if m.source.is_empty() {
                m.anonymous = true;
            } else if !valid_volume_name(&m.source) {
                return Err(invalid(
                    "--mount",
                    format!("{:?} is not a valid volume name", m.source),
                ));
            }
        }
        "tmpfs" => {
            if !m.source.is_empty() {
                return Err(invalid("--mount", "a tmpfs mount takes no source"));
            }
        }
        k => return Err(invalid("--mount", format!("unsupported type {k:?}"))),
    }
    Ok(m)
}

/// `--tmpfs /run[:size=64m,mode=1777]`.
pub fn parse_tmpfs_flag(s: &str) -> Result<MountSpec> {
    let (dst, opts) = s.split_once(':').unwrap_or((s, ""));
    check_target(dst, "--tmpfs")?;
    let mut options = Vec::new();
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", v)) => options.push(format!("size={}", parse_size(v)?)),
            Some(("mode", v)) => {
                u32::from_str_radix(v, 8)
                    .map_err(|_| invalid("--tmpfs", format!("bad mode {v:?}")))?;
                options.push(format!("mode={v}"))
            }
            Some(("uid" | "gid" | "nr_inodes", _)) => options.push(o.to_string()),
            None if o == "ro" => readonly = true,
            None if matches!(
                o,
                "rw" | "exec" | "noexec" | "suid" | "nosuid" | "dev" | "nodev"
            ) =>
            {
                options.push(o.to_string())
            }
            _ => return Err(invalid("--tmpfs", format!("unknown option {o:?}"))),
        }
    }
    Ok(MountSpec {
        kind: "tmpfs".into(),
        source: String::new(),
        target: dst.into(),
        readonly,
        options,
        anonymous: false,
    })
}

/// `--add-host name:ip` (docker also takes `name=ip`).
pub fn parse_add_host(s: &str) -> Result<(String, String)> {
    let (h, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| invalid("--add-host", format!("{s:?}: expected HOST:IP")))?;
    if h.is_empty()
        || ip.is_empty()
        || (ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err())
    {
        return Err(invalid("--add-host", format!("{s:?}: expected HOST:IP")));
    }
    Ok((h.to_string(), ip.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_io_and_device_cgroup_flags_parse_as_dockers() {
        let w = parse_weight_device("/dev/sda:300").unwrap();
        assert_eq!((w.path.as_str(), w.weight), ("/dev/sda", 300));
        assert_eq!(parse_weight_device("/dev/sda:0").unwrap().weight, 0);
        for bad in [
            "/dev/sda:5",
            "/dev/sda:1001",
            "/dev/sda:x",
            "/dev/sda",
            "sda:300",
        ] {
            assert!(parse_weight_device(bad).is_err(), "{bad}");
        }
        let t = parse_throttle_device("--device-read-bps", "/dev/sda:1.5mb", false).unwrap();
        assert_eq!(t.rate, 1_572_864);
        assert_eq!(
            parse_throttle_device("--device-read-bps", "/dev/sda:10", false)
                .unwrap()
                .rate,
            10
        );
        let t = parse_throttle_device("--device-read-iops", "/dev/sda:1000", true).unwrap();
        assert_eq!(t.rate, 1000);
        for (s, iops) in [
            ("/dev/sda:1mb", true),
            ("/dev/sda:-1", false),
            ("/dev/sda:mb", false),
            ("/dev/sda:1:2", false),
        ] {
            assert!(
                parse_throttle_device("--device-read-bps", s, iops).is_err(),
                "{s}"
            );
        }
        let r = device_cgroup_rule("c 1:3 mr").unwrap();
        assert_eq!(
            r,
            serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "mr"})
        );
        let r = device_cgroup_rule("a *:* rwm").unwrap();
        assert!(r.get("major").is_none() && r.get("minor").is_none(), "{r}");
        assert_eq!(device_cgroup_rule("b 7:* rw").unwrap()["major"], 7);
        for bad in [
            "c",
            "c 1:3",
            "x 1:3 r",
            "c 1:3 rx",
            "c 1:3 rwmr",
            "c 1 r",
            "c 1:3  r",
            "c -1:3 r",
            "c 1:3 ",
        ] {
            assert!(device_cgroup_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("1.5g").unwrap(), 1610612736);
        assert_eq!(parse_size("100MB").unwrap(), 104857600);
        assert!(parse_size("abc").is_err());
        assert!(parse_size("10x").is_err());
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert!(parse_cpus("0").is_err());
    }

    #[test]
    fn volumes_and_mounts() {
        let m = parse_volume_flag("/a:/b:ro").unwrap();
        assert_eq!((m.kind.as_str(), m.readonly), ("bind", true));
        let m = parse_volume_flag("data:/d").unwrap();
        assert_eq!((m.kind.as_str(), m.anonymous), ("volume", false));
        let m = parse_volume_flag("/d").unwrap();
        assert!(m.anonymous);
        assert!(parse_volume_flag("rel/x:/d").is_err());
        assert!(parse_volume_flag("/a:b").is_err());
        assert!(parse_volume_flag("/a:/b:xx").is_err());
        let m = parse_mount_flag("type=bind,src=/a,dst=/b,readonly").unwrap();
        assert_eq!(
            (m.source.as_str(), m.target.as_str(), m.readonly),
            ("/a", "/b", true)
        );
        assert!(parse_mount_flag("type=nfs,dst=/x").is_err());
        let t = parse_tmpfs_flag("/run:size=1m,mode=1777").unwrap();
        assert_eq!(t.options, ["size=1048576", "mode=1777"]);
        assert!(parse_tmpfs_flag("/run:mode=99x").is_err());
    }

    #[test]
    fn ulimits_and_hosts() {
        let u = parse_ulimit("nofile=100:200").unwrap();
        assert_eq!((u.soft, u.hard), (100, 200));
        assert!(parse_ulimit("nofile=300:200").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert_eq!(
            parse_add_host("db:10.0.0.1").unwrap(),
            ("db".into(), "10.0.0.1".into())
        );
        assert!(parse_add_host("db:notanip").is_err());
    }
}
