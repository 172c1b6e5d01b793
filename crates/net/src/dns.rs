//! The embedded resolver of user-defined networks: docker's `127.0.0.11`, without a daemon.
//!
//! A container on a user-defined network gets a [`Resolver`], owned and served by its monitor:
//!
//! * a UDP socket and a TCP listener bound to `127.0.0.11` on ephemeral ports **inside the
//!   container's network namespace**. A socket stays in the namespace it was made in, so the
//!   monitor, back in the host's namespace, serves them from its own poll loop;
//! * an nftables table in the container's namespace (`ip berth_dns`) that redirects
//!   `127.0.0.11:53` to those ports (docker's `DOCKER_OUTPUT` rules), so port 53 stays free for
//!   a DNS server the container runs itself;
//! * names of containers on the asker's networks are answered from the engine's state
//!   ([`Names`], read at each query, so containers started later and `network connect` are
//!   seen at once); everything else is forwarded from the **host's** namespace to the upstream
//!   servers (the host's resolvers, loopback ones included, or `--dns`) with a fresh random
//!   query ID, and the answer goes back to the asker with its own ID. A server that does not
//!   answer within two seconds hands the query to the next; after the last, SERVFAIL.
//!
//! [`answer`] is the pure part (bytes in, decision out), unit-tested and safe on any input.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::firewall::{Firewall, FirewallError};

/// Where containers send their queries (their `/etc/resolv.conf` says so).
pub const RESOLVER_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// docker's TTL for container names.
const TTL: u32 = 600;
/// How long one upstream server has to answer before the next is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwarded queries in flight at most; beyond, the oldest is dropped (its asker retries).
const MAX_PENDING: usize = 512;
/// Queries read per wake-up, so a flood cannot starve the monitor's other work.
const BATCH: usize = 64;
/// How long a TCP asker may take to send its query, or to take the answer.
const TCP_TIMEOUT: Duration = Duration::from_millis(500);

/// Setting up a container's resolver failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("entering the container's network namespace for its resolver: {0}")]
    Setns(#[source] io::Error),
    #[error("binding the container's resolver on 127.0.0.11: {0}")]
    Bind(#[source] io::Error),
    #[error("opening the resolver's upstream socket: {0}")]
    Upstream(#[source] io::Error),
    #[error("redirecting 127.0.0.11:53 to the container's resolver: {0}")]
    Redirect(#[source] FirewallError),
}

/// The names a container may resolve: those of the containers on its networks.
pub trait Names {
    /// The addresses of `name` (lower case, no trailing dot) on the asker's networks; `None`
    /// when no container there has that name, alias or id (the query is then forwarded).
    fn addresses(&mut self, name: &str) -> Option<Vec<IpAddr>>;
    /// The name of the container at `address` on the asker's networks (`name.network`).
    fn name_of(&mut self, address: IpAddr) -> Option<String>;
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send these bytes back to the asker.
    Reply(Vec<u8>),
    /// Not a container's name: ask the upstream servers.
    Forward,
    /// Not worth an answer (a response, or too short to carry an id).
    Drop,
}

/// Decides the answer to the DNS message `query`. `turn` rotates the order of several
/// addresses for one name (docker's round robin for shared aliases).
pub fn answer(query: &[u8], names: &mut dyn Names, turn: usize) -> Outcome {
    let msg = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => {
            return match query_id(query) {
                Some(id) if query.get(2).is_some_and(|b| b & 0x80 == 0) => {
                    Outcome::Reply(error_reply(id, ResponseCode::FormErr))
                }
                _ => Outcome::Drop,
            };
        }
    };
    if msg.metadata.message_type != MessageType::Query {
        return Outcome::Drop;
    }
    if msg.metadata.op_code != OpCode::Query {
        return Outcome::Reply(reply(&msg, ResponseCode::NotImp, vec![]));
    }
    let [q] = msg.queries.as_slice() else {
        return Outcome::Reply(reply(&msg, ResponseCode::FormErr, vec![]));
    };
    let qname = q.name().clone();
    if q.query_type() == RecordType::PTR {
        let Some(addr) = qname
            .parse_arpa_name()
            .ok()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .map(|n| n.addr())
        else {
            return Outcome::Forward;
        };
        return match names
            .name_of(addr)
            .and_then(|n| Name::from_ascii(n + ".").ok())
        {
            Some(target) => Outcome::Reply(reply(
                &msg,
                ResponseCode::NoError,
                vec![Record::from_rdata(qname, TTL, RData::PTR(PTR(target)))],
            )),
            None => Outcome::Forward,
        };
    }
    let name = qname.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let Some(mut addrs) = names.addresses(&name) else {
        return Outcome::Forward;
    };
    if !addrs.is_empty() {
        let n = turn % addrs.len();
        addrs.rotate_left(n);
    }
    let want_v4 = matches!(q.query_type(), RecordType::A | RecordType::ANY);
    let want_v6 = matches!(q.query_type(), RecordType::AAAA | RecordType::ANY);
    // A name Berth knows with no record of the asked type: NOERROR and no answer (NODATA), so
    // the asker does not go on to ask the world for a container's name.
    let answers = addrs
        .into_iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) if want_v4 => Some(RData::A(A(v4))),
            IpAddr::V6(v6) if want_v6 => Some(RData::AAAA(AAAA(v6))),
            _ => None,
        })
        .map(|rdata| Record::from_rdata(qname.clone(), TTL, rdata))
        .collect();
    Outcome::Reply(reply(&msg, ResponseCode::NoError, answers))
}

