//! Published ports: `-p [ip:][hostPort:]containerPort[/tcp|udp|sctp]` with ranges, parsed as
//! docker parses them (go-connections `nat.ParsePortSpec`), with docker's error messages.

use std::fmt;
use std::net::IpAddr;

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bad `-p` value; the messages are docker's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortSpecError {
    #[error("invalid IP address: {0}")]
    InvalidIp(String),
    #[error("no port specified: {0}<empty>")]
    NoPort(String),
    #[error("invalid containerPort: {0}")]
    InvalidContainerPort(String),
    #[error("invalid hostPort: {0}")]
    InvalidHostPort(String),
    #[error("invalid ranges specified for container and host Ports: {container} and {host}")]
    RangeMismatch { container: String, host: String },
    #[error("invalid proto: {0}")]
    InvalidProto(String),
}

/// One published port: docker's `PortBinding` with its container port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// The host address the port is bound to; `None` is every address (`0.0.0.0` and `::`).
    pub host_ip: Option<IpAddr>,
    /// The host port, or a range to choose from (`hostStart-hostEnd:containerPort`); `None`
    /// when docker would pick a free port from its ephemeral range.
    pub host_port: Option<(u16, u16)>,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// The host port when it is fixed (a single port, not a range to choose from).
    pub fn fixed_host_port(&self) -> Option<u16> {
        match self.host_port {
            Some((a, b)) if a == b => Some(a),
            _ => None,
        }
    }
}

/// One published port of a container with its host port chosen: what the firewall DNATs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublishedPort {
    /// `None`: every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// A host port that another container already publishes (docker's message).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortAllocError {
    #[error("Bind for {addr}:{port} failed: port is already allocated (by container {owner})")]
    InUse {
        addr: String,
        port: u16,
        protocol: Protocol,
        owner: String,
    },
    #[error("no free host port for {protocol} in {start}-{end}")]
    Exhausted {
        protocol: Protocol,
        start: u16,
        end: u16,
    },
}

/// Docker's default range for host ports chosen for the user (`-p 80`, `-P`).
pub const EPHEMERAL_PORTS: (u16, u16) = (49153, 60999);

fn binds_clash(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x == y,
        // Every address clashes with any one address, of either family.
        _ => true,
    }
}

fn bind_name(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(a)) => format!("[{a}]"),
        Some(a) => a.to_string(),
        None => "0.0.0.0".to_string(),
    }
}

/// Checks `port` against the ports published already (owner, port).
pub fn check_port_free<'a>(
    published: impl IntoIterator<Item = (&'a str, &'a PublishedPort)>,
    port: &PublishedPort,
) -> Result<(), PortAllocError> {
    for (owner, p) in published {
        if p.protocol == port.protocol
            && p.host_port == port.host_port
            && binds_clash(p.host_ip, port.host_ip)
        {
            return Err(PortAllocError::InUse {
                addr: bind_name(port.host_ip),
                port: port.host_port,
                protocol: port.protocol,
                owner: owner.to_string(),
            });
        }
    }
    Ok(())
}

/// Chooses the host port of `mapping`: its fixed port (checked against `published`), else
/// the first free port of its host range, else of [`EPHEMERAL_PORTS`].
pub fn allocate_host_port<'a>(
    mapping: &PortMapping,
    published: impl IntoIterator<Item = (&'a str, &'a PublishedPort)> + Clone,
) -> Result<PublishedPort, PortAllocError> {
    let mut candidate = PublishedPort {
        host_ip: mapping.host_ip,
        host_port: 0,
        container_port: mapping.container_port,
        protocol: mapping.protocol,
    };
    if let Some(p) = mapping.fixed_host_port() {
        candidate.host_port = p;
        check_port_free(published, &candidate)?;
        return Ok(candidate);
    }
    let (start, end) = mapping.host_port.unwrap_or(EPHEMERAL_PORTS);
    for p in start..=end {
        candidate.host_port = p;
        if check_port_free(published.clone(), &candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(PortAllocError::Exhausted {
        protocol: mapping.protocol,
        start,
        end,
    })
}

fn split_parts(raw: &str) -> (String, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1];
    match n {
        1 => (String::new(), "", container),
        2 => (String::new(), parts[0], container),
        3 => (parts[0].to_string(), parts[1], container),
        _ => (parts[..n - 2].join(":"), parts[n - 2], container),
    }
}

fn split_proto_port(raw: &str) -> (&str, &str) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return ("", "");
    }
    if parts.len() == 1 || parts[1].is_empty() {
        return ("tcp", parts[0]);
    }
    (parts[1], parts[0])
}

/// Parses `N` or `N-M` (docker's `ParsePortRange`).
pub fn parse_port_range(ports: &str) -> Option<(u16, u16)> {
    if ports.is_empty() {
        return None;
    }
    match ports.split_once('-') {
        None => ports.parse::<u16>().ok().map(|p| (p, p)),
        Some((a, b)) => {
            let start = a.parse::<u16>().ok()?;
            let end = b.parse::<u16>().ok()?;
            (end >= start).then_some((start, end))
        }
    }
}

