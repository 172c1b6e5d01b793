//! The fuzz targets: one function per parser that takes outside input, each given arbitrary
//! bytes. A target returns normally on any input; a panic, an abort or a hang is a finding.
//! Where a parse succeeds, the target also checks what must then hold (a reference prints
//! back to itself, a layer lands inside its directory, a DNS answer is a response to the
//! query's id).
//!
//! `fuzz_targets/*.rs` hand these to libFuzzer (`bench/fuzz.sh`, nightly + cargo-fuzz);
//! `tests/smoke.rs` runs every target on the committed seed corpora (`corpus/TARGET/`) and a
//! few thousand deterministic mutations of them on stable Rust, in the normal test suite.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

#[path = "../../crates/cli/src/tmpl.rs"]
#[allow(dead_code)]
mod tmpl;

/// A fuzz target: arbitrary bytes in, a panic on a finding.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz_targets/*.rs` and `corpus/*`).
pub const TARGETS: &[(&str, Target)] = &[
    ("reference", reference),
    ("manifest", manifest),
    ("image_config", image_config),
    ("layer_apply", layer_apply),
    ("archive_load", archive_load),
    ("runtime_spec", runtime_spec),
    ("auth_file", auth_file),
    ("registries_config", registries_config),
    ("www_authenticate", www_authenticate),
    ("template", template),
    ("dockerfile", dockerfile),
    ("dockerignore", dockerignore),
    ("dns_query", dns_query),
    ("port_spec", port_spec),
    ("api_create", api_create),
    ("link_header", link_header),
];

fn text(data: &[u8]) -> &str {
    std::str::from_utf8(data).unwrap_or("")
}

/// Image references (`berth pull NAME`, image names in archives and Dockerfiles): whatever
/// parses prints back to a reference that parses to the same thing.
pub fn reference(data: &[u8]) {
    type Parse = fn(&str) -> berth_image::Result<berth_image::Reference>;
    let s = text(data);
    for parse in [
        berth_image::Reference::parse as Parse,
        berth_image::Reference::parse_normalized as Parse,
    ] {
        if let Ok(parsed) = parse(s) {
            let again = parse(&parsed.to_string())
                .unwrap_or_else(|e| panic!("{parsed} does not parse back: {e}"));
            assert_eq!(again, parsed);
        }
    }
}

/// Manifests and indexes from a registry or an archive, with and without a media type.
pub fn manifest(data: &[u8]) {
    for mt in [
        None,
        Some("application/vnd.oci.image.manifest.v1+json"),
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
        Some("application/vnd.docker.distribution.manifest.list.v2+json"),
        Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    ] {
        let _ = berth_image::manifest::parse_document(data, mt);
    }
}

/// Image configs (`config` blobs).
pub fn image_config(data: &[u8]) {
    let _ = berth_image::ImageConfig::parse(data);
}

/// A layer tar (any compression) applied into a scratch directory: whatever it holds, nothing
/// lands outside that directory.
pub fn layer_apply(data: &[u8]) {
    let Ok(t) = tempfile::tempdir() else { return };
    let dir = t.path().join("layer");
    let beside = t.path().join("beside");
    if std::fs::create_dir(&dir).is_err() || std::fs::create_dir(&beside).is_err() {
        return;
    }
    let opts = berth_image::ApplyOptions {
        allow_devices: false,
        skip_devices: false,
        ..Default::default()
    };
    if let Ok((_, reader)) = berth_image::layer::decompress(data) {
        let _ = berth_image::apply_layer(reader, &dir, &opts);
    }
    let names: Vec<_> = std::fs::read_dir(t.path())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        names.len(),
        2,
        "the layer wrote beside its directory: {names:?}"
    );
    assert_eq!(
        std::fs::read_dir(&beside).map(|d| d.count()).unwrap_or(0),
        0,
        "the layer wrote into a sibling directory"
    );
}