/// The id of a DNS message, if it is long enough to have a header.
fn query_id(bytes: &[u8]) -> Option<u16> {
    (bytes.len() >= 12).then(|| u16::from_be_bytes([bytes[0], bytes[1]]))
}

fn reply(query: &Message, code: ResponseCode, answers: Vec<Record>) -> Vec<u8> {
    let mut m = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata = Metadata::response_from_request(&query.metadata);
    m.metadata.recursion_available = true;
    m.metadata.response_code = code;
    m.add_queries(query.queries.iter().cloned());
    m.add_answers(answers);
    if query.edns.is_some() {
        m.set_edns(Edns::new());
    }
    m.to_vec()
        .unwrap_or_else(|_| error_reply(query.metadata.id, ResponseCode::ServFail))
}

/// A bare header with `code`, for queries that cannot be parsed or answered.
fn error_reply(id: u16, code: ResponseCode) -> Vec<u8> {
    let mut h = [0u8; 12];
    h[..2].copy_from_slice(&id.to_be_bytes());
    h[2] = 0x80; // QR: a response
    h[3] = 0x80 | (u16::from(code) as u8 & 0x0f); // RA and the code
    h.to_vec()
}

/// An upstream server's address as the upstream socket speaks it.
fn as_socket(addr: SocketAddr, v6_socket: bool) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if v6_socket => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        a => a,
    }
}

fn same_server(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip().to_canonical() == b.ip().to_canonical() && a.port() == b.port()
}

/// Who asked a forwarded query.
#[derive(Debug)]
enum Asker {
    Udp(SocketAddr),
    Tcp(TcpStream),
}

#[derive(Debug)]
struct Pending {
    asker: Asker,
    /// The asker's id, put back into the answer.
    id: u16,
    /// The query as sent upstream (with our id).
    query: Vec<u8>,
    server: usize,
    sent: Instant,
}

/// One container's resolver (see the module documentation).
#[derive(Debug)]
pub struct Resolver {
    udp: UdpSocket,
    tcp: TcpListener,
    upstream: UdpSocket,
    upstream_v6: bool,
    servers: Vec<SocketAddr>,
    pending: HashMap<u16, Pending>,
    rng: u64,
    turn: usize,
}