/// Parses one `-p` value into one mapping per container port.
pub fn parse_port_spec(raw: &str) -> Result<Vec<PortMapping>, PortSpecError> {
    let (mut ip, host_port, container_port) = split_parts(raw);
    let (proto, container_port) = split_proto_port(container_port);
    if ip.starts_with('[') {
        ip = ip
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .ok_or_else(|| PortSpecError::InvalidIp(ip.clone()))?
            .to_string();
    }
    let host_ip = if ip.is_empty() {
        None
    } else {
        Some(
            ip.parse::<IpAddr>()
                .map_err(|_| PortSpecError::InvalidIp(ip.clone()))?,
        )
    };
    if container_port.is_empty() {
        return Err(PortSpecError::NoPort(raw.to_string()));
    }
    let (start, end) = parse_port_range(container_port)
        .ok_or_else(|| PortSpecError::InvalidContainerPort(container_port.to_string()))?;
    let host = if host_port.is_empty() {
        None
    } else {
        Some(
            parse_port_range(host_port)
                .ok_or_else(|| PortSpecError::InvalidHostPort(host_port.to_string()))?,
        )
    };
    if let Some((hs, he)) = host
        && (end - start) != (he - hs)
        && end != start
    {
        return Err(PortSpecError::RangeMismatch {
            container: container_port.to_string(),
            host: host_port.to_string(),
        });
    }
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return Err(PortSpecError::InvalidProto(proto.to_string())),
    };
    let mut out = Vec::new();
    for i in 0..=(end - start) {
        let host_port = match host {
            None => None,
            // One container port with a host range: a port to choose from that range.
            Some((hs, he)) if start == end => Some((hs, he)),
            Some((hs, _)) => Some((hs + i, hs + i)),
        };
        out.push(PortMapping {
            host_ip,
            host_port,
            container_port: start + i,
            protocol,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> PortMapping {
        let v = parse_port_spec(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.into_iter().next().unwrap()
    }

    #[test]
    fn forms() {
        let m = one("80");
        assert_eq!((m.host_ip, m.host_port, m.container_port), (None, None, 80));
        assert_eq!(m.protocol, Protocol::Tcp);
        let m = one("8080:80/udp");
        assert_eq!(m.fixed_host_port(), Some(8080));
        assert_eq!(m.protocol, Protocol::Udp);
        let m = one("127.0.0.1:8080:80/SCTP");
        assert_eq!(m.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(m.protocol, Protocol::Sctp);
        let m = one("127.0.0.1::80");
        assert_eq!(m.host_port, None);
        let m = one("[::1]:8080:80");
        assert_eq!(m.host_ip, Some("::1".parse().unwrap()));
        let m = one("::1:8080:80");
        assert_eq!(m.host_ip, Some("::1".parse().unwrap()));
        let m = one("80/");
        assert_eq!(m.protocol, Protocol::Tcp);
    }

    #[test]
    fn ranges() {
        let v = parse_port_spec("8000-8002:9000-9002/udp").unwrap();
        let got: Vec<(Option<u16>, u16)> = v
            .iter()
            .map(|m| (m.fixed_host_port(), m.container_port))
            .collect();
        assert_eq!(
            got,
            vec![(Some(8000), 9000), (Some(8001), 9001), (Some(8002), 9002)]
        );
        // A host range for a single container port: choose one from it.
        let m = one("8000-8010:80");
        assert_eq!(m.host_port, Some((8000, 8010)));
        assert_eq!(m.fixed_host_port(), None);
        assert_eq!(parse_port_spec("7000-7001").unwrap().len(), 2);
    }

    #[test]
    fn host_ports_are_checked_and_chosen() {
        let web = PublishedPort {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let local = PublishedPort {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 9000,
            ..web
        };
        let published = vec![("web", &web), ("db", &local)];
        let e = allocate_host_port(&one("8080:80"), published.clone()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Bind for 0.0.0.0:8080 failed: port is already allocated (by container web)"
        );
        // Another protocol, or another address than a specific one, is free.
        assert!(allocate_host_port(&one("8080:80/udp"), published.clone()).is_ok());
        assert!(allocate_host_port(&one("10.0.0.1:9000:80"), published.clone()).is_ok());
        assert!(allocate_host_port(&one("127.0.0.1:9000:80"), published.clone()).is_err());
        assert!(allocate_host_port(&one("9000:80"), published.clone()).is_err());
        // Ranges: the first free one; ephemeral when none is given.
        let p = allocate_host_port(&one("8079-8081:80"), published.clone()).unwrap();
        assert_eq!(p.host_port, 8079);
        let taken = PublishedPort {
            host_port: 8079,
            ..web
        };
        let more = vec![("web", &web), ("x", &taken)];
        assert_eq!(
            allocate_host_port(&one("8079-8081:80"), more.clone())
                .unwrap()
                .host_port,
            8081
        );
        assert!(matches!(
            allocate_host_port(&one("8079-8080:80"), more),
            Err(PortAllocError::Exhausted { .. })
        ));
        assert_eq!(
            allocate_host_port(&one("80"), published).unwrap().host_port,
            EPHEMERAL_PORTS.0
        );
    }

    #[test]
    fn bad_input_has_dockers_messages() {
        let err = |s: &str| parse_port_spec(s).unwrap_err().to_string();
        assert_eq!(err("abc"), "invalid containerPort: abc");
        assert_eq!(err("8080:70000"), "invalid containerPort: 70000");
        assert_eq!(err("x:80"), "invalid hostPort: x");
        assert_eq!(err("99999:80"), "invalid hostPort: 99999");
        assert_eq!(err("80/icmp"), "invalid proto: icmp");
        assert_eq!(err("1.2.3:80:80"), "invalid IP address: 1.2.3");
        assert_eq!(err("8080:"), "no port specified: 8080:<empty>");
        assert_eq!(err(""), "no port specified: <empty>");
        assert_eq!(err("90-80"), "invalid containerPort: 90-80");
        assert_eq!(
            err("8000-8001:80-83"),
            "invalid ranges specified for container and host Ports: 80-83 and 8000-8001"
        );
        assert_eq!(err("[::1:80:80"), "invalid IP address: [::1");
    }
}
