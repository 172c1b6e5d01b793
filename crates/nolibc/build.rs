//! berth-init runs inside any image (busybox, scratch): it is linked
//! statically, without libc or Rust's start files (its own `_start`).
fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
