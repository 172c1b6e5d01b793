//! Name resolution on user-defined networks: the engine's side of `berth_net::dns`.
//!
//! The container's monitor starts a [`Resolver`] after connecting the container (see
//! [`start_resolver`]) and serves it from its poll loop, answering with [`ContainerNames`],
//! which reads the state database at each query: running containers on the networks the
//! asker is on *now*, by name, `--network-alias` and short id, and `NAME.NETWORK`.
//! `docs/architecture.md` § Name resolution explains the choice.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;

use berth_net::dns::{Names, Resolver};
use berth_net::firewall::Firewall;

use crate::db;
use crate::error::{Context, Error, Result};
use crate::network::{NetworkRow, container_networks, endpoints_on};
use crate::{Engine, RunConfig};

/// The names a container resolves through its resolver.
pub struct ContainerNames<'a> {
    pub engine: &'a Engine,
    pub id: &'a str,
}

impl ContainerNames<'_> {
    /// The asker's user-defined networks, as of now.
    fn networks(&self) -> Vec<NetworkRow> {
        container_networks(self.engine, self.id)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, n)| n)
            .filter(|n| !n.is_default())
            .collect()
    }

    /// Calls `f` with each running container's endpoint on `net` and its record.
    fn each_running(
        &self,
        net: &NetworkRow,
        mut f: impl FnMut(&crate::network::EndpointRow, &db::ContainerRow),
    ) {
        for ep in endpoints_on(self.engine, &net.id).unwrap_or_default() {
            let Ok(row) = self.engine.db.find(&ep.container_id) else {
                continue;
            };
            if matches!(row.state.as_str(), db::RUNNING | db::PAUSED) {
                f(&ep, &row);
            }
        }
    }
}

/// Whether `name` (lower case) names the container `row` with the endpoint `ep`.
fn is_named(name: &str, ep: &crate::network::EndpointRow, row: &db::ContainerRow) -> bool {
    row.name.eq_ignore_ascii_case(name)
        || ep.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        || (name.len() == 12 && row.id.starts_with(name))
        || (name.len() == 64 && row.id == name)
}

impl Names for ContainerNames<'_> {
    fn addresses(&mut self, name: &str) -> Option<Vec<IpAddr>> {
        let nets = self.networks();
        // `NAME.NETWORK` looks on that network only (docker does the same).
        let (name, only) = match name.rsplit_once('.') {
            Some((n, net)) if nets.iter().any(|x| x.name.eq_ignore_ascii_case(net)) => {
                (n, Some(net))
            }
            _ => (name, None),
        };
        // A `--link` alias of the asker's names its linked container, for the asker alone.
        let linked = crate::links::alias_target(self.engine, self.id, name);
        let mut found: Option<Vec<IpAddr>> = None;
        for net in nets
            .iter()
            .filter(|n| only.is_none_or(|o| n.name.eq_ignore_ascii_case(o)))
        {
            self.each_running(net, |ep, row| {
                if linked.as_deref() == Some(row.id.as_str()) || is_named(name, ep, row) {
                    let v = found.get_or_insert_with(Vec::new);
                    v.extend(std::iter::once(ep.address).chain(ep.address6));
                }
            });
        }
        if let Some(v) = found.as_mut() {
            v.sort();
            v.dedup();
        }
        found
    }

    fn name_of(&mut self, address: IpAddr) -> Option<String> {
        let mut found = None;
        for net in self.networks() {
            self.each_running(&net, |ep, row| {
                if found.is_none() && (ep.address == address || ep.address6 == Some(address)) {
                    found = Some(format!("{}.{}", row.name, net.name));
                }
            });
        }
        found
    }
}

/// Whether a container on these networks gets the embedded resolver (a user-defined network
/// among them; docker's rule).
pub fn uses_resolver(nets: &[NetworkRow]) -> bool {
    nets.iter().any(|n| !n.is_default())
}

/// The servers names that are not containers' go to: `--dns`, else the host's resolvers
/// (loopback ones too: the resolver forwards from the host's namespace), else docker's
/// defaults. None when every user-defined network of the container is `--internal`.
pub fn upstream_servers(cfg: &RunConfig, nets: &[NetworkRow]) -> Vec<SocketAddr> {
    if nets
        .iter()
        .filter(|n| !n.is_default())
        .all(|n| n.config.internal)
    {
        return vec![];
    }
    let parse = |s: &str| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53));
    let mut servers: Vec<SocketAddr> = cfg.dns.iter().filter_map(|s| parse(s)).collect();
    if servers.is_empty() {
        let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        servers = conf
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("nameserver"))
                    .then(|| w.next())
                    .flatten()
                    .and_then(parse)
            })
            .collect();
    }
    if servers.is_empty() {
        servers = [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)]
            .into_iter()
            .map(|ip| SocketAddr::new(ip.into(), 53))
            .collect();
    }
    servers
}

/// Starts the resolver of container `id` (init `pid`) when it is on a user-defined network.
pub fn start_resolver(
    engine: &Engine,
    id: &str,
    cfg: &RunConfig,
    pid: i32,
) -> Result<Option<Resolver>> {
    let nets: Vec<NetworkRow> = container_networks(engine, id)?
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    if !uses_resolver(&nets) {
        return Ok(None);
    }
    let p = format!("/proc/{pid}/ns/net");
    let netns = File::open(&p).at(&p)?;
    Resolver::start(
        netns.as_fd(),
        upstream_servers(cfg, &nets),
        &Firewall::new(),
    )
    .map(Some)
    .map_err(|e| Error::Other(format!("container {id}: {e}")))
}