impl Resolver {
    /// Starts the resolver of the container whose network namespace is `netns`, forwarding
    /// to `servers` (none: every name that is not a container's fails, as on an `--internal`
    /// network). The sockets are made by a short-lived thread that enters the namespace (this
    /// thread never does); the redirect of port 53 is one `nft` run in the namespace.
    pub fn start(
        netns: BorrowedFd<'_>,
        servers: Vec<SocketAddr>,
        firewall: &Firewall,
    ) -> Result<Resolver, DnsError> {
        let fd: OwnedFd = netns.try_clone_to_owned().map_err(DnsError::Setns)?;
        let (udp, tcp) = std::thread::spawn(move || {
            crate::netlink::setns_net(fd.as_fd()).map_err(DnsError::Setns)?;
            let udp = UdpSocket::bind((RESOLVER_ADDRESS, 0)).map_err(DnsError::Bind)?;
            let tcp = TcpListener::bind((RESOLVER_ADDRESS, 0)).map_err(DnsError::Bind)?;
            Ok::<_, DnsError>((udp, tcp))
        })
        .join()
        .map_err(|_| DnsError::Setns(io::Error::other("resolver helper thread panicked")))??;
        let (upstream, upstream_v6) = match UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)) {
            Ok(s) => (s, true),
            Err(_) => (
                UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(DnsError::Upstream)?,
                false,
            ),
        };
        for s in [&udp, &upstream] {
            s.set_nonblocking(true).map_err(DnsError::Bind)?;
        }
        tcp.set_nonblocking(true).map_err(DnsError::Bind)?;
        let ports = (
            udp.local_addr().map_err(DnsError::Bind)?.port(),
            tcp.local_addr().map_err(DnsError::Bind)?.port(),
        );
        firewall
            .apply_in(netns, "the resolver's redirect", &redirect_script(ports))
            .map_err(DnsError::Redirect)?;
        let servers = servers
            .into_iter()
            .filter(|s| upstream_v6 || s.is_ipv4())
            .collect();
        Ok(Resolver {
            udp,
            tcp,
            upstream,
            upstream_v6,
            servers,
            pending: HashMap::new(),
            rng: seed(),
            turn: 0,
        })
    }

    /// The descriptors to poll: the container's UDP socket, its TCP listener, the upstream
    /// socket. Call [`serve_udp`](Self::serve_udp), [`serve_tcp`](Self::serve_tcp) and
    /// [`relay`](Self::relay) when they are readable.
    pub fn fds(&self) -> [BorrowedFd<'_>; 3] {
        [self.udp.as_fd(), self.tcp.as_fd(), self.upstream.as_fd()]
    }

    /// When to call [`tick`](Self::tick) next, if anything waits for an upstream server.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.sent + UPSTREAM_TIMEOUT)
            .min()
    }

    /// Answers the queries waiting on the UDP socket.
    pub fn serve_udp(&mut self, names: &mut dyn Names) {
        let mut buf = [0u8; 4096];
        for _ in 0..BATCH {
            let Ok((n, from)) = self.udp.recv_from(&mut buf) else {
                return;
            };
            self.turn = self.turn.wrapping_add(1);
            match answer(&buf[..n], names, self.turn) {
                Outcome::Reply(r) => {
                    let _ = self.udp.send_to(&r, from);
                }
                Outcome::Forward => self.forward(Asker::Udp(from), &buf[..n]),
                Outcome::Drop => {}
            }
        }
    }

    /// Takes the TCP connections waiting on the listener: one query each (length-prefixed, as
    /// RFC 1035 4.2.2), answered on the same connection.
    pub fn serve_tcp(&mut self, names: &mut dyn Names) {
        for _ in 0..BATCH {
            let Ok((mut s, _)) = self.tcp.accept() else {
                return;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(TCP_TIMEOUT));
            let _ = s.set_write_timeout(Some(TCP_TIMEOUT));
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if s.read_exact(&mut q).is_err() {
                continue;
            }
            self.turn = self.turn.wrapping_add(1);
            match answer(&q, names, self.turn) {
                Outcome::Reply(r) => write_tcp(&mut s, &r),
                Outcome::Forward => self.forward(Asker::Tcp(s), &q),
                Outcome::Drop => {}
            }
        }
    }

    /// Passes the upstream servers' answers back to their askers.
    pub fn relay(&mut self) {
        let mut buf = [0u8; 65535];
        for _ in 0..BATCH {
            let Ok((n, from)) = self.upstream.recv_from(&mut buf) else {
                return;
            };
            let Some(id) = query_id(&buf[..n]) else {
                continue;
            };
            // Only the server the query went to may answer it.
            let Some(p) = self.pending.get(&id) else {
                continue;
            };
            let Some(&server) = self.servers.get(p.server) else {
                continue;
            };
            if !same_server(from, server) {
                continue;
            }
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            let mut answer = buf[..n].to_vec();
            answer[..2].copy_from_slice(&p.id.to_be_bytes());
            self.deliver(p.asker, &answer);
        }
    }

    /// Hands queries whose server did not answer in time to the next server, and fails those
    /// that every server let pass.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let late: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.sent) >= UPSTREAM_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let Some(mut p) = self.pending.remove(&id) else {
                continue;
            };
            p.server += 1;
            if p.server < self.servers.len() && self.send_upstream(&p) {
                p.sent = now;
                self.pending.insert(id, p);
            } else {
                self.deliver(p.asker, &error_reply(p.id, ResponseCode::ServFail));
            }
        }
    }

    fn forward(&mut self, asker: Asker, query: &[u8]) {
        let Some(id) = query_id(query) else {
            return;
        };
        if self.servers.is_empty() {
            self.deliver(asker, &error_reply(id, ResponseCode::ServFail));
            return;
        }
        if self.pending.len() >= MAX_PENDING
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.sent)
                .map(|(k, _)| *k)
        {
            self.pending.remove(&oldest);
        }
        let ours = loop {
            let candidate = next_id(&mut self.rng);
            if !self.pending.contains_key(&candidate) {
                break candidate;
            }
        };
        let mut q = query.to_vec();
        q[..2].copy_from_slice(&ours.to_be_bytes());
        let mut p = Pending {
            asker,
            id,
            query: q,
            server: 0,
            sent: Instant::now(),
        };
        // A server that refuses at once (unreachable) passes to the next.
        while p.server < self.servers.len() && !self.send_upstream(&p) {
            p.server += 1;
        }
        if p.server < self.servers.len() {
            self.pending.insert(ours, p);
        } else {
            self.deliver(p.asker, &error_reply(id, ResponseCode::ServFail));
        }
    }

    fn send_upstream(&self, p: &Pending) -> bool {
        let Some(&server) = self.servers.get(p.server) else {
            return false;
        };
        self.upstream
            .send_to(&p.query, as_socket(server, self.upstream_v6))
            .is_ok()
    }

    fn deliver(&self, asker: Asker, bytes: &[u8]) {
        match asker {
            Asker::Udp(to) => {
                let _ = self.udp.send_to(bytes, to);
            }
            Asker::Tcp(mut s) => write_tcp(&mut s, bytes),
        }
    }
}

