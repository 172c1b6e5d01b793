//! cgroup v2 device control: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` built from `linux.resources.devices`.
//!
//! cgroup v2 has no `devices.allow`/`devices.deny` files. The kernel instead
//! runs every eBPF program attached to the cgroup (attach type
//! `BPF_CGROUP_DEVICE`) on each open/mknod of a device node; access is
//! granted only when all of them return 1. This is what runc
//! (`libcontainer/cgroups/devices/devicefilter.go`, `ebpf_linux.go`) and crun
//! (`ebpf.c`) do; the module talks to `bpf(2)` directly, with no eBPF crate.
//!
//! * [`program`] turns a rule list into instructions (see there for the
//!   exact semantics),
//! * [`apply`] loads them and attaches them to a cgroup directory, replacing
//!   what was attached before,
//! * [`default_allowed`] lists the devices every container gets (runc's
//!   `AllowedDevices`); callers append them after the spec's rules.

use std::ffi::CStr;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// One rule of `linux.resources.devices` (runtime-spec config-linux.md,
/// "Allowed Device Whitelist").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// `'a'` (all), `'c'` or `'b'`; `None` means all. `'p'` (FIFO) is
    /// accepted and ignored: the kernel never asks about FIFOs.
    pub typ: Option<char>,
    /// `None` or negative: any major (`*`).
    pub major: Option<i64>,
    /// `None` or negative: any minor (`*`).
    pub minor: Option<i64>,
    /// A subset of `"rwm"`; empty means `"rwm"`.
    pub access: String,
}

impl DeviceRule {
    fn new(allow: bool, typ: char, major: i64, minor: i64, access: &str) -> Self {
        DeviceRule {
            allow,
            typ: Some(typ),
            major: Some(major),
            minor: Some(minor),
            access: access.to_string(),
        }
    }
}

/// The devices runc always allows (its `AllowedDevices`), to be appended
/// *after* the spec's rules so that they win: mknod of any char or block
/// device (creating a node grants nothing by itself), `/dev/null`, `zero`,
/// `full`, `random`, `urandom`, `tty`, `console`, `ptmx`, the ptys
/// (`136:*`) and `/dev/net/tun`.
pub fn default_allowed() -> Vec<DeviceRule> {
    let any = -1;
    vec![
        DeviceRule::new(true, 'c', any, any, "m"),
        DeviceRule::new(true, 'b', any, any, "m"),
        DeviceRule::new(true, 'c', 1, 3, "rwm"), // /dev/null
        DeviceRule::new(true, 'c', 1, 5, "rwm"), // /dev/zero
        DeviceRule::new(true, 'c', 1, 7, "rwm"), // /dev/full
        DeviceRule::new(true, 'c', 1, 8, "rwm"), // /dev/random
        DeviceRule::new(true, 'c', 1, 9, "rwm"), // /dev/urandom
        DeviceRule::new(true, 'c', 5, 0, "rwm"), // /dev/tty
        DeviceRule::new(true, 'c', 5, 1, "rwm"), // /dev/console
        DeviceRule::new(true, 'c', 5, 2, "rwm"), // /dev/ptmx
        DeviceRule::new(true, 'c', 136, any, "rwm"), // /dev/pts/*
        DeviceRule::new(true, 'c', 10, 200, "rwm"), // /dev/net/tun
    ]
}

// ---------------------------------------------------------------------------
// Instructions

/// One eBPF instruction, as the kernel reads it (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode: class | operation | source.
    pub code: u8,
    /// `dst_reg:4, src_reg:4` (C bit-field order: dst in the low nibble on
    /// little-endian machines).
    pub regs: u8,
    /// Jump offset (in instructions, from the next one) or memory offset.
    pub off: i16,
    pub imm: i32,
}

const _: () = assert!(std::mem::size_of::<Insn>() == 8);

// Instruction classes, operations and sources (linux/bpf_common.h, bpf.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JA: u8 = 0x00;
const BPF_JNE: u8 = 0x50;
const BPF_JSET: u8 = 0x40;
const BPF_EXIT: u8 = 0x90;

// The opcodes the program uses.
const OP_LDXW: u8 = BPF_LDX | BPF_MEM | BPF_W;
const OP_AND32_IMM: u8 = BPF_ALU | BPF_AND | BPF_K;
const OP_RSH32_IMM: u8 = BPF_ALU | BPF_RSH | BPF_K;
const OP_MOV32_IMM: u8 = BPF_ALU | BPF_MOV | BPF_K;
const OP_JA: u8 = BPF_JMP | BPF_JA;
const OP_JNE_IMM: u8 = BPF_JMP | BPF_JNE | BPF_K;
const OP_JSET_IMM: u8 = BPF_JMP | BPF_JSET | BPF_K;
const OP_EXIT: u8 = BPF_JMP | BPF_EXIT;

