/*
 * http.c - the Docker Engine API over HTTP with libcurl: a unix socket or tcp:// address, the
 * API version negotiated with GET /version, one curl easy handle per call (so any thread may
 * call), hijacked connections for exec streams, and engine errors turned into errno + words.
 */
#include "dk.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#define DK_DEFAULT_HOST "unix:///var/run/docker.sock"

static pthread_once_t dk_curl_once = PTHREAD_ONCE_INIT;

static void dk_curl_global(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int dk_engine_parse(struct dk_engine *eng, const char *host, struct sbx_err *err)
{
	memset(eng, 0, sizeof(*eng));
	pthread_once(&dk_curl_once, dk_curl_global);
	if (!host || !*host)
		host = getenv("DOCKER_HOST");
	if (!host || !*host)
		host = DK_DEFAULT_HOST;

	eng->host = strdup(host);
	if (!eng->host)
		return sbx_err_set(err, ENOMEM, "out of memory");
	if (strncmp(host, "unix://", 7) == 0 && host[7] == '/') {
		eng->sock_path = strdup(host + 7);
		eng->base_url = strdup("http://docker");
		eng->local = true;
	} else if (strncmp(host, "tcp://", 6) == 0 && host[6]) {
		const char *hp = host + 6;
		size_t n = strcspn(hp, "/");

		if (asprintf(&eng->base_url, "http://%.*s", (int)n, hp) < 0)
			eng->base_url = NULL;
		eng->local = false;
	} else {
		dk_engine_free(eng);
		return sbx_err_set(err, EINVAL,
				   "docker host '%s' is neither unix:///PATH nor tcp://HOST:PORT", host);
	}
	if (!eng->base_url || (eng->local && !eng->sock_path)) {
		dk_engine_free(eng);
		return sbx_err_set(err, ENOMEM, "out of memory");
	}
	/* Until negotiated: unversioned paths, which the engine serves at its own version. */
	eng->prefix[0] = '\0';
	return 0;
}

void dk_engine_free(struct dk_engine *eng)
{
	free(eng->host);
	free(eng->sock_path);
	free(eng->base_url);
	memset(eng, 0, sizeof(*eng));
}

/* "1.41" -> 41 when the major is 1; -1 otherwise. */
static int dk_api_minor(const char *v)
{
	int major, minor;

	if (!v || sscanf(v, "%d.%d", &major, &minor) != 2 || major != DK_API_MAJOR)
		return -1;
	return minor;
}

int dk_engine_negotiate(struct dk_engine *eng, struct sbx_err *err)
{
	struct dk_resp resp = {0};
	struct json_object *obj;
	int minor, lowest, r;

	eng->prefix[0] = '\0';
	r = dk_request(eng, "GET", "/version", NULL, DK_TIMEOUT_MS, &resp, err);
	if (r < 0) {
		dk_resp_free(&resp);
		return r;
	}
	obj = dk_json_parse(&resp, "engine version", err);
	dk_resp_free(&resp);
	if (!obj)
		return -err->code;
	minor = dk_api_minor(dk_json_str(obj, "ApiVersion"));
	lowest = dk_api_minor(dk_json_str(obj, "MinAPIVersion"));
	if (minor < 0) {
		r = sbx_err_set(err, EPROTO, "docker engine at '%s' gave no usable ApiVersion ('%s')",
				eng->host, dk_json_str(obj, "ApiVersion") ? dk_json_str(obj, "ApiVersion") : "");
		json_object_put(obj);
		return r;
	}
	json_object_put(obj);
	if (minor > DK_API_MINOR_MAX)
		minor = DK_API_MINOR_MAX;
	if (minor < DK_API_MINOR_MIN || (lowest >= 0 && minor < lowest))
		return sbx_err_set(err, EPROTONOSUPPORT,
				   "docker engine at '%s' speaks API 1.%d; sbxfs needs 1.%d to 1.%d",
				   eng->host, minor, DK_API_MINOR_MIN, DK_API_MINOR_MAX);
	eng->api_minor = minor;
	snprintf(eng->prefix, sizeof(eng->prefix), "/v%d.%d", DK_API_MAJOR, minor);
	return 0;
}

void dk_resp_free(struct dk_resp *resp)
{
	if (!resp)
		return;
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

int dk_http_errno(long status, const char *message)
{
	switch (status) {
	case 400:
		return EINVAL;
	case 401:
	case 403:
		return EACCES;
	case 404:
		return ENOENT;
	case 409:
		/* A name in use is EEXIST; a state conflict (paused, not running) EBUSY. */
		if (message && (strstr(message, "already in use") || strstr(message, "already exists")))
			return EEXIST;
		return EBUSY;
	case 413:
		return EFBIG;
	case 501:
		return ENOTSUP;
	case 503:
		return EAGAIN;
	default:
		return status >= 500 ? EIO : EPROTO;
	}
}

static int dk_curl_errno(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
		return ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return ENOMEM;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return ECONNRESET;
	default:
		return EIO;
	}
}

char *dk_urlencode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *p = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return out;
}

