//! The command table's entries for docker's container commands (`cli/command/container`): `berth container VERB` and the top-level forms (`berth run`, `berth ps`, …).
//! Flag help and usage lines are docker 28's, for the flags Berth has.

use super::Handler::*;
use super::{Command, FILTER, FORMAT_INSPECT, FORMAT_TABLE, PRUNE_FILTER, PRUNE_FORCE, join};
use crate::args::{Flag, opt, switch};
use crate::{containers, engine_info, networks};

const ENV: Flag = opt("env", Some('e'), "list", "Set environment variables");
const ENV_FILE: Flag = opt(
    "env-file",
    None,
    "list",
    "Read in a file of environment variables",
);

/// The container configuration flags `run` and `create` share.
/// The flags `run`/`create` and `update` share.
const BLKIO_WEIGHT: Flag = opt(
    "blkio-weight",
    None,
    "uint16",
    "Block IO (relative weight), between 10 and 1000, or 0 to disable",
)
.default("0");
const CPUSET_MEMS: Flag = opt(
    "cpuset-mems",
    None,
    "string",
    "MEMs in which to allow execution (0-3, 0,1)",
);
const MEMORY_RESERVATION: Flag = opt("memory-reservation", None, "bytes", "Memory soft limit");
const CPU_RT_PERIOD: Flag = opt(
    "cpu-rt-period",
    None,
    "int",
    "Limit CPU real-time period in microseconds",
);
const CPU_RT_RUNTIME: Flag = opt(
    "cpu-rt-runtime",
    None,
    "int",
    "Limit CPU real-time runtime in microseconds",
);

