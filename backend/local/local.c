/* local.c - placeholder until the local backend lands. */
#include "../backend.h"

const struct sbx_backend_ops sbx_local_backend = {
	.name = "local",
};
