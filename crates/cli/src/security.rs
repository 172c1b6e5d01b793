//! `berth security [--format json] CONTAINER`: what the running container can
//! actually do, as the kernel has it (`berth_engine::security`), with a
//! verdict line of the risky settings. No peer has this report.

use std::io::Write;

use berth_engine::Engine;
use berth_engine::security::Report;

use crate::args::Parsed;
use crate::containers::{Failure, fail};

type R<T = ()> = Result<T, Failure>;

pub fn run(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let [key] = p.args.as_slice() else {
        return Err(crate::args::Usage(
            "\"security\" requires exactly 1 argument: a container".into(),
        )
        .into());
    };
    let r = e.security_report(key)?;
    match p.value("format") {
        Some("json") => {
            let text = serde_json::to_string_pretty(&r).map_err(|x| Failure {
                code: 1,
                msg: x.to_string(),
                usage: false,
            })?;
            writeln!(out, "{text}").or_else(|x| fail(1, x.to_string()))
        }
        None | Some("table") => print(&r, out).or_else(|x| fail(1, x.to_string())),
        Some(f) => fail(1, format!("--format {f:?}: json or table")),
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.iter()
            .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn print(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let short = &r.id[..r.id.len().min(12)];
    writeln!(out, "Container:      {} ({short}), pid {}", r.name, r.pid)?;
    let shared: Vec<&str> = r
        .namespaces
        .iter()
        .filter(|n| n.shared_with_host)
        .map(|n| n.r#type.as_str())
        .collect();
    let own: Vec<&str> = r
        .namespaces
        .iter()
        .filter(|n| !n.shared_with_host)
        .map(|n| n.r#type.as_str())
        .collect();
    writeln!(out, "Namespaces:     own: {}", own.join(" "))?;
    writeln!(
        out,
        "                the host's ({}): {}",
        r.host_reference,
        if shared.is_empty() {
            "(none)".into()
        } else {
            shared.join(" ")
        }
    )?;
    let engine: Vec<&str> = r
        .namespaces
        .iter()
        .filter(|n| n.shared_with_engine && !n.shared_with_host)
        .map(|n| n.r#type.as_str())
        .collect();
    if !engine.is_empty() {
        writeln!(
            out,
            "                berth's own (not the host's): {}",
            engine.join(" ")
        )?;
    }
    let c = &r.capabilities;
    writeln!(out, "Capabilities:   effective: {}", list(&c.effective))?;
    writeln!(out, "                bounding:  {}", list(&c.bounding))?;
    writeln!(out, "                ambient:   {}", list(&c.ambient))?;
    writeln!(out, "No new privs:   {}", r.no_new_privileges)?;
    let mode = match r.seccomp_mode {
        0 => "disabled",
        1 => "strict",
        _ => "filter",
    };
    writeln!(
        out,
        "Seccomp:        {mode} ({} filter{})",
        r.seccomp_filters,
        if r.seccomp_filters == 1 { "" } else { "s" }
    )?;
    match r.seccomp_syscalls_allowed {
        Some(n) => writeln!(
            out,
            "                {n} syscalls allowed by name (from the engine's profile: the kernel does not tell)"
        )?,
        None if r.seccomp_mode != 0 => writeln!(
            out,
            "                profile allows by default (from the engine's profile)"
        )?,
        None => {}
    }
    writeln!(out, "User map:       uid {} / gid {}", r.uid_map, r.gid_map)?;
    writeln!(out, "Read-only root: {}", r.read_only_root)?;
    writeln!(
        out,
        "/proc/sys:      {}",
        if r.proc_sys_read_only {
            "read-only"
        } else {
            "writable"
        }
    )?;
    let masked = r.masked_paths.iter().filter(|(_, m)| *m).count();
    writeln!(
        out,
        "Masked paths:   {masked} of {} masked",
        r.masked_paths.len()
    )?;
    writeln!(
        out,
        "Devices:        {}",
        if r.device_rules.is_empty() {
            "(eBPF filter or none)".into()
        } else {
            r.device_rules.join(", ")
        }
    )?;
    writeln!(out, "Device filter:  {}", r.device_filter)?;
    writeln!(
        out,
        "Device nodes:   {}",
        if r.device_nodes.is_empty() {
            "(none)".into()
        } else {
            r.device_nodes
                .iter()
                .map(|d| d.split(' ').next().unwrap_or(d))
                .collect::<Vec<_>>()
                .join(" ")
        }
    )?;
    writeln!(
        out,
        "LSM label:      {}",
        if r.lsm_label.is_empty() || r.lsm_label == "unconfined" {
            "none (Berth applies no AppArmor or SELinux profile)".to_string()
        } else {
            r.lsm_label.clone()
        }
    )?;
    writeln!(
        out,
        "Ports:          {}",
        if r.published_ports.is_empty() {
            "(none published)".into()
        } else {
            r.published_ports.join(", ")
        }
    )?;
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "Limits:         memory {}, pids {}, cpu quota {}",
        or_none(&r.memory_limit),
        or_none(&r.pids_limit),
        or_none(&r.cpu_quota)
    )?;
    if r.verdict.is_empty() {
        writeln!(out, "Verdict:        no risky settings found")
    } else {
        writeln!(out, "Verdict:        RISKY: {}", r.verdict.join("; "))
    }
}
