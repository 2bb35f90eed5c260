/*
 * image.c - templates become images.
 *
 * `default`: the image sbxfs/default:DK_DEFAULT_TAG, labelled sbxfs.template=default and
 * sbxfs.template.version=DK_DEFAULT_TAG. When the engine has none, sbxfs-docker-rootfs writes a
 * root filesystem tarball that goes straight to POST /images/create?fromSrc=- (import); no
 * registry is involved. The build starts in the background at init; a create waits for it.
 * `image:NAME`: an image the engine already has, used as it is.
 * NAME, any other: the newest local image labelled sbxfs.template=NAME. templates() lists those
 * next to `default` (asking the engine at most every DK_TMPL_REFRESH_NS), so a team can offer
 * its own images under templates/ with nothing but a LABEL line in their Dockerfile.
 */
#include "dk.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* A file named name in dir, when it is there; caller frees. */
static char *dk_file_in(const char *dir, const char *name)
{
	char *p = NULL;

	if (!dir || asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	if (access(p, R_OK) == 0)
		return p;
	free(p);
	return NULL;
}

char *dk_image_find_script(const char *helper_dir)
{
	static const char name[] = "sbxfs-docker-rootfs";
	const char *env = getenv("SBXFS_DOCKER_ROOTFS");
	char exe[4096], *p, *slash;
	ssize_t n;

	if (env && access(env, R_OK) == 0)
		return strdup(env);
	if ((p = dk_file_in(helper_dir, name)) || (p = dk_file_in(SBX_HELPER_DIR, name)))
		return p;
	/* A build tree: build/sbxfs and build/backend/docker/docker_try sit beside their copy. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	if ((p = dk_file_in(exe, name)))
		return p;
	if (strlen(exe) + sizeof("/backend/docker") < sizeof(exe)) {
		strcat(exe, "/backend/docker");
		p = dk_file_in(exe, name);
	}
	return p;
}

/* 0 when the engine has the default image at the current version. */
static int dk_default_present(struct sbx_backend *be, struct sbx_err *err)
{
	struct dk_resp resp = {0};
	struct json_object *obj, *labels, *lv = NULL;
	const char *v = NULL;
	int r;

	r = dk_request(&be->eng, "GET", "/images/" DK_DEFAULT_REPO ":" DK_DEFAULT_TAG "/json", NULL,
		       DK_TIMEOUT_MS, &resp, err);
	if (r < 0) {
		dk_resp_free(&resp);
		return r;
	}
	obj = dk_json_parse(&resp, "image inspect", err);
	dk_resp_free(&resp);
	if (!obj)
		return -err->code;
	/* Label keys hold dots, which dk_json_path splits on: look the key up by hand. */
	labels = dk_json_path(obj, "Config.Labels");
	if (labels && json_object_object_get_ex(labels, "sbxfs.template.version", &lv))
		v = json_object_get_string(lv);
	r = v && strcmp(v, DK_DEFAULT_TAG) == 0
		? 0 : sbx_err_set(err, ENOENT, "image %s:%s has another version", DK_DEFAULT_REPO,
				  DK_DEFAULT_TAG);
	json_object_put(obj);
	return r;
}

/* Runs the rootfs script and imports its output. */
static int dk_default_build(struct sbx_backend *be, struct sbx_err *err)
{
	static const char *const changes[] = {
		"LABEL sbxfs.template=default",
		"LABEL sbxfs.template.version=" DK_DEFAULT_TAG,   /* NOLINT(bugprone-suspicious-missing-comma) */
		"ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
		"ENV LANG=C.UTF-8",
		"WORKDIR /home/user",
		"USER 1000:1000",
		"CMD [\"sleep\", \"infinity\"]",
	};
	char path[2048];
	posix_spawn_file_actions_t fa;
	struct dk_resp resp = {0};
	int pfd[2] = {-1, -1}, status = 0, r;
	pid_t pid = -1;
	size_t off;
	char *argv[3];

	if (!be->rootfs_script)
		return sbx_err_set(err, ENOENT,
				   "sbxfs-docker-rootfs not found (helper dir, SBXFS_DOCKER_ROOTFS): "
				   "cannot build the default image");
	off = (size_t)snprintf(path, sizeof(path), "/images/create?fromSrc=-&repo=%s&tag=%s",
			       "sbxfs%2Fdefault", DK_DEFAULT_TAG);
	for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]) && off < sizeof(path); i++) {
		char *enc = dk_urlencode(changes[i]);

		if (!enc)
			return sbx_err_set(err, ENOMEM, "out of memory");
		off += (size_t)snprintf(path + off, sizeof(path) - off, "&changes=%s", enc);
		free(enc);
	}
	if (off >= sizeof(path))
		return sbx_err_set(err, ENAMETOOLONG, "image import query too long");

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return sbx_err_sys(err, errno, "pipe");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	argv[0] = "/bin/sh";
	argv[1] = be->rootfs_script;
	argv[2] = NULL;
	r = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r != 0) {
		close(pfd[0]);
		return sbx_err_sys(err, r, "running '%s'", be->rootfs_script);
	}
	r = dk_request_upload(&be->eng, path, "application/x-tar", pfd[0], DK_TIMEOUT_BUILD_MS,
			      &resp, err);
	close(pfd[0]);   /* a script still writing gets EPIPE and ends */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		r = sbx_err_set(err, EIO, "'%s' failed (status %d); the image is incomplete",
				be->rootfs_script, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	/* The import answers 200 with a progress stream; a failure is an "error" in it. */
	if (r == 0 && resp.body && strstr(resp.body, "\"error\"")) {
		struct json_object *obj = json_tokener_parse(strrchr(resp.body, '{') ? strrchr(resp.body, '{') : "");
		const char *m = obj ? dk_json_str(obj, "error") : NULL;

		r = sbx_err_set(err, EIO, "docker: image import failed: %s", m ? m : "unknown error");
		json_object_put(obj);
	}
	dk_resp_free(&resp);
	if (r < 0)
		return sbx_err_wrap(err, "building image %s:%s", DK_DEFAULT_REPO, DK_DEFAULT_TAG);
	return dk_default_present(be, err);
}

