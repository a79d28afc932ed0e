/*
 * replay.c - run a fuzz target over saved inputs without libFuzzer.
 *
 * Any compiler builds it, so CI runs the seed corpus and every crash input
 * saved in it through the same invariants the fuzzer checks.  Arguments are
 * files or directories (one level); it fails when it ran no input at all,
 * so a missing corpus cannot pass for a clean one.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            fclose(f);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        uint8_t *nbuf = realloc(buf, cap);
        if (nbuf == NULL)
            free(buf);
        buf = nbuf;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        return -1;
    }
    printf("%s (%zu bytes)\n", path, n);
    fflush(stdout);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned ran = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) != 0)
                return 1;
            ran++;
            continue;
        }
        struct dirent **names;
        int count = scandir(argv[i], &names, NULL, alphasort);
        if (count < 0) {
            perror(argv[i]);
            return 1;
        }
        for (int j = 0; j < count; j++) {
            char path[4096];
            if (names[j]->d_name[0] != '.') {
                snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]->d_name);
                if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                    if (run_file(path) != 0)
                        return 1;
                    ran++;
                }
            }
            free(names[j]);
        }
        free(names);
    }
    printf("%u inputs\n", ran);
    return ran > 0 ? 0 : 1;
}
