//! Berth's default seccomp profile against Docker's, syscall by syscall (issue 19).
//!
//! Docker's profile is read from Debian's `golang-github-docker-docker-dev` package (moby
//! 20.10's `profiles/seccomp/default.json`), which `scripts/test.sh` fetches and unpacks
//! (`BERTH_DOCKER_SECCOMP` names the file); nothing of it is copied into this repository. For
//! each set of capabilities below, every syscall either profile names gets the same rules on
//! x86_64 (action, errno, argument conditions) in both, except the differences listed in
//! `DELIBERATE`, each explained in `docs/security.md` § Seccomp against Docker's profile.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Docker's default capabilities (moby `oci/caps/defaults.go`), which Berth's containers get.
use berth_engine::spec::DEFAULT_CAPS as DOCKER_CAPS;

/// (syscall, docker 20.10's rules / Berth's): the differences kept on purpose, in any of the
/// capability sets; `docs/security.md` § Seccomp against Docker's profile says why.
const DELIBERATE: &[(&str, &str)] = &[
    // Newer than moby 20.10's file; allowed by Docker 25+'s profile, as by Berth's.
    (
        "cachestat",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "clock_settime64",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "fchmodat2",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "futex_requeue",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "futex_wait",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "futex_wake",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "map_shadow_stack",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "pkey_alloc",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "pkey_free",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "pkey_mprotect",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "set_mempolicy_home_node",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    // Reading or writing another process's memory is checked like ptrace (PTRACE_MODE_ATTACH)
    // since Linux 4.8, which the profile already allows; Docker 25+ allows these too.
    (
        "process_vm_readv",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    (
        "process_vm_writev",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    // Harmless without open_by_handle_at (which stays refused); systemd asks for it.
    (
        "name_to_handle_at",
        "docker default errno=1 / berth SCMP_ACT_ALLOW errno=0 []",
    ),
    // Stricter: the "shocker" escape's syscall stays refused even with CAP_DAC_READ_SEARCH.
    (
        "open_by_handle_at",
        "docker SCMP_ACT_ALLOW errno=0 [] / berth default errno=1",
    ),
    // Stricter, as Docker 25+: io_uring bypasses seccomp for the operations it runs.
    (
        "io_uring_enter",
        "docker SCMP_ACT_ALLOW errno=0 [] / berth default errno=1",
    ),
    (
        "io_uring_register",
        "docker SCMP_ACT_ALLOW errno=0 [] / berth default errno=1",
    ),
    (
        "io_uring_setup",
        "docker SCMP_ACT_ALLOW errno=0 [] / berth default errno=1",
    ),
    // Stricter, as Docker 23+: no AF_VSOCK sockets (a way to the host on VMs).
    (
        "socket",
        "docker SCMP_ACT_ALLOW errno=0 [] / berth SCMP_ACT_ALLOW errno=0 [arg0 SCMP_CMP_NE 40 0]",
    ),
];

fn kernel() -> (u32, u32) {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = r
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a Docker rule applies to an amd64 container with `caps` (moby's
/// `profiles/seccomp` setup: every included cap present, no excluded one, the arch
/// included and not excluded, the kernel at least `minKernel`).
fn docker_rule_applies(rule: &Value, caps: &BTreeSet<String>) -> bool {
    let inc = &rule["includes"];
    let exc = &rule["excludes"];
    let arches = strings(&inc["arches"]);
    if !arches.is_empty() && !arches.iter().any(|a| a == "amd64") {
        return false;
    }
    if strings(&exc["arches"]).iter().any(|a| a == "amd64") {
        return false;
    }
    if !strings(&inc["caps"]).iter().all(|c| caps.contains(c)) {
        return false;
    }
    if strings(&exc["caps"]).iter().any(|c| caps.contains(c)) {
        return false;
    }
    if let Some(min) = inc["minKernel"].as_str() {
        let mut it = min.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let want = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        if kernel() < want {
            return false;
        }
    }
    true
}

/// A rule's effect, as text: action, errno, and its argument conditions.
fn effect(rule: &Value, default_errno: i64) -> String {
    let action = rule["action"].as_str().unwrap_or("?");
    let errno = if action == "SCMP_ACT_ERRNO" {
        rule["errnoRet"].as_i64().unwrap_or(default_errno)
    } else {
        0
    };
    let mut args: Vec<String> = rule["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "arg{} {} {} {}",
                        x["index"].as_u64().unwrap_or(0),
                        x["op"].as_str().unwrap_or("?"),
                        x["value"].as_u64().unwrap_or(0),
                        x["valueTwo"].as_u64().unwrap_or(0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    args.sort();
    format!("{action} errno={errno} [{}]", args.join(", "))
}

/// Syscall name -> the effects of every rule that names it.
fn table(rules: &[Value], default_errno: i64) -> BTreeMap<String, BTreeSet<String>> {
    let mut t: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rules {
        for n in strings(&r["names"]) {
            t.entry(n).or_default().insert(effect(r, default_errno));
        }
    }
    t
}

#[test]
fn default_profile_matches_dockers_syscall_by_syscall() {
    let path = std::env::var("BERTH_DOCKER_SECCOMP")
        .unwrap_or_else(|_| "/var/cache/berth-test/docker-seccomp-default.json".into());
    let Ok(text) = std::fs::read_to_string(&path) else {
        panic!(
            "Docker's default seccomp profile is not at {path}: scripts/test.sh fetches it \
             (golang-github-docker-docker-dev); set BERTH_DOCKER_SECCOMP to its path"
        );
    };
    let docker: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(docker["defaultAction"], "SCMP_ACT_ERRNO");
    let docker_errno = docker["defaultErrnoRet"]
        .as_i64()
        .unwrap_or(libc::EPERM as i64);
    let sets: Vec<(&str, Vec<&str>)> = vec![
        ("docker default caps", DOCKER_CAPS.to_vec()),
        ("+CAP_SYS_ADMIN", [DOCKER_CAPS, &["CAP_SYS_ADMIN"]].concat()),
        (
            "+CAP_SYS_PTRACE",
            [DOCKER_CAPS, &["CAP_SYS_PTRACE"]].concat(),
        ),
        (
            "+CAP_SYS_TIME +CAP_SYS_NICE +CAP_SYS_MODULE +CAP_SYS_BOOT +CAP_SYS_RAWIO",
            [
                DOCKER_CAPS,
                &[
                    "CAP_SYS_TIME",
                    "CAP_SYS_NICE",
                    "CAP_SYS_MODULE",
                    "CAP_SYS_BOOT",
                    "CAP_SYS_RAWIO",
                ],
            ]
            .concat(),
        ),
        (
            "+CAP_DAC_READ_SEARCH +CAP_SYS_PACCT +CAP_SYS_TTY_CONFIG +CAP_SYSLOG",
            [
                DOCKER_CAPS,
                &[
                    "CAP_DAC_READ_SEARCH",
                    "CAP_SYS_PACCT",
                    "CAP_SYS_TTY_CONFIG",
                    "CAP_SYSLOG",
                ],
            ]
            .concat(),
        ),
    ];
    let mut differences = BTreeSet::new();
    for (_label, caps) in &sets {
        let capset: BTreeSet<String> = caps.iter().map(|c| c.to_string()).collect();
        let docker_rules: Vec<Value> = docker["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| docker_rule_applies(r, &capset))
            .cloned()
            .collect();
        let owned: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        let ours = berth_engine::seccomp::default_profile(&owned).unwrap();
        let ours: Value = serde_json::to_value(&ours).unwrap();
        assert_eq!(ours["defaultAction"], "SCMP_ACT_ERRNO");
        let our_errno = ours["defaultErrnoRet"]
            .as_i64()
            .unwrap_or(libc::EPERM as i64);
        assert_eq!(our_errno, docker_errno, "default errno");
        let d = table(&docker_rules, docker_errno);
        let o = table(ours["syscalls"].as_array().unwrap(), our_errno);
        let names: BTreeSet<&String> = d.keys().chain(o.keys()).collect();
        let default = format!("default errno={docker_errno}");
        for n in names {
            let de = d
                .get(n)
                .map(|s| s.iter().cloned().collect::<Vec<_>>().join(" | "));
            let oe = o
                .get(n)
                .map(|s| s.iter().cloned().collect::<Vec<_>>().join(" | "));
            if de != oe {
                differences.insert(format!(
                    "{n}: docker {} / berth {}",
                    de.unwrap_or_else(|| default.clone()),
                    oe.unwrap_or_else(|| default.clone())
                ));
            }
        }
    }
    let expected: BTreeSet<String> = DELIBERATE
        .iter()
        .map(|(n, how)| format!("{n}: {how}"))
        .collect();
    let unexplained: Vec<&String> = differences.difference(&expected).collect();
    let gone: Vec<&String> = expected.difference(&differences).collect();
    assert!(
        unexplained.is_empty() && gone.is_empty(),
        "differences from Docker's profile not listed as deliberate: {unexplained:#?}\n\
         listed but no longer different: {gone:#?}"
    );
}
