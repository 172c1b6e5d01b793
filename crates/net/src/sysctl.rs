//! The `/proc/sys/net` switches bridge networking needs. They are per network namespace: the
//! values read and written are those of the calling thread's namespace.

use std::io;
use std::path::PathBuf;

use crate::netlink::{NetlinkError, check_ifname};

/// A sysctl that could not be read or written, naming its path.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Name(#[from] NetlinkError),
}

fn write(path: PathBuf, value: &str) -> Result<(), SysctlError> {
    // Skip the write when the value is already there (writing needs CAP_NET_ADMIN).
    if let Ok(cur) = std::fs::read_to_string(&path)
        && cur.trim() == value
    {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|source| SysctlError::Io { path, source })
}

/// Turns on IPv4 forwarding (`net.ipv4.ip_forward=1`), and IPv6 forwarding when `ipv6`.
pub fn enable_forwarding(ipv6: bool) -> Result<(), SysctlError> {
    write(PathBuf::from("/proc/sys/net/ipv4/ip_forward"), "1")?;
    if ipv6 {
        write(PathBuf::from("/proc/sys/net/ipv6/conf/all/forwarding"), "1")?;
    }
    Ok(())
}

/// `net.ipv4.conf.<bridge>.route_localnet=1`: lets packets from 127.0.0.0/8 be routed out of
/// the bridge, which a published port reached on the host's 127.0.0.1 needs once its
/// destination was rewritten to the container (docker's `--userland-proxy=false`); the
/// firewall masquerades them on the way out.
pub fn enable_route_localnet(bridge: &str) -> Result<(), SysctlError> {
    check_ifname(bridge)?;
    write(
        PathBuf::from(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet")),
        "1",
    )
}

/// `net.bridge.bridge-nf-call-iptables=1` (and `-ip6tables` when `ipv6`): bridged traffic
/// between containers of one network goes through the IP hooks, which `icc=false` needs (as
/// docker does). It needs the br_netfilter module and holds for every bridge of the namespace.
pub fn enable_bridge_netfilter(ipv6: bool) -> Result<(), SysctlError> {
    write(
        PathBuf::from("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "1",
    )?;
    if ipv6 {
        write(
            PathBuf::from("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
            "1",
        )?;
    }
    Ok(())
}
