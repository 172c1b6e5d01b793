//! Berth's firewall: one nftables table, `inet berth`, applied with `nft -f -` (one atomic
//! transaction per change), plus the one thing a table of our own cannot do, opening a
//! host firewall's forward chain whose policy is DROP (see [`HostFirewall`]).
//!
//! # Why one `inet` table
//!
//! An `inet` table sees IPv4 and IPv6: a dual-stack network or container is added or removed
//! in one transaction, and every rule that only names interfaces (isolation, `--internal`) is
//! written once. NAT in `inet` tables needs Linux 5.2 (2019). Nothing in the table belongs to
//! anyone else, so it can be re-created at any time ([`Firewall::ensure_table`] is
//! idempotent and keeps the networks' and containers' parts).
//!
//! # Layout
//!
//! ```text
//! table inet berth {
//!   map fwd-in  { type ifname : verdict }   bridge -> jump net-BR-in   (forwarded INTO a network)
//!   map fwd-out { type ifname : verdict }   bridge -> jump net-BR-out  (forwarded OUT of a network)
//!   map nat-out { type ifname : verdict }   bridge -> jump net-BR-nat-out  (keyed by iifname)
//!   map nat-in  { type ifname : verdict }   bridge -> jump net-BR-nat-in   (keyed by oifname)
//!   chain forward     { type filter hook forward priority filter; oifname vmap @fwd-in; iifname vmap @fwd-out }
//!   chain postrouting { type nat hook postrouting priority srcnat; iifname vmap @nat-out; oifname vmap @nat-in }
//!   chain net-BR-in   { ct state established,related accept; ct status dnat accept;
//!                       iifname BR accept (icc=false: drop); drop }   (internal: iifname BR accept; drop)
//!   chain net-BR-out  { accept }                             (internal: drop)
//!   chain net-BR-nat-out { oifname != BR ip saddr SUBNET masquerade }   (leaving the network)
//!   chain net-BR-nat-in  { ip saddr 127.0.0.0/8 masquerade              (published ports via 127.0.0.1)
//!                          ct status dnat ip saddr SUBNET masquerade }  (hairpin)
//!   chain ctr-ID-dnat       { type nat hook prerouting priority -100;   fib daddr type local … dnat … }
//!   chain ctr-ID-dnat-local { type nat hook output priority -100 (dstnat); fib daddr type local … dnat … }
//! }
//! ```
//!
//! * A network is its four chains plus one element in each map: added in one transaction,
//!   removed in one (elements by key, chains by name), never touching another network.
//! * Isolation: a packet forwarded from bridge A to bridge B meets `net-B-in`, which accepts
//!   only replies, published ports (DNAT'd connections) and traffic from B itself: dropped.
//!   An `--internal` network's chains drop everything but traffic within its bridge.
//! * A container's published ports are two base chains of its own (prerouting for traffic
//!   from elsewhere, output for the host's own, including 127.0.0.1). NAT base chains at one
//!   hook are consulted in turn for a connection's first packet until one sets a mapping, so
//!   each container's chains only see new connections; adding and removing a container is
//!   creating and deleting its two chains, which cannot touch another container's rules and
//!   needs no rule handles. (The cost is one chain per container and hook on a connection's
//!   first packet; a verdict map keyed by port would be flatter but cannot hold two
//!   containers publishing one port on two host addresses, which docker allows.)
//! * 127.0.0.1: the output chain DNATs `127.0.0.1:HOSTPORT` to the container; the bridge
//!   needs `route_localnet=1` ([`crate::sysctl::enable_route_localnet`]) so that a packet
//!   from 127.0.0.1 may leave through it, and `net-BR-nat-in` masquerades it to the bridge's
//!   address so the container can answer. This is docker's `--userland-proxy=false` mode:
//!   no proxy process.
//!
//! # Base chains on the same hook, and a host firewall with policy DROP
//!
//! Every base chain registered on a hook sees the packet, in priority order. `accept` only
//! ends the packet's walk through *that* base chain (and the chains it jumped to); the next
//! base chain on the hook still sees it and may drop it. `drop` is final everywhere. So no
//! priority of Berth's forward chain can save a container's packets from another table's
//! forward chain with policy `drop`, such as the `FORWARD` chain of iptables' `filter` table
//! once dockerd has set it to DROP (docker's own nftables documentation says the same, and
//! netavark's nftables driver has the open issue containers/netavark#977 for it). Berth
//! therefore:
//!
//! * keeps its own policy in its own table (a drop there is final whatever others say), at
//!   the standard priorities (`filter`, `dstnat`, `srcnat`);
//! * and, when the host's iptables `FORWARD` policy is DROP, adds an accept for each of its
//!   bridges to that firewall ([`HostFirewall`]): into `DOCKER-USER` when dockerd made it
//!   (docker's documented place for exactly this, which dockerd keeps first in `FORWARD` and
//!   never flushes), else at the head of `FORWARD`, each rule commented `berth BRIDGE` and
//!   removed with its network. Those accepts only neutralise the foreign DROP policy for
//!   Berth's bridges: isolation and `--internal` are still enforced by Berth's own chains,
//!   because their drops are final.

