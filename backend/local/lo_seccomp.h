/* lo_seccomp.h - the seccomp filter of local sandboxes, as BPF bytes for bwrap --seccomp. */
#ifndef SBX_LO_SECCOMP_H
#define SBX_LO_SECCOMP_H

#include <stddef.h>

#include "../backend.h"

/* Builds the filter; *bpf is malloc'd. */
int lo_seccomp_build(char **bpf, size_t *len, struct sbx_err *err);

/* A memfd holding the filter at offset 0, for one bwrap start. */
int lo_seccomp_fd(const char *bpf, size_t len, struct sbx_err *err);

#endif
