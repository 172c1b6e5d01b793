//! The command table's entries for docker's network commands (`cli/command/network`).
//! Flag help and usage lines are docker 28's, for the flags Berth has.

use super::Handler::*;
use super::{Command, FORMAT_INSPECT, FORMAT_TABLE, PRUNE_FILTER, PRUNE_FORCE};
use crate::args::{opt, switch};
use crate::networks;

pub const COMMANDS: &[Command] = &[
    Command {
        path: "network connect",
        aliases: &[],
        usage: "[OPTIONS] NETWORK CONTAINER",
        short: "Connect a container to a network",
        flags: &[
            opt(
                "alias",
                None,
                "strings",
                "Add network-scoped alias for the container",
            ),
            opt(
                "ip",
                None,
                "string",
                "IPv4 address (e.g., \"172.30.100.104\")",
            ),
            opt(
                "ip6",
                None,
                "string",
                "IPv6 address (e.g., \"2001:db8::33\")",
            ),
        ],
        interspersed: true,
        missing: &[
            ("driver-opt", None),
            ("gw-priority", None),
            ("link", None),
            ("link-local-ip", None),
        ],
        run: Engine(networks::connect),
    },
    Command {
        path: "network create",
        aliases: &[],
        usage: "[OPTIONS] NETWORK",
        short: "Create a network",
        flags: &[
            switch("attachable", None, "Enable manual container attachment"),
            opt(
                "driver",
                Some('d'),
                "string",
                "Driver to manage the Network",
            )
            .default("\"bridge\""),
            opt(
                "gateway",
                None,
                "strings",
                "IPv4 or IPv6 Gateway for the master subnet",
            ),
            switch("internal", None, "Restrict external access to the network"),
            opt(
                "ip-range",
                None,
                "strings",
                "Allocate container ip from a sub-range",
            ),
            switch("ipv6", None, "Enable or disable IPv6 address assignment"),
            opt("label", None, "list", "Set metadata on a network"),
            opt("opt", Some('o'), "map", "Set driver specific options"),
            opt(
                "subnet",
                None,
                "strings",
                "Subnet in CIDR format that represents a network segment",
            ),
        ],
        interspersed: true,
        missing: &[
            ("aux-address", None),
            ("config-from", None),
            ("config-only", None),
            ("ingress", None),
            ("ipam-driver", None),
            ("ipam-opt", None),
            ("ipv4", None),
            ("scope", None),
        ],
        run: Engine(networks::create),
    },
    Command {
        path: "network disconnect",
        aliases: &[],
        usage: "[OPTIONS] NETWORK CONTAINER",
        short: "Disconnect a container from a network",
        flags: &[switch(
            "force",
            Some('f'),
            "Force the container to disconnect from a network",
        )],
        interspersed: true,
        missing: &[],
        run: Engine(networks::disconnect),
    },
    Command {
        path: "network inspect",
        aliases: &[],
        usage: "[OPTIONS] NETWORK [NETWORK...]",
        short: "Display detailed information on one or more networks",
        flags: &[
            FORMAT_INSPECT,
            switch("verbose", Some('v'), "Verbose output for diagnostics"),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(networks::inspect),
    },
    Command {
        path: "network ls",
        aliases: &["network list"],
        usage: "[OPTIONS]",
        short: "List networks",
        flags: &[
            opt(
                "filter",
                Some('f'),
                "filter",
                "Provide filter values (e.g. \"driver=bridge\")",
            ),
            FORMAT_TABLE,
            switch("no-trunc", None, "Do not truncate the output"),
            switch("quiet", Some('q'), "Only display network IDs"),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(networks::ls),
    },
    Command {
        path: "network prune",
        aliases: &[],
        usage: "[OPTIONS]",
        short: "Remove all unused networks",
        flags: &[PRUNE_FILTER, PRUNE_FORCE],
        interspersed: true,
        missing: &[],
        run: Engine(networks::prune),
    },
    Command {
        path: "network rm",
        aliases: &["network remove"],
        usage: "NETWORK [NETWORK...]",
        short: "Remove one or more networks",
        flags: &[switch(
            "force",
            Some('f'),
            "Do not error if the network does not exist",
        )],
        interspersed: true,
        missing: &[],
        run: Engine(networks::rm),
    },
];
