//! The container process: user, groups, umask, rlimits, env, cwd, capabilities,
//! no_new_privs, oom_score_adj, exit codes, signals, preserved fds.

mod common;

use common::*;
use serde_json::json;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::time::Duration;

fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in:\n{out}"))
        .trim()
        .to_string()
}

#[test]
fn user_and_additional_groups() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]})
    });
    let out = rt.sh_output(&b, "id -u; id -g; id -G; id -un");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "1000", "{out}");
    assert_eq!(l[1], "1000", "{out}");
    let groups: Vec<&str> = l[2].split_whitespace().collect();
    assert!(
        groups.contains(&"10") && groups.contains(&"20"),
        "additionalGids missing: {out}"
    );
    assert!(!groups.contains(&"0"), "root group kept: {out}");
    assert_eq!(l[3], "user");
}

#[test]
fn root_user_has_no_supplementary_groups() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.user(0, 0);
    let out = rt.sh_output(&b, "id -u; id -G");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "0");
    assert_eq!(
        l[1].split_whitespace().collect::<Vec<_>>(),
        vec!["0"],
        "host groups leaked: {out}"
    );
}

#[test]
fn umask() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(false);
    b.edit(|c| c["process"]["user"]["umask"] = json!(0o027));
    let out = rt.sh_output(&b, "umask; touch /tmp/f; stat -c %a /tmp/f");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "0027", "{out}");
    assert_eq!(l[1], "640", "{out}");
}

#[test]
fn rlimits() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
            {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}
        ])
    });
    let out = rt.sh_output(&b, "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["512", "1024", "300", "400"],
        "{out}"
    );
}

#[test]
fn env() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.env("FOO=bar baz").env("EMPTY=").env("EQ=a=b");
    let out = rt.sh_output(
        &b,
        "echo \"FOO=$FOO\"; echo \"EQ=$EQ\"; env | grep -c '^EMPTY=$'; echo \"PATH=$PATH\"",
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "FOO=bar baz");
    assert_eq!(l[1], "EQ=a=b");
    assert_eq!(l[2], "1", "EMPTY= not set: {out}");
    assert!(l[3].contains("/bin"), "PATH from config not set: {out}");
}

#[test]
fn env_is_exactly_the_config() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| {
        c["process"]["env"] = json!(["PATH=/bin", "ONLY=this", format!("{TAG_ENV}={}", rt.tag())])
    });
    let out = rt.sh_output(&b, "env");
    assert!(out.lines().any(|l| l == "ONLY=this"), "{out}");
    // Nothing of the runtime's own environment leaks in (e.g. CARGO_*, RUST_*).
    for l in out.lines() {
        assert!(
            !l.starts_with("CARGO") && !l.starts_with("RUST_"),
            "host env leaked: {l}"
        );
    }
}

#[test]
fn cwd() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.cwd("/tmp");
    assert_eq!(rt.sh_output(&b, "pwd").trim(), "/tmp");
    let b = rt.bundle();
    b.cwd("/home/user");
    assert_eq!(rt.sh_output(&b, "pwd").trim(), "/home/user");
}

#[test]
fn exit_codes() {
    let rt = Runtime::new();
    for code in [0, 1, 42, 255] {
        let b = rt.bundle();
        b.sh(&format!("exit {code}"));
        rt.run_fg(&b).code_is(code);
    }
}

#[test]
fn exit_code_of_killed_container_is_128_plus_signal() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id("sig");
    let run = rt.spawn(&["run", "--bundle", s(b.path()), &id]);
    rt.wait_status(&id, "running");
    rt.cmd(&["kill", &id, "KILL"]).ok();
    let o = run.wait(CMD_TIMEOUT);
    o.code_is(137);
    assert!(
        wait_until(Duration::from_secs(5), || rt.status(&id).is_none()),
        "run did not delete the container"
    );
}

#[test]
fn signals_to_foreground_run_reach_the_container() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.sh("trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.1; done");
    let id = rt.new_id("fwd");
    let mut run = rt.spawn(&["run", "--bundle", s(b.path()), &id]);
    assert!(
        run.wait_for_stdout("ready", Duration::from_secs(20)),
        "container did not start: {}",
        run.stderr_now()
    );
    unsafe { libc::kill(run.pid(), libc::SIGTERM) };
    let o = run.wait(CMD_TIMEOUT);
    o.code_is(3);
    assert!(o.stdout.contains("got-term"), "{o}");
}

