//! IP address management as pure logic: subnets, gateways, `--ip-range`, the next free
//! address, and the choice of a subnet for a new network from docker's default address pools.
//!
//! Nothing here is stored: the engine keeps the leases (the addresses in use) in its state
//! database and hands them in as a set; this module only decides.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use ipnet::IpNet;

/// A bad subnet, gateway, range or address, named.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("invalid subnet {0:?}: expected an address and a prefix length, like 172.18.0.0/16")]
    MalformedSubnet(String),
    #[error("invalid subnet {given}: it should be {canonical}")]
    NotNetworkAddress { given: String, canonical: IpNet },
    #[error("invalid subnet {0}: a bridge network needs room for a gateway and a container")]
    SubnetTooSmall(IpNet),
    #[error("invalid address {0:?}")]
    MalformedAddress(String),
    #[error("invalid gateway {gateway}: it is not inside subnet {subnet}")]
    GatewayOutsideSubnet { gateway: IpAddr, subnet: IpNet },
    #[error("invalid gateway {gateway}: it is the network or broadcast address of {subnet}")]
    GatewayReserved { gateway: IpAddr, subnet: IpNet },
    #[error("invalid ip-range {range}: it is not inside subnet {subnet}")]
    RangeOutsideSubnet { range: IpNet, subnet: IpNet },
    #[error("invalid address {address}: it is not inside subnet {subnet}")]
    AddressOutsideSubnet { address: IpAddr, subnet: IpNet },
    #[error(
        "invalid address {address}: it is the network, broadcast or gateway address of {subnet}"
    )]
    AddressReserved { address: IpAddr, subnet: IpNet },
    #[error("address {0} is already in use")]
    AddressInUse(IpAddr),
    #[error("no available IPv{family} addresses left in {range}")]
    RangeExhausted { family: u8, range: IpNet },
    #[error("subnet {subnet} overlaps with network {network} ({other})")]
    OverlapsNetwork {
        subnet: IpNet,
        network: String,
        other: IpNet,
    },
    #[error("subnet {subnet} overlaps with host route {route}")]
    OverlapsRoute { subnet: IpNet, route: IpNet },
    #[error(
        "all predefined address pools have been fully subnetted (no free subnet left that overlaps no network and no host route)"
    )]
    PoolsExhausted,
    #[error("invalid address pool {base}/{size}: size must be at least the base prefix length")]
    BadPool { base: IpNet, size: u8 },
}

/// Parses a `--subnet` value (v4 or v6). The address must be the network address, as docker
/// requires (`172.18.0.1/16` is refused: "it should be 172.18.0.0/16").
pub fn parse_subnet(value: &str) -> Result<IpNet, IpamError> {
    let net: IpNet = value
        .trim()
        .parse()
        .map_err(|_| IpamError::MalformedSubnet(value.to_string()))?;
    if net.trunc() != net {
        return Err(IpamError::NotNetworkAddress {
            given: value.to_string(),
            canonical: net.trunc(),
        });
    }
    Ok(net)
}

/// Parses an address (`--gateway`, `--ip`, `--ip6`).
pub fn parse_address(value: &str) -> Result<IpAddr, IpamError> {
    value
        .trim()
        .parse()
        .map_err(|_| IpamError::MalformedAddress(value.to_string()))
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// True when the two networks share at least one address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The addressing of one network: docker's IPAM `Config` entry (`Subnet`, `Gateway`,
/// `IPRange`) for one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    pub subnet: IpNet,
    pub gateway: IpAddr,
    /// Containers get addresses from here (`--ip-range`); the whole subnet when `None`.
    pub ip_range: Option<IpNet>,
}

impl IpamConfig {
    /// Validates a subnet with an optional gateway (default: the first host address, as docker)
    /// and an optional `--ip-range`.
    pub fn new(
        subnet: IpNet,
        gateway: Option<IpAddr>,
        ip_range: Option<IpNet>,
    ) -> Result<Self, IpamError> {
        let subnet = subnet.trunc();
        let v4 = matches!(subnet, IpNet::V4(_));
        // A v4 bridge subnet needs network, gateway, one host, broadcast: /30 at most.
        if (v4 && subnet.prefix_len() > 30) || (!v4 && subnet.prefix_len() > 126) {
            return Err(IpamError::SubnetTooSmall(subnet));
        }
        let gateway = match gateway {
            Some(g) => {
                if !subnet.contains(&g) {
                    return Err(IpamError::GatewayOutsideSubnet { gateway: g, subnet });
                }
                if is_reserved(&subnet, g) {
                    return Err(IpamError::GatewayReserved { gateway: g, subnet });
                }
                g
            }
            None => from_u128(v4, to_u128(subnet.network()) + 1),
        };
        if let Some(range) = ip_range {
            let range = range.trunc();
            if !(subnet.contains(&range.network()) && subnet.contains(&range.broadcast())) {
                return Err(IpamError::RangeOutsideSubnet { range, subnet });
            }
        }
        Ok(IpamConfig {
            subnet,
            gateway,
            ip_range: ip_range.map(|r| r.trunc()),
        })
    }

