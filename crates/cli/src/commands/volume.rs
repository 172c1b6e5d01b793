//! The command table's entries for docker's volume commands (`cli/command/volume`).
//! Flag help and usage lines are docker 28's, for the flags Berth has.

use super::Handler::*;
use super::{Command, FORMAT_INSPECT, FORMAT_TABLE, PRUNE_FORCE};
use crate::args::{opt, switch};
use crate::volumes;

pub const COMMANDS: &[Command] = &[
    Command {
        path: "volume create",
        aliases: &[],
        usage: "[OPTIONS] [VOLUME]",
        short: "Create a volume",
        flags: &[
            opt("driver", Some('d'), "string", "Specify volume driver name").default("\"local\""),
            opt("label", Some('l'), "list", "Set metadata for a volume"),
            opt("name", None, "string", "Specify volume name").hidden(),
            opt("opt", Some('o'), "map", "Set driver specific options"),
        ],
        interspersed: true,
        missing: &[
            ("availability", None),
            ("group", None),
            ("limit-bytes", None),
            ("required-bytes", None),
            ("scope", None),
            ("secret", None),
            ("sharing", None),
            ("topology-preferred", None),
            ("topology-required", None),
            ("type", None),
        ],
        run: Engine(volumes::create),
    },
    Command {
        path: "volume inspect",
        aliases: &[],
        usage: "[OPTIONS] VOLUME [VOLUME...]",
        short: "Display detailed information on one or more volumes",
        flags: &[FORMAT_INSPECT],
        interspersed: true,
        missing: &[],
        run: Engine(volumes::inspect),
    },
    Command {
        path: "volume ls",
        aliases: &["volume list"],
        usage: "[OPTIONS]",
        short: "List volumes",
        flags: &[
            opt(
                "filter",
                Some('f'),
                "filter",
                "Provide filter values (e.g. \"dangling=true\")",
            ),
            FORMAT_TABLE,
            switch("quiet", Some('q'), "Only display volume names"),
        ],
        interspersed: true,
        missing: &[("cluster", None)],
        run: Engine(volumes::ls),
    },
    Command {
        path: "volume prune",
        aliases: &[],
        usage: "[OPTIONS]",
        short: "Remove unused local volumes",
        flags: &[
            switch(
                "all",
                Some('a'),
                "Remove all unused volumes, not just anonymous ones",
            ),
            opt(
                "filter",
                None,
                "filter",
                "Provide filter values (e.g. \"label=<label>\")",
            ),
            PRUNE_FORCE,
        ],
        interspersed: true,
        missing: &[],
        run: Engine(volumes::prune),
    },
    Command {
        path: "volume rm",
        aliases: &["volume remove"],
        usage: "[OPTIONS] VOLUME [VOLUME...]",
        short: "Remove one or more volumes. You cannot remove a volume that is in use by a container.",
        flags: &[switch(
            "force",
            Some('f'),
            "Force the removal of one or more volumes",
        )],
        interspersed: true,
        missing: &[],
        run: Engine(volumes::rm),
    },
    Command {
        path: "volume update",
        aliases: &[],
        usage: "[OPTIONS] [VOLUME]",
        short: "Update a volume (cluster volumes only)",
        flags: &[],
        interspersed: true,
        missing: &[("availability", None)],
        run: Unsupported,
    },
];
