//! A process run in the foreground (`run`, `exec` without `--detach`):
//! signals are forwarded to it, its exit status becomes ours, and with a
//! terminal we copy bytes between our stdio and the pty master.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::error::{Context, Error, Result};
use crate::state::Container;
use crate::{Runtime, sys};

/// Called before the container is created: no signal may be lost and
/// orphans of the container (when init was not our child) come to us.
pub fn prepare() {
    sys::block_all_signals();
    let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
}

/// Receives the pty master from the console socket pair.
pub fn recv_master(sock: &OwnedFd) -> Result<OwnedFd> {
    let (_, fd) = sys::recv_fd(sock.as_fd()).what(|| "receiving the pty master".into())?;
    match fd {
        Some(fd) => Ok(fd),
        None => Err(Error::Container("the container sent no pty master".into())),
    }
}

/// Waits for `pid`, forwarding signals; returns its exit code (128+N for a
/// signal).
pub fn wait(pid: i32, master: Option<OwnedFd>, container: Option<(&Runtime, &Container)>) -> i32 {
    let sfd = match sys::signalfd_all() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("signalfd: {e}");
            return 1;
        }
    };
    let stdin_tty = sys::isatty(0);
    let saved = match (&master, stdin_tty) {
        (Some(_), true) => {
            // SAFETY: fd 0 stays open for the life of the process.
            let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
            sys::make_raw(stdin).ok()
        }
        _ => None,
    };
    if let (Some(m), true) = (&master, stdin_tty) {
        resize(m);
    }
    let mut stdin_open = master.is_some();
    let mut status = None;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // Reap first: the child may already be gone.
        while let Ok(Some((p, st))) = sys::waitpid(-1, true) {
            if p == pid {
                status = Some(st.code());
            }
        }
        if let Some(code) = status {
            if let Some(m) = &master {
                drain(m, &mut buf);
            }
            if let Some(t) = &saved {
                // SAFETY: fd 0 stays open.
                sys::restore_termios(unsafe { std::os::fd::BorrowedFd::borrow_raw(0) }, t);
            }
            return code;
        }
        // SAFETY: fd 0 stays open for the life of the process.
        let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
        let mut fds = vec![sfd.as_fd()];
        if let Some(m) = &master {
            fds.push(m.as_fd());
            if stdin_open {
                fds.push(stdin);
            }
        }
        let ready = match sys::poll_in(&fds, -1) {
            Ok(r) => r,
            Err(_) => continue,
        };
        if ready[0]
            && let Ok(sig) = sys::read_signal(sfd.as_fd())
        {
            match sig {
                libc::SIGCHLD => {}
                libc::SIGWINCH => {
                    if let Some(m) = &master {
                        resize(m);
                    }
                }
                sig => {
                    let sent = match container {
                        Some((rt, c)) => rt.signal(c, sig).is_ok(),
                        None => false,
                    };
                    if !sent {
                        let _ = sys::kill(pid, sig);
                    }
                }
            }
        }
        if let Some(m) = &master {
            if ready.get(1) == Some(&true) {
                match sys::read(m.as_fd(), &mut buf) {
                    Ok(n) if n > 0 => {
                        // SAFETY: fd 1 stays open.
                        let out = unsafe { std::os::fd::BorrowedFd::borrow_raw(1) };
                        let _ = sys::write_all(out, &buf[..n]);
                    }
                    // EIO: the slave side is closed; wait for the exit.
                    _ => std::thread::sleep(std::time::Duration::from_millis(1)),
                }
            }
            if stdin_open && ready.get(2) == Some(&true) {
                match sys::read(stdin, &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = sys::write_all(m.as_fd(), &buf[..n]);
                    }
                    _ => {
                        // EOF on stdin: send ^D so the program sees it.
                        stdin_open = false;
                        let _ = sys::write_all(m.as_fd(), &[4]);
                    }
                }
            }
        }
    }
}

fn resize(master: &OwnedFd) {
    // SAFETY: fd 0 stays open.
    let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    if let Ok((rows, cols)) = sys::get_winsize(stdin) {
        let _ = sys::set_winsize(master.as_fd(), rows, cols);
    }
}

/// Copies what is left in the pty after the process exited.
fn drain(master: &OwnedFd, buf: &mut [u8]) {
    let _ = sys::set_nonblocking(master.as_fd());
    // SAFETY: fd 1 stays open.
    let out = unsafe { std::os::fd::BorrowedFd::borrow_raw(1) };
    while let Ok(ready) = sys::poll_in(&[master.as_fd()], 50) {
        if !ready[0] {
            break;
        }
        match sys::read(master.as_fd(), buf) {
            Ok(n) if n > 0 => {
                let _ = sys::write_all(out, &buf[..n]);
            }
            _ => break,
        }
    }
    let _ = master.as_raw_fd();
}
