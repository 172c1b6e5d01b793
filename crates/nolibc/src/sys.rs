//! The few system calls berth-init makes, without libc. Each raw call is
//! one `syscall` instruction with the kernel's calling convention; the
//! wrappers take Rust values.

pub const ENOENT: i32 = 2;
pub const EACCES: i32 = 13;
pub const SIGCHLD: i32 = 17;
/// sigtimedwait's "no signal before the timeout" (-EAGAIN), as a value
/// that no signal number has.
pub const EAGAIN_WAIT: i32 = -11;
const SIGTTOU: i32 = 22;

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const FCNTL: usize = 72;
    pub const RT_SIGACTION: usize = 13;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const IOCTL: usize = 16;
    pub const FORK: usize = 57;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
    pub const WAIT4: usize = 61;
    pub const KILL: usize = 62;
    pub const SETPGID: usize = 109;
    pub const RT_SIGTIMEDWAIT: usize = 128;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITE: usize = 64;
    pub const CLOSE: usize = 57;
    pub const FCNTL: usize = 25;
    pub const RT_SIGACTION: usize = 134;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const IOCTL: usize = 29;
    pub const CLONE: usize = 220;
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
    pub const WAIT4: usize = 260;
    pub const KILL: usize = 129;
    pub const SETPGID: usize = 154;
    pub const RT_SIGTIMEDWAIT: usize = 137;
}

/// A raw system call with up to five arguments; returns the kernel's
/// value (negative errno on failure).
#[cfg(target_arch = "x86_64")]
fn syscall(n: usize, a: [usize; 5]) -> isize {
    let r: isize;
    // SAFETY: the x86_64 Linux syscall convention: number in rax, args in
    // rdi, rsi, rdx, r10, r8; rcx and r11 are clobbered. Every caller
    // passes arguments valid for its call (pointers to live memory).
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => r,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3], in("r8") a[4],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    r
}

#[cfg(target_arch = "aarch64")]
fn syscall(n: usize, a: [usize; 5]) -> isize {
    let r: isize;
    // SAFETY: the aarch64 Linux syscall convention: number in x8, args in
    // x0..x4, result in x0. Callers pass valid arguments.
    unsafe {
        core::arch::asm!(
            "svc 0",
            in("x8") n,
            inlateout("x0") a[0] as isize => r,
            in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4],
            options(nostack),
        );
    }
    r
}

pub fn write(fd: usize, mut buf: &[u8]) {
    while !buf.is_empty() {
        let n = syscall(nr::WRITE, [fd, buf.as_ptr() as usize, buf.len(), 0, 0]);
        if n <= 0 {
            return;
        }
        buf = &buf[n as usize..];
    }
}

pub fn exit(code: i32) -> ! {
    loop {
        // exit_group does not return; the loop only satisfies the type.
        syscall(nr::EXIT_GROUP, [code as usize, 0, 0, 0, 0]);
    }
}

/// fork: 0 in the child, the child's pid in the parent, <0 on failure.
pub fn fork() -> i32 {
    #[cfg(target_arch = "x86_64")]
    let r = syscall(nr::FORK, [0; 5]);
    // clone(SIGCHLD, 0, ...) is fork where there is no fork syscall.
    #[cfg(target_arch = "aarch64")]
    let r = syscall(nr::CLONE, [SIGCHLD as usize, 0, 0, 0, 0]);
    r as i32
}

/// Marks a descriptor close-on-exec; false when the kernel refused.
pub fn set_cloexec(fd: i32) -> bool {
    const F_SETFD: usize = 2;
    const FD_CLOEXEC: usize = 1;
    syscall(nr::FCNTL, [fd as usize, F_SETFD, FD_CLOEXEC, 0, 0]) == 0
}

pub fn close(fd: i32) {
    syscall(nr::CLOSE, [fd as usize, 0, 0, 0, 0]);
}