static int dk_default_ensure(struct sbx_backend *be, struct sbx_err *err)
{
	int r = 0;

	pthread_mutex_lock(&be->img_lock);
	if (!be->default_ready) {
		r = dk_default_present(be, err);
		if (r == -ENOENT)
			r = dk_default_build(be, err);
		if (r == 0) {
			be->default_ready = true;
			sbx_err_clear(err);   /* the "not there" of the first look */
		}
	}
	pthread_mutex_unlock(&be->img_lock);
	return r;
}

static void *dk_builder_main(void *arg)
{
	struct sbx_backend *be = arg;
	struct sbx_err err = {0};

	/* A failure here is not final: the next create tries again and reports it. */
	if (dk_default_ensure(be, &err) < 0)
		fprintf(stderr, "sbxfs: docker: default image: %s\n", err.msg);
	return NULL;
}

void dk_image_prepare_async(struct sbx_backend *be)
{
	be->builder_running = pthread_create(&be->builder, NULL, dk_builder_main, be) == 0;
}

void dk_image_join(struct sbx_backend *be)
{
	if (be->builder_running)
		pthread_join(be->builder, NULL);
	be->builder_running = false;
}

/* GET /images/json for images labelled sbxfs.template (=value when value is given). */
static int dk_labelled_images(struct sbx_backend *be, const char *value, struct json_object **out,
			      struct sbx_err *err)
{
	struct dk_resp resp = {0};
	char filt[256], *enc, *path = NULL;
	int r;

