//! Bridge networks and container endpoints: the records (networks, endpoints with their
//! address leases and published ports) in the state database, and the calls into
//! `berth-net` that make them real on the host.
//!
//! * A network is a row of `networks` (name, bridge device, IPAM, options, labels). The
//!   default network `bridge` (device `berth0`, 172.17.0.0/16) is recorded on first use.
//! * An endpoint is a row of `endpoints`: a container's address on one network (the lease),
//!   its MAC, interface names, aliases and published ports. Leases and host ports are chosen
//!   in one IMMEDIATE transaction that reads the ones in use and inserts the new one, so
//!   concurrent `berth run`s never get the same address or port; `UNIQUE(network_id,
//!   address)` guards it as well. Endpoints are made by `create` and go with the container's
//!   record (`rm`).
//! * The host side (bridge, firewall, veth) is made by the container's monitor between the
//!   runtime's `create` and `start` ([`connect_container`]) and undone when the container
//!   stops ([`disconnect_container`]), by `rm`, and by the crash-truth reconcile.
//!
//! Netlink (`berth_net::netlink::Netlink`) runs on a private current-thread tokio runtime
//! (no worker thread); opening a socket in a container's namespace uses a helper thread that
//! is joined before the call returns. So the monitor, which clones the container's init, has
//! no other thread alive when it clones (`docs/architecture.md` § Networking).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::Path;

use berth_net::firewall::{Firewall, HostFirewall};
use berth_net::ipam::{self, IpNet, IpamConfig};
use berth_net::netlink::{self, Endpoint, Netlink};
use berth_net::ports::{self, PortMapping, Protocol, PublishedPort};
use berth_net::{BridgeNetwork, Error as NetError};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result, invalid};
use crate::{Engine, names};

/// The default network's name and bridge device.
pub const DEFAULT_NETWORK: &str = "bridge";
/// A rootless container's own user-mode network (`berth_net::slirp`).
pub const SLIRP4NETNS: &str = "slirp4netns";
pub const DEFAULT_BRIDGE: &str = "berth0";

/// One IPAM entry of a network (docker's `IPAM.Config[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamEntry {
    pub subnet: String,
    pub gateway: String,
    #[serde(default)]
    pub ip_range: Option<String>,
}

/// What a network was created with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetConfig {
    pub ipam: Vec<IpamEntry>,
    pub internal: bool,
    pub ipv6: bool,
    pub mtu: Option<u32>,
    /// `com.docker.network.bridge.enable_icc` (docker's default: true).
    pub icc: Option<bool>,
    /// `-o KEY=VALUE` as given.
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// A network record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRow {
    pub id: String,
    pub name: String,
    pub bridge: String,
    pub created_at: String,
    pub config: NetConfig,
}

impl NetworkRow {
    pub fn ipam(&self) -> Result<Vec<IpamConfig>> {
        self.config
            .ipam
            .iter()
            .map(|e| {
                IpamConfig::parse(&e.subnet, Some(&e.gateway), e.ip_range.as_deref())
                    .map_err(|err| invalid(format!("network {}", self.name), err.to_string()))
            })
            .collect()
    }

    /// The v4 entry (every network has one).
    pub fn ipam4(&self) -> Result<IpamConfig> {
        self.ipam()?
            .into_iter()
            .find(|c| !c.is_ipv6())
            .ok_or_else(|| invalid(format!("network {}", self.name), "no IPv4 subnet"))
    }

    /// The v6 entry of an `--ipv6` network.
    pub fn ipam6(&self) -> Result<Option<IpamConfig>> {
        Ok(self.ipam()?.into_iter().find(IpamConfig::is_ipv6))
    }

    pub fn bridge_network(&self) -> Result<BridgeNetwork> {
        Ok(BridgeNetwork {
            bridge: self.bridge.clone(),
            ipam: self.ipam()?,
            internal: self.config.internal,
            mtu: self.config.mtu,
            icc: self.config.icc.unwrap_or(true),
        })
    }

    /// The default network and the pre-defined ones are not the user's.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_NETWORK
    }
}

/// A published port as recorded (`PublishedPort` with serde).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

impl PortBinding {
    pub fn protocol(&self) -> Protocol {
        match self.protocol.as_str() {
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => Protocol::Tcp,
        }
    }

    pub fn published(&self) -> PublishedPort {
        PublishedPort {
            host_ip: self.host_ip,
            host_port: self.host_port,
            container_port: self.container_port,
            protocol: self.protocol(),
        }
    }

    fn from_published(p: &PublishedPort) -> PortBinding {
        PortBinding {
            host_ip: p.host_ip,
            host_port: p.host_port,
            container_port: p.container_port,
            protocol: p.protocol.as_str().to_string(),
        }
    }

    /// docker's `HostIp` (`0.0.0.0` for every address).
    pub fn host_ip_text(&self) -> String {
        self.host_ip.map_or("0.0.0.0".into(), |a| a.to_string())
    }
}

/// A container's endpoint on a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointRow {
    pub container_id: String,
    pub network_id: String,
    pub endpoint_id: String,
    pub address: IpAddr,
    /// The v6 address on an `--ipv6` network.
    pub address6: Option<IpAddr>,
    pub mac: String,
    pub host_ifname: String,
    pub ifname: String,
    pub aliases: Vec<String>,
    pub ports: Vec<PortBinding>,
    /// Order of connection (the first network is `eth0` and has the default route).
    pub seq: i64,
}

/// What a container asks of a network (`--ip`, `--mac-address`, `--network-alias`, `-p`).
#[derive(Clone, Debug, Default)]
pub struct EndpointRequest {
    pub ip: Option<IpAddr>,
    pub ip6: Option<IpAddr>,
    pub mac: Option<[u8; 6]>,
    pub aliases: Vec<String>,
    pub ports: Vec<PortMapping>,
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |err| Error::Db {
        path: path.to_path_buf(),
        err,
    }
}

fn row_to_network(r: &rusqlite::Row<'_>) -> rusqlite::Result<NetworkRow> {
    let config: String = r.get(4)?;
    Ok(NetworkRow {
        id: r.get(0)?,
        name: r.get(1)?,
        bridge: r.get(2)?,
        created_at: r.get(3)?,
        config: serde_json::from_str(&config).unwrap_or_default(),
    })
}

