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
	struct sbx_instance *inst;
	int ret;

	*complete = false;
	if (!ops->watch_start)
		return sbx_err_set(err, ENOTSUP, "the %s backend cannot watch sandboxes", ops->name);
	inst = inst_enter(sb, INST_SHARED, err);
	if (!inst)
		return -err->code;
	ret = ops->watch_start(inst, fn, arg, complete, err);
	inst_leave(sb, INST_SHARED);
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
	struct sbx_instance *inst;

	if (!sb->ctl->ops->watch_stop)
		return;
	inst = inst_enter(sb, INST_SHARED | INST_EVEN_DEAD, NULL);
	if (inst) {
		sb->ctl->ops->watch_stop(inst);
		inst_leave(sb, INST_SHARED | INST_EVEN_DEAD);
	}
}
