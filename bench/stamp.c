/* stamp: the child of the supervisor benchmarks. Its first act is to read CLOCK_REALTIME; it then
 * appends one line "<seconds>.<nanoseconds> <CRONVISOR_SCHEDULED_FOR or ->\n" to the file named
 * by argv[1] with a single O_APPEND write (atomic for such a short line, so a thousand concurrent
 * stamps never interleave). Linked statically when possible, so that the dynamic loader's work
 * is not part of what the benchmarks measure. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (argc < 2) {
        fprintf(stderr, "usage: stamp FILE\n");
        return 2;
    }
    const char *sched = getenv("CRONVISOR_SCHEDULED_FOR");
    char line[160];
    int n = snprintf(line, sizeof(line), "%lld.%09ld %s\n", (long long)ts.tv_sec, ts.tv_nsec,
                     sched && *sched ? sched : "-");
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        perror(argv[1]);
        return 1;
    }
    close(fd);
    return 0;
}
