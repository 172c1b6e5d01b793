//! Loading and checking a bundle's `config.json` (runtime-spec config.md).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};

/// The spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.1";
/// The oldest spec version whose configs are accepted.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// A loaded bundle: its absolute path, the parsed config and the absolute
/// rootfs path.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

/// Reads `config.json` from `bundle` and checks what the runtime relies on.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let path = std::fs::canonicalize(bundle).at(bundle)?;
    let cfg_path = path.join("config.json");
    let data = std::fs::read(&cfg_path).at(&cfg_path)?;
    let spec = parse_spec(&data, &cfg_path)?;
    let root = spec.root().as_ref().ok_or_else(|| Error::Config {
        path: cfg_path.clone(),
        msg: "root: field is required".into(),
    })?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        path.join(root.path())
    };
    let meta = std::fs::metadata(&rootfs).map_err(|e| Error::Config {
        path: cfg_path.clone(),
        msg: format!("root.path {}: {e}", rootfs.display()),
    })?;
    if !meta.is_dir() {
        return Err(Error::Config {
            path: cfg_path,
            msg: format!("root.path {} is not a directory", rootfs.display()),
        });
    }
    let rootfs = std::fs::canonicalize(&rootfs).at(&rootfs)?;
    Ok(Bundle { path, spec, rootfs })
}

/// Parses and validates a config. `origin` names the file in errors.
pub fn parse_spec(data: &[u8], origin: &Path) -> Result<Spec> {
    let cfg_err = |msg: String| Error::Config {
        path: origin.to_path_buf(),
        msg,
    };
    let spec: Spec = serde_json::from_slice(data).map_err(|e| cfg_err(e.to_string()))?;
    check_version(spec.version()).map_err(cfg_err)?;
    validate(&spec).map_err(cfg_err)?;
    Ok(spec)
}

/// Accepts any 1.x version: configs are compatible within a major version,
/// and containerd/podman/docker write versions from 1.0.0 to 1.2.x.
pub fn check_version(v: &str) -> std::result::Result<(), String> {
    if v.is_empty() {
        return Err("ociVersion: field is required".into());
    }
    let core = v.split(['-', '+']).next().unwrap_or(v);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.parse::<u64>().is_err()) {
        return Err(format!("ociVersion {v:?} is not a semantic version"));
    }
    if parts[0] != "1" {
        return Err(format!(
            "ociVersion {v:?} is not supported (this runtime implements {OCI_VERSION_MIN} to {OCI_VERSION})"
        ));
    }
    Ok(())
}

/// Refused at `create`, as runc does, rather than failing at `start`: a
/// limit listed twice, or one whose soft value exceeds its hard value.
fn validate_rlimits(p: &oci_spec::runtime::Process) -> std::result::Result<(), String> {
    let mut seen = HashSet::new();
    for r in p.rlimits().iter().flatten() {
        if !seen.insert(r.typ().to_string()) {
            return Err(format!("process.rlimits: {} is listed twice", r.typ()));
        }
        if r.soft() > r.hard() {
            return Err(format!(
                "process.rlimits: {} soft limit {} is greater than its hard limit {}",
                r.typ(),
                r.soft(),
                r.hard()
            ));
        }
    }
    Ok(())
}

/// Every capability of the effective, permitted, inheritable and ambient
/// sets must be in the bounding set (when one is given): the kernel would
/// refuse the sets after the bounding set is dropped.
fn validate_capabilities(p: &oci_spec::runtime::Process) -> std::result::Result<(), String> {
    let Some(c) = p.capabilities() else {
        return Ok(());
    };
    let Some(bounding) = c.bounding() else {
        return Ok(());
    };
    for (name, set) in [
        ("effective", c.effective()),
        ("permitted", c.permitted()),
        ("inheritable", c.inheritable()),
        ("ambient", c.ambient()),
    ] {
        if let Some(cap) = set.iter().flatten().find(|cap| !bounding.contains(cap)) {
            return Err(format!(
                "process.capabilities.{name}: CAP_{cap} is not in the bounding set"
            ));
        }
    }
    Ok(())
}

