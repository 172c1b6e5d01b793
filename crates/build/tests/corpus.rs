//! The Dockerfile corpus: every `good/*.Dockerfile` is parsed, planned (stages, dependencies,
//! what the default target needs) and expanded stage by stage; the result is compared with the
//! `.json` committed beside it. Every `bad/*.Dockerfile` must fail with the text of its `.err`.
//!
//! `BERTH_BLESS=1 cargo test -p berth-build --test corpus` rewrites the `.json` files (review
//! the diff before committing).

use std::fs;
use std::path::{Path, PathBuf};

use berth_build::parser::parse;
use berth_build::stages::{ArgScope, Base, BuildOptions, Platform, plan};
use serde_json::{Value, json};

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/dockerfiles")
        .join(kind)
}

fn files(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir(kind))
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    v.sort();
    v
}

/// Fixed options so the dumps do not depend on the host.
fn options() -> BuildOptions {
    let amd64 = Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    BuildOptions {
        build_platform: amd64.clone(),
        target_platform: amd64,
        ..BuildOptions::default()
    }
}

fn dump(text: &str) -> Result<Value, String> {
    let df = parse(text).map_err(|e| e.to_string())?;
    let opts = options();
    let p = plan(&df, &opts).map_err(|e| e.to_string())?;
    let lex = df.lexer();
    let mut stages = Vec::new();
    for st in &p.stages {
        let mut scope = ArgScope::for_plan(&p, &opts, &[]);
        let mut expanded = Vec::new();
        for ins in &st.instructions {
            let c = scope.process(ins, &lex).map_err(|e| e.to_string())?;
            expanded.push(json!({ "line": ins.start_line, "command": c }));
        }
        stages.push(json!({
            "index": st.index,
            "name": st.name,
            "base": match &st.base {
                Base::Scratch => json!("scratch"),
                Base::Image(i) => json!({ "image": i }),
                Base::Stage(s) => json!({ "stage": s }),
            },
            "platform": st.platform,
            "deps": st.deps.iter().map(|d| json!({ "stage": d.stage, "line": d.line, "kind": format!("{:?}", d.kind) })).collect::<Vec<_>>(),
            "images": st.images,
            "expanded": expanded,
            "run_env": scope.run_env(),
        }));
    }
    Ok(json!({
        "dockerfile": df,
        "plan": {
            "global_args": p.global_args,
            "target": p.target,
            "needed": p.needed,
            "levels": p.levels,
            "stages": stages,
        },
    }))
}

#[test]
fn good_dockerfiles_match_their_dumps() {
    let bless = std::env::var_os("BERTH_BLESS").is_some();
    let list = files("good");
    assert!(list.len() >= 10, "the corpus is missing");
    let mut failures = Vec::new();
    for path in list {
        let text = fs::read_to_string(&path).expect("read");
        let got = match dump(&text) {
            Ok(v) => serde_json::to_string_pretty(&v).expect("json") + "\n",
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let expected_path = path.with_extension("json");
        if bless {
            fs::write(&expected_path, &got).expect("write");
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != got {
            failures.push(format!(
                "{}: differs from {}\n--- got:\n{got}",
                path.display(),
                expected_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn bad_dockerfiles_fail_with_their_errors() {
    let list = files("bad");
    assert!(list.len() >= 15, "the corpus is missing");
    let mut failures = Vec::new();
    for path in list {
        let text = fs::read_to_string(&path).expect("read");
        let want = fs::read_to_string(path.with_extension("err")).expect("the .err beside it");
        match dump(&text) {
            Ok(_) => failures.push(format!(
                "{}: parsed, expected {}",
                path.display(),
                want.trim()
            )),
            Err(e) if e == want.trim_end() => {}
            Err(e) => failures.push(format!(
                "{}: got {e:?}, expected {:?}",
                path.display(),
                want.trim_end()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
