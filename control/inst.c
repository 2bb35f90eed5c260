/*
 * inst.c - using a sandbox's backend instance (sb->inst) without holding a
 * lock across the backend call.
 *
 * Backend calls may block for seconds (a spawn waits up to 30 s for the agent,
 * the docker backend makes HTTP calls). A mutex held across them made every
 * files/ lookup, `status` and `metrics` read wait behind a spawn. Instead, a
 * call announces itself in fields under sb->lock and releases the lock before
 * the backend works:
 *  - shared calls (spawn, status, metrics, root_fd, user_ids, watch_*) run
 *    together, any number at once;
 *  - an exclusive call (destroy, release, pause, resume, restart, set_limits:
 *    the ones that change what the others use, or free it) runs alone.
 * Only a call of the other kind waits, and it waits on sb->inst_cond, not on a
 * mutex. A waiting exclusive call holds back new shared ones so a stream of
 * runs cannot starve a kill. inst stays valid from inst_enter to inst_leave:
 * only an exclusive holder frees or replaces it.
 */
#include "sandbox.h"

#include <errno.h>

struct sbx_instance *inst_enter(struct sandbox *sb, unsigned mode, struct sbx_err *err)
{
	bool excl = mode & INST_EXCL;
	struct sbx_instance *inst;

	pthread_mutex_lock(&sb->lock);
	if (excl) {
		sb->inst_excl_waiting++;
		while (sb->inst_excl || sb->inst_shared)
			pthread_cond_wait(&sb->inst_cond, &sb->lock);
		sb->inst_excl_waiting--;
		sb->inst_excl = true;
	} else {
		while (sb->inst_excl || sb->inst_excl_waiting)
			pthread_cond_wait(&sb->inst_cond, &sb->lock);
		sb->inst_shared++;
	}
	inst = sb->inst;
	if (inst && (sb->dead && !(mode & INST_EVEN_DEAD)))
		inst = NULL;
	pthread_mutex_unlock(&sb->lock);
	if (!inst) {
		inst_leave(sb, mode);
		sbx_err_set(err, ENOENT, "sandbox '%s' is not running", sb->name);
	}
	return inst;
}

void inst_leave(struct sandbox *sb, unsigned mode)
{
	pthread_mutex_lock(&sb->lock);
	if (mode & INST_EXCL)
		sb->inst_excl = false;
	else
		sb->inst_shared--;
	pthread_cond_broadcast(&sb->inst_cond);
	pthread_mutex_unlock(&sb->lock);
}

void inst_claim_new(struct sandbox *sb)
{
	pthread_mutex_lock(&sb->lock);
	sb->inst_excl = true;
	pthread_mutex_unlock(&sb->lock);
}

void inst_publish(struct sandbox *sb, struct sbx_instance *inst)
{
	pthread_mutex_lock(&sb->lock);
	sb->inst = inst;
	sb->inst_excl = false;
	pthread_cond_broadcast(&sb->inst_cond);
	pthread_mutex_unlock(&sb->lock);
}

void inst_forget(struct sandbox *sb)
{
	pthread_mutex_lock(&sb->lock);
	sb->inst = NULL;
	pthread_mutex_unlock(&sb->lock);
}
