//! Berth's bridge networking (docker's `bridge` driver without a daemon).
//!
//! * [`netlink`]: bridges, veth pairs, addresses, MACs, routes, through rtnetlink; operations
//!   inside a container's network namespace use a netlink socket opened in that namespace.
//! * [`ipam`]: subnets, gateways, `--ip-range`, the next free address, docker's default pools.
//! * [`ports`]: the `-p` parser.
//! * [`firewall`]: Berth's nftables table (masquerade, isolation, `--internal`, published
//!   ports), applied atomically with `nft -f -`.
//! * [`dns`]: the embedded resolver (`127.0.0.11`) a container's monitor serves on user networks.
//! * [`sysctl`]: the few `/proc/sys/net` switches bridge networking needs.
//! * [`network`]: the engine's calls, each doing a whole job and undoing it on failure:
//!   [`create_network`], [`remove_network`], [`connect_container`], [`disconnect_container`].
//!
//! The engine owns persistence (leases, network records); this crate only acts and decides.

pub mod dns;
pub mod firewall;
pub mod ipam;
pub mod netlink;
pub mod network;
pub mod ports;
pub mod slirp;
pub mod sysctl;

pub use network::{
    BridgeNetwork, Error, connect_container, create_network, disconnect_container, remove_network,
};