fn row_to_endpoint(r: &rusqlite::Row<'_>) -> rusqlite::Result<EndpointRow> {
    let address: String = r.get(3)?;
    let aliases: String = r.get(7)?;
    let ports: String = r.get(8)?;
    Ok(EndpointRow {
        container_id: r.get(0)?,
        network_id: r.get(1)?,
        endpoint_id: r.get(2)?,
        address: address
            .parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        mac: r.get(4)?,
        host_ifname: r.get(5)?,
        ifname: r.get(6)?,
        aliases: serde_json::from_str(&aliases).unwrap_or_default(),
        ports: serde_json::from_str(&ports).unwrap_or_default(),
        seq: r.get(9)?,
        address6: r.get::<_, String>(10)?.parse().ok(),
    })
}

const NET_COLS: &str = "id, name, bridge, created_at, config";
const EP_COLS: &str = "container_id, network_id, endpoint_id, address, mac, host_ifname, ifname, aliases, ports, seq, address6";

/// Every network, by name.
pub fn list(engine: &Engine) -> Result<Vec<NetworkRow>> {
    let path = engine.db.path();
    let mut st = engine
        .db
        .conn()
        .prepare(&format!("SELECT {NET_COLS} FROM networks ORDER BY name"))
        .map_err(db_err(path))?;
    st.query_map([], row_to_network)
        .and_then(|r| r.collect())
        .map_err(db_err(path))
}

/// A network by name, id or unique id prefix.
pub fn find(engine: &Engine, key: &str) -> Result<NetworkRow> {
    let path = engine.db.path();
    let conn = engine.db.conn();
    if let Some(n) = network_where(engine, "name = ?1 OR id = ?1", key)? {
        return Ok(n);
    }
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut st = conn
            .prepare(&format!(
                "SELECT {NET_COLS} FROM networks WHERE id LIKE ?1 || '%' LIMIT 2"
            ))
            .map_err(db_err(path))?;
        let rows: Vec<NetworkRow> = st
            .query_map([key.to_ascii_lowercase()], row_to_network)
            .and_then(|r| r.collect())
            .map_err(db_err(path))?;
        if rows.len() == 1 {
            return Ok(rows.into_iter().next().unwrap_or_else(|| unreachable!()));
        }
        if rows.len() > 1 {
            return Err(Error::Other(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                rows.len()
            )));
        }
    }
    if key == DEFAULT_NETWORK {
        return ensure_default(engine);
    }
    Err(Error::NoSuchNetwork(key.to_string()))
}

/// The default network's record, made on first use.
pub fn ensure_default(engine: &Engine) -> Result<NetworkRow> {
    let path = engine.db.path();
    let conn = engine.db.conn();
    if let Some(n) = network_where(engine, "name = ?1", DEFAULT_NETWORK)? {
        return Ok(n);
    }
    // docker's 172.17.0.0/16, unless the host routes it already (dockerd's docker0 on the
    // same machine): then the first free subnet of docker's pools.
    let routes = Netlink::open()
        .and_then(|h| h.host_routes())
        .map_err(|e| net_error("reading the host's routes", e.into()))?;
    let first = ipam::parse_subnet("172.17.0.0/16").map_err(net_invalid)?;
    let subnet = if ipam::check_routes(&first, &routes).is_ok() {
        first
    } else {
        let others = named_subnets(&list(engine)?);
        ipam::choose_subnet(
            &ipam::default_pools(),
            others.iter().map(|(n, s)| (n.as_str(), s)),
            &routes,
        )
        .map_err(net_invalid)?
    };
    let cfg = IpamConfig::new(subnet, None, None).map_err(net_invalid)?;
    let config = NetConfig {
        ipam: vec![IpamEntry {
            subnet: cfg.subnet.to_string(),
            gateway: cfg.gateway.to_string(),
            ip_range: None,
        }],
        options: BTreeMap::from([
            (
                "com.docker.network.bridge.default_bridge".into(),
                "true".into(),
            ),
            (
                "com.docker.network.bridge.name".into(),
                DEFAULT_BRIDGE.into(),
            ),
        ]),
        ..Default::default()
    };
    let id = names::new_id()?;
    // INSERT OR IGNORE: a concurrent command may record it first; both then read the one
    // that won.
    conn.execute(
        "INSERT OR IGNORE INTO networks (id, name, bridge, created_at, config) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id,
            DEFAULT_NETWORK,
            DEFAULT_BRIDGE,
            berth_runtime::state::now_rfc3339(),
            serde_json::to_string(&config).unwrap_or_default()
        ],
    )
    .map_err(db_err(path))?;
    network_where(engine, "name = ?1", DEFAULT_NETWORK)?
        .ok_or_else(|| Error::NoSuchNetwork(DEFAULT_NETWORK.to_string()))
}

/// The one network `clause` (with `?1` = `key`) selects, if any.
fn network_where(engine: &Engine, clause: &str, key: &str) -> Result<Option<NetworkRow>> {
    engine
        .db
        .conn()
        .query_row(
            &format!("SELECT {NET_COLS} FROM networks WHERE {clause}"),
            [key],
            row_to_network,
        )
        .optional()
        .map_err(db_err(engine.db.path()))
}

/// A container's endpoints, in connection order.
pub fn endpoints_of(engine: &Engine, container_id: &str) -> Result<Vec<EndpointRow>> {
    endpoints_where(engine, "container_id = ?1 ORDER BY seq", container_id)
}

/// A network's endpoints.
pub fn endpoints_on(engine: &Engine, network_id: &str) -> Result<Vec<EndpointRow>> {
    endpoints_where(engine, "network_id = ?1 ORDER BY container_id", network_id)
}

fn endpoints_where(engine: &Engine, clause: &str, key: &str) -> Result<Vec<EndpointRow>> {
    let path = engine.db.path();
    let mut st = engine
        .db
        .conn()
        .prepare_cached(&format!("SELECT {EP_COLS} FROM endpoints WHERE {clause}"))
        .map_err(db_err(path))?;
    st.query_map([key], row_to_endpoint)
        .and_then(|r| r.collect())
        .map_err(db_err(path))
}