// Registers: R0 = return value, R1 = context on entry.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// access_type = (access << 16) | type.
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;
const BPF_DEVCG_ACC_MKNOD: u8 = 1;
const BPF_DEVCG_ACC_READ: u8 = 2;
const BPF_DEVCG_ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        let regs = if cfg!(target_endian = "big") {
            (dst << 4) | (src & 0xf)
        } else {
            (src << 4) | (dst & 0xf)
        };
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }

    /// The destination register.
    pub fn dst(&self) -> u8 {
        if cfg!(target_endian = "big") {
            self.regs >> 4
        } else {
            self.regs & 0xf
        }
    }

    /// The source register.
    pub fn src(&self) -> u8 {
        if cfg!(target_endian = "big") {
            self.regs & 0xf
        } else {
            self.regs >> 4
        }
    }
}

/// A short disassembly, for logs and test failures.
impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, s, off, imm) = (self.dst(), self.src(), self.off, self.imm);
        match self.code {
            OP_LDXW => write!(f, "r{d} = *(u32 *)(r{s} {off:+})"),
            OP_AND32_IMM => write!(f, "w{d} &= {imm:#x}"),
            OP_RSH32_IMM => write!(f, "w{d} >>= {imm}"),
            OP_MOV32_IMM => write!(f, "w{d} = {imm}"),
            OP_JA => write!(f, "goto {off:+}"),
            OP_JNE_IMM => write!(f, "if r{d} != {imm} goto {off:+}"),
            OP_JSET_IMM => write!(f, "if r{d} & {imm:#x} goto {off:+}"),
            OP_EXIT => write!(f, "exit"),
            c => write!(f, "op {c:#04x} r{d} r{s} {off:+} {imm}"),
        }
    }
}

/// A tiny assembler: instructions plus forward jumps to labels.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    /// Label -> index of the instruction it names, once bound.
    labels: Vec<Option<usize>>,
    /// (index of a jump, label it goes to).
    fixups: Vec<(usize, usize)>,
}

impl Asm {
    fn emit(&mut self, insn: Insn) {
        self.insns.push(insn);
    }

    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn bind(&mut self, label: usize) {
        self.labels[label] = Some(self.insns.len());
    }

    fn jump(&mut self, insn: Insn, label: usize) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(insn);
    }

    fn is_used(&self, label: usize) -> bool {
        self.fixups.iter().any(|&(_, l)| l == label)
    }

    fn finish(mut self) -> Vec<Insn> {
        for &(at, label) in &self.fixups {
            let target = self.labels[label].expect("jump to an unbound label");
            let off = target as isize - (at as isize + 1);
            self.insns[at].off = i16::try_from(off).expect("BPF program too long for a jump");
        }
        self.insns
    }
}

/// The most rules [`validate`] accepts: keeps every jump within `i16` (at
/// most 4 instructions per rule and access bit).
pub const MAX_RULES: usize = 2048;

/// The access bits of a rule (empty means all).
fn rule_access(rule: &DeviceRule) -> u8 {
    let mut acc = 0;
    for c in rule.access.chars() {
        acc |= match c {
            'r' => BPF_DEVCG_ACC_READ,
            'w' => BPF_DEVCG_ACC_WRITE,
            'm' => BPF_DEVCG_ACC_MKNOD,
            _ => 0,
        };
    }
    if rule.access.is_empty() { ACC_ALL } else { acc }
}

/// What a rule compares: (type, major, minor), `None` = wildcard. `None`
/// overall when the rule can match no device the kernel asks about: a FIFO
/// or unknown type, or a number no `dev_t` has (the kernel's majors have 12
/// bits and minors 20, so anything above `i32::MAX` is safely out).
fn rule_match(rule: &DeviceRule) -> Option<(Option<i32>, Option<i32>, Option<i32>)> {
    let typ = match rule.typ {
        None | Some('a') => None,
        Some('c') => Some(BPF_DEVCG_DEV_CHAR),
        Some('b') => Some(BPF_DEVCG_DEV_BLOCK),
        Some(_) => return None,
    };
    let num = |n: Option<i64>| -> Option<Option<i32>> {
        match n {
            None => Some(None),
            Some(n) if n < 0 => Some(None),
            Some(n) => i32::try_from(n).ok().map(Some),
        }
    };
    Some((typ, num(rule.major)?, num(rule.minor)?))
}

