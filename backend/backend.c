/* backend.c - the table of known backends, looked up by the name given in -o backend=. */
#include "backend.h"

#include <string.h>

static const struct sbx_backend_ops *const all_backends[] = {
	&sbx_local_backend,
	&sbx_docker_backend,
};

const struct sbx_backend_ops *sbx_backend_find(const char *name)
{
	for (size_t i = 0; i < sizeof(all_backends) / sizeof(all_backends[0]); i++)
		if (strcmp(all_backends[i]->name, name) == 0)
			return all_backends[i];
	return NULL;
}
