//! docker's `network` commands (`create`, `ls`, `inspect`, `rm`, `prune`, `connect`,
//! `disconnect`), `port`, and the network parts of `ps` and `inspect`. The logic is the
//! engine's (`berth_engine::network`); this is flags and output.

use std::collections::BTreeMap;
use std::io::Write;

use berth_engine::db::{self, ContainerRow};
use berth_engine::network::{self, NetworkRow};
use berth_engine::{Engine, RunConfig, row_config};
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

fn running(r: &ContainerRow) -> bool {
    r.state == db::RUNNING || r.state == db::PAUSED
}

fn prefix_len(net: &NetworkRow) -> u8 {
    net.ipam4().map_or(0, |c| c.subnet.prefix_len())
}

/// docker's `network inspect` object.
pub fn network_json(e: &mut Engine, n: &NetworkRow) -> R<Value> {
    let mut containers = serde_json::Map::new();
    for ep in network::endpoints_on(e, &n.id)? {
        let Ok(row) = e.get(&ep.container_id) else {
            continue;
        };
        if !running(&row) {
            continue;
        }
        containers.insert(
            row.id.clone(),
            json!({
                "Name": row.name,
                "EndpointID": ep.endpoint_id,
                "MacAddress": ep.mac,
                "IPv4Address": format!("{}/{}", ep.address, prefix_len(n)),
                "IPv6Address": match (ep.address6, n.ipam6().ok().flatten()) {
                    (Some(a), Some(c)) => format!("{a}/{}", c.subnet.prefix_len()),
                    _ => String::new(),
                },
            }),
        );
    }
    let config: Vec<Value> = n
        .config
        .ipam
        .iter()
        .map(|c| {
            let mut v = json!({"Subnet": c.subnet, "Gateway": c.gateway});
            if let Some(r) = &c.ip_range {
                v["IPRange"] = json!(r);
            }
            v
        })
        .collect();
    let mut options = n.config.options.clone();
    if n.is_default() {
        options.insert("com.docker.network.bridge.name".into(), n.bridge.clone());
    }
    Ok(json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created_at,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": n.config.ipv6,
        "IPAM": { "Driver": "default", "Options": {}, "Config": config },
        "Internal": n.config.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.config.labels,
    }))
}

/// `host` and `none`, which docker lists beside the bridge networks.
pub fn pseudo_network(name: &str) -> Value {
    json!({
        "Name": name,
        "Id": format!("{:0<64}", name.bytes().map(|b| format!("{b:02x}")).collect::<String>()),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": if name == "host" { "host" } else { "null" },
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": [] },
        "Internal": false,
        "Containers": {},
        "Options": {},
        "Labels": {},
    })
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

/// A container's published ports: (`80/tcp`, host ip, host port), when it runs.
fn published(e: &Engine, r: &ContainerRow) -> Vec<(String, String, u16)> {
    if !running(r) {
        return vec![];
    }
    let mut v = vec![];
    for ep in network::endpoints_of(e, &r.id).unwrap_or_default() {
        for p in &ep.ports {
            v.push((
                format!("{}/{}", p.container_port, p.protocol),
                p.host_ip_text(),
                p.host_port,
            ));
        }
    }
    v
}

/// `ps`'s NETWORKS column: the networks the container has endpoints on (its mode otherwise).
pub fn networks_text(e: &Engine, r: &ContainerRow) -> String {
    let names: Vec<String> = network::container_networks(e, &r.id)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, n)| n.name)
        .collect();
    if names.is_empty() {
        row_config(r).network
    } else {
        names.join(",")
    }
}

