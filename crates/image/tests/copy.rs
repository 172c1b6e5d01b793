//! `cp` paths resolved inside a container's root, never on the host.

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;

use berth_image::copy::{archive_path, extract_to, stat_in_root};

fn names(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut d = Vec::new();
            e.read_to_end(&mut d).unwrap();
            (e.path().unwrap().to_string_lossy().into_owned(), d)
        })
        .collect()
}

fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    // Raw name bytes, so that hostile names go in as they are.
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn container() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    fs::create_dir_all(r.join("etc")).unwrap();
    fs::write(r.join("etc/passwd"), b"container passwd\n").unwrap();
    fs::create_dir_all(r.join("dir/sub")).unwrap();
    fs::write(r.join("dir/a"), b"a").unwrap();
    fs::write(r.join("dir/sub/b"), b"b").unwrap();
    // Links that would leave the root if resolved on the host.
    symlink("/etc", r.join("abs")).unwrap();
    symlink("../../../../../../etc/passwd", r.join("dir/rel")).unwrap();
    t
}

#[test]
fn archives_resolve_inside_the_root() {
    let t = container();
    let r = t.path();
    let mut out = Vec::new();
    archive_path(r, "/abs/passwd", false, None, &mut out).unwrap();
    assert_eq!(
        names(&out),
        vec![("passwd".to_string(), b"container passwd\n".to_vec())]
    );
    let mut out = Vec::new();
    archive_path(r, "/dir/rel", true, None, &mut out).unwrap();
    assert_eq!(
        names(&out),
        vec![("passwd".to_string(), b"container passwd\n".to_vec())]
    );
    // Not followed: the link itself.
    let mut out = Vec::new();
    archive_path(r, "/dir/rel", false, None, &mut out).unwrap();
    let mut a = tar::Archive::new(&out[..]);
    let e = a.entries().unwrap().next().unwrap().unwrap();
    assert!(e.header().entry_type().is_symlink());

    let mut out = Vec::new();
    archive_path(r, "/dir", false, None, &mut out).unwrap();
    let n: Vec<String> = names(&out).into_iter().map(|x| x.0).collect();
    assert_eq!(n, ["dir", "dir/a", "dir/rel", "dir/sub", "dir/sub/b"]);
    let mut out = Vec::new();
    archive_path(r, "/dir/.", false, None, &mut out).unwrap();
    let n: Vec<String> = names(&out).into_iter().map(|x| x.0).collect();
    assert_eq!(n, ["a", "rel", "sub", "sub/b"]);
    let mut out = Vec::new();
    archive_path(r, "/dir/a", false, Some("renamed".as_ref()), &mut out).unwrap();
    assert_eq!(names(&out)[0].0, "renamed");
    // `..` stops at the root.
    let mut out = Vec::new();
    archive_path(r, "/../../etc/passwd", false, None, &mut out).unwrap();
    assert_eq!(names(&out)[0].1, b"container passwd\n");

    let e = archive_path(r, "/nope/x", false, None, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nope/x"), "{e}");
    assert!(stat_in_root(r, "/nope", false).unwrap().is_none());
    let st = stat_in_root(r, "/abs", true).unwrap().unwrap();
    assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFDIR);
    let st = stat_in_root(r, "/abs", false).unwrap().unwrap();
    assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
}

#[test]
fn extraction_stays_inside_the_root() {
    let t = container();
    let r = t.path();
    // Into a directory reached through an absolute symlink: the
    // container's /etc, not the host's.
    extract_to(r, "/abs", &tar_with("berth-cp-test", b"x")[..], false).unwrap();
    assert_eq!(fs::read(r.join("etc/berth-cp-test")).unwrap(), b"x");
    assert!(!std::path::Path::new("/etc/berth-cp-test").exists());

    // A hostile name is refused and writes nothing outside.
    let outside = t
        .path()
        .parent()
        .unwrap()
        .join(format!("berth-cp-evil-{}", std::process::id()));
    let evil = format!("../{}", outside.file_name().unwrap().to_string_lossy());
    assert!(extract_to(r, "/dir", &tar_with(&evil, b"evil")[..], false).is_err());
    assert!(!outside.exists());
    let e = extract_to(r, "/etc/passwd", &tar_with("x", b"x")[..], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a directory"), "{e}");
    let e = extract_to(r, "/missing", &tar_with("x", b"x")[..], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("/missing"), "{e}");
}
