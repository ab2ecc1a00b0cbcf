#include "hal/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SETERR(...)                                                                                \
	do {                                                                                       \
		if (err)                                                                           \
			snprintf(err, errlen, __VA_ARGS__);                                        \
	} while (0)

static int read_full(int fd, void *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = read(fd, (char *)buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EINVAL;
		off += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, (const char *)buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

int fsu_sync_dir_of(const char *path)
{
	char copy[PATH_MAX];
	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int fsu_read_private(const char *path, void *buf, size_t want, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		SETERR("%s: %s", path, e == ELOOP ? "is a symbolic link" : strerror(e));
		return e == ELOOP ? -EINVAL : -e;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		SETERR("%s: %s", path, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		SETERR("%s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = -EACCES;
		SETERR("%s: mode %04o lets group or others read it; run chmod 600 %s", path,
		       (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		rc = -EACCES;
		SETERR("%s: owned by uid %u, not by this user (uid %u) or root", path,
		       (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if ((size_t)st.st_size != want) {
		rc = -EINVAL;
		SETERR("%s: %lld bytes, expected %zu", path, (long long)st.st_size, want);
		goto out;
	}
	rc = read_full(fd, buf, want);
	if (rc < 0)
		SETERR("%s: read: %s", path, strerror(-rc));
out:
	close(fd);
	return rc;
}

int fsu_write_private(const char *path, const void *data, size_t len, int no_clobber, char *err,
                      size_t errlen)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		SETERR("%s: path too long", path);
		return -ENAMETOOLONG;
	}
	unlink(tmp); /* a leftover of a crash in the middle of a previous write */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;
		SETERR("%s: %s", tmp, strerror(e));
		return -e;
	}
	int rc = write_full(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc < 0) {
		SETERR("%s: write: %s", tmp, strerror(-rc));
		unlink(tmp);
		return rc;
	}
	/* link() never replaces an existing file, rename() always does. */
	if (no_clobber) {
		if (link(tmp, path) < 0) {
			rc = -errno;
			SETERR("%s: %s", path, strerror(-rc));
		}
		unlink(tmp);
	} else if (rename(tmp, path) < 0) {
		rc = -errno;
		SETERR("%s: rename: %s", path, strerror(-rc));
		unlink(tmp);
	}
	if (rc == 0 && (rc = fsu_sync_dir_of(path)) < 0)
		SETERR("%s: sync directory: %s", path, strerror(-rc));
	return rc;
}

int fsu_shred(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		int e = errno;
		SETERR("%s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		unsigned char block[4096];
		for (int pass = 0; pass < 2 && rc == 0; pass++) {
			if (lseek(fd, 0, SEEK_SET) < 0) {
				rc = -errno;
				break;
			}
			for (off_t done = 0; done < st.st_size && rc == 0;) {
				size_t n = (size_t)(st.st_size - done) < sizeof(block)
				               ? (size_t)(st.st_size - done)
				               : sizeof(block);
				if (pass == 0)
					randombytes_buf(block, n);
				else
					memset(block, 0, n);
				rc = write_full(fd, block, n);
				done += (off_t)n;
			}
			if (rc == 0 && fdatasync(fd) < 0)
				rc = -errno;
		}
		sodium_memzero(block, sizeof(block));
	}
	close(fd);
	if (unlink(path) < 0 && errno != ENOENT && rc == 0)
		rc = -errno;
	if (rc == 0)
		rc = fsu_sync_dir_of(path);
	if (rc < 0)
		SETERR("%s: shred: %s", path, strerror(-rc));
	return rc;
}
