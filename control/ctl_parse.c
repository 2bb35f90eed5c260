/* ctl_parse.c - placeholder; see ctl_parse.h. */
#include "ctl_parse.h"