#[test]
fn sigint_and_sighup_are_forwarded() {
    let rt = Runtime::new();
    for (sig, name, code) in [(libc::SIGINT, "INT", 4), (libc::SIGHUP, "HUP", 5)] {
        let b = rt.bundle();
        b.sh(&format!(
            "trap 'echo got-{name}; exit {code}' {name}; echo ready; while :; do sleep 0.1; done"
        ));
        let id = rt.new_id("fwd");
        let mut run = rt.spawn(&["run", "--bundle", s(b.path()), &id]);
        assert!(
            run.wait_for_stdout("ready", Duration::from_secs(20)),
            "container did not start: {}",
            run.stderr_now()
        );
        unsafe { libc::kill(run.pid(), sig) };
        let o = run.wait(CMD_TIMEOUT);
        o.code_is(code);
        assert!(o.stdout.contains(&format!("got-{name}")), "{o}");
    }
}

#[test]
fn capabilities() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| {
        let caps = json!(["CAP_CHOWN", "CAP_KILL"]);
        c["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps
        });
    });
    let out = rt.sh_output(&b, "grep -E '^Cap(Bnd|Eff|Prm|Inh|Amb):' /proc/self/status");
    let want = (1u64 << 0) | (1u64 << 5);
    for f in ["CapBnd", "CapEff", "CapPrm"] {
        let v = u64::from_str_radix(&status_field(&out, f), 16).unwrap();
        assert_eq!(v, want, "{f} = {v:#x}, want {want:#x}\n{out}");
    }
    for f in ["CapInh", "CapAmb"] {
        assert_eq!(
            u64::from_str_radix(&status_field(&out, f), 16).unwrap(),
            0,
            "{f}\n{out}"
        );
    }
}

#[test]
fn capabilities_of_non_root_user() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.user(1000, 1000);
    b.edit(|c| {
        let caps = json!(["CAP_NET_BIND_SERVICE"]);
        c["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps
        });
    });
    let out = rt.sh_output(&b, "grep -E '^Cap(Eff|Amb):' /proc/self/status");
    let want = 1u64 << 10;
    assert_eq!(
        u64::from_str_radix(&status_field(&out, "CapAmb"), 16).unwrap(),
        want,
        "{out}"
    );
    assert_eq!(
        u64::from_str_radix(&status_field(&out, "CapEff"), 16).unwrap(),
        want,
        "{out}"
    );
}

#[test]
fn no_new_privileges() {
    let rt = Runtime::new();
    for (flag, want) in [(true, "1"), (false, "0")] {
        let b = rt.bundle();
        b.edit(|c| c["process"]["noNewPrivileges"] = json!(flag));
        let out = rt.sh_output(&b, "grep NoNewPrivs /proc/self/status");
        assert_eq!(
            status_field(&out, "NoNewPrivs"),
            want,
            "noNewPrivileges={flag}"
        );
    }
}

#[test]
fn oom_score_adj() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["process"]["oomScoreAdj"] = json!(500));
    assert_eq!(
        rt.sh_output(&b, "cat /proc/self/oom_score_adj").trim(),
        "500"
    );
}

#[test]
fn sysctl() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| {
        c["linux"]["sysctl"] =
            json!({"net.ipv4.ip_forward": "1", "kernel.domainname": "berth.test"})
    });
    let out = rt.sh_output(
        &b,
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/domainname",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["1", "berth.test"],
        "{out}"
    );
}

#[test]
fn missing_executable_fails_clearly() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["/bin/no-such-program-berth"]);
    let id = rt.new_id("noexe");
    let o = rt.cmd(&["run", "--bundle", s(b.path()), &id]);
    o.fails().stderr_mentions(&["no-such-program-berth"]);
    assert!(
        wait_until(Duration::from_secs(3), || rt.tagged_processes().is_empty()),
        "{:?}",
        rt.tagged_processes()
    );
}

#[test]
fn executable_found_through_path() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.env("PATH=/usr/bin:/bin");
    b.args(&["echo", "via-path"]);
    let o = rt.run_fg(&b);
    o.ok();
    assert_eq!(o.out(), "via-path");
}