/* Response body collector. */
struct dk_buf {
	char *data;
	size_t len, cap;
	bool oom;
};

static size_t dk_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct dk_buf *b = userdata;
	size_t n = size * nmemb;

	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p) {
			b->oom = true;
			return 0;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static size_t dk_read_fd_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	int fd = *(int *)userdata;
	ssize_t n;

	do
		n = read(fd, buf, size * nitems);
	while (n < 0 && errno == EINTR);
	return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
}

static CURL *dk_easy(const struct dk_engine *eng, const char *path, char **url_out)
{
	CURL *c = curl_easy_init();
	char *url = NULL;

	if (!c)
		return NULL;
	if (asprintf(&url, "%s%s%s", eng->base_url, eng->prefix, path) < 0) {
		curl_easy_cleanup(c);
		return NULL;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (eng->sock_path)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, eng->sock_path);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)DK_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_PROXY, "");   /* never through an http_proxy of the environment */
	*url_out = url;
	return c;
}

/* The engine's {"message": "..."} when there is one, else the body itself (cut). */
static void dk_engine_message(const struct dk_resp *resp, char *out, size_t outlen)
{
	struct json_object *obj = NULL;
	const char *msg = NULL;

	if (resp->body && resp->len) {
		obj = json_tokener_parse(resp->body);
		msg = obj ? dk_json_str(obj, "message") : NULL;
		if (!msg)
			msg = resp->body;
	}
	snprintf(out, outlen, "%s", msg ? msg : "no message");
	/* One line, no final newline or full stop. */
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	for (size_t n = strlen(out); n && (out[n - 1] == ' ' || out[n - 1] == '.'); n--)
		out[n - 1] = '\0';
	json_object_put(obj);
}

static int dk_perform(const struct dk_engine *eng, CURL *c, const char *method, const char *path,
		      struct dk_resp *resp, struct sbx_err *err)
{
	struct dk_buf b = {0};
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	long status = 0;
	int r = 0;

	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dk_write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		int e = b.oom ? ENOMEM : dk_curl_errno(cc);

		free(b.data);
		if (resp)
			*resp = (struct dk_resp){0};
		if (e == ECONNREFUSED)
			return sbx_err_set(err, e, "docker engine at '%s' is not reachable: %s",
					   eng->host, sbx_errstr(e));
		return sbx_err_set(err, e, "docker engine at '%s': %s %s: %s", eng->host, method, path,
				   errbuf[0] ? errbuf : curl_easy_strerror(cc));
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (!b.data) {
		b.data = strdup("");
		if (!b.data)
			return sbx_err_set(err, ENOMEM, "out of memory");
	}
	if ((status < 200 || status >= 300) && status != 304) {
		struct dk_resp tmp = {status, b.data, b.len};
		char msg[SBX_ERR_MSG_MAX];

		dk_engine_message(&tmp, msg, sizeof(msg));
		r = sbx_err_set(err, dk_http_errno(status, msg), "docker: %s", msg);
	}
	if (resp) {
		resp->status = status;
		resp->body = b.data;
		resp->len = b.len;
	} else {
		free(b.data);
	}
	return r;
}

