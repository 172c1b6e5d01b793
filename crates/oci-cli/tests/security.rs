//! The known container-runtime escapes, each reproduced against berth-oci and shown
//! blocked. docs/security.md explains each guard.

mod attacks;
mod common;

use attacks::{copy_dynamic_deps, drain, full_pipe};
use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// CVE-2019-5736: a process in the container opens the runtime's binary through
/// /proc/PID/exe of a runtime process in its pid namespace (here init, still the
/// runtime while the container is `created`) and overwrites it.
#[test]
fn cve_2019_5736_runtime_binary_cannot_be_overwritten() {
    let before = fs::read(bin()).unwrap();
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
            // A read-only detached bind of the binary (shown as "/"), or a sealed copy.
            assert!(
                link == "/" || link.starts_with("/memfd:berth-runtime"),
                "init runs from {link:?}:\n{o}"
            );
        } else {
            // Non-dumpable init: not even the link is readable.
            assert_eq!(link, "", "/proc/1/exe readable:\n{o}");
            assert!(!o.out().contains("OPENED"), "opened /proc/1/exe:\n{o}");
        }
        rt.cmd(&["delete", "--force", &id]).ok();
    }
    assert!(
        before == fs::read(bin()).unwrap(),
        "the berth-oci binary changed"
    );
}

/// Which runtime process of a hostile container runs `/evil`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Victim {
    /// `exec ID /evil`: the runtime's exec process.
    Exec,
    /// The container's own process is `/evil`: init, at `start`.
    Init,
    /// A startContainer hook whose path (in the container) is `/evil`: a child of init.
    StartHook,
}

/// The victim container's capabilities.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Caps {
    /// The spec's default set.
    Default,
    /// Default plus CAP_SYS_PTRACE: the runtime's own processes are in reach.
    Ptrace,
}

/// A rootfs with what CVE-2019-5736 needs: a glibc image (the loader and libraries of
/// the host's runtime binary are in it, so that binary can run inside), the script
/// `/evil` whose `#!` line is `/proc/self/exe`, the attacker (tests/attacks/
/// exe_overwrite.c) and the hostile library (tests/attacks/evil_preload.c).
fn hostile_bundle(rt: &Runtime) -> Bundle {
    let b = rt.bundle();
    let root = b.rootfs();
    let built = attack_programs();
    fs::copy(&built.0, root.join("exe_overwrite")).unwrap();
    fs::copy(&built.1, root.join("evil.so")).unwrap();
    fs::write(root.join("evil"), "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(root.join("evil"), fs::Permissions::from_mode(0o755)).unwrap();
    copy_dynamic_deps(rt.bin(), &root);
    b
}

/// The attacker and the hostile library, built once per test binary.
fn attack_programs() -> &'static (std::path::PathBuf, std::path::PathBuf) {
    static BUILT: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("attacks-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        (
            attacks::build_exe_overwrite(&dir),
            attacks::build_evil_preload(&dir),
        )
    })
}

fn with_caps(b: &Bundle, caps: Caps) {
    if caps == Caps::Ptrace {
        b.edit(|c| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_SYS_PTRACE"));
            }
        });
    }
}

/// The container's root is the host's root (an identity map): the binary's owner may
/// write it, so only the guard stands in the way.
fn with_identity_userns(b: &Bundle) {
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
}

