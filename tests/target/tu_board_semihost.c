/*
 * tu_board_semihost.c - console and exit of the QEMU targets (Cortex-M on
 * mps2, RISC-V on virt): picolibc's semihosting crt0 and oslib carry stdout
 * and the exit status to the host, where QEMU exits with that status.
 */
#include "test_util.h"

#include <stdlib.h>

void tu_board_init(void)
{
}

_Noreturn void tu_board_exit(int status)
{
    exit(status);
}
