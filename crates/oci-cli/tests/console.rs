//! Consoles: with process.terminal=true and `--console-socket`, the runtime sends the pty
//! master over the unix socket (SCM_RIGHTS), as runc does.

mod common;

use common::*;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    fn new(rt: &Runtime) -> ConsoleSocket {
        let path = rt.scratch().join("console.sock");
        let listener = UnixListener::bind(&path).expect("bind console socket");
        listener.set_nonblocking(true).unwrap();
        ConsoleSocket { path, listener }
    }

    fn path(&self) -> &str {
        s(&self.path)
    }

    /// Accept one connection and receive the pty master. `proc` is the runtime command
    /// that connects; fail early if it exits without sending anything.
    fn receive(&self, proc: &mut Spawned) -> OwnedFd {
        let deadline = Instant::now() + CMD_TIMEOUT;
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(st) = proc.try_wait() {
                        // It may have connected right before exiting.
                        if let Ok((s, _)) = self.listener.accept() {
                            break s;
                        }
                        panic!(
                            "{} exited ({st}) without connecting to the console socket:\n{}{}",
                            proc.cmdline,
                            proc.stdout_now(),
                            proc.stderr_now()
                        );
                    }
                    assert!(
                        Instant::now() < deadline,
                        "nobody connected to the console socket"
                    );
                    sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        recv_fd(&stream).expect("receive the pty master over SCM_RIGHTS")
    }
}

fn recv_fd(stream: &UnixStream) -> io::Result<OwnedFd> {
    recv_fd_with_data(stream).map(|(_, fd)| fd)
}

fn is_tty(fd: &OwnedFd) -> bool {
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// Read from the pty master until `done(output)` or EOF/EIO or timeout.
fn read_until(fd: &OwnedFd, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        if done(&String::from_utf8_lossy(&out)) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(500) as i32) };
        if r <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break; // EIO: every slave end is closed
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&out).replace('\r', "")
}

fn write_all(fd: &OwnedFd, data: &[u8]) {
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize, "write to pty master");
}

fn tty_name_ok(out: &str) -> bool {
    out.lines().any(|l| {
        let l = l.trim();
        l.starts_with("/dev/pts/") || l == "/dev/console"
    })
}

#[test]
fn create_sends_pty_master() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.terminal(true).sh("tty; echo done-tty");
    let sock = ConsoleSocket::new(&rt);
    let id = rt.new_id("tty");
    let mut create = rt.spawn(&[
        "create",
        "--console-socket",
        sock.path(),
        "--bundle",
        s(b.path()),
        &id,
    ]);
    let master = sock.receive(&mut create);
    create.wait(CMD_TIMEOUT).ok();
    assert!(is_tty(&master), "received fd is not a terminal");
    rt.start(&id).ok();
    let out = read_until(&master, Duration::from_secs(20), |o| o.contains("done-tty"));
    assert!(tty_name_ok(&out), "`tty` inside: {out:?}");
    assert!(out.contains("done-tty"), "{out:?}");
    rt.wait_status(&id, "stopped");
}

#[test]
fn console_input_reaches_the_container() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.terminal(true)
        .sh("echo ready; read line; echo \"got:$line\"");
    let sock = ConsoleSocket::new(&rt);
    let id = rt.new_id("ttyin");
    let mut create = rt.spawn(&[
        "create",
        "--console-socket",
        sock.path(),
        "--bundle",
        s(b.path()),
        &id,
    ]);
    let master = sock.receive(&mut create);
    create.wait(CMD_TIMEOUT).ok();
    rt.start(&id).ok();
    let out = read_until(&master, Duration::from_secs(20), |o| o.contains("ready"));
    assert!(out.contains("ready"), "{out:?}");
    write_all(&master, b"hello-pty\n");
    let out = read_until(&master, Duration::from_secs(20), |o| {
        o.contains("got:hello-pty")
    });
    assert!(out.contains("got:hello-pty"), "{out:?}");
    rt.wait_status(&id, "stopped");
}

#[test]
fn console_stdio_are_the_tty() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.terminal(true)
        .sh("for f in 0 1 2; do [ -t $f ] && echo fd$f-tty; done; echo end");
    let sock = ConsoleSocket::new(&rt);
    let id = rt.new_id("ttyfds");
    let mut create = rt.spawn(&[
        "create",
        "--console-socket",
        sock.path(),
        "--bundle",
        s(b.path()),
        &id,
    ]);
    let master = sock.receive(&mut create);
    create.wait(CMD_TIMEOUT).ok();
    rt.start(&id).ok();
    let out = read_until(&master, Duration::from_secs(20), |o| o.contains("end"));
    for f in ["fd0-tty", "fd1-tty", "fd2-tty"] {
        assert!(out.contains(f), "{f} missing: {out:?}");
    }
}

#[test]
fn run_detached_with_console_socket() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.terminal(true)
        .sh("tty; echo ready; read x; echo \"bye:$x\"");
    let sock = ConsoleSocket::new(&rt);
    let id = rt.new_id("ttyrun");
    let mut run = rt.spawn(&[
        "run",
        "-d",
        "--console-socket",
        sock.path(),
        "--bundle",
        s(b.path()),
        &id,
    ]);
    let master = sock.receive(&mut run);
    run.wait(CMD_TIMEOUT).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    let out = read_until(&master, Duration::from_secs(20), |o| o.contains("ready"));
    assert!(tty_name_ok(&out), "{out:?}");
    write_all(&master, b"now\n");
    let out = read_until(&master, Duration::from_secs(20), |o| o.contains("bye:now"));
    assert!(out.contains("bye:now"), "{out:?}");
    rt.wait_status(&id, "stopped");
}

#[test]
fn exec_tty_with_console_socket() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let c = rt.start_container(&b);
    let sock = ConsoleSocket::new(&rt);
    let mut ex = rt.spawn(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        sock.path(),
        &c.id,
        "sh",
        "-c",
        "tty; echo ready; read x; echo \"exec-got:$x\"",
    ]);
    let master = sock.receive(&mut ex);
    ex.wait(CMD_TIMEOUT).ok();
    let out = read_until(&master, Duration::from_secs(20), |o| o.contains("ready"));
    assert!(tty_name_ok(&out), "{out:?}");
    write_all(&master, b"typed\n");
    let out = read_until(&master, Duration::from_secs(20), |o| {
        o.contains("exec-got:typed")
    });
    assert!(out.contains("exec-got:typed"), "{out:?}");
}

#[test]
fn exec_short_tty_flag_detached() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let c = rt.start_container(&b);
    let sock = ConsoleSocket::new(&rt);
    let mut ex = rt.spawn(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        sock.path(),
        &c.id,
        "sh",
        "-c",
        "tty; echo det-end",
    ]);
    let master = sock.receive(&mut ex);
    ex.wait(CMD_TIMEOUT).ok();
    let out = read_until(&master, Duration::from_secs(20), |o| o.contains("det-end"));
    assert!(tty_name_ok(&out), "{out:?}");
}

#[test]
fn console_socket_path_must_exist() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.terminal(true).args(&["true"]);
    let id = rt.new_id("nosock");
    let missing = rt.scratch().join("missing.sock");
    let o = rt.cmd(&[
        "create",
        "--console-socket",
        s(&missing),
        "--bundle",
        s(b.path()),
        &id,
    ]);
    o.fails();
    rt.assert_nothing_left(&id, Some(&b));
    assert!(!Path::new(&missing).exists());
}