/// CVE-2019-5736 from another process, as the issue and the published exploit's first
/// variant describe it: when a runtime process in the container execve's `/evil`, the
/// kernel runs `/proc/self/exe` *of that process*, the host's runtime binary, inside the
/// container as an ordinary dumpable process. The attacker, another process of the
/// container, opens /proc/PID/exe of it with O_PATH, keeps the descriptor, and once
/// nothing executes the binary any more re-opens it for writing through
/// /proc/self/fd/N. The interpreter's stderr is a full pipe, so whatever the kernel
/// starts stays alive until the attacker has had its look.
///
/// The attacker runs in container A. For `Exec` A is the victim; for `Init` the victim
/// is container B, which shares A's root filesystem and joins A's pid namespace (as
/// containers of a Kubernetes pod do), so that the attacker outlives B's init. The
/// Runtime runs its own copy of berth-oci, which is what a working attack damages.
fn exe_attack_from_outside(victim: Victim, userns: bool, caps: Caps) {
    let rt = Runtime::with_own_copy();
    let before = fs::read(rt.bin()).unwrap();
    let a = hostile_bundle(&rt);
    let root = a.rootfs();
    // The attacker is A's own process: nothing of the runtime waits for it (a
    // foreground `exec` would keep the binary busy).
    a.args(&["/exe_overwrite", "20"]);
    with_caps(&a, caps);
    if userns && victim == Victim::Exec {
        with_identity_userns(&a);
    }
    let a_id = rt.new_id("exe-attacker");
    let a_out = rt.scratch().join("attacker");
    let mut create = rt.command(["create", "--bundle", s(a.path()), &a_id]);
    let f = fs::File::create(&a_out).unwrap();
    create.stdout(f.try_clone().unwrap()).stderr(f);
    let o = Spawned::spawn_with_stdio(create).wait(CMD_TIMEOUT);
    assert!(o.success(), "create:\n{o}");
    let (r, w) = full_pipe();
    let full_pipe_cmd = |mut c: std::process::Command| {
        c.stdout(w.try_clone().unwrap())
            .stderr(w.try_clone().unwrap());
        Spawned::spawn_with_stdio(c)
    };
    let victim_id = match victim {
        Victim::Exec => a_id.clone(),
        Victim::Init | Victim::StartHook => {
            let a_pid = rt.state(&a_id)["pid"].as_i64().unwrap();
            let b = rt.bundle();
            b.args(&["/evil"]).edit(|c| {
                c["root"]["path"] = json!(root);
                let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
                ns.retain(|n| n["type"] != "pid");
                ns.push(json!({"type": "pid", "path": format!("/proc/{a_pid}/ns/pid")}));
            });
            with_caps(&b, caps);
            if userns {
                with_identity_userns(&b);
            }
            let id = rt.new_id("exe-victim");
            // init writes to create's stdio: the full pipe.
            let o = full_pipe_cmd(rt.command(["create", "--bundle", s(b.path()), &id]))
                .wait(CMD_TIMEOUT);
            assert!(o.success(), "create:\n{o}");
            id
        }
    };
    let attacker_says = || fs::read_to_string(&a_out).unwrap_or_default();
    rt.start(&a_id).ok();
    assert!(
        wait_until(Duration::from_secs(10), || attacker_says()
            .contains("READY")),
        "the attacker did not start: {}",
        attacker_says()
    );
    let trigger = match victim {
        Victim::Exec => full_pipe_cmd(rt.command(["exec", &a_id, "/evil"])),
        _ => rt.spawn(&["start", &victim_id]),
    };
    drop(w);
    // The interpreter blocks on its stderr: the attacker has all the time it needs.
    let captured = wait_until(Duration::from_secs(10), || {
        attacker_says().contains("CAPTURED")
    });
    let drained = drain(r);
    let t = trigger.wait(CMD_TIMEOUT);
    fs::write(root.join("go"), "").unwrap();
    wait_until(Duration::from_secs(60), || attacker_says().contains("DONE"));
    let said = attacker_says();
    rt.cmd(&["delete", "--force", &victim_id]);
    rt.cmd(&["delete", "--force", &a_id]);
    let _ = drained.join();
    let report =
        format!("{victim:?} userns={userns} caps={caps:?}\ntrigger: {t}\nattacker:\n{said}");
    attacks::assert_binary_kept(rt.bin(), &before, &said, &report);
    assert!(
        said.contains("DONE"),
        "the attacker did not finish:\n{report}"
    );
    // The attack really ran: what the kernel started for `#!/proc/self/exe` was caught.
    assert!(captured, "the attacker caught nothing:\n{report}");
    assert!(said.contains("DENIED"), "no write was tried:\n{report}");
}