fn validate(spec: &Spec) -> std::result::Result<(), String> {
    if let Some(p) = spec.process() {
        if !p.cwd().is_absolute() {
            return Err(format!(
                "process.cwd {:?} must be an absolute path",
                p.cwd().display()
            ));
        }
        if p.args().as_ref().is_none_or(|a| a.is_empty()) && p.command_line().is_none() {
            return Err("process.args must not be empty".into());
        }
        for e in p.env().iter().flatten() {
            if !e.contains('=') {
                return Err(format!("process.env entry {e:?} is not KEY=VALUE"));
            }
        }
        validate_rlimits(p)?;
        validate_capabilities(p)?;
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let mut seen = HashSet::new();
    let nss = linux.namespaces().as_deref().unwrap_or_default();
    for ns in nss {
        if !seen.insert(ns.typ()) {
            return Err(format!(
                "linux.namespaces: {} is listed twice",
                ns_name(ns.typ())
            ));
        }
    }
    let has_userns = seen.contains(&LinuxNamespaceType::User);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if maps && !has_userns {
        return Err("linux.uidMappings/gidMappings are set but there is no user namespace".into());
    }
    let new_userns = nss
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if new_userns && !maps {
        return Err("a new user namespace needs linux.uidMappings and gidMappings".into());
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
        && !nss
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none())
    {
        return Err("linux.timeOffsets needs a new time namespace".into());
    }
    if let Some(prop) = linux.rootfs_propagation() {
        match prop.as_str() {
            "" | "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared"
            | "unbindable" | "runbindable" => {}
            other => return Err(format!("linux.rootfsPropagation {other:?} is not valid")),
        }
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        && !seen.contains(&LinuxNamespaceType::Uts)
    {
        return Err("hostname is set but there is no uts namespace".into());
    }
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        validate_sysctl(key, nss)?;
    }
    Ok(())
}

/// The namespace that holds the sysctl `key` (`a.b.c` or `a/b/c`), as runc knows them:
/// the System V IPC limits and `fs.mqueue.*` (IPC), `net.*` (network), the host and domain
/// names (UTS); None for the rest, which are the host's whatever the namespaces.
pub fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let k = key.replace('/', ".");
    if IPC.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if k.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if k == "kernel.domainname" || k == "kernel.hostname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// A sysctl is written by the runtime from inside the container's namespaces; one that no
/// namespace of the container's own holds is the host's (`kernel.core_pattern`: a core-dump
/// handler run as the host's root, the CVE-2022-0811 escape). Allowed, as runc allows them:
/// the IPC ones with a new IPC namespace, `net.*` in a network namespace that is not the
/// host's, `kernel.domainname` with a UTS namespace.
fn validate_sysctl(
    key: &str,
    nss: &[oci_spec::runtime::LinuxNamespace],
) -> std::result::Result<(), String> {
    let ns = |t: LinuxNamespaceType| nss.iter().find(|n| n.typ() == t);
    let err = |why: &str| Err(format!("linux.sysctl: {key:?} {why}"));
    match sysctl_namespace(key) {
        Some(LinuxNamespaceType::Ipc) => match ns(LinuxNamespaceType::Ipc) {
            Some(_) => Ok(()),
            None => err("is not allowed in the host's IPC namespace"),
        },
        Some(LinuxNamespaceType::Network) => match ns(LinuxNamespaceType::Network) {
            Some(n) if n.path().as_ref().is_some_and(|p| is_host_netns(p)) => {
                err("is not allowed in the host's network namespace")
            }
            Some(_) => Ok(()),
            None => err("is not allowed in the host's network namespace"),
        },
        Some(LinuxNamespaceType::Uts) if ns(LinuxNamespaceType::Uts).is_some() => {
            if key.replace('/', ".") == "kernel.hostname" {
                err("is set with the hostname field, not as a sysctl")
            } else {
                Ok(())
            }
        }
        _ => err("is not in a separate kernel namespace of the container's"),
    }
}

/// Whether `path` is the network namespace of the host's init (pid 1).
fn is_host_netns(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), std::fs::metadata("/proc/1/ns/net")) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// The name of a namespace type as /proc/PID/ns names it.
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The CLONE_NEW* flag of a namespace type.
pub fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// Every namespace type, in the order they are joined (user first, so the
/// others can be entered with its capabilities; mount late, as it changes
/// how paths resolve).
pub const NS_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Mount,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(check_version("1.0.0").is_ok());
        assert!(check_version("1.2.1").is_ok());
        assert!(check_version("1.0.2-dev").is_ok());
        assert!(check_version("2.0.0").is_err());
        assert!(check_version("1.0").is_err());
        assert!(check_version("").is_err());
    }

    #[test]
    fn rejects_bad_json_with_position() {
        let e = parse_spec(b"{\"ociVersion\": ", Path::new("/b/config.json")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/b/config.json"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn rejects_relative_cwd_and_dup_ns() {
        let cfg = br#"{"ociVersion":"1.0.0","root":{"path":"r"},
            "process":{"cwd":"rel","args":["sh"],"user":{"uid":0,"gid":0}}}"#;
        let e = parse_spec(cfg, Path::new("c")).unwrap_err().to_string();
        assert!(e.contains("process.cwd"), "{e}");
        let cfg = br#"{"ociVersion":"1.0.0","root":{"path":"r"},
            "linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#;
        let e = parse_spec(cfg, Path::new("c")).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let cfg = br#"{"ociVersion":"1.2.0","root":{"path":"r"},"futureField":{"x":1},
            "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},"alsoNew":true}}"#;
        parse_spec(cfg, Path::new("c")).unwrap();
    }

    #[test]
    fn unknown_capability_is_an_error() {
        let cfg = br#"{"ociVersion":"1.2.0","root":{"path":"r"},
            "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},
            "capabilities":{"bounding":["CAP_NOPE"]}}}"#;
        let e = parse_spec(cfg, Path::new("c")).unwrap_err().to_string();
        assert!(e.contains("CAP_NOPE"), "{e}");
    }
}
