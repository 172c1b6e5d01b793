//! Links, addresses and routes through rtnetlink (no `ip` command).
//!
//! [`Netlink`] is a synchronous handle over one rtnetlink socket and a private single-threaded
//! tokio runtime, so the engine (synchronous, like the runtime library) can call it from any
//! thread. The socket belongs to the network namespace it was created in, and every request on
//! it acts there, whichever thread sends it:
//!
//! * [`Netlink::open`] opens one in the calling thread's namespace (the host's);
//! * [`Netlink::open_in`] opens one in another namespace, given as a descriptor
//!   (`/proc/PID/ns/net` of a container's init, or a bind-mounted netns file): a short-lived
//!   helper thread enters the namespace with `setns(2)`, creates the socket and exits. The
//!   calling thread never changes namespace, so nothing has to be restored and no other code
//!   on it (or on a pooled thread) can run in the wrong namespace by accident.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteType};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// A failed netlink operation, naming the link or value it was about.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening a netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("entering the container's network namespace: {0}")]
    Setns(#[source] io::Error),
    #[error("invalid interface name {0:?}: 1 to 15 characters, no '/', ':' or whitespace")]
    BadName(String),
    #[error("no network interface named {0}")]
    NoSuchLink(String),
    #[error("{op} {name}: {source}")]
    Request {
        op: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
}

fn io_of(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

fn request(
    op: &'static str,
    name: impl Into<String>,
) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let name = name.into();
    move |e| NetlinkError::Request {
        op,
        name,
        source: io_of(e),
    }
}

/// Checks a Linux interface name (`IFNAMSIZ` is 16 with the NUL).
pub fn check_ifname(name: &str) -> Result<(), NetlinkError> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(NetlinkError::BadName(name.to_string()));
    }
    Ok(())
}

