/*
 * docker_json.c - unit tests of the docker backend's pure logic on canned engine answers:
 * HTTP status -> errno, stats -> metrics sample (cgroup v1 and v2 shapes), inspect -> status,
 * exit codes, the exec stream demultiplexer, the container create body, URL encoding.
 * No engine needed. Run: meson test -C build docker_json
 */
#include "../../backend/docker/dk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } \
	else { failed++; printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

static void test_errno(void)
{
	CHECK(dk_http_errno(404, "No such container: x") == ENOENT);
	CHECK(dk_http_errno(409, "Conflict. The container name \"/a\" is already in use") == EEXIST);
	CHECK(dk_http_errno(409, "Container x is paused, unpause the container before exec") == EBUSY);
	CHECK(dk_http_errno(409, NULL) == EBUSY);
	CHECK(dk_http_errno(400, "bad parameter") == EINVAL);
	CHECK(dk_http_errno(500, "oci runtime error") == EIO);
	CHECK(dk_http_errno(501, "") == ENOTSUP);
	CHECK(dk_http_errno(503, "") == EAGAIN);
	CHECK(dk_http_errno(403, "") == EACCES);
}

static const char stats_v1[] =
	"{\"read\":\"2026-11-21T22:00:00Z\",\"pids_stats\":{\"current\":3,\"limit\":256},"
	"\"blkio_stats\":{\"io_service_bytes_recursive\":["
	"{\"major\":8,\"minor\":0,\"op\":\"Read\",\"value\":4096},"
	"{\"major\":8,\"minor\":0,\"op\":\"Write\",\"value\":8192},"
	"{\"major\":8,\"minor\":16,\"op\":\"Write\",\"value\":100},"
	"{\"major\":8,\"minor\":0,\"op\":\"Total\",\"value\":12288}]},"
	"\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":1500000000},\"online_cpus\":2},"
	"\"memory_stats\":{\"usage\":10000000,\"limit\":536870912,"
	"\"stats\":{\"total_inactive_file\":2000000}},"
	"\"networks\":{\"eth0\":{\"rx_bytes\":10,\"tx_bytes\":20},\"eth1\":{\"rx_bytes\":1,\"tx_bytes\":2}}}";

static const char stats_v2[] =
	"{\"pids_stats\":{\"current\":1},"
	"\"blkio_stats\":{\"io_service_bytes_recursive\":["
	"{\"major\":8,\"minor\":0,\"op\":\"read\",\"value\":7},"
	"{\"major\":8,\"minor\":0,\"op\":\"write\",\"value\":9}]},"
	"\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":42}},"
	"\"memory_stats\":{\"usage\":5000,\"limit\":9000,\"stats\":{\"inactive_file\":1000}}}";

static void test_stats(void)
{
	struct json_object *o = json_tokener_parse(stats_v1);
	struct dk_sample s;

	CHECK(o && dk_stats_parse(o, &s) == 0);
	CHECK(s.cpu_ns == 1500000000ULL);
	CHECK(s.mem_used == 8000000 && s.mem_limit == 536870912);
	CHECK(s.pids == 3);
	CHECK(s.blk_read == 4096 && s.blk_write == 8292);
	CHECK(s.net_rx == 11 && s.net_tx == 22);
	json_object_put(o);

	o = json_tokener_parse(stats_v2);
	CHECK(o && dk_stats_parse(o, &s) == 0);
	CHECK(s.cpu_ns == 42 && s.mem_used == 4000 && s.pids == 1);
	CHECK(s.blk_read == 7 && s.blk_write == 9 && s.net_rx == 0);
	json_object_put(o);

	/* A stopped container answers with zeros and nulls. */
	o = json_tokener_parse("{\"pids_stats\":{},\"blkio_stats\":{\"io_service_bytes_recursive\":null},"
			       "\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":0}},\"memory_stats\":{}}");
	CHECK(o && dk_stats_parse(o, &s) == 0 && s.cpu_ns == 0 && s.mem_used == 0);
	json_object_put(o);
	CHECK(dk_stats_parse(NULL, &s) == -EINVAL);
}

