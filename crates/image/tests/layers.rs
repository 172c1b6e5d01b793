//! Applying tar layers: what lands in the snapshot, and what is refused.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_image::{
    ApplyOptions, Compression, Digest, EntryError, Error, WhiteoutFormat, apply_layer,
};
use common::{Layer, Opts, gzip, is_root, snapshot_tree, xattr, zstd};
use tar::EntryType;

/// A temp dir with `snap/` (the target) and `outside/` (a sentinel the
/// hostile layers aim at).
struct Env {
    t: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        common::make_removable(self.t.path());
    }
}

impl Env {
    fn new() -> Env {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("snap")).unwrap();
        fs::create_dir(t.path().join("outside")).unwrap();
        fs::write(t.path().join("outside/passwd"), b"root:x:0:0\n").unwrap();
        Env { t }
    }
    fn snap(&self) -> PathBuf {
        self.t.path().join("snap")
    }
    fn outside(&self) -> PathBuf {
        self.t.path().join("outside")
    }
    fn apply(
        &self,
        tar: &[u8],
        opts: &ApplyOptions,
    ) -> berth_image::Result<berth_image::LayerSummary> {
        apply_layer(tar, &self.snap(), opts)
    }
}

fn opts() -> ApplyOptions {
    ApplyOptions::default()
}

