//! `berth serve`: the Docker Engine API on a socket (`berth-api`).
//!
//! ```text
//! berth [--root DIR] serve [-H unix:///run/berth.sock]... [-H tcp://ADDR:PORT --insecure-tcp]
//! ```

use std::path::{Path, PathBuf};

use crate::args::Parsed;
use crate::containers::Failure;

fn usage(msg: impl Into<String>) -> Failure {
    Failure {
        code: 125,
        msg: msg.into(),
        usage: true,
    }
}

/// `berth serve` (the command table's handler): serves until stopped.
pub fn serve(root: &Path, p: &Parsed, _out: &mut dyn std::io::Write) -> Result<(), Failure> {
    if !p.args.is_empty() {
        return Err(usage("\"serve\" accepts no arguments"));
    }
    let root = root.to_path_buf();
    let verify = p.bool("tlsverify");
    let tls = if p.bool("tls") || verify {
        let file = |f: &str| {
            p.value(f)
                .map(PathBuf::from)
                .ok_or_else(|| usage(format!("--{f} is required with --tls/--tlsverify")))
        };
        Some(berth_api::tls::TlsFiles {
            cert: file("tlscert")?,
            key: file("tlskey")?,
            ca: if verify {
                Some(file("tlscacert")?)
            } else {
                p.value("tlscacert").map(PathBuf::from)
            },
            verify,
        })
    } else {
        if ["tlscacert", "tlscert", "tlskey"]
            .iter()
            .any(|f| p.value(f).is_some())
        {
            return Err(usage(
                "--tlscacert, --tlscert and --tlskey need --tls or --tlsverify",
            ));
        }
        None
    };
    let opts = berth_api::ServeOptions {
        hosts: p.all("host").to_vec(),
        root,
        exe: PathBuf::from("/proc/self/exe"),
        tls,
        insecure_tcp: p.bool("insecure-tcp"),
    };
    berth_api::serve(opts).map_err(|e| Failure {
        code: 125,
        msg: e.to_string(),
        usage: false,
    })
}
