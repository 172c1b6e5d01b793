//! The known container-runtime escapes, each reproduced against berth-oci and shown
//! blocked. docs/security.md explains each guard.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn sha(path: &Path) -> Vec<u8> {
    let mut f = fs::File::open(path).unwrap();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

/// CVE-2019-5736: a process in the container opens the runtime's binary through
/// /proc/PID/exe of a runtime process in its pid namespace (here init, still the
/// runtime while the container is `created`) and overwrites it.
#[test]
fn cve_2019_5736_runtime_binary_cannot_be_overwritten() {
    let before = sha(&bin());
    for with_ptrace in [false, true] {
        let rt = Runtime::new();
        let b = rt.bundle();
        b.args(&["sleep", "1000"]);
        if with_ptrace {
            // A container allowed to ptrace could open /proc/1/exe: the runtime then
            // runs from a sealed memfd copy.
            b.edit(|c| {
                for set in ["bounding", "effective", "permitted"] {
                    c["process"]["capabilities"][set]
                        .as_array_mut()
                        .unwrap()
                        .push(json!("CAP_SYS_PTRACE"));
                }
            });
        }
        let id = rt.new_id("exe");
        rt.create(&b, &id).ok();
        let o = rt.exec(
            &id,
            &[
                "sh",
                "-c",
                "echo link=$(readlink /proc/1/exe); \
                 if echo '#!/bin/sh' >> /proc/1/exe; then echo WROTE; fi; \
                 if (exec 3</proc/1/exe); then echo OPENED; fi; true",
            ],
        );
        o.ok();
        assert!(!o.out().contains("WROTE"), "wrote the runtime binary:\n{o}");
        let link = o
            .out()
            .lines()
            .find_map(|l| l.strip_prefix("link="))
            .unwrap_or("");
        if with_ptrace {
            assert!(
                link.starts_with("/memfd:berth-oci"),
                "init runs from {link:?}:\n{o}"
            );
        } else {
            // Non-dumpable init: not even the link is readable.
            assert_eq!(link, "", "/proc/1/exe readable:\n{o}");
            assert!(!o.out().contains("OPENED"), "opened /proc/1/exe:\n{o}");
        }
        rt.cmd(&["delete", "--force", &id]).ok();
    }
    assert!(before == sha(&bin()), "the berth-oci binary changed");
}

/// CVE-2024-21626: process.cwd set to /proc/self/fd/N to reach a host directory
/// through a descriptor leaked into init.
#[test]
fn cve_2024_21626_cwd_through_leaked_fd() {
    let rt = Runtime::new();
    for n in 3..10 {
        let b = rt.bundle();
        b.cwd(&format!("/proc/self/fd/{n}"));
        b.sh("pwd; ls -a ..");
        let o = rt.run_fg(&b);
        if o.success() {
            assert!(
                !o.out().contains("unreachable"),
                "cwd outside the root (fd {n}):\n{o}"
            );
            // Whatever it is, it is inside the container: never the host's /.
            assert!(
                !o.out().contains("vmlinuz"),
                "host directory reached (fd {n}):\n{o}"
            );
        } else {
            assert!(
                o.stderr.contains("cwd") || o.stderr.contains("process.cwd"),
                "fd {n}: failed without naming the cwd:\n{o}"
            );
        }
    }
}

/// No descriptor of the runtime reaches the container process.
#[test]
fn no_runtime_fds_leak_into_the_container() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.sh("ls /proc/self/fd");
    let o = rt.run_fg(&b);
    o.ok();
    let fds: Vec<&str> = o.out().split_whitespace().collect();
    // 0, 1, 2 and the one ls opened to read the directory.
    assert!(fds.len() <= 4, "descriptors leaked: {fds:?}");
}