/// CVE-2019-5736 from inside the runtime's process, as the published exploit did it
/// for a hostile image: the image's library (here named in LD_PRELOAD) runs in the
/// runtime binary the kernel started for `/evil`, opens /proc/self/exe, and execs a
/// writer that waits until the binary is free and writes it. Works in a container with
/// its own pid namespace, where nothing else could outlive init.
fn exe_attack_from_inside(victim: Victim) {
    let rt = Runtime::with_own_copy();
    let before = fs::read(rt.bin()).unwrap();
    let b = hostile_bundle(&rt);
    let root = b.rootfs();
    let preload = json!("LD_PRELOAD=/evil.so");
    match victim {
        Victim::Init => b.args(&["/evil"]).edit(|c| {
            c["process"]["env"].as_array_mut().unwrap().push(preload);
        }),
        Victim::Exec => b.args(&["sleep", "1000"]),
        Victim::StartHook => b.args(&["sleep", "1000"]).edit(|c| {
            c["hooks"] = json!({"startContainer": [{"path": "/evil", "env": [preload]}]});
        }),
    };
    let id = rt.new_id("exe-inside");
    // What init and its hooks print after `create` returned lands here.
    let console = rt.scratch().join("console");
    let mut create = rt.command(["create", "--bundle", s(b.path()), &id]);
    let f = fs::File::create(&console).unwrap();
    create.stdout(f.try_clone().unwrap()).stderr(f);
    let o = Spawned::spawn_with_stdio(create).wait(CMD_TIMEOUT);
    assert!(o.success(), "create:\n{o}");
    let started = rt.start(&id);
    let trigger = match victim {
        Victim::Exec => rt.exec_with(&["-e", "LD_PRELOAD=/evil.so"], &id, &["/evil"]),
        _ => started,
    };
    // The writer (if the library ever ran) reports to /result; give it its time.
    let result_path = root.join("result");
    let captured = wait_until(Duration::from_secs(3), || result_path.exists());
    if captured {
        wait_until(Duration::from_secs(30), || {
            fs::read_to_string(&result_path).is_ok_and(|r| r.contains("DONE"))
        });
    }
    let result = fs::read_to_string(&result_path).unwrap_or_default();
    rt.cmd(&["delete", "--force", &id]);
    let console = fs::read_to_string(&console).unwrap_or_default();
    let report = format!("{victim:?}\ntrigger: {trigger}\nconsole: {console}\n/result:\n{result}");
    attacks::assert_binary_kept(rt.bin(), &before, &result, &report);
    // The attack really ran: the kernel started the interpreter, which was either
    // berth-exec (it refuses: the library never loads) or a sealed runtime.
    assert!(
        trigger.stderr.contains("berth-exec")
            || console.contains("berth-exec")
            || result.contains("DENIED"),
        "neither the exec helper nor a denied write:\n{report}"
    );
}

#[test]
fn cve_2019_5736_exec_of_a_proc_self_exe_script() {
    exe_attack_from_outside(Victim::Exec, false, Caps::Default);
}

#[test]
fn cve_2019_5736_exec_of_a_proc_self_exe_script_in_a_user_namespace() {
    exe_attack_from_outside(Victim::Exec, true, Caps::Default);
}

#[test]
fn cve_2019_5736_exec_of_a_proc_self_exe_script_with_cap_sys_ptrace() {
    exe_attack_from_outside(Victim::Exec, false, Caps::Ptrace);
}

#[test]
fn cve_2019_5736_init_in_a_shared_pid_namespace_runs_a_proc_self_exe_script() {
    exe_attack_from_outside(Victim::Init, false, Caps::Default);
}

#[test]
fn cve_2019_5736_init_in_a_shared_pid_namespace_with_cap_sys_ptrace() {
    exe_attack_from_outside(Victim::Init, false, Caps::Ptrace);
}

#[test]
fn cve_2019_5736_hostile_library_in_the_container_process() {
    exe_attack_from_inside(Victim::Init);
}

