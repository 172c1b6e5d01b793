/work/main/crates/init/program/target/release/deps/berth_init-4a13a6b3f2c60f57.d: src/main.rs src/sys.rs Cargo.toml

/work/main/crates/init/program/target/release/deps/libberth_init-4a13a6b3f2c60f57.rmeta: src/main.rs src/sys.rs Cargo.toml

src/main.rs:
src/sys.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