/// CVE-2025-31133: maskedPaths bind /dev/null over sensitive files; an image that
/// makes /dev/null a symlink to a procfs file would turn masking into exposing it.
#[test]
fn cve_2025_31133_dev_null_symlink_is_not_used_for_masking() {
    let rt = Runtime::new();
    let core_pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    // Image /dev without a /dev mount: berth-oci replaces the planted node.
    let b = rt.bundle();
    b.remove_mount("/dev");
    b.remove_mount("/dev/pts");
    b.remove_mount("/dev/shm");
    b.remove_mount("/dev/mqueue");
    b.readonly_root(false);
    let dev = b.rootfs().join("dev");
    fs::create_dir_all(&dev).unwrap();
    let _ = fs::remove_file(dev.join("null"));
    symlink("/proc/sys/kernel/core_pattern", dev.join("null")).unwrap();
    b.sh("ls -l /dev/null; echo x > /proc/kcore && echo KCORE-WRITABLE; true");
    let o = rt.run_fg(&b);
    o.ok();
    assert!(o.out().starts_with('c'), "/dev/null is not a device:\n{o}");
    assert!(!o.out().contains("KCORE-WRITABLE"), "{o}");
    // /dev bind-mounted from a directory whose null is a symlink: refused.
    let b = rt.bundle();
    let fake = rt.scratch();
    symlink("/proc/sys/kernel/core_pattern", fake.join("null")).unwrap();
    b.remove_mount("/dev/pts");
    b.remove_mount("/dev/shm");
    b.remove_mount("/dev/mqueue");
    b.edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                *m = json!({"destination": "/dev", "type": "bind", "source": s(&fake),
                            "options": ["rbind"]});
            }
        }
    });
    let id = rt.new_id("nul");
    let o = rt.create(&b, &id);
    o.fails();
    assert!(o.stderr.contains("/dev/null"), "{o}");
    rt.assert_nothing_left(&id, Some(&b));
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_pattern
    );
}

/// CVE-2025-52565: /dev/console planted as a symlink so that the console bind
/// mount lands on a file the attacker chose.
#[test]
fn cve_2025_52565_console_symlink_is_refused() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.remove_mount("/dev");
    b.remove_mount("/dev/shm");
    b.remove_mount("/dev/mqueue");
    b.readonly_root(false);
    b.terminal(true);
    let dev = b.rootfs().join("dev");
    fs::create_dir_all(&dev).unwrap();
    symlink("/proc/sysrq-trigger", dev.join("console")).unwrap();
    let sock = rt.scratch().join("console.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let id = rt.new_id("con");
    let o = rt.cmd(&[
        "create",
        "--bundle",
        s(b.path()),
        "--console-socket",
        s(&sock),
        &id,
    ]);
    o.fails();
    assert!(o.stderr.contains("/dev/console"), "{o}");
    rt.assert_nothing_left(&id, Some(&b));
}

/// CVE-2025-52881: a runtime write meant for /proc/self/... redirected by a mount
/// over the target (here a bind mount over /proc/self/oom_score_adj).
#[test]
fn cve_2025_52881_proc_write_through_overmount_is_refused() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let decoy = rt.scratch().join("decoy");
    fs::write(&decoy, "untouched").unwrap();
    b.add_mount(
        json!({"destination": "/proc/self/oom_score_adj", "type": "bind",
                       "source": s(&decoy), "options": ["bind"]}),
    );
    b.edit(|c| c["process"]["oomScoreAdj"] = json!(500));
    b.sh("true");
    let o = rt.run_fg(&b);
    o.fails();
    assert!(o.stderr.contains("oom_score_adj"), "{o}");
    assert_eq!(fs::read_to_string(&decoy).unwrap(), "untouched");
}

/// CVE-2021-30465: a mount destination that is (or is swapped to) a symlink
/// pointing out of the rootfs. Lookups stay inside the rootfs and the mount
/// target is the descriptor that was checked, so a racing swap cannot redirect it.
#[test]
fn cve_2021_30465_mount_destination_symlink_race() {
    let rt = Runtime::new();
    let victim = rt.scratch();
    fs::write(victim.join("host-file"), "host").unwrap();
    let src = rt.scratch();
    fs::write(src.join("payload"), "payload").unwrap();
    let b = rt.bundle();
    let vol = b.rootfs().join("vol");
    fs::create_dir_all(&vol).unwrap();
    b.add_mount(
        json!({"destination": "/vol/target", "type": "bind", "source": s(&src),
                       "options": ["rbind", "ro"]}),
    );
    b.sh("cat /vol/target/payload 2>/dev/null; ls /etc >/dev/null; echo ran");
    // Swap /vol/target between a directory and a symlink that climbs out.
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        let vol = vol.clone();
        let escape = format!("../../../../../../../../../..{}", victim.display());
        std::thread::spawn(move || {
            let t = vol.join("target");
            let tmp = vol.join("target.tmp");
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::create_dir(&tmp);
                let _ = fs::rename(&tmp, &t);
                let _ = fs::remove_dir(&t);
                let _ = symlink(&escape, &tmp);
                let _ = fs::rename(&tmp, &t);
                let _ = fs::remove_file(&t);
            }
        })
    };
    for _ in 0..15 {
        let o = rt.run_fg(&b);
        assert!(!o.out().contains("host"), "host file reached:\n{o}");
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();
    // The host directory the symlink pointed at never got the mount.
    assert_eq!(
        fs::read_to_string(victim.join("host-file")).unwrap(),
        "host"
    );
    assert!(!victim.join("payload").exists());
    // Deterministic half: the symlink is resolved inside the rootfs.
    let _ = fs::remove_dir_all(vol.join("target"));
    let _ = fs::remove_file(vol.join("target"));
    symlink(
        format!("../../../../../../../..{}", victim.display()),
        vol.join("target"),
    )
    .unwrap();
    b.sh(&format!("cat {}/payload", victim.display()));
    let o = rt.run_fg(&b);
    o.ok();
    assert_eq!(o.out().trim(), "payload");
    assert!(!victim.join("payload").exists(), "mount escaped the rootfs");
}