static enum sbx_status status_of(const char *json)
{
	struct json_object *o = json_tokener_parse(json);
	enum sbx_status st = dk_state_status(o);

	json_object_put(o);
	return st;
}

static void test_status(void)
{
	CHECK(status_of("{\"State\":{\"Status\":\"running\",\"Paused\":false}}") == SBX_STATUS_RUNNING);
	CHECK(status_of("{\"State\":{\"Status\":\"paused\",\"Paused\":true}}") == SBX_STATUS_PAUSED);
	CHECK(status_of("{\"State\":{\"Status\":\"running\",\"Paused\":true}}") == SBX_STATUS_PAUSED);
	CHECK(status_of("{\"State\":{\"Status\":\"exited\"}}") == SBX_STATUS_STOPPED);
	CHECK(status_of("{\"State\":{\"Status\":\"created\"}}") == SBX_STATUS_CREATING);
	CHECK(status_of("{\"State\":{\"Status\":\"dead\"}}") == SBX_STATUS_ERROR);
	CHECK(status_of("{}") == SBX_STATUS_ERROR);
}

static void test_exit(void)
{
	struct sbx_exit e;

	dk_exit_from_code(0, &e);
	CHECK(!e.signaled && e.code == 0);
	dk_exit_from_code(3, &e);
	CHECK(!e.signaled && e.code == 3);
	dk_exit_from_code(137, &e);
	CHECK(e.signaled && e.code == 9);
	dk_exit_from_code(128, &e);
	CHECK(!e.signaled && e.code == 128);
	dk_exit_from_code(-1, &e);
	CHECK(!e.signaled && e.code == 255);
}

struct collect {
	char out[64], err[64];
	size_t no, ne;
};

static int collect_emit(void *ctx, int stream, const char *data, size_t n)
{
	struct collect *c = ctx;

	if (stream == 1 && c->no + n < sizeof(c->out)) {
		memcpy(c->out + c->no, data, n);
		c->no += n;
	} else if (stream == 2 && c->ne + n < sizeof(c->err)) {
		memcpy(c->err + c->ne, data, n);
		c->ne += n;
	}
	return 0;
}

static void test_demux(void)
{
	/* stdout "hello", stderr "oops", stdout "" (empty frame), stdout "!" */
	static const char stream[] =
		"\x01\0\0\0\0\0\0\x05hello"
		"\x02\0\0\0\0\0\0\x04oops"
		"\x01\0\0\0\0\0\0\0"
		"\x01\0\0\0\0\0\0\x01!";
	size_t len = sizeof(stream) - 1;

	/* Every split point, including ones inside headers. */
	for (size_t cut = 0; cut <= len; cut++) {
		struct dk_demux d = {0};
		struct collect c = {0};

		dk_demux_feed(&d, stream, cut, collect_emit, &c);
		dk_demux_feed(&d, stream + cut, len - cut, collect_emit, &c);
		CHECK(c.no == 6 && memcmp(c.out, "hello!", 6) == 0);
		CHECK(c.ne == 4 && memcmp(c.err, "oops", 4) == 0);
	}
	/* One byte at a time. */
	{
		struct dk_demux d = {0};
		struct collect c = {0};

		for (size_t i = 0; i < len; i++)
			dk_demux_feed(&d, stream + i, 1, collect_emit, &c);
		CHECK(c.no == 6 && c.ne == 4);
	}
}

