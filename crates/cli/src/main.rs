//! `berth`: docker's command line over the Berth engine. Every command is
//! an entry of the command table (`commands/`), which dispatches it,
//! answers `--help` and generates completions.
//!
//! Exit status as docker's: 0, 1 when a command fails, 125 for a usage
//! error (an unknown flag, a missing argument).
#![recursion_limit = "256"]

mod args;
mod build;
mod commands;
mod containers;
mod engine_info;
mod events;
mod fmt;
mod images;
mod inspect;
mod networks;
mod ops;
mod registry;
mod security;
mod serve;
mod tmpl;
mod volumes;

use std::process::ExitCode;

pub use images::{Fail, Res, parse_template, usage, write_formatted};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // A user other than root works inside its own user namespace
    // (berth_engine::rootless); joining it needs a single-threaded process,
    // so this comes first. `--help` and `--version` need no namespace.
    let informational = argv.first().is_none_or(|a| {
        ["--help", "-h", "--version", "-v", "help", "completion"].contains(&a.as_str())
    });
    if !informational && let Err(e) = berth_engine::rootless::enter() {
        eprintln!("Error: {e}");
        return ExitCode::from(125);
    }
    // BERTH_DEBUG=1: phase timings on stderr (the monitor's too).
    if berth_runtime::timing::requested() {
        berth_runtime::timing::enable();
    }
    commands::main(&argv)
}
