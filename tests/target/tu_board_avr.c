/*
 * tu_board_avr.c - console and exit of the AVR target under simavr: stdout
 * goes to USART0, and the exit status is left in GPIOR0 (with a marker in
 * GPIOR1) before the CPU sleeps with interrupts off, which simavr takes as
 * the end of the program.  tests/target/simavr_run.c reads both back.
 */
#include "test_util.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <stdio.h>

/* What simavr_run.c checks in GPIOR1: the firmware ended through here. */
#define TU_AVR_EXIT_MARK 0xa5u

static int uart_putchar(char c, FILE *f)
{
    (void)f;
    while ((UCSR0A & (1u << UDRE0)) == 0)
        ;
    UDR0 = (uint8_t)c;
    return 0;
}

static FILE g_uart = FDEV_SETUP_STREAM(uart_putchar, NULL, _FDEV_SETUP_WRITE);

void tu_board_init(void)
{
    UBRR0 = 0;
    UCSR0B = (uint8_t)(1u << TXEN0);
    stdout = &g_uart;
    stderr = &g_uart;
}

_Noreturn void tu_board_exit(int status)
{
    GPIOR0 = (uint8_t)status;
    GPIOR1 = TU_AVR_EXIT_MARK;
    cli();
    SMCR = (uint8_t)((1u << SM1) | (1u << SE)); /* power-down, sleep enabled */
    for (;;)
        __asm__ __volatile__("sleep" ::: "memory");
}
