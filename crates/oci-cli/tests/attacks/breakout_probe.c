/*
 * The engine-level escape attempts of crates/cli/tests/breakout.rs, run inside a container
 * started by `berth run` with default settings. Each attempt is the first step of a known
 * way out; it prints "NAME: blocked (errno)" or "NAME: ALLOWED". Static, no libc surprises.
 *
 *   breakout_probe HOST_PID ABSTRACT_NAME   try everything (HOST_PID: a process outside)
 *   breakout_probe listen ABSTRACT_NAME     on the host: listen on @ABSTRACT_NAME for 30 s
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

static void report(const char *name, long r) {
    if (r < 0)
        printf("%s: blocked (%s)\n", name, strerror(errno));
    else
        printf("%s: ALLOWED\n", name);
    fflush(stdout);
}

static int abstract_addr(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (n + 1 > sizeof(a->sun_path))
        n = sizeof(a->sun_path) - 1;
    memcpy(a->sun_path + 1, name, n);
    return (int)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* Opens for writing; a success is an escape whether or not a write follows. */
static long open_write(const char *path) {
    int fd = open(path, O_WRONLY);
    if (fd >= 0)
        close(fd);
    return fd;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "listen") == 0) {
        struct sockaddr_un a;
        int len = abstract_addr(&a, argv[2]);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s < 0 || bind(s, (struct sockaddr *)&a, len) < 0 || listen(s, 8) < 0) {
            perror("listen");
            return 1;
        }
        printf("listening\n");
        fflush(stdout);
        sleep(30);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: breakout_probe HOST_PID ABSTRACT_NAME | listen NAME\n");
        return 2;
    }
    pid_t host_pid = (pid_t)atoi(argv[1]);

    /* Namespaces and mounts. */
    report("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER));
    report("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
    report("mount tmpfs", mount("none", "/tmp", "tmpfs", 0, NULL));
    report("umount /proc/kcore mask", umount2("/proc/kcore", MNT_DETACH));
    mkdir("/tmp/cg", 0700);
    /* CVE-2022-0492: a v1 hierarchy of one's own, to set release_agent. */
    report("mount cgroup v1 (release_agent)", mount("cgroup", "/tmp/cg", "cgroup", 0, "rdma"));
    report("setns to init's mount ns", ({
        int fd = open("/proc/1/ns/mnt", O_RDONLY);
        long r = fd < 0 ? -1 : setns(fd, CLONE_NEWNS);
        if (fd >= 0)
            close(fd);
        r;
    }));

    /* Kernel interfaces. */
    static const char image[64];
    report("init_module", syscall(SYS_init_module, image, sizeof(image), ""));
    report("finit_module", syscall(SYS_finit_module, 0, "", 0));
    report("keyctl(JOIN_SESSION_KEYRING)",
           syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "berth-probe"));
    report("add_key", syscall(SYS_add_key, "user", "berth", "x", 1, KEY_SPEC_SESSION_KEYRING));
    report("bpf(BPF_PROG_LOAD)", syscall(SYS_bpf, 5, NULL, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("open_by_handle_at (shocker)", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
    report("io_uring_setup", syscall(425, 1, NULL));
    report("socket(AF_VSOCK)", socket(40, SOCK_STREAM, 0));
    report("reboot", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, NULL));
    report("swapon", syscall(SYS_swapon, "/tmp/swap", 0));
    report("iopl", syscall(SYS_iopl, 3));
    report("settimeofday", syscall(SYS_settimeofday, NULL, NULL) == 0 ? 0 : ({
        /* EFAULT means the call got through the filter and capability checks. */
        errno == EFAULT ? 0 : -1;
    }));

    /* Raw devices: the node can be made (CAP_MKNOD), never opened (device cgroup). */
    mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0));
    report("open block device 8:0", ({
        int fd = open("/tmp/sda", O_RDONLY);
        if (fd >= 0)
            close(fd);
        fd;
    }));
    mknod("/tmp/mem", S_IFCHR | 0600, makedev(1, 1));
    report("open /dev/mem (1:1)", ({
        int fd = open("/tmp/mem", O_RDONLY);
        if (fd >= 0)
            close(fd);
        fd;
    }));

    /* Host files through /proc and /sys. */
    report("write /proc/sys/kernel/core_pattern", open_write("/proc/sys/kernel/core_pattern"));
    report("write /proc/sysrq-trigger", open_write("/proc/sysrq-trigger"));
    report("write /sys/kernel/uevent_helper", open_write("/sys/kernel/uevent_helper"));
    report("write /sys/fs/cgroup (release_agent)", ({
        int fd = open("/sys/fs/cgroup/release_agent", O_WRONLY | O_CREAT, 0600);
        if (fd >= 0)
            close(fd);
        fd;
    }));
    report("read /proc/kcore", ({
        int fd = open("/proc/kcore", O_RDONLY);
        char b;
        long r = fd < 0 ? -1 : read(fd, &b, 1);
        if (fd >= 0)
            close(fd);
        r > 0 ? 0 : -1;
    }));

    /* Processes outside: the host pid names nothing here, or not that process. */
    report("kill(host pid, 0)", kill(host_pid, 0) == 0 && host_pid > 1000 ? 0 : -1);
    report("ptrace(ATTACH, host pid)", ptrace(PTRACE_ATTACH, host_pid, NULL, NULL));

    /* The host's abstract unix sockets (per network namespace). */
    {
        struct sockaddr_un a;
        int len = abstract_addr(&a, argv[2]);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        report("connect @host-abstract-socket", s < 0 ? -1 : connect(s, (struct sockaddr *)&a, len));
    }
    return 0;
}
