/* lo_mnt.c - detached mounts of a local sandbox (see lo_mnt.h). */
#include "lo_mnt.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* fsopen + options + fsmount; returns the detached mount's fd or -errno. */
static int fs_mount(const char *type, const char *const *kv, unsigned attrs)
{
	int fs = fsopen(type, FSOPEN_CLOEXEC), mnt = -1, e = 0;

	if (fs < 0)
		return -errno;
	for (size_t i = 0; kv[i]; i += 2)
		if (fsconfig(fs, FSCONFIG_SET_STRING, kv[i], kv[i + 1], 0) < 0) {
			e = -errno;
			break;
		}
	if (!e && fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		e = -errno;
	if (!e) {
		mnt = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
		if (mnt < 0)
			e = -errno;
	}
	close(fs);
	return e ? e : mnt;
}

/* The host's /usr, read-only, nosuid, nodev, on the detached root's usr (a clone of its mounts). */
static int attach_usr(int root, struct sbx_err *err)
{
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
	int usr = open_tree(AT_FDCWD, "/usr", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE), r = 0;

	if (usr < 0)
		return sbx_err_sys(err, errno, "cloning the host's /usr");
	if (syscall(SYS_mount_setattr, usr, "", AT_EMPTY_PATH | AT_RECURSIVE, &ro, sizeof(ro)) < 0 ||
	    move_mount(usr, "", root, "usr", MOVE_MOUNT_F_EMPTY_PATH) < 0)
		r = sbx_err_sys(err, errno, "putting the host's /usr on the sandbox's root");
	close(usr);
	return r;
}

int lo_mnt_make(const char *loopdev, const char *lower, struct lo_mnt *m, struct sbx_err *err)
{
	const char *ext4[] = { "source", loopdev, NULL };
	char low[40], up[48], work[48];
	int lfd, r;

	m->disk = m->root = -1;
	r = fs_mount("ext4", ext4, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOATIME);
	if (r < 0)
		return sbx_err_sys(err, -r, "mounting the sandbox's disk (%s)", loopdev);
	m->disk = r;
	if ((mkdirat(m->disk, "upper", 0755) < 0 && errno != EEXIST) ||
	    (mkdirat(m->disk, "work", 0700) < 0 && errno != EEXIST)) {
		r = sbx_err_sys(err, errno, "preparing the sandbox's disk");
		goto fail;
	}
	lfd = open(lower, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (lfd < 0) {
		r = sbx_err_sys(err, errno, "opening the template '%s'", lower);
		goto fail;
	}
	snprintf(low, sizeof(low), "/proc/self/fd/%d", lfd);
	snprintf(up, sizeof(up), "/proc/self/fd/%d/upper", m->disk);
	snprintf(work, sizeof(work), "/proc/self/fd/%d/work", m->disk);
	{
		const char *ovl[] = { "lowerdir", low, "upperdir", up, "workdir", work, NULL };

		r = fs_mount("overlay", ovl, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	}
	close(lfd);
	if (r < 0) {
		r = sbx_err_sys(err, -r, "mounting the sandbox's root");
		goto fail;
	}
	m->root = r;
	if ((r = attach_usr(m->root, err)) < 0)
		goto fail;
	return 0;
fail:
	lo_mnt_close(m);
	return r;
}

/* In the helper (a fork of the daemon): clones /disk and /root of the launch namespace to the daemon. */
static void adopt_child(pid_t bw, int sock) __attribute__((noreturn));
static void adopt_child(pid_t bw, int sock)
{
	char path[48], cbuf[CMSG_SPACE(2 * sizeof(int))];
	int fds[2], ns;
	char one = 1;
	struct iovec iov = { &one, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)bw);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0 || setns(ns, CLONE_NEWNS) < 0)
		_exit(1);
	fds[0] = open_tree(AT_FDCWD, "/disk", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	fds[1] = open_tree(AT_FDCWD, "/root", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (fds[0] < 0 || fds[1] < 0)
		_exit(2);
	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	_exit(sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : 3);
}

int lo_mnt_adopt(pid_t bw, struct lo_mnt *m, struct sbx_err *err)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))], one;
	struct iovec iov = { &one, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int sp[2], st = 0;
	ssize_t n;
	pid_t pid;

	m->disk = m->root = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return sbx_err_sys(err, errno, "creating a socket pair");
	pid = fork();
	if (pid < 0) {
		close(sp[0]);
		close(sp[1]);
		return sbx_err_sys(err, errno, "forking");
	}
	if (pid == 0)
		adopt_child(bw, sp[1]);
	close(sp[1]);
	do
		n = recvmsg(sp[0], &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	close(sp[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	cm = n == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(2 * sizeof(int)))
		return sbx_err_set(err, EIO, "cannot take over the mounts of the running sandbox (helper status %d)",
				   WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	memcpy(&m->disk, CMSG_DATA(cm), sizeof(int));
	memcpy(&m->root, CMSG_DATA(cm) + sizeof(int), sizeof(int));
	return 0;
}

void lo_mnt_close(struct lo_mnt *m)
{
	if (m->disk >= 0)
		close(m->disk);
	if (m->root >= 0)
		close(m->root);
	m->disk = m->root = -1;
}
