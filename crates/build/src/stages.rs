//! Build stages, ARG scoping and the stage graph (BuildKit's `dockerfile2llb` rules).
//!
//! * ARGs before the first `FROM` are global ("meta") args: they can be used in `FROM` lines
//!   (image and `--platform`) and must be declared again (`ARG NAME`, no value) inside a stage to
//!   be used there, where they take the global value. Anything else before the first `FROM` is
//!   an error.
//! * Inside a stage an `ARG` is in scope from its line to the end of the stage; its value is the
//!   `--build-arg` if given, else its default (expanded), else the global value. A valued
//!   `ARG` enters the stage's environment like an `ENV`: the later of the two wins (BuildKit).
//! * The predefined proxy args (`HTTP_PROXY`, `https_proxy`, `NO_PROXY`, `ALL_PROXY`, …) reach
//!   `RUN` from `--build-arg` without being declared and stay out of the image history unless
//!   declared.
//! * `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT`, `BUILDPLATFORM`, `BUILDOS`,
//!   `BUILDARCH`, `BUILDVARIANT` are set automatically in the global scope (for `FROM` lines)
//!   and reach a stage when it declares them.
//! * A stage's base is `scratch`, an earlier stage (names are case-insensitive) or an image.
//!   `COPY --from=` and `RUN --mount=…,from=` name a stage (by name or index, earlier or later)
//!   or else an image. The stages a `--target` needs (default: the last) are the transitive
//!   closure of these dependencies; [`Plan::levels`] groups them so that the stages of one level
//!   depend only on earlier levels (and can run in parallel).

use std::collections::BTreeMap;

use crate::parser::{ArgDecl, Command, CopySource, Dockerfile, Instruction};
use crate::shell::{self, Lexer, ShellError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    #[error(
        "Dockerfile:{line}: no build stage in current context ({instruction} before the first FROM)"
    )]
    NoStageContext {
        line: usize,
        instruction: &'static str,
    },
    #[error("dockerfile contains no stages to build")]
    NoStages,
    #[error("Dockerfile:{line}: duplicate stage name \"{name}\"")]
    DuplicateStageName { name: String, line: usize },
    #[error("target stage \"{0}\" could not be found")]
    UnknownTarget(String),
    #[error("Dockerfile:{line}: invalid stage index {index}")]
    InvalidStageIndex { index: usize, line: usize },
    #[error("Dockerfile:{line}: circular dependency detected on stage: {stage}")]
    Cycle { stage: String, line: usize },
    #[error("Dockerfile:{line}: {source}")]
    Substitution { line: usize, source: ShellError },
    #[error("Dockerfile:{line}: base name ({image}) should not be blank")]
    BlankBase { image: String, line: usize },
}

/// An OS/architecture/variant triple, as in `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on, in OCI/Go names.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The proxy args docker predefines.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The platform args BuildKit sets automatically.
pub const PLATFORM_ARGS: &[&str] = &[
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// What the user asked for: `--build-arg`, `--target`, platforms.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub build_platform: Platform,
    pub target_platform: Platform,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            build_args: BTreeMap::new(),
            target: None,
            build_platform: Platform::host(),
            target_platform: Platform::host(),
        }
    }
}

