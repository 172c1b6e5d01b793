//! The command table's entries for docker's system commands and the top-level ones that belong to no object (`inspect`, `version`, `login`, `logout`).
//! Flag help and usage lines are docker 28's, for the flags Berth has.

use super::Handler::*;
use super::{Command, FORMAT_INSPECT, FORMAT_OBJECT, FORMAT_TABLE};
use crate::args::Parsed;
use crate::args::{opt, switch};
use crate::containers::Failure;
use crate::{engine_info, registry};

pub const COMMANDS: &[Command] = &[
    Command {
        path: "system check",
        aliases: &[],
        usage: "[OPTIONS]",
        short: "Check the consistency of the image store and the engine's state",
        flags: &[
            switch(
                "repair",
                Some('r'),
                "Remove or rebuild what is broken (what is sound is left alone)",
            ),
            switch("quiet", Some('q'), "Print only the problems"),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(engine_info::system_check),
    },
    Command {
        path: "system df",
        aliases: &[],
        usage: "[OPTIONS]",
        short: "Show berth disk usage",
        flags: &[
            FORMAT_TABLE,
            switch(
                "verbose",
                Some('v'),
                "Show detailed information on space usage",
            ),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(engine_info::system_df),
    },
    Command {
        path: "system events",
        aliases: &["events"],
        usage: "[OPTIONS]",
        short: "Get real time events from the server",
        flags: &[
            opt(
                "filter",
                Some('f'),
                "filter",
                "Filter output based on conditions provided",
            ),
            opt(
                "format",
                None,
                "string",
                "Format output using a custom template: 'json': Print in JSON format, 'TEMPLATE': Print output using the given Go template",
            ),
            opt(
                "since",
                None,
                "string",
                "Show all events created since timestamp",
            ),
            opt(
                "until",
                None,
                "string",
                "Stream events until this timestamp",
            ),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(crate::events::events),
    },
    Command {
        path: "system info",
        aliases: &["info"],
        usage: "[OPTIONS]",
        short: "Display system-wide information",
        flags: &[FORMAT_OBJECT],
        interspersed: true,
        missing: &[],
        run: Engine(engine_info::info),
    },
    Command {
        path: "system migrate",
        aliases: &[],
        usage: "[OPTIONS]",
        short: "Stop the containers and restart the rootless user namespace (after /etc/subuid changed)",
        flags: &[],
        interspersed: true,
        missing: &[],
        run: Engine(engine_info::system_migrate),
    },
    Command {
        path: "system prune",
        aliases: &[],
        usage: "[OPTIONS]",
        short: "Remove unused data",
        flags: &[
            switch(
                "all",
                Some('a'),
                "Remove all unused images not just dangling ones",
            ),
            opt(
                "filter",
                None,
                "filter",
                "Provide filter values (e.g. \"label=<key>=<value>\")",
            ),
            super::PRUNE_FORCE,
            switch("volumes", None, "Prune anonymous volumes"),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(crate::ops::system_prune),
    },
    Command {
        path: "system boot",
        aliases: &[],
        usage: "[OPTIONS]",
        short: "Restart the containers a reboot stopped, by their restart policy (Berth's own)",
        flags: &[
            opt("format", None, "string", "\"json\": the report as JSON"),
            switch(
                "install-unit",
                None,
                "Write berth-boot.service to /etc/systemd/system (runs this at boot)",
            ),
            switch("print-unit", None, "Print the berth-boot.service unit"),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(crate::ops::boot),
    },
    Command {
        path: "generate systemd",
        aliases: &[],
        usage: "[OPTIONS] CONTAINER",
        short: "Generate a systemd unit file for a container (as podman does)",
        flags: &[
            opt(
                "container-prefix",
                None,
                "string",
                "Systemd unit name prefix for containers",
            )
            .default("\"container\""),
            switch(
                "files",
                Some('f'),
                "Generate .service files instead of printing to stdout",
            ),
            switch("name", Some('n'), "Use container names instead of IDs"),
            switch(
                "new",
                None,
                "Create a new container on start and remove it on stop, from the flags it was created with",
            ),
            switch("no-header", None, "Skip the header comment"),
            opt("restart-policy", None, "string", "Systemd restart-policy")
                .default("\"on-failure\""),
            opt(
                "separator",
                None,
                "string",
                "Systemd unit name separator between name/id and prefix",
            )
            .default("\"-\""),
            opt(
                "time",
                Some('t'),
                "int",
                "Stop timeout override (default: the container's, else 10)",
            ),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(crate::ops::generate_systemd),
    },
    Command {
        path: "inspect",
        aliases: &[],
        usage: "[OPTIONS] NAME|ID [NAME|ID...]",
        short: "Return low-level information on Berth objects",
        flags: &[
            FORMAT_INSPECT,
            switch(
                "size",
                Some('s'),
                "Display total file sizes if the type is container",
            ),
            opt(
                "type",
                None,
                "string",
                "Only inspect objects of the given type",
            ),
            switch(
                "security",
                None,
                "What a running container can do, as the kernel has it (berth security)",
            ),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(crate::inspect::inspect),
    },
    Command {
        path: "serve",
        aliases: &[],
        usage: "[OPTIONS]",
        short: "Serve the Docker Engine API on a socket (containers outlive it)",
        flags: &[
            opt(
                "host",
                Some('H'),
                "list",
                "Socket to listen on: unix:///PATH (default unix:///run/berth.sock), tcp://ADDR:PORT, fd:// (systemd socket activation)",
            ),
            switch(
                "insecure-tcp",
                None,
                "Allow tcp:// without TLS (anyone reaching the port is root)",
            ),
            switch("tls", None, "TLS on tcp:// with --tlscert and --tlskey"),
            opt(
                "tlscacert",
                None,
                "string",
                "Trust certs signed only by this CA",
            ),
            opt("tlscert", None, "string", "Path to TLS certificate file"),
            opt("tlskey", None, "string", "Path to TLS key file"),
            switch(
                "tlsverify",
                None,
                "TLS, and clients must show a certificate signed by --tlscacert",
            ),
        ],
        interspersed: true,
        missing: &[],
        run: Root(crate::serve::serve),
    },
    Command {
        path: "version",
        aliases: &[],
        usage: "[OPTIONS]",
        short: "Show the Berth version information",
        flags: &[FORMAT_OBJECT],
        interspersed: true,
        missing: &[],
        run: Plain(version),
    },
    Command {
        path: "login",
        aliases: &[],
        usage: "[OPTIONS] [SERVER]",
        short: "Authenticate to a registry.",
        flags: &[
            opt(
                "password",
                Some('p'),
                "string",
                "Password or Personal Access Token (PAT)",
            ),
            switch(
                "password-stdin",
                None,
                "Take the Password or Personal Access Token (PAT) from stdin",
            ),
            opt("username", Some('u'), "string", "Username"),
        ],
        interspersed: true,
        missing: &[],
        run: Plain(login),
    },
    Command {
        path: "logout",
        aliases: &[],
        usage: "[SERVER]",
        short: "Log out from a registry.",
        flags: &[],
        interspersed: true,
        missing: &[],
        run: Plain(logout),
    },
    Command {
        path: "security",
        aliases: &["container security"],
        usage: "[OPTIONS] CONTAINER",
        short: "Show what a running container can do, as the kernel has it (Berth's own)",
        flags: &[opt(
            "format",
            Some('f'),
            "string",
            "Output format: \"table\" or \"json\"",
        )
        .default("\"table\"")],
        interspersed: true,
        missing: &[],
        run: Engine(crate::security::run),
    },
    Command {
        path: "completion",
        aliases: &[],
        usage: "bash|zsh|fish",
        short: "Generate the autocompletion script for bash, zsh or fish",
        flags: &[],
        interspersed: true,
        missing: &[],
        run: Plain(super::complete::completion),
    },
    Command {
        path: "search",
        aliases: &[],
        usage: "[OPTIONS] TERM",
        short: "Search Docker Hub for images",
        flags: &[],
        interspersed: true,
        missing: &[],
        run: Unsupported,
    },
];

fn version(p: &Parsed, out: &mut dyn std::io::Write) -> Result<(), Failure> {
    engine_info::version(p, out)
}

fn login(p: &Parsed, out: &mut dyn std::io::Write) -> Result<(), Failure> {
    Ok(registry::login(p, out)?)
}

fn logout(p: &Parsed, out: &mut dyn std::io::Write) -> Result<(), Failure> {
    Ok(registry::logout(p, out)?)
}
