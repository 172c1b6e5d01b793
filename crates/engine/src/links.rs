//! docker's legacy links (`--link NAME[:ALIAS]`, HostConfig `Links`).
//!
//! On the default bridge, where there is no embedded resolver, a link gives the container
//! an `/etc/hosts` line for the linked container (`IP ALIAS HOSTNAME NAME`) and docker's
//! environment variables (`ALIAS_PORT=tcp://IP:PORT`, `ALIAS_NAME=/parent/alias`,
//! `ALIAS_ENV_X` for the linked container's `Config.Env`); the linked container must be
//! running when the container starts. On a user-defined network the alias is a name the
//! embedded resolver answers for this container alone (`crate::dns`), and nothing else
//! changes, as with docker.

use std::net::IpAddr;

use crate::db::{self, ContainerRow};
use crate::error::{Error, Result, invalid};
use crate::network::container_networks;
use crate::{Engine, RunConfig, row_config};

/// `--link NAME[:ALIAS]` as docker parses it (the alias defaults to the name; the stored
/// form `/name:/parent/alias` of an API client is read too).
pub fn parse(s: &str) -> Result<(String, String)> {
    if s.is_empty() {
        return Err(invalid("--link", "empty string specified for links"));
    }
    let parts: Vec<&str> = s.split(':').collect();
    match parts[..] {
        [name] if !name.is_empty() => Ok((name.to_string(), name.to_string())),
        [name, alias] if !name.is_empty() && !alias.is_empty() => match name.strip_prefix('/') {
            Some(n) => Ok((
                n.to_string(),
                alias.rsplit('/').next().unwrap_or(alias).to_string(),
            )),
            None => Ok((name.to_string(), alias.to_string())),
        },
        _ => Err(invalid("--link", format!("bad format for links: {s}"))),
    }
}

