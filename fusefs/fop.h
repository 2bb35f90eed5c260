/*
 * fop.h - FUSE requests counted by opcode for the root `metrics` file: one
 * relaxed atomic increment at the top of each handler in ops.c.
 */
#ifndef SBX_FOP_H
#define SBX_FOP_H

#include <stdatomic.h>
#include <stdint.h>

#define FOP_LIST(X) \
	X(lookup) X(forget) X(forget_multi) X(getattr) X(setattr) X(readlink) X(mknod) X(mkdir) \
	X(unlink) X(rmdir) X(symlink) X(rename) X(link) X(open) X(create) X(read) X(write_buf) \
	X(flush) X(release) X(fsync) X(opendir) X(readdir) X(readdirplus) X(releasedir) X(statfs) \
	X(fallocate) X(lseek) X(copy_file_range) X(setxattr) X(getxattr) X(listxattr) \
	X(removexattr) X(getlk) X(setlk) X(flock) X(poll)

#define FOP_ENUM(name) FOP_##name,
enum fop { FOP_LIST(FOP_ENUM) FOP_COUNT };
#undef FOP_ENUM

extern _Atomic uint64_t fop_count[FOP_COUNT];

#define FOP_COUNT_ONE(name) atomic_fetch_add_explicit(&fop_count[FOP_##name], 1, memory_order_relaxed)

#endif