const CONFIG: &[Flag] = &[
    opt(
        "add-host",
        None,
        "list",
        "Add a custom host-to-IP mapping (host:ip)",
    ),
    opt("cap-add", None, "list", "Add Linux capabilities"),
    opt("cap-drop", None, "list", "Drop Linux capabilities"),
    opt(
        "cpu-period",
        None,
        "int",
        "Limit CPU CFS (Completely Fair Scheduler) period",
    ),
    opt(
        "cpu-quota",
        None,
        "int",
        "Limit CPU CFS (Completely Fair Scheduler) quota",
    ),
    opt(
        "cpu-shares",
        Some('c'),
        "int",
        "CPU shares (relative weight)",
    ),
    opt("cpus", None, "decimal", "Number of CPUs"),
    opt(
        "cpuset-cpus",
        None,
        "string",
        "CPUs in which to allow execution (0-3, 0,1)",
    ),
    opt("dns", None, "list", "Set custom DNS servers"),
    opt("dns-option", None, "list", "Set DNS options"),
    opt("dns-search", None, "list", "Set custom DNS search domains"),
    opt(
        "entrypoint",
        None,
        "string",
        "Overwrite the default ENTRYPOINT of the image",
    ),
    ENV,
    ENV_FILE,
    opt("group-add", None, "list", "Add additional groups to join"),
    opt("health-cmd", None, "string", "Command to run to check health"),
    opt(
        "health-interval",
        None,
        "duration",
        "Time between running the check (ms|s|m|h)",
    )
    .default("0s"),
    opt(
        "health-retries",
        None,
        "int",
        "Consecutive failures needed to report unhealthy",
    ),
    opt(
        "health-start-interval",
        None,
        "duration",
        "Time between running the check during the start period (ms|s|m|h)",
    )
    .default("0s"),
    opt(
        "health-start-period",
        None,
        "duration",
        "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)",
    )
    .default("0s"),
    opt(
        "health-timeout",
        None,
        "duration",
        "Maximum time to allow one check to run (ms|s|m|h)",
    )
    .default("0s"),
    opt("hostname", Some('h'), "string", "Container host name"),
    switch(
        "init",
        None,
        "Run an init inside the container that forwards signals and reaps processes",
    ),
    switch(
        "interactive",
        Some('i'),
        "Keep STDIN open even if not attached",
    ),
    opt("ip", None, "string", "IPv4 address (e.g., 172.30.100.104)"),
    opt("ip6", None, "string", "IPv6 address (e.g., 2001:db8::33)"),
    opt("label", Some('l'), "list", "Set meta data on a container"),
    opt(
        "log-driver",
        None,
        "string",
        "Logging driver for the container",
    ),
    opt("log-opt", None, "list", "Log driver options"),
    opt(
        "mac-address",
        None,
        "string",
        "Container MAC address (e.g., 92:d0:c6:0a:29:33)",
    ),
    opt("memory", Some('m'), "bytes", "Memory limit"),
    opt(
        "memory-swappiness",
        None,
        "int",
        "Tune container memory swappiness (0 to 100)",
    )
    .default("-1"),
    switch("oom-kill-disable", None, "Disable OOM Killer"),
    CPUSET_MEMS,
    BLKIO_WEIGHT,
    MEMORY_RESERVATION,
    CPU_RT_PERIOD,
    CPU_RT_RUNTIME,
    opt(
        "memory-swap",
        None,
        "bytes",
        "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
    ),
    opt(
        "mount",
        None,
        "mount",
        "Attach a filesystem mount to the container",
    ),
    opt("name", None, "string", "Assign a name to the container"),
    opt(
        "network",
        None,
        "network",
        "Connect a container to a network",
    ),
    opt(
        "network-alias",
        None,
        "list",
        "Add network-scoped alias for the container",
    ),
    switch(
        "no-healthcheck",
        None,
        "Disable any container-specified HEALTHCHECK",
    ),
    opt(
        "pids-limit",
        None,
        "int",
        "Tune container pids limit (set -1 for unlimited)",
    ),
    opt("cidfile", None, "string", "Write the container ID to the file"),
    opt(
        "attach",
        Some('a'),
        "list",
        "Attach to STDIN, STDOUT or STDERR",
    ),
    opt(
        "cgroup-parent",
        None,
        "string",
        "Optional parent cgroup for the container",
    ),
    opt(
        "cgroupns",
        None,
        "string",
        "Cgroup namespace to use (host|private)",
    ),
    opt("device", None, "list", "Add a host device to the container"),
    opt("link", None, "list", "Add link to another container"),
    opt(
        "storage-opt",
        None,
        "list",
        "Storage driver options for the container",
    ),
    opt(
        "annotation",
        None,
        "map",
        "Add an annotation to the container (passed through to the OCI runtime)",
    )
    .default("map[]"),
    opt(
        "device-cgroup-rule",
        None,
        "list",
        "Add a rule to the cgroup allowed devices list",
    ),
    opt(
        "blkio-weight-device",
        None,
        "list",
        "Block IO weight (relative device weight)",
    )
    .default("[]"),
    opt(
        "device-read-bps",
        None,
        "list",
        "Limit read rate (bytes per second) from a device",
    )
    .default("[]"),
    opt(
        "device-read-iops",
        None,
        "list",
        "Limit read rate (IO per second) from a device",
    )
    .default("[]"),
    opt(
        "device-write-bps",
        None,
        "list",
        "Limit write rate (bytes per second) to a device",
    )
    .default("[]"),
    opt(
        "device-write-iops",
        None,
        "list",
        "Limit write rate (IO per second) to a device",
    )
    .default("[]"),
    switch("quiet", Some('q'), "Suppress the pull output"),
    opt("expose", None, "list", "Expose a port or a range of ports"),
    opt(
        "volumes-from",
        None,
        "list",
        "Mount volumes from the specified container(s)",
    ),
    opt(
        "platform",
        None,
        "string",
        "Set platform if server is multi-platform capable (the host's only)",
    ),
    opt("label-file", None, "list", "Read in a line delimited file of labels"),
    opt("domainname", None, "string", "Container NIS domain name"),
    opt("ipc", None, "string", "IPC mode to use"),
    opt(
        "oom-score-adj",
        None,
        "int",
        "Tune host's OOM preferences (-1000 to 1000)",
    ),
    opt("pid", None, "string", "PID namespace to use"),
    opt("shm-size", None, "bytes", "Size of /dev/shm"),
    opt("sysctl", None, "map", "Sysctl options"),
    opt("uts", None, "string", "UTS namespace to use"),
    switch(
        "privileged",
        None,
        "Give extended privileges to this container",
    ),
    opt(
        "userns",
        None,
        "string",
        "User namespace to use (host; keep-id when rootless)",
    ),
    opt(
        "uidmap",
        None,
        "list",
        "UID map of a user namespace of the container's own (CONTAINER:HOST:SIZE)",
    ),
    opt(
        "gidmap",
        None,
        "list",
        "GID map of a user namespace of the container's own (CONTAINER:HOST:SIZE)",
    ),
    opt(
        "publish",
        Some('p'),
        "list",
        "Publish a container's port(s) to the host",
    ),
    switch(
        "publish-all",
        Some('P'),
        "Publish all exposed ports to random ports",
    ),
    opt(
        "pull",
        None,
        "string",
        "Pull image before running (\"always\", \"missing\", \"never\")",
    )
    .default("\"missing\""),
    switch(
        "read-only",
        None,
        "Mount the container's root filesystem as read only",
    ),
    opt(
        "restart",
        None,
        "string",
        "Restart policy to apply when a container exits",
    )
    .default("\"no\""),
    switch(
        "rm",
        None,
        "Automatically remove the container and its associated anonymous volumes when it exits",
    ),
    opt("security-opt", None, "list", "Security Options"),
    opt(
        "stop-signal",
        None,
        "string",
        "Signal to stop the container",
    ),
    opt(
        "stop-timeout",
        None,
        "int",
        "Timeout (in seconds) to stop a container",
    ),
    opt("tmpfs", None, "list", "Mount a tmpfs directory"),
    switch("tty", Some('t'), "Allocate a pseudo-TTY"),
    opt("ulimit", None, "ulimit", "Ulimit options"),
    opt(
        "user",
        Some('u'),
        "string",
        "Username or UID (format: <name|uid>[:<group|gid>])",
    ),
    opt("volume", Some('v'), "list", "Bind mount a volume"),
    opt(
        "workdir",
        Some('w'),
        "string",
        "Working directory inside the container",
    ),
    opt("net", None, "network", "Connect a container to a network").hidden(),
    opt(
        "net-alias",
        None,
        "list",
        "Add network-scoped alias for the container",
    )
    .hidden(),
    opt("dns-opt", None, "list", "Set DNS options").hidden(),
];

