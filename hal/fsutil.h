/* Durable, private file operations shared by the keystore and the store.
 * All return 0 or a negative errno and write a message naming the file to
 * err (may be NULL). */
#ifndef ESS_HAL_FSUTIL_H
#define ESS_HAL_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Reads a small private file whose size must be exactly `want` bytes into
 * buf. Refuses (-EACCES) a file readable or writable by group or others, or
 * not owned by the caller (or root); -ENOENT if missing; -EINVAL if not a
 * regular file or of another size. Never follows a symlink. */
int fsu_read_private(const char *path, void *buf, size_t want, char *err, size_t errlen);

/* Writes data to path with mode 0600 atomically (temporary file, fsync,
 * rename, fsync of the directory). With no_clobber, fails with -EEXIST
 * rather than replace an existing file. */
int fsu_write_private(const char *path, const void *data, size_t len, int no_clobber, char *err,
                      size_t errlen);

/* Overwrites the file's bytes (random, then zeros), syncs, unlinks it and
 * syncs the directory. Missing files are not an error. Flash translation
 * layers may keep old blocks, so this is a courtesy; crypto-shredding is
 * what makes wiped data unreadable. */
int fsu_shred(const char *path, char *err, size_t errlen);

/* fsyncs the directory that holds path. */
int fsu_sync_dir_of(const char *path);

#endif
