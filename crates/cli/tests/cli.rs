//! The `berth` image commands end to end, on images built in the test from
//! Debian's /bin/busybox (busybox-static).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;
use common::{fails, ok};

/// A busybox rootfs tarball: /bin/busybox, sh and echo links, /etc/passwd.
fn busybox_tar(dir: &Path, extra: &str) -> PathBuf {
    let bb = Path::new("/bin/busybox");
    assert!(bb.is_file(), "needs Debian's busybox-static (/bin/busybox)");
    let mut b = tar::Builder::new(Vec::new());
    let mut dirh = tar::Header::new_gnu();
    dirh.set_entry_type(tar::EntryType::Directory);
    dirh.set_mode(0o755);
    dirh.set_size(0);
    for d in ["bin", "etc", "tmp"] {
        b.append_data(&mut dirh.clone(), d, std::io::empty())
            .unwrap();
    }
    let data = std::fs::read(bb).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "bin/busybox", &data[..]).unwrap();
    for l in ["sh", "echo", "cat"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, format!("bin/{l}"), "busybox")
            .unwrap();
    }
    let pw = format!("root:x:0:0:root:/root:/bin/sh\n{extra}");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(pw.len() as u64);
    b.append_data(&mut h, "etc/passwd", pw.as_bytes()).unwrap();
    let p = dir.join(format!("busybox{}.tar", extra.len()));
    std::fs::write(&p, b.into_inner().unwrap()).unwrap();
    p
}