use std::io::Write;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::IpNet;

use crate::ports::Protocol;
pub use crate::ports::PublishedPort;

/// The table's name (family `inet`).
pub const TABLE: &str = "berth";

/// A firewall change that failed, naming what it was about.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run {program}: {source} (is the nftables package installed?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nft failed ({what}): {stderr}")]
    Nft { what: String, stderr: String },
    #[error("{program} failed ({what}): {stderr}")]
    Iptables {
        program: String,
        what: String,
        stderr: String,
    },
    #[error("invalid {kind} {value:?} for a firewall rule: letters, digits, '_', '.' and '-' only")]
    BadName { kind: &'static str, value: String },
    #[error(
        "published port {port}/{protocol} bound to {host_ip}, but the container has no IPv{family} address"
    )]
    NoAddressForFamily {
        port: u16,
        protocol: Protocol,
        host_ip: IpAddr,
        family: u8,
    },
}

fn check_name(kind: &'static str, value: &str) -> Result<(), FirewallError> {
    if value.is_empty()
        || value.len() > 64
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
    {
        return Err(FirewallError::BadName {
            kind,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// The firewall part of a network (docker's bridge network options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    pub bridge: String,
    /// The network's subnets (v4 and/or v6): masqueraded when leaving.
    pub subnets: Vec<IpNet>,
    /// `--internal`: no traffic in or out of the bridge, only within it.
    pub internal: bool,
    /// Inter-container communication (`com.docker.network.bridge.enable_icc`, default true).
    /// When false, containers of the network cannot reach each other except through
    /// published ports. Bridged traffic only meets the `inet` forward hook with br_netfilter
    /// on (`crate::sysctl::enable_bridge_netfilter`), as with docker.
    pub icc: bool,
}

/// Runs `nft` scripts. Every method is one `nft -f -` run: one kernel transaction.
#[derive(Debug, Clone)]
pub struct Firewall {
    nft: PathBuf,
}

impl Default for Firewall {
    fn default() -> Self {
        Self::new()
    }
}

impl Firewall {
    /// Uses `nft` from `PATH`.
    pub fn new() -> Self {
        Firewall {
            nft: PathBuf::from("nft"),
        }
    }

    /// Uses the `nft` program at `path`.
    pub fn with_program(path: impl Into<PathBuf>) -> Self {
        Firewall { nft: path.into() }
    }

    /// Applies `script` atomically (`nft -f -`).
    pub fn apply(&self, what: &str, script: &str) -> Result<(), FirewallError> {
        self.apply_with(what, script, None)
    }

    /// Applies `script` inside the network namespace `netns` (a container's): `nft` enters
    /// it between fork and exec, the caller never does.
    pub fn apply_in(
        &self,
        netns: BorrowedFd<'_>,
        what: &str,
        script: &str,
    ) -> Result<(), FirewallError> {
        self.apply_with(what, script, Some(netns))
    }

    fn apply_with(
        &self,
        what: &str,
        script: &str,
        netns: Option<BorrowedFd<'_>>,
    ) -> Result<(), FirewallError> {
        run_with_stdin(&self.nft, &["-f", "-"], script, netns).map_err(|e| match e {
            RunError::Spawn(source) => FirewallError::Spawn {
                program: self.nft.display().to_string(),
                source,
            },
            RunError::Failed(stderr) => FirewallError::Nft {
                what: what.to_string(),
                stderr,
            },
        })?;
        Ok(())
    }

    /// `nft list table inet berth`, for tests and `berth network inspect --verbose` style
    /// output; empty when the table does not exist.
    pub fn list(&self) -> Result<String, FirewallError> {
        let out = Command::new(&self.nft)
            .args(["list", "table", "inet", TABLE])
            .output()
            .map_err(|source| FirewallError::Spawn {
                program: self.nft.display().to_string(),
                source,
            })?;
        if !out.status.success() {
            return Ok(String::new());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates the table, its maps and base chains, or brings an existing one back to this
    /// shape; the networks' and containers' chains and map elements are kept.
    pub fn ensure_table(&self) -> Result<(), FirewallError> {
        self.apply("creating table inet berth", &table_script())
    }

    /// Deletes the whole table (every network's and container's rules).
    pub fn delete_table(&self) -> Result<(), FirewallError> {
        // `add` first makes the `delete` succeed when there is no table.
        self.apply(
            "deleting table inet berth",
            &format!("add table inet {TABLE}\ndelete table inet {TABLE}\n"),
        )
    }

    /// Adds (or replaces) a network's rules: isolation, masquerade, `--internal`.
    pub fn add_network(&self, net: &NetworkRules) -> Result<(), FirewallError> {
        check_name("bridge name", &net.bridge)?;
        let mut s = table_script();
        s += &network_script(net);
        self.apply(&format!("adding network {}", net.bridge), &s)
    }

    /// Removes a network's rules; nothing to do when there are none.
    pub fn remove_network(&self, bridge: &str) -> Result<(), FirewallError> {
        check_name("bridge name", bridge)?;
        let mut s = table_script();
        s += &remove_network_script(bridge);
        self.apply(&format!("removing network {bridge}"), &s)
    }

    /// Adds (or replaces) a container's published ports, DNAT'd to `addresses` (its v4
    /// and/or v6 address on the network the ports are published through).
    pub fn add_container(
        &self,
        id: &str,
        addresses: &[IpAddr],
        ports: &[PublishedPort],
    ) -> Result<(), FirewallError> {
        check_name("container id", id)?;
        let mut s = table_script();
        s += &container_script(id, addresses, ports)?;
        self.apply(&format!("publishing the ports of container {id}"), &s)
    }

    /// Removes a container's published ports; nothing to do when there are none.
    pub fn remove_container(&self, id: &str) -> Result<(), FirewallError> {
        check_name("container id", id)?;
        let mut s = table_script();
        for chain in container_chains(id) {
            s += &format!("add chain inet {TABLE} {chain}\ndelete chain inet {TABLE} {chain}\n");
        }
        self.apply(&format!("removing the ports of container {id}"), &s)
    }
}

/// The table with its maps and base chains. Base chains are flushed and refilled, so running
/// it again repairs them; maps and the per-network/per-container chains are left alone.
pub fn table_script() -> String {
    let t = format!("inet {TABLE}");
    let mut s = format!("add table {t}\n");
    for map in ["fwd-in", "fwd-out", "nat-out", "nat-in"] {
        s += &format!("add map {t} {map} {{ type ifname : verdict; }}\n");
    }
    s += &format!(
        "add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}\n\
         flush chain {t} forward\n\
         add rule {t} forward oifname vmap @fwd-in\n\
         add rule {t} forward iifname vmap @fwd-out\n\
         add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         flush chain {t} postrouting\n\
         add rule {t} postrouting iifname vmap @nat-out\n\
         add rule {t} postrouting oifname vmap @nat-in\n"
    );
    s
}

fn network_chains(bridge: &str) -> [(String, &'static str, &'static str); 4] {
    [
        (format!("net-{bridge}-in"), "fwd-in", "oifname"),
        (format!("net-{bridge}-out"), "fwd-out", "iifname"),
        (format!("net-{bridge}-nat-out"), "nat-out", "iifname"),
        (format!("net-{bridge}-nat-in"), "nat-in", "oifname"),
    ]
}

fn family_match(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

/// A network's chains and map elements (replacing any earlier version).
pub fn network_script(net: &NetworkRules) -> String {
    let t = format!("inet {TABLE}");
    let br = &net.bridge;
    let [(cin, ..), (cout, ..), (cnat_out, ..), (cnat_in, ..)] = network_chains(br);
    let icc = if net.icc { "accept" } else { "drop" };
    let mut s = String::new();
    for (chain, ..) in network_chains(br) {
        s += &format!("add chain {t} {chain}\nflush chain {t} {chain}\n");
    }
    if net.internal {
        s += &format!(
            "add rule {t} {cin} iifname \"{br}\" {icc}\n\
             add rule {t} {cin} drop\n\
             add rule {t} {cout} oifname \"{br}\" accept\n\
             add rule {t} {cout} drop\n"
        );
    } else {
        s += &format!(
            "add rule {t} {cin} ct state established,related accept\n\
             add rule {t} {cin} ct status dnat accept\n\
             add rule {t} {cin} iifname \"{br}\" {icc}\n\
             add rule {t} {cin} drop\n\
             add rule {t} {cout} accept\n\
             add rule {t} {cnat_in} ip saddr 127.0.0.0/8 masquerade\n"
        );
        for subnet in &net.subnets {
            let f = family_match(subnet);
            // Hairpin: keyed by the output bridge, not the input one, because with
            // br_netfilter a DNAT'd packet that goes back out of its own bridge is bridged,
            // and bridged packets reach postrouting without an input interface.
            s += &format!(
                "add rule {t} {cnat_out} oifname != \"{br}\" {f} saddr {subnet} masquerade\n\
                 add rule {t} {cnat_in} ct status dnat {f} saddr {subnet} masquerade\n"
            );
        }
    }
    for (chain, map, _) in network_chains(br) {
        // `add element` of an existing element with the same verdict is not an error.
        s += &format!("add element {t} {map} {{ \"{br}\" : jump {chain} }}\n");
    }
    s
}

/// Removes a network: map elements first (they reference the chains), then the chains. Each
/// deletion is preceded by an `add` of the same object so that it cannot fail for a
/// network that is partly or wholly gone.
pub fn remove_network_script(bridge: &str) -> String {
    let t = format!("inet {TABLE}");
    let mut s = String::new();
    for (chain, map, _) in network_chains(bridge) {
        s += &format!(
            "add chain {t} {chain}\n\
             add element {t} {map} {{ \"{bridge}\" : jump {chain} }}\n\
             delete element {t} {map} {{ \"{bridge}\" }}\n"
        );
    }
    for (chain, ..) in network_chains(bridge) {
        s += &format!("flush chain {t} {chain}\ndelete chain {t} {chain}\n");
    }
    s
}

fn container_chains(id: &str) -> [String; 2] {
    [format!("ctr-{id}-dnat"), format!("ctr-{id}-dnat-local")]
}

/// A container's two DNAT base chains (replacing any earlier version).
pub fn container_script(
    id: &str,
    addresses: &[IpAddr],
    ports: &[PublishedPort],
) -> Result<String, FirewallError> {
    let t = format!("inet {TABLE}");
    let [pre, local] = container_chains(id);
    let mut rules = Vec::new();
    for p in ports {
        let proto = p.protocol.as_str();
        let hp = p.host_port;
        let cp = p.container_port;
        let mut matched = false;
        for addr in addresses {
            let (fam, nfproto, to) = match addr {
                IpAddr::V4(a) => ("ip", "ipv4", format!("{a}:{cp}")),
                IpAddr::V6(a) => ("ip6", "ipv6", format!("[{a}]:{cp}")),
            };
            let dst = match p.host_ip {
                Some(h) if h.is_ipv4() != addr.is_ipv4() => continue,
                Some(h) => format!("{fam} daddr {h}"),
                None => format!("meta nfproto {nfproto}"),
            };
            matched = true;
            rules.push(format!(
                "fib daddr type local {dst} meta l4proto {proto} th dport {hp} dnat {fam} to {to}"
            ));
        }
        if let (false, Some(h)) = (matched, p.host_ip) {
            return Err(FirewallError::NoAddressForFamily {
                port: hp,
                protocol: p.protocol,
                host_ip: h,
                family: if h.is_ipv4() { 4 } else { 6 },
            });
        }
    }
    let mut s = String::new();
    // `dstnat` is -100; nft 1.0 only accepts the keyword at prerouting, so the number.
    for (chain, hook) in [(&pre, "prerouting"), (&local, "output")] {
        s += &format!(
            "add chain {t} {chain} {{ type nat hook {hook} priority -100; policy accept; }}\n\
             flush chain {t} {chain}\n"
        );
        for r in &rules {
            s += &format!("add rule {t} {chain} {r} comment \"container {id}\"\n");
        }
    }
    Ok(s)
}

enum RunError {
    Spawn(std::io::Error),
    Failed(String),
}

fn run_with_stdin(
    program: &Path,
    args: &[&str],
    stdin: &str,
    netns: Option<BorrowedFd<'_>>,
) -> Result<String, RunError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ns) = netns {
        let fd = ns.as_raw_fd();
        // SAFETY: runs in the forked child before exec, where only async-signal-safe calls
        // are allowed: setns(2) is a plain system call. `fd` stays open in the parent (the
        // caller's borrow) until spawn returns, so the child's copy is valid.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes()).map_err(RunError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(RunError::Spawn)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(RunError::Failed(if err.is_empty() {
            format!("exit status {}", out.status)
        } else {
            err
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The host's iptables `filter` table (iptables-nft or legacy, whichever `iptables` is), as
/// dockerd and host firewalls leave it. See the module documentation for why Berth has to add
/// accepts there when its `FORWARD` policy is DROP.
#[derive(Debug, Clone)]
pub struct HostFirewall {
    iptables: PathBuf,
    ip6tables: PathBuf,
}

impl Default for HostFirewall {
    fn default() -> Self {
        Self::new()
    }
}

impl HostFirewall {
    pub fn new() -> Self {
        HostFirewall {
            iptables: PathBuf::from("iptables"),
            ip6tables: PathBuf::from("ip6tables"),
        }
    }

    fn programs(&self) -> [&Path; 2] {
        [&self.iptables, &self.ip6tables]
    }

    fn run(&self, program: &Path, args: &[&str]) -> Result<Result<String, String>, FirewallError> {
        match run_with_stdin(program, args, "", None) {
            Ok(out) => Ok(Ok(out)),
            Err(RunError::Failed(e)) => Ok(Err(e)),
            Err(RunError::Spawn(source)) => Err(FirewallError::Spawn {
                program: program.display().to_string(),
                source,
            }),
        }
    }

    /// The chain to put accepts in: `DOCKER-USER` when it exists, else `FORWARD` when its
    /// policy is DROP; `None` when the policy is ACCEPT and there is no `DOCKER-USER` (nothing
    /// to open), or when the program is not installed.
    fn target_chain(&self, program: &Path) -> Result<Option<&'static str>, FirewallError> {
        let listing = match self.run(program, &["-w", "-S", "FORWARD"]) {
            Ok(Ok(out)) => out,
            // No iptables at all, or no filter table in this kernel: nothing to open.
            Ok(Err(_)) | Err(FirewallError::Spawn { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let drop = listing.lines().any(|l| l.trim() == "-P FORWARD DROP");
        let docker_user = matches!(self.run(program, &["-w", "-S", "DOCKER-USER"]), Ok(Ok(_)));
        Ok(match (docker_user, drop) {
            (true, _) => Some("DOCKER-USER"),
            (false, true) => Some("FORWARD"),
            (false, false) => None,
        })
    }

    fn rule_specs(bridge: &str) -> [Vec<String>; 2] {
        let comment = format!("berth {bridge}");
        [
            vec!["-i".into(), bridge.into()],
            vec!["-o".into(), bridge.into()],
        ]
        .map(|mut v| {
            v.extend(["-m", "comment", "--comment", &comment, "-j", "ACCEPT"].map(String::from));
            v
        })
    }

    /// Accepts traffic into and out of `bridge` in the host's iptables forward path when a
    /// DROP policy (or dockerd's `DOCKER-USER`) is there; idempotent. Returns whether rules
    /// were (or already were) there.
    pub fn open_bridge(&self, bridge: &str) -> Result<bool, FirewallError> {
        check_name("bridge name", bridge)?;
        let mut opened = false;
        for program in self.programs() {
            let Some(chain) = self.target_chain(program)? else {
                continue;
            };
            for spec in Self::rule_specs(bridge) {
                let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
                let mut check = vec!["-w", "-C", chain];
                check.extend(&spec);
                if self.run(program, &check)?.is_ok() {
                    continue;
                }
                let mut insert = vec!["-w", "-I", chain, "1"];
                insert.extend(&spec);
                self.run(program, &insert)?
                    .map_err(|stderr| FirewallError::Iptables {
                        program: program.display().to_string(),
                        what: format!("accepting bridge {bridge} in {chain}"),
                        stderr,
                    })?;
            }
            opened = true;
        }
        Ok(opened)
    }

    /// Removes what [`HostFirewall::open_bridge`] added for `bridge`, from `DOCKER-USER` and
    /// `FORWARD` both (dockerd may have come or gone since).
    pub fn close_bridge(&self, bridge: &str) -> Result<(), FirewallError> {
        check_name("bridge name", bridge)?;
        for program in self.programs() {
            for chain in ["DOCKER-USER", "FORWARD"] {
                for spec in Self::rule_specs(bridge) {
                    let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
                    let mut delete = vec!["-w", "-D", chain];
                    delete.extend(&spec);
                    // Deleted until none is left (a missing program or chain ends it too).
                    for _ in 0..16 {
                        match run_with_stdin(program, &delete, "", None) {
                            Ok(_) => continue,
                            Err(_) => break,
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("bridge name", "berth0").is_ok());
        let e = check_name("bridge name", "br\"; flush ruleset").unwrap_err();
        assert!(e.to_string().contains("invalid bridge name"));
        assert!(
            Firewall::new()
                .add_network(&NetworkRules {
                    bridge: "a b".into(),
                    subnets: vec![],
                    internal: false,
                    icc: true,
                })
                .is_err()
        );
    }

    #[test]
    fn container_rules_per_family() {
        let addrs: Vec<IpAddr> = vec!["172.17.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let p = PublishedPort {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let s = container_script("abc", &addrs, &[p]).unwrap();
        assert!(
            s.contains("meta nfproto ipv4 meta l4proto tcp th dport 8080 dnat ip to 172.17.0.2:80")
        );
        assert!(
            s.contains("meta nfproto ipv6 meta l4proto tcp th dport 8080 dnat ip6 to [fd00::2]:80")
        );
        assert!(s.contains("type nat hook output priority -100"));
        let p6 = PublishedPort {
            host_ip: Some("::1".parse().unwrap()),
            ..p
        };
        let only_v4: Vec<IpAddr> = vec!["172.17.0.2".parse().unwrap()];
        let e = container_script("abc", &only_v4, &[p6]).unwrap_err();
        assert!(e.to_string().contains("no IPv6 address"), "{e}");
    }
}