/// A container's endpoints with their networks.
pub fn container_networks(
    engine: &Engine,
    container_id: &str,
) -> Result<Vec<(EndpointRow, NetworkRow)>> {
    let mut out = vec![];
    for ep in endpoints_of(engine, container_id)? {
        if let Ok(n) = find(engine, &ep.network_id) {
            out.push((ep, n));
        }
    }
    Ok(out)
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Records a container's endpoint on `net`: its address (the lowest free one, or `--ip`),
/// MAC and published ports, all chosen inside one IMMEDIATE transaction.
pub fn allocate_endpoint(
    engine: &mut Engine,
    container_id: &str,
    net: &NetworkRow,
    req: &EndpointRequest,
) -> Result<EndpointRow> {
    let ipam = net.ipam4()?;
    let ipam6 = net.ipam6()?;
    if req.ip6.is_some() && ipam6.is_none() {
        return Err(invalid(
            "--ip6",
            format!(
                "network {} has no IPv6 subnet (create it with --ipv6)",
                net.name
            ),
        ));
    }
    let endpoint_id = names::new_id()?;
    let nid = net.id.clone();
    let cid = container_id.to_string();
    let path = engine.db.path().to_path_buf();
    engine.db.immediate(|tx| {
        let e = db_err(&path);
        // Removed meanwhile (`network rm` deletes the record under this same lock).
        let exists = tx
            .query_row("SELECT 1 FROM networks WHERE id = ?1", [&nid], |_| Ok(()))
            .optional()
            .map_err(&e)?
            .is_some();
        if !exists {
            return Err(Error::NoSuchNetwork(net.name.clone()));
        }
        let host_ifname = format!("vb{}{}", &cid[..7.min(cid.len())], &nid[..5.min(nid.len())]);
        forget_gone_veths(tx, &nid, &host_ifname, &e)?;
        let used = addresses_in_use(tx, &nid, "address").map_err(&e)?;
        let address = match req.ip {
            Some(ip) => ipam
                .reserve(ip, &used)
                .map_err(|err| invalid("--ip", err.to_string()))?,
            None => ipam
                .allocate(&used)
                .map_err(|err| Error::Other(format!("network {}: {err}", net.name)))?,
        };
        let address6 = match &ipam6 {
            Some(c) => {
                let used6 = addresses_in_use(tx, &nid, "address6").map_err(&e)?;
                Some(match req.ip6 {
                    Some(ip) => c
                        .reserve(ip, &used6)
                        .map_err(|err| invalid("--ip6", err.to_string()))?,
                    None => c
                        .allocate(&used6)
                        .map_err(|err| Error::Other(format!("network {}: {err}", net.name)))?,
                })
            }
            None => None,
        };
        let mut published: Vec<(String, PublishedPort)> = {
            let mut st = tx
                .prepare("SELECT container_id, ports FROM endpoints")
                .map_err(&e)?;
            let v: Vec<(String, String)> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|r| r.collect())
                .map_err(&e)?;
            v.into_iter()
                .flat_map(|(c, p)| {
                    let ports: Vec<PortBinding> = serde_json::from_str(&p).unwrap_or_default();
                    ports.into_iter().map(move |p| (c.clone(), p.published()))
                })
                .collect()
        };
        let mut mine = vec![];
        for m in &req.ports {
            let p = ports::allocate_host_port(m, published.iter().map(|(c, p)| (short(c), p)))
                .map_err(|err| Error::Other(err.to_string()))?;
            published.push((cid.clone(), p));
            mine.push(PortBinding::from_published(&p));
        }
        let seq: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM endpoints WHERE container_id = ?1",
                [&cid],
                |r| r.get(0),
            )
            .map_err(&e)?;
        let mac = match (req.mac, address) {
            (Some(m), _) => m,
            (None, IpAddr::V4(v4)) => netlink::mac_from_ipv4(v4),
            (None, IpAddr::V6(_)) => {
                let b = names::random_bytes(5)?;
                [0x02, b[0], b[1], b[2], b[3], b[4]]
            }
        };
        let ep = EndpointRow {
            container_id: cid.clone(),
            network_id: nid.clone(),
            endpoint_id: endpoint_id.clone(),
            address,
            address6,
            mac: mac_text(mac),
            host_ifname,
            ifname: format!("eth{seq}"),
            aliases: req.aliases.clone(),
            ports: mine,
            seq,
        };
        tx.execute(
            &format!(
                "INSERT INTO endpoints ({EP_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ),
            params![
                ep.container_id,
                ep.network_id,
                ep.endpoint_id,
                ep.address.to_string(),
                ep.mac,
                ep.host_ifname,
                ep.ifname,
                serde_json::to_string(&ep.aliases).unwrap_or_default(),
                serde_json::to_string(&ep.ports).unwrap_or_default(),
                ep.seq,
                ep.address6.map(|a| a.to_string()).unwrap_or_default()
            ],
        )
        .map_err(|err| match err {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Error::Other(format!(
                    "container {} is already connected to network {}",
                    short(&cid),
                    net.name
                ))
            }
            err => e(err),
        })?;
        Ok(ep)
    })
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// The addresses (`column`: `address` or `address6`) of network `nid` that are leased, or
/// were released while their veth is still there (see `released_endpoints` in `db`).
fn addresses_in_use(
    tx: &rusqlite::Transaction<'_>,
    nid: &str,
    column: &str,
) -> rusqlite::Result<HashSet<IpAddr>> {
    let mut st = tx.prepare(&format!(
        "SELECT {column} FROM endpoints WHERE network_id = ?1 \
         UNION SELECT {column} FROM released_endpoints WHERE network_id = ?1"
    ))?;
    let v: Vec<String> = st
        .query_map([nid], |r| r.get(0))
        .and_then(|r| r.collect())?;
    Ok(v.iter().filter_map(|a| a.parse().ok()).collect())
}

/// How long a released address waits for its veth before Berth deletes the veth itself
/// (something still holds the old namespace).
const LINGER_LIMIT_SECS: i64 = 30;

