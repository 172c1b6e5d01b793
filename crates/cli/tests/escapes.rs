//! Container escapes tried against the engine the way the real exploits did
//! them, each through `berth` as a user runs it with default settings.
//!
//! CVE-2019-5736 (runtime binary overwrite): the image is a glibc one (the
//! loader and libraries of the `berth` binary are in it, as any Debian-based
//! image has them) and holds `/evil`, a script whose `#!` line is
//! `/proc/self/exe`. When a process of ours execs it inside the container, the
//! kernel runs `/proc/self/exe` *of that process*. With the guard that is a
//! read-only view of `berth` (the monitor and what it clones) or the sealed
//! `berth-exec` helper (`berth exec`); without it, the host's `berth` binary.
//! The attacker's programs are crates/oci-cli/tests/attacks/*.c. Each test
//! runs its own copy of `berth`, which is what a working attack damages
//! (`BERTH_BIN=/path/to/berth` runs them against another build).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[path = "../../oci-cli/tests/attacks/mod.rs"]
mod attacks;
mod common;

const LINKS: &[&str] = &["sh", "sleep", "cat", "ls", "true"];

/// A temporary root with a hostile image, and a copy of `berth` to attack.
struct Hostile {
    t: tempfile::TempDir,
    root: PathBuf,
    berth: PathBuf,
    /// Bind-mounted at /out in the containers: the attackers' reports.
    out: PathBuf,
    /// The network namespace that plays the host for every `berth` run here.
    ns: common::TestNetns,
}

impl Hostile {
    fn new() -> Hostile {
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = t.path().join("root");
        let berth = t.path().join("berth");
        // BERTH_BIN: run the attacks against another build (to show they work
        // on one without the guard).
        let under_test = std::env::var_os("BERTH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth")));
        fs::copy(under_test, &berth).unwrap();
        let out = t.path().join("out");
        fs::create_dir(&out).unwrap();
        let attacker = attacks::build_exe_overwrite(t.path());
        let lib = attacks::build_evil_preload(t.path());

        let mut tar = common::RootfsTar::busybox(&["bin", "etc", "tmp", "out"], LINKS);
        tar.file("exe_overwrite", &fs::read(&attacker).unwrap(), 0o755)
            .file("evil.so", &fs::read(&lib).unwrap(), 0o755)
            .file("evil", b"#!/proc/self/exe\n", 0o755);
        // A glibc image: berth's loader and libraries at their paths.
        tar.libraries(&attacks::dynamic_deps(&berth));
        let tarball = t.path().join("hostile.tar");
        tar.write(&tarball);
        let h = Hostile {
            t,
            root,
            berth,
            out,
            ns: common::TestNetns::new("host"),
        };
        h.ok(&["import", tarball.to_str().unwrap(), "hostile:latest"]);
        h
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.ns.command(&self.berth);
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "berth {args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn volume(&self) -> String {
        format!("{}:/out", self.out.display())
    }

    fn logs(&self, c: &str) -> String {
        let o = self.run(&["logs", c]);
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    }

    fn result(&self) -> String {
        fs::read_to_string(self.out.join("result")).unwrap_or_default()
    }

    /// Kills the container's monitor and its output keeper, as a crash would:
    /// nothing executes the binary any more, and a writer waiting for that
    /// (ETXTBSY) goes ahead.
    fn kill_monitor(&self, id: &str) {
        for pid in common::monitor_and_keeper_pids(id) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }

    fn id(&self, name: &str) -> String {
        self.ok(&["inspect", "-f", "{{.Id}}", name])
            .trim()
            .to_string()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.run(&["rm", "-f", id]);
        }
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let base = self.t.path().to_string_lossy().into_owned();
        for l in mounts.lines().filter(|l| l.contains(&base)) {
            let target = l.split(' ').nth(4).unwrap_or("").to_string();
            let _ = Command::new("umount").arg("-l").arg(&target).status();
        }
    }
}

