//! Where registries are and how to reach them: docker's credentials file
//! (`~/.docker/config.json`: `auths`, `credsStore`, `credHelpers`) and
//! Berth's registries file (mirrors, insecure registries, the registry of
//! short names, the certificate directories).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::client::{ClientOptions, Credentials};
use crate::error::{Error, Result};

/// The key docker files Docker Hub's credentials under.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";

fn config_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Config {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The registry host part of a server name as users type it
/// (`https://host:port/v1/`, `host:port`), docker's ConvertToHostname.
pub fn hostname(server: &str) -> String {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// The key a registry's credentials have in `auths` (and the server URL
/// given to credential helpers).
pub fn auth_key(registry: &str) -> String {
    if hostname(registry) == "docker.io" {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        hostname(registry)
    }
}

/// Docker's client config file, kept as a JSON document so that fields
/// Berth does not know survive a `login`.
#[derive(Clone, Debug)]
pub struct AuthFile {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl AuthFile {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return PathBuf::from(d).join("config.json");
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map_or_else(|| PathBuf::from("/root"), PathBuf::from);
        home.join(".docker").join("config.json")
    }

    /// Reads the file; a missing one is empty.
    pub fn load(path: impl Into<PathBuf>) -> Result<AuthFile> {
        let path = path.into();
        let doc = match fs::read(&path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(config_err(&path, "not a JSON object")),
                Err(e) => return Err(config_err(&path, format!("not valid JSON: {e}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(err) => {
                return Err(Error::Io {
                    what: format!("reading {}", path.display()),
                    err,
                });
            }
        };
        let f = AuthFile { path, doc };
        // Shapes are checked now so that a broken file is named early.
        for key in ["auths", "credHelpers"] {
            if let Some(v) = f.doc.get(key)
                && !v.is_object()
            {
                return Err(config_err(&f.path, format!("{key:?} is not an object")));
            }
        }
        if let Some(v) = f.doc.get("credsStore")
            && !v.is_string()
        {
            return Err(config_err(&f.path, "\"credsStore\" is not a string"));
        }
        Ok(f)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper for `registry` (`credHelpers`, else
    /// `credsStore`).
    fn helper(&self, registry: &str) -> Option<String> {
        let host = hostname(registry);
        let key = auth_key(registry);
        self.doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|h| h.get(&host).or_else(|| h.get(&key)))
            .or_else(|| self.doc.get("credsStore"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// The `auths` entry for `registry`, under any of the spellings docker
    /// accepts (`host`, `https://host`, `http://host/v1/`, …).
    fn auth_entry(&self, registry: &str) -> Option<(&String, &Value)> {
        let host = hostname(registry);
        let auths = self.doc.get("auths")?.as_object()?;
        auths
            .get_key_value(&auth_key(registry))
            .or_else(|| auths.iter().find(|(k, _)| hostname(k) == host))
    }

    /// The credentials stored for `registry`, if any.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(helper) = self.helper(registry) {
            return helper_get(&helper, &auth_key(registry));
        }
        let Some((key, entry)) = self.auth_entry(registry) else {
            return Ok(None);
        };
        let bad = |reason: &str| config_err(&self.path, format!("auths[{key:?}]: {reason}"));
        if let Some(t) = entry.get("identitytoken").and_then(Value::as_str)
            && !t.is_empty()
        {
            return Err(bad(
                "identity tokens (OAuth refresh tokens) are not supported; log in with a password or access token",
            ));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            return Ok(Some(Credentials::new(u, p)));
        }
        let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
            return Ok(None);
        };
        if auth.is_empty() {
            return Ok(None);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| bad(&format!("\"auth\" is not base64: {e}")))?;
        let raw = String::from_utf8(raw).map_err(|_| bad("\"auth\" is not UTF-8"))?;
        let (u, p) = raw
            .split_once(':')
            .ok_or_else(|| bad("\"auth\" is not user:password"))?;
        Ok(Some(Credentials::new(u, p)))
    }

    /// Stores credentials for `registry`: with its credential helper when
    /// there is one (the file then keeps an empty entry, as docker's does),
    /// else base64 in `auths`. The file is replaced atomically, mode 0600.
    pub fn store(&mut self, registry: &str, creds: &Credentials) -> Result<()> {
        let key = auth_key(registry);
        let entry = if let Some(helper) = self.helper(registry) {
            helper_store(&helper, &key, creds)?;
            Value::Object(Map::new())
        } else {
            let raw = format!("{}:{}", creds.username, creds.password);
            let mut m = Map::new();
            m.insert(
                "auth".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
            );
            Value::Object(m)
        };
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(a) = auths.as_object_mut() {
            // Other spellings of the same registry go: one entry remains.
            let host = hostname(registry);
            a.retain(|k, _| hostname(k) != host);
            a.insert(key, entry);
        }
        self.save()
    }

    /// Removes `registry`'s credentials; false when there were none.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        let mut found = false;
        if let Some(helper) = self.helper(registry) {
            found |= helper_erase(&helper, &auth_key(registry))?;
        }
        let host = hostname(registry);
        if let Some(a) = self.doc.get_mut("auths").and_then(Value::as_object_mut) {
            let before = a.len();
            a.retain(|k, _| hostname(k) != host);
            found |= a.len() != before;
        }
        if found {
            self.save()?;
        }
        Ok(found)
    }

    fn save(&self) -> Result<()> {
        let io = |what: &str, err| Error::Io {
            what: format!("{what} {}", self.path.display()),
            err,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        let mut bytes = serde_json::to_vec_pretty(&Value::Object(self.doc.clone()))
            .map_err(|e| config_err(&self.path, e.to_string()))?;
        bytes.push(b'\n');
        let tmp = dir.join(format!(
            ".{}.{}",
            self.path
                .file_name()
                .map_or_else(|| "config.json".into(), |n| n.to_string_lossy()),
            std::process::id()
        ));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("writing", e))?;
        let _ = f.set_permissions(fs::Permissions::from_mode(0o600));
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io("writing", e))?;
        fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io("replacing", e)
        })
    }
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<(bool, String)> {
    let program = format!("docker-credential-{helper}");
    let err = |reason: String| Error::Config {
        path: program.clone(),
        reason,
    };
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run the credential helper: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| err(format!("writing to the credential helper: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("waiting for the credential helper: {e}")))?;
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if text.is_empty() {
        text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    }
    Ok((out.status.success(), text))
}

fn is_not_found(text: &str) -> bool {
    text.contains("credentials not found")
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let (ok, text) = run_helper(helper, "get", server.as_bytes())?;
    if !ok {
        if is_not_found(&text) {
            return Ok(None);
        }
        return Err(Error::Config {
            path: format!("docker-credential-{helper}"),
            reason: format!("get {server}: {text}"),
        });
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let a: Answer = serde_json::from_str(&text).map_err(|e| Error::Config {
        path: format!("docker-credential-{helper}"),
        reason: format!("get {server}: not a credentials answer: {e}"),
    })?;
    if a.username == "<token>" {
        return Err(Error::Config {
            path: format!("docker-credential-{helper}"),
            reason: format!("{server}: identity tokens are not supported"),
        });
    }
    Ok(Some(Credentials::new(a.username, a.secret)))
}

fn helper_store(helper: &str, server: &str, c: &Credentials) -> Result<()> {
    let input = serde_json::json!({
        "ServerURL": server,
        "Username": c.username,
        "Secret": c.password,
    });
    let (ok, text) = run_helper(helper, "store", input.to_string().as_bytes())?;
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            path: format!("docker-credential-{helper}"),
            reason: format!("store {server}: {text}"),
        })
    }
}

fn helper_erase(helper: &str, server: &str) -> Result<bool> {
    let (ok, text) = run_helper(helper, "erase", server.as_bytes())?;
    if ok {
        Ok(true)
    } else if is_not_found(&text) {
        Ok(false)
    } else {
        Err(Error::Config {
            path: format!("docker-credential-{helper}"),
            reason: format!("erase {server}: {text}"),
        })
    }
}

/// Berth's registries file (`/etc/berth/registries.json`, or
/// `$BERTH_REGISTRIES_CONFIG`):
///
/// ```json
/// {
///   "default-registry": "docker.io",
///   "insecure-registries": ["reg.lan:5000"],
///   "registry-mirrors": {"docker.io": ["mirror.lan:5000"]},
///   "certs-dirs": ["/etc/berth/certs.d", "/etc/docker/certs.d"]
/// }
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RegistriesConfig {
    /// Where names without a registry (`busybox`) are pulled from.
    #[serde(default = "default_registry")]
    pub default_registry: String,
    /// Registries reached over plain HTTP (besides loopback).
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Mirrors tried in order for pulls from a registry, before it.
    #[serde(default)]
    pub registry_mirrors: BTreeMap<String, Vec<String>>,
    /// Directories with a `HOST[:PORT]/` directory of `*.crt` CAs and a
    /// `*.cert`/`*.key` client pair per registry.
    #[serde(default = "default_certs_dirs")]
    pub certs_dirs: Vec<PathBuf>,
}

fn default_registry() -> String {
    "docker.io".into()
}

fn default_certs_dirs() -> Vec<PathBuf> {
    vec![
        PathBuf::from("/etc/berth/certs.d"),
        PathBuf::from("/etc/docker/certs.d"),
    ]
}

impl Default for RegistriesConfig {
    fn default() -> Self {
        RegistriesConfig {
            default_registry: default_registry(),
            insecure_registries: Vec::new(),
            registry_mirrors: BTreeMap::new(),
            certs_dirs: default_certs_dirs(),
        }
    }
}

impl RegistriesConfig {
    pub const DEFAULT_PATH: &str = "/etc/berth/registries.json";

    /// `$BERTH_REGISTRIES_CONFIG`, else the default path; a missing file
    /// is the defaults.
    pub fn load_default() -> Result<RegistriesConfig> {
        let path = std::env::var_os("BERTH_REGISTRIES_CONFIG")
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from(Self::DEFAULT_PATH), PathBuf::from);
        Self::load(&path)
    }

    pub fn load(path: &Path) -> Result<RegistriesConfig> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistriesConfig::default());
            }
            Err(err) => {
                return Err(Error::Io {
                    what: format!("reading {}", path.display()),
                    err,
                });
            }
        };
        let c: RegistriesConfig =
            serde_json::from_slice(&bytes).map_err(|e| config_err(path, e.to_string()))?;
        if c.default_registry.is_empty() || c.default_registry.contains('/') {
            return Err(config_err(
                path,
                format!(
                    "default-registry {:?} is not a host[:port]",
                    c.default_registry
                ),
            ));
        }
        Ok(c)
    }

    /// The host that serves `registry`'s API (Docker Hub's is not
    /// `docker.io`).
    pub fn endpoint(registry: &str) -> String {
        if hostname(registry) == "docker.io" {
            DOCKER_HUB_REGISTRY.to_string()
        } else {
            registry.to_string()
        }
    }

    /// The mirrors of `registry`, in order.
    pub fn mirrors(&self, registry: &str) -> &[String] {
        let host = hostname(registry);
        self.registry_mirrors
            .iter()
            .find(|(k, _)| hostname(k) == host)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// Client options for `endpoint` (a registry or mirror host[:port]):
    /// insecure list, certs.d material.
    pub fn client_options(&self, endpoint: &str) -> Result<ClientOptions> {
        let mut opts = ClientOptions {
            insecure: self.insecure_registries.clone(),
            ..ClientOptions::default()
        };
        for dir in &self.certs_dirs {
            let d = dir.join(endpoint);
            let Ok(rd) = fs::read_dir(&d) else { continue };
            let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            names.sort();
            let read = |p: &Path| {
                fs::read(p).map_err(|err| Error::Io {
                    what: format!("reading {}", p.display()),
                    err,
                })
            };
            let mut cert = None;
            let mut key = None;
            for p in names {
                match p.extension().and_then(|e| e.to_str()) {
                    Some("crt") => opts.ca_certs.push(read(&p)?),
                    Some("cert") => cert = Some(read(&p)?),
                    Some("key") => key = Some(read(&p)?),
                    _ => {}
                }
            }
            match (cert, key) {
                (Some(mut c), Some(k)) => {
                    c.push(b'\n');
                    c.extend(k);
                    opts.identity = Some(c);
                }
                (None, None) => {}
                _ => {
                    return Err(config_err(
                        &d,
                        "a client certificate needs both a .cert and a .key file",
                    ));
                }
            }
        }
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_and_keys() {
        assert_eq!(hostname("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(hostname("docker.io"), "docker.io");
        assert_eq!(hostname("http://Reg.Lan:5000/v2/"), "reg.lan:5000");
        assert_eq!(auth_key("docker.io"), DOCKER_HUB_AUTH_KEY);
        assert_eq!(auth_key("https://reg.lan:5000"), "reg.lan:5000");
        assert_eq!(RegistriesConfig::endpoint("docker.io"), DOCKER_HUB_REGISTRY);
        assert_eq!(RegistriesConfig::endpoint("reg:1"), "reg:1");
    }

    #[test]
    fn auth_file_round_trip_keeps_unknown_fields() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.json");
        fs::write(
            &p,
            r#"{"auths":{"https://reg.lan:5000/v1/":{"auth":"b2xkOm9sZA=="}},"psFormat":"x"}"#,
        )
        .unwrap();
        let mut f = AuthFile::load(&p).unwrap();
        assert_eq!(
            f.credentials("reg.lan:5000").unwrap(),
            Some(Credentials::new("old", "old"))
        );
        f.store("reg.lan:5000", &Credentials::new("u", "p:w"))
            .unwrap();
        let f = AuthFile::load(&p).unwrap();
        assert_eq!(
            f.credentials("reg.lan:5000").unwrap(),
            Some(Credentials::new("u", "p:w"))
        );
        let v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "x");
        assert_eq!(v["auths"].as_object().unwrap().len(), 1);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut f = AuthFile::load(&p).unwrap();
        assert!(f.erase("reg.lan:5000").unwrap());
        assert!(!f.erase("reg.lan:5000").unwrap());
        assert_eq!(f.credentials("reg.lan:5000").unwrap(), None);
    }

    #[test]
    fn broken_files_are_named() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.json");
        fs::write(&p, "{not json").unwrap();
        let e = AuthFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("JSON"), "{e}");
        fs::write(&p, r#"{"auths":{"r":{"auth":"!!"}}}"#).unwrap();
        let e = AuthFile::load(&p)
            .unwrap()
            .credentials("r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("base64"), "{e}");
        let r = t.path().join("registries.json");
        fs::write(&r, r#"{"mirrors":{}}"#).unwrap();
        let e = RegistriesConfig::load(&r).unwrap_err().to_string();
        assert!(e.contains("mirrors"), "{e}");
    }

    #[test]
    fn registries_file() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("registries.json");
        fs::write(
            &r,
            r#"{"insecure-registries":["a:1"],"registry-mirrors":{"docker.io":["m:5000"]},"certs-dirs":[]}"#,
        )
        .unwrap();
        let c = RegistriesConfig::load(&r).unwrap();
        assert_eq!(c.default_registry, "docker.io");
        assert_eq!(c.mirrors("index.docker.io"), ["m:5000".to_string()]);
        assert!(c.mirrors("quay.io").is_empty());
        assert_eq!(c.client_options("a:1").unwrap().insecure, ["a:1"]);
        assert_eq!(
            RegistriesConfig::load(&t.path().join("none")).unwrap(),
            RegistriesConfig::default()
        );
    }
}