    /// Parses the `--subnet`, `--gateway` and `--ip-range` strings of `network create`.
    pub fn parse(
        subnet: &str,
        gateway: Option<&str>,
        ip_range: Option<&str>,
    ) -> Result<Self, IpamError> {
        let subnet = parse_subnet(subnet)?;
        let gateway = gateway.map(parse_address).transpose()?;
        let ip_range = ip_range.map(parse_subnet).transpose()?;
        Self::new(subnet, gateway, ip_range)
    }

    pub fn is_ipv6(&self) -> bool {
        matches!(self.subnet, IpNet::V6(_))
    }

    /// The gateway with the subnet's prefix length: the bridge's address.
    pub fn gateway_net(&self) -> IpNet {
        // The prefix length comes from a valid subnet: cannot fail.
        IpNet::new(self.gateway, self.subnet.prefix_len()).unwrap_or(self.subnet)
    }

    /// The next free address for a container: the lowest address of the range that is not the
    /// network address, the v4 broadcast address, the gateway or in `used`.
    pub fn allocate(&self, used: &HashSet<IpAddr>) -> Result<IpAddr, IpamError> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let v4 = !self.is_ipv6();
        let first = to_u128(range.network());
        let last = to_u128(range.broadcast());
        let mut n = first;
        loop {
            let a = from_u128(v4, n);
            if !is_reserved(&self.subnet, a) && a != self.gateway && !used.contains(&a) {
                return Ok(a);
            }
            if n == last {
                return Err(IpamError::RangeExhausted {
                    family: if v4 { 4 } else { 6 },
                    range,
                });
            }
            n += 1;
        }
    }

    /// Checks an address asked for with `--ip`/`--ip6` (it may lie outside `--ip-range`, as in
    /// docker, but must be inside the subnet).
    pub fn reserve(&self, address: IpAddr, used: &HashSet<IpAddr>) -> Result<IpAddr, IpamError> {
        if !self.subnet.contains(&address) {
            return Err(IpamError::AddressOutsideSubnet {
                address,
                subnet: self.subnet,
            });
        }
        if is_reserved(&self.subnet, address) || address == self.gateway {
            return Err(IpamError::AddressReserved {
                address,
                subnet: self.subnet,
            });
        }
        if used.contains(&address) {
            return Err(IpamError::AddressInUse(address));
        }
        Ok(address)
    }
}

/// The network address, and for v4 the broadcast address.
fn is_reserved(subnet: &IpNet, a: IpAddr) -> bool {
    a == subnet.network() || (matches!(subnet, IpNet::V4(_)) && a == subnet.broadcast())
}

/// One of docker's `default-address-pools` entries: `base` split into subnets of `size` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    pub base: IpNet,
    pub size: u8,
}

/// Docker's predefined local pools (libnetwork `ipamutils`): 172.17.0.0/16 … 172.31.0.0/16
/// (the first is the default `bridge` network's), then 192.168.0.0/16 split into /20s.
pub fn default_pools() -> Vec<AddressPool> {
    let mut pools: Vec<AddressPool> = (17u8..=31)
        .map(|b| AddressPool {
            base: IpNet::V4(
                ipnet::Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap_or_default(),
            ),
            size: 16,
        })
        .collect();
    pools.push(AddressPool {
        base: IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).unwrap_or_default()),
        size: 20,
    });
    pools
}

/// Checks that `subnet` overlaps no other network (name, subnet).
pub fn check_overlap<'a>(
    subnet: &IpNet,
    networks: impl IntoIterator<Item = (&'a str, &'a IpNet)>,
) -> Result<(), IpamError> {
    for (name, other) in networks {
        if overlaps(subnet, other) {
            return Err(IpamError::OverlapsNetwork {
                subnet: *subnet,
                network: name.to_string(),
                other: *other,
            });
        }
    }
    Ok(())
}