int dk_request(const struct dk_engine *eng, const char *method, const char *path,
	       const char *body, long timeout_ms, struct dk_resp *resp, struct sbx_err *err)
{
	struct curl_slist *hdrs = NULL;
	char *url = NULL;
	CURL *c;
	int r;

	c = dk_easy(eng, path, &url);
	if (!c)
		return sbx_err_set(err, ENOMEM, "out of memory");
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	} else if (strcmp(method, "POST") == 0) {
		/* An empty body with no type: some endpoints (commit) refuse curl's form type. */
		hdrs = curl_slist_append(hdrs, "Content-Type:");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	r = dk_perform(eng, c, method, path, resp, err);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	free(url);
	return r;
}

int dk_request_upload(const struct dk_engine *eng, const char *path, const char *content_type,
		      int upload_fd, long timeout_ms, struct dk_resp *resp, struct sbx_err *err)
{
	struct curl_slist *hdrs = NULL;
	char *url = NULL, *ct = NULL;
	CURL *c;
	int r;

	c = dk_easy(eng, path, &url);
	if (!c || asprintf(&ct, "Content-Type: %s", content_type) < 0) {
		if (c)
			curl_easy_cleanup(c);
		free(url);
		return sbx_err_set(err, ENOMEM, "out of memory");
	}
	hdrs = curl_slist_append(hdrs, ct);
	hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, dk_read_fd_cb);
	curl_easy_setopt(c, CURLOPT_READDATA, &upload_fd);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	r = dk_perform(eng, c, "POST", path, resp, err);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	free(ct);
	free(url);
	return r;
}

/* --- hijacked streams ------------------------------------------------------ */

static int dk_wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

