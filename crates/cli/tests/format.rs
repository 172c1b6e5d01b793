//! `--format` (docker's Go templates, `table`, `json`) for `berth images`,
//! `berth image inspect` and `berth history`, on busybox images built in the
//! test from Debian's /bin/busybox (busybox-static).

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{berth, fails, ok};

fn busybox_tar(dir: &Path) -> PathBuf {
    let bb = Path::new("/bin/busybox");
    assert!(bb.is_file(), "needs Debian's busybox-static (/bin/busybox)");
    let mut b = tar::Builder::new(Vec::new());
    let mut dirh = tar::Header::new_gnu();
    dirh.set_entry_type(tar::EntryType::Directory);
    dirh.set_mode(0o755);
    dirh.set_size(0);
    b.append_data(&mut dirh, "bin", std::io::empty()).unwrap();
    let data = std::fs::read(bb).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "bin/busybox", &data[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bin/sh", "busybox").unwrap();
    let p = dir.join("busybox.tar");
    std::fs::write(&p, b.into_inner().unwrap()).unwrap();
    p
}

/// Imports busybox as `busybox:1` (ENV, CMD, a comment) and tags it
/// `example.com/tools/bb:latest`; its full id.
fn setup(dir: &Path, root: &Path) -> String {
    let tarball = busybox_tar(dir);
    let id = ok(
        root,
        &[
            "import",
            "-c",
            "CMD [\"sh\"]",
            "-c",
            "ENV A=1",
            "-m",
            "busybox from debian",
            tarball.to_str().unwrap(),
            "busybox:1",
        ],
    );
    ok(root, &["tag", "busybox:1", "example.com/tools/bb"]);
    id.trim().to_string()
}

#[test]
fn images_format() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let id = setup(t.path(), &root);
    let short = &id[7..19];

    // A bare template: one line a row, no header, no alignment.
    let out = ok(
        &root,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
    );
    assert_eq!(
        out,
        format!("busybox:1 {short}\nexample.com/tools/bb:latest {short}\n")
    );
    let out = ok(
        &root,
        &["images", "--no-trunc", "--format", "{{.ID}}", "busybox"],
    );
    assert_eq!(out, format!("{id}\n"));
    let out = ok(
        &root,
        &[
            "images",
            "--format",
            "{{.CreatedSince}}|{{.Size}}|{{.Digest}}",
        ],
    );
    let first = out.lines().next().unwrap();
    let parts: Vec<_> = first.split('|').collect();
    assert!(parts[0].ends_with(" ago"), "{out}");
    assert!(parts[1].ends_with("MB"), "{out}");
    assert_eq!(parts[2], "<none>");
    let out = ok(&root, &["images", "--format", "{{.CreatedAt}}", "busybox"]);
    assert!(out.trim_end().ends_with(" +0000 UTC"), "{out}");
    assert_eq!(out.len(), "2024-05-01 10:00:00 +0000 UTC\n".len(), "{out}");
    // Functions and control.
    let out = ok(
        &root,
        &[
            "images",
            "--format",
            "{{upper .Repository}}{{if eq .Tag \"latest\"}} (latest){{end}}",
        ],
    );
    assert_eq!(out, "BUSYBOX\nEXAMPLE.COM/TOOLS/BB (latest)\n");

    // table: docker's headers, tabwriter columns (minwidth 10, padding 3).
    let out = ok(
        &root,
        &[
            "images",
            "--format",
            "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}",
        ],
    );
    assert_eq!(
        out,
        format!(
            "REPOSITORY             TAG       IMAGE ID\n\
             busybox                1         {short}\n\
             example.com/tools/bb   latest    {short}\n"
        )
    );
    // `table` alone is the default table.
    assert_eq!(
        ok(&root, &["images", "--format", "table"]),
        ok(&root, &["images"])
    );

    // json: one object a line, every field.
    let out = ok(&root, &["images", "--format", "json"]);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0]["Repository"], "busybox");
    assert_eq!(rows[0]["Tag"], "1");
    assert_eq!(rows[0]["ID"], short);
    assert_eq!(rows[1]["Repository"], "example.com/tools/bb");
    for k in [
        "Containers",
        "CreatedAt",
        "CreatedSince",
        "Digest",
        "SharedSize",
        "Size",
        "UniqueSize",
        "VirtualSize",
    ] {
        assert!(rows[0][k].is_string(), "{k}: {out}");
    }

    // -q wins over --format, as docker's.
    assert_eq!(
        ok(&root, &["images", "-q", "--format", "{{.Repository}}"]),
        format!("{short}\n")
    );
}