#[test]
fn regular_tree_with_metadata() {
    let env = Env::new();
    let mut l = Layer::new();
    l.dir("./", 0o755)
        .dir_with(
            "etc",
            &Opts {
                mode: 0o750,
                uid: 0,
                gid: 42,
                mtime: 1_000_000_000,
            },
        )
        .file_with(
            "etc/shadow",
            b"secret",
            &Opts {
                mode: 0o640,
                uid: 0,
                gid: 42,
                mtime: 1_111_111_111,
            },
        )
        .file_with(
            "./usr/bin/su",
            b"#!/bin/true\n",
            &Opts {
                mode: 0o4755,
                uid: 0,
                gid: 0,
                mtime: 1_200_000_000,
            },
        )
        .file_with(
            "usr/bin/wall",
            b"w",
            &Opts {
                mode: 0o2755,
                uid: 1234,
                gid: 5,
                mtime: 1_200_000_000,
            },
        )
        .dir_with(
            "tmp",
            &Opts {
                mode: 0o1777,
                uid: 0,
                gid: 0,
                mtime: 1_300_000_000,
            },
        )
        .file_with(
            "home/user/.profile",
            b"export A=1\n",
            &Opts {
                mode: 0o600,
                uid: 1000,
                gid: 1000,
                mtime: 1_400_000_000,
            },
        )
        .dir_with(
            "home/user",
            &Opts {
                mode: 0o700,
                uid: 1000,
                gid: 1000,
                mtime: 1_500_000_000,
            },
        )
        .symlink("bin", "usr/bin")
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .hardlink("usr/bin/su2", "usr/bin/su")
        .long_file(&format!("deep/{}/file", "d".repeat(150)), b"long");
    l.pax(&[
        ("mtime", b"1234567890.123456789"),
        ("atime", b"1234567000.5"),
    ])
    .file("precise", b"p", 0o644);
    let tar = l.finish();
    let s = env.apply(&tar, &opts()).unwrap();
    assert_eq!(s.diff_id, Digest::sha256(&tar));
    assert_eq!(s.compression, Compression::None);
    assert_eq!(s.size, tar.len() as u64);

    let p = env.snap();
    assert_eq!(fs::read(p.join("etc/shadow")).unwrap(), b"secret");
    let m = fs::metadata(p.join("etc/shadow")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!(m.mtime(), 1_111_111_111);
    let etc = fs::metadata(p.join("etc")).unwrap();
    assert_eq!(etc.mode() & 0o7777, 0o750);
    // Directory times are set after their content was written.
    assert_eq!(etc.mtime(), 1_000_000_000);
    assert_eq!(
        fs::metadata(p.join("usr/bin/su")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::metadata(p.join("usr/bin/wall")).unwrap().mode() & 0o7777,
        0o2755
    );
    assert_eq!(fs::metadata(p.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
    // Implicit parents get 0755.
    assert_eq!(fs::metadata(p.join("usr")).unwrap().mode() & 0o7777, 0o755);
    // A directory entry after its content still sets its attributes.
    let home = fs::metadata(p.join("home/user")).unwrap();
    assert_eq!(home.mode() & 0o7777, 0o700);
    assert_eq!(home.mtime(), 1_500_000_000);
    if is_root() {
        assert_eq!(m.gid(), 42);
        let w = fs::metadata(p.join("usr/bin/wall")).unwrap();
        assert_eq!((w.uid(), w.gid()), (1234, 5));
        assert_eq!(home.uid(), 1000);
    }
    assert_eq!(fs::read_link(p.join("bin")).unwrap(), Path::new("usr/bin"));
    assert_eq!(
        fs::read_link(p.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/UTC")
    );
    let a = fs::metadata(p.join("usr/bin/su")).unwrap();
    let b = fs::metadata(p.join("usr/bin/su2")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
    assert_eq!(
        fs::read(p.join(format!("deep/{}/file", "d".repeat(150)))).unwrap(),
        b"long"
    );
    let pm = fs::metadata(p.join("precise")).unwrap();
    assert_eq!((pm.mtime(), pm.mtime_nsec()), (1_234_567_890, 123_456_789));
    assert_eq!((pm.atime(), pm.atime_nsec()), (1_234_567_000, 500_000_000));
}

#[test]
fn diff_id_is_the_same_for_every_compression() {
    let mut l = Layer::new();
    l.file("a", &vec![7u8; 100_000], 0o644).dir("d", 0o755);
    let tar = l.finish();
    let want = Digest::sha256(&tar);
    for (data, c) in [
        (tar.clone(), Compression::None),
        (gzip(&tar), Compression::Gzip),
        (zstd(&tar), Compression::Zstd),
    ] {
        let env = Env::new();
        let s = env.apply(&data, &opts()).unwrap();
        assert_eq!(s.diff_id, want, "{c:?}");
        assert_eq!(s.compression, c);
        assert_eq!(fs::read(env.snap().join("a")).unwrap().len(), 100_000);
    }
    // Concatenated gzip members are one stream.
    let env = Env::new();
    let half = tar.len() / 2;
    let mut two = gzip(&tar[..half]);
    two.extend(gzip(&tar[half..]));
    assert_eq!(env.apply(&two, &opts()).unwrap().diff_id, want);
}

#[test]
fn xattrs_from_pax_headers() {
    let env = Env::new();
    let mut l = Layer::new();
    l.pax(&[("SCHILY.xattr.user.mime", b"text/plain")])
        .file("f", b"x", 0o644);
    l.pax(&[("SCHILY.xattr.user.dir", b"1")]).dir("d", 0o755);
    if is_root() {
        // File capabilities survive the chown that comes before them.
        let cap = [
            1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        l.pax(&[("SCHILY.xattr.security.capability", &cap)])
            .file_with(
                "ping",
                b"elf",
                &Opts {
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime: 1,
                },
            );
        l.pax(&[("SCHILY.xattr.trusted.note", b"t")])
            .symlink("l", "f");
    }
    // overlayfs' own attributes are never taken from a layer.
    l.pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .dir("redir", 0o755);
    env.apply(&l.finish(), &opts()).unwrap();
    let p = env.snap();
    assert_eq!(
        xattr(&p.join("f"), "user.mime").as_deref(),
        Some(&b"text/plain"[..])
    );
    assert_eq!(xattr(&p.join("d"), "user.dir").as_deref(), Some(&b"1"[..]));
    assert_eq!(xattr(&p.join("redir"), "trusted.overlay.redirect"), None);
    if is_root() {
        assert_eq!(
            xattr(&p.join("ping"), "security.capability").unwrap().len(),
            20
        );
        assert_eq!(
            xattr(&p.join("l"), "trusted.note").as_deref(),
            Some(&b"t"[..])
        );
    }
}

#[test]
fn devices_and_fifos() {
    let env = Env::new();
    let mut l = Layer::new();
    l.device(EntryType::Fifo, "run/fifo", 0, 0, 0o620);
    if is_root() {
        l.device(EntryType::Char, "dev/null", 1, 3, 0o666).device(
            EntryType::Block,
            "dev/loop9",
            7,
            9,
            0o660,
        );
    }
    env.apply(&l.finish(), &opts()).unwrap();
    let p = env.snap();
    let f = fs::symlink_metadata(p.join("run/fifo")).unwrap();
    assert!(f.file_type().is_fifo());
    assert_eq!(f.mode() & 0o7777, 0o620);
    if is_root() {
        let n = fs::symlink_metadata(p.join("dev/null")).unwrap();
        assert!(n.file_type().is_char_device());
        assert_eq!(n.rdev(), libc::makedev(1, 3));
        assert_eq!(n.mode() & 0o7777, 0o666);
        assert!(
            fs::symlink_metadata(p.join("dev/loop9"))
                .unwrap()
                .file_type()
                .is_block_device()
        );
    }
}

#[test]
fn device_refused_when_not_allowed() {
    let env = Env::new();
    let mut l = Layer::new();
    l.device(EntryType::Char, "dev/mem", 1, 1, 0o600);
    let o = ApplyOptions {
        allow_devices: false,
        skip_devices: false,
        ..opts()
    };
    let e = env.apply(&l.finish(), &o).unwrap_err();
    assert!(
        matches!(&e, Error::Entry { entry, kind: EntryError::DeviceNotAllowed } if entry == "dev/mem"),
        "{e}"
    );
    assert!(!env.snap().join("dev/mem").exists());
}

#[test]
fn overlay_whiteouts() {
    if !is_root() {
        eprintln!("skipped: overlay whiteouts need root");
        return;
    }
    let env = Env::new();
    let mut l = Layer::new();
    l.dir("etc", 0o755)
        .file("etc/.wh.hostname", b"", 0o644)
        .dir("usr/share/doc", 0o755)
        .file("usr/share/doc/.wh..wh..opq", b"", 0o644)
        .file("usr/share/doc/new", b"n", 0o644)
        // This layer's own file stays even though a whiteout names it.
        .file("keep", b"k", 0o644)
        .file(".wh.keep", b"", 0o644)
        // A directory re-created after its whiteout hides the lower one.
        .file(".wh.opt", b"", 0o644)
        .dir("opt", 0o755)
        .file("opt/x", b"x", 0o644)
        // Entries under a whited-out name with no directory entry.
        .file(".wh.srv", b"", 0o644)
        .file("srv/www/index.html", b"hi", 0o644)
        // aufs metadata is not content.
        .file(".wh..wh.plnk", b"", 0o644);
    env.apply(&l.finish(), &opts()).unwrap();
    let p = env.snap();
    let w = fs::symlink_metadata(p.join("etc/hostname")).unwrap();
    assert!(w.file_type().is_char_device());
    assert_eq!(w.rdev(), 0);
    assert!(!p.join("etc/.wh.hostname").exists());
    assert_eq!(
        xattr(&p.join("usr/share/doc"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!p.join("usr/share/doc/.wh..wh..opq").exists());
    assert_eq!(fs::read(p.join("usr/share/doc/new")).unwrap(), b"n");
    assert_eq!(fs::read(p.join("keep")).unwrap(), b"k");
    assert!(fs::metadata(p.join("opt")).unwrap().is_dir());
    assert_eq!(
        xattr(&p.join("opt"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!p.join(".wh..wh.plnk").exists());
    assert_eq!(fs::read(p.join("srv/www/index.html")).unwrap(), b"hi");
    assert_eq!(
        xattr(&p.join("srv"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!p.join("plnk").exists());
}

#[test]
fn oci_whiteouts_are_kept_as_files() {
    let env = Env::new();
    let mut l = Layer::new();
    l.file("etc/.wh.hostname", b"", 0o644)
        .file("doc/.wh..wh..opq", b"", 0o644);
    let o = ApplyOptions {
        whiteouts: WhiteoutFormat::Oci,
        ..opts()
    };
    env.apply(&l.finish(), &o).unwrap();
    assert!(env.snap().join("etc/.wh.hostname").is_file());
    assert!(env.snap().join("doc/.wh..wh..opq").is_file());
    let mut l = Layer::new();
    l.file("etc/.wh.", b"", 0o644);
    let e = Env::new().apply(&l.finish(), &o).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Entry {
                kind: EntryError::InvalidWhiteout(_),
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn later_entries_replace_earlier_ones_never_write_through() {
    let env = Env::new();
    let target = env.outside().join("passwd");
    let before = snapshot_tree(&env.outside());
    let mut l = Layer::new();
    // A symlink to outside, then a regular file of the same name.
    l.symlink("x", target.to_str().unwrap())
        .file("x", b"mine", 0o644)
        // A directory with content, then a symlink of the same name.
        .dir("d", 0o755)
        .file("d/f", b"f", 0o644)
        .symlink("d", "x")
        // A file, then a directory.
        .file("e", b"e", 0o644)
        .dir("e", 0o700)
        // A hardlink over an existing file.
        .file("h", b"old", 0o644)
        .hardlink("h", "x");
    env.apply(&l.finish(), &opts()).unwrap();
    let p = env.snap();
    assert_eq!(fs::read(p.join("x")).unwrap(), b"mine");
    assert!(fs::symlink_metadata(p.join("x")).unwrap().is_file());
    assert_eq!(fs::read_link(p.join("d")).unwrap(), Path::new("x"));
    assert!(fs::symlink_metadata(p.join("e")).unwrap().is_dir());
    assert_eq!(fs::read(p.join("h")).unwrap(), b"mine");
    assert_eq!(snapshot_tree(&env.outside()), before);
}

#[test]
fn symlinks_inside_the_snapshot_are_followed() {
    let env = Env::new();
    let mut l = Layer::new();
    l.dir("usr/lib", 0o755)
        .symlink("lib", "usr/lib")
        .file("lib/libc.so", b"elf", 0o755)
        .symlink("usr/lib64", "../usr/lib")
        .file("usr/lib64/ld.so", b"ld", 0o755);
    env.apply(&l.finish(), &opts()).unwrap();
    assert_eq!(
        fs::read(env.snap().join("usr/lib/libc.so")).unwrap(),
        b"elf"
    );
    assert_eq!(fs::read(env.snap().join("usr/lib/ld.so")).unwrap(), b"ld");
}

/// Applies `tar` and expects a refusal naming `entry`; checks nothing
/// outside the snapshot changed.
fn refused(env: &Env, tar: &[u8], entry: &str) -> EntryError {
    let before = snapshot_tree(env.t.path());
    let before_outside = snapshot_tree(&env.outside());
    let e = env.apply(tar, &opts()).unwrap_err();
    let Error::Entry { entry: got, kind } = e else {
        panic!("expected an entry error for {entry:?}, got {e}");
    };
    assert_eq!(got, entry);
    assert_eq!(
        snapshot_tree(&env.outside()),
        before_outside,
        "outside changed"
    );
    // The snapshot may hold what came before the entry; nothing else
    // under the temp dir appeared.
    let after = snapshot_tree(env.t.path());
    for k in after.keys() {
        assert!(
            before.contains_key(k) || k.starts_with("snap"),
            "{} appeared",
            k.display()
        );
    }
    kind
}

#[test]
fn hostile_names() {
    let abs = format!("{}/pwned", Env::new().outside().display());
    for (name, want) in [
        ("../x", "ParentDir"),
        ("../outside/passwd", "ParentDir"),
        ("a/../../x", "ParentDir"),
        ("/etc/x", "AbsolutePath"),
        (abs.as_str(), "AbsolutePath"),
    ] {
        let env = Env::new();
        let mut l = Layer::new();
        l.file(name, b"pwned", 0o644);
        let k = refused(&env, &l.finish(), name);
        assert!(format!("{k:?}").starts_with(want), "{name}: {k:?}");
        // Directories, symlinks and devices with such names too.
        let env = Env::new();
        let mut l = Layer::new();
        l.symlink(name, "/");
        refused(&env, &l.finish(), name);
    }
}

#[test]
fn symlink_planted_by_an_earlier_entry() {
    let env = Env::new();
    let outside = env.outside();
    // `link -> /`, then a path through it that would reach the sentinel.
    let through_root = format!(
        "link/{}/pwned",
        outside.strip_prefix("/").unwrap().display()
    );
    let mut l = Layer::new();
    l.symlink("link", "/").file(&through_root, b"pwned", 0o644);
    let k = refused(&env, &l.finish(), &through_root);
    assert!(
        matches!(&k, EntryError::ThroughSymlink(s) if s.contains("link -> /")),
        "{k:?}"
    );

    // The brief's example, kept harmless by the refusal being checked
    // first on a copy of the sentinel: link/etc/passwd.
    let env = Env::new();
    let mut l = Layer::new();
    l.symlink("link", "/")
        .file("link/etc/passwd", b"pwned", 0o644);
    let passwd = fs::read("/etc/passwd").ok();
    let k = refused(&env, &l.finish(), "link/etc/passwd");
    assert!(matches!(k, EntryError::ThroughSymlink(_)), "{k:?}");
    assert_eq!(fs::read("/etc/passwd").ok(), passwd);

    // Relative symlinks that climb out, and absolute ones to the sentinel.
    for target in [
        "../outside",
        "../../../../../../..",
        outside.to_str().unwrap(),
    ] {
        let env = Env::new();
        let mut l = Layer::new();
        l.symlink("up", target).file("up/pwned", b"x", 0o644);
        let k = refused(&env, &l.finish(), "up/pwned");
        assert!(
            matches!(k, EntryError::ThroughSymlink(_)),
            "{target}: {k:?}"
        );
        // Directories and symlinks created through it likewise.
        let env = Env::new();
        let mut l = Layer::new();
        l.symlink("up", target).dir("up/newdir", 0o755);
        refused(&env, &l.finish(), "up/newdir/");
    }
    // A symlink deeper in the path.
    let env = Env::new();
    let mut l = Layer::new();
    l.dir("a/b", 0o755)
        .symlink("a/b/c", "../../../outside")
        .file("a/b/c/d/pwned", b"x", 0o644);
    refused(&env, &l.finish(), "a/b/c/d/pwned");
    // A dangling symlink is not created through either.
    let env = Env::new();
    let mut l = Layer::new();
    l.symlink("dang", "/nonexistent-berth-dir")
        .file("dang/x", b"x", 0o644);
    refused(&env, &l.finish(), "dang/x");
    assert!(!Path::new("/nonexistent-berth-dir").exists());
}

#[test]
fn symlink_already_in_the_snapshot_dir() {
    let env = Env::new();
    std::os::unix::fs::symlink(env.outside(), env.snap().join("etc")).unwrap();
    std::os::unix::fs::symlink("../outside", env.snap().join("rel")).unwrap();
    let mut l = Layer::new();
    l.file("etc/passwd", b"pwned", 0o644);
    refused(&env, &l.finish(), "etc/passwd");
    let mut l = Layer::new();
    l.dir("rel/sub", 0o755);
    refused(&env, &l.finish(), "rel/sub/");
    let mut l = Layer::new();
    l.hardlink("h", "etc/passwd");
    let k = refused(&env, &l.finish(), "h");
    assert!(matches!(k, EntryError::Hardlink { .. }), "{k:?}");
    assert_eq!(
        fs::read(env.outside().join("passwd")).unwrap(),
        b"root:x:0:0\n"
    );
}

#[test]
fn hostile_hardlinks() {
    let outside = Env::new().outside();
    let abs = format!("{}/passwd", outside.display());
    for target in [
        "../outside/passwd",
        "a/../../outside/passwd",
        "/etc/passwd",
        abs.as_str(),
    ] {
        let env = Env::new();
        let mut l = Layer::new();
        l.hardlink("h", target);
        let k = refused(&env, &l.finish(), "h");
        assert!(
            matches!(&k, EntryError::Hardlink { target: t, .. } if t == target),
            "{k:?}"
        );
    }
    // Through a symlink planted by an earlier entry.
    let env = Env::new();
    let mut l = Layer::new();
    l.symlink("out", env.outside().to_str().unwrap())
        .hardlink("h", "out/passwd");
    let k = refused(&env, &l.finish(), "h");
    assert!(k.to_string().contains("out ->"), "{k}");
    // To a symlink that points out.
    for to in ["/etc/passwd", "../outside/passwd"] {
        let env = Env::new();
        let mut l = Layer::new();
        l.symlink("s", to).hardlink("h", "s");
        let k = refused(&env, &l.finish(), "h");
        assert!(k.to_string().contains("leads outside"), "{k}");
    }
    // To something not in this layer, or a directory.
    let env = Env::new();
    let mut l = Layer::new();
    l.hardlink("h", "bin/sh");
    let k = refused(&env, &l.finish(), "h");
    assert!(k.to_string().contains("not found in this layer"), "{k}");
    let env = Env::new();
    let mut l = Layer::new();
    l.dir("d", 0o755).hardlink("h", "d");
    let k = refused(&env, &l.finish(), "h");
    assert!(k.to_string().contains("directory"), "{k}");
    // A symlink that stays inside may be hardlinked (the link, not its
    // target).
    let env = Env::new();
    let mut l = Layer::new();
    l.file("f", b"f", 0o644)
        .symlink("s", "f")
        .hardlink("h", "s");
    env.apply(&l.finish(), &opts()).unwrap();
    assert_eq!(fs::read_link(env.snap().join("h")).unwrap(), Path::new("f"));
}

#[test]
fn truncated_archives() {
    let mut l = Layer::new();
    l.file("a", &vec![1u8; 10_000], 0o644)
        .file("b", b"bbbb", 0o644);
    let tar = l.finish();
    // Cut in the middle of a's content.
    let env = Env::new();
    let e = env.apply(&tar[..512 + 4000], &opts()).unwrap_err();
    assert!(
        matches!(&e, Error::Entry { entry, kind: EntryError::Truncated(_) } if entry == "a"),
        "{e}"
    );
    // Cut in the middle of a header.
    let env = Env::new();
    let e = env.apply(&tar[..512 + 10240 + 100], &opts()).unwrap_err();
    assert!(matches!(e, Error::Archive(_)), "{e}");
    // Cut at a header boundary: no end-of-archive marker.
    let mut l = Layer::new();
    l.file("a", &vec![1u8; 10_000], 0o644)
        .file("b", b"bbbb", 0o644);
    let cut = l.finish_unterminated();
    let env = Env::new();
    let e = env.apply(&cut, &opts()).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    // Compressed streams cut short.
    for data in [gzip(&tar), zstd(&tar)] {
        for cut in [1, 4, 8, 20, data.len() / 2] {
            let env = Env::new();
            let short = &data[..data.len() - cut];
            let e = env.apply(short, &opts()).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Archive(_)
                        | Error::Entry {
                            kind: EntryError::Truncated(_),
                            ..
                        }
                ),
                "cut {cut}: {e}"
            );
        }
    }
    // Garbage, and an empty stream.
    let e = Env::new().apply(&[0x55u8; 2048], &opts()).unwrap_err();
    assert!(matches!(e, Error::Archive(_)), "{e}");
    let e = Env::new().apply(&[], &opts()).unwrap_err();
    assert!(matches!(e, Error::Archive(_)), "{e}");
    // A corrupted gzip body fails its CRC.
    let mut bad = gzip(&tar);
    let n = bad.len();
    bad[n - 8] ^= 0xff;
    let e = Env::new().apply(&bad, &opts()).unwrap_err();
    assert!(matches!(e, Error::Archive(_)), "{e}");
}

#[test]
fn trailing_padding_counts_in_the_diff_id() {
    let mut l = Layer::new();
    l.file("a", b"a", 0o644);
    let mut tar = l.finish();
    // Record padding as GNU tar writes it.
    tar.resize(10240, 0);
    let s = Env::new().apply(&tar, &opts()).unwrap();
    assert_eq!(s.diff_id, Digest::sha256(&tar));
    assert_eq!(s.size, 10240);
}

#[test]
fn non_root_extraction_keeps_things_writable() {
    // Without ownership: the files belong to the caller; read-only
    // directories get their mode only at the end, so their content can
    // still be written.
    let env = Env::new();
    let mut l = Layer::new();
    l.dir("ro", 0o555)
        .file("ro/f", b"f", 0o444)
        .dir("ro/sub", 0o500)
        .file("ro/sub/g", b"g", 0o400);
    let o = ApplyOptions {
        preserve_ownership: false,
        whiteouts: WhiteoutFormat::Oci,
        allow_devices: false,
        skip_devices: false,
    };
    env.apply(&l.finish(), &o).unwrap();
    let p = env.snap();
    assert_eq!(
        fs::metadata(p.join("ro")).unwrap().permissions().mode() & 0o777,
        0o555
    );
    assert_eq!(fs::read(p.join("ro/sub/g")).unwrap(), b"g");
}
