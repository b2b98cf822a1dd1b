/* cronvisor: the command line. Subcommands are dispatched to core/cli_*.c. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("cronvisor %s\n", CV_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: cronvisor <command> [options]\n");
    return 2;
}
