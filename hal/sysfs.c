#include "hal/sysfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int hal_sysfs_root(const char *root, char *out, size_t cap)
{
	if (!root || !root[0])
		root = getenv("HAL_SYSFS_ROOT");
	if (!root || !root[0])
		root = "/";
	size_t n = strlen(root);
	while (n > 0 && root[n - 1] == '/')
		n--;
	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(out, root, n);
	out[n] = 0;
	return 0;
}

int hal_sysfs_path(const char *root, const char *rel, char *out, size_t cap)
{
	while (*rel == '/')
		rel++;
	int n = snprintf(out, cap, "%s/%s", root, rel);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int hal_sysfs_read(const char *path, char *out, size_t cap)
{
	if (cap < 2)
		return -EINVAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	/* one byte more than fits tells a long value from one that fits */
	size_t got = 0;
	char tmp[HAL_SYSFS_VALUE_MAX + 1];
	size_t want = sizeof(tmp);
	while (got < want) {
		ssize_t r = read(fd, tmp + got, want - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	while (got > 0 && (tmp[got - 1] == '\n' || tmp[got - 1] == ' ' || tmp[got - 1] == '\t' ||
	                   tmp[got - 1] == '\r'))
		got--;
	if (got > cap - 1 || got > HAL_SYSFS_VALUE_MAX)
		return -EFBIG;
	if (memchr(tmp, 0, got))
		return -EINVAL;
	memcpy(out, tmp, got);
	out[got] = 0;
	return 0;
}

int hal_sysfs_read_int(const char *path, long long *out)
{
	char buf[32];
	int rc = hal_sysfs_read(path, buf, sizeof(buf));
	if (rc < 0)
		return rc;
	const char *p = buf;
	if (*p == '-')
		p++;
	if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 18)
		return -EINVAL;
	*out = strtoll(buf, NULL, 10);
	return 0;
}

int hal_sysfs_write(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK | O_TRUNC);
	if (fd < 0)
		return -errno;
	size_t len = strlen(value);
	ssize_t w;
	do
		w = write(fd, value, len);
	while (w < 0 && errno == EINTR);
	int e = w < 0 ? errno : (size_t)w != len ? EIO : 0;
	if (close(fd) < 0 && !e)
		e = errno;
	return -e;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int hal_sysfs_each(const char *dir, int (*fn)(void *arg, const char *name), void *arg, size_t max)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;
	struct dirent *e;
	while (n < max && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn || !(nn[n] = strdup(e->d_name))) {
			names = nn ? nn : names;
			rc = -ENOMEM;
			break;
		}
		names = nn;
		n++;
	}
	closedir(d);
	if (rc == 0) {
		if (n)
			qsort(names, n, sizeof(*names), cmp_str);
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = fn(arg, names[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int hal_sysfs_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 64 || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (name[i] == '/' || name[i] < 0x21 || name[i] > 0x7e)
			return 0;
	return 1;
}

struct first {
	char name[80];
};

static int take_first(void *arg, const char *name)
{
	struct first *f = arg;
	if (!hal_sysfs_name_ok(name))
		return 0;
	snprintf(f->name, sizeof(f->name), "%s", name);
	return 1;
}

int hal_sysfs_class_dev(const char *root, const char *cls, const char *name, char *out, size_t cap)
{
	char dir[HAL_SYSFS_PATH_MAX];
	struct first f = {{0}};
	int rc = snprintf(dir, sizeof(dir), "%s/sys/class/%s", root, cls);
	if (rc < 0 || (size_t)rc >= sizeof(dir))
		return -ENAMETOOLONG;
	if (name && name[0]) {
		if (!hal_sysfs_name_ok(name))
			return -EINVAL;
		snprintf(f.name, sizeof(f.name), "%s", name);
	} else if (hal_sysfs_each(dir, take_first, &f, 256) != 1) {
		return -ENODEV;
	}
	rc = snprintf(out, cap, "%s/%s", dir, f.name);
	if (rc < 0 || (size_t)rc >= cap)
		return -ENAMETOOLONG;
	return access(out, F_OK) == 0 ? 0 : -ENODEV;
}
