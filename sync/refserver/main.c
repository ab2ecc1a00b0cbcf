/* ess-refserver: the reference ESS server (docs/refserver.md). Wires the
 * modules together on one loop; every answer comes from the modules. */
#include "agent/log.h"
#include "agent/loop.h"
#include "sync/proto.h"
#include "sync/refserver/db.h"
#include "sync/refserver/faults.h"
#include "sync/refserver/feed.h"
#include "sync/refserver/http.h"
#include "sync/refserver/rs.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char default_config[] =
    "{\"position_interval_s\":5,\"position_min_distance_m\":10,\"heartbeat_interval_s\":60,"
    "\"long_poll_s\":25,\"retention_hours\":72,\"max_batch_events\":500}";

struct opts {
	const char *listen, *base, *db, *key, *admin_token, *port_file;
	int verbose;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ess-refserver [--listen HOST:PORT] [--base /PATH] [--db FILE] "
	           "[--key FILE]\n"
	           "                     [--admin-token T] [--port-file FILE] [--verbose]\n"
	           "  --listen     address to bind (default 127.0.0.1:8080; port 0 picks one)\n"
	           "  --base       path the device API is mounted at (default none, e.g. /api)\n"
	           "  --db         SQLite file for the state (default: in memory)\n"
	           "  --key        server signing key file (base64 seed; created if missing)\n"
	           "  --admin-token  token for /admin (default: generated and printed)\n"
	           "  --port-file  write the bound port there once listening\n"
	           "  --verbose    debug logging\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, 'l'},  {"base", required_argument, NULL, 'b'},
	    {"db", required_argument, NULL, 'd'},      {"key", required_argument, NULL, 'k'},
	    {"admin-token", required_argument, NULL, 'a'},
	    {"port-file", required_argument, NULL, 'p'},
	    {"verbose", no_argument, NULL, 'v'},       {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0}};
	int c;
	memset(o, 0, sizeof(*o));
	o->listen = "127.0.0.1:8080";
	o->base = "";
	while ((c = getopt_long(argc, argv, "l:b:d:k:a:p:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			o->listen = optarg;
			break;
		case 'b':
			o->base = optarg;
			break;
		case 'd':
			o->db = optarg;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 'a':
			o->admin_token = optarg;
			break;
		case 'p':
			o->port_file = optarg;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("ess-refserver %s\n", ESS_VERSION);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* "" or "/a/b": no trailing slash, no query, URL-safe characters. */
static int set_base(struct rs *rs, const char *base)
{
	size_t n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	if (n > RS_BASE_MAX || (n && base[0] != '/'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = base[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("/._~-", c)))
			return -EINVAL;
	}
	memcpy(rs->base, base, n);
	rs->base[n] = 0;
	return 0;
}

static int set_admin_token(struct rs *rs, const char *t, int *generated)
{
	*generated = 0;
	if (!t) {
		unsigned char b[24];
		randombytes_buf(b, sizeof(b));
		sodium_bin2hex(rs->admin_token, sizeof(rs->admin_token), b, sizeof(b));
		*generated = 1;
		return 0;
	}
	size_t n = strlen(t);
	if (n < 8 || n > RS_TOKEN_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (t[i] <= ' ' || t[i] > '~')
			return -EINVAL;
	memcpy(rs->admin_token, t, n + 1);
	return 0;
}

static int load_config(struct rs *rs)
{
	unsigned char *v = NULL;
	size_t n = 0;
	int rc = db_meta_get(rs->db, "config", &v, &n);
	if (rc == 0)
		rs->config = proto_json_parse(v, n);
	free(v);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (!rs->config)
		rs->config = cJSON_Parse(default_config);
	return rs->config ? 0 : -ENOMEM;
}

static int write_port_file(const char *path, unsigned port)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return -e;
	}
	return 0;
}

static void on_signal(struct loop *l, int signo, void *arg)
{
	(void)arg;
	log_info("signal %d: stopping", signo);
	loop_stop(l);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct rs rs;
	char err[256] = "";
	int generated = 0, status = 1;
	memset(&rs, 0, sizeof(rs));
	int rc = parse_opts(argc, argv, &o);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	log_open("ess-refserver", LOG_TARGET_STDERR, o.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	if (sodium_init() < 0) {
		log_errx("libsodium failed to initialise");
		return 1;
	}
	if (set_base(&rs, o.base) < 0) {
		log_errx("--base: want \"\" or /PATH of [A-Za-z0-9._~-/], at most %d bytes",
		         RS_BASE_MAX);
		return 2;
	}
	if (set_admin_token(&rs, o.admin_token, &generated) < 0) {
		log_errx("--admin-token: 8-%d printable characters, no spaces", RS_TOKEN_MAX);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((rc = loop_open(&rs.loop)) < 0 || (rc = faults_new(&rs.faults)) < 0 ||
	    (rc = feed_new(&rs.feed)) < 0) {
		log_errx("startup: %s", strerror(-rc));
		goto out;
	}
	if ((rc = db_open(o.db, &rs.db)) < 0) {
		log_errx("database %s: cannot open", o.db ? o.db : ":memory:");
		goto out;
	}
	if ((rc = db_server_key(rs.db, o.key, rs.sk, rs.pk)) < 0) {
		log_errx("server key: cannot load or create");
		goto out;
	}
	proto_b64_encode(rs.pk, 32, rs.server_key_b64, sizeof(rs.server_key_b64));
	if ((rc = load_config(&rs)) < 0) {
		log_errx("configuration: cannot load");
		goto out;
	}
	if ((rc = loop_signal_add(rs.loop, SIGTERM, on_signal, NULL)) < 0 ||
	    (rc = loop_signal_add(rs.loop, SIGINT, on_signal, NULL)) < 0) {
		log_errx("signals: %s", strerror(-rc));
		goto out;
	}
	if ((rc = http_start(&rs, o.listen, &rs.http, err, sizeof(err))) < 0) {
		log_errx("%s", err);
		goto out;
	}
	log_info("listening on %s (port %u), device API at %s/v1, dispatcher API at /admin",
	         o.listen, http_port(rs.http), rs.base);
	printf("ess-refserver: port %u, device API base %s, server key %s\n", http_port(rs.http),
	       rs.base[0] ? rs.base : "/", rs.server_key_b64);
	if (generated)
		printf("admin token: %s\n", rs.admin_token);
	fflush(stdout);
	if (o.port_file && (rc = write_port_file(o.port_file, http_port(rs.http))) < 0) {
		log_errx("--port-file %s: %s", o.port_file, strerror(-rc));
		goto out;
	}
	if ((rc = loop_run(rs.loop)) < 0) {
		log_errx("loop: %s", strerror(-rc));
		goto out;
	}
	status = 0;
out:
	http_stop(rs.http);
	feed_free(rs.feed);
	cJSON_Delete(rs.config);
	db_close(rs.db);
	faults_free(rs.faults);
	if (rs.loop)
		loop_close(rs.loop);
	sodium_memzero(rs.sk, sizeof(rs.sk));
	log_info("stopped");
	return status;
}
