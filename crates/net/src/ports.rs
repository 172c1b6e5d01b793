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
