//! `info` and `version` as docker's Engine API models them (`GET /info`, `GET /version`):
//! one builder for the API and for the CLI (its text and its `--format` templates).

use std::path::Path;

use serde_json::{Value, json};

use crate::error::Result;
use crate::{Engine, db};

/// The newest Engine API version `berth serve` speaks.
pub const API_VERSION: &str = "1.45";
/// The oldest it accepts.
pub const MIN_API_VERSION: &str = "1.24";

/// docker's name of this machine's architecture (`amd64`, `arm64`).
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// The running kernel's release.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The engine's part of docker's `/version` (`Server` in `docker version`).
pub fn version() -> Value {
    let v = env!("CARGO_PKG_VERSION");
    json!({
        "Platform": {"Name": "Berth"},
        "Components": [{"Name": "Engine", "Version": v, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
            "Arch": arch(), "KernelVersion": kernel(),
        }}],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel(),
        "Experimental": false,
        "BuildTime": "",
    })
}

/// docker's `SecurityOptions` (`name=rootless` for a rootless engine).
fn security_options() -> Vec<&'static str> {
    let mut v = vec!["name=seccomp,profile=builtin", "name=cgroupns"];
    if crate::rootless::active() {
        v.push("name=rootless");
    }
    v
}

/// What the host's cgroups can enforce, as docker's `sysinfo` finds it, and dockerd's
/// warnings for what they cannot.
struct Cgroups {
    version: &'static str,
    swap: bool,
    cfs: bool,
    warnings: Vec<String>,
}

fn cgroups() -> Cgroups {
    let layout = berth_runtime::cgroups::Layout::detect().ok();
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (swap, cfs) = match layout.as_ref() {
        // A v2 cgroup with the controller shows its files (no memory.swap.max without swap
        // accounting); none found: assumed there.
        Some(l) if v2 => (
            l.v2_sample("memory.current")
                .is_none_or(|d| d.join("memory.swap.max").exists()),
            l.v2_sample("cpu.weight")
                .is_none_or(|d| d.join("cpu.max").exists()),
        ),
        Some(l) => (
            l.v1_mountpoint("memory")
                .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists()),
            l.v1_mountpoint("cpu")
                .is_some_and(|d| d.join("cpu.cfs_quota_us").exists()),
        ),
        None => (v2, v2),
    };
    let io = layout
        .as_ref()
        .map(|l| l.block_io_support())
        .unwrap_or_default();
    let mut warnings = vec![];
    if !swap {
        warnings.push("WARNING: No swap limit support".to_string());
    }
    if !cfs {
        warnings.push("WARNING: No cpu cfs quota support".into());
        warnings.push("WARNING: No cpu cfs period support".into());
    }
    let (weight, weight_device, throttles): (&str, &str, [&str; 4]) = if v2 {
        (
            "io.weight",
            "io.weight (per device)",
            [
                "io.max (rbps)",
                "io.max (wbps)",
                "io.max (riops)",
                "io.max (wiops)",
            ],
        )
    } else {
        (
            "blkio weight",
            "blkio weight_device",
            [
                "blkio throttle.read_bps_device",
                "blkio throttle.write_bps_device",
                "blkio throttle.read_iops_device",
                "blkio throttle.write_iops_device",
            ],
        )
    };
    if !io.weight {
        warnings.push(format!("WARNING: No {weight} support"));
    }
    if !io.weight_device {
        warnings.push(format!("WARNING: No {weight_device} support"));
    }
    if !io.throttle {
        warnings.extend(throttles.iter().map(|t| format!("WARNING: No {t} support")));
    }
    Cgroups {
        version: if v2 { "2" } else { "1" },
        swap,
        cfs,
        warnings,
    }
}

/// docker's `/info` of this engine (and `docker info`'s server part).
pub fn info(e: &mut Engine) -> Result<Value> {
    // Reconciled, as `ps` lists them: a container whose processes died with the machine
    // is not counted as running.
    let rows = e.list()?;
    let count = |s: &str| rows.iter().filter(|r| r.state == s).count();
    let (running, paused) = (count(db::RUNNING), count(db::PAUSED));
    let images = e.images()?.list()?.len();
    let cg = cgroups();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Ok(json!({
        "ID": "",
        "Containers": rows.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": rows.len() - running - paused,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": cg.swap,
        "CpuCfsPeriod": cg.cfs,
        "CpuCfsQuota": cg.cfs,
        "CPUShares": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": crate::timefmt::rfc3339(crate::timefmt::now_secs()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cg.version,
        "NEventsListener": 0,
        "KernelVersion": kernel(),
        "OperatingSystem": "linux",
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": []},
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": crate::inspect::mem_total(),
        "DockerRootDir": e.root,
        "Name": host.trim(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"berth-runtime": {"path": "berth-runtime"}},
        "DefaultRuntime": "berth-runtime",
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "berth-init",
        "SecurityOptions": security_options(),
        "Warnings": cg.warnings,
    }))
}
