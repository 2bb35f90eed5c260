/* lo_template.h - the skeleton root filesystems local sandboxes start from. */
#ifndef SBX_LO_TEMPLATE_H
#define SBX_LO_TEMPLATE_H

#include <pthread.h>
#include <stddef.h>

#include "../backend.h"

/*
 * Makes sure state_root/templates/NAME/rootfs exists (building it once,
 * atomically; tmpl_lock serialises builders of one backend) and writes its
 * path to out. Only "default" is known.
 */
int lo_template_ensure(pthread_mutex_t *tmpl_lock, const char *state_root, const char *name, char *out, size_t size,
		       struct sbx_err *err);

#endif
