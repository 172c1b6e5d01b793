//! The command table as a user meets it: `--help`/`-h` on every command,
//! `berth help CMD`, the grouped command list, suggestions for a mistyped
//! command or flag, "not supported yet" for docker's commands and flags
//! Berth lacks, and `berth completion`. No container runs here: a fresh
//! state root is enough.
//!
//! The reference layouts are docker CLI 28.x's (`/usr/local/bin/docker
//! run --help`, `docker network --help`, `docker ps --nmae`).

use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::{berth, fails, ok};

fn root() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The titled sections of `berth --help` (`Common Commands:`, …, `Global
/// Options:`), each with the first word of its entries.
fn sections(help: &str) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = Vec::new();
    for l in help.lines() {
        if !l.starts_with(' ') && l.ends_with(':') {
            v.push((l.to_string(), vec![]));
        } else if let (Some(entry), Some(last)) = (l.strip_prefix("  "), v.last_mut())
            && let Some(name) = entry.split_whitespace().next()
        {
            last.1.push(name.to_string());
        }
    }
    v
}

#[test]
fn top_level_help_groups_commands_as_docker_does() {
    let t = root();
    let bare = ok(t.path(), &[]);
    let help = ok(t.path(), &["--help"]);
    assert_eq!(bare, help);
    assert_eq!(ok(t.path(), &["help"]), help);
    assert!(
        help.starts_with("Usage:  berth [OPTIONS] COMMAND\n"),
        "{help}"
    );
    let s = sections(&help);
    let titles: Vec<&str> = s.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        &titles[..4],
        [
            "Common Commands:",
            "Management Commands:",
            "Swarm Commands:",
            "Commands:"
        ],
        "{help}"
    );
    // docker's order of the common ones.
    assert_eq!(
        &s[0].1[..5],
        ["run", "exec", "ps", "build", "pull"],
        "{help}"
    );
    for o in ["container", "image", "network", "volume", "system"] {
        assert!(s[1].1.iter().any(|x| x == o), "{o} in {help}");
    }
    assert!(s[3].1.iter().any(|x| x == "rm"), "{help}");
    assert!(s[3].1.iter().any(|x| x == "wait"), "{help}");
    // What berth lacks is marked as such.
    let search = help.lines().find(|l| l.starts_with("  search ")).unwrap();
    assert!(search.contains("not supported yet"), "{search}");
    let build = help.lines().find(|l| l.starts_with("  build ")).unwrap();
    assert!(!build.contains("not supported"), "{build}");
    let run = help.lines().find(|l| l.starts_with("  run ")).unwrap();
    assert!(!run.contains("not supported"), "{run}");
}

