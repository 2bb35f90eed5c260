/*
 * lo_seccomp.c - the system calls a sandbox may not make.
 *
 * Default allow (Python, Node and Bash must work unchanged); what could
 * reconfigure the kernel, reach across namespaces, or widen the attack surface
 * fails with EPERM. clone3 answers ENOSYS because its flags sit behind a
 * pointer the filter cannot read; libc then falls back to clone, whose flags
 * the filter checks.
 */
#include "lo_seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const denied[] = {
	"mount", "umount", "umount2", "pivot_root", "chroot", "unshare", "setns",
	"ptrace", "process_vm_readv", "process_vm_writev", "process_madvise",
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"create_module", "query_module", "get_kernel_syms",
	"add_key", "request_key", "keyctl", "bpf", "perf_event_open", "reboot",
	"swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"stime", "open_by_handle_at", "name_to_handle_at", "userfaultfd", "iopl", "ioperm",
	"lookup_dcookie", "quotactl", "quotactl_fd", "mount_setattr", "move_mount", "open_tree",
	"fsopen", "fsconfig", "fsmount", "fspick", "vhangup", "nfsservctl", "syslog", "uselib",
	"sysfs", "_sysctl", "fanotify_init", "kcmp", "pidfd_getfd", "vm86", "vm86old",
	"sethostname", "setdomainname",
};

int lo_seccomp_build(char **bpf, size_t *len, struct sbx_err *err)
{
	static const unsigned long ns_flags[] = { CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
						   CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET };
	/* personality() bits that weaken ASLR or memory protection. */
	static const unsigned long bad_persona[] = { 0x0040000 /* ADDR_NO_RANDOMIZE */,
						     0x0400000 /* READ_IMPLIES_EXEC */,
						     0x0100000 /* MMAP_PAGE_ZERO */ };
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int fd = -1, r = 0;
	struct stat st;
	char *buf = NULL;

	if (!ctx)
		return sbx_err_set(err, ENOMEM, "building the seccomp filter: out of memory");
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]) && r == 0; i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	for (size_t i = 0; i < sizeof(ns_flags) / sizeof(ns_flags[0]) && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* Bit 31 excludes the query form personality(0xffffffff), which has every bit set. */
	for (size_t i = 0; i < sizeof(bad_persona) / sizeof(bad_persona[0]) && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, bad_persona[i] | 0x80000000UL, bad_persona[i]));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, TIOCSTI));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, TIOCLINUX));
	if (r < 0) {
		seccomp_release(ctx);
		return sbx_err_sys(err, -r, "building the seccomp filter");
	}
	fd = memfd_create("sbxfs-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		r = errno;
		seccomp_release(ctx);
		return sbx_err_sys(err, r, "building the seccomp filter: memfd_create");
	}
	r = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (r < 0 || fstat(fd, &st) < 0 || st.st_size <= 0) {
		close(fd);
		return sbx_err_sys(err, r < 0 ? -r : EIO, "exporting the seccomp filter");
	}
	buf = malloc((size_t)st.st_size);
	if (!buf || pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		close(fd);
		return sbx_err_set(err, EIO, "reading back the seccomp filter");
	}
	close(fd);
	*bpf = buf;
	*len = (size_t)st.st_size;
	return 0;
}

int lo_seccomp_fd(const char *bpf, size_t len, struct sbx_err *err)
{
	int fd = memfd_create("sbxfs-seccomp", MFD_CLOEXEC);

	if (fd < 0)
		return sbx_err_sys(err, errno, "memfd_create for the seccomp filter");
	if (write(fd, bpf, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0) {
		int e = errno ? errno : EIO;

		close(fd);
		return sbx_err_sys(err, e, "writing the seccomp filter");
	}
	return fd;
}
