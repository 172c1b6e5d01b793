//! Container filesystems: overlayfs for real (as root) and the copy
//! fallback, over an image built in the test from Debian's busybox-static.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_image::manifest::media_types as mt;
use berth_image::{
    ApplyOptions, ContainerRootfs, ContentStore, Digest, Platform, RootfsKind, RootfsMode,
    Snapshotter, WhiteoutFormat, unpack,
};
use common::{Layer, Opts, gzip, is_root, snapshot_tree, zstd};

/// Removes (and so unmounts) the filesystem however the test ends.
struct Guard(Option<ContainerRootfs>);

impl Guard {
    fn get(&self) -> &ContainerRootfs {
        self.0.as_ref().expect("rootfs")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            let dir = r.dir().to_path_buf();
            if let Err(e) = r.remove() {
                eprintln!("cleanup of {}: {e}", dir.display());
            }
        }
    }
}

fn overlay_usable() -> bool {
    if !is_root() || !berth_image::rootfs::overlay_supported() {
        eprintln!("skipped: needs root and overlayfs");
        return false;
    }
    true
}

fn is_mount_point(p: &Path) -> bool {
    let me = fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(me.to_str().unwrap()))
}

struct Image {
    store: ContentStore,
    snapshots: Snapshotter,
    index: Digest,
    diff_ids: Vec<Digest>,
}

const BUSYBOX: &str = "/bin/busybox";

/// A 2-layer image: busybox with a few applets, /etc, docs; then a layer
/// that deletes /etc/hostname, adds /etc/motd, and replaces the docs
/// directory (opaque). Docker schema 2 manifest (gzip layer, zstd layer)
/// behind an OCI index with a second, foreign platform.
fn busybox_image(root: &Path) -> Image {
    let bb = fs::read(BUSYBOX).expect("busybox-static is installed");
    let mut l1 = Layer::new();
    l1.dir("bin", 0o755)
        .file("bin/busybox", &bb, 0o755)
        .symlink("bin/sh", "busybox")
        .symlink("bin/ls", "busybox")
        .symlink("bin/cat", "busybox")
        .hardlink("bin/busybox.hard", "bin/busybox")
        .dir("etc", 0o755)
        .file("etc/hostname", b"base\n", 0o644)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .dir_with(
            "tmp",
            &Opts {
                mode: 0o1777,
                ..Opts::default()
            },
        )
        .file("usr/share/doc/old.txt", b"old docs", 0o644)
        .file_with(
            "home/u/file",
            b"u",
            &Opts {
                mode: 0o600,
                uid: 1000,
                gid: 1000,
                mtime: 5,
            },
        );
    let l1 = l1.finish();
    let mut l2 = Layer::new();
    l2.dir("etc", 0o755)
        .file("etc/.wh.hostname", b"", 0o644)
        .file("etc/motd", b"welcome\n", 0o644)
        .dir("usr/share/doc", 0o755)
        .file("usr/share/doc/.wh..wh..opq", b"", 0o644)
        .file("usr/share/doc/new.txt", b"new docs", 0o644);
    let l2 = l2.finish();
    let diff_ids = vec![Digest::sha256(&l1), Digest::sha256(&l2)];

    let store = ContentStore::open(root.join("content")).unwrap();
    let snapshots = Snapshotter::open(root.join("snapshots")).unwrap();
    let b1 = store.write_blob_bytes(&gzip(&l1), None).unwrap();
    let b2 = store.write_blob_bytes(&zstd(&l2), None).unwrap();
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Cmd":["sh"],"Env":["PATH=/bin"]}},"rootfs":{{"type":"layers","diff_ids":["{}","{}"]}},"history":[{{"created_by":"l1"}},{{"created_by":"l2"}}]}}"#,
        diff_ids[0],
        diff_ids[1],
        arch = Platform::host().architecture
    );
    let c = store.write_blob_bytes(config.as_bytes(), None).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":{},"digest":"{}"}},"layers":[{{"mediaType":"{}","size":{},"digest":"{}"}},{{"mediaType":"{}","size":{},"digest":"{}"}}]}}"#,
        mt::DOCKER_MANIFEST,
        mt::DOCKER_CONFIG,
        c.size,
        c.digest,
        mt::DOCKER_LAYER_GZIP,
        b1.size,
        b1.digest,
        mt::OCI_LAYER_ZSTD,
        b2.size,
        b2.digest
    );
    let m = store.write_blob_bytes(manifest.as_bytes(), None).unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[
            {{"mediaType":"{}","size":{},"digest":"{}","platform":{{"os":"linux","architecture":"s390x"}}}},
            {{"mediaType":"{}","size":{},"digest":"{}","platform":{{"os":"linux","architecture":"{}"}}}}]}}"#,
        mt::OCI_INDEX,
        mt::DOCKER_MANIFEST,
        m.size,
        Digest::sha256(b"not here"),
        mt::DOCKER_MANIFEST,
        m.size,
        m.digest,
        Platform::host().architecture
    );
    let i = store.write_blob_bytes(index.as_bytes(), None).unwrap();
    Image {
        store,
        snapshots,
        index: i.digest,
        diff_ids,
    }
}