/// What only an attached `run` uses: `create` accepts them too (hidden).
const ATTACH: [Flag; 3] = [
    switch(
        "detach",
        Some('d'),
        "Run container in background and print container ID",
    ),
    opt(
        "detach-keys",
        None,
        "string",
        "Override the key sequence for detaching a container",
    ),
    switch("sig-proxy", None, "Proxy received signals to the process").default("true"),
];

const RUN: [Flag; CONFIG.len() + 3] = join(CONFIG, &ATTACH);
const CREATE: [Flag; CONFIG.len() + 3] = join(
    CONFIG,
    &[ATTACH[0].hidden(), ATTACH[1].hidden(), ATTACH[2].hidden()],
);

/// `stop` and `restart`.
const STOP: &[Flag] = &[
    opt(
        "signal",
        Some('s'),
        "string",
        "Signal to send to the container",
    ),
    opt(
        "time",
        None,
        "int",
        "Seconds to wait before killing the container",
    )
    .hidden(),
    opt(
        "timeout",
        Some('t'),
        "int",
        "Seconds to wait before killing the container",
    ),
];

/// docker's `run`/`create` flags Berth does not have yet.
const RUN_MISSING: &[(&str, Option<char>)] = &[
    ("cpu-count", None),
    ("cpu-percent", None),
    ("disable-content-trust", None),
    ("io-maxbandwidth", None),
    ("io-maxiops", None),
    ("isolation", None),
    ("kernel-memory", None),
    ("link-local-ip", None),
    ("runtime", None),
    ("use-api-socket", None),
    ("volume-driver", None),
];