#[test]
fn cve_2019_5736_hostile_library_in_an_exec() {
    exe_attack_from_inside(Victim::Exec);
}

#[test]
fn cve_2019_5736_hostile_library_in_a_start_container_hook() {
    exe_attack_from_inside(Victim::StartHook);
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

/// CVE-2024-21626, the exploit's other two ways in: `exec --cwd /proc/self/fd/N`
/// (docker exec -w) and a program path through a leaked descriptor
/// (`/proc/self/fd/N/../../../bin/sh` as args[0], for the container process and for
/// exec). Neither may reach a host directory: a descriptor of a directory never
/// reaches a container process of ours, so every one of these fails or stays inside.
#[test]
fn cve_2024_21626_exec_cwd_and_program_through_leaked_fd() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id("leak");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    // Names in the host's / that the container's rootfs does not have.
    let container: Vec<String> = fs::read_dir(b.rootfs())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let host_only: Vec<String> = fs::read_dir("/")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !container.contains(n))
        .collect();
    assert!(!host_only.is_empty());
    let escaped = |out: &str| {
        out.split_whitespace()
            .any(|w| host_only.iter().any(|h| h == w))
    };
    let up = "../".repeat(12);
    for n in 3..13 {
        let o = rt.exec_with(
            &["--cwd", &format!("/proc/self/fd/{n}")],
            &id,
            &["sh", "-c", &format!("pwd; ls -a {up}")],
        );
        assert!(!escaped(o.out()), "exec --cwd through fd {n} escaped:\n{o}");
        let prog = format!("/proc/self/fd/{n}/{up}bin/busybox");
        let o = rt.exec(&id, &[&prog, "ls", "-a", "/"]);
        assert!(!o.success(), "exec ran {prog} through fd {n}:\n{o}");
        let b = rt.bundle();
        b.args(&[&prog, "ls", "-a", "/"]);
        let o = rt.run_fg(&b);
        assert!(
            !o.success(),
            "the container ran {prog} through fd {n}:\n{o}"
        );
    }
    rt.cmd(&["delete", "--force", &id]);
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
    // runc's wording, which callers match.
    assert!(
        o.stderr.contains("must be mounted on ordinary directory"),
        "{o}"
    );
    rt.assert_nothing_left(&id, Some(&b));
    // The same for /sys.
    let b = rt.bundle();
    let sys_dir = b.rootfs().join("sys");
    let _ = fs::remove_dir_all(&sys_dir);
    fs::create_dir_all(b.rootfs().join("fakesys")).unwrap();
    symlink("/fakesys", &sys_dir).unwrap();
    let id = rt.new_id("sys");
    let o = rt.create(&b, &id);
    o.fails();
    assert!(
        o.stderr.contains("must be mounted on ordinary directory"),
        "{o}"
    );
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

/// A seccomp notify agent, as the spec's listenerPath describes it: takes the listener
/// fd and the state, answers every notification with EXDEV. Returns the state message
/// and how many notifications it answered; gives up after 20 s without a connection.
fn seccomp_agent(listener: UnixListener) -> (String, usize) {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    #[derive(Default)]
    struct SeccompData {
        nr: i32,
        arch: u32,
        ip: u64,
        args: [u64; 6],
    }
    #[repr(C)]
    #[derive(Default)]
    struct Notif {
        id: u64,
        pid: u32,
        flags: u32,
        data: SeccompData,
    }
    #[repr(C)]
    struct Resp {
        id: u64,
        val: i64,
        error: i32,
        flags: u32,
    }
    const RECV: libc::c_ulong = 0xc050_2100; // SECCOMP_IOCTL_NOTIF_RECV
    const SEND: libc::c_ulong = 0xc018_2101; // SECCOMP_IOCTL_NOTIF_SEND
    listener.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(_) => return (String::new(), 0),
        }
    };
    stream.set_nonblocking(false).unwrap();
    let (msg, fd) = common::recv_fd_with_data(&stream).expect("the notify fd");
    let mut handled = 0;
    loop {
        let mut n = Notif::default();
        // SAFETY: the ioctl fills a seccomp_notif of the kernel's layout.
        if unsafe { libc::ioctl(fd.as_raw_fd(), RECV, &mut n) } < 0 {
            break; // the filter's process is gone
        }
        let mut r = Resp {
            id: n.id,
            val: 0,
            error: -libc::EXDEV,
            flags: 0,
        };
        // SAFETY: a seccomp_notif_resp of the kernel's layout.
        unsafe { libc::ioctl(fd.as_raw_fd(), SEND, &mut r) };
        handled += 1;
    }
    (String::from_utf8_lossy(&msg).into_owned(), handled)
}

