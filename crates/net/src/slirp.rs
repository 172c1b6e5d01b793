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
    #[error("slirp4netns for the rootless network namespace failed: {0}")]
    NetnsFailed(String),
    #[error("slirp4netns API {path}: {err}")]
    Api { path: PathBuf, err: io::Error },
    #[error("publishing {what}: {msg}")]
    Forward { what: String, msg: String },
}

/// A running slirp4netns.
pub struct Slirp {
    child: Child,
    api: Api,
    /// Closing it tells slirp4netns to exit.
    _exit: OwnedFd,
}

/// The API socket of a slirp4netns: `DIR/slirp.sock`, reached through a
/// descriptor of DIR (a socket path is limited to 107 bytes).
pub struct Api {
    path: PathBuf,
    dir: OwnedFd,
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

/// Spawns slirp4netns for `target` (its last arguments before `tap0`) and
/// waits for `tap0` to be configured; the error is what it said.
fn launch(
    target: &[String],
    dir: &Path,
    exit_r: Option<OwnedFd>,
    detach: bool,
) -> Result<(Child, Api), String> {
    let api = dir.join(API_SOCKET);
    let _ = std::fs::remove_file(&api);
    let dir_fd = open_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (ready_r, ready_w) = pipe().map_err(|e| e.to_string())?;
    let ready_fd = ready_w.as_raw_fd();
    let exit_fd = exit_r.as_ref().map(|f| f.as_raw_fd());
    let dir_raw = dir_fd.as_raw_fd();
    let mut cmd = Command::new("slirp4netns");
    cmd.args([
        "--configure",
        "--mtu=65520",
        // The host's 127.0.0.1 stays the host's: a container cannot
        // reach services that listen only on loopback.
        "--disable-host-loopback",
    ])
    .arg(format!("--api-socket=/proc/self/fd/{dir_raw}/{API_SOCKET}"))
    .arg(format!("--ready-fd={ready_fd}"));
    if let Some(fd) = exit_fd {
        cmd.arg(format!("--exit-fd={fd}"));
    }
    cmd.args(target)
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure only makes fcntl and setsid calls
    // (async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            keep_across_exec(ready_fd)?;
            if let Some(fd) = exit_fd {
                keep_across_exec(fd)?;
            }
            if detach {
                libc::setsid();
            }
            keep_across_exec(dir_raw)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{e} (rootless networking needs Debian's slirp4netns package)"))?;
    drop(ready_w);
    drop(exit_r);
    let mut b = [0u8; 1];
    let mut ready = std::fs::File::from(ready_r);
    if !matches!(ready.read(&mut b), Ok(1)) {
        let _ = child.kill();
        let mut msg = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut msg);
        }
        let _ = child.wait();
        return Err(msg.trim().to_string());
    }
    // Its later messages would fill the pipe: nobody reads them.
    drop(child.stderr.take());
    Ok((
        child,
        Api {
            path: api,
            dir: dir_fd,
        },
    ))
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
    /// 107 bytes, a state directory need not be). It exits when this
    /// handle is dropped (its exit pipe closes) or stopped.
    pub fn start(pid: i32, dir: &Path) -> Result<Slirp, SlirpError> {
        let (exit_r, exit_w) = pipe().map_err(SlirpError::Spawn)?;
        let (child, api) = launch(&[pid.to_string()], dir, Some(exit_r), false)
            .map_err(|msg| SlirpError::Failed { pid, msg })?;
        Ok(Slirp {
            child,
            api,
            _exit: exit_w,
        })
    }

    /// Starts a slirp4netns of its own session for the network namespace
    /// bound at `netns` (the rootless engine's shared one), which lives on
    /// until killed; its pid.
    pub fn start_detached(netns: &Path, dir: &Path) -> Result<u32, SlirpError> {
        let (child, _) = launch(
            &["--netns-type=path".into(), netns.display().to_string()],
            dir,
            None,
            true,
        )
        .map_err(SlirpError::NetnsFailed)?;
        Ok(child.id())
    }

    /// Its API.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Forwards a host port (see [`Api::forward`]) to the container.
    pub fn forward(
        &self,
        proto: Protocol,
        host_ip: Option<IpAddr>,
        host_port: u16,
        container_port: u16,
    ) -> Result<u16, SlirpError> {
        self.api.forward(proto, host_ip, host_port, container_port)
    }

    /// Stops it (the monitor's cleanup when the container exits).
    pub fn stop(mut self) {
        self.kill();
        self.reap();
    }

    /// Sends it SIGKILL. Its exit closes the tap device, whose removal
    /// waits for the kernel (~15 ms): [`Slirp::reap`] it once nobody waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = std::fs::remove_file(&self.api.path);
    }

    /// Waits for it to be gone.
    pub fn reap(mut self) {
        let _ = self.child.wait();
    }
}

impl Api {
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
            path: self.path.clone(),
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

    /// Opens the API of a slirp4netns already running with its socket in
    /// `dir`.
    pub fn open(dir: &Path) -> Result<Api, SlirpError> {
        let dir_fd = open_dir(dir).map_err(|err| SlirpError::Api {
            path: dir.to_path_buf(),
            err,
        })?;
        Ok(Api {
            path: dir.join(API_SOCKET),
            dir: dir_fd,
        })
    }

    /// Removes every forward of `host_port` (and protocol).
    pub fn remove_forwards(&self, proto: Protocol, host_port: u16) -> Result<(), SlirpError> {
        let list = self.call(&serde_json::json!({"execute": "list_hostfwd"}))?;
        let entries = list["return"]["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for e in entries {
            if e["host_port"].as_u64() == Some(u64::from(host_port))
                && e["proto"].as_str() == Some(proto.as_str())
                && let Some(id) = e["id"].as_u64()
            {
                self.call(&serde_json::json!({
                    "execute": "remove_hostfwd",
                    "arguments": {"id": id}
                }))?;
            }
        }
        Ok(())
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