/// Checks that `subnet` overlaps no host route. Default routes (prefix length 0) overlap
/// everything and are ignored, as docker does.
pub fn check_routes(subnet: &IpNet, host_routes: &[IpNet]) -> Result<(), IpamError> {
    for route in host_routes {
        if route.prefix_len() > 0 && overlaps(subnet, route) {
            return Err(IpamError::OverlapsRoute {
                subnet: *subnet,
                route: *route,
            });
        }
    }
    Ok(())
}

/// Chooses the subnet of a new network: the first subnet of the pools, in order, that
/// overlaps no existing network and no host route.
pub fn choose_subnet<'a>(
    pools: &[AddressPool],
    networks: impl IntoIterator<Item = (&'a str, &'a IpNet)> + Clone,
    host_routes: &[IpNet],
) -> Result<IpNet, IpamError> {
    for pool in pools {
        let subnets = pool
            .base
            .trunc()
            .subnets(pool.size)
            .map_err(|_| IpamError::BadPool {
                base: pool.base,
                size: pool.size,
            })?;
        for candidate in subnets {
            if check_overlap(&candidate, networks.clone()).is_ok()
                && check_routes(&candidate, host_routes).is_ok()
            {
                return Ok(candidate);
            }
        }
    }
    Err(IpamError::PoolsExhausted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_are_parsed_and_checked() {
        assert_eq!(parse_subnet("10.1.0.0/16"), Ok(net("10.1.0.0/16")));
        assert_eq!(parse_subnet("fd00:1::/64"), Ok(net("fd00:1::/64")));
        assert_eq!(
            parse_subnet("10.1.0.0"),
            Err(IpamError::MalformedSubnet("10.1.0.0".into()))
        );
        assert_eq!(
            parse_subnet("10.1.0.0/33"),
            Err(IpamError::MalformedSubnet("10.1.0.0/33".into()))
        );
        let e = parse_subnet("10.1.2.3/16").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid subnet 10.1.2.3/16: it should be 10.1.0.0/16"
        );
        assert!(matches!(
            IpamConfig::parse("10.0.0.0/31", None, None),
            Err(IpamError::SubnetTooSmall(_))
        ));
    }

    #[test]
    fn gateway_defaults_to_first_host_and_must_be_inside() {
        let c = IpamConfig::parse("172.20.0.0/16", None, None).unwrap();
        assert_eq!(c.gateway, ip("172.20.0.1"));
        assert_eq!(c.gateway_net(), net("172.20.0.1/16"));
        let e = IpamConfig::parse("172.20.0.0/16", Some("172.21.0.1"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid gateway 172.21.0.1: it is not inside subnet 172.20.0.0/16"
        );
        assert!(matches!(
            IpamConfig::parse("172.20.0.0/16", Some("172.20.255.255"), None),
            Err(IpamError::GatewayReserved { .. })
        ));
        assert!(matches!(
            IpamConfig::parse("172.20.0.0/16", Some("nope"), None),
            Err(IpamError::MalformedAddress(s)) if s == "nope"
        ));
    }

    #[test]
    fn allocation_skips_reserved_and_used_until_exhausted() {
        let c = IpamConfig::parse("10.9.0.0/29", None, None).unwrap();
        let mut used = HashSet::new();
        let mut got = vec![];
        while let Ok(a) = c.allocate(&used) {
            used.insert(a);
            got.push(a);
        }
        // .0 network, .1 gateway, .7 broadcast are never handed out.
        let want: Vec<IpAddr> = (2..=6).map(|i| ip(&format!("10.9.0.{i}"))).collect();
        assert_eq!(got, want);
        let e = c.allocate(&used).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no available IPv4 addresses left in 10.9.0.0/29"
        );
        // A release makes the address available again.
        used.remove(&ip("10.9.0.4"));
        assert_eq!(c.allocate(&used), Ok(ip("10.9.0.4")));
    }

    #[test]
    fn gateway_elsewhere_is_skipped() {
        let c = IpamConfig::parse("10.9.0.0/24", Some("10.9.0.2"), None).unwrap();
        let mut used = HashSet::new();
        let a = c.allocate(&used).unwrap();
        assert_eq!(a, ip("10.9.0.1"));
        used.insert(a);
        assert_eq!(c.allocate(&used), Ok(ip("10.9.0.3")));
    }

    #[test]
    fn ip_range_limits_allocation_but_not_explicit_addresses() {
        let c = IpamConfig::parse("10.10.0.0/16", None, Some("10.10.5.0/30")).unwrap();
        let mut used = HashSet::new();
        for want in ["10.10.5.0", "10.10.5.1", "10.10.5.2", "10.10.5.3"] {
            let a = c.allocate(&used).unwrap();
            assert_eq!(a, ip(want));
            used.insert(a);
        }
        assert!(matches!(
            c.allocate(&used),
            Err(IpamError::RangeExhausted { family: 4, .. })
        ));
        assert_eq!(c.reserve(ip("10.10.9.9"), &used), Ok(ip("10.10.9.9")));
        assert_eq!(
            c.reserve(ip("10.10.5.1"), &used),
            Err(IpamError::AddressInUse(ip("10.10.5.1")))
        );
        assert!(matches!(
            c.reserve(ip("10.11.0.1"), &used),
            Err(IpamError::AddressOutsideSubnet { .. })
        ));
        assert!(matches!(
            c.reserve(ip("10.10.0.1"), &used),
            Err(IpamError::AddressReserved { .. })
        ));
        let e = IpamConfig::parse("10.10.0.0/16", None, Some("10.11.0.0/24")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid ip-range 10.11.0.0/24: it is not inside subnet 10.10.0.0/16"
        );
    }

    #[test]
    fn ipv6_allocation() {
        let c = IpamConfig::parse("fd00:beef::/64", None, None).unwrap();
        assert!(c.is_ipv6());
        assert_eq!(c.gateway, ip("fd00:beef::1"));
        let mut used = HashSet::new();
        let a = c.allocate(&used).unwrap();
        assert_eq!(a, ip("fd00:beef::2"));
        used.insert(a);
        assert_eq!(c.allocate(&used), Ok(ip("fd00:beef::3")));
        // No broadcast in v6: the last address of a small range is usable.
        let small = IpamConfig::parse("fd00:beef::/126", None, None).unwrap();
        let mut used = HashSet::new();
        for want in ["fd00:beef::2", "fd00:beef::3"] {
            let a = small.allocate(&used).unwrap();
            assert_eq!(a, ip(want));
            used.insert(a);
        }
        assert!(matches!(
            small.allocate(&used),
            Err(IpamError::RangeExhausted { family: 6, .. })
        ));
    }

    #[test]
    fn pools_follow_docker_and_skip_overlaps() {
        let pools = default_pools();
        assert_eq!(pools[0].base, net("172.17.0.0/16"));
        assert_eq!(pools.len(), 16);
        let none: Vec<(&str, &IpNet)> = vec![];
        assert_eq!(
            choose_subnet(&pools, none.clone(), &[]),
            Ok(net("172.17.0.0/16"))
        );
        // The default route does not count; a host route on 172.17.5.0/24 does.
        let routes = [net("0.0.0.0/0"), net("172.17.5.0/24")];
        assert_eq!(
            choose_subnet(&pools, none, &routes),
            Ok(net("172.18.0.0/16"))
        );
        let a = net("172.18.0.0/16");
        let b = net("172.19.0.0/16");
        let nets = [("bridge", &a), ("web", &b)];
        assert_eq!(
            choose_subnet(&pools, nets.iter().copied(), &routes),
            Ok(net("172.20.0.0/16"))
        );
        // 172.16.0.0/12 taken by a host route: on to 192.168.0.0/20, then /20 steps.
        let routes = [net("172.16.0.0/12"), net("192.168.0.0/24")];
        let none: Vec<(&str, &IpNet)> = vec![];
        assert_eq!(
            choose_subnet(&pools, none, &routes),
            Ok(net("192.168.16.0/20"))
        );
        // Everything taken: pools exhausted.
        let routes = [net("172.16.0.0/12"), net("192.168.0.0/16")];
        let none: Vec<(&str, &IpNet)> = vec![];
        assert_eq!(
            choose_subnet(&pools, none, &routes),
            Err(IpamError::PoolsExhausted)
        );
    }

    #[test]
    fn overlap_names_the_network() {
        let web = net("10.5.0.0/16");
        let e = check_overlap(&net("10.5.3.0/24"), [("web", &web)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "subnet 10.5.3.0/24 overlaps with network web (10.5.0.0/16)"
        );
        assert!(check_overlap(&net("10.6.0.0/16"), [("web", &web)]).is_ok());
        let e = check_routes(&net("10.0.0.0/8"), &[net("10.5.0.0/24")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "subnet 10.0.0.0/8 overlaps with host route 10.5.0.0/24"
        );
        // v4 and v6 never overlap.
        assert!(!overlaps(&net("::/0"), &net("10.0.0.0/8")));
    }
}