impl BuildOptions {
    /// The automatic values of [`PLATFORM_ARGS`].
    pub fn platform_args(&self) -> Vec<(String, String)> {
        let t = &self.target_platform;
        let b = &self.build_platform;
        [
            ("TARGETPLATFORM", t.to_string()),
            ("TARGETOS", t.os.clone()),
            ("TARGETARCH", t.architecture.clone()),
            ("TARGETVARIANT", t.variant.clone().unwrap_or_default()),
            ("BUILDPLATFORM", b.to_string()),
            ("BUILDOS", b.os.clone()),
            ("BUILDARCH", b.architecture.clone()),
            ("BUILDVARIANT", b.variant.clone().unwrap_or_default()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An image reference, expanded.
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyKind {
    /// `FROM <stage>`.
    Base,
    /// `COPY --from=<stage>`.
    Copy,
    /// `RUN --mount=…,from=<stage>`.
    Mount,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub stage: usize,
    pub line: usize,
    pub kind: DependencyKind,
}

/// One build stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    /// Lower case, as BuildKit keeps it.
    pub name: Option<String>,
    pub base: Base,
    /// `--platform` of the FROM line, expanded.
    pub platform: Option<String>,
    /// The FROM instruction.
    pub from: Instruction,
    /// The instructions after FROM, as written.
    pub instructions: Vec<Instruction>,
    pub deps: Vec<Dependency>,
    /// Images named by `COPY --from=` / `--mount from=` (they are not stages), with their line.
    pub images: Vec<(String, usize)>,
}

impl Stage {
    /// The name docker shows: the stage name or its index.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.index.to_string())
    }
}

/// The stages of a Dockerfile and what a build of `--target` needs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub escape: char,
    /// The global ARGs with their values (`--build-arg` over default); `None`: declared, unset.
    pub global_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
    pub target: usize,
    /// The stages the target needs, dependencies first.
    pub needed: Vec<usize>,
    /// `needed` grouped: every stage depends only on stages of earlier groups.
    pub levels: Vec<Vec<usize>>,
    /// `--build-arg`s no needed stage declares (docker warns about them).
    pub unused_build_args: Vec<String>,
}

/// The variables of the global scope: automatic platform args, then the global ARGs with values.
fn global_vars(opts: &BuildOptions, globals: &[(String, Option<String>)]) -> Vec<(String, String)> {
    let mut v = opts.platform_args();
    for (k, val) in globals {
        if let Some(val) = val {
            v.push((k.clone(), val.clone()));
        }
    }
    v
}

/// Splits a parsed Dockerfile into stages and works out what `opts.target` needs.
pub fn plan(df: &Dockerfile, opts: &BuildOptions) -> Result<Plan, StageError> {
    let lex = df.lexer();
    let mut global_args: Vec<(String, Option<String>)> = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        match &ins.command {
            Command::From {
                image,
                platform,
                name,
            } => {
                let vars = global_vars(opts, &global_args);
                let sub = |s: &str| {
                    lex.process_word(s, &vars)
                        .map_err(|source| StageError::Substitution {
                            line: ins.start_line,
                            source,
                        })
                };
                let image_x = sub(image)?;
                if image_x.is_empty() {
                    return Err(StageError::BlankBase {
                        image: image.clone(),
                        line: ins.start_line,
                    });
                }
                let platform = platform.as_deref().map(sub).transpose()?;
                if let Some(n) = name
                    && stages.iter().any(|s| s.name.as_deref() == Some(n))
                {
                    return Err(StageError::DuplicateStageName {
                        name: n.clone(),
                        line: ins.start_line,
                    });
                }
                let lower = image_x.to_ascii_lowercase();
                let base = if lower == "scratch" {
                    Base::Scratch
                } else if let Some(s) = stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(lower.as_str()))
                {
                    Base::Stage(s.index)
                } else {
                    Base::Image(image_x)
                };
                let mut deps = Vec::new();
                if let Base::Stage(i) = base {
                    deps.push(Dependency {
                        stage: i,
                        line: ins.start_line,
                        kind: DependencyKind::Base,
                    });
                }
                stages.push(Stage {
                    index: stages.len(),
                    name: name.clone(),
                    base,
                    platform,
                    from: ins.clone(),
                    instructions: Vec::new(),
                    deps,
                    images: Vec::new(),
                });
            }
            Command::Arg(decls) if stages.is_empty() => {
                for d in decls {
                    let value = match opts.build_args.get(&d.name) {
                        Some(v) => Some(v.clone()),
                        None => match &d.default {
                            Some(def) => Some(
                                lex.process_word(def, &global_vars(opts, &global_args))
                                    .map_err(|source| StageError::Substitution {
                                        line: ins.start_line,
                                        source,
                                    })?,
                            ),
                            None => None,
                        },
                    };
                    global_args.retain(|(k, _)| k != &d.name);
                    global_args.push((d.name.clone(), value));
                }
            }
            other => match stages.last_mut() {
                Some(s) => s.instructions.push(ins.clone()),
                None => {
                    return Err(StageError::NoStageContext {
                        line: ins.start_line,
                        instruction: other.name(),
                    });
                }
            },
        }
    }
    if stages.is_empty() {
        return Err(StageError::NoStages);
    }

    // Dependencies through --from, as written (BuildKit resolves `COPY --from` before any
    // substitution, and refuses variables in `--mount from=`): a stage name, an index, or else
    // an image, whose name is expanded with the global ARGs like a FROM line's.
    let names: Vec<Option<String>> = stages.iter().map(|s| s.name.clone()).collect();
    let count = stages.len();
    let globals = global_vars(opts, &global_args);
    for stage in &mut stages {
        let mut deps = Vec::new();
        let mut images = Vec::new();
        for ins in &stage.instructions {
            let mut froms: Vec<(String, DependencyKind)> = Vec::new();
            match &ins.command {
                Command::Copy(c) => froms.extend(c.from.clone().map(|f| (f, DependencyKind::Copy))),
                Command::Run(r) => froms.extend(
                    r.mounts
                        .iter()
                        .filter_map(|m| m.from.clone())
                        .map(|f| (f, DependencyKind::Mount)),
                ),
                _ => {}
            }
            for (from, kind) in froms {
                match resolve_stage(&from, &names) {
                    Some(Ok(i)) => deps.push(Dependency {
                        stage: i,
                        line: ins.start_line,
                        kind,
                    }),
                    Some(Err(index)) => {
                        return Err(StageError::InvalidStageIndex {
                            index,
                            line: ins.start_line,
                        });
                    }
                    None => {
                        let image = lex.process_word(&from, &globals).map_err(|source| {
                            StageError::Substitution {
                                line: ins.start_line,
                                source,
                            }
                        })?;
                        images.push((image, ins.start_line));
                    }
                }
            }
        }
        stage.deps.extend(deps);
        stage.images = images;
    }

    check_cycles(&stages)?;

    let target = match &opts.target {
        None => count - 1,
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| StageError::UnknownTarget(t.clone()))?
        }
    };

    // The closure of the target's dependencies, and levels.
    let mut level: Vec<Option<usize>> = vec![None; count];
    fn level_of(i: usize, stages: &[Stage], level: &mut Vec<Option<usize>>) -> usize {
        if let Some(l) = level[i] {
            return l;
        }
        let l = stages[i]
            .deps
            .iter()
            .map(|d| level_of(d.stage, stages, level) + 1)
            .max()
            .unwrap_or(0);
        level[i] = Some(l);
        l
    }
    level_of(target, &stages, &mut level);
    let mut levels: Vec<Vec<usize>> = Vec::new();
    for (i, l) in level.iter().enumerate() {
        if let Some(l) = *l {
            if levels.len() <= l {
                levels.resize(l + 1, Vec::new());
            }
            levels[l].push(i);
        }
    }
    let needed: Vec<usize> = levels.iter().flatten().copied().collect();

    let mut declared: Vec<&str> = global_args.iter().map(|(k, _)| k.as_str()).collect();
    for &i in &needed {
        for ins in &stages[i].instructions {
            if let Command::Arg(d) = &ins.command {
                declared.extend(d.iter().map(|a| a.name.as_str()));
            }
        }
    }
    let unused_build_args = opts
        .build_args
        .keys()
        .filter(|k| {
            !declared.contains(&k.as_str())
                && !PROXY_ARGS.contains(&k.as_str())
                && !PLATFORM_ARGS.contains(&k.as_str())
        })
        .cloned()
        .collect();

    Ok(Plan {
        escape: df.directives.escape,
        global_args,
        stages,
        target,
        needed,
        levels,
        unused_build_args,
    })
}

