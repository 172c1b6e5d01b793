//! docker's `volume` commands: `create`, `ls`, `inspect`, `rm`, `prune`.

use std::io::Write;

use berth_engine::{Engine, volumes};

use crate::args::{flag, parse};
use crate::containers::{Failure, confirm};

type R<T = ()> = Result<T, Failure>;

pub fn run(e: &mut Engine, cmd: &str, argv: &[String], out: &mut dyn Write) -> R {
    match cmd {
        "volume create" => {
            let p = parse(
                argv,
                &[
                    flag("name", None, true),
                    flag("label", Some('l'), true),
                    flag("driver", Some('d'), true),
                ],
                false,
            )?;
            if let Some(d) = p.value("driver").filter(|d| *d != "local") {
                return Err(berth_engine::Error::Other(format!(
                    "volume driver {d:?} is not supported (local is)"
                ))
                .into());
            }
            let name = match (p.value("name"), p.args.first().map(String::as_str)) {
                (Some(n), _) | (None, Some(n)) => n.to_string(),
                (None, None) => berth_engine::names::new_id()?,
            };
            let labels = p
                .all("label")
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            volumes::create(e, &name, false, &labels)?;
            writeln!(out, "{name}")?;
            Ok(())
        }
        "volume ls" => {
            let p = parse(
                argv,
                &[
                    flag("quiet", Some('q'), false),
                    flag("filter", Some('f'), true),
                    flag("format", None, true),
                ],
                false,
            )?;
            let vols = e.db.volume_list()?;
            if p.bool("quiet") {
                for v in vols {
                    writeln!(out, "{}", v.name)?;
                }
                return Ok(());
            }
            let mut rows = vec![vec!["DRIVER".to_string(), "VOLUME NAME".to_string()]];
            for v in vols {
                rows.push(vec!["local".into(), v.name]);
            }
            write!(out, "{}", crate::fmt::table(&rows))?;
            Ok(())
        }
        "volume inspect" => {
            let p = parse(argv, &[flag("format", Some('f'), true)], false)?;
            let mut vals = vec![];
            for n in &p.args {
                vals.push(berth_engine::inspect::volume_json(e, n)?);
            }
            match p.value("format") {
                Some(f) => {
                    let t = crate::parse_template(f).map_err(|_| {
                        Failure::from(berth_engine::Error::Other("template parsing error".into()))
                    })?;
                    for v in &vals {
                        let s = t
                            .execute(v, false)
                            .map_err(|x| Failure::from(berth_engine::Error::Other(x.0)))?;
                        writeln!(out, "{s}")?;
                    }
                }
                None => writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&vals).unwrap_or_default()
                )?,
            }
            Ok(())
        }
        "volume rm" => {
            let p = parse(argv, &[flag("force", Some('f'), false)], false)?;
            let mut failed = None;
            for n in &p.args {
                match volumes::remove(e, n, false) {
                    Ok(()) => writeln!(out, "{n}")?,
                    Err(berth_engine::Error::NoSuchVolume(_)) if p.bool("force") => {}
                    Err(x) => {
                        eprintln!("Error: {x}");
                        failed = Some(());
                    }
                }
            }
            match failed {
                Some(()) => Err(Failure {
                    code: 1,
                    msg: String::new(),
                    usage: false,
                }),
                None => Ok(()),
            }
        }
        "volume prune" => {
            let p = parse(
                argv,
                &[
                    flag("force", Some('f'), false),
                    flag("all", Some('a'), false),
                    flag("filter", None, true),
                ],
                false,
            )?;
            if !p.bool("force")
                && !confirm(
                    "WARNING! This will remove anonymous local volumes not used by at least one container.",
                )?
            {
                return Ok(());
            }
            let (removed, bytes) = volumes::prune(e, p.bool("all"))?;
            writeln!(out, "Deleted Volumes:")?;
            for n in removed {
                writeln!(out, "{n}")?;
            }
            writeln!(
                out,
                "\nTotal reclaimed space: {}",
                crate::fmt::human_size(bytes)
            )?;
            Ok(())
        }
        _ => Err(crate::args::Usage(format!("'{cmd}' is not a berth command")).into()),
    }
}
