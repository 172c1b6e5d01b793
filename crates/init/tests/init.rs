//! berth-init as pid 1: exit status, exec errors, signal forwarding and
//! reaping of orphans (in a new pid namespace made with unshare(1)).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn init_binary(dir: &tempfile::TempDir) -> PathBuf {
    let p = dir.path().join("berth-init");
    std::fs::write(&p, berth_init::BINARY).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Runs `cmd`, again while the kernel says the binary is busy: a test
/// thread that just wrote its copy races other threads' forks, whose
/// children hold the write descriptor until they exec (ETXTBSY).
fn output(cmd: &mut Command) -> std::process::Output {
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r.unwrap(),
        }
    }
    panic!("the binary stayed busy");
}

fn spawn(cmd: &mut Command) -> std::process::Child {
    for _ in 0..100 {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r.unwrap(),
        }
    }
    panic!("the binary stayed busy");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no failure mode.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn static_and_small() {
    let b = berth_init::BINARY;
    assert_eq!(&b[..4], b"\x7fELF");
    assert!(b.len() < 64 * 1024, "{} bytes", b.len());
    let t = tempfile::tempdir().unwrap();
    let out = Command::new("file").arg(init_binary(&t)).output();
    if let Ok(o) = out {
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(s.contains("statically linked"), "{s}");
    }
}

#[test]
fn exit_status_and_exec_errors() {
    let t = tempfile::tempdir().unwrap();
    let init = init_binary(&t);
    let run = |args: &[&str]| output(Command::new(&init).args(args).stdin(Stdio::null()));
    assert_eq!(run(&["--", "sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(run(&["sh", "-c", "exit 0"]).status.code(), Some(0));
    let o = run(&["sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.status.code(), Some(128 + 15));
    let o = run(&["no-such-command-berth"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
    let o = run(&["/etc/hostname"]);
    assert_eq!(o.status.code(), Some(126));
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("usage"));
}

#[test]
fn signals_are_forwarded() {
    let t = tempfile::tempdir().unwrap();
    let init = init_binary(&t);
    let mut child = spawn(
        Command::new(&init)
            .args([
                "sh",
                "-c",
                "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    );
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(st.code(), Some(3), "{rest}");
    assert!(rest.contains("got-term"), "{rest}");
}

#[test]
fn orphans_are_reaped_as_pid_one() {
    if !is_root() || Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and unshare(1)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let init = init_binary(&t);
    // Orphans (the inner sh's background sleeps) end up as pid 1's
    // children; after they exit, no zombie may remain.
    let script = "sh -c 'sleep 0.1 & sleep 0.1 & exit 0'; sleep 0.5; \
                  for s in /proc/[0-9]*/stat; do cat $s 2>/dev/null; echo; done";
    let start = Instant::now();
    // unshare(1) execs berth-init itself: a busy binary shows as its error.
    let mut o = None;
    for _ in 0..100 {
        let r = output(
            Command::new("unshare")
                .args(["--pid", "--fork", "--mount-proc"])
                .arg(&init)
                .args(["--", "sh", "-c", script])
                .stdin(Stdio::null()),
        );
        if !String::from_utf8_lossy(&r.stderr).contains("Text file busy") {
            o = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = o.expect("the binary stayed busy");
    assert!(start.elapsed() < Duration::from_secs(20));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let zombies: Vec<&str> = out
        .lines()
        .filter(|l| l.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
        .collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}\n{out}");
    assert!(
        out.contains("(berth-init) S") || out.contains("(berth-init) R"),
        "{out}"
    );
}

#[test]
fn without_path_the_default_one_is_searched() {
    let t = tempfile::tempdir().unwrap();
    let init = init_binary(&t);
    let o = output(
        Command::new(&init)
            .args(["sh", "-c", "exit 4"])
            .env_clear()
            .stdin(Stdio::null()),
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
