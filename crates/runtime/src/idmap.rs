//! Idmapped mounts (config.md: a bind mount with the `idmap` or `ridmap`
//! option, and optionally its own `uidMappings`/`gidMappings`).
//!
//! Giving a mount an idmapping (`mount_setattr(MOUNT_ATTR_IDMAP)`) needs
//! CAP_SYS_ADMIN over the filesystem, which init, root only in the
//! container's user namespace, does not have. So the runtime makes each
//! idmapped mount itself, once init's user namespace has its maps: a
//! detached copy of the source (`open_tree(OPEN_TREE_CLONE)`), idmapped
//! with the mount's own mappings (a user namespace made for them) or
//! else the container's; the descriptors go to init over the setup
//! socket before `Go`, and init attaches each one in its turn among the
//! mounts with `move_mount` onto the target's descriptor.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, Mount};

use crate::error::{Context, Error, Result};
use crate::mounts::MountOptions;
use crate::namespaces;
use crate::sys;

/// MOUNT_ATTR_IDMAP of mount_setattr(2).
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// The indexes (in `mounts`) of the idmapped mounts.
pub fn idmapped(mounts: &[Mount]) -> Vec<usize> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| MountOptions::parse(m.options().as_deref().unwrap_or_default()).idmap)
        .map(|(i, _)| i)
        .collect()
}

/// A user namespace with these maps, held by a descriptor (the process
/// that made it is gone).
fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (rd, wr) = sys::pipe().what(|| "pipe".into())?;
    let (pid, _) = sys::clone3(&sys::CloneArgs {
        flags: libc::CLONE_NEWUSER as u64,
        cgroup: None,
        pidfd: false,
    })
    .what(|| "creating a user namespace for an idmapped mount".into())?;
    if pid == 0 {
        drop(wr);
        // Wait until the runtime has what it needs (the pipe closes).
        let mut f = std::fs::File::from(rd);
        let _ = f.read(&mut [0u8; 1]);
        sys::exit_now(0);
    }
    drop(rd);
    let r = (|| {
        let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
        namespaces::write_id_maps(pid, uid, gid, false)?;
        let p = format!("/proc/{pid}/ns/user");
        sys::open(Path::new(&p), libc::O_RDONLY, 0).at(&p)
    })();
    drop(wr);
    let _ = sys::waitpid(pid, false);
    r
}

/// Makes the idmapped trees of `mounts` (indexes from [`idmapped`]) for a
/// container whose init is `init_pid`.
pub fn make_trees(
    mounts: &[Mount],
    indexes: &[usize],
    bundle: &Path,
    init_pid: i32,
    container_userns: bool,
) -> Result<Vec<OwnedFd>> {
    let mut out = Vec::with_capacity(indexes.len());
    let mut container_ns: Option<OwnedFd> = None;
    for &i in indexes {
        let m = &mounts[i];
        let dest = m.destination().display().to_string();
        let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
        let src: PathBuf = match m.source() {
            Some(s) if s.is_absolute() => s.clone(),
            Some(s) => bundle.join(s),
            None => {
                return Err(Error::Spec(format!(
                    "mounts: {dest}: an idmapped mount needs a source"
                )));
            }
        };
        // rbind clones the submounts; ridmap idmaps them too.
        let tree = sys::open_tree_clone(&src, opts.recursive)
            .what(|| format!("mounts: {dest}: cloning {}", src.display()))?;
        let own = match (m.uid_mappings(), m.gid_mappings()) {
            (Some(u), Some(g)) if !u.is_empty() && !g.is_empty() => Some(userns_with(u, g)?),
            (None, None) => None,
            _ => {
                return Err(Error::Spec(format!(
                    "mounts: {dest}: uidMappings and gidMappings go together"
                )));
            }
        };
        let userns = match &own {
            Some(fd) => fd.as_fd(),
            None => {
                if !container_userns {
                    return Err(Error::Spec(format!(
                        "mounts: {dest}: an idmapped mount without its own uidMappings/gidMappings needs a user namespace"
                    )));
                }
                if container_ns.is_none() {
                    let p = format!("/proc/{init_pid}/ns/user");
                    container_ns = Some(sys::open(Path::new(&p), libc::O_RDONLY, 0).at(&p)?);
                }
                container_ns.as_ref().map(AsFd::as_fd).ok_or_else(|| {
                    Error::Container("the container's user namespace is gone".into())
                })?
            }
        };
        sys::mount_setattr(
            tree.as_fd(),
            MOUNT_ATTR_IDMAP,
            0,
            Some(userns),
            opts.idmap_recursive,
        )
        .what(|| format!("mounts: {dest}: idmapping {}", src.display()))?;
        out.push(tree);
    }
    Ok(out)
}
