/*
 * tu_port_app.h - the test firmware's side of the app port (tu_port_app.c).
 */
#ifndef TU_PORT_APP_H
#define TU_PORT_APP_H

#include <stdbool.h>

/* No critical section is open. */
bool tu_port_app_balanced(void);
/* Critical sections entered so far. */
unsigned long tu_port_app_locks(void);

#endif /* TU_PORT_APP_H */
