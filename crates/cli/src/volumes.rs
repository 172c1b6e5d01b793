//! docker's `volume` commands: `create`, `ls`, `inspect`, `rm`, `prune`.

use std::collections::BTreeMap;
use std::io::Write;

use berth_engine::{Engine, volumes};
use serde_json::{Value, json};

use crate::args::Parsed;
use crate::containers::{Failure, confirm, fail};

type R<T = ()> = Result<T, Failure>;

pub fn volume_json(e: &Engine, name: &str) -> R<Value> {
    let v = e.db.volume_get(name)?;
    let labels: Value = serde_json::from_str(&v.labels).unwrap_or(json!({}));
    let opts = volumes::options(&e.root, name)?;
    Ok(json!({
        "CreatedAt": v.created_at,
        "Driver": "local",
        "Labels": labels,
        "Mountpoint": berth_engine::spec::volume_data(&e.root, &v.name),
        "Name": v.name,
        "Options": if opts.is_empty() { Value::Null } else { json!(opts) },
        "Scope": "local",
    }))
}

/// `KEY=VALUE` pairs of repeated flags (`--label`, `-o`); a bare KEY has an
/// empty value.
fn pairs(values: &[String]) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
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
    volumes::create(
        e,
        &name,
        false,
        &pairs(p.all("label")),
        &pairs(p.all("opt")),
    )?;
    writeln!(out, "{name}")?;
    Ok(())
}

/// Whether volume row `v` passes every `--filter` (docker's name, label,
/// dangling and driver keys).
fn volume_matches(e: &Engine, v: &Value, filters: &[String]) -> R<bool> {
    let name = v["Name"].as_str().unwrap_or("");
    for f in filters {
        let Some((key, want)) = f.split_once('=') else {
            return fail(
                1,
                format!("bad format of filter (expected name=value): {f}"),
            );
        };
        let hit = match key {
            "name" => name.contains(want),
            "driver" => want == "local",
            "label" => {
                let (k, val) = match want.split_once('=') {
                    Some((k, val)) => (k, Some(val)),
                    None => (want, None),
                };
                match v["Labels"].get(k) {
                    Some(x) => val.is_none_or(|val| x.as_str() == Some(val)),
                    None => false,
                }
            }
            "dangling" => {
                let dangling = match want {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return fail(1, format!("invalid filter 'dangling={want}'")),
                };
                volumes::users(e, name)?.is_empty() == dangling
            }
            _ => return fail(1, format!("invalid filter '{key}'")),
        };
        if !hit {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn ls(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let mut vals = Vec::new();
    for v in e.db.volume_list()? {
        let j = volume_json(e, &v.name)?;
        if volume_matches(e, &j, p.all("filter"))? {
            vals.push(j);
        }
    }
    if p.bool("quiet") {
        for v in &vals {
            writeln!(out, "{}", v["Name"].as_str().unwrap_or(""))?;
        }
        return Ok(());
    }
    // docker's list row: Labels as `k=v,…` text (`{{.Label "k"}}` reads it).
    let rows: Vec<Value> = vals
        .iter()
        .map(|v| {
            let labels = v["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            json!({
                "Driver": "local",
                "Labels": labels,
                "Links": "N/A",
                "Mountpoint": v["Mountpoint"],
                "Name": v["Name"],
                "Scope": "local",
                "Size": "N/A",
            })
        })
        .collect();
    let header = json!({
        "Driver": "DRIVER", "Labels": "LABELS", "Links": "LINKS",
        "Mountpoint": "MOUNTPOINT", "Name": "VOLUME NAME", "Scope": "SCOPE", "Size": "SIZE",
    });
    let format = p
        .value("format")
        .filter(|f| !f.is_empty())
        .unwrap_or("table");
    crate::write_formatted(out, format, "{{.Driver}}\t{{.Name}}", &header, &rows)
        .map_err(Failure::from)
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
    let filter = berth_engine::prune::PruneFilter::parse(p.all("filter"))?;
    if !p.bool("force")
        && !confirm(
            "WARNING! This will remove anonymous local volumes not used by at least one container.",
        )?
    {
        return Ok(());
    }
    let (removed, bytes) = e.prune_volumes(p.bool("all"), &filter)?;
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
