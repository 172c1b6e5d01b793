//! Builds berth-init from crates/nolibc (static, no libc) and leaves the
//! binary in OUT_DIR for `lib.rs` to embed.

include!("../nolibc/build-program.rs");

fn main() {
    build_nolibc_program("berth-init");
}
