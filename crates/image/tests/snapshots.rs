//! Snapshots: chain ids, sharing, the incomplete/complete lifecycle.

mod common;

use std::fs;

use berth_image::{ApplyOptions, Digest, Error, Snapshotter, chain_id, chain_ids};
use common::{Layer, gzip};

fn layer(name: &str, data: &[u8]) -> Vec<u8> {
    let mut l = Layer::new();
    l.file(name, data, 0o644);
    l.finish()
}

#[test]
fn apply_creates_a_snapshot_named_by_chain_id() {
    let t = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(t.path()).unwrap();
    let l0 = layer("a", b"a");
    let l1 = layer("b", b"b");
    let (d0, d1) = (Digest::sha256(&l0), Digest::sha256(&l1));
    let i0 = s
        .apply(None, &gzip(&l0)[..], &d0, &ApplyOptions::default())
        .unwrap();
    assert_eq!(i0.chain_id, d0);
    let i1 = s
        .apply(Some(&i0.chain_id), &l1[..], &d1, &ApplyOptions::default())
        .unwrap();
    assert_eq!(i1.chain_id, chain_id(Some(&d0), &d1));
    assert_eq!(
        chain_ids(&[d0.clone(), d1.clone()]),
        vec![i0.chain_id.clone(), i1.chain_id.clone()]
    );
    assert_eq!(i1.parent.as_ref(), Some(&d0));
    assert!(s.exists(&i1.chain_id));
    assert_eq!(fs::read(s.fs_path(&i1.chain_id).join("b")).unwrap(), b"b");
    assert!(t.path().join(i1.chain_id.hex()).join("fs").is_dir());
    assert_eq!(s.info(&i1.chain_id).unwrap(), i1);
    let mut all = s.list().unwrap();
    all.sort();
    let mut want = vec![i0.chain_id.clone(), i1.chain_id.clone()];
    want.sort();
    assert_eq!(all, want);

    // The same layer on the same parent is shared: not read again.
    struct Fail;
    impl std::io::Read for Fail {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("must not be read"))
        }
    }
    assert_eq!(
        s.apply(Some(&d0), Fail, &d1, &ApplyOptions::default())
            .unwrap(),
        i1
    );
    // On another parent it is another snapshot.
    let other = s
        .apply(None, &l1[..], &d1, &ApplyOptions::default())
        .unwrap();
    assert_ne!(other.chain_id, i1.chain_id);

    assert!(s.remove(&i1.chain_id).unwrap());
    assert!(!s.remove(&i1.chain_id).unwrap());
    assert!(!s.exists(&i1.chain_id));
    assert_eq!(fs::read_dir(t.path()).unwrap().count(), 2);
}

#[test]
fn diff_id_mismatch_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(t.path()).unwrap();
    let l = layer("a", b"a");
    let wrong = Digest::sha256(b"something else");
    let e = s
        .apply(None, &l[..], &wrong, &ApplyOptions::default())
        .unwrap_err();
    match &e {
        Error::DiffIdMismatch { expected, actual } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &Digest::sha256(&l));
        }
        e => panic!("{e}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&wrong.to_string()) && msg.contains(&Digest::sha256(&l).to_string()));
    assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    // A refused entry likewise.
    let mut h = Layer::new();
    h.file("ok", b"1", 0o644).file("../x", b"x", 0o644);
    let h = h.finish();
    assert!(
        s.apply(None, &h[..], &Digest::sha256(&h), &ApplyOptions::default())
            .is_err()
    );
    assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    assert!(!t.path().parent().unwrap().join("x").exists());
    // A truncated one likewise.
    let mut big = Layer::new();
    big.file("a", &vec![1u8; 50_000], 0o644)
        .file("b", b"b", 0o644);
    let big = gzip(&big.finish());
    let e = s
        .apply(
            None,
            &big[..big.len() / 2],
            &Digest::sha256(b"?"),
            &ApplyOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Archive(_) | Error::Entry { .. }), "{e}");
    assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
}

#[test]
fn stale_incomplete_dirs_are_removed_on_open_live_ones_kept() {
    let t = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(t.path()).unwrap();
    let l = layer("a", b"a");
    let d = Digest::sha256(&l);
    s.apply(None, &l[..], &d, &ApplyOptions::default()).unwrap();
    // A crash mid-layer leaves this behind (with a half file).
    let stale = t
        .path()
        .join(format!("{}.123-0-0.incomplete", Digest::sha256(b"x").hex()));
    fs::create_dir_all(stale.join("fs/usr")).unwrap();
    fs::write(stale.join("fs/usr/half"), b"par").unwrap();
    // A live writer holds its lock.
    let live = t
        .path()
        .join(format!("{}.456-0-0.incomplete", Digest::sha256(b"y").hex()));
    fs::create_dir_all(&live).unwrap();
    let lock = berth_image::sys::open_dir(&live).unwrap();
    berth_image::sys::flock_exclusive(std::os::fd::AsFd::as_fd(&lock), true).unwrap();

    let s2 = Snapshotter::open(t.path()).unwrap();
    assert!(!stale.exists());
    assert!(live.exists());
    assert!(s2.exists(&d));
    // Incomplete snapshots never count.
    assert_eq!(s2.list().unwrap(), vec![d]);
    drop(lock);
    Snapshotter::open(t.path()).unwrap();
    assert!(!live.exists());
}

#[test]
fn concurrent_apply_of_one_layer() {
    let t = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(t.path()).unwrap();
    let mut l = Layer::new();
    for i in 0..200 {
        l.file(&format!("d{}/f{i}", i % 7), &vec![i as u8; 3000], 0o644);
    }
    let l = l.finish();
    let d = Digest::sha256(&l);
    std::thread::scope(|sc| {
        for _ in 0..4 {
            let (s, l, d) = (&s, &l, &d);
            sc.spawn(move || {
                let i = s.apply(None, &l[..], d, &ApplyOptions::default()).unwrap();
                assert_eq!(&i.chain_id, d);
            });
        }
    });
    assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    assert_eq!(
        fs::read(s.fs_path(&d).join("d3/f3")).unwrap(),
        vec![3u8; 3000]
    );
}
