//! Builds `program/` (its own cargo project, panic = "abort", static, no
//! libc) and leaves the binary in OUT_DIR for `lib.rs` to embed.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let program = manifest_dir.join("program");
    for p in ["Cargo.toml", "build.rs", "src/main.rs", "src/sys.rs"] {
        println!("cargo:rerun-if-changed={}", program.join(p).display());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = out.join("program-target");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--quiet",
        "--offline",
        "--manifest-path",
    ])
    .arg(program.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir);
    // The outer build's flags and jobserver are not the inner one's.
    for v in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(v);
    }
    let st = cmd.status().expect("running cargo for berth-init");
    assert!(
        st.success(),
        "building berth-init (crates/init/program) failed"
    );
    let built = target_dir.join("release").join("berth-init");
    std::fs::copy(&built, out.join("berth-init")).expect("copying berth-init");
}
