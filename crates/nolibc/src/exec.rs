//! `berth-exec`: the last step of a container process. The runtime starts
//! it from a sealed memfd (CVE-2019-5736): once the process has become this
//! program, `/proc/PID/exe` of it, and `/proc/self/exe` for any script that
//! names it as its interpreter, is an immutable in-memory copy instead of
//! the runtime's binary on the host. It only calls execve:
//!
//! `berth-exec r<FD>|t<FD>|- PATH ARGV0 [ARG...]`
//!
//! runs PATH with argv `ARGV0 ARG...` and the environment it was given.
//! When execve fails, the error goes to descriptor FD in the runtime's
//! words (`r`: the bytes alone; `t`: one message behind the runtime's
//! error tag) or to stderr (`-`), and it exits 127. FD is made
//! close-on-exec first, so the program never inherits it.
//!
//! Run any other way (a script whose `#!` line names `/proc/self/exe`, or
//! a stray execution), it refuses and exits 126, so a hostile image cannot
//! make it loop.

#![no_std]
#![no_main]

mod start;
#[allow(dead_code)]
mod sys;

use core::ffi::CStr;

const PANIC_MSG: &[u8] = b"berth-exec: internal error\n";

/// The tag of an error message on the runtime's setup socket
/// (`MSG_ERROR` in crates/runtime/src/container.rs).
const MSG_ERROR: u8 = b'E';

/// A small bounded writer on the stack: messages are sent in one write so a
/// SOCK_SEQPACKET peer receives them whole.
struct Buf {
    b: [u8; 1024],
    n: usize,
}

impl Buf {
    fn push(&mut self, s: &[u8]) {
        for &c in s {
            if self.n < self.b.len() {
                self.b[self.n] = c;
                self.n += 1;
            }
        }
    }

    fn push_num(&mut self, mut v: u32) {
        let mut d = [0u8; 10];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&d[i..]);
    }
}

/// strerror's text for the errors execve gives, as Rust's io::Error
/// prints them (the runtime's own messages use that form).
fn strerror(e: i32) -> &'static [u8] {
    match e {
        1 => b"Operation not permitted",
        2 => b"No such file or directory",
        7 => b"Argument list too long",
        8 => b"Exec format error",
        9 => b"Bad file descriptor",
        12 => b"Cannot allocate memory",
        13 => b"Permission denied",
        14 => b"Bad address",
        20 => b"Not a directory",
        21 => b"Is a directory",
        22 => b"Invalid argument",
        24 => b"Too many open files",
        26 => b"Text file busy",
        36 => b"File name too long",
        38 => b"Function not implemented",
        40 => b"Too many levels of symbolic links",
        _ => b"Unknown error",
    }
}

fn arg(p: *const u8) -> &'static [u8] {
    // SAFETY: argv entries are NUL-terminated strings on our stack, which
    // lives as long as the process.
    unsafe { CStr::from_ptr(p.cast()) }.to_bytes()
}

/// `r12` / `t12` / `-` → (tagged, fd); None when malformed.
fn report_fd(a: &[u8]) -> Option<(bool, i32)> {
    if a == b"-" {
        return Some((false, -1));
    }
    let (tagged, digits) = match a.split_first()? {
        (b'r', d) => (false, d),
        (b't', d) => (true, d),
        _ => return None,
    };
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let mut fd = 0i32;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        fd = fd * 10 + (c - b'0') as i32;
    }
    Some((tagged, fd))
}

fn main(argv: &'static [*const u8], envp: &'static [*const u8]) -> ! {
    let argc = argv.len() - 1;
    let report = if argc >= 4 && arg(argv[0]) == b"berth-exec" {
        report_fd(arg(argv[1]))
    } else {
        None
    };
    let Some((tagged, fd)) = report else {
        sys::write(
            2,
            b"berth-exec: Berth's exec helper is not a program to run (refusing)\n",
        );
        sys::exit(126)
    };
    let mut fd = fd;
    if fd >= 0 && !sys::set_cloexec(fd) {
        // Never let the runtime's descriptor reach the program.
        sys::close(fd);
        fd = -1;
    }
    let path = arg(argv[2]);
    let err = sys::execve(argv[2], &argv[3..], envp);
    let mut m = Buf {
        b: [0; 1024],
        n: 0,
    };
    if tagged && fd >= 0 {
        m.push(&[MSG_ERROR]);
    }
    m.push(b"exec ");
    m.push(path);
    m.push(b": ");
    m.push(strerror(err));
    m.push(b" (os error ");
    m.push_num(err as u32);
    m.push(b")");
    if fd >= 0 {
        sys::write(fd as usize, &m.b[..m.n]);
    } else {
        m.push(b"\n");
        sys::write(2, &m.b[..m.n]);
    }
    sys::exit(127)
}
