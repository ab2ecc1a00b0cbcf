/* The one-time enrollment token file; see tokenfile.h. */
#include "agent/tokenfile.h"

#include "agent/fmt.h"
#include "hal/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tokenfile_read(const char *path, char **token, char *err, size_t errlen)
{
	*token = NULL;
	if (sodium_init() < 0)
		return fmt_err(err, errlen, -ENOMEM, "libsodium could not start");
	/* O_NOFOLLOW: a symlink planted on a writable boot partition must not
	 * make essd read some other file; O_NONBLOCK: a FIFO must not hang it. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return fmt_err(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return fmt_err(err, errlen, -e, "%s: cannot read: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fmt_err(err, errlen, -EINVAL, "%s: not a regular file", path);
	}
	if (st.st_size > TOKENFILE_MAX) {
		close(fd);
		return fmt_err(err, errlen, -EINVAL, "%s: too large for a token file (%lld bytes)",
		               path, (long long)st.st_size);
	}
	char *buf = sodium_malloc(TOKENFILE_MAX + 1);
	if (!buf) {
		close(fd);
		return fmt_err(err, errlen, -ENOMEM, "out of memory");
	}
	size_t len = 0;
	int rc = 0;
	while (len < TOKENFILE_MAX + 1) {
		ssize_t n = read(fd, buf + len, TOKENFILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fmt_err(err, errlen, -errno, "%s: cannot read: %s", path,
			             strerror(errno));
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (rc == 0 && len > TOKENFILE_MAX)
		rc = fmt_err(err, errlen, -EINVAL, "%s: too large for a token file", path);
	if (rc < 0) {
		sodium_free(buf);
		return rc;
	}
	buf[len] = 0;
	size_t end = 0;
	while (end < len && buf[end] != '\n' && buf[end] != '\r')
		end++;
	while (end > 0 && (buf[end - 1] == ' ' || buf[end - 1] == '\t'))
		end--;
	/* Say what is wrong, never what the file holds. */
	if (end == 0)
		rc = fmt_err(err, errlen, -EINVAL, "%s: no token on the first line", path);
	else if (end > TOKENFILE_TOKEN_MAX)
		rc = fmt_err(err, errlen, -EINVAL,
		             "%s: the token is too long (%zu bytes, at most %d)", path, end,
		             TOKENFILE_TOKEN_MAX);
	for (size_t i = 0; rc == 0 && i < end; i++)
		if (buf[i] < 0x21 || buf[i] > 0x7e)
			rc = fmt_err(err, errlen, -EINVAL,
			             "%s: the token must be printable ASCII without spaces", path);
	if (rc < 0) {
		sodium_free(buf); /* wipes */
		return rc;
	}
	sodium_memzero(buf + end, len + 1 - end);
	buf[end] = 0;
	*token = buf;
	return 0;
}

void tokenfile_free(char *token)
{
	sodium_free(token);
}

int tokenfile_consume(const char *path, char *err, size_t errlen)
{
	if (unlink(path) < 0)
		return fmt_err(err, errlen, -errno, "%s: cannot delete: %s", path, strerror(errno));
	/* best effort: vfat boot partitions may not sync directories */
	(void)fsu_sync_dir_of(path);
	return 0;
}