/// `berth load` of a docker-archive or OCI-layout tar, into a scratch store.
pub fn archive_load(data: &[u8]) {
    let Ok(t) = tempfile::tempdir() else { return };
    let Ok(store) = berth_image::ImageStore::open(t.path().join("store")) else {
        return;
    };
    let opts = berth_image::LoadOptions {
        apply: berth_image::ApplyOptions {
            allow_devices: false,
            skip_devices: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let _ = berth_image::load(&store, data, &opts);
    // What is left must be consistent: every image lists, and its config reads.
    if let Ok(images) = store.list() {
        for i in images {
            let _ = store.config(&i);
        }
    }
}

/// A bundle's `config.json` (berth-oci's input from containerd, podman, docker).
pub fn runtime_spec(data: &[u8]) {
    let _ = berth_runtime::spec::parse_spec(data, Path::new("/fuzz/config.json"));
}

fn with_file(data: &[u8], f: impl FnOnce(&Path)) {
    let Ok(mut tmp) = tempfile::NamedTempFile::new() else {
        return;
    };
    if tmp.write_all(data).is_ok() {
        f(tmp.path());
    }
}

/// `~/.docker/config.json` (credentials, credential helpers).
pub fn auth_file(data: &[u8]) {
    with_file(data, |p| {
        let _ = berth_registry::config::AuthFile::load(p);
    });
}

/// `/etc/berth/registries.json` (mirrors, insecure registries).
pub fn registries_config(data: &[u8]) {
    with_file(data, |p| {
        let _ = berth_registry::config::RegistriesConfig::load(p);
    });
}

/// A registry's `WWW-Authenticate` header.
pub fn www_authenticate(data: &[u8]) {
    let _ = berth_registry::challenge::parse(text(data));
}

/// `--format` Go templates: the template up to the first newline, executed on the JSON
/// after it (or on a container-like object).
pub fn template(data: &[u8]) {
    let s = text(data);
    let (src, json) = s.split_once('\n').unwrap_or((s, ""));
    let value = serde_json::from_str(json).unwrap_or_else(|_| {
        serde_json::json!({"ID": "abc", "Names": "x", "Labels": {"a": "b"}, "Ports": [1, 2],
            "State": {"Status": "running", "Pid": 7}})
    });
    if let Ok(t) = tmpl::Template::parse(src) {
        let _ = t.execute(&value, false);
        let _ = t.execute(&value, true);
    }
}

/// Dockerfiles: parse, plan the stages, expand every instruction's words.
pub fn dockerfile(data: &[u8]) {
    let Ok(df) = berth_build::parse(text(data)) else {
        return;
    };
    let _ = berth_build::stages::plan(&df, &berth_build::stages::BuildOptions::default());
    let lex = berth_build::shell::Lexer::new('\\');
    let vars: std::collections::BTreeMap<String, String> =
        [("A".to_string(), "x y".to_string())].into();
    for line in text(data).lines().take(64) {
        let _ = lex.process_word(line, &vars);
        let _ = lex.process_words(line, &vars);
    }
}

/// `.dockerignore` patterns, matched against a few paths.
pub fn dockerignore(data: &[u8]) {
    if let Ok(m) = berth_build::dockerignore::Matcher::parse(text(data)) {
        for p in [
            "a",
            "a/b",
            "Dockerfile",
            ".dockerignore",
            "x/y/z.go",
            "../up",
            "/abs",
        ] {
            let _ = m.is_excluded(p, false);
            let _ = m.is_excluded(p, true);
        }
    }
}

struct Names;

impl berth_net::dns::Names for Names {
    fn addresses(&mut self, name: &str) -> Option<Vec<IpAddr>> {
        (name == "web" || name.len() == 12).then(|| {
            vec![
                IpAddr::from([10, 1, 0, 2]),
                IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 2]),
            ]
        })
    }
    fn name_of(&mut self, address: IpAddr) -> Option<String> {
        (address == IpAddr::from([10, 1, 0, 2])).then(|| "web.net".into())
    }
}

/// A DNS query to a container's resolver (sent by whatever runs in the container): an
/// answer is a response carrying the query's id.
pub fn dns_query(data: &[u8]) {
    if let berth_net::dns::Outcome::Reply(r) = berth_net::dns::answer(data, &mut Names, 1) {
        assert!(r.len() >= 12, "a reply shorter than a header");
        assert_eq!(r[..2], data[..2], "a reply with another id");
        assert_ne!(r[2] & 0x80, 0, "a reply that is not a response");
    }
}

/// `-p` specifications.
pub fn port_spec(data: &[u8]) {
    let _ = berth_net::ports::parse_port_spec(text(data));
}

/// Engine API `POST /containers/create` bodies (JSON from any client on the socket): what
/// the API makes of them, then the checks `create` runs before it makes anything (the
/// namespace modes, capabilities, resource limits: they must refuse, never panic); a config
/// the API accepts is stored as JSON and must read back as itself.
pub fn api_create(data: &[u8]) {
    let Ok(cfg) = berth_api::container_config(data) else {
        return;
    };
    let _ = cfg.validate_namespaces();
    let _ = berth_engine::spec::capabilities(&cfg);
    let _ = berth_engine::spec::limits(&cfg);
    for r in &cfg.device_cgroup_rules {
        let _ = berth_engine::config::device_cgroup_rule(r);
    }
    for l in &cfg.links {
        let _ = berth_engine::links::parse(l);
    }
    let stored = serde_json::to_string(&cfg).expect("a RunConfig serializes");
    let back: berth_engine::RunConfig = serde_json::from_str(&stored)
        .unwrap_or_else(|e| panic!("{stored} does not read back: {e}"));
    assert_eq!(back, cfg, "{stored}");
}

/// A registry's `Link` header (tag list pagination): the next page is a part of the header
/// between `<` and `>`.
pub fn link_header(data: &[u8]) {
    let h = text(data);
    if let Some(n) = berth_registry::next_link(h) {
        assert!(!n.contains('>'), "{n:?} from {h:?}");
        assert!(h.contains(&format!("<{n}>")), "{n:?} from {h:?}");
    }
}
