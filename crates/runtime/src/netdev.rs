//! `linux.netDevices` (runtime spec 1.2, runc 1.3): host network interfaces
//! moved into the container's network namespace, renamed when asked, with
//! their addresses kept. The kernel drops an interface's addresses when it
//! changes namespace, so the runtime reads them first, moves the interface
//! (one RTM_NEWLINK with IFLA_NET_NS_FD and IFLA_IFNAME), and init, inside
//! the namespace, adds them back and brings the interface up. Plain
//! NETLINK_ROUTE messages on a socket of the calling process's namespace: the
//! runtime stays single-threaded and never enters the container's namespace.
//! When the namespace goes away, the kernel returns physical interfaces to
//! the host's and destroys virtual ones, as with runc.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use oci_spec::runtime::LinuxNetDevice;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RT_SCOPE_LINK: u8 = 253;

/// An address of an interface, as init re-adds it in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub family: u8,
    pub prefix_len: u8,
    pub scope: u8,
    pub local: Vec<u8>,
    pub address: Vec<u8>,
}

/// One interface to bring up in the container: its name there and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub name: String,
    pub addresses: Vec<Address>,
}

fn err(what: impl std::fmt::Display) -> Error {
    Error::Container(format!("linux.netDevices: {what}"))
}

struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    fn open() -> io::Result<Netlink> {
        // SAFETY: socket(2) with constant arguments; returns a new fd.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: we own the new descriptor.
        Ok(Netlink {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            seq: 0,
        })
    }

    /// Sends one message (header filled in here) and returns the replies up
    /// to the ack or NLMSG_DONE; a negative error in the ack is an error.
    fn request(&mut self, ty: u16, flags: u16, body: &[u8]) -> io::Result<Vec<(u16, Vec<u8>)>> {
        self.seq += 1;
        let len = 16 + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: a valid socket and a buffer of `msg.len()` bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: a valid socket and a buffer we own.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut b = &buf[..n as usize];
            while b.len() >= 16 {
                let mlen = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let mty = u16::from_ne_bytes([b[4], b[5]]);
                if mlen < 16 || mlen > b.len() {
                    return Err(io::Error::other("a malformed netlink reply"));
                }
                let payload = &b[16..mlen];
                match mty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .map(|p| i32::from_ne_bytes([p[0], p[1], p[2], p[3]]))
                            .unwrap_or(-libc::EIO);
                        if code < 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        return Ok(out);
                    }
                    _ => out.push((mty, payload.to_vec())),
                }
                b = b.get((mlen + 3) & !3..).unwrap_or(&[]);
            }
        }
    }
}

fn attr(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = 4 + data.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn attrs(mut b: &[u8]) -> HashMap<u16, Vec<u8>> {
    let mut m = HashMap::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        m.insert(ty, b[4..len].to_vec());
        b = b.get((len + 3) & !3..).unwrap_or(&[]);
    }
    m
}

/// ifinfomsg: family, pad, type, index, flags, change.
fn ifinfo(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut v = vec![0u8, 0];
    v.extend_from_slice(&0u16.to_ne_bytes());
    v.extend_from_slice(&index.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&change.to_ne_bytes());
    v
}

fn index_of(name: &str) -> Result<i32> {
    let c = std::ffi::CString::new(name).map_err(|_| err(format!("{name:?}: a NUL byte")))?;
    // SAFETY: if_nametoindex reads a C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(err(format!("no network interface {name:?}")));
    }
    Ok(i as i32)
}

/// The addresses of interface `index` (link-local IPv6 ones left out: the
/// kernel makes them again).
fn addresses(nl: &mut Netlink, index: i32) -> io::Result<Vec<Address>> {
    // ifaddrmsg: family AF_UNSPEC, the rest zero.
    let replies = nl.request(RTM_GETADDR, NLM_F_DUMP, &[0u8; 8])?;
    let mut out = Vec::new();
    for (ty, p) in replies {
        if ty != RTM_NEWADDR || p.len() < 8 {
            continue;
        }
        let (family, prefix_len, scope) = (p[0], p[1], p[3]);
        let idx = i32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
        if idx != index || (family == libc::AF_INET6 as u8 && scope == RT_SCOPE_LINK) {
            continue;
        }
        let a = attrs(&p[8..]);
        let address = a.get(&IFA_ADDRESS).cloned().unwrap_or_default();
        let local = a
            .get(&IFA_LOCAL)
            .cloned()
            .unwrap_or_else(|| address.clone());
        if address.is_empty() {
            continue;
        }
        out.push(Address {
            family,
            prefix_len,
            scope,
            local,
            address,
        });
    }
    Ok(out)
}

/// The runtime's half: moves every device of `devices` into `netns` (the
/// container's network namespace), renamed as asked, and returns what init
/// must configure inside.
pub fn move_into(
    devices: &HashMap<String, LinuxNetDevice>,
    netns: BorrowedFd<'_>,
) -> Result<Vec<Moved>> {
    let mut nl = Netlink::open().map_err(|e| err(format!("netlink: {e}")))?;
    let mut names: Vec<&String> = devices.keys().collect();
    names.sort();
    let mut moved = Vec::new();
    for host_name in names {
        let name = devices[host_name]
            .name()
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| host_name.clone());
        if name.len() >= libc::IFNAMSIZ || name.contains('/') || name.contains(' ') {
            return Err(err(format!("{name:?} is not a valid interface name")));
        }
        let index = index_of(host_name)?;
        let addrs = addresses(&mut nl, index)
            .map_err(|e| err(format!("reading the addresses of {host_name}: {e}")))?;
        let mut body = ifinfo(index, 0, 0);
        attr(
            &mut body,
            IFLA_NET_NS_FD,
            &(netns.as_raw_fd() as u32).to_ne_bytes(),
        );
        let mut n = name.clone().into_bytes();
        n.push(0);
        attr(&mut body, IFLA_IFNAME, &n);
        nl.request(RTM_NEWLINK, NLM_F_ACK, &body).map_err(|e| {
            err(format!(
                "moving {host_name} into the container as {name}: {e}"
            ))
        })?;
        moved.push(Moved {
            name,
            addresses: addrs,
        });
    }
    Ok(moved)
}

/// Init's half, inside the container's network namespace: the addresses back
/// on each moved interface, and the interface up.
pub fn configure(moved: &[Moved]) -> Result<()> {
    let mut nl = Netlink::open().map_err(|e| err(format!("netlink: {e}")))?;
    for m in moved {
        let index = index_of(&m.name)?;
        for a in &m.addresses {
            let mut body = vec![a.family, a.prefix_len, 0, a.scope];
            body.extend_from_slice(&index.to_ne_bytes());
            attr(&mut body, IFA_LOCAL, &a.local);
            attr(&mut body, IFA_ADDRESS, &a.address);
            nl.request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &body)
                .map_err(|e| err(format!("adding an address to {}: {e}", m.name)))?;
        }
        let body = ifinfo(index, libc::IFF_UP as u32, libc::IFF_UP as u32);
        nl.request(RTM_NEWLINK, NLM_F_ACK, &body)
            .map_err(|e| err(format!("bringing {} up: {e}", m.name)))?;
    }
    Ok(())
}