/// `Some(Ok(i))`: stage i; `Some(Err(n))`: an index out of range; `None`: an image.
fn resolve_stage(from: &str, names: &[Option<String>]) -> Option<Result<usize, usize>> {
    if !from.is_empty() && from.bytes().all(|b| b.is_ascii_digit()) {
        return Some(match from.parse::<usize>() {
            Ok(i) if i < names.len() => Ok(i),
            Ok(i) => Err(i),
            Err(_) => Err(usize::MAX),
        });
    }
    let lower = from.to_ascii_lowercase();
    names
        .iter()
        .position(|n| n.as_deref() == Some(lower.as_str()))
        .map(Ok)
}

fn check_cycles(stages: &[Stage]) -> Result<(), StageError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(i: usize, stages: &[Stage], marks: &mut [Mark]) -> Result<(), StageError> {
        marks[i] = Mark::Active;
        for d in &stages[i].deps {
            match marks[d.stage] {
                Mark::Active => {
                    return Err(StageError::Cycle {
                        stage: stages[d.stage].display_name(),
                        line: d.line,
                    });
                }
                Mark::New => visit(d.stage, stages, marks)?,
                Mark::Done => {}
            }
        }
        marks[i] = Mark::Done;
        Ok(())
    }
    let mut marks = vec![Mark::New; stages.len()];
    for i in 0..stages.len() {
        if marks[i] == Mark::New {
            visit(i, stages, &mut marks)?;
        }
    }
    Ok(())
}