/// Docker's MAC address for a container address: `02:42` followed by the IPv4 address.
pub fn mac_from_ipv4(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Parses `aa:bb:cc:dd:ee:ff` (`--mac-address`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Whether a link named `name` exists in the caller's network namespace (`if_nametoindex`,
/// one ioctl; `/sys/class/net` would show the namespace sysfs was mounted in instead).
pub fn link_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated string that outlives the call, which only reads it.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// Enters the network namespace `fd` on the calling thread.
pub(crate) fn setns_net(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns only reads the descriptor, which `fd` keeps open for the call; it changes
    // the namespace of the calling thread alone (a helper thread that exits right after).
    let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An rtnetlink socket in one network namespace.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

impl Netlink {
    fn runtime() -> Result<tokio::runtime::Runtime, NetlinkError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(NetlinkError::Socket)
    }

    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        let rt = Self::runtime()?;
        let (conn, handle, _) = {
            let _guard = rt.enter();
            rtnetlink::new_connection().map_err(NetlinkError::Socket)?
        };
        rt.spawn(conn);
        Ok(Netlink { rt, handle })
    }

    /// A socket in the network namespace `netns` (a descriptor of `/proc/PID/ns/net` or of a
    /// bind-mounted namespace file), created on a helper thread that entered it.
    pub fn open_in(netns: BorrowedFd<'_>) -> Result<Self, NetlinkError> {
        let rt = Self::runtime()?;
        let rt_handle = rt.handle().clone();
        let fd: OwnedFd = netns.try_clone_to_owned().map_err(NetlinkError::Setns)?;
        let opened = std::thread::spawn(move || {
            setns_net(fd.as_fd()).map_err(NetlinkError::Setns)?;
            let _guard = rt_handle.enter();
            let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
            Ok::<_, NetlinkError>((conn, handle))
        })
        .join()
        .map_err(|_| NetlinkError::Socket(io::Error::other("netlink helper thread panicked")))?;
        let (conn, handle) = opened?;
        rt.spawn(conn);
        Ok(Netlink { rt, handle })
    }

    /// The index of the link `name`, `None` when there is none.
    pub fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        check_ifname(name)?;
        let h = self.handle.clone();
        let res = self.rt.block_on(async {
            h.link()
                .get()
                .match_name(name.to_string())
                .execute()
                .try_next()
                .await
        });
        match res {
            Ok(Some(m)) => Ok(Some(m.header.index)),
            Ok(None) => Ok(None),
            Err(e) => {
                let e = io_of(e);
                if e.raw_os_error() == Some(libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(NetlinkError::Request {
                        op: "looking up link",
                        name: name.to_string(),
                        source: e,
                    })
                }
            }
        }
    }

    fn index(&self, name: &str) -> Result<u32, NetlinkError> {
        self.link_index(name)?
            .ok_or_else(|| NetlinkError::NoSuchLink(name.to_string()))
    }

    fn set(&self, op: &'static str, name: &str, msg: LinkMessage) -> Result<(), NetlinkError> {
        let h = self.handle.clone();
        self.rt
            .block_on(async { h.link().set(msg).execute().await })
            .map_err(request(op, name))
    }

    /// Creates the bridge `name` (or keeps the one there), sets its MTU and brings it up.
    /// Returns its index.
    pub fn create_bridge(&self, name: &str, mtu: Option<u32>) -> Result<u32, NetlinkError> {
        check_ifname(name)?;
        if self.link_index(name)?.is_none() {
            let h = self.handle.clone();
            let res = self
                .rt
                .block_on(async { h.link().add(LinkBridge::new(name).build()).execute().await });
            if let Err(e) = res {
                let e = io_of(e);
                // Created by someone else meanwhile: fine, it is set up below.
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(NetlinkError::Request {
                        op: "creating bridge",
                        name: name.to_string(),
                        source: e,
                    });
                }
            }
        }
        let index = self.index(name)?;
        let mut b = LinkUnspec::new_with_index(index).up();
        if let Some(mtu) = mtu {
            b = b.mtu(mtu);
        }
        self.set("setting up bridge", name, b.build())?;
        Ok(index)
    }

    /// Deletes the link `name`; `false` when there was none. Deleting one end of a veth pair
    /// deletes both.
    pub fn delete_link(&self, name: &str) -> Result<bool, NetlinkError> {
        let Some(index) = self.link_index(name)? else {
            return Ok(false);
        };
        let h = self.handle.clone();
        match self
            .rt
            .block_on(async { h.link().del(index).execute().await })
        {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = io_of(e);
                if e.raw_os_error() == Some(libc::ENODEV) {
                    Ok(false)
                } else {
                    Err(NetlinkError::Request {
                        op: "deleting link",
                        name: name.to_string(),
                        source: e,
                    })
                }
            }
        }
    }

    /// Creates a veth pair `name` ↔ `peer` (both down) with an optional MTU.
    pub fn create_veth(
        &self,
        name: &str,
        peer: &str,
        mtu: Option<u32>,
    ) -> Result<(), NetlinkError> {
        check_ifname(name)?;
        check_ifname(peer)?;
        let mut b = LinkVeth::new(name, peer);
        if let Some(mtu) = mtu {
            b = b.mtu(mtu);
        }
        let h = self.handle.clone();
        let msg = b.build();
        self.rt
            .block_on(async { h.link().add(msg).execute().await })
            .map_err(request("creating veth pair", format!("{name}/{peer}")))?;
        if let Some(mtu) = mtu {
            // The peer gets the kernel's default MTU: set it too.
            let i = self.index(peer)?;
            self.set(
                "setting MTU of",
                peer,
                LinkUnspec::new_with_index(i).mtu(mtu).build(),
            )?;
        }
        Ok(())
    }

    /// Creates a veth pair whose host end `name` stays here and whose other end is born in
    /// the network namespace `netns` as `peer` (with `mac` and the MTU). Creating the peer
    /// there saves moving it, which costs the kernel an RCU grace period (~20 ms a
    /// container).
    pub fn create_veth_in(
        &self,
        name: &str,
        peer: &str,
        netns: BorrowedFd<'_>,
        mac: Option<[u8; 6]>,
        mtu: Option<u32>,
    ) -> Result<(), NetlinkError> {
        use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkInfo};
        check_ifname(name)?;
        check_ifname(peer)?;
        let mut p = rtnetlink::LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .setns_by_fd(netns.as_raw_fd());
        if let Some(mtu) = mtu {
            p = p.mtu(mtu);
        }
        if let Some(mac) = mac {
            p = p.address(mac.to_vec());
        }
        let peer_msg = p.build();
        let mut b = LinkVeth::new(name, peer);
        if let Some(mtu) = mtu {
            b = b.mtu(mtu);
        }
        let mut msg = b.build();
        for attr in msg.attributes.iter_mut() {
            if let LinkAttribute::LinkInfo(infos) = attr {
                for info in infos.iter_mut() {
                    if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(m))) = info {
                        *m = peer_msg.clone();
                    }
                }
            }
        }
        let h = self.handle.clone();
        self.rt
            .block_on(async { h.link().add(msg).execute().await })
            .map_err(request("creating veth pair", format!("{name}/{peer}")))
    }

    /// Makes `name` a port of `bridge` in hairpin mode and brings it up.
    ///
    /// Hairpin mode (docker sets it too when it runs without userland proxy) lets a frame
    /// leave through the port it came in by: a container that connects to its own published
    /// port through the host's address is DNAT'd back to itself, and with br_netfilter that
    /// packet is bridged back out of its own port.
    pub fn attach_to_bridge(&self, name: &str, bridge: &str) -> Result<(), NetlinkError> {
        use rtnetlink::packet_route::link::{InfoBridgePort, InfoPortData, InfoPortKind};
        let br = self.index(bridge)?;
        let i = self.index(name)?;
        self.set(
            "attaching to bridge",
            name,
            LinkUnspec::new_with_index(i).controller(br).build(),
        )?;
        let msg = LinkUnspec::new_with_index(i)
            .set_port_kind(InfoPortKind::Bridge)
            .set_port_data(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                true,
            )]))
            .build();
        let h = self.handle.clone();
        self.rt
            .block_on(async { h.link().set_port(msg).execute().await })
            .map_err(request("setting hairpin mode on", name))?;
        self.set_up(name)
    }

    /// Moves `name` into the network namespace `netns`.
    pub fn move_to_netns(&self, name: &str, netns: BorrowedFd<'_>) -> Result<(), NetlinkError> {
        let i = self.index(name)?;
        self.set(
            "moving to the container's namespace",
            name,
            LinkUnspec::new_with_index(i)
                .setns_by_fd(netns.as_raw_fd())
                .build(),
        )
    }

    /// Renames `name` (it must be down) to `new_name`.
    pub fn rename(&self, name: &str, new_name: &str) -> Result<(), NetlinkError> {
        check_ifname(new_name)?;
        let i = self.index(name)?;
        self.set(
            "renaming",
            name,
            LinkUnspec::new_with_index(i)
                .name(new_name.to_string())
                .build(),
        )
    }

    /// Sets the MAC address of `name`.
    pub fn set_mac(&self, name: &str, mac: [u8; 6]) -> Result<(), NetlinkError> {
        let i = self.index(name)?;
        self.set(
            "setting the MAC address of",
            name,
            LinkUnspec::new_with_index(i).address(mac.to_vec()).build(),
        )
    }

    /// Brings `name` up.
    pub fn set_up(&self, name: &str) -> Result<(), NetlinkError> {
        let i = self.index(name)?;
        self.set(
            "bringing up",
            name,
            LinkUnspec::new_with_index(i).up().build(),
        )
    }

    /// Adds `address` (with its prefix length) to `name`; an address already there is kept.
    /// IPv6 addresses skip duplicate address detection (`IFA_F_NODAD`, as libnetwork does):
    /// IPAM made them unique, and DAD would leave them "tentative", unusable, for a second or
    /// two after the container starts.
    pub fn add_address(&self, name: &str, address: IpNet) -> Result<(), NetlinkError> {
        use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
        let i = self.index(name)?;
        let h = self.handle.clone();
        let res = self.rt.block_on(async {
            let mut req = h
                .address()
                .add(i, address.addr(), address.prefix_len())
                .replace();
            if address.addr().is_ipv6() {
                req.message_mut()
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            req.execute().await
        });
        res.map_err(request("adding address", format!("{address} to {name}")))
    }

    /// The addresses of `name`.
    pub fn addresses(&self, name: &str) -> Result<Vec<IpNet>, NetlinkError> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let i = self.index(name)?;
        let h = self.handle.clone();
        let msgs: Vec<_> = self
            .rt
            .block_on(async {
                h.address()
                    .get()
                    .set_link_index_filter(i)
                    .execute()
                    .try_collect()
                    .await
            })
            .map_err(request("listing addresses of", name))?;
        let mut out = Vec::new();
        for m in msgs {
            for a in &m.attributes {
                if let AddressAttribute::Address(ip) = a
                    && let Ok(n) = IpNet::new(*ip, m.header.prefix_len)
                {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }

    /// The MAC address of `name`.
    pub fn mac(&self, name: &str) -> Result<Option<[u8; 6]>, NetlinkError> {
        check_ifname(name)?;
        let h = self.handle.clone();
        let m = self
            .rt
            .block_on(async {
                h.link()
                    .get()
                    .match_name(name.to_string())
                    .execute()
                    .try_next()
                    .await
            })
            .map_err(request("looking up link", name))?;
        Ok(m.and_then(|m| {
            m.attributes.iter().find_map(|a| match a {
                LinkAttribute::Address(v) if v.len() == 6 => {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(v);
                    Some(mac)
                }
                _ => None,
            })
        }))
    }

    /// Adds the default route via `gateway` (v4 or v6), replacing one already there.
    pub fn add_default_route(&self, gateway: IpAddr) -> Result<(), NetlinkError> {
        let msg = match gateway {
            IpAddr::V4(g) => RouteMessageBuilder::<Ipv4Addr>::new().gateway(g).build(),
            IpAddr::V6(g) => RouteMessageBuilder::<Ipv6Addr>::new().gateway(g).build(),
        };
        let h = self.handle.clone();
        self.rt
            .block_on(async { h.route().add(msg).replace().execute().await })
            .map_err(request("adding the default route via", gateway.to_string()))
    }

    /// The destinations of the main routing table's unicast routes, v4 and v6 (default routes
    /// included as `0.0.0.0/0` / `::/0`): what a new network's subnet must not overlap.
    pub fn host_routes(&self) -> Result<Vec<IpNet>, NetlinkError> {
        let mut out = Vec::new();
        for v6 in [false, true] {
            let msg = if v6 {
                RouteMessageBuilder::<Ipv6Addr>::new().build()
            } else {
                RouteMessageBuilder::<Ipv4Addr>::new().build()
            };
            let h = self.handle.clone();
            let routes: Vec<_> = self
                .rt
                .block_on(async { h.route().get(msg).execute().try_collect().await })
                .map_err(request("listing routes", if v6 { "IPv6" } else { "IPv4" }))?;
            for r in routes {
                let table = r
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        RouteAttribute::Table(t) => Some(*t),
                        _ => None,
                    })
                    .unwrap_or(r.header.table as u32);
                if table != RouteHeader::RT_TABLE_MAIN as u32 || r.header.kind != RouteType::Unicast
                {
                    continue;
                }
                let dst = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                    _ => None,
                });
                let dst = dst.unwrap_or(if v6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                });
                if let Ok(n) = IpNet::new(dst, r.header.destination_prefix_length) {
                    out.push(n.trunc());
                }
            }
        }
        Ok(out)
    }
}