#[test]
fn preserve_fds() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.sh("echo via-fd3 >&3; echo via-fd4 >&4");
    let dir = rt.scratch();
    let f3 = File::create(dir.join("fd3")).unwrap();
    let f4 = File::create(dir.join("fd4")).unwrap();
    let (r3, r4) = (f3.as_raw_fd(), f4.as_raw_fd());
    let id = rt.new_id("fds");
    let mut cmd = rt.command([
        "create",
        "--preserve-fds",
        "2",
        "--bundle",
        s(b.path()),
        id.as_str(),
    ]);
    unsafe {
        cmd.pre_exec(move || {
            // Move the files to fds 3 and 4 without CLOEXEC.
            let t3 = libc::fcntl(r3, libc::F_DUPFD, 100);
            let t4 = libc::fcntl(r4, libc::F_DUPFD, 100);
            if t3 < 0 || t4 < 0 || libc::dup2(t3, 3) < 0 || libc::dup2(t4, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(t3);
            libc::close(t4);
            Ok(())
        });
    }
    run_cmd(cmd).ok();
    drop((f3, f4));
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    assert_eq!(
        fs::read_to_string(dir.join("fd3")).unwrap().trim(),
        "via-fd3"
    );
    assert_eq!(
        fs::read_to_string(dir.join("fd4")).unwrap().trim(),
        "via-fd4"
    );
}

#[test]
fn only_stdio_is_inherited_without_preserve_fds() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let out = rt.sh_output(&b, "ls /proc/self/fd");
    let mut fds: Vec<u32> = out
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    fds.sort();
    // 0,1,2 plus the fd `ls` opened for the directory.
    assert!(
        fds.iter().filter(|&&f| f > 2).count() <= 1,
        "leaked fds into the container: {fds:?}"
    );
}

#[test]
fn stdin_is_passed_to_foreground_run() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.sh("read line; echo \"got:$line\"");
    let id = rt.new_id("stdin");
    let mut cmd = rt.command(["run", "--bundle", s(b.path()), id.as_str()]);
    let input = rt.scratch().join("in");
    fs::write(&input, "hello stdin\n").unwrap();
    cmd.stdin(File::open(&input).unwrap());
    let o = run_cmd(cmd);
    o.ok();
    assert_eq!(o.out(), "got:hello stdin");
}

#[test]
fn stderr_is_passed_through() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.sh("echo to-out; echo to-err >&2");
    let o = rt.run_fg(&b);
    o.ok();
    assert_eq!(o.out(), "to-out");
    assert!(o.stderr.contains("to-err"), "{o}");
}

/// Whatever the caller leaves open (pipes, sockets, a directory of the host) and
/// whatever it passes as stdio (a socket here), the container's process and an exec'd
/// process get only 0, 1, 2 and what --preserve-fds names.
#[test]
fn only_stdio_and_preserved_fds_whatever_the_caller_leaves_open() {
    use std::os::unix::net::UnixStream;
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id("fds");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let (a, _b) = UnixStream::pair().unwrap();
    let (p_r, p_w) = (
        File::open("/dev/null").unwrap(),
        File::create(rt.scratch().join("w")).unwrap(),
    );
    let dir = File::open("/").unwrap();
    let raw = [
        a.as_raw_fd(),
        p_r.as_raw_fd(),
        p_w.as_raw_fd(),
        dir.as_raw_fd(),
    ];
    for preserve in [0u32, 2] {
        let (stdin_sock, _peer) = UnixStream::pair().unwrap();
        let preserve_s = preserve.to_string();
        let mut cmd = rt.command([
            "exec",
            "--preserve-fds",
            &preserve_s,
            &id,
            "sh",
            "-c",
            "ls /proc/self/fd",
        ]);
        cmd.stdin(File::from(std::os::fd::OwnedFd::from(stdin_sock)));
        unsafe {
            cmd.pre_exec(move || {
                // Fds 3..=6 and 10..=13 left open, without CLOEXEC.
                for (i, &fd) in raw.iter().enumerate() {
                    let i = i as i32;
                    if libc::dup2(fd, 3 + i) < 0 || libc::dup2(fd, 10 + i) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let o = run_cmd(cmd);
        o.ok();
        let mut fds: Vec<u32> = o
            .out()
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        fds.sort();
        // 0..2, the preserved ones, and the one `ls` opened for the directory.
        let extra: Vec<u32> = fds.iter().copied().filter(|&f| f > 2 + preserve).collect();
        assert!(
            extra.len() <= 1,
            "--preserve-fds {preserve}: leaked fds into the process: {fds:?}"
        );
        for f in 3..3 + preserve {
            assert!(
                fds.contains(&f),
                "--preserve-fds {preserve}: fd {f} missing: {fds:?}"
            );
        }
    }
    rt.cmd(&["delete", "--force", &id]).ok();
}

/// A working directory missing from the image is made (root-owned, 0755), as runc and
/// docker (`-w`) do.
#[test]
fn missing_working_directory_is_created() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.cwd("/work/dir/deep");
    b.sh("pwd; stat -c '%u %a' .");
    let o = rt.run_fg(&b);
    o.ok();
    assert_eq!(o.lines(), ["/work/dir/deep", "0 755"], "{o}");
}
