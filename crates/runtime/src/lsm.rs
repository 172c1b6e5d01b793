//! Linux security modules: AppArmor profiles and SELinux labels for the
//! container process (config.md "apparmorProfile", "selinuxLabel").
//!
//! A label is applied when the host runs the LSM; asking for one on a host
//! without it is an error, not a silent downgrade of the container's
//! confinement.

use std::path::Path;

use oci_spec::runtime::Process;

use crate::error::{Error, Result};

/// Whether AppArmor is enabled on this host.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
        && Path::new("/sys/kernel/security/apparmor").exists()
}

/// Whether SELinux is enabled (selinuxfs mounted).
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Refuses a process that asks for an LSM the host does not have.
pub fn check(process: &Process) -> Result<()> {
    if let Some(p) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
        && !apparmor_enabled()
    {
        return Err(Error::Spec(format!(
            "process.apparmorProfile {p:?}: AppArmor is not enabled on this host"
        )));
    }
    if let Some(l) = process.selinux_label().as_deref().filter(|l| !l.is_empty())
        && !selinux_enabled()
    {
        return Err(Error::Spec(format!(
            "process.selinuxLabel {l:?}: SELinux is not enabled on this host"
        )));
    }
    Ok(())
}

/// Sets the labels the next execve(2) switches to.
pub fn set_exec_labels(process: &Process) -> Result<()> {
    check(process)?;
    if let Some(p) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let data = format!("exec {p}");
        crate::fs::write_proc("thread-self/attr/apparmor/exec", data.as_bytes())
            .or_else(|_| crate::fs::write_proc("thread-self/attr/exec", data.as_bytes()))
            .map_err(|e| Error::Container(format!("applying AppArmor profile {p:?}: {e}")))?;
    }
    if let Some(l) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        crate::fs::write_proc("thread-self/attr/exec", l.as_bytes())
            .map_err(|e| Error::Container(format!("applying SELinux label {l:?}: {e}")))?;
    }
    Ok(())
}
