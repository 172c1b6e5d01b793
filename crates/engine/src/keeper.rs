//! A container's output kept across the death of its monitor.
//!
//! The container writes into pipes whose read ends the monitor holds; if
//! the monitor is killed, the read ends die with it and everything the
//! container writes after that is lost. So the monitor forks a *keeper*
//! when it starts the container: a process that holds duplicates of the
//! read ends and does nothing else. The monitor writes one byte into the
//! keeper's lifeline pipe when it ends normally, and the keeper exits; if
//! the lifeline ends without that byte, the monitor died and the keeper
//! goes on holding the pipes, so the container's output waits there (it
//! blocks once the pipes are full, as docker's containers do while dockerd
//! is down) until an adopter takes the read ends from the keeper
//! (`pidfd_getfd`) and logs them again. The keeper also exits once the
//! container's writers are all gone and nothing is left to read.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use berth_runtime::sys;

/// Where a container's keeper is recorded (in its state directory):
/// `PID START N`, N output pipes at descriptors 3, 3+1, ….
const FILE: &str = "keeper";

/// The keeper's process name (`/proc/PID/comm`).
pub const KEEPER_NAME: &[u8; 13] = b"berth-keeper\0";

/// The monitor's side of its keeper.
#[derive(Debug)]
pub struct Keeper {
    lifeline: OwnedFd,
    file: PathBuf,
}

impl Keeper {
    /// Forks the keeper of `outputs` (the read ends of the container's
    /// output pipes). Only sound while the calling process has one thread.
    /// Best effort: None when it could not be made.
    pub fn spawn(state_dir: &Path, outputs: &[BorrowedFd<'_>]) -> Option<Keeper> {
        let (lr, lw) = sys::pipe().ok()?;
        let fds: Vec<RawFd> = outputs.iter().map(|f| f.as_raw_fd()).collect();
        let (pid, _) = sys::clone3(&sys::CloneArgs {
            flags: 0,
            cgroup: None,
            pidfd: false,
        })
        .ok()?;
        if pid == 0 {
            keeper_main(&fds, lr.as_raw_fd());
        }
        drop(lr);
        let start = berth_runtime::state::pid_start_time(pid).unwrap_or(0);
        let file = state_dir.join(FILE);
        let text = format!("{pid} {start} {}\n", fds.len());
        if std::fs::write(&file, text).is_err() {
            // Unrecorded, it is of no use: let it go.
            let _ = sys::write_all(lw.as_fd(), b"x");
            return None;
        }
        Some(Keeper { lifeline: lw, file })
    }
}

impl Drop for Keeper {
    /// The monitor ends normally (or gave up on the start): the keeper exits.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        let _ = sys::write_all(self.lifeline.as_fd(), b"x");
    }
}

/// The keeper's life (in the forked child; raw syscalls only).
fn keeper_main(fds: &[RawFd], lifeline: RawFd) -> ! {
    // Told apart from its monitor (same command line) by its name.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, KEEPER_NAME.as_ptr()) };
    // Everything to high numbers first, then down to 3.. (no clobbering),
    // then every other descriptor closed: the keeper must hold nothing but
    // the read ends (not the monitor's lock, nor any write end).
    let mut high = Vec::with_capacity(fds.len() + 1);
    for &fd in fds.iter().chain([&lifeline]) {
        // SAFETY: fcntl F_DUPFD_CLOEXEC on descriptors this process has.
        high.push(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) });
    }
    for (i, &fd) in high.iter().enumerate() {
        // SAFETY: dup2 onto small numbers this process then owns.
        unsafe { libc::dup2(fd, 3 + i as RawFd) };
    }
    let n = fds.len();
    // SAFETY: closes descriptors from 4+n up; none is used below.
    unsafe { libc::syscall(libc::SYS_close_range, 3 + n as u32 + 1, u32::MAX, 0) };
    let life = 3 + n as RawFd;
    let mut orphaned = false;
    loop {
        let mut pfds: Vec<libc::pollfd> = (0..n)
            .map(|i| libc::pollfd {
                fd: 3 + i as RawFd,
                events: 0,
                revents: 0,
            })
            .collect();
        pfds.push(libc::pollfd {
            fd: if orphaned { -1 } else { life },
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: a valid pollfd array; every 10 minutes a look at the pipes.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 600_000) };
        if r < 0 {
            continue;
        }
        if !orphaned && pfds[n].revents != 0 {
            let mut b = [0u8; 1];
            // SAFETY: read into a 1-byte buffer.
            let got = unsafe { libc::read(life, b.as_mut_ptr().cast(), 1) };
            if got == 1 {
                sys::exit_now(0);
            }
            orphaned = true;
        }
        let hung_up = pfds[..n].iter().all(|p| p.revents & libc::POLLHUP != 0);
        if !hung_up {
            continue;
        }
        // The container's writers are gone. With its monitor alive, or
        // nothing left to read, the keeper is done; otherwise what is left
        // waits 10 minutes for an adopter or the next command.
        if orphaned && (0..n).any(|i| unread(3 + i as RawFd) > 0) {
            // SAFETY: plain sleep.
            unsafe { libc::sleep(600) };
        }
        sys::exit_now(0);
    }
}

/// Bytes waiting in a pipe.
fn unread(fd: RawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    n
}

/// Takes the output pipes from the keeper of a container whose monitor
/// died (recorded in `state_dir`), and ends the keeper. Empty when there is
/// none (or it cannot be reached).
pub fn take(state_dir: &Path) -> Vec<OwnedFd> {
    let file = state_dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(&file);
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (Some(Some(pid)), Some(Some(start)), Some(Some(n))) = (it.next(), it.next(), it.next())
    else {
        return Vec::new();
    };
    let pid = pid as i32;
    let Ok(pidfd) = sys::pidfd_open(pid) else {
        return Vec::new();
    };
    if !berth_runtime::state::pid_is(pid, start) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for i in 0..n.min(3) {
        // SAFETY: pidfd_getfd duplicates descriptor 3+i of the keeper into
        // this process; the result is a new descriptor we own.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                pidfd.as_raw_fd(),
                3 + i as libc::c_int,
                0,
            )
        };
        if fd >= 0 {
            // SAFETY: a new descriptor returned by the kernel.
            out.push(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
    }
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    out
}

/// Logs what is waiting in `pipes` (stdout, stderr) without blocking.
pub fn drain(pipes: &[OwnedFd], log: &mut crate::logs::LogWriter) {
    let mut buf = vec![0u8; 1 << 16];
    for (i, p) in pipes.iter().enumerate() {
        let _ = sys::set_nonblocking(p.as_fd());
        while let Ok(n) = sys::read(p.as_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            let _ = log.write(i.min(1), &buf[..n]);
        }
    }
    let _ = log.flush();
}
