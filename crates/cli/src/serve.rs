//! `berth serve`: the Docker Engine API on a socket (`berth-api`).
//!
//! ```text
//! berth [--root DIR] serve [-H unix:///run/berth.sock]... [-H tcp://ADDR:PORT --insecure-tcp]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use crate::args::{flag, parse};

const SERVE: &[crate::args::Flag] = &[
    flag("host", Some('H'), true),
    flag("tls", None, false),
    flag("tlsverify", None, false),
    flag("tlscacert", None, true),
    flag("tlscert", None, true),
    flag("tlskey", None, true),
    flag("insecure-tcp", None, false),
    flag("help", Some('h'), false),
];

const HELP: &str = "Usage:  berth serve [OPTIONS]

Serve the Docker Engine API (DOCKER_HOST=unix:///run/berth.sock docker ...).
Containers keep running when the server stops.

Options:
  -H, --host list       Socket to listen on: unix:///PATH (default unix:///run/berth.sock),
                        tcp://ADDR:PORT, fd:// (systemd socket activation)
      --insecure-tcp    Allow tcp:// without TLS (anyone reaching the port is root)
      --tls             TLS on tcp:// with --tlscert and --tlskey
      --tlsverify       TLS, and clients must show a certificate signed by --tlscacert
";

/// `berth [--root DIR] serve …`: None when the command is another one.
pub fn dispatch(argv: &[String]) -> Option<ExitCode> {
    let mut root = None;
    let mut i = 0;
    while i < argv.len() {
        match argv[i].as_str() {
            "--root" => {
                root = argv.get(i + 1).cloned();
                i += 2;
            }
            a if a.starts_with("--root=") => {
                root = Some(a["--root=".len()..].to_string());
                i += 1;
            }
            "serve" => break,
            _ => return None,
        }
    }
    if argv.get(i).map(String::as_str) != Some("serve") {
        return None;
    }
    Some(match serve(root, &argv[i + 1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Err125(m)) => {
            eprintln!("berth: {m}\nSee 'berth serve --help'.");
            ExitCode::from(125)
        }
    })
}

struct Err125(String);

fn serve(root: Option<String>, argv: &[String]) -> Result<(), Err125> {
    let p = parse(argv, SERVE, false).map_err(|u| Err125(u.0))?;
    if p.bool("help") {
        print!("{HELP}");
        return Ok(());
    }
    if !p.args.is_empty() {
        return Err(Err125("\"serve\" accepts no arguments".into()));
    }
    let root = berth_engine::state_root(root.as_deref());
    let verify = p.bool("tlsverify");
    let tls = if p.bool("tls") || verify {
        let file = |f: &str| {
            p.value(f)
                .map(PathBuf::from)
                .ok_or_else(|| Err125(format!("--{f} is required with --tls/--tlsverify")))
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
            return Err(Err125(
                "--tlscacert, --tlscert and --tlskey need --tls or --tlsverify".into(),
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
    berth_api::serve(opts).map_err(|e| {
        eprintln!("Error: {e}");
        Err125(String::new())
    })
}