/// xorshift64*: query ids an off-path sender cannot guess from the previous ones.
fn next_id(state: &mut u64) -> u16 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 48) as u16
}

fn write_tcp(s: &mut TcpStream, bytes: &[u8]) {
    let Ok(len) = u16::try_from(bytes.len()) else {
        return;
    };
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    let _ = s.write_all(&framed);
}

/// A seed from the kernel's random pool (never zero, which xorshift cannot leave).
fn seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    let s = u64::from_ne_bytes(b) ^ u64::from(std::process::id());
    if s == 0 { 0x9e37_79b9_7f4a_7c15 } else { s }
}

/// The nftables table, in the container's namespace, that sends `127.0.0.11:53` (UDP and
/// TCP) to the resolver's ports. Replies are translated back by conntrack.
pub fn redirect_script((udp, tcp): (u16, u16)) -> String {
    let a = RESOLVER_ADDRESS;
    format!(
        "table ip berth_dns {{\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         \t\tip daddr {a} udp dport 53 dnat to {a}:{udp}\n\
         \t\tip daddr {a} tcp dport 53 dnat to {a}:{tcp}\n\
         \t}}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    struct Fixed;
    impl Names for Fixed {
        fn addresses(&mut self, name: &str) -> Option<Vec<IpAddr>> {
            match name {
                "web" => Some(vec![
                    "10.1.0.2".parse().unwrap(),
                    "fd00::2".parse().unwrap(),
                ]),
                "db" => Some(vec![
                    "10.1.0.3".parse().unwrap(),
                    "10.1.0.4".parse().unwrap(),
                ]),
                _ => None,
            }
        }
        fn name_of(&mut self, address: IpAddr) -> Option<String> {
            (address == "10.1.0.2".parse::<IpAddr>().unwrap()).then(|| "web.mynet".to_string())
        }
    }

    fn ask(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn parsed(o: Outcome) -> Message {
        match o {
            Outcome::Reply(b) => Message::from_vec(&b).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn addrs(m: &Message) -> Vec<String> {
        m.answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                RData::PTR(p) => p.0.to_ascii(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn container_names_answered_by_type_case_insensitively() {
        let m = parsed(answer(&ask("WeB.", RecordType::A), &mut Fixed, 0));
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.recursion_desired && m.metadata.recursion_available);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addrs(&m), ["10.1.0.2"]);
        assert_eq!(m.answers[0].ttl, TTL);
        let m = parsed(answer(&ask("web", RecordType::AAAA), &mut Fixed, 0));
        assert_eq!(addrs(&m), ["fd00::2"]);
        // Known name, no record of that type: NODATA, not forwarded.
        let m = parsed(answer(&ask("db", RecordType::AAAA), &mut Fixed, 0));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        let m = parsed(answer(&ask("db", RecordType::MX), &mut Fixed, 0));
        assert!(m.answers.is_empty());
    }

    #[test]
    fn shared_names_rotate() {
        let a = addrs(&parsed(answer(&ask("db", RecordType::A), &mut Fixed, 0)));
        let b = addrs(&parsed(answer(&ask("db", RecordType::A), &mut Fixed, 1)));
        assert_eq!(a, ["10.1.0.3", "10.1.0.4"]);
        assert_eq!(b, ["10.1.0.4", "10.1.0.3"]);
    }

    #[test]
    fn reverse_lookups_of_containers() {
        let m = parsed(answer(
            &ask("2.0.1.10.in-addr.arpa.", RecordType::PTR),
            &mut Fixed,
            0,
        ));
        assert_eq!(addrs(&m), ["web.mynet."]);
        assert_eq!(
            answer(
                &ask("9.0.1.10.in-addr.arpa.", RecordType::PTR),
                &mut Fixed,
                0
            ),
            Outcome::Forward
        );
        // A network, not an address: forwarded.
        assert_eq!(
            answer(&ask("1.10.in-addr.arpa.", RecordType::PTR), &mut Fixed, 0),
            Outcome::Forward
        );
    }

    #[test]
    fn other_names_are_forwarded() {
        assert_eq!(
            answer(&ask("example.org.", RecordType::A), &mut Fixed, 0),
            Outcome::Forward
        );
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        // Too short for a header: nothing to answer to.
        assert_eq!(answer(&[1, 2, 3], &mut Fixed, 0), Outcome::Drop);
        // A header claiming a question that is not there.
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[63, b'a']);
        let m = parsed(answer(&q, &mut Fixed, 0));
        assert_eq!(m.metadata.id, 0xabcd);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        // A response is never answered (no loops between resolvers).
        let mut r = ask("web", RecordType::A);
        r[2] |= 0x80;
        assert_eq!(answer(&r, &mut Fixed, 0), Outcome::Drop);
        // Two questions: FORMERR.
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("web.").unwrap(),
            RecordType::A,
        ));
        m.add_query(Query::query(
            Name::from_ascii("db.").unwrap(),
            RecordType::A,
        ));
        let m = parsed(answer(&m.to_vec().unwrap(), &mut Fixed, 0));
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        // Every truncation of a valid query is handled without panicking.
        let full = ask("web", RecordType::A);
        for n in 0..full.len() {
            let _ = answer(&full[..n], &mut Fixed, 0);
        }
    }

    #[test]
    fn ids_spread_over_the_range() {
        let mut state = seed();
        let ids: Vec<u16> = (0..64).map(|_| next_id(&mut state)).collect();
        let mut d = ids.clone();
        d.sort();
        d.dedup();
        assert!(d.len() > 60, "{ids:?}");
        assert!(ids.iter().any(|&i| i > 0x8000) && ids.iter().any(|&i| i < 0x8000));
    }

    #[test]
    fn redirect_names_both_protocols() {
        let s = redirect_script((40001, 40002));
        assert!(s.contains("udp dport 53 dnat to 127.0.0.11:40001"), "{s}");
        assert!(s.contains("tcp dport 53 dnat to 127.0.0.11:40002"), "{s}");
    }
}
