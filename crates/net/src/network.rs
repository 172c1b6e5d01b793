//! The calls the engine makes for a bridge network and its containers, each doing the whole
//! job (links, sysctls, firewall) and leaving nothing half-made when it fails.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use crate::firewall::{Firewall, FirewallError, HostFirewall, NetworkRules, PublishedPort};
use crate::ipam::{IpNet, IpamConfig};
use crate::netlink::{self, Endpoint, Netlink, NetlinkError};
use crate::sysctl::{self, SysctlError};

/// Any failure of a network operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
}

/// A bridge network as the host sees it (docker's `bridge` driver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNetwork {
    /// The bridge device (`berth0` for the default network, `com.docker.network.bridge.name`).
    pub bridge: String,
    /// One entry per family (`--subnet`, `--gateway`, `--ip-range`).
    pub ipam: Vec<IpamConfig>,
    /// `--internal`.
    pub internal: bool,
    /// `com.docker.network.driver.mtu`.
    pub mtu: Option<u32>,
    /// `com.docker.network.bridge.enable_icc` (docker's default: true).
    pub icc: bool,
}

impl BridgeNetwork {
    fn rules(&self) -> NetworkRules {
        NetworkRules {
            bridge: self.bridge.clone(),
            subnets: self.ipam.iter().map(|c| c.subnet).collect(),
            internal: self.internal,
            icc: self.icc,
        }
    }
}

/// Creates (or repairs) a network on the host: forwarding on, the bridge with its gateway
/// addresses and `route_localnet`, the firewall's network rules, and accepts in a host
/// firewall whose forward policy is DROP (`host_firewall`, `None` to leave it alone). A
/// failure removes what this call made.
pub fn create_network(
    host: &Netlink,
    firewall: &Firewall,
    host_firewall: Option<&HostFirewall>,
    net: &BridgeNetwork,
) -> Result<(), Error> {
    let existed = host.link_index(&net.bridge)?.is_some();
    let result = (|| -> Result<(), Error> {
        let ipv6 = net.ipam.iter().any(IpamConfig::is_ipv6);
        if !net.internal {
            sysctl::enable_forwarding(ipv6)?;
        }
        host.create_bridge(&net.bridge, net.mtu)?;
        // A bridge whose MAC is not set follows its lowest port's, so it changes whenever
        // a veth comes or goes (and the kernel deletes a stopped container's veth a moment
        // after the container): the containers' neighbour entries for the gateway then
        // point at a MAC that is gone and their next packets out are lost. docker sets
        // one too. Derived from the gateway address like the containers' (02:42:…:01).
        if let Some(IpAddr::V4(gw)) = net.ipam.iter().map(|c| c.gateway).find(IpAddr::is_ipv4) {
            host.set_mac(&net.bridge, netlink::mac_from_ipv4(gw))?;
        }
        for c in &net.ipam {
            host.add_address(&net.bridge, c.gateway_net())?;
        }
        sysctl::enable_route_localnet(&net.bridge)?;
        if !net.icc {
            sysctl::enable_bridge_netfilter(ipv6)?;
        }
        firewall.add_network(&net.rules())?;
        if let Some(h) = host_firewall {
            h.open_bridge(&net.bridge)?;
        }
        Ok(())
    })();
    if result.is_err() && !existed {
        let _ = remove_network(host, firewall, host_firewall, &net.bridge);
    }
    result
}

/// Removes a network from the host: its firewall rules, the host firewall's accepts, the
/// bridge. Idempotent.
pub fn remove_network(
    host: &Netlink,
    firewall: &Firewall,
    host_firewall: Option<&HostFirewall>,
    bridge: &str,
) -> Result<(), Error> {
    // Every step is tried; the first error is returned.
    let fw = firewall.remove_network(bridge).map_err(Error::from);
    let hf = match host_firewall {
        Some(h) => h.close_bridge(bridge).map_err(Error::from),
        None => Ok(()),
    };
    let link = host.delete_link(bridge).map(drop).map_err(Error::from);
    fw.and(hf).and(link)
}

/// Connects a container (its network namespace `netns`) to a network and publishes its
/// ports to `addresses` (the container's addresses on that network). A failure removes what
/// this call made.
pub fn connect_container(
    host: &Netlink,
    firewall: &Firewall,
    netns: BorrowedFd<'_>,
    container_id: &str,
    endpoint: &Endpoint,
    ports: &[PublishedPort],
) -> Result<(), Error> {
    netlink::connect_endpoint(host, netns, endpoint)?;
    if !ports.is_empty() {
        let addrs: Vec<IpAddr> = endpoint.addresses.iter().map(IpNet::addr).collect();
        if let Err(e) = firewall.add_container(container_id, &addrs, ports) {
            let _ = host.delete_link(&endpoint.host_ifname);
            return Err(e.into());
        }
    }
    Ok(())
}

/// Disconnects a container: its published ports and the host end of its veth pair (which
/// takes the container end with it). Idempotent, so it also cleans up after a crash.
pub fn disconnect_container(
    host: &Netlink,
    firewall: &Firewall,
    container_id: &str,
    host_ifname: &str,
) -> Result<(), Error> {
    // Both steps are tried; the first error is returned.
    let fw = firewall.remove_container(container_id).map_err(Error::from);
    let link = host.delete_link(host_ifname).map(drop).map_err(Error::from);
    fw.and(link)
}
