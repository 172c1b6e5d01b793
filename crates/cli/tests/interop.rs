//! Round trips with Debian's skopeo and umoci (installed by scripts/test.sh):
//! what `berth save` writes, they read; what `skopeo copy` writes, berth
//! loads with the same digests.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn berth(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("--root").arg(root);
    c
}

/// A one-layer busybox image in `root`, tagged bb:1; returns its id.
fn busybox_image(dir: &Path, root: &Path) -> String {
    let mut b = tar::Builder::new(Vec::new());
    let mut d = tar::Header::new_gnu();
    d.set_entry_type(tar::EntryType::Directory);
    d.set_mode(0o755);
    d.set_size(0);
    b.append_data(&mut d.clone(), "bin", std::io::empty())
        .unwrap();
    b.append_data(&mut d.clone(), "etc", std::io::empty())
        .unwrap();
    let data = std::fs::read("/bin/busybox").expect("busybox-static");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "bin/busybox", &data[..]).unwrap();
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    b.append_link(&mut l, "bin/sh", "busybox").unwrap();
    let tarball = dir.join("rootfs.tar");
    std::fs::write(&tarball, b.into_inner().unwrap()).unwrap();
    run(berth(root)
        .args(["import", "-c", "CMD [\"sh\"]", "-c", "ENV A=1"])
        .arg(&tarball)
        .arg("bb:1"))
    .trim()
    .to_string()
}

fn inspect(root: &Path, name: &str) -> Value {
    let v: Value =
        serde_json::from_str(&run(berth(root).args(["image", "inspect", name]))).unwrap();
    v[0].clone()
}

#[test]
fn skopeo_and_umoci_read_what_berth_saves() {
    if !have("skopeo") || !have("umoci") {
        eprintln!("SKIPPED: skopeo and umoci are not installed (scripts/test.sh installs them)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let id = busybox_image(t.path(), &root);
    let manifest = inspect(&root, "bb:1")["Descriptor"]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // OCI archive → skopeo inspect: same manifest digest, same config.
    let oci = t.path().join("oci.tar");
    run(berth(&root)
        .args(["save", "--format", "oci", "-o"])
        .arg(&oci)
        .arg("bb:1"));
    let v: Value = serde_json::from_str(&run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", oci.display()))))
    .unwrap();
    assert_eq!(v["Digest"], manifest);
    let cfg: Value = serde_json::from_str(&run(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci-archive:{}", oci.display()))))
    .unwrap();
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["sh"]));
    let raw_cfg = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--config"])
        .arg(format!("oci-archive:{}", oci.display())));
    assert_eq!(format!("sha256:{}", sha256_hex(raw_cfg.as_bytes())), id);

    // umoci: the layout (unpacked from the tar) unpacks to a bundle.
    let layout = t.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-xf")
        .arg(&oci));
    assert_eq!(
        run(Command::new("umoci").args(["ls", "--layout"]).arg(&layout)).trim(),
        "bb:1"
    );
    let bundle = t.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:bb:1", layout.display()))
        .arg(&bundle));
    assert_eq!(
        std::fs::read(bundle.join("rootfs/bin/busybox")).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        std::fs::read_link(bundle.join("rootfs/bin/sh")).unwrap(),
        Path::new("busybox")
    );

    // docker archive → skopeo reads it (the config, hence the id, is kept).
    let dar = t.path().join("docker.tar");
    run(berth(&root).args(["save", "-o"]).arg(&dar).arg("bb:1"));
    let raw_cfg = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--config"])
        .arg(format!("docker-archive:{}", dar.display())));
    assert_eq!(format!("sha256:{}", sha256_hex(raw_cfg.as_bytes())), id);
}

#[test]
fn berth_loads_what_skopeo_copies() {
    if !have("skopeo") {
        eprintln!("SKIPPED: skopeo is not installed (scripts/test.sh installs it)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let id = busybox_image(t.path(), &root);
    let oci = t.path().join("oci.tar");
    run(berth(&root)
        .args(["save", "--format", "oci", "-o"])
        .arg(&oci)
        .arg("bb:1"));
    let src = format!("oci-archive:{}", oci.display());

    // skopeo → docker-archive → berth: the same image id.
    let dar = t.path().join("sk-docker.tar");
    run(Command::new("skopeo")
        .args(["copy", "-q", &src])
        .arg(format!("docker-archive:{}:sk/bb:d", dar.display())));
    let r1 = t.path().join("r1");
    assert_eq!(
        run(berth(&r1).arg("load").arg("-i").arg(&dar)),
        "Loaded image: sk/bb:d\n"
    );
    assert_eq!(inspect(&r1, "sk/bb:d")["Id"], id);

    // skopeo → oci-archive (it writes its own manifest) → berth: the same
    // image id and the manifest digest skopeo reports.
    let sko = t.path().join("sk-oci.tar");
    run(Command::new("skopeo")
        .args(["copy", "-q", &src])
        .arg(format!("oci-archive:{}:sk/bb:o", sko.display())));
    let sk: Value = serde_json::from_str(&run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", sko.display()))))
    .unwrap();
    let r2 = t.path().join("r2");
    assert_eq!(
        run(berth(&r2).arg("load").arg("-i").arg(&sko)),
        "Loaded image: sk/bb:o\n"
    );
    let v = inspect(&r2, "sk/bb:o");
    assert_eq!(v["Id"], id);
    assert_eq!(v["Descriptor"]["digest"], sk["Digest"]);
    // And back out: berth's OCI save of it keeps skopeo's manifest digest.
    let again = t.path().join("again.tar");
    run(berth(&r2)
        .args(["save", "--format", "oci", "-o"])
        .arg(&again)
        .arg("sk/bb:o"));
    let v: Value = serde_json::from_str(&run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", again.display()))))
    .unwrap();
    assert_eq!(v["Digest"], sk["Digest"]);
}

fn sha256_hex(data: &[u8]) -> String {
    berth_image::Digest::sha256(data).hex().to_string()
}