pub const COMMANDS: &[Command] = &[
    Command {
        path: "container attach",
        aliases: &["attach"],
        usage: "[OPTIONS] CONTAINER",
        short: "Attach local standard input, output, and error streams to a running container",
        flags: &[
            ATTACH[1],
            switch("no-stdin", None, "Do not attach STDIN"),
            switch(
                "sig-proxy",
                None,
                "Proxy all received signals to the process",
            )
            .default("true"),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(containers::attach),
    },
    Command {
        path: "container commit",
        aliases: &["commit"],
        usage: "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
        short: "Create a new image from a container's changes",
        flags: &[
            opt(
                "author",
                Some('a'),
                "string",
                "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")",
            ),
            opt(
                "change",
                Some('c'),
                "list",
                "Apply Dockerfile instruction to the created image",
            ),
            opt("message", Some('m'), "string", "Commit message"),
            switch("pause", Some('p'), "Pause container during commit").default("true"),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(containers::commit),
    },
    Command {
        path: "container cp",
        aliases: &["cp"],
        usage: "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-",
        short: "Copy files/folders between a container and the local filesystem",
        flags: &[
            switch(
                "archive",
                Some('a'),
                "Archive mode (copy all uid/gid information)",
            ),
            switch(
                "follow-link",
                Some('L'),
                "Always follow symbol link in SRC_PATH",
            ),
            switch(
                "quiet",
                Some('q'),
                "Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached",
            ),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(containers::cp),
    },
    Command {
        path: "container create",
        aliases: &["create"],
        usage: "[OPTIONS] IMAGE [COMMAND] [ARG...]",
        short: "Create a new container",
        flags: &CREATE,
        interspersed: false,
        missing: RUN_MISSING,
        run: Engine(containers::create),
    },
    Command {
        path: "container diff",
        aliases: &["diff"],
        usage: "CONTAINER",
        short: "Inspect changes to files or directories on a container's filesystem",
        flags: &[],
        interspersed: true,
        missing: &[],
        run: Engine(crate::ops::diff),
    },
    Command {
        path: "container exec",
        aliases: &["exec"],
        usage: "[OPTIONS] CONTAINER COMMAND [ARG...]",
        short: "Execute a command in a running container",
        flags: &[
            switch(
                "detach",
                Some('d'),
                "Detached mode: run command in the background",
            ),
            ATTACH[1],
            ENV,
            ENV_FILE,
            switch(
                "interactive",
                Some('i'),
                "Keep STDIN open even if not attached",
            ),
            switch(
                "privileged",
                None,
                "Give extended privileges to the command",
            ),
            switch("tty", Some('t'), "Allocate a pseudo-TTY"),
            opt(
                "user",
                Some('u'),
                "string",
                "Username or UID (format: \"<name|uid>[:<group|gid>]\")",
            ),
            opt(
                "workdir",
                Some('w'),
                "string",
                "Working directory inside the container",
            ),
        ],
        interspersed: false,
        missing: &[],
        run: Engine(containers::exec),
    },
    Command {
        path: "container export",
        aliases: &["export"],
        usage: "[OPTIONS] CONTAINER",
        short: "Export a container's filesystem as a tar archive",
        flags: &[opt(
            "output",
            Some('o'),
            "string",
            "Write to a file, instead of STDOUT",
        )],
        interspersed: true,
        missing: &[],
        run: Engine(containers::export),
    },
    Command {
        path: "container inspect",
        aliases: &[],
        usage: "[OPTIONS] CONTAINER [CONTAINER...]",
        short: "Display detailed information on one or more containers",
        flags: &[
            FORMAT_INSPECT,
            switch("size", Some('s'), "Display total file sizes"),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(containers::inspect),
    },
    Command {
        path: "container kill",
        aliases: &["kill"],
        usage: "[OPTIONS] CONTAINER [CONTAINER...]",
        short: "Kill one or more running containers",
        flags: &[opt(
            "signal",
            Some('s'),
            "string",
            "Signal to send to the container",
        )],
        interspersed: true,
        missing: &[],
        run: Engine(containers::kill),
    },
    Command {
        path: "container logs",
        aliases: &["logs"],
        usage: "[OPTIONS] CONTAINER",
        short: "Fetch the logs of a container",
        flags: &[
            switch("details", None, "Show extra details provided to logs"),
            switch("follow", Some('f'), "Follow log output"),
            opt(
                "since",
                None,
                "string",
                "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)",
            ),
            opt(
                "tail",
                Some('n'),
                "string",
                "Number of lines to show from the end of the logs",
            )
            .default("\"all\""),
            switch("timestamps", Some('t'), "Show timestamps"),
            opt(
                "until",
                None,
                "string",
                "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)",
            ),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(containers::logs),
    },
    Command {
        path: "container ls",
        aliases: &["container list", "container ps", "ps"],
        usage: "[OPTIONS]",
        short: "List containers",
        flags: &[
            switch("all", Some('a'), "Show all containers").default("shows just running"),
            FILTER,
            FORMAT_TABLE,
            opt(
                "last",
                Some('n'),
                "int",
                "Show n last created containers (includes all states)",
            )
            .default("-1"),
            switch(
                "latest",
                Some('l'),
                "Show the latest created container (includes all states)",
            ),
            switch("no-trunc", None, "Don't truncate output"),
            switch("quiet", Some('q'), "Only display container IDs"),
            switch("size", Some('s'), "Display total file sizes"),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(containers::ps),
    },
    Command {
        path: "container pause",
        aliases: &["pause"],
        usage: "CONTAINER [CONTAINER...]",
        short: "Pause all processes within one or more containers",
        flags: &[],
        interspersed: true,
        missing: &[],
        run: Engine(containers::pause),
    },
    Command {
        path: "container port",
        aliases: &["port"],
        usage: "CONTAINER [PRIVATE_PORT[/PROTO]]",
        short: "List port mappings or a specific mapping for the container",
        flags: &[],
        interspersed: true,
        missing: &[],
        run: Engine(networks::port),
    },
    Command {
        path: "container prune",
        aliases: &[],
        usage: "[OPTIONS]",
        short: "Remove all stopped containers",
        flags: &[PRUNE_FILTER, PRUNE_FORCE],
        interspersed: true,
        missing: &[],
        run: Engine(containers::prune),
    },
    Command {
        path: "container rename",
        aliases: &["rename"],
        usage: "CONTAINER NEW_NAME",
        short: "Rename a container",
        flags: &[],
        interspersed: true,
        missing: &[],
        run: Engine(containers::rename),
    },
    Command {
        path: "container restart",
        aliases: &["restart"],
        usage: "[OPTIONS] CONTAINER [CONTAINER...]",
        short: "Restart one or more containers",
        flags: STOP,
        interspersed: true,
        missing: &[],
        run: Engine(containers::restart),
    },
    Command {
        path: "container rm",
        aliases: &["container remove", "rm"],
        usage: "[OPTIONS] CONTAINER [CONTAINER...]",
        short: "Remove one or more containers",
        flags: &[
            switch(
                "force",
                Some('f'),
                "Force the removal of a running container (uses SIGKILL)",
            ),
            switch("link", Some('l'), "Remove the specified link"),
            switch(
                "volumes",
                Some('v'),
                "Remove anonymous volumes associated with the container",
            ),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(containers::rm),
    },
    Command {
        path: "container run",
        aliases: &["run"],
        usage: "[OPTIONS] IMAGE [COMMAND] [ARG...]",
        short: "Create and run a new container from an image",
        flags: &RUN,
        interspersed: false,
        missing: RUN_MISSING,
        run: Engine(containers::run),
    },
    Command {
        path: "container start",
        aliases: &["start"],
        usage: "[OPTIONS] CONTAINER [CONTAINER...]",
        short: "Start one or more stopped containers",
        flags: &[
            switch(
                "attach",
                Some('a'),
                "Attach STDOUT/STDERR and forward signals",
            ),
            ATTACH[1],
            switch("interactive", Some('i'), "Attach container's STDIN"),
        ],
        interspersed: true,
        missing: &[("checkpoint", None), ("checkpoint-dir", None)],
        run: Engine(containers::start),
    },
    Command {
        path: "container stats",
        aliases: &["stats"],
        usage: "[OPTIONS] [CONTAINER...]",
        short: "Display a live stream of container(s) resource usage statistics",
        flags: &[
            switch("all", Some('a'), "Show all containers").default("shows just running"),
            FORMAT_TABLE,
            switch(
                "no-stream",
                None,
                "Disable streaming stats and only pull the first result",
            ),
            switch("no-trunc", None, "Do not truncate output"),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(engine_info::stats),
    },
    Command {
        path: "container stop",
        aliases: &["stop"],
        usage: "[OPTIONS] CONTAINER [CONTAINER...]",
        short: "Stop one or more running containers",
        flags: STOP,
        interspersed: true,
        missing: &[],
        run: Engine(containers::stop),
    },
    Command {
        path: "container top",
        aliases: &["top"],
        usage: "CONTAINER [ps OPTIONS]",
        short: "Display the running processes of a container",
        flags: &[],
        interspersed: false,
        missing: &[],
        run: Engine(engine_info::top),
    },
    Command {
        path: "container unpause",
        aliases: &["unpause"],
        usage: "CONTAINER [CONTAINER...]",
        short: "Unpause all processes within one or more containers",
        flags: &[],
        interspersed: true,
        missing: &[],
        run: Engine(containers::unpause),
    },
    Command {
        path: "container update",
        aliases: &["update"],
        usage: "[OPTIONS] CONTAINER [CONTAINER...]",
        short: "Update configuration of one or more containers",
        flags: &[
            opt(
                "cpu-period",
                None,
                "int",
                "Limit CPU CFS (Completely Fair Scheduler) period",
            ),
            opt(
                "cpu-quota",
                None,
                "int",
                "Limit CPU CFS (Completely Fair Scheduler) quota",
            ),
            opt(
                "cpu-shares",
                Some('c'),
                "int",
                "CPU shares (relative weight)",
            ),
            opt("cpus", None, "decimal", "Number of CPUs"),
            opt(
                "cpuset-cpus",
                None,
                "string",
                "CPUs in which to allow execution (0-3, 0,1)",
            ),
            CPUSET_MEMS,
            BLKIO_WEIGHT,
            CPU_RT_PERIOD,
            CPU_RT_RUNTIME,
            opt("memory", Some('m'), "bytes", "Memory limit"),
            MEMORY_RESERVATION,
            opt(
                "memory-swap",
                None,
                "bytes",
                "Swap limit equal to memory plus swap: -1 to enable unlimited swap",
            ),
            opt(
                "pids-limit",
                None,
                "int",
                "Tune container pids limit (set -1 for unlimited)",
            ),
            opt(
                "restart",
                None,
                "string",
                "Restart policy to apply when a container exits",
            ),
        ],
        interspersed: true,
        missing: &[],
        run: Engine(crate::ops::update),
    },
    Command {
        path: "container wait",
        aliases: &["wait"],
        usage: "CONTAINER [CONTAINER...]",
        short: "Block until one or more containers stop, then print their exit codes",
        flags: &[opt(
            "condition",
            None,
            "string",
            "Wait for \"not-running\", \"next-exit\" or \"removed\"",
        )
        .default("\"not-running\"")],
        interspersed: true,
        missing: &[],
        run: Engine(containers::wait),
    },
];