/// `ps`'s PORTS column: `0.0.0.0:8080->80/tcp, …`.
pub fn ports_text(e: &Engine, r: &ContainerRow) -> String {
    published(e, r)
        .iter()
        .map(|(c, ip, hp)| format!("{ip}:{hp}->{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `HostConfig.PortBindings` from the `-p` flags as given.
pub fn port_bindings(cfg: &RunConfig) -> Value {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in &cfg.publish {
        let Ok(maps) = berth_net::ports::parse_port_spec(p) else {
            continue;
        };
        for x in maps {
            let host_port = match x.host_port {
                Some((a, b)) if a == b => a.to_string(),
                Some((a, b)) => format!("{a}-{b}"),
                None => String::new(),
            };
            m.entry(format!("{}/{}", x.container_port, x.protocol))
                .or_default()
                .push(json!({
                    "HostIp": x.host_ip.map(|a| a.to_string()).unwrap_or_default(),
                    "HostPort": host_port,
                }));
        }
    }
    json!(m)
}

/// docker's `NetworkSettings` of a container.
pub fn network_settings(e: &Engine, r: &ContainerRow) -> Value {
    let cfg = row_config(r);
    let live = running(r);
    let mut ports: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (c, ip, hp) in published(e, r) {
        ports
            .entry(c)
            .or_default()
            .push(json!({"HostIp": ip, "HostPort": hp.to_string()}));
    }
    let mut networks = serde_json::Map::new();
    let mut top = json!({
        "IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": "",
    });
    match cfg.network.as_str() {
        "host" | "none" => {
            networks.insert(
                cfg.network.clone(),
                json!({
                    "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                    "NetworkID": pseudo_network(&cfg.network)["Id"], "EndpointID": "",
                    "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                    "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null,
                }),
            );
        }
        _ => {
            for (ep, n) in network::container_networks(e, &r.id).unwrap_or_default() {
                let gw = n.ipam4().map(|c| c.gateway.to_string()).unwrap_or_default();
                let plen = prefix_len(&n);
                let v6 = n.ipam6().ok().flatten();
                let (ip6, plen6, gw6) = match (ep.address6, &v6) {
                    (Some(a), Some(c)) if live => {
                        (a.to_string(), c.subnet.prefix_len(), c.gateway.to_string())
                    }
                    _ => (String::new(), 0, String::new()),
                };
                let ip = if live {
                    ep.address.to_string()
                } else {
                    String::new()
                };
                let mut dns = vec![r.name.clone(), r.id[..12].to_string()];
                dns.extend(ep.aliases.iter().cloned());
                let v = json!({
                    "IPAMConfig": cfg.ip.as_ref().filter(|_| ep.seq == 0).map(|ip| json!({"IPv4Address": ip})),
                    "Links": null,
                    "Aliases": if ep.aliases.is_empty() { Value::Null } else { json!(ep.aliases) },
                    "MacAddress": if live { ep.mac.clone() } else { String::new() },
                    "NetworkID": n.id,
                    "EndpointID": if live { ep.endpoint_id.clone() } else { String::new() },
                    "Gateway": if live { gw.clone() } else { String::new() },
                    "IPAddress": ip,
                    "IPPrefixLen": if live { plen } else { 0 },
                    "IPv6Gateway": gw6,
                    "GlobalIPv6Address": ip6,
                    "GlobalIPv6PrefixLen": plen6,
                    "DNSNames": if n.is_default() { Value::Null } else { json!(dns) },
                });
                // docker fills the top-level fields from the default bridge network only.
                if n.is_default() && live {
                    top = json!({
                        "IPAddress": ep.address.to_string(), "IPPrefixLen": plen,
                        "Gateway": gw, "MacAddress": ep.mac,
                    });
                }
                networks.insert(n.name.clone(), v);
            }
        }
    }
    json!({
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": if live && !matches!(cfg.network.as_str(), "host") { format!("/proc/{}/ns/net", r.pid) } else { String::new() },
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top["IPAddress"],
        "IPPrefixLen": top["IPPrefixLen"],
        "IPv6Gateway": "",
        "Gateway": top["Gateway"],
        "MacAddress": top["MacAddress"],
        "Networks": networks,
    })
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