/// The BPF program for a rule list.
///
/// # Semantics
///
/// The kernel asks about one device and a *set* of access bits at a time
/// (`open(O_RDWR)` asks for read|write, `mknod` for mknod). The program
/// answers it this way:
///
/// * **Each requested bit on its own:** for bit X in {m, r, w} the *last*
///   rule that matches the device (type, major, minor; unset or `a` or
///   negative = any) and whose access contains X decides: allow or deny.
/// * **No rule for a bit: deny.**
/// * The request is allowed only when every requested bit is allowed.
///
/// Why: "last rule wins" is the ordering every runtime uses (a leading
/// `deny all` then allows is the Docker/podman idiom; runc appends its
/// always-allowed devices *after* the spec's rules so that they win; crun
/// emits the rules backwards and returns on the first match). Default deny
/// is what runc and crun do (runc's device emulator starts as a
/// white-list; crun's program ends with `return 0`). Deciding bit by bit
/// rather than with runc's/crun's "the rule's access must cover all of the
/// request" check closes a hole in theirs: with `allow a`, then
/// `deny c 1:3 w`, an `open(O_RDWR)` of 1:3 asks for `rw`, which the deny
/// rule does not cover, so their program falls through to `allow a` (cgroup
/// v1 itself denies it: its deny exceptions match on *any* common bit).
/// Per bit, the outcome equals cgroup v1's for the lists v1 can express, and
/// lists v1 cannot (a hole in a wildcard rule, which runc's emulator
/// rejects) simply work.
///
/// Unlike cgroup v1, where an `a` rule always means "all devices, all
/// access" whatever else it says, the fields are taken literally as the
/// runtime-spec defines them: `{type: a, access: r}` allows reading of all
/// devices, nothing more.
///
/// Rules that [`validate`] rejects are handled conservatively here: unknown
/// access letters are ignored; a rule with an unknown or `p` type, or with a
/// number above `i32::MAX` (no device has it), never matches. Panics with
/// more than [`MAX_RULES`] rules (the jumps would overflow).
///
/// # Shape
///
/// ```text
///   r2 = type; r3 = access; r4 = major; r5 = minor
///   for X in m, r, w:
///       if !(r3 & X) goto end_X
///       for each rule with X, last first:
///           if r2 != type  goto next      (unless any type)
///           if r4 != major goto next      (unless any major)
///           if r5 != minor goto next      (unless any minor)
///           goto end_X | goto deny         (allow | deny)
///         next:
///       goto deny                          (unless a rule matched everything)
///     end_X:
///   return 1
/// deny:
///   return 0
/// ```
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut a = Asm::default();
    // Unpack struct bpf_cgroup_dev_ctx (R1) as runc and crun do.
    a.emit(Insn::new(OP_LDXW, R2, R1, 0, 0));
    a.emit(Insn::new(OP_AND32_IMM, R2, 0, 0, 0xffff));
    a.emit(Insn::new(OP_LDXW, R3, R1, 0, 0));
    a.emit(Insn::new(OP_RSH32_IMM, R3, 0, 0, 16));
    a.emit(Insn::new(OP_LDXW, R4, R1, 4, 0));
    a.emit(Insn::new(OP_LDXW, R5, R1, 8, 0));

    let deny = a.label();
    for bit in [BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE] {
        let end = a.label();
        let eval = a.label();
        a.jump(Insn::new(OP_JSET_IMM, R3, 0, 0, i32::from(bit)), eval);
        a.jump(Insn::new(OP_JA, 0, 0, 0, 0), end);
        a.bind(eval);
        let mut decided = false;
        for rule in rules.iter().rev() {
            if rule_access(rule) & bit == 0 {
                continue;
            }
            let Some((typ, major, minor)) = rule_match(rule) else {
                continue;
            };
            let next = a.label();
            for (reg, want) in [(R2, typ), (R4, major), (R5, minor)] {
                if let Some(v) = want {
                    a.jump(Insn::new(OP_JNE_IMM, reg, 0, 0, v), next);
                }
            }
            let to = if rule.allow { end } else { deny };
            a.jump(Insn::new(OP_JA, 0, 0, 0, 0), to);
            a.bind(next);
            if typ.is_none() && major.is_none() && minor.is_none() {
                // Matches everything: earlier rules cannot matter, and code
                // after it would be unreachable (which the verifier rejects).
                decided = true;
                break;
            }
        }
        if !decided {
            a.jump(Insn::new(OP_JA, 0, 0, 0, 0), deny);
        }
        a.bind(end);
    }
    a.emit(Insn::new(OP_MOV32_IMM, R0, 0, 0, 1));
    a.emit(Insn::new(OP_EXIT, 0, 0, 0, 0));
    // Only when something jumps there: unreachable code fails verification.
    if a.is_used(deny) {
        a.bind(deny);
        a.emit(Insn::new(OP_MOV32_IMM, R0, 0, 0, 0));
        a.emit(Insn::new(OP_EXIT, 0, 0, 0, 0));
    }
    a.finish()
}