/// execve; returns the errno when it fails.
pub fn execve(path: *const u8, argv: &[*const u8], envp: &[*const u8]) -> i32 {
    let r = syscall(
        nr::EXECVE,
        [
            path as usize,
            argv.as_ptr() as usize,
            envp.as_ptr() as usize,
            0,
            0,
        ],
    );
    (-r) as i32
}

pub fn kill(pid: i32, sig: i32) {
    syscall(nr::KILL, [pid as usize, sig as usize, 0, 0, 0]);
}

/// wait4(-1, status, WNOHANG): a reaped pid, 0 if none is ready, <0 when
/// there are no children.
pub fn wait4_any_nohang(status: &mut i32) -> i32 {
    const WNOHANG: usize = 1;
    syscall(
        nr::WAIT4,
        [
            (-1isize) as usize,
            status as *mut i32 as usize,
            WNOHANG,
            0,
            0,
        ],
    ) as i32
}

const SIG_BLOCK: usize = 0;
const SIG_SETMASK: usize = 2;

pub fn sigprocmask_block(set: &u64, old: &mut u64) {
    syscall(
        nr::RT_SIGPROCMASK,
        [
            SIG_BLOCK,
            set as *const u64 as usize,
            old as *mut u64 as usize,
            8,
            0,
        ],
    );
}

pub fn sigprocmask_set(set: &u64) {
    syscall(
        nr::RT_SIGPROCMASK,
        [SIG_SETMASK, set as *const u64 as usize, 0, 8, 0],
    );
}

/// Waits up to `secs` for one of `set`: the signal, or EAGAIN_WAIT.
pub fn sigtimedwait(set: &u64, secs: i64) -> i32 {
    let ts: [i64; 2] = [secs, 0];
    let r = syscall(
        nr::RT_SIGTIMEDWAIT,
        [set as *const u64 as usize, 0, ts.as_ptr() as usize, 8, 0],
    );
    r as i32
}

pub fn setpgid0() {
    syscall(nr::SETPGID, [0; 5]);
}

/// The terminal on fd 0 (if it is one) gets our process group in the
/// foreground.
pub fn tcsetpgrp0() {
    const TIOCSPGRP: usize = 0x5410;
    #[cfg(target_arch = "x86_64")]
    const GETPGID: usize = 121;
    #[cfg(target_arch = "aarch64")]
    const GETPGID: usize = 155;
    let pgrp = syscall(GETPGID, [0; 5]) as i32;
    syscall(
        nr::IOCTL,
        [0, TIOCSPGRP, &pgrp as *const i32 as usize, 0, 0],
    );
}

/// rt_sigaction(SIGTTOU, handler) with a kernel sigaction.
fn sigttou(handler: usize) {
    // struct kernel_sigaction { handler, flags, restorer, mask }
    let act: [usize; 4] = [handler, 0, 0, 0];
    syscall(
        nr::RT_SIGACTION,
        [SIGTTOU as usize, act.as_ptr() as usize, 0, 8, 0],
    );
}

/// SIGTTOU ignored (so tcsetpgrp from a background group is allowed).
pub fn ignore_sigttou() {
    sigttou(1);
}

pub fn default_sigttou() {
    sigttou(0);
}

// The memory functions the compiler calls (there is no libc to provide
// them). Volatile accesses keep LLVM from turning the loops back into
// calls to themselves.

/// # Safety
/// `dst` and `src` are valid for `n` bytes and do not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: in bounds by the caller's contract.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        i += 1;
    }
    dst
}

/// # Safety
/// `dst` and `src` are valid for `n` bytes (they may overlap).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) {
        // SAFETY: forward copy is correct when dst is below src.
        return unsafe { memcpy(dst, src, n) };
    }
    let mut i = n;
    while i > 0 {
        i -= 1;
        // SAFETY: in bounds by the caller's contract; backwards for overlap.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
    }
    dst
}

/// # Safety
/// `dst` is valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: in bounds by the caller's contract.
        unsafe { core::ptr::write_volatile(dst.add(i), c as u8) };
        i += 1;
    }
    dst
}

/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: in bounds by the caller's contract.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// `s` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: reads up to the terminating NUL the caller guarantees.
    while unsafe { core::ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}
