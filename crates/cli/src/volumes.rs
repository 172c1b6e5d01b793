//! docker's `volume` commands: `create`, `ls`, `inspect`, `rm`, `prune`.

use std::io::Write;

use berth_engine::{Engine, volumes};
use serde_json::{Value, json};

use crate::args::Parsed;
use crate::containers::{Failure, confirm};

type R<T = ()> = Result<T, Failure>;

pub fn volume_json(e: &Engine, name: &str) -> R<Value> {
    let v = e.db.volume_get(name)?;
    let labels: Value = serde_json::from_str(&v.labels).unwrap_or(json!({}));
    Ok(json!({
        "CreatedAt": v.created_at,
        "Driver": "local",
        "Labels": labels,
        "Mountpoint": berth_engine::spec::volume_data(&e.root, &v.name),
        "Name": v.name,
        "Options": null,
        "Scope": "local",
    }))
}

pub fn create(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
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
    volumes::ensure(e, &name, false)?;
    writeln!(out, "{name}")?;
    Ok(())
}

pub fn ls(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
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

pub fn inspect(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    crate::inspect::typed(e, p, out, "volume")
}

pub fn rm(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
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

pub fn prune(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
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