#[test]
fn bad_templates_fail_as_docker() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    setup(t.path(), &root);
    let e = fails(&root, &["images", "--format", "{{.Repository"], 1);
    assert!(
        e.contains("template parsing error: template: :1: unclosed action"),
        "{e}"
    );
    let e = fails(&root, &["images", "--format", "{{nope .ID}}"], 1);
    assert!(e.contains("function \"nope\" not defined"), "{e}");
    let e = fails(&root, &["images", "--format", "{{if .ID}}x"], 1);
    assert!(e.contains("template: :1: unexpected EOF"), "{e}");
    // A field images don't have: docker's struct error.
    let e = fails(&root, &["images", "--format", "{{.Nope}}"], 1);
    assert!(
        e.contains("template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope"),
        "{e}"
    );
    let e = fails(&root, &["history", "--format", "{{.ID", "busybox:1"], 1);
    assert!(e.contains("template parsing error"), "{e}");
    let e = fails(
        &root,
        &["image", "inspect", "-f", "{{end}}", "busybox:1"],
        1,
    );
    assert!(e.contains("template: :1: unexpected {{end}}"), "{e}");
    let e = fails(
        &root,
        &[
            "image",
            "inspect",
            "-f",
            "{{index .RepoTags 5}}",
            "busybox:1",
        ],
        1,
    );
    assert!(e.contains("index out of range: 5"), "{e}");
}

#[test]
fn inspect_format() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let id = setup(t.path(), &root);
    let f = |tmpl: &str| ok(&root, &["image", "inspect", "--format", tmpl, "busybox:1"]);
    assert_eq!(f("{{.Id}}"), format!("{id}\n"));
    assert_eq!(f("{{index .RepoTags 0}}"), "busybox:1\n");
    assert_eq!(
        f("{{range .RepoTags}}{{.}} {{end}}"),
        "busybox:1 example.com/tools/bb:latest \n"
    );
    assert_eq!(f("{{len .RepoTags}}"), "2\n");
    assert_eq!(
        f("{{join .RepoTags \",\"}}"),
        "busybox:1,example.com/tools/bb:latest\n"
    );
    assert_eq!(f("{{.Config.Cmd}}"), "[sh]\n");
    let env = f("{{.Config.Env}}");
    assert!(env.starts_with('[') && env.contains("A=1"), "{env}");
    let cfg: Value = serde_json::from_str(&f("{{json .Config}}")).unwrap();
    assert_eq!(cfg["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(
        f("{{.Comment}} {{.Os}}/{{.Architecture}}")
            .split(' ')
            .count(),
        4
    );
    assert!(f("{{.Comment}}").starts_with("busybox from debian"));
    assert_eq!(f("{{.Nope}}"), "<no value>\n");
    let size: u64 = f("{{.Size}}").trim().parse().unwrap();
    assert!(size > 100_000);
    // The index of A=1 in Env.
    let i = f("{{range $i, $e := .Config.Env}}{{if eq $e \"A=1\"}}{{$i}}{{end}}{{end}}");
    assert!(i.trim().parse::<usize>().is_ok(), "{i}");
    // -f, several images, one line each; a missing one still fails.
    let out = ok(
        &root,
        &[
            "image",
            "inspect",
            "-f",
            "{{.Id}}",
            "busybox:1",
            "example.com/tools/bb",
        ],
    );
    assert_eq!(out, format!("{id}\n{id}\n"));
    let o = berth(&root, &["inspect", "-f", "{{.Id}}", "busybox:1", "nope:1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), format!("{id}\n"));

    // json: `{{json .}}`, one line, docker's key order, the same object as
    // the plain inspect's.
    let out = f("json");
    assert_eq!(out.lines().count(), 1);
    assert!(
        out.starts_with(&format!("{{\"Id\":\"{id}\",\"RepoTags\":")),
        "{out}"
    );
    let one: Value = serde_json::from_str(&out).unwrap();
    let all: Value = serde_json::from_str(&ok(&root, &["image", "inspect", "busybox:1"])).unwrap();
    assert_eq!(one, all[0]);
    assert_eq!(f("{{json .}}"), out);
}

#[test]
fn history_format() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let id = setup(t.path(), &root);
    let short = &id[7..19];
    let out = ok(
        &root,
        &[
            "history",
            "--format",
            "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
            "busybox:1",
        ],
    );
    let l: Vec<_> = out.lines().collect();
    assert_eq!(l.len(), 1, "{out}");
    let parts: Vec<_> = l[0].split('|').collect();
    assert_eq!(parts[0], short);
    assert!(parts[2].ends_with("MB"), "{out}");
    assert_eq!(parts[3], "busybox from debian");
    let out = ok(
        &root,
        &[
            "history",
            "--human=false",
            "--format",
            "{{.Size}} {{.CreatedAt}}",
            "busybox:1",
        ],
    );
    let (size, at) = out.trim().split_once(' ').unwrap();
    assert!(size.parse::<u64>().unwrap() > 100_000, "{out}");
    assert!(at.ends_with('Z') && at.contains('T'), "{out}");

    let out = ok(
        &root,
        &[
            "history",
            "--format",
            "table {{.ID}}\\t{{.Size}}",
            "busybox:1",
        ],
    );
    let l: Vec<_> = out.lines().collect();
    assert_eq!(l[0], "IMAGE          SIZE");
    assert!(l[1].starts_with(&format!("{short}   ")), "{out}");

    let out = ok(&root, &["history", "--format", "json", "busybox:1"]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ID"], short);
    assert_eq!(v["Comment"], "busybox from debian");
    for k in ["CreatedAt", "CreatedBy", "CreatedSince", "Size"] {
        assert!(v[k].is_string(), "{k}: {out}");
    }
}