fn lines(s: &str) -> Vec<Vec<String>> {
    s.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

#[test]
fn import_images_inspect_history_tag_rmi() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let tarball = busybox_tar(t.path(), "");
    let id = ok(
        &root,
        &[
            "import",
            "--change",
            "CMD [\"sh\"]",
            "-c",
            "ENV A=1",
            "-c",
            "WORKDIR /tmp",
            "-m",
            "busybox from debian",
            tarball.to_str().unwrap(),
            "busybox:1",
        ],
    );
    let id = id.trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let short = &id[7..19];

    let out = ok(&root, &["images"]);
    let l = lines(&out);
    assert_eq!(l[0], ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    assert_eq!(l[1][..3], ["busybox", "1", short]);
    assert!(l[1][3].ends_with("ago"), "{out}");
    assert!(l[1][4].ends_with("MB"), "{out}");
    assert!(
        out.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{out}"
    );
    assert_eq!(ok(&root, &["images", "-q"]), format!("{short}\n"));
    assert_eq!(
        ok(&root, &["images", "-q", "--no-trunc"]),
        format!("{id}\n")
    );
    let d = lines(&ok(&root, &["images", "--digests"]));
    assert_eq!(d[0][2], "DIGEST");
    assert_eq!(d[1][2], "<none>");

    // inspect
    let raw = ok(&root, &["image", "inspect", "busybox:1"]);
    assert!(
        raw.starts_with(&format!(
            "[\n    {{\n        \"Id\": \"{id}\",\n        \"RepoTags\""
        )),
        "{raw}"
    );
    let v: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v[0]["Id"], id);
    assert_eq!(v[0]["RepoTags"], serde_json::json!(["busybox:1"]));
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v[0]["Config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(v[0]["Config"]["WorkingDir"], "/tmp");
    assert_eq!(v[0]["Comment"], "busybox from debian");
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    let e = fails(&root, &["image", "inspect", "busybox:1", "nope"], 1);
    assert!(e.contains("No such image: nope"), "{e}");

    // history
    let h = lines(&ok(&root, &["history", "busybox:1"]));
    assert_eq!(h[0], ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
    assert_eq!(h[1][0], short);
    assert_eq!(h[1][2], "berth import");
    assert_eq!(h[1].last().unwrap(), "busybox from debian");

    // tag, filters
    ok(&root, &["tag", "busybox:1", "example.com/tools/bb"]);
    ok(&root, &["image", "tag", short, "busybox:latest"]);
    let l = lines(&ok(&root, &["images"]));
    let names: Vec<_> = l[1..]
        .iter()
        .map(|r| format!("{}:{}", r[0], r[1]))
        .collect();
    assert_eq!(
        names,
        ["busybox:1", "busybox:latest", "example.com/tools/bb:latest"]
    );
    let l = lines(&ok(&root, &["images", "--filter", "reference=busybox:*"]));
    assert_eq!(l.len(), 3);
    let l = lines(&ok(&root, &["images", "example.com/*/bb"]));
    assert_eq!(l.len(), 2);
    assert_eq!(
        lines(&ok(&root, &["images", "-f", "dangling=true"])).len(),
        1
    );
    fails(&root, &["tag", "busybox:1"], 125);
    fails(&root, &["tag", "nope", "x"], 1);

    // rmi: by id with several tags refused; by tag untags; last tag deletes.
    let e = fails(&root, &["rmi", short], 1);
    assert!(e.contains("multiple repositories"), "{e}");
    assert_eq!(ok(&root, &["rmi", "busybox"]), "Untagged: busybox:latest\n");
    assert_eq!(
        ok(&root, &["rmi", "example.com/tools/bb"]),
        "Untagged: example.com/tools/bb:latest\n"
    );
    let out = ok(&root, &["image", "rm", "busybox:1"]);
    assert!(
        out.starts_with(&format!("Untagged: busybox:1\nDeleted: {id}\n")),
        "{out}"
    );
    assert_eq!(ok(&root, &["images", "-q"]), "");
    let e = fails(&root, &["rmi", "busybox:1"], 1);
    assert!(e.contains("No such image"), "{e}");
    assert!(
        std::fs::read_dir(root.join("content/blobs/sha256"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn save_load_round_trips_and_prune() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let a = busybox_tar(t.path(), "");
    let b = busybox_tar(t.path(), "app:x:1000:1000::/home/app:/bin/sh\n");
    let ida = ok(&root, &["import", a.to_str().unwrap(), "bb:a"])
        .trim()
        .to_string();
    let idb = ok(&root, &["import", b.to_str().unwrap(), "bb:b"])
        .trim()
        .to_string();
    assert_ne!(ida, idb);
    for format in ["docker", "oci"] {
        let ar = t.path().join(format!("save-{format}.tar"));
        ok(
            &root,
            &[
                "save",
                "--format",
                format,
                "-o",
                ar.to_str().unwrap(),
                "bb:a",
                "bb:b",
            ],
        );
        let root2 = t.path().join(format!("root-{format}"));
        let out = ok(&root2, &["load", "-i", ar.to_str().unwrap()]);
        assert_eq!(out, "Loaded image: bb:a\nLoaded image: bb:b\n", "{format}");
        let mut ids: Vec<String> = ok(&root2, &["images", "-q", "--no-trunc"])
            .lines()
            .map(String::from)
            .collect();
        ids.sort();
        let mut want = vec![ida.clone(), idb.clone()];
        want.sort();
        assert_eq!(ids, want, "{format}");
        // And through stdin.
        let root3 = t.path().join(format!("root3-{format}"));
        let o = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["--root", root3.to_str().unwrap(), "load"])
            .stdin(std::fs::File::open(&ar).unwrap())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // BERTH_ROOT instead of --root.
        let o = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["images", "-q"])
            .env("BERTH_ROOT", &root3)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
    }
    // save to stdout (a pipe).
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["--root", root.to_str().unwrap(), "save", "bb:a"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(o.stdout.len() > 1_000_000);

    // A hostile archive: refused (exit 1), the store unchanged, no partial
    // -o file from a failed save either.
    let mut bld = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    {
        let old = h.as_old_mut();
        old.name[..9].copy_from_slice(b"../escape");
    }
    h.set_cksum();
    bld.append(&h, &b"x"[..]).unwrap();
    let evil = t.path().join("evil.tar");
    std::fs::write(&evil, bld.into_inner().unwrap()).unwrap();
    let before = ok(&root, &["images", "--no-trunc"]);
    let e = fails(&root, &["load", "-i", evil.to_str().unwrap()], 1);
    assert!(e.contains("../escape"), "{e}");
    assert_eq!(ok(&root, &["images", "--no-trunc"]), before);
    let out = t.path().join("never.tar");
    fails(&root, &["save", "-o", out.to_str().unwrap(), "nope"], 1);
    assert!(!out.exists());
    fails(&root, &["save", "--format", "zip", "bb:a"], 125);
    fails(&root, &["images", "--bogus"], 125);
    fails(&root, &["frobnicate"], 125);

    // prune: dangling only, then -a.
    ok(&root, &["tag", "bb:a", "bb:c"]);
    ok(&root, &["rmi", "bb:b"]); // last tag: deleted
    ok(&root, &["rmi", "bb:a"]); // bb:c left
    let out = ok(&root, &["image", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = ok(&root, &["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\nuntagged: bb:c\ndeleted: {ida}\n"
        )),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert_eq!(ok(&root, &["images", "-q"]), "");
}

#[test]
fn a_killed_load_leaves_a_usable_store() {
    use std::io::Write;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let a = busybox_tar(t.path(), "");
    let b = busybox_tar(t.path(), "app:x:1000:1000::/home/app:/bin/sh\n");
    let ida = ok(&root, &["import", a.to_str().unwrap(), "bb:a"])
        .trim()
        .to_string();
    let other = t.path().join("other");
    ok(&other, &["import", b.to_str().unwrap(), "bb:b"]);
    let ar = t.path().join("b.tar");
    ok(&other, &["save", "-o", ar.to_str().unwrap(), "bb:b"]);
    let data = std::fs::read(&ar).unwrap();

    // Feed half the archive, let it write, kill -9 while it waits for more.
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data[..data.len() / 2]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);

    // The store works: the old image is listed, whole; the load again
    // succeeds; the killed load's temp files and blobs are collected.
    assert_eq!(
        ok(&root, &["images", "-q", "--no-trunc"]),
        format!("{ida}\n")
    );
    let out = ok(&root, &["load", "-i", ar.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: bb:b\n");
    assert_eq!(lines(&ok(&root, &["images"])).len(), 3);
    ok(&root, &["image", "prune", "-f"]);
    assert!(
        std::fs::read_dir(root.join("content/ingest"))
            .unwrap()
            .next()
            .is_none()
    );
    ok(&root, &["rmi", "bb:a", "bb:b"]);
    assert!(
        std::fs::read_dir(root.join("content/blobs/sha256"))
            .unwrap()
            .next()
            .is_none()
    );
    let snaps: Vec<_> = std::fs::read_dir(root.join("snapshots")).unwrap().collect();
    assert!(snaps.is_empty(), "{snaps:?}");
}
