/*
 * changes.c - what a sandbox's code changes in its files, passed from the
 * backend's watch_* ops to the FUSE layer (cache invalidation, `watch`).
 */
#include "sandbox.h"

#include <errno.h>

int sandbox_watch_start(struct sandbox *sb, sbx_change_fn fn, void *arg, bool *complete,
			struct sbx_err *err)
{
	const struct sbx_backend_ops *ops = sb->ctl->ops;
	int ret;

	*complete = false;
	pthread_mutex_lock(&sb->op_lock);
	if (!sb->inst || !sandbox_alive(sb))
		ret = sbx_err_set(err, ENOENT, "sandbox '%s' is not running", sb->name);
	else if (!ops->watch_start)
		ret = sbx_err_set(err, ENOTSUP, "the %s backend cannot watch sandboxes", ops->name);
	else
		ret = ops->watch_start(sb->inst, fn, arg, complete, err);
	pthread_mutex_unlock(&sb->op_lock);
	return ret;
}

void sandbox_watch_sync(struct sandbox *sb)
{
	/* No sandbox lock: the backend syncs all its sandboxes, and a run's end must not wait. */
	if (sb->ctl->ops->watch_sync)
		sb->ctl->ops->watch_sync(sb->ctl->be);
}

void sandbox_watch_stop(struct sandbox *sb)
{
	pthread_mutex_lock(&sb->op_lock);
	if (sb->inst && sb->ctl->ops->watch_stop)
		sb->ctl->ops->watch_stop(sb->inst);
	pthread_mutex_unlock(&sb->op_lock);
}
