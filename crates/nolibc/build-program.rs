// Shared by the build.rs of crates/init and crates/runtime (`include!`d):
// builds one binary of crates/nolibc (its own cargo project) into OUT_DIR.

fn build_nolibc_program(bin: &str) {
    use std::path::PathBuf;
    use std::process::Command;
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let program = manifest_dir.join("../nolibc");
    for p in [
        "Cargo.toml",
        "build.rs",
        "build-program.rs",
        "src/main.rs",
        "src/exec.rs",
        "src/start.rs",
        "src/sys.rs",
    ] {
        println!("cargo:rerun-if-changed={}", program.join(p).display());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = out.join("program-target");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--quiet", "--offline", "--bin", bin])
        .arg("--manifest-path")
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
    let st = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for {bin}: {e}"));
    assert!(st.success(), "building {bin} (crates/nolibc) failed");
    let built = target_dir.join("release").join(bin);
    std::fs::copy(&built, out.join(bin)).unwrap_or_else(|e| panic!("copying {bin}: {e}"));
}
