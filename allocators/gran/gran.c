/* in progress */
#include "mm/gran.h"
