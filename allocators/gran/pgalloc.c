/* in progress */
#include "mm/pgalloc.h"
