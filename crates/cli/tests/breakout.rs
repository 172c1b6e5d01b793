//! Engine-level escape attempts (issue 19): containers started by `berth run` with default
//! settings try the first step of each known way out, and every one must fail.
//!
//! The attempts are crates/oci-cli/tests/attacks/breakout_probe.c (built with `cc -static`):
//! user and mount namespaces, mounts and the masks over /proc, a cgroup v1 hierarchy of one's
//! own for `release_agent` (CVE-2022-0492), `setns` into init's namespaces, module loading,
//! keyrings, bpf, perf, the "shocker" `open_by_handle_at`, io_uring, vsock, reboot, swap, port
//! I/O, the clock, raw block and memory devices, host files through /proc and /sys, signals
//! and ptrace to a process outside, and the host's abstract unix sockets. A control run
//! with `--privileged --network host` shows the probe does see a way out where there is one,
//! so a blocked line means a guard, not a broken probe.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Stdio};

mod common;
use common::{BusyboxRoot, RootfsTar, ok};

#[path = "../../oci-cli/tests/attacks/mod.rs"]
mod attacks;

/// A busybox root (`common::BusyboxRoot`) and the probe built beside it.
struct Fixture {
    b: BusyboxRoot,
    probe: PathBuf,
}

impl std::ops::Deref for Fixture {
    type Target = BusyboxRoot;
    fn deref(&self) -> &BusyboxRoot {
        &self.b
    }
}

impl Fixture {
    fn new() -> Fixture {
        let b = BusyboxRoot::new(
            &["bin", "etc", "tmp", "data"],
            &["sh", "true", "rm", "mkdir", "ln", "echo", "sleep"],
        );
        let probe = attacks::build_breakout_probe(&b.dir);
        Fixture { b, probe }
    }

    /// The probe listening on `@name` in the namespace that plays the host.
    fn listener(&self, name: &str) -> Child {
        let mut c = self
            .ns
            .command(&self.probe)
            .args(["listen", name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(c.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "listening\n");
        c
    }

    fn probe(&self, extra: &[&str], name: &str) -> String {
        let vol = format!("{}:/probe:ro", self.probe.display());
        let pid = std::process::id().to_string();
        let mut a = vec!["run", "--rm", "-v", &vol];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "/probe", &pid, name]);
        ok(&self.root, &a)
    }
}

const ATTEMPTS: usize = 29;

#[test]
fn a_default_container_finds_every_way_out_blocked() {
    let f = Fixture::new();
    let name = format!("berth-breakout-{}", std::process::id());
    let mut l = f.listener(&name);
    let out = f.probe(&["--network", "none"], &name);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), ATTEMPTS, "{out}");
    let allowed: Vec<&&str> = lines.iter().filter(|l| !l.contains(": blocked")).collect();
    assert!(
        allowed.is_empty(),
        "ways out that were not blocked: {allowed:#?}"
    );
    // The same on the default bridge network (its own namespace too).
    let out = f.probe(&[], &name);
    assert!(!out.contains("ALLOWED"), "{out}");

    // Control: with --privileged --network host the probe does get out where the guards
    // are off, so the lines above are the guards' work.
    let out = f.probe(&["--privileged", "--network", "host"], &name);
    for way in [
        "mount tmpfs: ALLOWED",
        "unshare(CLONE_NEWNS): ALLOWED",
        "keyctl(JOIN_SESSION_KEYRING): ALLOWED",
        "setns to init's mount ns: ALLOWED",
        "write /proc/sys/kernel/core_pattern: ALLOWED",
        "connect @host-abstract-socket: ALLOWED",
    ] {
        assert!(out.contains(way), "{way} in\n{out}");
    }
    let _ = l.kill();
    let _ = l.wait();
}