/// Drops the released addresses of network `nid` whose veth is gone; deletes the veths that
/// have lingered past [`LINGER_LIMIT_SECS`], and the old veth named `reusing`: the endpoint
/// being allocated (the same container back on the same network) takes that name. The veths
/// are looked for where the bridges are: rootless, in the rootless network namespace.
fn forget_gone_veths(
    tx: &rusqlite::Transaction<'_>,
    nid: &str,
    reusing: &str,
    e: &impl Fn(rusqlite::Error) -> Error,
) -> Result<()> {
    let rows: Vec<(String, i64)> = {
        let mut st = tx
            .prepare(
                "SELECT host_ifname, released_at FROM released_endpoints WHERE network_id = ?1",
            )
            .map_err(e)?;
        st.query_map([nid], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|r| r.collect())
            .map_err(e)?
    };
    if rows.is_empty() {
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let gone: Vec<String> = crate::rootless::in_netns(|| {
        rows.into_iter()
            .filter(|(ifname, at)| {
                !netlink::link_exists(ifname)
                    || ((ifname == reusing || now - at > LINGER_LIMIT_SECS)
                        && Netlink::open().is_ok_and(|h| h.delete_link(ifname).is_ok()))
            })
            .map(|(ifname, _)| ifname)
            .collect()
    })?;
    for ifname in gone {
        tx.execute(
            "DELETE FROM released_endpoints WHERE host_ifname = ?1",
            [&ifname],
        )
        .map_err(e)?;
    }
    Ok(())
}

/// Removes one endpoint record (`network disconnect`).
pub fn release_endpoint(engine: &mut Engine, container_id: &str, network_id: &str) -> Result<()> {
    let path = engine.db.path().to_path_buf();
    engine.db.immediate(|tx| {
        crate::db::release_endpoints(
            tx,
            "container_id = ?1 AND network_id = ?2",
            params![container_id, network_id],
        )
        .map_err(db_err(&path))?;
        Ok(())
    })
}

fn net_error(what: &str, e: NetError) -> Error {
    Error::Other(format!("{what}: {e}"))
}

/// The host firewall accepts are added only when `BERTH_HOST_FIREWALL` is not `0` (tests of
/// the engine may turn the iptables probing off; it is on by default, as the host's policy
/// needs it).
fn host_firewall() -> Option<HostFirewall> {
    match std::env::var("BERTH_HOST_FIREWALL").as_deref() {
        Ok("0") => None,
        _ => Some(HostFirewall::new()),
    }
}

/// A lock held across host network changes (creating, repairing, removing bridges), so two
/// commands never make or remove the same bridge at once.
fn host_lock(engine: &Engine) -> Result<fs::File> {
    fs::create_dir_all(&engine.run_dir).at(&engine.run_dir)?;
    let p = engine.run_dir.join("network.lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .at(&p)?;
    berth_image::sys::flock_exclusive(f.as_fd(), true).what(|| format!("flock {}", p.display()))?;
    Ok(f)
}

/// Makes a network real on the host (bridge, gateway address, firewall rules) when its
/// bridge is missing, and re-applies its firewall rules when it is there. `force` re-applies
/// everything even when the bridge exists.
pub fn host_up(engine: &Engine, host: &Netlink, net: &NetworkRow, force: bool) -> Result<()> {
    if !force
        && host
            .link_index(&net.bridge)
            .map_err(|e| net_error(&net.name, e.into()))?
            .is_some()
    {
        // The bridge is there; its rules may not be (a firewall reload, `nft flush
        // ruleset`): looked at (one `nft list`), re-applied in one transaction when missing.
        let fw = Firewall::new();
        let listing = fw
            .list()
            .map_err(|e| net_error(&format!("network {}", net.name), e.into()))?;
        let br = &net.bridge;
        if [
            format!("chain net-{br}-in {{"),
            format!("chain net-{br}-nat-out {{"),
            format!("\"{br}\" : jump net-{br}-in"),
            format!("\"{br}\" : jump net-{br}-nat-out"),
        ]
        .iter()
        .all(|want| listing.contains(want.as_str()))
        {
            return Ok(());
        }
        let b = net.bridge_network()?;
        let rules = berth_net::firewall::NetworkRules {
            bridge: b.bridge.clone(),
            subnets: b.ipam.iter().map(|c| c.subnet).collect(),
            internal: b.internal,
            icc: b.icc,
        };
        return fw
            .add_network(&rules)
            .map_err(|e| net_error(&format!("network {}", net.name), e.into()));
    }
    let _lock = host_lock(engine)?;
    if !force
        && host
            .link_index(&net.bridge)
            .map_err(|e| net_error(&net.name, e.into()))?
            .is_some()
    {
        return Ok(());
    }
    let fw = Firewall::new();
    fw.ensure_table()
        .map_err(|e| net_error(&format!("network {}", net.name), e.into()))?;
    berth_net::create_network(host, &fw, host_firewall().as_ref(), &net.bridge_network()?)
        .map_err(|e| net_error(&format!("creating network {}", net.name), e))
}

/// Connects a created container (init `pid`, not started yet) to its networks: a veth per
/// endpoint moved into its namespace, addresses, routes, published ports. On error what was
/// made is undone.
pub fn connect_container(engine: &Engine, container_id: &str, pid: i32) -> Result<()> {
    let eps = container_networks(engine, container_id)?;
    if eps.is_empty() {
        return Ok(());
    }
    let rootless = crate::rootless::active();
    crate::rootless::enter_netns()?;
    let p = format!("/proc/{pid}/ns/net");
    let netns = fs::File::open(&p).at(&p)?;
    let host = Netlink::open().map_err(|e| net_error("netlink", e.into()))?;
    let fw = Firewall::new();
    let mut done: Vec<&EndpointRow> = vec![];
    let mut result = Ok(());
    for (i, (ep, net)) in eps.iter().enumerate() {
        let r = (|| -> Result<()> {
            host_up(engine, &host, net, false)?;
            // The veth of this container's previous run, if the kernel has not deleted it
            // with the old namespace yet (see `disconnect_container`).
            if netlink::link_exists(&ep.host_ifname) {
                host.delete_link(&ep.host_ifname)
                    .map_err(|e| net_error("removing the previous run's veth", e.into()))?;
            }
            let endpoint = endpoint_of(ep, net, i == 0)?;
            let ports: Vec<PublishedPort> = if i == 0 {
                ep.ports
                    .iter()
                    .map(PortBinding::published)
                    // Rootless: the ports arrive from slirp4netns at the namespace's own
                    // address; the host address is slirp4netns' to bind.
                    .map(|p| PublishedPort {
                        host_ip: if rootless { None } else { p.host_ip },
                        ..p
                    })
                    .collect()
            } else {
                vec![]
            };
            berth_net::connect_container(&host, &fw, netns.as_fd(), container_id, &endpoint, &ports)
                .map_err(|e| net_error(&format!("connecting to network {}", net.name), e))
        })();
        if let Err(e) = r {
            result = Err(e);
            break;
        }
        done.push(ep);
    }
    if result.is_ok()
        && rootless
        && let Some((ep, _)) = eps.first()
        && !ep.ports.is_empty()
    {
        result = forward_rootless_ports(ep);
    }
    if result.is_err() {
        let _ = fw.remove_container(container_id);
        for ep in done {
            let _ = host.delete_link(&ep.host_ifname);
        }
    }
    result
}

/// Rootless: each published port is a host forward of the rootless namespace's slirp4netns
/// to the same port there, which the namespace's DNAT takes to the container.
fn forward_rootless_ports(ep: &EndpointRow) -> Result<()> {
    let api = crate::rootless::netns_slirp()?;
    for (i, p) in ep.ports.iter().enumerate() {
        if let Err(e) = api.forward(p.protocol(), p.host_ip, p.host_port, p.host_port) {
            for q in &ep.ports[..i] {
                let _ = api.remove_forwards(q.protocol(), q.host_port);
            }
            return Err(e.into());
        }
    }
    Ok(())
}

fn endpoint_of(ep: &EndpointRow, net: &NetworkRow, default_route: bool) -> Result<Endpoint> {
    let ipam = net.ipam4()?;
    let mut addresses = vec![
        IpNet::new(ep.address, ipam.subnet.prefix_len())
            .map_err(|e| invalid("address", e.to_string()))?,
    ];
    let mut gateways = vec![ipam.gateway];
    if let (Some(a6), Some(c6)) = (ep.address6, net.ipam6()?) {
        addresses.push(
            IpNet::new(a6, c6.subnet.prefix_len())
                .map_err(|e| invalid("address", e.to_string()))?,
        );
        gateways.push(c6.gateway);
    }
    if net.config.internal || !default_route {
        gateways.clear();
    }
    Ok(Endpoint {
        bridge: net.bridge.clone(),
        host_ifname: ep.host_ifname.clone(),
        container_ifname: ep.ifname.clone(),
        addresses,
        gateways,
        mac: netlink::parse_mac(&ep.mac),
        mtu: net.config.mtu,
    })
}

/// Connects one more network to a running container (`network connect`).
pub fn connect_one(engine: &Engine, ep: &EndpointRow, net: &NetworkRow, pid: i32) -> Result<()> {
    crate::rootless::enter_netns()?;
    let p = format!("/proc/{pid}/ns/net");
    let netns = fs::File::open(&p).at(&p)?;
    let host = Netlink::open().map_err(|e| net_error("netlink", e.into()))?;
    host_up(engine, &host, net, false)?;
    let first = ep.seq == 0;
    let endpoint = endpoint_of(ep, net, first)?;
    netlink::connect_endpoint(&host, netns.as_fd(), &endpoint)
        .map_err(|e| net_error(&format!("connecting to network {}", net.name), e.into()))
}

/// Disconnects a stopped container from every network it has endpoints on: removes its
/// published ports. Its veths are left to the kernel, which deletes them with the container's
/// network namespace once the last process in it is gone: deleting one ourselves waits out an
/// RCU grace period (about 30 ms of a `run --rm`'s 50). Until a veth is really gone its
/// address is not handed out again (`released_endpoints`, `forget_gone_veths`), and a
/// restart deletes a lingering one before making its own. Call it only when the container's
/// processes are gone; idempotent (also the clean-up after a crash).
pub fn disconnect_container(engine: &Engine, container_id: &str) -> Result<()> {
    let eps = endpoints_of(engine, container_id)?;
    if eps.iter().any(|e| !e.ports.is_empty()) {
        crate::rootless::enter_netns()?;
        if crate::rootless::active() {
            let api = crate::rootless::netns_slirp()?;
            for p in eps.iter().flat_map(|e| &e.ports) {
                let _ = api.remove_forwards(p.protocol(), p.host_port);
            }
        }
        Firewall::new()
            .remove_container(container_id)
            .map_err(|e| net_error("removing published ports", e.into()))?;
    }
    Ok(())
}

/// Removes one endpoint's veth (`network disconnect`).
pub fn disconnect_one(ep: &EndpointRow) -> Result<()> {
    crate::rootless::enter_netns()?;
    let host = Netlink::open().map_err(|e| net_error("netlink", e.into()))?;
    host.delete_link(&ep.host_ifname)
        .map(drop)
        .map_err(|e| net_error("removing a veth", e.into()))
}

/// `network create`'s request.
#[derive(Clone, Debug, Default)]
pub struct CreateNetwork {
    pub name: String,
    pub driver: Option<String>,
    pub subnets: Vec<String>,
    pub gateways: Vec<String>,
    pub ip_ranges: Vec<String>,
    pub internal: bool,
    pub ipv6: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

fn net_invalid(e: ipam::IpamError) -> Error {
    Error::Other(e.to_string())
}

/// `network create`: the record, then the bridge and its rules on the host; a failure on the
/// host removes the record again.
pub fn create(engine: &mut Engine, req: CreateNetwork) -> Result<NetworkRow> {
    crate::rootless::enter_netns()?;
    if !names::valid_name(&req.name) {
        return Err(invalid(
            "network name",
            format!("{:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", req.name),
        ));
    }
    if matches!(req.name.as_str(), "host" | "none") {
        return Err(Error::Other(format!(
            "network with name {} already exists",
            req.name
        )));
    }
    if let Some(d) = req.driver.as_deref()
        && d != "bridge"
    {
        return Err(Error::Other(format!(
            "plugin \"{d}\" not found (berth has the bridge driver)"
        )));
    }
    if req.subnets.is_empty() && (!req.gateways.is_empty() || !req.ip_ranges.is_empty()) {
        return Err(Error::Other(
            "--gateway and --ip-range need a --subnet".into(),
        ));
    }
    // Each --gateway and --ip-range goes with the --subnet that contains it (docker's rule).
    let mut parsed: Vec<IpamConfig> = vec![];
    for sub in &req.subnets {
        let net = ipam::parse_subnet(sub).map_err(net_invalid)?;
        let gw = req
            .gateways
            .iter()
            .map(|g| ipam::parse_address(g).map_err(net_invalid))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .find(|g| net.contains(g));
        let range = req
            .ip_ranges
            .iter()
            .map(|r| ipam::parse_subnet(r).map_err(net_invalid))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .find(|r| net.contains(&r.network()));
        parsed.push(IpamConfig::new(net, gw, range).map_err(net_invalid)?);
    }
    for g in &req.gateways {
        let g = ipam::parse_address(g).map_err(net_invalid)?;
        if !parsed.iter().any(|c| c.subnet.contains(&g)) {
            return Err(Error::Other(format!(
                "invalid gateway {g}: it is not inside subnet {}",
                req.subnets.join(", ")
            )));
        }
    }
    for r in &req.ip_ranges {
        let r = ipam::parse_subnet(r).map_err(net_invalid)?;
        if !parsed.iter().any(|c| c.subnet.contains(&r.network())) {
            return Err(Error::Other(format!(
                "invalid ip-range {r}: it is not inside subnet {}",
                req.subnets.join(", ")
            )));
        }
    }
    let given4: Vec<&IpamConfig> = parsed.iter().filter(|c| !c.is_ipv6()).collect();
    let given6: Vec<&IpamConfig> = parsed.iter().filter(|c| c.is_ipv6()).collect();
    if given4.len() > 1 || given6.len() > 1 {
        return Err(Error::Other(
            "one --subnet per address family is supported".into(),
        ));
    }
    if !given6.is_empty() && !req.ipv6 {
        return Err(Error::Other(format!(
            "IPv6 subnet {} given without --ipv6",
            given6[0].subnet
        )));
    }
    if req.ipv6 && given6.is_empty() {
        return Err(Error::Other(
            "--ipv6 needs an IPv6 --subnet (berth has no default IPv6 pool)".into(),
        ));
    }
    let given = given4.first().map(|c| (*c).clone());
    let given6 = given6.first().map(|c| (*c).clone());
    let mut mtu = None;
    let mut icc = None;
    let id = names::new_id()?;
    let mut bridge = format!("br-{}", &id[..12]);
    for (k, v) in &req.options {
        match k.as_str() {
            "com.docker.network.bridge.name" => {
                netlink::check_ifname(v).map_err(|e| Error::Other(e.to_string()))?;
                bridge = v.clone();
            }
            "com.docker.network.driver.mtu" => {
                mtu = Some(v.parse::<u32>().ok().filter(|m| *m >= 68).ok_or_else(|| {
                    invalid(
                        "com.docker.network.driver.mtu",
                        format!("{v:?} is not a valid MTU"),
                    )
                })?);
            }
            "com.docker.network.bridge.enable_icc" => {
                icc = Some(v.parse::<bool>().map_err(|_| {
                    invalid("com.docker.network.bridge.enable_icc", format!("{v:?}"))
                })?);
            }
            _ => {}
        }
    }
    let routes = Netlink::open()
        .and_then(|h| h.host_routes())
        .map_err(|e| net_error("reading the host's routes", e.into()))?;
    ensure_default(engine)?;
    let path = engine.db.path().to_path_buf();
    let name = req.name.clone();
    let row = engine.db.immediate(|tx| {
        let e = db_err(&path);
        let others: Vec<NetworkRow> = {
            let mut st = tx
                .prepare(&format!("SELECT {NET_COLS} FROM networks"))
                .map_err(&e)?;
            st.query_map([], row_to_network)
                .and_then(|r| r.collect())
                .map_err(&e)?
        };
        if others.iter().any(|n| n.name == name) {
            return Err(Error::Other(format!(
                "network with name {name} already exists"
            )));
        }
        if let Some(o) = others.iter().find(|n| n.bridge == bridge) {
            return Err(Error::Other(format!(
                "bridge name {bridge} is already used by network {}",
                o.name
            )));
        }
        let subnets = named_subnets(&others);
        let cfg = match &given {
            Some(c) => {
                ipam::check_overlap(&c.subnet, subnets.iter().map(|(n, s)| (n.as_str(), s)))
                    .map_err(net_invalid)?;
                ipam::check_routes(&c.subnet, &routes).map_err(net_invalid)?;
                c.clone()
            }
            None => {
                let s = ipam::choose_subnet(
                    &ipam::default_pools(),
                    subnets.iter().map(|(n, s)| (n.as_str(), s)),
                    &routes,
                )
                .map_err(net_invalid)?;
                IpamConfig::new(s, None, None).map_err(net_invalid)?
            }
        };
        let mut entries = vec![cfg];
        if let Some(c6) = &given6 {
            ipam::check_overlap(&c6.subnet, subnets.iter().map(|(n, s)| (n.as_str(), s)))
                .map_err(net_invalid)?;
            ipam::check_routes(&c6.subnet, &routes).map_err(net_invalid)?;
            entries.push(c6.clone());
        }
        let config = NetConfig {
            ipam: entries
                .iter()
                .map(|c| IpamEntry {
                    subnet: c.subnet.to_string(),
                    gateway: c.gateway.to_string(),
                    ip_range: c.ip_range.map(|r| r.to_string()),
                })
                .collect(),
            internal: req.internal,
            ipv6: given6.is_some(),
            mtu,
            icc,
            options: req.options.clone(),
            labels: req.labels.clone(),
        };
        let row = NetworkRow {
            id: id.clone(),
            name: name.clone(),
            bridge: bridge.clone(),
            created_at: berth_runtime::state::now_rfc3339(),
            config,
        };
        tx.execute(
            &format!("INSERT INTO networks ({NET_COLS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
            params![
                row.id,
                row.name,
                row.bridge,
                row.created_at,
                serde_json::to_string(&row.config).unwrap_or_default()
            ],
        )
        .map_err(&e)?;
        Ok(row)
    })?;
    let made = Netlink::open()
        .map_err(|e| net_error("netlink", e.into()))
        .and_then(|h| host_up(engine, &h, &row, true));
    if let Err(e) = made {
        let _ = delete_record(engine, &row.id);
        return Err(e);
    }
    engine.event(
        "network",
        "create",
        &row.id,
        &[("name", &row.name), ("type", "bridge")],
    );
    Ok(row)
}

fn delete_record(engine: &mut Engine, id: &str) -> Result<()> {
    let path = engine.db.path().to_path_buf();
    engine.db.immediate(|tx| {
        tx.execute("DELETE FROM networks WHERE id = ?1", [id])
            .map_err(db_err(&path))?;
        Ok(())
    })
}

/// `network rm`: refused while containers are connected (docker's message); the bridge and
/// its rules go first, then the record.
pub fn remove(engine: &mut Engine, key: &str) -> Result<NetworkRow> {
    crate::rootless::enter_netns()?;
    if matches!(key, "host" | "none" | DEFAULT_NETWORK) {
        return Err(Error::Other(format!(
            "{key} is a pre-defined network and cannot be removed"
        )));
    }
    let net = find(engine, key)?;
    if net.is_default() {
        return Err(Error::Other(format!(
            "{} is a pre-defined network and cannot be removed",
            net.name
        )));
    }
    let path = engine.db.path().to_path_buf();
    // Refused under the write lock: no container can take a lease on it meanwhile, and the
    // record is gone before the lock is released (a `run` that comes after finds no network).
    let nid = net.id.clone();
    let name = net.name.clone();
    engine.db.immediate(|tx| {
        let e = db_err(&path);
        let n: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM endpoints WHERE network_id = ?1",
                [&nid],
                |r| r.get(0),
            )
            .map_err(&e)?;
        if n > 0 {
            return Err(Error::Other(format!(
                "error while removing network: network {name} id {nid} has active endpoints"
            )));
        }
        tx.execute("DELETE FROM networks WHERE id = ?1", [&nid])
            .map_err(&e)?;
        tx.execute(
            "DELETE FROM released_endpoints WHERE network_id = ?1",
            [&nid],
        )
        .map_err(&e)?;
        Ok(())
    })?;
    let _lock = host_lock(engine)?;
    let host = Netlink::open().map_err(|e| net_error("netlink", e.into()))?;
    berth_net::remove_network(
        &host,
        &Firewall::new(),
        host_firewall().as_ref(),
        &net.bridge,
    )
    .map_err(|e| net_error(&format!("removing network {}", net.name), e))?;
    engine.event(
        "network",
        "destroy",
        &net.id,
        &[("name", &net.name), ("type", "bridge")],
    );
    Ok(net)
}

/// Every subnet of `nets`, with the name of its network (for overlap checks and messages).
fn named_subnets(nets: &[NetworkRow]) -> Vec<(String, IpNet)> {
    nets.iter()
        .flat_map(|n| {
            n.config
                .ipam
                .iter()
                .filter_map(|c| c.subnet.parse::<IpNet>().ok())
                .map(|s| (n.name.clone(), s))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Parses the `--network` value: the networks a container joins (empty for `none`/`host`).
pub fn network_mode(mode: &str) -> &str {
    match mode {
        "" | "default" => DEFAULT_NETWORK,
        m => m,
    }
}

/// The `/etc/hosts` of a container: localhost lines, its own address with its hostname and
/// `--add-host` entries, as docker writes it. Other containers are found through the
/// embedded resolver on user-defined networks (`crate::dns`), not through this file.
pub fn hosts_file(engine: &Engine, row: &crate::ContainerRow) -> Result<String> {
    let cfg = crate::row_config(row);
    let hn = crate::spec::hostname(&row.id, &cfg);
    if cfg.network == "host" {
        let mut hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
        if !hosts.is_empty() && !hosts.ends_with('\n') {
            hosts.push('\n');
        }
        for (h, ip) in add_hosts(engine, row)? {
            hosts.push_str(&format!("{ip}\t{h}\n"));
        }
        return Ok(hosts);
    }
    let eps = container_networks(engine, &row.id)?;
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    match eps.first() {
        Some((ep, _)) => {
            hosts.push_str(&format!("{}\t{hn}\n", ep.address));
            if let Some(a6) = ep.address6 {
                hosts.push_str(&format!("{a6}\t{hn}\n"));
            }
        }
        None if cfg.network == SLIRP4NETNS => {
            hosts.push_str(&format!("{}\t{hn}\n", berth_net::slirp::GUEST_ADDR));
        }
        None => hosts.push_str(&format!("127.0.1.1\t{hn}\n")),
    }
    for l in crate::links::hosts_lines(engine, row)? {
        hosts.push_str(&l);
        hosts.push('\n');
    }
    for (h, ip) in add_hosts(engine, row)? {
        hosts.push_str(&format!("{ip}\t{h}\n"));
    }
    Ok(hosts)
}

/// `--add-host` entries with `host-gateway` resolved to the gateway of the container's first
/// network (docker: the default bridge's gateway).
pub fn add_hosts(engine: &Engine, row: &crate::ContainerRow) -> Result<Vec<(String, String)>> {
    let cfg = crate::row_config(row);
    let mut out = vec![];
    for h in &cfg.add_hosts {
        let (name, ip) = crate::config::parse_add_host(h)?;
        let ip = if ip == "host-gateway" {
            match container_networks(engine, &row.id)?.first() {
                Some((_, n)) => n.ipam4()?.gateway.to_string(),
                None if cfg.network == SLIRP4NETNS => berth_net::slirp::GATEWAY_ADDR.to_string(),
                None => "172.17.0.1".to_string(),
            }
        } else {
            ip
        };
        out.push((name, ip));
    }
    Ok(out)
}

/// Writes a container's hosts file in place (it is bind-mounted: the inode must stay).
pub fn write_hosts(engine: &Engine, row: &crate::ContainerRow) -> Result<()> {
    let p = engine.container_dir(&row.id).join("hosts");
    if !p.exists() {
        return Ok(());
    }
    let content = hosts_file(engine, row)?;
    fs::write(&p, content).at(&p)
}

/// docker's `/etc/resolv.conf` for a container: the host's (systemd-resolved's upstream file
/// when the host points at its stub), without loopback nameservers (unreachable from the
/// container's namespace), Google's when none is left; `--dns`, `--dns-search`,
/// `--dns-option` replace their parts. On a user-defined network (`embedded`) the only
/// nameserver is the container's resolver at 127.0.0.11 with docker's `options ndots:0`;
/// the servers it forwards to are chosen by `crate::dns::upstream_servers`.
pub fn resolv_conf(cfg: &crate::RunConfig, embedded: bool) -> String {
    let host_file = || {
        let main = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        if main.lines().any(|l| l.trim() == "nameserver 127.0.0.53") {
            fs::read_to_string("/run/systemd/resolve/resolv.conf").unwrap_or(main)
        } else {
            main
        }
    };
    let host_net = cfg.network == "host";
    if host_net && cfg.dns.is_empty() && cfg.dns_search.is_empty() && cfg.dns_options.is_empty() {
        return fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    }
    let text = host_file();
    let mut servers = vec![];
    let mut search = vec![];
    let mut options = vec![];
    let mut other = vec![];
    for l in text.lines() {
        let t = l.trim();
        let mut w = t.split_whitespace();
        match w.next() {
            Some("nameserver") => {
                if let Some(s) = w.next() {
                    let lo = s
                        .parse::<IpAddr>()
                        .map(|a| a.is_loopback())
                        .unwrap_or(false);
                    if !lo || host_net {
                        servers.push(s.to_string());
                    }
                }
            }
            Some("search") | Some("domain") => search = w.map(String::from).collect(),
            Some("options") => options.extend(w.map(String::from)),
            Some(_) if !t.starts_with('#') => other.push(t.to_string()),
            _ => {}
        }
    }
    if embedded {
        servers = vec![berth_net::dns::RESOLVER_ADDRESS.to_string()];
        if !options.iter().any(|o| o.starts_with("ndots:"))
            && !cfg.dns_options.iter().any(|o| o.starts_with("ndots:"))
        {
            options.insert(0, "ndots:0".into());
        }
    } else if !cfg.dns.is_empty() {
        servers = cfg.dns.clone();
    } else if cfg.network == SLIRP4NETNS {
        // slirp4netns' forwarder asks the host's servers, loopback ones
        // (systemd-resolved, dnsmasq) included, which the container
        // itself cannot reach.
        servers = vec![berth_net::slirp::DNS_ADDR.to_string()];
    } else if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    if !cfg.dns_search.is_empty() {
        search = if cfg.dns_search.iter().any(|s| s == ".") {
            vec![]
        } else {
            cfg.dns_search.clone()
        };
    }
    if !cfg.dns_options.is_empty() {
        options.retain(|o| embedded && o == "ndots:0");
        options.extend(cfg.dns_options.iter().cloned());
    }
    let mut out = String::new();
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    for o in other {
        out.push_str(&o);
        out.push('\n');
    }
    out
}

/// The ports a slirp4netns container's monitor published, in its state
/// directory (JSON `PortBinding`s); gone when it stops.
pub const PORTS_FILE: &str = "ports.json";

/// Starts slirp4netns for a rootless container and publishes its `-p`
/// ports; the bound ports are written to [`PORTS_FILE`].
pub fn start_slirp(
    engine: &Engine,
    id: &str,
    cfg: &crate::RunConfig,
    pid: i32,
) -> Result<berth_net::slirp::Slirp> {
    let dir = engine.state_dir(id);
    let slirp = berth_net::slirp::Slirp::start(pid, &dir)?;
    let mut bound = vec![];
    for p in &cfg.publish {
        let maps =
            berth_net::ports::parse_port_spec(p).map_err(|e| invalid("-p", e.to_string()))?;
        for m in maps {
            let want = m.fixed_host_port().unwrap_or(0);
            let host_port = match slirp.forward(m.protocol, m.host_ip, want, m.container_port) {
                Ok(port) => port,
                Err(e) => {
                    slirp.stop();
                    return Err(e.into());
                }
            };
            bound.push(PortBinding {
                host_ip: m.host_ip,
                host_port,
                container_port: m.container_port,
                protocol: m.protocol.as_str().to_string(),
            });
        }
    }
    let path = dir.join(PORTS_FILE);
    let json = serde_json::to_vec(&bound).map_err(|e| Error::Other(e.to_string()))?;
    fs::write(&path, json).at(&path)?;
    Ok(slirp)
}

/// The ports of a slirp4netns container, as its monitor bound them.
pub fn slirp_ports(engine: &Engine, id: &str) -> Vec<PortBinding> {
    fs::read(engine.state_dir(id).join(PORTS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Parses `--mac-address`.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    netlink::parse_mac(s)
        .ok_or_else(|| invalid("--mac-address", format!("{s:?} is not a MAC address")))
}

/// Parses `--ip`.
pub fn parse_ip(s: &str) -> Result<IpAddr> {
    ipam::parse_address(s).map_err(|e| invalid("--ip", e.to_string()))
}

/// `network connect [--ip] [--alias] NETWORK CONTAINER`: a new endpoint, made live at once
/// when the container runs (else when it starts).
pub fn connect(
    engine: &mut Engine,
    net_key: &str,
    container: &str,
    ip: Option<&str>,
    ip6: Option<&str>,
    aliases: Vec<String>,
) -> Result<EndpointRow> {
    let row = engine.get(container)?;
    let cfg = crate::row_config(&row);
    if matches!(cfg.network.as_str(), "host" | "none") || matches!(net_key, "host" | "none") {
        return Err(Error::Other(format!(
            "container {} cannot be connected to network {net_key}: it uses --network {} (a namespace that is not berth's to change)",
            row.name, cfg.network
        )));
    }
    let net = find(engine, net_key)?;
    let mut req = EndpointRequest {
        aliases,
        ..Default::default()
    };
    if let Some(ip) = ip {
        req.ip = Some(parse_ip(ip)?);
    }
    if let Some(ip6) = ip6 {
        req.ip6 = Some(ipam::parse_address(ip6).map_err(|e| invalid("--ip6", e.to_string()))?);
    }
    if net.is_default() && (req.ip.is_some() || req.ip6.is_some() || !req.aliases.is_empty()) {
        return Err(invalid(
            "network connect",
            "user specified IP address and aliases are supported only for user-defined networks",
        ));
    }
    let ep = allocate_endpoint(engine, &row.id, &net, &req)?;
    if (row.state == crate::db::RUNNING || row.state == crate::db::PAUSED)
        && let Err(e) = connect_one(engine, &ep, &net, row.pid)
    {
        let _ = release_endpoint(engine, &row.id, &net.id);
        return Err(e);
    }
    let _ = write_hosts(engine, &row);
    engine.event(
        "network",
        "connect",
        &net.id,
        &[
            ("container", &row.id),
            ("name", &net.name),
            ("type", "bridge"),
        ],
    );
    Ok(ep)
}

/// `network disconnect NETWORK CONTAINER`.
pub fn disconnect(engine: &mut Engine, net_key: &str, container: &str) -> Result<()> {
    let row = engine.get(container)?;
    let net = find(engine, net_key)?;
    let Some(ep) = endpoints_of(engine, &row.id)?
        .into_iter()
        .find(|e| e.network_id == net.id)
    else {
        return Err(Error::Other(format!(
            "container {} is not connected to network {}",
            short(&row.id),
            net.name
        )));
    };
    if row.state == crate::db::RUNNING || row.state == crate::db::PAUSED {
        disconnect_one(&ep)?;
        if !ep.ports.is_empty() {
            let _ = Firewall::new().remove_container(&row.id);
        }
    }
    release_endpoint(engine, &row.id, &net.id)?;
    let _ = write_hosts(engine, &row);
    engine.event(
        "network",
        "disconnect",
        &net.id,
        &[
            ("container", &row.id),
            ("name", &net.name),
            ("type", "bridge"),
        ],
    );
    Ok(())
}

/// `network prune`: every user network without endpoints; their names.
pub fn prune(engine: &mut Engine) -> Result<Vec<String>> {
    engine.prune_networks(&crate::prune::PruneFilter::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_and_applies_flags() {
        let cfg = crate::RunConfig {
            network: "bridge".into(),
            dns: vec!["10.0.0.2".into()],
            dns_search: vec!["example.com".into()],
            dns_options: vec!["ndots:2".into()],
            ..Default::default()
        };
        let r = resolv_conf(&cfg, false);
        assert!(r.starts_with("nameserver 10.0.0.2\n"), "{r}");
        assert!(r.contains("search example.com\n"), "{r}");
        assert!(r.contains("options ndots:2\n"), "{r}");
        assert!(!r.contains("127.0.0."), "{r}");
    }

    #[test]
    fn resolv_conf_on_user_networks_points_at_the_resolver() {
        let mut cfg = crate::RunConfig {
            network: "mynet".into(),
            dns: vec!["10.0.0.2".into()],
            dns_search: vec!["example.com".into()],
            ..Default::default()
        };
        let r = resolv_conf(&cfg, true);
        // docker's file: the resolver only (--dns is where it forwards), ndots:0.
        assert!(r.starts_with("nameserver 127.0.0.11\n"), "{r}");
        assert_eq!(r.matches("nameserver").count(), 1, "{r}");
        assert!(r.contains("search example.com\n"), "{r}");
        assert!(r.contains("options ndots:0"), "{r}");
        cfg.dns_options = vec!["timeout:2".into()];
        let r = resolv_conf(&cfg, true);
        assert!(r.contains("options ndots:0 timeout:2\n"), "{r}");
        cfg.dns_options = vec!["ndots:3".into()];
        let r = resolv_conf(&cfg, true);
        assert!(
            r.contains("options ndots:3\n") && !r.contains("ndots:0"),
            "{r}"
        );
    }
}
