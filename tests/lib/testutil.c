#define _GNU_SOURCE
#include "tests/lib/testutil.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "hal/keystore.h"

#include <errno.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

char *tu_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path = malloc(512);
	snprintf(path, 512, "%s/ess-%s-XXXXXX", base && *base ? base : "/tmp", tag);
	if (!mkdtemp(path)) {
		perror("mkdtemp");
		abort();
	}
	return path;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* What tu_rmrf keeps for tests/log_canary_scan.py (see testutil.h). */
static const char *keep_tag;
static size_t keep_prefix;

static void keep_copy(const char *from, const char *root, const char *rel)
{
	char dest[1024];
	int n = snprintf(dest, sizeof(dest), "%s/%s-", root, keep_tag);
	if (n < 0 || (size_t)n >= sizeof(dest))
		return;
	for (size_t i = 0; rel[i] && (size_t)n < sizeof(dest) - 1; i++)
		dest[n++] = rel[i] == '/' ? '_' : rel[i];
	dest[n] = 0;
	FILE *in = fopen(from, "rb"), *out = in ? fopen(dest, "wb") : NULL;
	char buf[65536];
	size_t k;
	while (out && (k = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, k, out);
	if (out)
		fclose(out);
	if (in)
		fclose(in);
}

static int keep_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	if (flag != FTW_F || !S_ISREG(sb->st_mode))
		return 0;
	const char *name = p + ftw->base;
	size_t n = strlen(name);
	const char *root = NULL;
	if (n > 4 && (strcmp(name + n - 4, ".log") == 0 || strcmp(name + n - 4, ".err") == 0))
		root = getenv("ESS_TEST_LOGDIR");
	else if (strcmp(name, "kek") == 0 || (n > 4 && strcmp(name + n - 4, ".key") == 0))
		root = getenv("ESS_TEST_SECRETDIR");
	if (root && *root)
		keep_copy(p, root, p + keep_prefix);
	return 0;
}

void tu_rmrf(char *path)
{
	if (!path)
		return;
	if (getenv("ESS_TEST_LOGDIR") || getenv("ESS_TEST_SECRETDIR")) {
		const char *slash = strrchr(path, '/');
		keep_tag = slash ? slash + 1 : path;
		keep_prefix = strlen(path) + 1;
		nftw(path, keep_one, 16, FTW_PHYS);
	}
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(path);
}

int tu_store_open(struct tu_store *t, const char *dir, int create)
{
	char err[512];
	memset(t, 0, sizeof(*t));
	t->dir = dir;
	snprintf(t->kek_path, sizeof(t->kek_path), "%s/kek", dir);
	int rc = hal_keystore_open("file", t->kek_path, &t->ks, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "keystore: %s\n", err);
		return rc;
	}
	struct store_params p = {.dir = dir, .keystore = t->ks, .create = create};
	rc = store_open(&p, &t->s, &t->flags, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "# store_open: %s\n", err);
		hal_keystore_close(t->ks);
		t->ks = NULL;
	}
	return rc;
}

void tu_store_close(struct tu_store *t)
{
	store_close(t->s);
	hal_keystore_close(t->ks);
	t->s = NULL;
	t->ks = NULL;
}

unsigned char *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	unsigned char *buf = malloc(cap);
	size_t r;
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	*len = n;
	return buf;
}

size_t tu_file_count(const char *path, const void *needle, size_t nlen)
{
	size_t len, count = 0;
	unsigned char *buf = tu_read_file(path, &len);
	if (!buf || nlen == 0 || len < nlen) {
		free(buf);
		return 0;
	}
	for (size_t i = 0; i + nlen <= len; i++)
		if (buf[i] == *(const unsigned char *)needle && memcmp(buf + i, needle, nlen) == 0)
			count++;
	free(buf);
	return count;
}

void tu_file_hash(const char *path, char hex[65])
{
	size_t len = 0;
	unsigned char *buf = tu_read_file(path, &len);
	unsigned char h[32] = {0};
	if (buf)
		crypto_hash_sha256(h, buf, len);
	sodium_bin2hex(hex, 65, h, 32);
	free(buf);
}

int64_t tu_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tu_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		perror("free port");
		abort();
	}
	close(fd);
	return ntohs(a.sin_port);
}

void tu_run_for(struct loop *l, int ms)
{
	int64_t end = loop_now_ms() + ms;
	while (loop_now_ms() < end)
		loop_run_once(l, (int)(end - loop_now_ms()));
}
