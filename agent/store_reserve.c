/* The disk reserve: a file of STORE_RESERVE_BYTES zeros next to the
 * database, given back to the file system when a responder's action meets a
 * full disk, so that the action (and the deletes that make room for the
 * next ones) can still be written. Positions never use it: the daemon stops
 * flushing the trail while the reserve is missing. Zeros only, nothing
 * secret; made with posix_fallocate so that the blocks really exist (a
 * sparse file would reserve nothing). */
#include "agent/log.h"
#include "agent/store.h"
#include "agent/store_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void reserve_path(const struct store *s, char *out, size_t cap)
{
	snprintf(out, cap, "%s/reserve", s->dir);
}

int store_reserve_present(struct store *s)
{
	char path[PATH_MAX + 16];
	struct stat st;
	reserve_path(s, path, sizeof(path));
	return stat(path, &st) == 0 && st.st_size >= STORE_RESERVE_BYTES &&
	       (int64_t)st.st_blocks * 512 >= STORE_RESERVE_BYTES;
}

int store_reserve_ensure(struct store *s)
{
	char path[PATH_MAX + 16], tmp[PATH_MAX + 24];
	if (store_reserve_present(s))
		return 0;
	/* After a full disk the WAL has grown into the space the reserve gave
	 * and never shrinks by itself: copy it back and truncate it first, or
	 * every episode would cost the file system another reserve. */
	if (s->db)
		sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	reserve_path(s, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = posix_fallocate(fd, 0, STORE_RESERVE_BYTES);
	if (rc == 0 && fsync(fd) < 0)
		rc = errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = errno;
	if (rc) {
		unlink(tmp); /* half a reserve is no reserve: give it back */
		return -rc;
	}
	return 0;
}

int store_reserve_release(struct store *s)
{
	char path[PATH_MAX + 16];
	reserve_path(s, path, sizeof(path));
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	log_warnx("store: disk full: the reserve was given back for a responder's action");
	return 1;
}

int store_make_room(struct store *s, int64_t *dropped)
{
	int64_t total = 0, gone = 0;
	int released = store_reserve_release(s);
	if (released < 0)
		return released;
	/* half the trail goes (thinned oldest first, as the trail bound does):
	 * the pages it held are reused for the outbox */
	int rc = store_pos_count(s, &total);
	if (rc == 0 && total > 1)
		rc = store_pos_thin(s, total / 2, &gone);
	if (dropped)
		*dropped = gone;
	if (rc < 0 && !released && !gone)
		return rc; /* nothing could be freed */
	return released || gone ? 1 : 0;
}