/// Checks a rule list the way runc does: type `a`, `b`, `c` (or `p`, which is
/// ignored), access a subset of `rwm`, numbers within `u32`, at most
/// [`MAX_RULES`] rules. The message names the offending rule.
pub fn validate(rules: &[DeviceRule]) -> std::result::Result<(), String> {
    if rules.len() > MAX_RULES {
        return Err(format!(
            "{} device rules, at most {MAX_RULES} are supported",
            rules.len()
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        if let Some(t) = r.typ.filter(|t| !matches!(t, 'a' | 'b' | 'c' | 'p')) {
            return Err(format!("device rule {i}: invalid type {t:?}"));
        }
        if let Some(c) = r.access.chars().find(|c| !matches!(c, 'r' | 'w' | 'm')) {
            return Err(format!(
                "device rule {i}: invalid access {c:?} in {:?}",
                r.access
            ));
        }
        for (what, n) in [("major", r.major), ("minor", r.minor)] {
            if let Some(n) = n.filter(|&n| n > i64::from(u32::MAX)) {
                return Err(format!("device rule {i}: invalid {what} {n}"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// bpf(2)

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// Not GPL: the program calls no helper at all, GPL-only or not (runc
/// says "Apache").
const LICENSE: &CStr = c"Apache-2.0";
/// Shows in `bpftool prog`; at most 15 bytes of `[A-Za-z0-9_.]`.
const PROG_NAME: &[u8] = b"berth_devices";

/// `union bpf_attr` for BPF_PROG_LOAD, up to `prog_name` (kernel 4.15, as
/// old as cgroup device programs).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// `union bpf_attr` for BPF_PROG_ATTACH and BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `union bpf_attr` for BPF_PROG_QUERY (the fields of kernel 4.15).
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    /// Explicit tail padding, so that it is zero (the kernel checks).
    _pad: u32,
}

/// `union bpf_attr` for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The raw system call.
///
/// # Safety
///
/// Every pointer stored (as an integer) in `attr` must be valid for what
/// `cmd` does with it for the duration of the call: readable for inputs,
/// writable for outputs, with the lengths given next to it.
unsafe fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    let size = std::mem::size_of::<T>() as libc::c_uint;
    // SAFETY: `attr` is a valid, exclusively borrowed object of `size`
    // bytes; the caller vouches for the pointers inside it.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Takes ownership of a descriptor bpf(2) just returned.
fn owned_fd(r: libc::c_long) -> OwnedFd {
    let fd = libc::c_int::try_from(r).expect("bpf(2) returned an fd out of range");
    // SAFETY: the kernel just created `fd` for us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A failed BPF_PROG_LOAD and, when there is one, the verifier's log.
#[derive(Debug)]
struct LoadError {
    err: io::Error,
    log: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "load BPF program: {}", self.err)?;
        if !self.log.is_empty() {
            write!(f, "; verifier log:\n{}", self.log)?;
        }
        Ok(())
    }
}

/// BPF_PROG_LOAD once, with `log` as the verifier log buffer (if any).
fn prog_load_with(insns: &[Insn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let mut name = [0u8; 16];
    name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    // SAFETY: `insns` points to `insn_cnt` instructions, `license` to a
    // NUL-terminated string, `log_buf` (if set) to `log_size` writable
    // bytes; all outlive the call.
    let r = unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) }?;
    Ok(owned_fd(r))
}

/// Loads a device program; on failure loads it again with a verifier log
/// (its tail, which says what went wrong) to report.
fn prog_load(insns: &[Insn]) -> std::result::Result<OwnedFd, LoadError> {
    let err = match prog_load_with(insns, None) {
        Ok(fd) => return Ok(fd),
        Err(err) => err,
    };
    if matches!(err.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) {
        // No privilege or no bpf(2): a log would not say more.
        return Err(LoadError {
            err,
            log: String::new(),
        });
    }
    let mut buf = vec![0u8; 1 << 20];
    let log = match prog_load_with(insns, Some(&mut buf)) {
        Ok(_) => "(none: loaded fine with a log)".to_string(),
        Err(_) => {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let text = String::from_utf8_lossy(&buf[..end]);
            let text = text.trim_end();
            // The end of the log is what explains the rejection.
            let keep = 8192;
            if text.len() > keep {
                let mut cut = text.len() - keep;
                while !text.is_char_boundary(cut) {
                    cut += 1;
                }
                format!("...{}", &text[cut..])
            } else {
                text.to_string()
            }
        }
    };
    Err(LoadError { err, log })
}

/// BPF_PROG_QUERY: the ids of the device programs attached to the cgroup
/// itself (not inherited ones).
fn prog_query(cgroup: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 16];
    loop {
        let mut attr = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        // SAFETY: `prog_ids` points to `prog_cnt` writable u32s that outlive
        // the call.
        match unsafe { sys_bpf(BPF_PROG_QUERY, &mut attr) } {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // More programs than room: prog_cnt says how many there are.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && ids.len() < 1 << 16 => {
                let n = (attr.prog_cnt as usize).max(ids.len() * 2);
                ids = vec![0; n];
            }
            Err(e) => return Err(e),
        }
    }
}

/// How many device programs are attached to the cgroup directory `dir`
/// (cgroup v2; what `berth security` reports as the device filter in force).
pub fn attached_programs(dir: &Path) -> io::Result<usize> {
    let fd = crate::sys::openat(None, dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    prog_query(fd.as_fd()).map(|ids| ids.len())
}

/// BPF_PROG_GET_FD_BY_ID.
fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetIdAttr {
        prog_id: id,
        ..Default::default()
    };
    // SAFETY: no pointers in this command.
    let r = unsafe { sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }?;
    Ok(owned_fd(r))
}

/// BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI (or BPF_PROG_DETACH).
fn prog_attach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>, detach: bool) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: if detach { 0 } else { BPF_F_ALLOW_MULTI },
        replace_bpf_fd: 0,
    };
    let cmd = if detach {
        BPF_PROG_DETACH
    } else {
        BPF_PROG_ATTACH
    };
    // SAFETY: no pointers in these commands (descriptors only).
    unsafe { sys_bpf(cmd, &mut attr) }.map(drop)
}

