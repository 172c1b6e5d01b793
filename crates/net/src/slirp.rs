//! User-mode networking for rootless containers: slirp4netns (Debian's
//! `slirp4netns`), as podman's default rootless network.
//!
//! slirp4netns joins the container's network namespace, creates `tap0`
//! there (10.0.2.100/24, gateway 10.0.2.2, DNS forwarder 10.0.2.3) and
//! carries its traffic through ordinary sockets of the user in the host's
//! namespace. Published ports are host forwards added through its API
//! socket. It stops when the descriptor given as `--exit-fd` is closed
//! (the monitor's end goes with the monitor) or when it is killed.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ports::Protocol;

/// The container's address on slirp4netns' network.
pub const GUEST_ADDR: &str = "10.0.2.100";
/// The host as the container sees it (not its loopback addresses).
pub const GATEWAY_ADDR: &str = "10.0.2.2";
/// The DNS forwarder slirp4netns serves.
pub const DNS_ADDR: &str = "10.0.2.3";

#[derive(Debug, thiserror::Error)]
pub enum SlirpError {
    #[error(
        "slirp4netns could not be started ({0}); rootless networking needs Debian's slirp4netns package"
    )]
    Spawn(io::Error),
    #[error("slirp4netns for pid {pid} failed: {msg}")]
    Failed { pid: i32, msg: String },
    #[error("slirp4netns API {path}: {err}")]
    Api { path: PathBuf, err: io::Error },
    #[error("publishing {what}: {msg}")]
    Forward { what: String, msg: String },
}

/// A running slirp4netns.
pub struct Slirp {
    child: Child,
    api: PathBuf,
    /// The state directory, for the API socket's path.
    dir: OwnedFd,
    /// Closing it tells slirp4netns to exit.
    _exit: OwnedFd,
}

const API_SOCKET: &str = "slirp.sock";

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    Ok(f.into())
}

/// Two ends of a pipe, close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    use std::os::fd::FromRawFd;
    // SAFETY: both were just returned by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The child side: `fd` stays open across exec under the same number.
fn keep_across_exec(fd: i32) -> io::Result<()> {
    // SAFETY: F_SETFD on a descriptor of ours.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Slirp {
    /// Starts slirp4netns for the network namespace of `pid` and waits
    /// until `tap0` is configured. Its API socket is `dir/slirp.sock`
    /// (reached through a descriptor of `dir`: a socket path is limited to
    /// 107 bytes, a state directory need not be).
    pub fn start(pid: i32, dir: &Path) -> Result<Slirp, SlirpError> {
        let api = dir.join(API_SOCKET);
        let _ = std::fs::remove_file(&api);
        let dir_fd = open_dir(dir).map_err(|err| SlirpError::Api {
            path: dir.to_path_buf(),
            err,
        })?;
        let (ready_r, ready_w) = pipe().map_err(SlirpError::Spawn)?;
        let (exit_r, exit_w) = pipe().map_err(SlirpError::Spawn)?;
        let (ready_fd, exit_fd, dir_raw) =
            (ready_w.as_raw_fd(), exit_r.as_raw_fd(), dir_fd.as_raw_fd());
        let mut cmd = Command::new("slirp4netns");
        cmd.args([
            "--configure",
            "--mtu=65520",
            // The host's 127.0.0.1 stays the host's: a container cannot
            // reach services that listen only on loopback.
            "--disable-host-loopback",
        ])
        .arg(format!("--api-socket=/proc/self/fd/{dir_raw}/{API_SOCKET}"))
        .arg(format!("--ready-fd={ready_fd}"))
        .arg(format!("--exit-fd={exit_fd}"))
        .arg(pid.to_string())
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        // SAFETY: the closure only makes fcntl calls (async-signal-safe).
        unsafe {
            cmd.pre_exec(move || {
                keep_across_exec(ready_fd)?;
                keep_across_exec(exit_fd)?;
                keep_across_exec(dir_raw)
            });
        }
        let mut child = cmd.spawn().map_err(SlirpError::Spawn)?;
        drop(ready_w);
        drop(exit_r);
        let mut b = [0u8; 1];
        let mut ready = std::fs::File::from(ready_r);
        let r = ready.read(&mut b);
        if !matches!(r, Ok(1)) {
            let _ = child.kill();
            let mut msg = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut msg);
            }
            let _ = child.wait();
            return Err(SlirpError::Failed {
                pid,
                msg: msg.trim().to_string(),
            });
        }
        // Its later messages would fill the pipe: nobody reads them.
        drop(child.stderr.take());
        Ok(Slirp {
            child,
            api,
            dir: dir_fd,
            _exit: exit_w,
        })
    }

    /// Forwards `host_ip:host_port` on the host to the container's
    /// `container_port`. `host_port` 0 picks a free port; returns the port.
    pub fn forward(
        &self,
        proto: Protocol,
        host_ip: Option<IpAddr>,
        host_port: u16,
        container_port: u16,
    ) -> Result<u16, SlirpError> {
        let what = format!("{host_port}->{container_port}/{}", proto.as_str());
        let fail = |msg: String| SlirpError::Forward {
            what: what.clone(),
            msg,
        };
        let proto_name = match proto {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => return Err(fail("slirp4netns cannot forward sctp".into())),
        };
        let addr = host_ip.map_or("0.0.0.0".to_string(), |a| a.to_string());
        if host_ip.is_some_and(|a| a.is_ipv6()) {
            return Err(fail("slirp4netns forwards IPv4 addresses only".into()));
        }
        let port = if host_port == 0 {
            free_port(proto, &addr).map_err(|e| fail(format!("finding a free port: {e}")))?
        } else {
            host_port
        };
        let req = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": proto_name,
                "host_addr": addr,
                "host_port": port,
                "guest_addr": GUEST_ADDR,
                "guest_port": container_port,
            }
        });
        let reply = self.call(&req)?;
        if let Some(e) = reply.get("error") {
            let desc = e
                .get("desc")
                .and_then(|d| d.as_str())
                .unwrap_or("refused")
                .to_string();
            let hint = if port < 1024 {
                " (an unprivileged user cannot bind ports below 1024 unless net.ipv4.ip_unprivileged_port_start allows it)"
            } else {
                ""
            };
            return Err(fail(format!("{desc}{hint}")));
        }
        Ok(port)
    }

    fn call(&self, req: &serde_json::Value) -> Result<serde_json::Value, SlirpError> {
        let err = |err: io::Error| SlirpError::Api {
            path: self.api.clone(),
            err,
        };
        let via = PathBuf::from(format!(
            "/proc/self/fd/{}/{API_SOCKET}",
            self.dir.as_raw_fd()
        ));
        let mut s = UnixStream::connect(via).map_err(err)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(err)?;
        s.write_all(req.to_string().as_bytes()).map_err(err)?;
        s.shutdown(std::net::Shutdown::Write).map_err(err)?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).map_err(err)?;
        serde_json::from_str(&line).map_err(|e| err(io::Error::other(e)))
    }

    /// Stops it (the monitor's cleanup when the container exits).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.api);
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        // The exit pipe closes with us; reap it if it has gone already.
        let _ = self.child.try_wait();
    }
}

/// A port nobody listens on now (a small race until slirp4netns binds it,
/// as with docker-proxy's own choice).
fn free_port(proto: Protocol, addr: &str) -> io::Result<u16> {
    let a = format!("{addr}:0");
    Ok(match proto {
        Protocol::Udp => std::net::UdpSocket::bind(a)?.local_addr()?.port(),
        _ => std::net::TcpListener::bind(a)?.local_addr()?.port(),
    })
}
