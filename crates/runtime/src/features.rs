//! The `features` document of runtime-spec features.md.

use serde_json::{Value, json};

use crate::{hooks, mounts, seccomp, spec};

/// What this runtime supports, as JSON.
pub fn features() -> Value {
    let caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let mut caps = caps;
    caps.sort();
    json!({
        "ociVersionMin": spec::OCI_VERSION_MIN,
        "ociVersionMax": spec::OCI_VERSION,
        "hooks": hooks::ALL,
        "mountOptions": mounts::KNOWN_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
                "rdma": false
            },
            "seccomp": {
                "enabled": true,
                "actions": seccomp::ACTIONS,
                "operators": seccomp::OPERATORS,
                "archs": [
                    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32",
                    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"
                ],
                "knownFlags": seccomp::FLAGS,
                "supportedFlags": seccomp::FLAGS
            },
            "apparmor": { "enabled": crate::lsm::apparmor_enabled() },
            "selinux": { "enabled": crate::lsm::selinux_enabled() },
            "intelRdt": { "enabled": false },
            "netDevices": { "enabled": true },
            "mountExtensions": { "idmap": { "enabled": true } }
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features": "berth-oci",
            "io.github.berth.version": env!("CARGO_PKG_VERSION")
        }
    })
}