/// SCMP_ACT_NOTIFY with a listenerPath on the host: the runtime hands the listener fd
/// (and the state) to the agent there, the agent's answers reach the container, and
/// the container goes on. With no agent listening, `run` fails naming listenerPath
/// instead of hanging.
#[test]
fn seccomp_notify_reaches_the_agent_and_the_container_proceeds() {
    let rt = Runtime::new();
    let sock = rt.scratch().join("agent.sock");
    let agent = {
        let l = UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || seccomp_agent(l))
    };
    let b = rt.bundle();
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "agent-metadata",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    b.edit(|c| c["linux"]["seccomp"] = profile.clone());
    b.readonly_root(false);
    b.sh("mkdir /tmp/x 2>&1; echo after");
    let o = rt.run_fg(&b);
    let (msg, handled) = agent.join().unwrap();
    o.ok();
    assert!(o.out().contains("after"), "{o}");
    assert!(
        o.out().contains("cross-device") || o.out().contains("Invalid cross"),
        "the agent's answer (EXDEV) did not reach the container:\n{o}"
    );
    assert!(handled >= 1, "no notification reached the agent");
    let v: serde_json::Value = serde_json::from_str(&msg).expect("the state message");
    assert_eq!(v["fds"], json!(["seccompFd"]), "{msg}");
    assert_eq!(v["metadata"], "agent-metadata", "{msg}");
    // No agent: an error naming the path, no hang.
    let gone = rt.scratch().join("nobody.sock");
    let b = rt.bundle();
    b.edit(|c| {
        let mut p = profile.clone();
        p["listenerPath"] = json!(gone);
        c["linux"]["seccomp"] = p;
    });
    b.sh("echo started");
    let o = rt.run_fg(&b);
    o.fails();
    o.stderr_mentions(&["listenerPath"]);
}

/// CVE-2022-29162: `runc exec --cap X` also put X in the process's inheritable set, so a
/// program with inheritable file capabilities (`setcap X+i`) gained X in its permitted set
/// when an unprivileged user in the container ran it: the kernel grants a file's
/// inheritable capabilities to a process that has them inheritable, and clears the ambient
/// set for such a program. Here the image holds busybox with `cap_net_raw,cap_dac_override+i`
/// and user 1000 runs it through `exec --cap CAP_NET_RAW`: the program gets nothing.
#[test]
fn cve_2022_29162_exec_cap_is_not_inheritable() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let caps = b.rootfs().join("caps");
    fs::create_dir(&caps).unwrap();
    let prog = caps.join("busybox");
    fs::copy(b.rootfs().join("bin/busybox"), &prog).unwrap();
    // security.capability, revision 2: no effective bit, permitted 0, inheritable
    // CAP_DAC_OVERRIDE (1) and CAP_NET_RAW (13).
    let mut v = Vec::new();
    for w in [0x0200_0000u32, 0, (1 << 1) | (1 << 13), 0, 0] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    let path = std::ffi::CString::new(prog.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: NUL-terminated strings and a buffer that outlive the call, which only reads them.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"security.capability".as_ptr(),
            v.as_ptr().cast(),
            v.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
    symlink("busybox", caps.join("cat")).unwrap();
    let c = rt.start_container(&b);
    let field = |o: &Output, name: &str| -> u64 {
        let l = o
            .out()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} in {o}"));
        u64::from_str_radix(l.trim(), 16).unwrap()
    };
    let net_raw = 1u64 << 13;
    let o = rt.exec_with(
        &["--cap", "CAP_NET_RAW", "--user", "1000:1000"],
        &c.id,
        &["/caps/cat", "/proc/self/status"],
    );
    o.ok();
    assert_eq!(
        field(&o, "CapPrm") & net_raw,
        0,
        "the program gained CAP_NET_RAW:\n{o}"
    );
    assert_eq!(field(&o, "CapEff") & net_raw, 0, "{o}");
    // And the process `exec --cap` starts keeps an empty inheritable set.
    let o = rt.exec_with(
        &["--cap", "CAP_NET_RAW"],
        &c.id,
        &["cat", "/proc/self/status"],
    );
    o.ok();
    assert_eq!(field(&o, "CapInh"), 0, "{o}");
    assert_ne!(
        field(&o, "CapEff") & net_raw,
        0,
        "--cap CAP_NET_RAW not granted:\n{o}"
    );
}