static int dk_send_all(struct dk_stream *st, const char *buf, size_t len)
{
	while (len) {
		long n = dk_stream_send(st, buf, len);

		if (n == -EAGAIN) {
			int r = dk_wait_fd(st->fd, POLLOUT, DK_TIMEOUT_MS);

			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return (int)n;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A connect-only curl handle to the engine: its socket is the stream's. */
static int dk_hijack_connect(const struct dk_engine *eng, const char *path, struct dk_stream *st,
			     struct sbx_err *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_socket_t sock = CURL_SOCKET_BAD;
	char *url = NULL;
	CURLcode cc;
	CURL *c;

	c = dk_easy(eng, path, &url);
	if (!c)
		return sbx_err_set(err, ENOMEM, "out of memory");
	free(url);
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		int e = dk_curl_errno(cc);

		curl_easy_cleanup(c);
		return sbx_err_set(err, e, "docker engine at '%s' is not reachable: %s", eng->host,
				   e == ECONNREFUSED ? sbx_errstr(e) : errbuf[0] ? errbuf : curl_easy_strerror(cc));
	}
	st->curl = c;
	curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &sock);
	st->fd = (int)sock;
	return 0;
}

/* Reads into hdr (capacity hcap, NUL-terminated) up to the blank line ending the HTTP head;
 * *end points past it. */
static int dk_hijack_head(const struct dk_engine *eng, const char *path, struct dk_stream *st,
			  char *hdr, size_t hcap, size_t *hlen, const char **end, struct sbx_err *err)
{
	*end = NULL;
	while (!*end) {
		long n;
		int r;

		if (*hlen == hcap)
			return sbx_err_set(err, EPROTO, "docker: answer to POST %s has too long a header",
					   path);
		n = dk_stream_recv(st, hdr + *hlen, hcap - *hlen);
		if (n == -EAGAIN) {
			r = dk_wait_fd(st->fd, POLLIN, DK_TIMEOUT_MS);
			if (r < 0)
				return sbx_err_sys(err, -r, "docker engine at '%s': waiting for POST %s",
						   eng->host, path);
			continue;
		}
		if (n <= 0)
			return sbx_err_set(err, ECONNRESET, "docker engine at '%s' closed POST %s unanswered",
					   eng->host, path);
		*hlen += (size_t)n;
		hdr[*hlen] = '\0';
		*end = strstr(hdr, "\r\n\r\n");
	}
	*end += 4;
	return 0;
}

/* An error answer: its JSON body (Content-Length) follows; takes what is here or comes soon. */
static int dk_hijack_error(struct dk_stream *st, long status, char *hdr, size_t hcap, size_t hlen,
			   const char *body, struct sbx_err *err)
{
	struct dk_resp tmp = {status, NULL, 0};
	char msg[SBX_ERR_MSG_MAX];
	size_t have = hlen - (size_t)(body - hdr);

	while (have < 1024 && hlen < hcap && dk_wait_fd(st->fd, POLLIN, 200) == 0) {
		long n = dk_stream_recv(st, hdr + hlen, hcap - hlen);

		if (n <= 0 && n != -EAGAIN)
			break;
		if (n > 0) {
			hlen += (size_t)n;
			have += (size_t)n;
			hdr[hlen] = '\0';
			if (strchr(body, '}'))
				break;
		}
	}
	tmp.body = (char *)body;
	tmp.len = strlen(body);
	dk_engine_message(&tmp, msg, sizeof(msg));
	return sbx_err_set(err, dk_http_errno(status, msg), "docker: %s", msg);
}

int dk_hijack(const struct dk_engine *eng, const char *path, const char *body,
	      struct dk_stream *st, struct sbx_err *err)
{
	const size_t hcap = 4096;
	char *req = NULL, *hdr = NULL;
	const char *end = NULL;
	size_t hlen = 0;
	long status = 0;
	int r;

	memset(st, 0, sizeof(*st));
	st->fd = -1;
	r = dk_hijack_connect(eng, path, st, err);
	if (r < 0)
		return r;
	if (asprintf(&req,
		     "POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
		     "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: %zu\r\n\r\n%s",
		     eng->prefix, path, eng->sock_path ? "docker" : eng->base_url + 7,
		     strlen(body), body) < 0) {
		req = NULL;
		r = sbx_err_set(err, ENOMEM, "out of memory");
		goto out_close;
	}
	r = dk_send_all(st, req, strlen(req));
	if (r < 0) {
		r = sbx_err_sys(err, -r, "docker engine at '%s': sending POST %s", eng->host, path);
		goto out_close;
	}
	hdr = malloc(hcap + 1);
	r = hdr ? dk_hijack_head(eng, path, st, hdr, hcap, &hlen, &end, err)
		: sbx_err_set(err, ENOMEM, "out of memory");
	if (r < 0)
		goto out_close;
	if (sscanf(hdr, "HTTP/1.%*d %ld", &status) != 1) {
		r = sbx_err_set(err, EPROTO, "docker: bad answer to POST %s", path);
		goto out_close;
	}
	if (status != 101 && status != 200) {
		r = dk_hijack_error(st, status, hdr, hcap, hlen, end, err);
		goto out_close;
	}
	/* What came after the head is already stream. */
	st->pending_len = hlen - (size_t)(end - hdr);
	if (st->pending_len) {
		st->pending = malloc(st->pending_len);
		if (!st->pending) {
			r = sbx_err_set(err, ENOMEM, "out of memory");
			goto out_close;
		}
		memcpy(st->pending, end, st->pending_len);
	}
	free(hdr);
	free(req);
	return 0;

out_close:
	free(hdr);
	free(req);
	dk_stream_close(st);
	return r;
}

long dk_stream_recv(struct dk_stream *st, void *buf, size_t len)
{
	size_t n = 0;
	CURLcode cc;

	if (st->pending_len) {
		n = len < st->pending_len ? len : st->pending_len;
		memcpy(buf, st->pending, n);
		memmove(st->pending, st->pending + n, st->pending_len - n);
		st->pending_len -= n;
		return (long)n;
	}
	cc = curl_easy_recv(st->curl, buf, len, &n);
	if (cc == CURLE_AGAIN)
		return -EAGAIN;
	if (cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_RECV_ERROR)
		return n ? (long)n : 0;   /* the peer closed the connection */
	if (cc != CURLE_OK)
		return -ECONNRESET;
	return (long)n;
}

long dk_stream_send(struct dk_stream *st, const void *buf, size_t len)
{
	size_t n = 0;
	CURLcode cc = curl_easy_send(st->curl, buf, len, &n);

	if (cc == CURLE_AGAIN)
		return -EAGAIN;
	if (cc != CURLE_OK)
		return -EPIPE;
	return (long)n;
}

void dk_stream_close(struct dk_stream *st)
{
	if (st->curl)
		curl_easy_cleanup(st->curl);
	free(st->pending);
	memset(st, 0, sizeof(*st));
	st->fd = -1;
}