/// CVE-2019-16884: /proc mounted over a symlink the image planted (so later writes to
/// /proc/self/attr/... go to an attacker's file).
#[test]
fn cve_2019_16884_proc_on_a_symlink_is_refused() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let proc_dir = b.rootfs().join("proc");
    let _ = fs::remove_dir_all(&proc_dir);
    fs::create_dir_all(b.rootfs().join("fakeproc")).unwrap();
    symlink("/fakeproc", &proc_dir).unwrap();
    let id = rt.new_id("proc");
    let o = rt.create(&b, &id);
    o.fails();
    assert!(o.stderr.contains("symlink"), "{o}");
    rt.assert_nothing_left(&id, Some(&b));
}

/// Unknown capabilities are an error (config-linux.md: MUST), and an LSM the host
/// lacks is refused rather than silently dropped.
#[test]
fn unknown_capability_and_missing_lsm_are_errors() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["process"]["capabilities"]["bounding"] = json!(["CAP_NOT_A_CAP"]));
    let id = rt.new_id("cap");
    let o = rt.create(&b, &id);
    o.fails();
    assert!(o.stderr.contains("CAP_NOT_A_CAP"), "{o}");
    rt.assert_nothing_left(&id, Some(&b));
    if !Path::new("/sys/module/apparmor/parameters/enabled").exists() {
        let b = rt.bundle();
        b.edit(|c| c["process"]["apparmorProfile"] = json!("docker-default"));
        let o = rt.create(&b, &id);
        o.fails();
        assert!(o.stderr.contains("AppArmor"), "{o}");
        rt.assert_nothing_left(&id, Some(&b));
    }
}

/// Seccomp: a denied syscall returns the configured errno; unknown syscall names are
/// skipped; an unknown action is an error.
#[test]
fn seccomp_profile_is_enforced() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat", "no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO",
                 "errnoRet": 1},
                {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]}
            ]
        });
    });
    b.readonly_root(false);
    b.sh("mkdir /tmp/x 2>&1; touch /tmp/f; chmod 777 /tmp/f 2>&1; chmod 644 /tmp/f && echo chmod644=ok");
    // Compiled once, then loaded from the runtime's cache; a damaged cache
    // entry is compiled again.
    let cache = rt.root().join("@seccomp");
    for round in 0..3 {
        let o = rt.run_fg(&b);
        o.ok();
        assert!(
            o.out().contains("Operation not permitted"),
            "round {round}: {o}"
        );
        assert!(o.out().contains("chmod644=ok"), "round {round}: {o}");
        let entries: Vec<_> = std::fs::read_dir(&cache)
            .expect("the compiled profile is cached")
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        if round == 1 {
            std::fs::write(&entries[0], b"12345").unwrap();
        }
    }
    let b = rt.bundle();
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_DANCE"});
    });
    let id = rt.new_id("sc");
    let o = rt.create(&b, &id);
    o.fails();
    assert!(o.stderr.contains("SCMP_ACT_DANCE"), "{o}");
    rt.assert_nothing_left(&id, Some(&b));
}

/// Capabilities: dropped ones are gone from every set, no_new_privs is set.
#[test]
fn capabilities_and_no_new_privs() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.sh("grep -E '^(CapBnd|CapEff|CapPrm|NoNewPrivs)' /proc/self/status");
    let o = rt.run_fg(&b);
    o.ok();
    // runc spec default: AUDIT_WRITE, KILL, NET_BIND_SERVICE = 0x20000420.
    assert!(o.out().contains("CapBnd:\t0000000020000420"), "{o}");
    assert!(o.out().contains("CapEff:\t0000000020000420"), "{o}");
    assert!(o.out().contains("NoNewPrivs:\t1"), "{o}");
    // Without CAP_SYS_ADMIN, mounting fails inside.
    b.sh("mount -t tmpfs none /tmp 2>&1 || echo denied");
    let o = rt.run_fg(&b);
    assert!(o.out().contains("denied"), "{o}");
    let _ = Duration::from_secs(0);
}