/// The containers `cfg` links to, with their aliases. `create` asks for every one
/// (`strict`); later a removed one is left out, as docker drops the link of a removed
/// container.
fn children(engine: &Engine, cfg: &RunConfig, strict: bool) -> Result<Vec<(String, ContainerRow)>> {
    let mut out = vec![];
    for l in &cfg.links {
        let (name, alias) = parse(l)?;
        match engine.db.find(&name) {
            Ok(child) => out.push((alias, child)),
            Err(e) if strict => {
                return Err(Error::BadConfig(format!(
                    "could not get container for {name}: {e}"
                )));
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

/// `cfg`'s links with each container named by its id (`ID:ALIAS`), as `create` stores
/// them: a link follows its container through a rename, and a new container given a
/// removed one's name does not take its links over.
pub fn resolved(engine: &Engine, cfg: &RunConfig) -> Result<Vec<String>> {
    Ok(children(engine, cfg, true)?
        .into_iter()
        .map(|(alias, child)| format!("{}:{alias}", child.id))
        .collect())
}

const HOST_CONFLICT: &str = "conflicting options: host type networking can't be used with links. This would result in undefined behavior";

/// `create`'s checks (docker's): every linked container exists, and neither side uses
/// the host's network or another container's.
pub fn check(engine: &Engine, cfg: &RunConfig) -> Result<()> {
    if cfg.links.is_empty() {
        return Ok(());
    }
    if cfg.network == "host" {
        return Err(Error::BadConfig(HOST_CONFLICT.into()));
    }
    if cfg.network.starts_with("container:") {
        return Err(Error::BadConfig(
            "conflicting options: container type network can't be used with links. This would result in undefined behavior".into(),
        ));
    }
    for (_, child) in children(engine, cfg, true)? {
        if row_config(&child).network == "host" {
            return Err(Error::BadConfig(HOST_CONFLICT.into()));
        }
    }
    Ok(())
}

/// Whether container `id`'s first network is the default bridge (where links are hosts
/// lines and variables).
fn on_default_bridge(engine: &Engine, id: &str) -> bool {
    container_networks(engine, id)
        .ok()
        .and_then(|v| v.into_iter().next())
        .is_some_and(|(_, n)| n.is_default())
}

/// A container's address on the default bridge.
fn default_address(engine: &Engine, id: &str) -> Option<IpAddr> {
    container_networks(engine, id)
        .ok()?
        .into_iter()
        .find(|(_, n)| n.is_default())
        .map(|(ep, _)| ep.address)
}

/// The links of a container on the default bridge (none elsewhere): alias, linked
/// container, and its address on the default bridge.
fn bridge_links(
    engine: &Engine,
    row: &ContainerRow,
) -> Result<Vec<(String, ContainerRow, Option<IpAddr>)>> {
    let cfg = row_config(row);
    if cfg.links.is_empty() || !on_default_bridge(engine, &row.id) {
        return Ok(vec![]);
    }
    Ok(children(engine, &cfg, false)?
        .into_iter()
        .map(|(alias, child)| {
            let ip = default_address(engine, &child.id);
            (alias, child, ip)
        })
        .collect())
}

/// `start`'s checks on the default bridge (docker's messages): every linked container runs,
/// on the default bridge too.
pub fn check_running(engine: &Engine, row: &ContainerRow) -> Result<()> {
    for (alias, child, ip) in bridge_links(engine, row)? {
        if !matches!(child.state.as_str(), db::RUNNING | db::PAUSED) {
            return Err(Error::BadConfig(format!(
                "Cannot link to a non running container: /{} AS /{}/{alias}",
                child.name, row.name
            )));
        }
        if ip.is_none() {
            return Err(Error::BadConfig(format!(
                "cannot link to /{}, as it does not belong to the default network",
                child.name
            )));
        }
    }
    Ok(())
}

/// The `/etc/hosts` lines of a container's links on the default bridge, docker's
/// `IP\tALIAS HOSTNAME[ NAME]` (the name when the alias is not it).
pub fn hosts_lines(engine: &Engine, row: &ContainerRow) -> Result<Vec<String>> {
    let mut lines = vec![];
    for (alias, child, ip) in bridge_links(engine, row)? {
        let Some(ip) = ip else {
            continue;
        };
        let hn = crate::spec::hostname(&child.id, &row_config(&child));
        let mut names = format!("{alias} {hn}");
        if alias != child.name {
            names.push(' ');
            names.push_str(&child.name);
        }
        lines.push(format!("{ip}\t{names}"));
    }
    Ok(lines)
}

/// The environment docker gives a container for each link on the default bridge:
/// `ALIAS_PORT` (the lowest exposed port, TCP first), `ALIAS_PORT_P_PROTO` with its
/// `_ADDR`, `_PORT` and `_PROTO` for each exposed port, `ALIAS_NAME=/parent/alias`, and
/// `ALIAS_ENV_X` for each variable of the linked container's `Config.Env` but HOME and
/// PATH.
pub fn env(engine: &Engine, row: &ContainerRow) -> Result<Vec<String>> {
    let mut env = vec![];
    for (alias, child, ip) in bridge_links(engine, row)? {
        let Some(ip) = ip else {
            continue;
        };
        let ccfg = row_config(&child);
        let image = crate::inspect::image_config(engine, &child);
        let mut ports: Vec<(u16, String)> = crate::exposed_ports(image.as_ref(), &ccfg)
            .iter()
            .filter_map(|k| {
                let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                Some((p.parse().ok()?, proto.to_ascii_lowercase()))
            })
            .collect();
        // docker's order: TCP first, then by protocol; by number within one.
        ports.sort_by(|a, b| match (a.1 == b.1, a.1 == "tcp", b.1 == "tcp") {
            (true, ..) => a.0.cmp(&b.0),
            (false, true, _) => std::cmp::Ordering::Less,
            (false, _, true) => std::cmp::Ordering::Greater,
            _ => a.1.cmp(&b.1),
        });
        let var = alias.to_ascii_uppercase().replace('-', "_");
        env.extend(port_vars(&var, &ip.to_string(), &ports));
        env.push(format!("{var}_NAME=/{}/{alias}", row.name));
        let child_env = crate::inspect::config_env(
            &crate::inspect::image_config_env(image.as_ref()),
            &ccfg.env,
        );
        for v in child_env {
            if let Some((k, val)) = v.split_once('=')
                && k != "HOME"
                && k != "PATH"
            {
                env.push(format!("{var}_ENV_{k}={val}"));
            }
        }
    }
    Ok(env)
}

/// docker's variables of a linked container's exposed ports (sorted as docker sorts them):
/// `VAR_PORT` for the first; for each, `VAR_PORT_P_PROTO` and its `_ADDR`, `_PORT`,
/// `_PROTO`; for each run of consecutive ports of one protocol, `VAR_PORT_FIRST_PROTO_START`,
/// `_PORT_START`, `_END` and `_PORT_END` after the run's last port.
fn port_vars(var: &str, ip: &str, ports: &[(u16, String)]) -> Vec<String> {
    let mut env = vec![];
    if let Some((p, proto)) = ports.first() {
        env.push(format!("{var}_PORT={proto}://{ip}:{p}"));
    }
    let mut start = 0;
    for (i, (p, proto)) in ports.iter().enumerate() {
        let key = format!("{var}_PORT_{p}_{}", proto.to_ascii_uppercase());
        env.push(format!("{key}={proto}://{ip}:{p}"));
        env.push(format!("{key}_ADDR={ip}"));
        env.push(format!("{key}_PORT={p}"));
        env.push(format!("{key}_PROTO={proto}"));
        let continues = ports
            .get(i + 1)
            .is_some_and(|(q, qp)| qp == proto && u32::from(*q) == u32::from(*p) + 1);
        if continues {
            continue;
        }
        if i > start {
            let (first, fproto) = &ports[start];
            let key = format!("{var}_PORT_{first}_{}", fproto.to_ascii_uppercase());
            env.push(format!("{key}_START={fproto}://{ip}:{first}"));
            env.push(format!("{key}_PORT_START={first}"));
            env.push(format!("{key}_END={proto}://{ip}:{p}"));
            env.push(format!("{key}_PORT_END={p}"));
        }
        start = i + 1;
    }
    env
}

/// The linked container an alias of `asker`'s links stands for, by id (the embedded
/// resolver's answer for that container alone on user-defined networks).
pub fn alias_target(engine: &Engine, asker: &str, name: &str) -> Option<String> {
    let row = engine.db.find(asker).ok()?;
    let cfg = row_config(&row);
    cfg.links.iter().find_map(|l| {
        let (child, alias) = parse(l).ok()?;
        if !alias.eq_ignore_ascii_case(name) {
            return None;
        }
        engine.db.find(&child).ok().map(|c| c.id)
    })
}

/// docker's `HostConfig.Links` of a container: `/CHILD:/PARENT/ALIAS`.
pub fn inspect_form(engine: &Engine, row: &ContainerRow) -> Vec<String> {
    row_config(row)
        .links
        .iter()
        .filter_map(|l| {
            let (child, alias) = parse(l).ok()?;
            let name = engine.db.find(&child).map_or(child, |c| c.name);
            Some(format!("/{name}:/{}/{alias}", row.name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variables_and_ranges() {
        let ports: Vec<(u16, String)> = [(80, "tcp"), (7000, "tcp"), (7001, "tcp"), (53, "udp")]
            .iter()
            .map(|(p, s)| (*p, s.to_string()))
            .collect();
        let env = port_vars("DB", "10.0.0.2", &ports);
        assert_eq!(env[0], "DB_PORT=tcp://10.0.0.2:80");
        for v in [
            "DB_PORT_80_TCP=tcp://10.0.0.2:80",
            "DB_PORT_7001_TCP_ADDR=10.0.0.2",
            "DB_PORT_53_UDP_PROTO=udp",
            "DB_PORT_7000_TCP_START=tcp://10.0.0.2:7000",
            "DB_PORT_7000_TCP_PORT_START=7000",
            "DB_PORT_7000_TCP_END=tcp://10.0.0.2:7001",
            "DB_PORT_7000_TCP_PORT_END=7001",
        ] {
            assert!(env.contains(&v.to_string()), "{v}: {env:?}");
        }
        assert!(!env.iter().any(|v| v.contains("_80_TCP_START")), "{env:?}");
        assert_eq!(env.len(), 1 + 4 * 4 + 4);
    }

    #[test]
    fn link_forms() {
        let p = |s: &str| parse(s).ok();
        assert_eq!(p("db"), Some(("db".into(), "db".into())));
        assert_eq!(p("db:data"), Some(("db".into(), "data".into())));
        assert_eq!(p("/db:/web/data"), Some(("db".into(), "data".into())));
        for bad in ["", "a:b:c", ":x", "x:"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