static void test_config(void)
{
	struct sbx_spec spec = {
		.name = "box", .id = "abc123", .template_name = "default", .state_dir = "/s/abc123",
		.limits = {.mem_bytes = 512ULL << 20, .cpu_millis = 500, .pids = 100},
	};
	struct json_object *c = dk_container_config("sbxfs/default:1", &spec, "/var/lib/sbxfs");
	struct json_object *labels = dk_json_path(c, "Labels"), *v = NULL;
	struct sbx_limits none = {0};
	struct json_object *l;

	CHECK(c != NULL);
	CHECK(strcmp(dk_json_str(c, "User"), "0:0") == 0);
	CHECK(strcmp(dk_json_str(c, "HostConfig.NetworkMode"), "none") == 0);
	CHECK(dk_json_int(c, "HostConfig.Memory", 0) == 512LL << 20);
	CHECK(dk_json_int(c, "HostConfig.MemorySwap", 0) == 512LL << 20);
	CHECK(dk_json_int(c, "HostConfig.NanoCpus", 0) == 500000000LL);
	CHECK(dk_json_int(c, "HostConfig.PidsLimit", 0) == 100);
	CHECK(dk_json_bool(c, "HostConfig.Init"));
	CHECK(strcmp(json_object_get_string(json_object_array_get_idx(
		dk_json_path(c, "HostConfig.CapDrop"), 0)), "ALL") == 0);
	CHECK(strcmp(json_object_get_string(json_object_array_get_idx(
		dk_json_path(c, "HostConfig.SecurityOpt"), 0)), "no-new-privileges") == 0);
	CHECK(labels && json_object_object_get_ex(labels, "sbxfs.id", &v) &&
	      strcmp(json_object_get_string(v), "abc123") == 0);
	CHECK(json_object_object_get_ex(labels, "sbxfs.state_root", &v) &&
	      strcmp(json_object_get_string(v), "/var/lib/sbxfs") == 0);
	CHECK(json_object_object_get_ex(labels, "sbxfs", &v));
	json_object_put(c);

	l = dk_limits_json(&none, 0);
	CHECK(dk_json_int(l, "MemorySwap", 0) == -1 && dk_json_int(l, "PidsLimit", 0) == -1);
	CHECK(dk_json_int(l, "Memory", 1) == 0 && !dk_json_path(l, "NanoCpus") && !dk_json_path(l, "CpuQuota"));
	json_object_put(l);
	/* An update lifts limits with the engine's memory and a CpuQuota of -1. */
	l = dk_limits_json(&none, 1ULL << 34);
	CHECK(dk_json_int(l, "Memory", 0) == 1LL << 34 && dk_json_int(l, "CpuQuota", 0) == -1);
	json_object_put(l);
}

static void test_urlencode(void)
{
	char *s = dk_urlencode("LABEL a=b c/d");

	CHECK(s && strcmp(s, "LABEL%20a%3Db%20c%2Fd") == 0);
	free(s);
}

static void test_userns(void)
{
	struct json_object *plain = json_tokener_parse(
		"{\"DockerRootDir\":\"/var/lib/docker\",\"SecurityOptions\":[\"name=seccomp,profile=default\"]}");
	struct json_object *remap = json_tokener_parse(
		"{\"DockerRootDir\":\"/var/lib/d/2147287040.2147287041\",\"SecurityOptions\":"
		"[\"name=seccomp,profile=default\",\"name=userns\"]}");
	struct json_object *bad = json_tokener_parse(
		"{\"DockerRootDir\":\"/var/lib/d/x.1\",\"SecurityOptions\":[\"name=userns\"]}");
	uint32_t u = 7, g = 7;

	CHECK(dk_userns_base(plain, &u, &g) == 0 && u == 0 && g == 0);
	CHECK(dk_userns_base(remap, &u, &g) == 1 && u == 2147287040U && g == 2147287041U);
	CHECK(dk_userns_base(bad, &u, &g) == -EPROTO);
	json_object_put(plain);
	json_object_put(remap);
	json_object_put(bad);
}

int main(void)
{
	test_errno();
	test_stats();
	test_status();
	test_exit();
	test_demux();
	test_config();
	test_userns();
	test_urlencode();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