	*out = NULL;
	snprintf(filt, sizeof(filt), "{\"label\":[\"sbxfs.template%s%s\"]}", value ? "=" : "",
		 value ? value : "");
	enc = dk_urlencode(filt);
	if (!enc || asprintf(&path, "/images/json?filters=%s", enc) < 0) {
		free(enc);
		return sbx_err_set(err, ENOMEM, "out of memory");
	}
	free(enc);
	r = dk_request(&be->eng, "GET", path, NULL, DK_TIMEOUT_MS, &resp, err);
	free(path);
	if (r == 0) {
		*out = dk_json_parse(&resp, "image list", err);
		if (!*out || !json_object_is_type(*out, json_type_array)) {
			json_object_put(*out);
			*out = NULL;
			r = sbx_err_set(err, EIO, "docker: unreadable image list");
		}
	}
	dk_resp_free(&resp);
	return r;
}

static const char *dk_image_label(struct json_object *img)
{
	struct json_object *labels = dk_json_path(img, "Labels"), *v = NULL;

	if (labels && json_object_is_type(labels, json_type_object) &&
	    json_object_object_get_ex(labels, "sbxfs.template", &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* A template name as the contract allows sandbox names: [A-Za-z0-9_.-]{1,64}, no leading '.'. */
static bool dk_tmpl_name_ok(const char *n)
{
	size_t len = n ? strlen(n) : 0;

	if (len == 0 || len > 64 || n[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(isalnum((unsigned char)n[i]) || n[i] == '_' || n[i] == '.' || n[i] == '-'))
			return false;
	return true;
}

static void dk_tmpl_gen_free(struct dk_tmpl_gen *g)
{
	while (g) {
		struct dk_tmpl_gen *older = g->older;

		for (size_t i = 0; i < g->n; i++) {
			free((char *)g->infos[i].name);
			free((char *)g->infos[i].description);
		}
		free(g->infos);
		free(g->list);
		free(g);
		g = older;
	}
}

/* Builds the list from the engine's labelled images; NULL on failure (keep the old one). */
/* Adds one labelled image to g, unless its name is bad, `default` or already there. */
static void dk_tmpl_gen_add(struct dk_tmpl_gen *g, struct json_object *img)
{
	struct json_object *tags = dk_json_path(img, "RepoTags");
	const char *name = dk_image_label(img), *tag = NULL;
	char *desc = NULL;

	if (!dk_tmpl_name_ok(name) || strcmp(name, "default") == 0)
		return;
	for (size_t k = 0; k < g->n; k++)
		if (strcmp(g->infos[k].name, name) == 0)
			return;
	if (tags && json_object_is_type(tags, json_type_array) && json_object_array_length(tags))
		tag = json_object_get_string(json_object_array_get_idx(tags, 0));
	if (!tag)
		tag = dk_json_str(img, "Id") ? dk_json_str(img, "Id") : "?";
	if (asprintf(&desc, "Local Docker image %s, labelled sbxfs.template=%s.\n"
		     "Runs as user (uid 1000) in /home/user, no network, all capabilities dropped.\n",
		     tag, name) < 0)
		return;
	g->infos[g->n].name = strdup(name);
	g->infos[g->n].description = desc;
	if (!g->infos[g->n].name) {
		free(desc);
		return;
	}
	g->list[1 + g->n] = &g->infos[g->n];
	g->n++;
}

static struct dk_tmpl_gen *dk_tmpl_gen_new(struct sbx_backend *be)
{
	struct json_object *imgs = NULL;
	struct sbx_err err = {0};
	struct dk_tmpl_gen *g;
	size_t n;

	if (dk_labelled_images(be, NULL, &imgs, &err) < 0)
		return NULL;
	n = json_object_array_length(imgs);
	g = calloc(1, sizeof(*g));
	if (g) {
		g->infos = calloc(n, sizeof(*g->infos));
		g->list = calloc(n + 2, sizeof(*g->list));   /* NOLINT(bugprone-sizeof-expression): an array of pointers */
	}
	if (!g || (n && !g->infos) || !g->list) {
		dk_tmpl_gen_free(g);
		json_object_put(imgs);
		return NULL;
	}
	g->list[0] = &be->tmpl_default;
	for (size_t i = 0; i < n; i++)
		dk_tmpl_gen_add(g, json_object_array_get_idx(imgs, i));
	json_object_put(imgs);
	return g;
}

static bool dk_tmpl_same(const struct dk_tmpl_gen *a, const struct dk_tmpl_gen *b)
{
	if (!a || !b || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->infos[i].name, b->infos[i].name) != 0 ||
		    strcmp(a->infos[i].description, b->infos[i].description) != 0)
			return false;
	return true;
}

const struct sbx_template_info *const *dk_image_templates(struct sbx_backend *be)
{
	const struct sbx_template_info *const *list;
	uint64_t now = dk_now_ns();

	pthread_mutex_lock(&be->tmpl_lock);
	if (!be->tmpl_gen || now - be->tmpl_at_ns >= DK_TMPL_REFRESH_NS) {
		struct dk_tmpl_gen *g = dk_tmpl_gen_new(be);

		be->tmpl_at_ns = now;
		if (g && dk_tmpl_same(g, be->tmpl_gen)) {
			dk_tmpl_gen_free(g);
		} else if (g) {
			/* Callers may still hold the old array: it stays until fini. */
			g->older = be->tmpl_gen;
			be->tmpl_gen = g;
		}
	}
	list = be->tmpl_gen ? be->tmpl_gen->list : be->tmpl_list;
	pthread_mutex_unlock(&be->tmpl_lock);
	return list;
}

void dk_image_templates_free(struct sbx_backend *be)
{
	dk_tmpl_gen_free(be->tmpl_gen);
	be->tmpl_gen = NULL;
}

/* The newest image labelled sbxfs.template=name; caller frees *ref. */
static int dk_labelled_ref(struct sbx_backend *be, const char *name, char **ref, struct sbx_err *err)
{
	struct json_object *imgs = NULL, *best = NULL;
	size_t n;
	int r;

	if (!dk_tmpl_name_ok(name))
		return sbx_err_set(err, ENOENT, "unknown template '%s'", name);
	r = dk_labelled_images(be, name, &imgs, err);
	if (r < 0)
		return r;
	n = json_object_array_length(imgs);
	for (size_t i = 0; i < n; i++) {
		struct json_object *img = json_object_array_get_idx(imgs, i);

		if (!best || dk_json_int(img, "Created", 0) > dk_json_int(best, "Created", 0))
			best = img;
	}
	if (!best || !dk_json_str(best, "Id")) {
		json_object_put(imgs);
		return sbx_err_set(err, ENOENT, "unknown template '%s' (docker backend: 'default', "
				   "'image:REF', or a local image labelled sbxfs.template=NAME)", name);
	}
	*ref = strdup(dk_json_str(best, "Id"));
	json_object_put(imgs);
	return *ref ? 0 : sbx_err_set(err, ENOMEM, "out of memory");
}

int dk_image_for_template(struct sbx_backend *be, const char *template_name, char **ref,
			  struct sbx_err *err)
{
	const char *name = template_name && *template_name ? template_name : "default";
	int r;

	*ref = NULL;
	if (strcmp(name, "default") == 0) {
		r = dk_default_ensure(be, err);
		if (r < 0)
			return r;
		*ref = strdup(DK_DEFAULT_REPO ":" DK_DEFAULT_TAG);
	} else if (strncmp(name, "image:", 6) == 0 && name[6]) {
		char *enc = dk_urlencode(name + 6), *path = NULL;

		if (!enc || asprintf(&path, "/images/%s/json", enc) < 0) {
			free(enc);
			return sbx_err_set(err, ENOMEM, "out of memory");
		}
		free(enc);
		r = dk_request(&be->eng, "GET", path, NULL, DK_TIMEOUT_MS, NULL, err);
		free(path);
		if (r == -ENOENT)
			return sbx_err_set(err, ENOENT, "template '%s': the engine has no image '%s' "
					   "(sbxfs never pulls)", name, name + 6);
		if (r < 0)
			return r;
		*ref = strdup(name + 6);
	} else {
		return dk_labelled_ref(be, name, ref, err);
	}
	return *ref ? 0 : sbx_err_set(err, ENOMEM, "out of memory");
}
