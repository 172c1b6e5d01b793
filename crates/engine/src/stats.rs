//! `stats`: one sample of a running container's counters, for the CLI's
//! table and the API's JSON alike.

use berth_runtime::stats::Stats;

use crate::{Engine, db};

/// One interface's counters (`/proc/PID/net/dev` in the container's
/// network namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// A sample: the cgroup's counters and the network interfaces (loopback
/// left out, as docker's).
#[derive(Debug)]
pub struct Sample {
    pub cgroup: Stats,
    pub networks: Vec<NetDev>,
}

impl Sample {
    /// Bytes received and sent over all interfaces.
    pub fn net_io(&self) -> (u64, u64) {
        self.networks
            .iter()
            .fold((0, 0), |(r, t), n| (r + n.rx_bytes, t + n.tx_bytes))
    }
}

impl Engine {
    /// A sample of `row`'s counters; None when it is not running (no
    /// cgroup to read).
    pub fn stats(&self, row: &db::ContainerRow) -> Option<Sample> {
        if row.state != db::RUNNING && row.state != db::PAUSED {
            return None;
        }
        let c = self.runtime().load(&row.id).ok()?;
        let cgroup = berth_runtime::stats::collect(&c.record.cgroup);
        let networks = if row.pid > 0 {
            std::fs::read_to_string(format!("/proc/{}/net/dev", row.pid))
                .map(|s| parse_net_dev(&s))
                .unwrap_or_default()
        } else {
            vec![]
        };
        Some(Sample { cgroup, networks })
    }
}

/// The host's CPU time in nanoseconds (`/proc/stat`'s first line), the
/// base docker's CPU % is computed against (`system_cpu_usage`).
pub fn system_cpu_usage() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tick = if tick > 0 { tick as u64 } else { 100 };
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let jiffies: u64 = s
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|x| x.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    jiffies.saturating_mul(1_000_000_000 / tick)
}

/// The interfaces of a `/proc/net/dev` text, loopback left out.
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    let mut out = vec![];
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if v.len() < 12 {
            continue;
        }
        out.push(NetDev {
            name: name.to_string(),
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errors: v[2],
            rx_dropped: v[3],
            tx_bytes: v[8],
            tx_packets: v[9],
            tx_errors: v[10],
            tx_dropped: v[11],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0:    1500      10    1    2    0     0          0         0      700       5    3    4    0     0       0          0\n";
        let v = parse_net_dev(t);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0],
            NetDev {
                name: "eth0".into(),
                rx_bytes: 1500,
                rx_packets: 10,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 700,
                tx_packets: 5,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
    }
}
