//! `berth-init`: pid 1 for `berth run --init` (docker's `--init`, tini's
//! job). It runs `berth-init [--] CMD [ARG...]` as its child, forwards every
//! signal it gets to that child, reaps every process that ends up as its
//! child (orphans are re-parented to pid 1), and exits with the child's
//! status (128+N when signal N killed it).
//!
//! It must run in any image, so it is a static binary with no libc: system
//! calls are made directly (`sys`), `_start` is ours, nothing allocates.

#![no_std]
#![no_main]

mod start;
#[allow(dead_code)]
mod sys;

use core::ffi::CStr;

/// Where a failure is reported.
fn say(msg: &[&[u8]]) {
    for m in msg {
        sys::write(2, m);
    }
    sys::write(2, b"\n");
}

fn die(code: i32, msg: &[&[u8]]) -> ! {
    let mut v: [&[u8]; 8] = [b""; 8];
    v[0] = b"berth-init: ";
    for (i, m) in msg.iter().take(7).enumerate() {
        v[i + 1] = m;
    }
    say(&v[..msg.len().min(7) + 1]);
    sys::exit(code)
}

/// The value of `PATH` in `envp`, or docker's default.
fn path_of(envp: &[*const u8]) -> &'static [u8] {
    // The last entry is the terminating NULL.
    for &e in envp.iter().take_while(|e| !e.is_null()) {
        // SAFETY: envp entries are NUL-terminated strings the kernel put on
        // our stack; they live as long as the process.
        let s = unsafe { CStr::from_ptr(e.cast()) }.to_bytes();
        if let Some(v) = s.strip_prefix(b"PATH=") {
            return v;
        }
    }
    b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

/// execve of `argv[0]`, searched in PATH when it has no `/` (execvp's
/// rule: the first directory where it is executable; EACCES remembered).
fn exec(argv: &[*const u8], envp: &[*const u8]) -> ! {
    // SAFETY: argv[0] is a NUL-terminated string from our stack.
    let name = unsafe { CStr::from_ptr(argv[0].cast()) }.to_bytes();
    let mut err = if name.contains(&b'/') {
        sys::execve(argv[0], argv, envp)
    } else {
        let mut last = sys::ENOENT;
        let mut buf = [0u8; 4096];
        for dir in path_of(envp).split(|&c| c == b':') {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let len = dir.len() + 1 + name.len();
            if len + 1 > buf.len() {
                continue;
            }
            buf[..dir.len()].copy_from_slice(dir);
            buf[dir.len()] = b'/';
            buf[dir.len() + 1..len].copy_from_slice(name);
            buf[len] = 0;
            let e = sys::execve(buf.as_ptr(), argv, envp);
            if e == sys::EACCES || last != sys::EACCES {
                last = e;
            }
        }
        last
    };
    if err == 0 {
        err = sys::ENOENT;
    }
    let code = if err == sys::ENOENT { 127 } else { 126 };
    let what: &[u8] = if err == sys::ENOENT {
        b": not found"
    } else {
        b": cannot execute"
    };
    die(code, &[b"exec ", name, what])
}

/// The status a shell would give: the exit code, or 128+signal.
fn status_code(status: i32) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}

/// Entered from `start.rs` with argv and envp (each ending with its NULL).
fn main(argv: &'static [*const u8], envp: &'static [*const u8]) -> ! {
    let argc = argv.len() - 1;
    let mut first = 1;
    if argc > 1 {
        // SAFETY: argv[1] is a NUL-terminated string from our stack.
        let a1 = unsafe { CStr::from_ptr(argv[1].cast()) }.to_bytes();
        if a1 == b"--" {
            first = 2;
        }
    }
    if first >= argc {
        die(2, &[b"usage: berth-init [--] COMMAND [ARG...]"]);
    }
    let cmd = &argv[first..];

    // Every signal is blocked here and taken with sigtimedwait below; the
    // child starts with the mask it would have had.
    let all: u64 = !0;
    let mut old: u64 = 0;
    sys::sigprocmask_block(&all, &mut old);

    let child = sys::fork();
    if child < 0 {
        die(1, &[b"fork failed"]);
    }
    if child == 0 {
        // Its own process group, in the terminal's foreground when there
        // is one, so that ^C and ^Z reach it directly.
        sys::setpgid0();
        sys::ignore_sigttou();
        sys::tcsetpgrp0();
        sys::default_sigttou();
        sys::sigprocmask_set(&old);
        exec(cmd, envp)
    }

    loop {
        match sys::sigtimedwait(&all, 1) {
            sys::SIGCHLD | sys::EAGAIN_WAIT => {}
            sig if sig > 0 => {
                // Forwarded; a child that is gone already is fine.
                sys::kill(child, sig);
                continue;
            }
            _ => {}
        }
        // Reap everything that ended; stop when our child has.
        loop {
            let mut status = 0;
            let pid = sys::wait4_any_nohang(&mut status);
            if pid <= 0 {
                break;
            }
            if pid == child {
                // Orphans left behind get one last reap, then we go.
                while sys::wait4_any_nohang(&mut 0) > 0 {}
                sys::exit(status_code(status));
            }
        }
    }
}

/// What the shared panic handler (`start.rs`) prints.
const PANIC_MSG: &[u8] = b"berth-init: internal error\n";