/// What a container's interface on a network gets (docker's endpoint settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The bridge of the network.
    pub bridge: String,
    /// The host end of the veth pair (docker: `veth` + 7 hex digits).
    pub host_ifname: String,
    /// The name inside the container: `eth0` for the first network, `eth1`… after.
    pub container_ifname: String,
    /// Addresses with the subnet's prefix length (v4 and/or v6).
    pub addresses: Vec<IpNet>,
    /// Default-route gateways (one per family). None for an `--internal` network, whose
    /// containers get no default route, as in docker.
    pub gateways: Vec<IpAddr>,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
}

/// Connects a container's network namespace to a bridge: creates the veth pair with its host
/// end in the host namespace (`host`) and its other end, named and with its MAC, directly in
/// `netns`; attaches the host end to the bridge, sets the addresses, brings the container end
/// and `lo` up and adds the default routes.
/// On error the veth pair is deleted again (nothing half-made is left).
pub fn connect_endpoint(
    host: &Netlink,
    netns: BorrowedFd<'_>,
    ep: &Endpoint,
) -> Result<(), NetlinkError> {
    check_ifname(&ep.host_ifname)?;
    check_ifname(&ep.container_ifname)?;
    // The container end is created in its namespace under its final name (no move, no
    // rename).
    host.create_veth_in(&ep.host_ifname, &ep.container_ifname, netns, ep.mac, ep.mtu)?;
    let result = (|| {
        host.attach_to_bridge(&ep.host_ifname, &ep.bridge)?;
        let ctr = Netlink::open_in(netns)?;
        for a in &ep.addresses {
            ctr.add_address(&ep.container_ifname, *a)?;
        }
        ctr.set_up("lo")?;
        ctr.set_up(&ep.container_ifname)?;
        for g in &ep.gateways {
            ctr.add_default_route(*g)?;
        }
        Ok(())
    })();
    if result.is_err() {
        // Deleting the host end takes the pair with it, wherever the other end is.
        let _ = host.delete_link(&ep.host_ifname);
    }
    result
}

/// Removes a container's endpoint: deletes the host end of its veth pair (the kernel deletes
/// the container end). `false` when it was already gone.
pub fn disconnect_endpoint(host: &Netlink, host_ifname: &str) -> Result<bool, NetlinkError> {
    host.delete_link(host_ifname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_macs() {
        assert!(check_ifname("berth0").is_ok());
        assert!(check_ifname("veth1234567890ab").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("").is_err());
        assert_eq!(
            mac_from_ipv4(Ipv4Addr::new(172, 17, 0, 2)),
            [0x02, 0x42, 0xac, 0x11, 0, 2]
        );
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some([2, 0x42, 0xac, 0x11, 0, 2])
        );
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("02:42:ac:11:00:02:03"), None);
        assert_eq!(parse_mac("zz:42:ac:11:00:02"), None);
    }
}
