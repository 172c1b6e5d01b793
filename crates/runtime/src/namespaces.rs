//! Namespace helpers: opening a namespace file and checking its type,
//! user namespace id maps, and time namespace offsets.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, LinuxTimeOffset};

use crate::error::{Context, Error, Result};
use crate::spec::{ns_flag, ns_name};
use crate::sys;

/// ioctl(NS_GET_NSTYPE).
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Opens a namespace file and checks it is a namespace of type `t`.
pub fn open_ns(path: &Path, t: LinuxNamespaceType) -> Result<OwnedFd> {
    let fd = sys::open(path, libc::O_RDONLY, 0).map_err(|e| {
        Error::Spec(format!(
            "linux.namespaces: {} namespace path {}: {e}",
            ns_name(t),
            path.display()
        ))
    })?;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the CLONE_NEW*
    // type of a namespace fd (ENOTTY for anything else).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    if r < 0 {
        return Err(Error::Spec(format!(
            "linux.namespaces: {} is not a namespace file",
            path.display()
        )));
    }
    if r != ns_flag(t) {
        let actual = crate::spec::NS_ORDER
            .iter()
            .find(|x| ns_flag(**x) == r)
            .map_or("unknown", |x| ns_name(*x));
        return Err(Error::Spec(format!(
            "linux.namespaces: {} is a {actual} namespace, not {}",
            path.display(),
            ns_name(t)
        )));
    }
    Ok(fd)
}

/// (device, inode) of a namespace file, to compare namespaces.
pub fn ns_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Joins the namespace behind `fd`.
pub fn join(fd: &OwnedFd, t: LinuxNamespaceType) -> Result<()> {
    sys::setns(fd.as_fd(), ns_flag(t)).what(|| format!("joining the {} namespace", ns_name(t)))
}

fn map_lines(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes uid/gid maps for `pid`'s new user namespace. As root the files
/// are written directly; otherwise through newuidmap/newgidmap unless the
/// map is just our own id.
pub fn write_id_maps(
    pid: i32,
    uid_maps: &[LinuxIdMapping],
    gid_maps: &[LinuxIdMapping],
    rootless: bool,
) -> Result<()> {
    let proc = format!("/proc/{pid}");
    let own_only = |maps: &[LinuxIdMapping], id: u32| {
        maps.len() == 1 && maps[0].size() == 1 && maps[0].host_id() == id
    };
    for (file, maps, helper, own) in [
        ("uid_map", uid_maps, "newuidmap", sys::geteuid()),
        ("gid_map", gid_maps, "newgidmap", sys::getegid()),
    ] {
        if maps.is_empty() {
            continue;
        }
        let path = format!("{proc}/{file}");
        if !rootless || own_only(maps, own) {
            if rootless && file == "gid_map" {
                // An unprivileged writer must deny setgroups before a gid map of its own
                // gid. newgidmap, privileged, leaves setgroups allowed: the container's
                // root may then set supplementary groups (`additionalGids`, `su`).
                let _ = std::fs::write(format!("{proc}/setgroups"), "deny");
            }
            std::fs::write(&path, map_lines(maps)).at(&path)?;
            continue;
        }
        let mut args = vec![pid.to_string()];
        for m in maps {
            args.extend([
                m.container_id().to_string(),
                m.host_id().to_string(),
                m.size().to_string(),
            ]);
        }
        let st = std::process::Command::new(helper)
            .args(&args)
            .status()
            .what(|| format!("running {helper}"))?;
        if !st.success() {
            return Err(Error::Container(format!("{helper} {args:?} failed: {st}")));
        }
    }
    Ok(())
}

/// What `timens_offsets` takes for linux.timeOffsets ("monotonic S N"
/// lines); an unknown clock is an error.
pub fn timens_offsets_text(
    offsets: Option<&std::collections::HashMap<String, LinuxTimeOffset>>,
) -> Result<String> {
    let mut s = String::new();
    for (clock, off) in offsets.into_iter().flatten() {
        let name = match clock.as_str() {
            "monotonic" | "boottime" => clock.as_str(),
            other => {
                return Err(Error::Spec(format!(
                    "linux.timeOffsets: unknown clock {other:?} (monotonic or boottime)"
                )));
            }
        };
        s.push_str(&format!(
            "{name} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    Ok(s)
}

/// Init's half of a new time namespace, step 1: the namespace for its
/// children, owned by init's user namespace. Its offsets are written by the
/// runtime (`/proc/PID/timens_offsets`, with the runtime's privileges over
/// that user namespace: init itself, non-dumpable, may not open its own
/// /proc files when its uid is not the host's root) before any process is
/// in it; then [`enter_time_ns_for_children`].
pub fn unshare_time_ns() -> Result<()> {
    sys::unshare(libc::CLONE_NEWTIME).what(|| "creating a time namespace".into())
}

/// Step 2: init enters the time namespace it made for its children.
pub fn enter_time_ns_for_children() -> Result<()> {
    let fd = sys::open(
        Path::new("/proc/self/ns/time_for_children"),
        libc::O_RDONLY,
        0,
    )
    .at("/proc/self/ns/time_for_children")?;
    sys::setns(fd.as_fd(), libc::CLONE_NEWTIME).what(|| "entering the time namespace".into())
}