/// `berth exec C /evil` (docker's exec, the original exploit's trigger) while
/// the container's own process is the attacker, which holds /proc/PID/exe of
/// whatever the kernel started and tries to write it once it is free.
fn exec_attack_from_outside(extra: &[&str]) {
    let h = Hostile::new();
    let before = fs::read(&h.berth).unwrap();
    let v = h.volume();
    // --network none: these tests run berth on the machine's own network namespace.
    let mut args = vec![
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "a",
        "-v",
        &v,
        "-e",
        "EXE_GO=/out/go",
    ];
    args.extend_from_slice(extra);
    // Its report goes to /out: once the monitor is killed (below), the
    // container's stdout leads nowhere.
    args.extend_from_slice(&[
        "hostile",
        "sh",
        "-c",
        "/exe_overwrite 30 >/out/attacker 2>&1",
    ]);
    h.ok(&args);
    let attacker = || fs::read_to_string(h.out.join("attacker")).unwrap_or_default();
    assert!(
        common::wait_until(Duration::from_secs(10), || attacker().contains("READY")),
        "the attacker did not start: {}",
        h.logs("a")
    );
    let (r, w) = attacks::full_pipe();
    let mut trigger = h.cmd(&["exec", "a", "/evil"]);
    trigger
        .stdout(w.try_clone().unwrap())
        .stderr(w.try_clone().unwrap());
    let child = trigger.spawn().unwrap();
    // Only the trigger may hold the write end, or the drain never ends.
    drop(trigger);
    drop(w);
    let captured = common::wait_until(Duration::from_secs(10), || attacker().contains("CAPTURED"));
    let drain = attacks::drain(r);
    let t = child.wait_with_output().unwrap();
    // The monitor keeps berth busy (ETXTBSY) while it lives: a crash ends that.
    let id = h.id("a");
    h.kill_monitor(&id);
    fs::write(h.out.join("go"), "").unwrap();
    common::wait_until(Duration::from_secs(30), || attacker().contains("DONE"));
    let said = attacker();
    let _ = h.run(&["rm", "-f", "a"]);
    let _ = drain.join();
    let report = format!("{extra:?}\ntrigger: {t:?}\nattacker:\n{said}");
    attacks::assert_binary_kept(&h.berth, &before, &said, &report);
    assert!(
        said.contains("DONE"),
        "the attacker did not finish:\n{report}"
    );
    assert!(captured, "the attacker caught nothing:\n{report}");
    assert!(said.contains("DENIED"), "no write was tried:\n{report}");
}

#[test]
fn cve_2019_5736_exec_of_a_proc_self_exe_script() {
    exec_attack_from_outside(&[]);
}

#[test]
fn cve_2019_5736_exec_of_a_proc_self_exe_script_with_cap_sys_ptrace() {
    exec_attack_from_outside(&["--cap-add", "SYS_PTRACE"]);
}

/// The hostile image's library runs inside whatever the kernel started for
/// `/evil`, opens /proc/self/exe and execs a writer that waits until the
/// binary is free (here: the monitor killed) and writes it.
fn attack_from_inside(container_process: bool) {
    let h = Hostile::new();
    let before = fs::read(&h.berth).unwrap();
    let v = h.volume();
    let env = ["-e", "LD_PRELOAD=/evil.so", "-e", "EVIL_RESULT=/out/result"];
    let trigger = if container_process {
        let mut args = vec!["run", "-d", "--network", "none", "--name", "a", "-v", &v];
        args.extend_from_slice(&env);
        args.extend_from_slice(&["hostile", "/evil"]);
        h.run(&args)
    } else {
        h.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "a",
            "-v",
            &v,
            "hostile",
            "sleep",
            "1000",
        ]);
        let mut args = vec!["exec"];
        args.extend_from_slice(&env);
        args.extend_from_slice(&["a", "/evil"]);
        h.run(&args)
    };
    let captured = common::wait_until(Duration::from_secs(5), || h.result().contains("CAPTURED"));
    if captured {
        let id = h.id("a");
        h.kill_monitor(&id);
        common::wait_until(Duration::from_secs(30), || h.result().contains("DONE"));
    }
    let said = h.result();
    let logs = h.logs("a");
    let _ = h.run(&["rm", "-f", "a"]);
    let report = format!("trigger: {trigger:?}\nlogs: {logs}\n/out/result:\n{said}");
    attacks::assert_binary_kept(&h.berth, &before, &said, &report);
    // The attack really ran: the kernel started the interpreter, which was
    // berth-exec (it refuses; the library never loads) or a sealed berth.
    let stderr = String::from_utf8_lossy(&trigger.stderr);
    assert!(
        stderr.contains("berth-exec") || logs.contains("berth-exec") || said.contains("DENIED"),
        "neither the exec helper nor a denied write:\n{report}"
    );
}

#[test]
fn cve_2019_5736_container_process_with_a_hostile_library() {
    attack_from_inside(true);
}

#[test]
fn cve_2019_5736_exec_with_a_hostile_library() {
    attack_from_inside(false);
}