/// The host's `kernel.core_pattern`, put back on drop if a test changed it.
struct CorePattern(String);

impl Drop for CorePattern {
    fn drop(&mut self) {
        if fs::read_to_string("/proc/sys/kernel/core_pattern")
            .ok()
            .as_deref()
            != Some(&self.0)
        {
            let _ = fs::write("/proc/sys/kernel/core_pattern", &self.0);
        }
    }
}

/// CVE-2022-0811 ("cr8escape"): CRI-O let a pod set any sysctl, and `kernel.core_pattern`
/// is not namespaced: the runtime, writing it from inside the container, set the host's, so
/// the next crash anywhere ran the attacker's `|program` as the host's root. Here the
/// container asks for a core pattern that pipes to a host script and then crashes itself:
/// the runtime refuses the spec (naming the sysctl), the host's pattern is unchanged and the
/// script never runs. Namespaced sysctls (`process.rs`'s `sysctl` test) still work.
#[test]
fn cve_2022_0811_host_sysctl_is_refused() {
    let rt = Runtime::new();
    let saved = CorePattern(
        fs::read_to_string("/proc/sys/kernel/core_pattern")
            .unwrap()
            .trim_end_matches('\n')
            .to_string(),
    );
    let dir = tempfile::tempdir().unwrap();
    let escaped = dir.path().join("escaped");
    let payload = dir.path().join("payload");
    fs::write(
        &payload,
        format!("#!/bin/sh\ntouch {}\n", escaped.display()),
    )
    .unwrap();
    fs::set_permissions(&payload, fs::Permissions::from_mode(0o755)).unwrap();
    let b = rt.bundle();
    b.args(&["sh", "-c", "kill -SEGV $$"]).edit(|c| {
        c["linux"]["sysctl"] = json!({"kernel.core_pattern": format!("|{}", payload.display())});
        c["process"]["rlimits"] =
            json!([{"type": "RLIMIT_CORE", "hard": u64::MAX, "soft": u64::MAX}]);
    });
    let id = rt.new_id("cr8");
    let o = rt.cmd(&["run", "--bundle", s(b.path()), &id]);
    std::thread::sleep(Duration::from_millis(500));
    let now = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    assert_eq!(
        now.trim_end_matches('\n'),
        saved.0,
        "the host's core_pattern changed:\n{o}"
    );
    assert!(
        !escaped.exists(),
        "the host ran the container's core handler:\n{o}"
    );
    o.fails()
        .stderr_mentions(&["kernel.core_pattern", "not in a separate kernel namespace"]);
    // The same through a namespace that is not the container's: net.* in the host's.
    let b = rt.bundle();
    b.args(&["true"]).edit(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        let nss = c["linux"]["namespaces"].as_array_mut().unwrap();
        nss.retain(|n| n["type"] != "network");
    });
    let o = rt.cmd(&["run", "--bundle", s(b.path()), &rt.new_id("netsys")]);
    o.fails()
        .stderr_mentions(&["net.ipv4.ip_forward", "host's network namespace"]);
}
