/* Small, bounded access to sysfs-like trees (/sys/class/..., /dev/...),
 * shared by the alert, input, power and clock backends.
 *
 * Every path is taken relative to a root: "/" on a device, a temporary
 * directory in the tests (the HAL_SYSFS_ROOT environment variable, or a
 * backend's explicit root parameter). Files are opened afresh on every
 * access, so hardware that disappears and comes back (a hot-plugged
 * battery, a removed LED) is simply found again: nothing caches a handle.
 *
 * Everything read is untrusted: reads are bounded, values parsed strictly.
 * Functions return 0 or a negative errno. */
#ifndef ESS_HAL_SYSFS_H
#define ESS_HAL_SYSFS_H

#include <stddef.h>

/* Longest path the HAL builds (root included). */
#define HAL_SYSFS_PATH_MAX 512
/* Longest value read from one attribute file. */
#define HAL_SYSFS_VALUE_MAX 256

/* The root to use: root when non-NULL and non-empty, else $HAL_SYSFS_ROOT
 * when set and non-empty, else "/". The result is copied to out (without a
 * trailing '/', "" for "/"). -ENAMETOOLONG when it does not fit. */
int hal_sysfs_root(const char *root, char *out, size_t cap);

/* out = root + "/" + rel (rel may start with '/'). -ENAMETOOLONG. */
int hal_sysfs_path(const char *root, const char *rel, char *out, size_t cap);

/* Reads the attribute at path: at most cap - 1 bytes, trailing whitespace
 * (the kernel's '\n') removed, NUL-terminated. -ENOENT when missing,
 * -EFBIG when longer than cap - 1, -EINVAL when it holds a NUL byte. */
int hal_sysfs_read(const char *path, char *out, size_t cap);
/* Reads a decimal integer attribute (optional '-', nothing else). */
int hal_sysfs_read_int(const char *path, long long *out);
/* Writes value to an existing attribute (no O_CREAT: writing to a missing
 * device must not create a file in its place). */
int hal_sysfs_write(const char *path, const char *value);

/* Calls fn(arg, name) for each entry of dir (relative to nothing: dir is a
 * full path), "." and ".." left out, in sorted order, at most max entries.
 * Stops early and returns fn's value when fn returns non-zero. -ENOENT when
 * dir is missing. */
int hal_sysfs_each(const char *dir, int (*fn)(void *arg, const char *name), void *arg, size_t max);

/* out = <root>/sys/class/<cls>/<name>, or with name NULL or "" the first
 * device of the class (sorted order). -ENODEV when the class has no such
 * device right now; -EINVAL for an unsafe name. */
int hal_sysfs_class_dev(const char *root, const char *cls, const char *name, char *out, size_t cap);

/* 1 when name is a safe single path component (no '/', not "." or "..",
 * printable ASCII, 1..64 bytes): configuration and directory entries name
 * devices, never paths. */
int hal_sysfs_name_ok(const char *name);

#endif
