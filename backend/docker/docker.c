/* docker.c - placeholder until the Docker backend lands: every call fails with ENOTSUP. */
#include "../backend.h"

#include <errno.h>

static int docker_init(const struct sbx_backend_opts *opts, struct sbx_backend **out, struct sbx_err *err)
{
	(void)opts;
	*out = NULL;
	return sbx_err_set(err, ENOTSUP, "the docker backend is not built yet");
}

const struct sbx_backend_ops sbx_docker_backend = {
	.name = "docker",
	.init = docker_init,
};
