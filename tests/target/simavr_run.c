/*
 * simavr_run.c - run an AVR test firmware under simavr (libsimavr) and exit
 * with its status.
 *
 *   simavr_run MCU FREQUENCY FIRMWARE.elf
 *
 * The stock simavr command exits 0 whatever the firmware did and prints the
 * UART line by line with its own prefix.  This runner copies USART0 to
 * stdout byte for byte, runs until the firmware sleeps with interrupts off
 * (simavr's "done"), and then reads the status the firmware left in GPIOR0,
 * with the marker in GPIOR1 that says it ended through tu_board_exit
 * (tu_board_avr.c).  A crash, a halt without the marker, or more than
 * TU_MAX_SECONDS of simulated time is a failure (status 2).
 *
 * Test-only: built for the build machine by tests/target/meson.build.
 */
#include <stdio.h>
#include <stdlib.h>

#include <avr_uart.h>
#include <sim_avr.h>
#include <sim_elf.h>
#include <sim_io.h>
#include <sim_irq.h>

/* I/O addresses (data space) of GPIOR0 and GPIOR1 on the ATmega1284p, and
 * the marker of tu_board_avr.c. */
#define GPIOR0_ADDR    0x3e
#define GPIOR1_ADDR    0x4a
#define EXIT_MARK      0xa5
#define TU_MAX_SECONDS 600ull

static void uart_out(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    putchar((int)(value & 0xffu));
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MCU FREQUENCY FIRMWARE.elf\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* the output so far survives a crash */
    elf_firmware_t fw = {0};
    if (elf_read_firmware(argv[3], &fw) != 0) {
        fprintf(stderr, "simavr_run: cannot read %s\n", argv[3]);
        return 2;
    }
    avr_t *avr = avr_make_mcu_by_name(argv[1]);
    if (avr == NULL) {
        fprintf(stderr, "simavr_run: unknown MCU %s\n", argv[1]);
        return 2;
    }
    avr_init(avr);
    avr->frequency = (uint32_t)strtoul(argv[2], NULL, 0);
    avr_load_firmware(avr, &fw);

    /* Raw bytes, no line buffering or prefix in simavr, and no sleeping
     * in the UART's status polls. */
    uint32_t flags = 0;
    avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
    flags &= ~(uint32_t)(AVR_UART_FLAG_STDIO | AVR_UART_FLAG_POLL_SLEEP);
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    avr_irq_t *out = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT);
    if (out == NULL) {
        fprintf(stderr, "simavr_run: no USART0\n");
        return 2;
    }
    avr_irq_register_notify(out, uart_out, NULL);

    uint64_t limit = (uint64_t)avr->frequency * TU_MAX_SECONDS;
    int state = cpu_Running;
    while (state != cpu_Done && state != cpu_Crashed) {
        state = avr_run(avr);
        if (avr->cycle > limit) {
            fflush(stdout);
            fprintf(stderr, "simavr_run: still running after %llu s of AVR time\n",
                    (unsigned long long)TU_MAX_SECONDS);
            return 2;
        }
    }
    fflush(stdout);
    if (state == cpu_Crashed) {
        fprintf(stderr, "simavr_run: the firmware crashed (pc 0x%05x)\n", (unsigned)avr->pc);
        return 2;
    }
    if (avr->data[GPIOR1_ADDR] != EXIT_MARK) {
        fprintf(stderr, "simavr_run: the firmware halted without an exit status (pc 0x%05x)\n",
                (unsigned)avr->pc);
        return 2;
    }
    int status = avr->data[GPIOR0_ADDR];
    avr_terminate(avr);
    return status;
}
