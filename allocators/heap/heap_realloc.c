/* in progress */
#include "heap_internal.h"