/// CVE-2018-15664: `docker cp` resolved a container path and then used it while the
/// container swapped a directory on that path for a symlink to a host path, so the copy read
/// (or wrote) the host's file. Here the container flips /data/x between a directory and a
/// symlink to a host directory's absolute path as fast as it can while `berth cp` copies out
/// of it and into it: the host's file is never read and nothing is ever written beside it.
/// Both states are seen by the copies (some find the container's file, some find nothing),
/// so the race did happen.
#[test]
fn cve_2018_15664_cp_symlink_exchange_race() {
    let f = Fixture::new();
    let host_dir = f.dir.join("host-secret");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("secret"), "HOST\n").unwrap();
    let p = host_dir.display().to_string();
    let flip = format!(
        "while :; do rm -rf /data/x; mkdir /data/x; echo CONTAINER > /data/x/secret; \
         rm -rf /data/x; ln -s {p} /data/x; done"
    );
    f_ok(
        &f,
        &[
            "run",
            "-d",
            "--name",
            "flipper",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            &flip,
        ],
    );
    let out = f.dir.join("out");
    let input = f.dir.join("input");
    std::fs::write(&input, "WRITTEN\n").unwrap();
    let (mut got_container, mut got_nothing) = (0, 0);
    for i in 0..150 {
        let _ = std::fs::remove_file(&out);
        let o = common::berth(
            &f.root,
            &["cp", "flipper:/data/x/secret", out.to_str().unwrap()],
        );
        if o.status.success() {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            assert_ne!(
                text, "HOST\n",
                "attempt {i}: the host's file was copied out"
            );
            if text == "CONTAINER\n" {
                got_container += 1;
            }
        } else {
            got_nothing += 1;
        }
        let _ = common::berth(
            &f.root,
            &["cp", input.to_str().unwrap(), "flipper:/data/x/written"],
        );
        let names: Vec<String> = std::fs::read_dir(&host_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["secret"], "attempt {i}: a copy landed on the host");
    }
    assert_eq!(
        std::fs::read_to_string(host_dir.join("secret")).unwrap(),
        "HOST\n"
    );
    assert!(
        got_container > 0 && got_nothing > 0,
        "the race was not exercised: {got_container} copies found the directory, \
         {got_nothing} found the symlink"
    );
}

/// A hostile image whose paths point out of its root filesystem through symlinks: its
/// WORKDIR, a VOLUME and /etc/passwd lead (as host paths) to a host directory and a host
/// passwd file. Each is resolved inside the container's root: the container's working
/// directory and volume are its own, files it writes there stay off the host, and `--user`
/// names are not looked up in the host's file.
#[test]
fn a_hostile_images_symlinks_stay_inside_its_root() {
    let f = Fixture::new();
    let host_dir = f.dir.join("host-dir");
    std::fs::create_dir(&host_dir).unwrap();
    let host_passwd = f.dir.join("host-passwd");
    std::fs::write(&host_passwd, "hostuser:x:4242:4242::/:/bin/sh\n").unwrap();
    let mut img = RootfsTar::busybox(&["bin", "etc", "tmp"], &["sh", "pwd", "touch", "id", "ls"]);
    img.symlink("work", &host_dir.display().to_string())
        .symlink("vol", &host_dir.display().to_string())
        .symlink("etc/passwd", &host_passwd.display().to_string());
    let tarball = f.dir.join("hostile.tar");
    img.write(&tarball);
    f_ok(
        &f,
        &[
            "import",
            "--change",
            "WORKDIR /work",
            "--change",
            "VOLUME /vol",
            tarball.to_str().unwrap(),
            "hostile:1",
        ],
    );
    let out = f_ok(
        &f,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "hostile:1",
            "sh",
            "-c",
            "pwd; touch in-workdir /vol/in-volume; ls /vol",
        ],
    );
    assert!(out.contains("in-volume"), "{out}");
    let left: Vec<_> = std::fs::read_dir(&host_dir).unwrap().collect();
    assert!(
        left.is_empty(),
        "the container wrote into the host directory: {left:?}"
    );
    let o = common::berth(
        &f.root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "hostuser",
            "hostile:1",
            "id",
            "-u",
        ],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains("4242"), "the host's passwd was read: {all}");
    assert!(!o.status.success(), "{all}");
}

fn f_ok(f: &Fixture, args: &[&str]) -> String {
    ok(&f.root, args)
}
