//! Process attributes beyond user and capabilities: scheduler, I/O priority,
//! personality, CPU affinity (config.md / config-linux.md), checked from inside.

mod common;

use common::*;
use serde_json::json;

#[test]
fn scheduler_policy_and_nice() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7}));
    let out = rt.sh_output(
        &b,
        "grep '^policy' /proc/self/sched; cut -d' ' -f19 /proc/self/stat",
    );
    assert!(
        out.lines()
            .any(|l| l.ends_with(": 3") || l.ends_with(":3") || l.trim_end().ends_with(" 3")),
        "not SCHED_BATCH:\n{out}"
    );
    assert!(
        out.lines().any(|l| l.trim() == "7"),
        "nice is not 7:\n{out}"
    );
}

#[test]
fn io_priority() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}));
    let out = rt.sh_output(&b, "ionice -p $$");
    assert!(out.contains("idle"), "{out}");
    b.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9}));
    let id = rt.new_id("io");
    let o = rt.create(&b, &id);
    // Out of range: refused at create or at start, naming the field.
    if o.success() {
        let o = rt.start(&id);
        o.fails();
        assert!(o.stderr.contains("ioPriority"), "{o}");
    } else {
        assert!(o.stderr.contains("ioPriority"), "{o}");
    }
}

#[test]
fn personality_linux32() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    let out = rt.sh_output(&b, "uname -m");
    assert_eq!(out.trim(), "i686", "{out}");
}

#[test]
fn exec_cpu_affinity_final() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "0"}));
    let out = rt.sh_output(&b, "grep Cpus_allowed_list /proc/self/status");
    assert!(
        out.trim().ends_with("\t0") || out.trim().ends_with(" 0"),
        "{out}"
    );
    b.edit(|c| c["process"]["execCPUAffinity"] = json!({"final": "zero"}));
    let o = rt.run_fg(&b);
    o.fails();
    assert!(o.stderr.contains("execCPUAffinity"), "{o}");
}

#[test]
fn memory_policy() {
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        return skip("kernel without NUMA support");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"}));
    let out = rt.sh_output(&b, "grep -c bind /proc/self/numa_maps || true");
    let n: usize = out.trim().parse().unwrap_or(0);
    assert!(n > 0, "no bind policy in numa_maps:\n{out}");
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "9999"}));
    let o = rt.run_fg(&b);
    o.fails();
    assert!(o.stderr.contains("memoryPolicy"), "{o}");
}