/// Loads the program for `rules` and attaches it to the cgroup v2
/// directory `cgroup_dir` (with `BPF_F_ALLOW_MULTI`), then detaches the
/// device programs attached there before, as runc does: the cgroup is the
/// container's own, so they are earlier versions of this one. The new
/// program is attached before the old ones go, so there is no moment
/// without a filter (while both are attached, the kernel allows only what
/// both allow).
///
/// `rules` are used as given: append [`default_allowed`] first when the
/// container should get the usual devices.
pub fn apply(cgroup_dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let fail = |msg: String| Error::Cgroup {
        controller: "devices".into(),
        msg: format!("{}: {msg}", cgroup_dir.display()),
    };
    validate(rules).map_err(fail)?;
    let insns = program(rules);
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(cgroup_dir)
        .map_err(|e| fail(format!("open: {e}")))?;
    let old =
        prog_query(dir.as_fd()).map_err(|e| fail(format!("query attached BPF programs: {e}")))?;
    let prog = prog_load(&insns).map_err(|e| fail(e.to_string()))?;
    prog_attach(dir.as_fd(), prog.as_fd(), false)
        .map_err(|e| fail(format!("attach BPF program: {e}")))?;
    for id in old {
        let fd = match prog_fd_by_id(id) {
            Ok(fd) => fd,
            // Already gone.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(fail(format!("get BPF program {id}: {e}"))),
        };
        match prog_attach(dir.as_fd(), fd.as_fd(), true) {
            Ok(()) => {}
            // Detached meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(fail(format!("detach old BPF program {id}: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::fd::RawFd;
    use std::path::PathBuf;

    fn rule(allow: bool, typ: Option<char>, major: i64, minor: i64, access: &str) -> DeviceRule {
        DeviceRule {
            allow,
            typ,
            major: Some(major),
            minor: Some(minor),
            access: access.into(),
        }
    }

    fn deny_all() -> DeviceRule {
        DeviceRule {
            allow: false,
            typ: None,
            major: None,
            minor: None,
            access: "rwm".into(),
        }
    }

    fn allow_all() -> DeviceRule {
        DeviceRule {
            allow: true,
            ..deny_all()
        }
    }

    const M: u32 = BPF_DEVCG_ACC_MKNOD as u32;
    const R: u32 = BPF_DEVCG_ACC_READ as u32;
    const W: u32 = BPF_DEVCG_ACC_WRITE as u32;
    const CHR: u32 = BPF_DEVCG_DEV_CHAR as u32;
    const BLK: u32 = BPF_DEVCG_DEV_BLOCK as u32;

    /// Runs a program on a `bpf_cgroup_dev_ctx` like the kernel would (for
    /// the instructions `program` emits).
    fn run(insns: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut reg = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..100_000 {
            let i = insns[pc];
            let (d, imm) = (i.dst() as usize, i.imm);
            pc += 1;
            let jump = |pc: usize| (pc as isize + i.off as isize) as usize;
            match i.code {
                OP_LDXW => {
                    assert_eq!(i.src(), R1, "loads only from the context");
                    reg[d] = u64::from(ctx[i.off as usize / 4]);
                }
                OP_AND32_IMM => reg[d] = u64::from(reg[d] as u32 & imm as u32),
                OP_RSH32_IMM => reg[d] = u64::from((reg[d] as u32) >> imm),
                OP_MOV32_IMM => reg[d] = u64::from(imm as u32),
                OP_JA => pc = jump(pc),
                OP_JNE_IMM => {
                    if reg[d] != imm as i64 as u64 {
                        pc = jump(pc)
                    }
                }
                OP_JSET_IMM => {
                    if reg[d] & (imm as i64 as u64) != 0 {
                        pc = jump(pc)
                    }
                }
                OP_EXIT => return reg[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
            assert!(pc < insns.len(), "ran off the program");
        }
        panic!("program does not terminate");
    }

    /// The semantics `program` documents, written plainly.
    fn reference(rules: &[DeviceRule], typ: u32, access: u32, major: u32, minor: u32) -> bool {
        [M, R, W].iter().filter(|&&b| access & b != 0).all(|&bit| {
            rules
                .iter()
                .rev()
                .find(|r| {
                    let t = match r.typ {
                        None | Some('a') => true,
                        Some('c') => typ == CHR,
                        Some('b') => typ == BLK,
                        _ => false,
                    };
                    let n = |want: Option<i64>, have: u32| {
                        want.is_none_or(|w| w < 0 || w == i64::from(have))
                    };
                    t && n(r.major, major)
                        && n(r.minor, minor)
                        && u32::from(rule_access(r)) & bit != 0
                })
                .is_some_and(|r| r.allow)
        })
    }

    /// Compares the program with `reference` over many requests.
    fn check_against_reference(rules: &[DeviceRule]) {
        let insns = program(rules);
        for typ in [BLK, CHR] {
            for access in 1..=7 {
                for major in [0, 1, 5, 10, 136, 4095] {
                    for minor in [0, 1, 3, 5, 200, 1 << 19] {
                        let want = reference(rules, typ, access, major, minor);
                        let got = run(&insns, typ, access, major, minor) == 1;
                        assert_eq!(
                            got, want,
                            "type {typ} access {access} {major}:{minor}, rules {rules:?}"
                        );
                    }
                }
            }
        }
    }

    fn listing(insns: &[Insn]) -> String {
        insns
            .iter()
            .enumerate()
            .map(|(i, x)| format!("{i:2}: {x}\n"))
            .collect()
    }

    fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn::new(code, dst, src, off, imm)
    }

    #[test]
    fn structure_deny_all_allow_null() {
        let rules = [deny_all(), rule(true, Some('c'), 1, 3, "rw")];
        let p = program(&rules);
        let ja = |off| ins(OP_JA, 0, 0, off, 0);
        let want = vec![
            // Prologue.
            ins(OP_LDXW, R2, R1, 0, 0),
            ins(OP_AND32_IMM, R2, 0, 0, 0xffff),
            ins(OP_LDXW, R3, R1, 0, 0),
            ins(OP_RSH32_IMM, R3, 0, 0, 16),
            ins(OP_LDXW, R4, R1, 4, 0),
            ins(OP_LDXW, R5, R1, 8, 0),
            // mknod: only "deny all" has m.
            ins(OP_JSET_IMM, R3, 0, 1, 1), // 6
            ja(1),                         // 7 -> 9
            ja(16),                        // 8 -> deny (25)
            // read: c 1:3 allows, else deny all.
            ins(OP_JSET_IMM, R3, 0, 1, 2), // 9
            ja(5),                         // 10 -> 16
            ins(OP_JNE_IMM, R2, 0, 3, 2),  // 11 -> 15
            ins(OP_JNE_IMM, R4, 0, 2, 1),  // 12
            ins(OP_JNE_IMM, R5, 0, 1, 3),  // 13
            ja(1),                         // 14 -> 16
            ja(9),                         // 15 -> deny
            // write: the same.
            ins(OP_JSET_IMM, R3, 0, 1, 4), // 16
            ja(5),                         // 17 -> 23
            ins(OP_JNE_IMM, R2, 0, 3, 2),
            ins(OP_JNE_IMM, R4, 0, 2, 1),
            ins(OP_JNE_IMM, R5, 0, 1, 3),
            ja(1),
            ja(2), // 22 -> deny
            // 23: allowed.
            ins(OP_MOV32_IMM, R0, 0, 0, 1),
            ins(OP_EXIT, 0, 0, 0, 0),
            // 25: deny.
            ins(OP_MOV32_IMM, R0, 0, 0, 0),
            ins(OP_EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(p, want, "got:\n{}", listing(&p));

        assert_eq!(run(&p, CHR, R, 1, 3), 1);
        assert_eq!(run(&p, CHR, R | W, 1, 3), 1);
        assert_eq!(run(&p, CHR, M, 1, 3), 0);
        assert_eq!(run(&p, CHR, R | M, 1, 3), 0);
        assert_eq!(run(&p, CHR, R, 1, 5), 0);
        assert_eq!(run(&p, BLK, R, 1, 3), 0);
        check_against_reference(&rules);
    }

    #[test]
    fn structure_edge_cases() {
        // No rules: every pass falls to "deny".
        let p = program(&[]);
        assert_eq!(p.len(), 6 + 3 * 3 + 4, "{}", listing(&p));
        assert_eq!(run(&p, CHR, R, 1, 3), 0);
        // Allow all: no deny block (it would be unreachable).
        let p = program(&[allow_all()]);
        assert_eq!(p.len(), 6 + 3 * 3 + 2, "{}", listing(&p));
        assert!(p.iter().all(|i| i.code != OP_JNE_IMM));
        assert_eq!(run(&p, BLK, R | W, 8, 0), 1);
        // Rules before one that matches everything are dropped.
        let p = program(&[rule(true, Some('c'), 1, 3, "rwm"), deny_all()]);
        assert!(p.iter().all(|i| i.code != OP_JNE_IMM), "{}", listing(&p));
        assert_eq!(run(&p, CHR, R, 1, 3), 0);
        // FIFO rules and impossible numbers never match.
        let p = program(&[deny_all(), rule(true, Some('p'), 1, 3, "rwm")]);
        assert_eq!(run(&p, CHR, R, 1, 3), 0);
        let p = program(&[deny_all(), rule(true, Some('c'), 1i64 << 32, 3, "rwm")]);
        assert!(p.iter().all(|i| i.code != OP_JNE_IMM));
        // Empty access means rwm; a wildcard major.
        let p = program(&[deny_all(), rule(true, Some('c'), -1, 3, "")]);
        assert_eq!(run(&p, CHR, R | W, 77, 3), 1);
        assert_eq!(run(&p, CHR, M, 1, 3), 1);
        assert_eq!(run(&p, CHR, R, 1, 4), 0);
    }

    #[test]
    fn semantics() {
        let null = |allow, acc| rule(allow, Some('c'), 1, 3, acc);
        // Partial deny after allow-all: O_RDWR must not slip through.
        let rules = [allow_all(), null(false, "w")];
        let p = program(&rules);
        assert_eq!(run(&p, CHR, R, 1, 3), 1);
        assert_eq!(run(&p, CHR, W, 1, 3), 0);
        assert_eq!(run(&p, CHR, R | W, 1, 3), 0);
        assert_eq!(run(&p, CHR, R | W, 1, 5), 1);
        // Last rule wins.
        let p = program(&[deny_all(), null(true, "rwm"), null(false, "rwm")]);
        assert_eq!(run(&p, CHR, R, 1, 3), 0);
        let p = program(&[deny_all(), null(false, "rwm"), null(true, "rwm")]);
        assert_eq!(run(&p, CHR, R, 1, 3), 1);
        // Bits granted by different rules add up.
        let p = program(&[deny_all(), null(true, "r"), null(true, "w")]);
        assert_eq!(run(&p, CHR, R | W, 1, 3), 1);
        assert_eq!(run(&p, CHR, M, 1, 3), 0);
        // A hole in a wildcard rule.
        let rules = [
            deny_all(),
            rule(true, Some('c'), 1, -1, "rw"),
            null(false, "w"),
        ];
        let p = program(&rules);
        assert_eq!(run(&p, CHR, R, 1, 3), 1);
        assert_eq!(run(&p, CHR, R | W, 1, 3), 0);
        assert_eq!(run(&p, CHR, R | W, 1, 5), 1);
        // Type "a" with numbers is taken literally.
        let p = program(&[rule(true, Some('a'), 8, -1, "r")]);
        assert_eq!(run(&p, BLK, R, 8, 1), 1);
        assert_eq!(run(&p, CHR, R, 8, 1), 1);
        assert_eq!(run(&p, BLK, W, 8, 1), 0);
        assert_eq!(run(&p, BLK, R, 9, 1), 0);

        // The usual container list: deny all, the spec's rules, defaults.
        let mut usual = vec![deny_all(), rule(true, Some('b'), 8, 0, "rw")];
        usual.extend(default_allowed());
        let p = program(&usual);
        assert_eq!(run(&p, CHR, R | W, 1, 3), 1); // null
        assert_eq!(run(&p, CHR, R | W, 136, 4), 1); // a pty
        assert_eq!(run(&p, BLK, M, 253, 1), 1); // mknod of anything
        assert_eq!(run(&p, BLK, R, 253, 1), 0);
        assert_eq!(run(&p, BLK, R, 8, 0), 1);
        assert_eq!(run(&p, BLK, R, 8, 1), 0);
        assert_eq!(run(&p, CHR, R, 4, 1), 0); // tty1

        for rules in [
            &rules[..],
            &usual[..],
            &[allow_all(), null(false, "w"), null(true, "w")][..],
            &[
                deny_all(),
                rule(true, None, -1, 3, "m"),
                rule(false, Some('b'), 1, -1, "r"),
            ][..],
            &[
                rule(true, Some('c'), 136, -1, ""),
                rule(false, Some('c'), -1, 0, "rw"),
            ][..],
            &[][..],
        ] {
            check_against_reference(rules);
        }
    }

    #[test]
    fn validation() {
        let mut usual = vec![deny_all()];
        usual.extend(default_allowed());
        assert_eq!(validate(&usual), Ok(()));
        assert!(validate(&[rule(true, Some('x'), 1, 3, "r")]).is_err());
        assert!(validate(&[rule(true, Some('c'), 1, 3, "rx")]).is_err());
        assert!(validate(&[rule(true, Some('c'), 1i64 << 32, 3, "r")]).is_err());
        assert_eq!(validate(&[rule(true, Some('p'), 1, 3, "")]), Ok(()));
        assert!(validate(&vec![deny_all(); MAX_RULES + 1]).is_err());
        // The longest list still assembles (jumps fit).
        let many: Vec<_> = (0..MAX_RULES as i64)
            .map(|i| rule(i % 2 == 0, Some('c'), i, i, "rw"))
            .collect();
        assert_eq!(validate(&many), Ok(()));
        assert!(program(&many).len() < i16::MAX as usize);
    }

    #[test]
    fn default_list() {
        let d = default_allowed();
        assert_eq!(d.len(), 12);
        assert!(d.iter().all(|r| r.allow));
        assert!(d.contains(&rule(true, Some('c'), 1, 5, "rwm")));
        assert!(d.contains(&rule(true, Some('c'), 10, 200, "rwm")));
        assert!(d.contains(&rule(true, Some('b'), -1, -1, "m")));
    }

    /// Loads programs into the kernel so that the verifier checks them.
    #[test]
    fn kernel_verifier_accepts() {
        let mut usual = vec![deny_all(), rule(true, Some('c'), 1, 3, "rw")];
        usual.extend(default_allowed());
        let many: Vec<_> = (0..300)
            .map(|i| {
                rule(
                    i % 3 != 0,
                    Some(['a', 'b', 'c'][i as usize % 3]),
                    i % 7 - 1,
                    i,
                    "rw",
                )
            })
            .collect();
        let lists: Vec<Vec<DeviceRule>> = vec![
            vec![],
            vec![allow_all()],
            vec![deny_all()],
            vec![deny_all(), rule(true, Some('c'), 1, 3, "rw")],
            vec![allow_all(), rule(false, Some('c'), 1, 3, "w")],
            usual,
            many,
        ];
        for rules in &lists {
            let insns = program(rules);
            match prog_load(&insns) {
                Ok(_) => {}
                Err(e) if matches!(e.err.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) => {
                    println!("skipped: the kernel refuses BPF_PROG_LOAD: {}", e.err);
                    return;
                }
                Err(e) => panic!("{e}\nprogram:\n{}", listing(&insns)),
            }
        }
        // A broken program is refused, with the verifier's log.
        let bad = [ins(OP_MOV32_IMM, R0, 0, 0, 1)];
        let e = prog_load(&bad).expect_err("a program without exit loads");
        assert!(!e.log.is_empty(), "no verifier log: {e}");
        println!("expected failure: {e}");
    }

    #[test]
    fn apply_reports_path() {
        let e = apply(Path::new("/nonexistent/berth-cgroup"), &[deny_all()]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("cgroup devices: /nonexistent/berth-cgroup: open"),
            "{msg}"
        );
        let e = apply(
            Path::new("/nonexistent"),
            &[rule(true, Some('x'), 1, 3, "r")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
    }

    // -- cgroup v2 ---------------------------------------------------------

    fn is_cgroup2(path: &str) -> bool {
        std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
            m.lines().any(|l| {
                let f: Vec<_> = l.split_whitespace().collect();
                f.len() > 2 && f[1] == path && f[2] == "cgroup2"
            })
        })
    }

    /// Removes the test cgroup (once its processes are gone).
    struct Cgroup(PathBuf);

    impl Drop for Cgroup {
        fn drop(&mut self) {
            for _ in 0..100 {
                match std::fs::remove_dir(&self.0) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    }
                    _ => return,
                }
            }
        }
    }

    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }

    /// open(2) then close(2): 0 or the errno. Async-signal-safe.
    fn try_open(path: &CStr, flags: libc::c_int) -> i32 {
        // SAFETY: `path` is a valid C string.
        let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return errno();
        }
        // SAFETY: we own `fd`.
        unsafe { libc::close(fd) };
        0
    }

    /// Writes `data` to the file `path`: 0 or the errno. Async-signal-safe.
    fn try_write_file(path: &CStr, data: &[u8]) -> i32 {
        // SAFETY: `path` is a valid C string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return errno();
        }
        // SAFETY: `data` is readable for its length; we own `fd`.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        let e = if n < 0 { errno() } else { 0 };
        // SAFETY: we own `fd`.
        unsafe { libc::close(fd) };
        e
    }

    /// In a forked child: joins the cgroup, tries /dev/null and /dev/zero,
    /// reports the three errnos on `report`, exits. Only async-signal-safe
    /// calls (the test harness has other threads).
    fn probe_child(procs: &CStr, report: RawFd) -> ! {
        let joined = try_write_file(procs, b"0");
        let null = try_open(c"/dev/null", libc::O_RDWR);
        let zero = try_open(c"/dev/zero", libc::O_RDONLY);
        let mut out = [0u8; 12];
        for (chunk, v) in out.chunks_mut(4).zip([joined, null, zero]) {
            chunk.copy_from_slice(&v.to_ne_bytes());
        }
        // SAFETY: `out` is readable for its length; write and _exit are
        // async-signal-safe.
        unsafe {
            libc::write(report, out.as_ptr().cast(), out.len());
            libc::_exit(0)
        }
    }

    /// Forks a child running `probe_child`; returns its three errnos.
    fn probe_in(cgroup: &Path) -> [i32; 3] {
        let procs = CString::new(
            cgroup
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: pipe2 just created them; we own them.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child only makes async-signal-safe calls
        // (`probe_child`) and never returns.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            probe_child(&procs, wr.as_raw_fd());
        }
        drop(wr);
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid: {}", io::Error::last_os_error());
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status:#x}"
        );
        let mut buf = [0u8; 12];
        let mut file = std::fs::File::from(rd);
        io::Read::read_exact(&mut file, &mut buf).expect("child report");
        let v = |i: usize| i32::from_ne_bytes(buf[i * 4..i * 4 + 4].try_into().unwrap());
        [v(0), v(1), v(2)]
    }

    #[test]
    fn enforces_in_cgroup_v2() {
        if !is_cgroup2("/sys/fs/cgroup") {
            println!("skipped: not a cgroup v2 host");
            return;
        }
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } != 0 {
            println!("skipped: needs root");
            return;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = PathBuf::from(format!(
            "/sys/fs/cgroup/berth-devices-test-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).unwrap();
        let cg = Cgroup(dir);

        // First a program that denies everything, to see `apply` replace it.
        apply(&cg.0, &[deny_all()]).unwrap();
        assert_eq!(probe_in(&cg.0), [0, libc::EPERM, libc::EPERM]);

        let mut rules = vec![deny_all(), rule(true, Some('c'), 1, 3, "rwm")];
        rules.extend(
            default_allowed()
                .into_iter()
                .filter(|r| !(r.major == Some(1) && r.minor == Some(5))),
        );
        apply(&cg.0, &rules).unwrap();
        let dirfd = std::fs::File::open(&cg.0).unwrap();
        let ids = prog_query(dirfd.as_fd()).unwrap();
        assert_eq!(ids.len(), 1, "programs attached: {ids:?}");

        let [joined, null, zero] = probe_in(&cg.0);
        assert_eq!(joined, 0, "joining the cgroup: errno {joined}");
        assert_eq!(null, 0, "/dev/null: errno {null}");
        assert_eq!(zero, libc::EPERM, "/dev/zero: errno {zero}");
        println!("enforced: /dev/null opens, /dev/zero fails with EPERM");
    }
}
