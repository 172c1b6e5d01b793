//! Berth's builder (issue 13), first slice: the Dockerfile language as a pure library.
//!
//! * [`parser`]: parser directives, comments, line continuations, heredocs, exec/shell forms,
//!   instruction flags (`--mount` specs included) into a typed AST with line numbers.
//! * [`shell`]: BuildKit's variable substitution (`${v:-w}`, `${v#p}`, quotes, escapes) and which
//!   instruction arguments the builder expands.
//! * [`stages`]: build stages, ARG scoping (global, per stage, predefined and platform ARGs),
//!   the stage graph, what `--target` needs and what can run in parallel.
//! * [`dockerignore`]: `.dockerignore` patterns as moby's patternmatcher reads them, and a context
//!   walker that never leaves the context.

pub mod cache;
pub mod dockerignore;
pub mod exec;
pub mod files;
pub mod history;
pub mod parser;
pub mod shell;
pub mod stages;

pub use exec::{
    BuildError, BuildRequest, Built, Event, Export, Progress, RunMount, RunSpec, Runner,
    RunnerError, build,
};
pub use parser::{Command, Dockerfile, Instruction, NetworkMode, ParseError, parse};
