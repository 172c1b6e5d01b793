//! Where `berth serve` listens: `-H unix:///PATH` (mode 0660, group
//! `berth` when there is one), `-H tcp://ADDR:PORT` (with TLS, or
//! when plain TCP is explicitly forced), `-H fd://` or no `-H` under
//! systemd socket activation (`LISTEN_FDS`).

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::ServeOptions;
use crate::error::Error;

pub const DEFAULT_SOCKET: &str = "/run/berth.sock";

/// The socket `serve` listens on without `-H`: `/run/berth.sock`, or
/// `$XDG_RUNTIME_DIR/berth/berth.sock` for a rootless user.
pub fn default_socket() -> PathBuf {
    match berth_engine::rootless::active()
        .then(berth_engine::rootless::run_root)
        .and_then(|r| r.ok())
    {
        Some(run) => run.join("berth.sock"),
        None => PathBuf::from(DEFAULT_SOCKET),
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub enum Listener {
    Unix(tokio::net::UnixListener, Option<PathBuf>),
    Tcp(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>),
}

impl Listener {
    pub async fn accept(&self) -> io::Result<Box<dyn Io>> {
        Ok(match self {
            Listener::Unix(l, _) => Box::new(l.accept().await?.0),
            Listener::Tcp(l, _) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
        })
    }

    /// The socket file this server made (removed when it stops).
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            Listener::Unix(_, p) => p.clone(),
            Listener::Tcp(..) => None,
        }
    }

    /// The TLS acceptor its connections go through first.
    pub fn tls(&self) -> Option<tokio_rustls::TlsAcceptor> {
        match self {
            Listener::Tcp(_, t) => t.clone(),
            Listener::Unix(..) => None,
        }
    }
}

/// The descriptors systemd passed (`LISTEN_PID` is us), from fd 3.
fn activated_fds() -> Vec<RawFd> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !ours {
        return vec![];
    }
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    // Not for our children (the monitors we start).
    // SAFETY: only environment variables are changed, before any other
    // thread reads them (the runtime's workers do not).
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    (3..3 + n.max(0)).collect()
}

fn from_fd(fd: RawFd) -> Result<Listener, Error> {
    let err = |e: io::Error| Error::Listen {
        addr: format!("fd {fd}"),
        err: e,
    };
    // SAFETY: a zeroed sockaddr_storage is a valid out buffer for getsockname.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: ss and len are valid for the call.
    if unsafe { libc::getsockname(fd, (&raw mut ss).cast(), &mut len) } != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: fd is a socket systemd gave us; we take ownership once.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    if i32::from(ss.ss_family) == libc::AF_UNIX {
        // SAFETY: as above: the descriptor is ours from here on.
        let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
        l.set_nonblocking(true).map_err(err)?;
        Ok(Listener::Unix(
            tokio::net::UnixListener::from_std(l).map_err(err)?,
            None,
        ))
    } else {
        // SAFETY: as above.
        let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        l.set_nonblocking(true).map_err(err)?;
        Ok(Listener::Tcp(
            tokio::net::TcpListener::from_std(l).map_err(err)?,
            None,
        ))
    }
}

/// The group a socket is given: `berth` when it exists.
fn berth_gid() -> Option<libc::gid_t> {
    let name = c"berth";
    // SAFETY: getgrnam reads a NUL-terminated name; the result is read at
    // once (this runs before any other thread could call it).
    let g = unsafe { libc::getgrnam(name.as_ptr()) };
    if g.is_null() {
        None
    } else {
        // SAFETY: non-null: a valid group entry.
        Some(unsafe { (*g).gr_gid })
    }
}

fn bind_unix(path: &Path) -> Result<Listener, Error> {
    let err = |e: io::Error| Error::Listen {
        addr: format!("unix://{}", path.display()),
        err: e,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    // A stale socket (a server that died) is replaced; a live one is not.
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server is listening there",
        )));
    }
    let _ = std::fs::remove_file(path);
    // Made with 0660 from the start: no moment where others may connect.
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o117) };
    let l = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above, restored.
    unsafe { libc::umask(old) };
    let l = l.map_err(err)?;
    if let Some(gid) = berth_gid() {
        std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(err)?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    Ok(Listener::Unix(
        tokio::net::UnixListener::from_std(l).map_err(err)?,
        Some(path.to_path_buf()),
    ))
}

/// Binds every `-H` (or takes systemd's sockets).
pub fn bind(opts: &ServeOptions) -> Result<Vec<Listener>, Error> {
    let mut hosts = opts.hosts.clone();
    let activated = activated_fds();
    if hosts.is_empty() {
        hosts.push(if activated.is_empty() {
            format!("unix://{}", default_socket().display())
        } else {
            "fd://".into()
        });
    }
    let mut out = Vec::new();
    for h in &hosts {
        let bad = |reason: &str| Error::Host {
            host: h.clone(),
            reason: reason.into(),
        };
        if let Some(rest) = h.strip_prefix("fd://") {
            if activated.is_empty() {
                return Err(bad("no sockets were passed (LISTEN_FDS)"));
            }
            if rest.is_empty() {
                for fd in &activated {
                    out.push(from_fd(*fd)?);
                }
            } else {
                let n: RawFd = rest.parse().map_err(|_| bad("not a descriptor number"))?;
                if !activated.contains(&n) {
                    return Err(bad("that descriptor was not passed"));
                }
                out.push(from_fd(n)?);
            }
        } else if let Some(p) = h.strip_prefix("unix://") {
            let p = if p.is_empty() {
                default_socket()
            } else {
                PathBuf::from(p)
            };
            out.push(bind_unix(&p)?);
        } else if let Some(addr) = h.strip_prefix("tcp://") {
            let tls = opts.tls.as_ref().map(crate::tls::acceptor).transpose()?;
            if tls.is_none() && !opts.insecure_tcp {
                return Err(bad(
                    "plain TCP gives root to anyone who can reach the port: use TLS, or --insecure-tcp to force it",
                ));
            }
            let addr = if addr.contains(':') {
                addr.to_string()
            } else {
                format!("{addr}:{}", if tls.is_some() { 2376 } else { 2375 })
            };
            let l = std::net::TcpListener::bind(&addr).map_err(|e| Error::Listen {
                addr: h.clone(),
                err: e,
            })?;
            l.set_nonblocking(true).map_err(|e| Error::Listen {
                addr: h.clone(),
                err: e,
            })?;
            out.push(Listener::Tcp(
                tokio::net::TcpListener::from_std(l).map_err(|e| Error::Listen {
                    addr: h.clone(),
                    err: e,
                })?,
                tls,
            ));
        } else {
            return Err(bad("expected unix://PATH, tcp://ADDR:PORT or fd://"));
        }
    }
    Ok(out)
}
