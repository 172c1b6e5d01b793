//! The entry glue the programs here share: `_start` (no libc, no Rust
//! start files) hands the kernel's initial stack to `crate::main` as argv
//! and envp slices; a panic prints `crate::PANIC_MSG` and exits 1.

use crate::sys;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    sys::write(2, crate::PANIC_MSG);
    sys::exit(1)
}

/// The unwinding personality a `panic = "unwind"` build links against;
/// never called (nothing here unwinds: the panic handler exits).
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor rbp, rbp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym start_rust,
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, sp",
    "and sp, x0, #-16",
    "bl {main}",
    "brk #1",
    main = sym start_rust,
);

/// Entered from `_start` with the initial stack (argc, argv..., NULL,
/// envp..., NULL). Both slices keep their terminating NULL.
extern "C" fn start_rust(sp: *const usize) -> ! {
    // SAFETY: the kernel's initial stack layout: argc, then argc argv
    // pointers and a NULL, then the envp pointers up to a NULL. The stack
    // lives as long as the process.
    let (argv, envp) = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        let envp = argv.add(argc + 1);
        let mut n = 0;
        while !(*envp.add(n)).is_null() {
            n += 1;
        }
        (
            core::slice::from_raw_parts(argv, argc + 1),
            core::slice::from_raw_parts(envp, n + 1),
        )
    };
    crate::main(argv, envp)
}