#[test]
fn every_command_answers_help() {
    let t = root();
    // Every name the top-level help lists, and every subcommand each
    // management command lists.
    let help = ok(t.path(), &["--help"]);
    let s = sections(&help);
    let mut checked = 0;
    for name in &s[3].1 {
        let out = ok(t.path(), &[name, "--help"]);
        assert!(
            out.starts_with(&format!("Usage:  berth {name} ")),
            "{name}: {out}"
        );
        checked += 1;
    }
    for o in ["container", "image", "network", "volume", "system"] {
        let list = ok(t.path(), &[o]);
        assert_eq!(ok(t.path(), &[o, "--help"]), list);
        assert!(
            list.starts_with(&format!("Usage:  berth {o} COMMAND\n")),
            "{list}"
        );
        let subs: Vec<String> = list
            .lines()
            .skip_while(|l| *l != "Commands:")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect();
        assert!(subs.len() >= 3, "{list}");
        for sub in subs {
            let long = ok(t.path(), &[o, &sub, "--help"]);
            assert!(
                long.starts_with(&format!("Usage:  berth {o} {sub}")),
                "{o} {sub}: {long}"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn run_help_has_docker_layout() {
    let t = root();
    let out = ok(t.path(), &["run", "--help"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Usage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]"
    );
    assert_eq!(lines[2], "Create and run a new container from an image");
    assert_eq!(lines[4], "Aliases:");
    assert_eq!(lines[5], "  berth container run, berth run");
    assert_eq!(lines[7], "Options:");
    // Flag rows: `  -X, --long type   help`, the help column aligned.
    let env = lines.iter().find(|l| l.contains("--env list")).unwrap();
    assert!(env.starts_with("  -e, --env list "), "{env}");
    let name = lines.iter().find(|l| l.contains("--name string")).unwrap();
    assert!(name.starts_with("      --name string "), "{name}");
    let col = |l: &str| l.find("Set environment").or(l.find("Assign a name"));
    assert_eq!(col(env), col(name));
    assert!(out.contains("-p, --publish list"), "{out}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{out}");
    // Hidden spellings (`--net`) are accepted but not listed.
    assert!(!out.contains("--net "), "{out}");
    // `-h` is run's hostname: it wants a value, as in docker.
    let e = fails(t.path(), &["run", "-h"], 125);
    assert!(e.contains("flag needs an argument"), "{e}");
}

#[test]
fn help_command_and_flag_agree() {
    let t = root();
    for cmd in [&["ps"][..], &["container", "ls"], &["network", "create"]] {
        let mut a = vec!["help"];
        a.extend_from_slice(cmd);
        let mut b = cmd.to_vec();
        b.push("--help");
        let mut c = cmd.to_vec();
        c.push("-h");
        let h = ok(t.path(), &a);
        assert_eq!(h, ok(t.path(), &b), "{cmd:?}");
        assert_eq!(h, ok(t.path(), &c), "{cmd:?}");
    }
    // Aliases share one entry: `ps` is `container ls`.
    let ps = ok(t.path(), &["ps", "--help"]);
    assert!(
        ps.contains("berth container ls, berth container list, berth container ps, berth ps"),
        "{ps}"
    );
    let e = fails(t.path(), &["help", "nosuchthing"], 1);
    assert!(e.contains("unknown help topic"), "{e}");
}

#[test]
fn mistyped_command_or_flag_suggests_the_nearest() {
    let t = root();
    let e = fails(t.path(), &["imgaes"], 125);
    assert!(e.contains("unknown command: berth imgaes"), "{e}");
    assert!(e.contains("Did you mean this?\n\timages\n"), "{e}");
    let e = fails(t.path(), &["container", "lss"], 125);
    assert!(e.contains("Did you mean this?\n\tls\n"), "{e}");
    let e = fails(t.path(), &["ps", "--quite"], 125);
    assert!(e.starts_with("unknown flag: --quite\n"), "{e}");
    assert!(e.contains("Did you mean this?\n\t--quiet\n"), "{e}");
    assert!(e.contains("Usage:  berth ps [OPTIONS]"), "{e}");
    assert!(e.contains("Run 'berth ps --help'"), "{e}");
    // Nothing near: no suggestion.
    let e = fails(t.path(), &["zzzzzzzz"], 125);
    assert!(!e.contains("Did you mean"), "{e}");
}

#[test]
fn docker_commands_berth_lacks_are_named() {
    let t = root();
    for cmd in [
        &["compose", "up"][..],
        &["swarm", "init"],
        &["stack", "ls"],
        &["service", "ls"],
        &["plugin", "ls"],
        &["context", "ls"],
        &["trust", "inspect", "x"],
        &["manifest", "inspect", "x"],
        &["search", "x"],
    ] {
        let o = berth(t.path(), cmd);
        assert!(!o.status.success(), "{cmd:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains(&format!("berth does not support '{}", cmd[0])),
            "{cmd:?}: {e}"
        );
        assert!(!e.contains("not a berth command"), "{e}");
    }
    // A docker flag of a command berth has.
    let e = fails(t.path(), &["run", "--volume-driver", "nfs", "busybox"], 125);
    assert!(
        e.contains("berth does not support 'run --volume-driver' yet"),
        "{e}"
    );
    let e = fails(t.path(), &["ps", "--bogus"], 125);
    assert!(e.contains("unknown flag: --bogus"), "{e}");
    // `build` is an entry of the table like the rest (it had its own parser, whose
    // unknown flags were "unknown flag" whether docker has them or not).
    let e = fails(t.path(), &["build", "--cache-from", "x", "."], 125);
    assert!(
        e.contains("berth does not support 'build --cache-from' yet"),
        "{e}"
    );
    let e = fails(t.path(), &["buildx", "build", "--tga", "x", "."], 125);
    assert!(e.contains("Did you mean this?\n\t--tag\n"), "{e}");
    assert!(
        e.contains("Usage:  berth buildx build [OPTIONS] PATH | -"),
        "{e}"
    );
    let help = ok(t.path(), &["image", "build", "--help"]);
    assert!(help.contains("  -t, --tag stringArray"), "{help}");
    assert!(!help.contains("--force-rm"), "hidden: {help}");
    let help = ok(t.path(), &["builder", "--help"]);
    assert!(help.contains("prune       Remove build cache"), "{help}");
}

fn bash_complete(script: &Path, words: &str) -> String {
    let cmd = format!(
        "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _berth; echo \"${{COMPREPLY[*]}}\"",
        script.display()
    );
    let o = Command::new("bash")
        .args(["-c", &cmd])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn bash_completion_comes_from_the_table() {
    let t = root();
    let script = t.path().join("berth.bash");
    std::fs::write(&script, ok(t.path(), &["completion", "bash"])).unwrap();
    assert_eq!(bash_complete(&script, "berth netw"), "network");
    let subs = bash_complete(&script, "berth volume ''");
    for s in ["create", "inspect", "ls", "prune", "rm"] {
        assert!(subs.split(' ').any(|x| x == s), "{subs}");
    }
    assert_eq!(bash_complete(&script, "berth ps --qu"), "--quiet");
    assert_eq!(
        bash_complete(&script, "berth container ls --no-t"),
        "--no-trunc"
    );
    let flags = bash_complete(&script, "berth run --pu");
    assert!(
        flags.contains("--publish") && flags.contains("--pull"),
        "{flags}"
    );
    let e = fails(t.path(), &["completion", "tcsh"], 125);
    assert!(e.contains("bash, zsh or fish"), "{e}");
}

#[test]
fn zsh_and_fish_completion_scripts() {
    let t = root();
    let zsh = ok(t.path(), &["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef berth\n"), "{zsh}");
    assert!(zsh.contains("complete -F _berth berth"), "{zsh}");
    let fish = ok(t.path(), &["completion", "fish"]);
    assert!(
        fish.lines()
            .any(|l| l.starts_with("complete -c berth") && l.contains("-a run ")),
        "{fish}"
    );
    assert!(fish.contains("-l publish -s p -r"), "{fish}");
    // The scripts parse in their shells where those are installed.
    for (shell, text) in [("zsh", &zsh), ("fish", &fish)] {
        let Ok(mut child) = Command::new(shell)
            .arg("-n")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        else {
            continue;
        };
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
