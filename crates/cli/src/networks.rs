//! docker's `network` commands (`create`, `ls`, `inspect`, `rm`, `prune`, `connect`,
//! `disconnect`), `port`, and the network parts of `ps` and `inspect`. The logic is the
//! engine's (`berth_engine::network`); this is flags and output.

use std::io::Write;

use berth_engine::Engine;
use berth_engine::network;
use serde_json::{Value, json};

use berth_engine::inspect::{network_json, pseudo_network};

use crate::args::{flag, parse};
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

pub fn run(e: &mut Engine, cmd: &str, argv: &[String], out: &mut dyn Write) -> R {
    match cmd {
        "network create" => {
            let p = parse(
                argv,
                &[
                    flag("driver", Some('d'), true),
                    flag("subnet", None, true),
                    flag("gateway", None, true),
                    flag("ip-range", None, true),
                    flag("internal", None, false),
                    flag("ipv6", None, false),
                    flag("label", None, true),
                    flag("opt", Some('o'), true),
                    flag("attachable", None, false),
                ],
                false,
            )?;
            let [name] = p.args.as_slice() else {
                return Err(crate::args::Usage(
                    "\"network create\" requires exactly 1 argument".into(),
                )
                .into());
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
        "network ls" => {
            let p = parse(
                argv,
                &[
                    flag("quiet", Some('q'), false),
                    flag("filter", Some('f'), true),
                    flag("format", None, true),
                    flag("no-trunc", None, false),
                ],
                false,
            )?;
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
        "network inspect" => {
            let p = parse(
                argv,
                &[
                    flag("format", Some('f'), true),
                    flag("verbose", Some('v'), false),
                ],
                false,
            )?;
            if p.args.is_empty() {
                return Err(crate::args::Usage(
                    "\"network inspect\" requires at least 1 argument".into(),
                )
                .into());
            }
            let mut vals = vec![];
            for k in &p.args {
                if matches!(k.as_str(), "host" | "none") {
                    vals.push(pseudo_network(k));
                    continue;
                }
                let n = network::find(e, k)?;
                vals.push(network_json(e, &n)?);
            }
            match p.value("format").filter(|f| !f.is_empty()) {
                Some("json") => {
                    for v in &vals {
                        writeln!(out, "{v}")?;
                    }
                }
                Some(f) => {
                    let t = crate::parse_template(f).map_err(template_error)?;
                    for v in &vals {
                        let s = t.execute(v, false).map_err(|x| other(x.0))?;
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
        "network rm" => {
            let p = parse(argv, &[flag("force", Some('f'), false)], false)?;
            if p.args.is_empty() {
                return Err(crate::args::Usage(
                    "\"network rm\" requires at least 1 argument".into(),
                )
                .into());
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
        "network prune" => {
            let p = parse(
                argv,
                &[flag("force", Some('f'), false), flag("filter", None, true)],
                false,
            )?;
            if !p.bool("force")
                && !confirm(
                    "WARNING! This will remove all custom networks not used by at least one container.",
                )?
            {
                return Ok(());
            }
            let removed = network::prune(e)?;
            if !removed.is_empty() {
                writeln!(out, "Deleted Networks:")?;
                for n in removed {
                    writeln!(out, "{n}")?;
                }
            }
            Ok(())
        }
        "network connect" => {
            let p = parse(
                argv,
                &[
                    flag("ip", None, true),
                    flag("alias", None, true),
                    flag("ip6", None, true),
                ],
                false,
            )?;
            let [net, ctr] = p.args.as_slice() else {
                return Err(crate::args::Usage(
                    "\"network connect\" requires exactly 2 arguments".into(),
                )
                .into());
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
        "network disconnect" => {
            let p = parse(argv, &[flag("force", Some('f'), false)], false)?;
            let [net, ctr] = p.args.as_slice() else {
                return Err(crate::args::Usage(
                    "\"network disconnect\" requires exactly 2 arguments".into(),
                )
                .into());
            };
            network::disconnect(e, net, ctr)?;
            Ok(())
        }
        _ => Err(crate::args::Usage(format!("'{cmd}' is not a berth command")).into()),
    }
}

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`.
pub fn port(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse(argv, &[], false)?;
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
    let ports = berth_engine::inspect::published(e, &r);
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
