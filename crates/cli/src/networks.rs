//! docker's `network` commands (`create`, `ls`, `inspect`, `rm`, `prune`, `connect`,
//! `disconnect`), `port`, and the network parts of `ps` and `inspect`. The logic is the
//! engine's (`berth_engine::network`); this is flags and output.

use std::io::Write;

// The JSON views are the engine's, shared with the API (`berth_engine::inspect`).
use berth_engine::Engine;
use berth_engine::inspect::published;
pub use berth_engine::inspect::{network_json, networks_text, ports_text, pseudo_network};
use berth_engine::network;
use serde_json::{Value, json};

use crate::args::Parsed;
use crate::containers::{Failure, confirm, fail};

type R<T = ()> = Result<T, Failure>;

fn other(msg: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        msg: msg.into(),
        usage: false,
    }
}

fn key_value(s: &str) -> (String, String) {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    (k.to_string(), v.to_string())
}

fn matches(v: &Value, filters: &[String]) -> R<bool> {
    for f in filters {
        let (k, want) = f.split_once('=').unwrap_or((f.as_str(), ""));
        let ok = match k {
            "name" => v["Name"].as_str().unwrap_or("").contains(want),
            "id" => v["Id"].as_str().unwrap_or("").starts_with(want),
            "driver" => v["Driver"] == want,
            "scope" => want == "local",
            "type" => {
                let custom = !matches!(v["Name"].as_str(), Some("bridge" | "host" | "none"));
                match want {
                    "custom" => custom,
                    "builtin" => !custom,
                    _ => return Err(other(format!("invalid filter 'type={want}'"))),
                }
            }
            "label" => {
                let (lk, lv) = want.split_once('=').unwrap_or((want, ""));
                match v["Labels"].get(lk) {
                    Some(x) => !want.contains('=') || x == lv,
                    None => false,
                }
            }
            _ => return Err(other(format!("invalid filter '{k}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn template_error(f: crate::Fail) -> Failure {
    match f {
        crate::Fail::Usage(m) => Failure {
            code: 125,
            msg: m,
            usage: true,
        },
        crate::Fail::Cmd(m) => other(m),
    }
}

pub fn create(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let [name] = p.args.as_slice() else {
        return Err(
            crate::args::Usage("\"network create\" requires exactly 1 argument".into()).into(),
        );
    };
    let req = network::CreateNetwork {
        name: name.clone(),
        driver: p.value("driver").map(String::from),
        subnets: p.all("subnet").to_vec(),
        gateways: p.all("gateway").to_vec(),
        ip_ranges: p.all("ip-range").to_vec(),
        internal: p.bool("internal"),
        ipv6: p.bool("ipv6"),
        labels: p.all("label").iter().map(|l| key_value(l)).collect(),
        options: p.all("opt").iter().map(|o| key_value(o)).collect(),
    };
    let n = network::create(e, req)?;
    writeln!(out, "{}", n.id)?;
    Ok(())
}

pub fn ls(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    network::ensure_default(e)?;
    let mut vals = vec![];
    for n in network::list(e)? {
        vals.push(network_json(e, &n)?);
    }
    vals.push(pseudo_network("host"));
    vals.push(pseudo_network("none"));
    vals.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    let mut kept = vec![];
    for v in vals {
        if matches(&v, p.all("filter"))? {
            kept.push(v);
        }
    }
    let no_trunc = p.bool("no-trunc");
    let rows: Vec<Value> = kept
        .iter()
        .map(|v| {
            let id = v["Id"].as_str().unwrap_or("");
            json!({
                "ID": if no_trunc { id } else { &id[..12.min(id.len())] },
                "Name": v["Name"], "Driver": v["Driver"], "Scope": "local",
                "IPv6": v["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
                "Internal": v["Internal"].as_bool().unwrap_or(false).to_string(),
                "CreatedAt": v["Created"],
                "Labels": v["Labels"].as_object().map(|m| m.iter().map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")).unwrap_or_default(),
            })
        })
        .collect();
    if p.bool("quiet") {
        for r in &rows {
            writeln!(out, "{}", r["ID"].as_str().unwrap_or(""))?;
        }
        return Ok(());
    }
    let header = json!({
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv6": "IPV6", "Internal": "INTERNAL", "CreatedAt": "CREATED AT", "Labels": "LABELS",
    });
    let format = p
        .value("format")
        .filter(|f| !f.is_empty())
        .unwrap_or("table");
    crate::write_formatted(
        out,
        format,
        "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        &header,
        &rows,
    )
    .map_err(template_error)
}

pub fn inspect(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    crate::inspect::typed(e, p, out, "network")
}

pub fn rm(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if p.args.is_empty() {
        return Err(
            crate::args::Usage("\"network rm\" requires at least 1 argument".into()).into(),
        );
    }
    let mut failed = false;
    for k in &p.args {
        match network::remove(e, k) {
            Ok(_) => writeln!(out, "{k}")?,
            Err(berth_engine::Error::NoSuchNetwork(_)) if p.bool("force") => {}
            Err(x) => {
                let _ = out.flush();
                eprintln!("Error: {x}");
                failed = true;
            }
        }
    }
    if failed {
        return fail(1, "");
    }
    Ok(())
}

pub fn prune(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let filter = berth_engine::prune::PruneFilter::parse(p.all("filter"))?;
    if !p.bool("force")
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(());
    }
    let removed = e.prune_networks(&filter)?;
    if !removed.is_empty() {
        writeln!(out, "Deleted Networks:")?;
        for n in removed {
            writeln!(out, "{n}")?;
        }
    }
    Ok(())
}

pub fn connect(e: &mut Engine, p: &Parsed, _out: &mut dyn Write) -> R {
    let [net, ctr] = p.args.as_slice() else {
        return Err(
            crate::args::Usage("\"network connect\" requires exactly 2 arguments".into()).into(),
        );
    };
    network::connect(
        e,
        net,
        ctr,
        p.value("ip"),
        p.value("ip6"),
        p.all("alias").to_vec(),
    )?;
    Ok(())
}

pub fn disconnect(e: &mut Engine, p: &Parsed, _out: &mut dyn Write) -> R {
    let [net, ctr] = p.args.as_slice() else {
        return Err(crate::args::Usage(
            "\"network disconnect\" requires exactly 2 arguments".into(),
        )
        .into());
    };
    network::disconnect(e, net, ctr)?;
    Ok(())
}

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`.
pub fn port(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let (ctr, want) = match p.args.as_slice() {
        [c] => (c, None),
        [c, w] => (c, Some(w.as_str())),
        _ => {
            return Err(crate::args::Usage(
                "\"port\" requires at least 1 and at most 2 arguments".into(),
            )
            .into());
        }
    };
    let r = e.get(ctr)?;
    let ports = published(e, &r);
    match want {
        None => {
            for (c, ip, hp) in &ports {
                writeln!(out, "{c} -> {ip}:{hp}")?;
            }
            Ok(())
        }
        Some(w) => {
            let (port, proto) = w.split_once('/').unwrap_or((w, "tcp"));
            if port.parse::<u16>().is_err() {
                return Err(other(format!("Invalid port: {w}")));
            }
            let key = format!("{port}/{proto}");
            let found: Vec<_> = ports.iter().filter(|(c, _, _)| *c == key).collect();
            if found.is_empty() {
                return Err(other(format!("No public port '{key}' published for {ctr}")));
            }
            for (_, ip, hp) in found {
                writeln!(out, "{ip}:{hp}")?;
            }
            Ok(())
        }
    }
}