/// The merged view the busybox image must show, whichever way it is made.
fn check_busybox_view(root: &Path) {
    let bb = fs::read(BUSYBOX).unwrap();
    assert_eq!(fs::read(root.join("bin/busybox")).unwrap(), bb);
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert!(
        !root.join("etc/hostname").exists(),
        "whiteout did not hide etc/hostname"
    );
    assert!(fs::symlink_metadata(root.join("etc/hostname")).is_err());
    assert_eq!(fs::read(root.join("etc/motd")).unwrap(), b"welcome\n");
    assert!(root.join("etc/passwd").is_file());
    let docs: Vec<_> = fs::read_dir(root.join("usr/share/doc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(docs, ["new.txt"], "opaque directory shows lower content");
    assert_eq!(
        fs::metadata(root.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    let h = fs::metadata(root.join("home/u/file")).unwrap();
    assert_eq!((h.uid(), h.gid(), h.mode() & 0o777), (1000, 1000, 0o600));
    let a = fs::metadata(root.join("bin/busybox")).unwrap();
    let b = fs::metadata(root.join("bin/busybox.hard")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hardlink within a layer");
}

/// Runs busybox inside the tree (chroot) when the tool is there.
fn run_in(root: &Path, script: &str) -> Option<String> {
    let out = Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", script])
        .env_clear()
        .env("PATH", "/bin")
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn busybox_image_on_overlay() {
    if !overlay_usable() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let opts = ApplyOptions::default();
    let img = busybox_image(t.path());
    let u = unpack(
        &img.store,
        &img.snapshots,
        &img.index,
        &Platform::host(),
        &opts,
    )
    .unwrap();
    assert_eq!(u.config.diff_ids(), img.diff_ids.as_slice());
    assert_eq!(u.chain_ids, berth_image::chain_ids(&img.diff_ids));
    assert_eq!(u.unpacked.len(), 2);
    // A second unpack finds everything there.
    let again = unpack(
        &img.store,
        &img.snapshots,
        &img.index,
        &Platform::host(),
        &opts,
    )
    .unwrap();
    assert!(again.unpacked.is_empty());

    let dir = t.path().join("containers/c1");
    let r = Guard(Some(
        ContainerRootfs::prepare(&img.snapshots, &u.chain_ids, &dir, RootfsMode::Overlay).unwrap(),
    ));
    let root = r.get().path();
    assert_eq!(r.get().kind(), RootfsKind::Overlay);
    assert!(r.get().is_mounted());
    assert!(is_mount_point(&root));
    check_busybox_view(&root);
    if let Some(out) = run_in(&root, "ls /etc; cat /etc/motd; echo hi > /tmp/x") {
        assert_eq!(out, "motd\npasswd\nwelcome\n");
    }
    // Deleting a lower file makes a whiteout in the upper dir.
    fs::remove_file(root.join("etc/passwd")).unwrap();
    // Writes land in the container's upper dir, never in the snapshots.
    fs::write(root.join("etc/new"), b"n").unwrap();
    assert!(dir.join("upper/etc/new").is_file());
    let top = img.snapshots.fs_path(&u.chain_ids[1]);
    let bottom = img.snapshots.fs_path(&u.chain_ids[0]);
    assert!(!top.join("etc/new").exists());
    assert!(bottom.join("etc/passwd").is_file());

    // A second container shares the snapshots and sees none of that.
    let r2 = Guard(Some(
        ContainerRootfs::prepare(
            &img.snapshots,
            &u.chain_ids,
            &t.path().join("containers/c2"),
            RootfsMode::Auto,
        )
        .unwrap(),
    ));
    assert_eq!(r2.get().kind(), RootfsKind::Overlay);
    assert!(!r2.get().path().join("etc/new").exists());
    assert!(r2.get().path().join("etc/passwd").exists());

    // Unmount and mount again (as after a reboot), through `open`.
    r.get().unmount().unwrap();
    assert!(!is_mount_point(&root));
    assert!(!r.get().is_mounted());
    let reopened = ContainerRootfs::open(&img.snapshots, &dir).unwrap();
    reopened.mount().unwrap();
    assert!(root.join("etc/new").is_file());
    assert!(!root.join("etc/passwd").exists());
    drop(r);
    assert!(!dir.exists());
    assert!(!is_mount_point(&root));
    drop(r2);
    assert_eq!(
        fs::read_dir(t.path().join("containers")).unwrap().count(),
        0
    );
}

#[test]
fn copy_fallback_shows_the_same_tree() {
    if !is_root() {
        eprintln!("skipped: needs root (ownership, whiteout devices)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let opts = ApplyOptions::default();
    let img = busybox_image(t.path());
    let u = unpack(
        &img.store,
        &img.snapshots,
        &img.index,
        &Platform::host(),
        &opts,
    )
    .unwrap();
    let copy = Guard(Some(
        ContainerRootfs::prepare(
            &img.snapshots,
            &u.chain_ids,
            &t.path().join("copy"),
            RootfsMode::Copy,
        )
        .unwrap(),
    ));
    assert_eq!(copy.get().kind(), RootfsKind::Copy);
    check_busybox_view(&copy.get().path());
    if let Some(out) = run_in(&copy.get().path(), "ls /etc") {
        assert_eq!(out, "motd\npasswd\n");
    }
    if berth_image::rootfs::overlay_supported() {
        let ov = Guard(Some(
            ContainerRootfs::prepare(
                &img.snapshots,
                &u.chain_ids,
                &t.path().join("ov"),
                RootfsMode::Overlay,
            )
            .unwrap(),
        ));
        let a = snapshot_tree(&copy.get().path());
        let b = snapshot_tree(&ov.get().path());
        assert_eq!(a, b);
    }
}

#[test]
fn copy_fallback_with_oci_whiteouts() {
    // Snapshots unpacked the unprivileged way (.wh. files kept) can only
    // be copied; the result is the same view.
    let t = tempfile::tempdir().unwrap();
    let opts = ApplyOptions {
        whiteouts: WhiteoutFormat::Oci,
        ..ApplyOptions::default()
    };
    let img = busybox_image(t.path());
    let u = unpack(
        &img.store,
        &img.snapshots,
        &img.index,
        &Platform::host(),
        &opts,
    )
    .unwrap();
    assert!(
        img.snapshots
            .fs_path(&u.chain_ids[1])
            .join("etc/.wh.hostname")
            .is_file()
    );
    let e = ContainerRootfs::prepare(
        &img.snapshots,
        &u.chain_ids,
        &t.path().join("x"),
        RootfsMode::Overlay,
    )
    .unwrap_err();
    assert!(e.to_string().contains("OCI whiteouts"), "{e}");
    assert!(!t.path().join("x").exists());
    let r = Guard(Some(
        ContainerRootfs::prepare(
            &img.snapshots,
            &u.chain_ids,
            &t.path().join("c"),
            RootfsMode::Auto,
        )
        .unwrap(),
    ));
    assert_eq!(r.get().kind(), RootfsKind::Copy);
    if is_root() {
        check_busybox_view(&r.get().path());
    } else {
        assert!(!r.get().path().join("etc/hostname").exists());
    }
    assert!(!r.get().path().join("etc/.wh.hostname").exists());
}

#[test]
fn copy_never_follows_a_lower_layers_symlink() {
    // Layer 1 has `lib -> <outside>`; layer 2 has a directory `lib/` with a
    // file. overlayfs shows a directory there (the upper dir hides the
    // lower symlink); the copy must do the same and write nothing outside.
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let before = snapshot_tree(&outside);
    let s = Snapshotter::open(t.path().join("snapshots")).unwrap();
    let mut l1 = Layer::new();
    l1.symlink("lib", outside.to_str().unwrap())
        .symlink("etc", "/");
    let l1 = l1.finish();
    let mut l2 = Layer::new();
    l2.file("lib/libc.so", b"elf", 0o755)
        .file("etc/passwd", b"p", 0o644);
    let l2 = l2.finish();
    let o = ApplyOptions::default();
    let a = s.apply(None, &l1[..], &Digest::sha256(&l1), &o).unwrap();
    let b = s
        .apply(Some(&a.chain_id), &l2[..], &Digest::sha256(&l2), &o)
        .unwrap();
    let chain = [a.chain_id, b.chain_id];
    let r = Guard(Some(
        ContainerRootfs::prepare(&s, &chain, &t.path().join("c"), RootfsMode::Copy).unwrap(),
    ));
    let root = r.get().path();
    assert!(fs::symlink_metadata(root.join("lib")).unwrap().is_dir());
    assert_eq!(fs::read(root.join("lib/libc.so")).unwrap(), b"elf");
    assert_eq!(snapshot_tree(&outside), before);
    if overlay_usable() {
        let ov = Guard(Some(
            ContainerRootfs::prepare(&s, &chain, &t.path().join("ov"), RootfsMode::Overlay)
                .unwrap(),
        ));
        assert_eq!(snapshot_tree(&ov.get().path()), snapshot_tree(&root));
    }
}

#[test]
fn prepare_failure_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(t.path().join("snapshots")).unwrap();
    let missing = Digest::sha256(b"no such layer");
    let dir = t.path().join("c");
    let e = ContainerRootfs::prepare(&s, &[missing], &dir, RootfsMode::Auto).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!dir.exists());
    // Overlay with an upper dir that can't be one (on the overlay itself)
    // fails in Overlay mode and falls back to a copy in Auto mode.
    if !overlay_usable() {
        return;
    }
    let mut l = Layer::new();
    l.file("a", b"a", 0o644);
    let l = l.finish();
    let i = s
        .apply(None, &l[..], &Digest::sha256(&l), &ApplyOptions::default())
        .unwrap();
    let outer = Guard(Some(
        ContainerRootfs::prepare(
            &s,
            std::slice::from_ref(&i.chain_id),
            &t.path().join("outer"),
            RootfsMode::Overlay,
        )
        .unwrap(),
    ));
    let nested = outer.get().path().join("nested");
    let e = ContainerRootfs::prepare(
        &s,
        std::slice::from_ref(&i.chain_id),
        &nested,
        RootfsMode::Overlay,
    );
    match e {
        Ok(r) => {
            // Newer kernels may allow it; then it must work.
            eprintln!("nested overlay upper accepted by this kernel");
            let g = Guard(Some(r));
            assert!(g.get().path().join("a").is_file());
        }
        Err(e) => {
            eprintln!("nested overlay refused: {e}");
            assert!(e.to_string().contains("mounting overlay"), "{e}");
            assert!(!nested.exists());
            let g = Guard(Some(
                ContainerRootfs::prepare(
                    &s,
                    std::slice::from_ref(&i.chain_id),
                    &nested,
                    RootfsMode::Auto,
                )
                .unwrap(),
            ));
            assert_eq!(g.get().kind(), RootfsKind::Copy);
            assert!(g.get().overlay_fallback().is_some());
            assert!(g.get().path().join("a").is_file());
        }
    }
}

#[test]
fn many_layers_use_the_new_mount_api() {
    if !overlay_usable() {
        return;
    }
    // More layers than fit in mount(2)'s one page of options.
    let t = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(t.path().join("snapshots")).unwrap();
    let mut chain: Vec<Digest> = Vec::new();
    let n = 240;
    for i in 0..n {
        let mut l = Layer::new();
        l.file(&format!("layer{i}"), format!("{i}").as_bytes(), 0o644)
            .file("top", format!("{i}").as_bytes(), 0o644);
        let l = l.finish();
        let info = s
            .apply(
                chain.last(),
                &l[..],
                &Digest::sha256(&l),
                &ApplyOptions::default(),
            )
            .unwrap();
        chain.push(info.chain_id);
    }
    let r = match ContainerRootfs::prepare(&s, &chain, &t.path().join("c"), RootfsMode::Overlay) {
        Ok(r) => Guard(Some(r)),
        Err(e) if e.to_string().contains("lowerdir+") => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let root = r.get().path();
    assert_eq!(
        fs::read_to_string(root.join("top")).unwrap(),
        format!("{}", n - 1)
    );
    assert_eq!(fs::read_to_string(root.join("layer0")).unwrap(), "0");
    assert_eq!(fs::read_dir(&root).unwrap().count(), n + 1);
}

#[test]
fn empty_image_is_a_plain_directory() {
    let t = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(t.path().join("snapshots")).unwrap();
    let r = Guard(Some(
        ContainerRootfs::prepare(&s, &[], &t.path().join("c"), RootfsMode::Auto).unwrap(),
    ));
    assert_eq!(r.get().kind(), RootfsKind::Copy);
    assert!(r.get().path().is_dir());
    let again =
        ContainerRootfs::prepare(&s, &[], &t.path().join("c"), RootfsMode::Auto).unwrap_err();
    assert!(again.to_string().contains("already"), "{again}");
}

#[test]
fn missing_blob_and_wrong_diff_id_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let opts = ApplyOptions::default();
    let img = busybox_image(t.path());
    // Remove the top layer's blob: the unpack names it.
    let (_, m) =
        berth_image::resolve_manifest(&img.store, &img.index, None, &Platform::host()).unwrap();
    let top = m.layers[1].descriptor.digest.clone();
    img.store.delete_blob(&top).unwrap();
    let e = unpack(
        &img.store,
        &img.snapshots,
        &img.index,
        &Platform::host(),
        &opts,
    )
    .unwrap_err();
    assert!(e.to_string().contains(&top.to_string()), "{e}");
    // The bottom layer was unpacked and stays; nothing half-made.
    assert_eq!(img.snapshots.list().unwrap().len(), 1);
    let names: Vec<PathBuf> = fs::read_dir(img.snapshots.root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.to_string_lossy().ends_with(".incomplete"))
    );
    // Another platform: a clear error listing what there is.
    let e = unpack(
        &img.store,
        &img.snapshots,
        &img.index,
        &"linux/riscv64".parse().unwrap(),
        &opts,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("linux/riscv64") && msg.contains("linux/s390x"),
        "{msg}"
    );
}