/// The ARG and ENV scope while a stage's instructions are processed in order.
///
/// As BuildKit's `dispatchArg` does, an ARG with a value enters the stage's environment like an
/// ENV, so the later of an ARG and an ENV of the same name wins from there on (the reference's
/// "ENV overrides ARG" is the case of an ENV after the ARG). The image config only ever gets the
/// ENV values; that is the builder's business.
#[derive(Debug, Clone)]
pub struct ArgScope<'a> {
    opts: &'a BuildOptions,
    globals: &'a [(String, Option<String>)],
    /// Declared in this stage, in order, with their values.
    args: Vec<(String, Option<String>)>,
    /// The environment for substitution and RUN: the base image's ENV, then this stage's ENV
    /// and valued ARGs, in order (one entry per name, the latest value).
    env: Vec<(String, String)>,
    /// What ENV set (base image, then stage), as the image config gets it.
    image_env: Vec<(String, String)>,
}

impl<'a> ArgScope<'a> {
    /// A scope at the start of a stage whose base image has `image_env` (`KEY=VALUE` split).
    pub fn new(
        opts: &'a BuildOptions,
        globals: &'a [(String, Option<String>)],
        image_env: &[(String, String)],
    ) -> Self {
        let mut scope = ArgScope {
            opts,
            globals,
            args: Vec::new(),
            env: Vec::new(),
            image_env: Vec::new(),
        };
        for (k, v) in image_env {
            scope.set_env(k, v);
        }
        scope
    }

    /// A scope for a stage of `plan`.
    pub fn for_plan(
        plan: &'a Plan,
        opts: &'a BuildOptions,
        image_env: &[(String, String)],
    ) -> Self {
        ArgScope::new(opts, &plan.global_args, image_env)
    }

    fn put(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Declares `ARG name[=default]`: the build-arg, else the default (expanded in the current
    /// scope), else the global value (the global scope includes the platform ARGs).
    pub fn declare(&mut self, decl: &ArgDecl, lex: &Lexer) -> Result<(), ShellError> {
        let value = if let Some(v) = self.opts.build_args.get(&decl.name) {
            Some(v.clone())
        } else if let Some(def) = &decl.default {
            Some(lex.process_word(def, &self.vars())?)
        } else if let Some((_, v)) = self.globals.iter().find(|(k, _)| *k == decl.name) {
            v.clone()
        } else {
            self.opts
                .platform_args()
                .into_iter()
                .find(|(k, _)| *k == decl.name)
                .map(|(_, v)| v)
        };
        if let Some(v) = &value {
            self.put(&decl.name, v);
        }
        // A redeclaration takes the new value and is listed again, as BuildKit lists it
        // (`RUN |3 G=b H=x G=b …`).
        for (k, v) in &mut self.args {
            if *k == decl.name {
                v.clone_from(&value);
            }
        }
        self.args.push((decl.name.clone(), value));
        Ok(())
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.put(key, value);
        self.image_env.retain(|(k, _)| k != key);
        self.image_env.push((key.to_string(), value.to_string()));
    }

    /// The image config's `Env` at this point: ENV values only (ARGs never persist).
    pub fn image_env(&self) -> Vec<(String, String)> {
        self.image_env.clone()
    }

    /// The variables for substitution at this point of the stage.
    pub fn vars(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    /// The environment of a RUN: the scope, plus proxy build-args even when undeclared (docker
    /// passes those to RUN without an ARG).
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut out = self.env.clone();
        for p in PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(*p)
                && !out.iter().any(|(k, _)| k == p)
            {
                out.push((p.to_string(), v.clone()));
            }
        }
        out
    }

    /// The ARGs that go into a RUN's history entry (`|N k=v … /bin/sh -c …`): the declared ones
    /// with a value, in the order they were declared (as BuildKit lists them); undeclared
    /// proxy args are left out.
    pub fn history_args(&self) -> Vec<(String, String)> {
        self.args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect()
    }

    /// Updates the scope for ARG and ENV (ENV's key and value expanded in the scope before it).
    pub fn apply_declarations(
        &mut self,
        command: &Command,
        lex: &Lexer,
        line: usize,
    ) -> Result<(), StageError> {
        let err = |source| StageError::Substitution { line, source };
        match command {
            Command::Arg(decls) => {
                for d in decls {
                    self.declare(d, lex).map_err(err)?;
                }
            }
            Command::Env(kvs) => {
                // Every pair is expanded in the scope before the instruction (the reference:
                // `ENV abc=bye def=$abc` gives def the previous abc).
                let vars = self.vars();
                let mut set = Vec::new();
                for kv in kvs {
                    set.push((
                        lex.process_word(&kv.key, &vars).map_err(err)?,
                        lex.process_word(&kv.value, &vars).map_err(err)?,
                    ));
                }
                for (k, v) in set {
                    self.set_env(&k, &v);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Expands an instruction in this scope (see [`shell::expand`]) and then applies its ARG/ENV
    /// declarations; returns the expanded command.
    pub fn process(&mut self, ins: &Instruction, lex: &Lexer) -> Result<Command, StageError> {
        let expanded = shell::expand(&ins.command, lex, &self.vars()).map_err(|source| {
            StageError::Substitution {
                line: ins.start_line,
                source,
            }
        })?;
        self.apply_declarations(&ins.command, lex, ins.start_line)?;
        Ok(expanded)
    }
}

/// The heredocs and sources of a COPY that come from the context (not heredocs), for callers
/// that check them against `.dockerignore`.
pub fn context_sources(command: &Command) -> Vec<&str> {
    match command {
        Command::Copy(c) | Command::Add(c) if c.from.is_none() => c
            .sources
            .iter()
            .filter_map(|s| match s {
                CopySource::Path(p) => Some(p.as_str()),
                CopySource::Heredoc(_) => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn plan_of(text: &str, opts: &BuildOptions) -> Result<Plan, StageError> {
        plan(&parse(text).unwrap_or_else(|e| panic!("{e}")), opts)
    }

    fn ok(text: &str) -> Plan {
        plan_of(text, &BuildOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn opts(args: &[(&str, &str)], target: Option<&str>) -> BuildOptions {
        BuildOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: target.map(str::to_string),
            ..BuildOptions::default()
        }
    }

    #[test]
    fn host_platform() {
        let p = Platform::host();
        assert_eq!(p.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(p.to_string(), "linux/amd64");
        }
        let o = BuildOptions::default();
        let args: BTreeMap<_, _> = o.platform_args().into_iter().collect();
        assert_eq!(args["TARGETPLATFORM"], p.to_string());
        assert_eq!(args["BUILDARCH"], p.architecture);
    }

    #[test]
    fn global_args_in_from_lines() {
        let text = "ARG VERSION=3.19\nARG REG=docker.io\nFROM --platform=$BUILDPLATFORM ${REG}/alpine:${VERSION} AS base\nFROM base\n";
        let p = ok(text);
        assert_eq!(
            p.stages[0].base,
            Base::Image("docker.io/alpine:3.19".into())
        );
        assert_eq!(
            p.stages[0].platform.as_deref(),
            Some(Platform::host().to_string().as_str())
        );
        assert_eq!(p.stages[1].base, Base::Stage(0));
        let p = plan_of(text, &opts(&[("VERSION", "3.20")], None)).expect("plan");
        assert_eq!(
            p.stages[0].base,
            Base::Image("docker.io/alpine:3.20".into())
        );
        // A global default can use an earlier global.
        let p = ok("ARG A=x\nARG B=${A}y\nFROM img:$B");
        assert_eq!(p.stages[0].base, Base::Image("img:xy".into()));
        assert_eq!(
            plan_of("ARG IMG\nFROM $IMG", &BuildOptions::default()).map(|_| ()),
            Err(StageError::BlankBase {
                image: "$IMG".into(),
                line: 2
            })
        );
    }

    #[test]
    fn arg_scoping_inside_stages() {
        let text = "ARG V=global\nFROM a\nRUN x\nARG V\nARG W=w-$V\nENV E=$W\nARG E=arg\nFROM b\nARG V=stage2\n";
        let p = ok(text);
        let lex = Lexer::default();
        let o = BuildOptions::default();
        let mut scope = ArgScope::for_plan(&p, &o, &[("PATH".into(), "/bin".into())]);
        let st = &p.stages[0];
        // Before `ARG V` the global is not visible.
        assert!(!scope.vars().iter().any(|(k, _)| k == "V"));
        for ins in &st.instructions {
            scope.process(ins, &lex).expect("process");
        }
        let vars: BTreeMap<_, _> = scope.vars().into_iter().collect();
        assert_eq!(vars["V"], "global");
        assert_eq!(vars["W"], "w-global");
        assert_eq!(
            vars["E"], "arg",
            "an ARG after an ENV of the same name wins from there on"
        );
        assert_eq!(vars["PATH"], "/bin");
        assert_eq!(
            scope.history_args(),
            vec![
                ("V".to_string(), "global".to_string()),
                ("W".to_string(), "w-global".to_string()),
                ("E".to_string(), "arg".to_string())
            ],
            "in declaration order, as BuildKit lists them"
        );
        // The reference's case: an ENV after the ARG wins.
        let p4 = ok("FROM a\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nRUN echo $CONT_IMG_VER\n");
        let o4 = opts(&[("CONT_IMG_VER", "v2.0.1")], None);
        let mut s4 = ArgScope::for_plan(&p4, &o4, &[]);
        for ins in &p4.stages[0].instructions {
            s4.process(ins, &lex).expect("process");
        }
        assert_eq!(
            s4.vars(),
            vec![("CONT_IMG_VER".to_string(), "v1.0.0".to_string())]
        );
        assert_eq!(
            scope.image_env(),
            vec![
                ("PATH".to_string(), "/bin".to_string()),
                ("E".to_string(), "w-global".to_string())
            ]
        );
        // A build-arg beats a stage default.
        let o2 = opts(&[("V", "cli")], None);
        let p2 = plan_of(text, &o2).expect("plan");
        let mut s2 = ArgScope::for_plan(&p2, &o2, &[]);
        for ins in &p2.stages[1].instructions {
            s2.process(ins, &lex).expect("process");
        }
        assert_eq!(s2.vars(), vec![("V".to_string(), "cli".to_string())]);
        let mut s3 = ArgScope::for_plan(&p, &o, &[]);
        for ins in &p.stages[1].instructions {
            s3.process(ins, &lex).expect("process");
        }
        assert_eq!(s3.vars(), vec![("V".to_string(), "stage2".to_string())]);
    }

    #[test]
    fn proxy_and_platform_args() {
        let o = opts(
            &[
                ("HTTP_PROXY", "http://proxy:3128"),
                ("no_proxy", "local"),
                ("UNUSED", "1"),
            ],
            None,
        );
        let p = plan_of(
            "FROM a\nARG no_proxy\nARG TARGETARCH\nARG BUILDOS\nRUN x",
            &o,
        )
        .expect("plan");
        assert_eq!(p.unused_build_args, vec!["UNUSED".to_string()]);
        let lex = Lexer::default();
        let mut scope = ArgScope::for_plan(&p, &o, &[]);
        for ins in &p.stages[0].instructions {
            scope.process(ins, &lex).expect("process");
        }
        let env: BTreeMap<_, _> = scope.run_env().into_iter().collect();
        assert_eq!(env["HTTP_PROXY"], "http://proxy:3128");
        assert_eq!(env["no_proxy"], "local");
        assert_eq!(env["TARGETARCH"], Platform::host().architecture);
        assert_eq!(env["BUILDOS"], "linux");
        let hist: Vec<String> = scope.history_args().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            hist,
            vec!["no_proxy", "TARGETARCH", "BUILDOS"],
            "undeclared HTTP_PROXY stays out of history"
        );
    }

    #[test]
    fn env_pairs_see_the_scope_before_the_instruction() {
        let p = ok("FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n");
        let lex = Lexer::default();
        let o = BuildOptions::default();
        let mut scope = ArgScope::for_plan(&p, &o, &[]);
        for ins in &p.stages[0].instructions {
            scope.process(ins, &lex).expect("process");
        }
        let vars: BTreeMap<_, _> = scope.vars().into_iter().collect();
        assert_eq!(
            (
                vars["abc"].as_str(),
                vars["def"].as_str(),
                vars["ghi"].as_str()
            ),
            ("bye", "hello", "bye")
        );
    }

    #[test]
    fn stage_graph_target_and_levels() {
        let text = "\
FROM golang AS Build
RUN go build
FROM node AS web
RUN npm ci
FROM debian AS tools
FROM scratch AS final
COPY --from=build /app /app
COPY --from=WEB /dist /www
COPY --from=nginx:latest /etc/nginx /etc/nginx
FROM build AS test
RUN --mount=type=bind,from=web,target=/w go test
";
        let p = ok(text);
        assert_eq!(p.target, 4);
        assert_eq!(p.stages[3].base, Base::Scratch);
        assert_eq!(p.stages[0].name.as_deref(), Some("build"));
        assert_eq!(p.needed, vec![0, 1, 4]);
        assert_eq!(p.levels, vec![vec![0, 1], vec![4]]);
        let p = plan_of(text, &opts(&[], Some("final"))).expect("plan");
        assert_eq!(p.needed, vec![0, 1, 3]);
        assert_eq!(p.stages[3].images, vec![("nginx:latest".to_string(), 9)]);
        assert_eq!(
            p.stages[3]
                .deps
                .iter()
                .map(|d| (d.stage, d.line, d.kind))
                .collect::<Vec<_>>(),
            vec![(0, 7, DependencyKind::Copy), (1, 8, DependencyKind::Copy)]
        );
        let p = plan_of(text, &opts(&[], Some("TOOLS"))).expect("plan");
        assert_eq!(p.needed, vec![2]);
        assert_eq!(
            plan_of(text, &opts(&[], Some("nope"))).map(|_| ()),
            Err(StageError::UnknownTarget("nope".into()))
        );
        // By index; a --from that names no stage is an image, expanded with the global ARGs
        // only (a stage ARG does not reach it).
        let p = ok(
            "ARG IMG=nginx:1\nFROM a\nFROM b\nARG LOCAL=x\nCOPY --from=0 /x /x\nCOPY --from=${IMG} /y /y\nCOPY --from=img-$LOCAL /z /z\n",
        );
        assert_eq!(p.levels, vec![vec![0], vec![1]]);
        assert_eq!(
            p.stages[1].images,
            vec![("nginx:1".to_string(), 6), ("img-".to_string(), 7)]
        );
    }

    #[test]
    fn graph_errors() {
        let e = |t: &str| {
            plan_of(t, &BuildOptions::default())
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            e("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\nCOPY --from=one /y /y\n"),
            Err("Dockerfile:4: circular dependency detected on stage: one".into())
        );
        assert_eq!(
            e("FROM a\nCOPY --from=0 /x /x\n"),
            Err("Dockerfile:2: circular dependency detected on stage: 0".into())
        );
        assert_eq!(
            e("FROM a\nCOPY --from=3 /x /x\n"),
            Err("Dockerfile:2: invalid stage index 3".into())
        );
        assert_eq!(
            e("FROM a AS x\nFROM b AS X\n"),
            Err("Dockerfile:2: duplicate stage name \"x\"".into())
        );
        assert_eq!(
            e("ARG A\nRUN x\nFROM a"),
            Err(
                "Dockerfile:2: no build stage in current context (RUN before the first FROM)"
                    .into()
            )
        );
        assert_eq!(
            e("ARG A\n"),
            Err("dockerfile contains no stages to build".into())
        );
        assert_eq!(
            e("FROM ${A:?need-A}"),
            Err("Dockerfile:1: A: need-A".into())
        );
        // FROM only sees earlier stages: a later name is an image.
        let p = ok("FROM later\nFROM x AS later\n");
        assert_eq!(p.stages[0].base, Base::Image("later".into()));
    }

    #[test]
    fn expansion_per_instruction() {
        let text = "FROM a\nARG D=/srv\nENV APP=$D/app N=\"two words\"\nWORKDIR $APP\nCOPY --chown=${U:-1000} src/ $APP/\nLABEL k=\"$N\"\nRUN echo $APP\nCMD [\"$APP\"]\nEXPOSE ${P:-80} 443\nUSER ${U:-app}\nVOLUME [\"$D/data\"]\nSTOPSIGNAL ${S:-SIGTERM}\nONBUILD COPY $D /x\n";
        let p = ok(text);
        let lex = Lexer::default();
        let o = BuildOptions::default();
        let mut scope = ArgScope::for_plan(&p, &o, &[]);
        let out: Vec<Command> = p.stages[0]
            .instructions
            .iter()
            .map(|i| scope.process(i, &lex).expect("process"))
            .collect();
        assert_eq!(out[2], Command::Workdir("/srv/app".into()));
        let Command::Copy(c) = &out[3] else { panic!() };
        assert_eq!(
            (c.chown.as_deref(), c.dest.as_str()),
            (Some("1000"), "/srv/app/")
        );
        assert!(matches!(&out[4], Command::Label(l) if l[0].value == "two words"));
        assert_eq!(
            out[5], p.stages[0].instructions[5].command,
            "RUN shell form is not expanded"
        );
        assert_eq!(
            out[6], p.stages[0].instructions[6].command,
            "CMD exec form is not expanded"
        );
        assert_eq!(out[7], Command::Expose(vec!["80".into(), "443".into()]));
        assert_eq!(out[8], Command::User("app".into()));
        assert_eq!(out[9], Command::Volume(vec!["/srv/data".into()]));
        assert_eq!(out[10], Command::Stopsignal("SIGTERM".into()));
        assert_eq!(
            out[11], p.stages[0].instructions[11].command,
            "ONBUILD is stored unexpanded"
        );
        assert_eq!(
            context_sources(&p.stages[0].instructions[3].command),
            vec!["src/"]
        );
    }
}
