/* The "evdev" input backend: one key on a Linux input device
 * (<root>/dev/input/eventN or a /dev/input/by-path name), read as struct
 * input_event records from a non-blocking fd on the loop. Only EV_KEY
 * records with the configured code count (value 1 down, 0 up, 2 the
 * auto-repeat of a held key, ignored). Anything else on the device is
 * skipped. EOF or ENODEV (unplugged) hands the device back to the module,
 * which reopens it every rescan_ms. The tests use a FIFO in place of the
 * device: the same records, the same EOF when the writer goes. */
#include "hal/input.h"

#include "agent/loop.h"
#include "hal/sysfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct evdev {
	struct hal_input *in;
	char path[HAL_SYSFS_PATH_MAX];
	int key;
	int fd;
	size_t have; /* bytes of a partial record kept in buf */
	unsigned char buf[sizeof(struct input_event)];
};

static void on_read(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	(void)events;
	struct evdev *e = arg;
	struct input_event evs[32];
	unsigned char raw[sizeof(evs)];
	ssize_t n = read(e->fd, raw + e->have, sizeof(raw) - e->have);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		hal_input_lost(e->in); /* EOF, ENODEV: gone */
		return;
	}
	memcpy(raw, e->buf, e->have);
	size_t total = e->have + (size_t)n;
	size_t whole = total / sizeof(struct input_event);
	memcpy(evs, raw, whole * sizeof(struct input_event));
	e->have = total - whole * sizeof(struct input_event);
	memcpy(e->buf, raw + whole * sizeof(struct input_event), e->have);
	for (size_t i = 0; i < whole; i++) {
		if (evs[i].type != EV_KEY || evs[i].code != e->key)
			continue;
		if (evs[i].value == 0 || evs[i].value == 1)
			hal_input_key(e->in, evs[i].value);
		if (e->fd < 0)
			break; /* a callback closed us */
	}
}

static int evdev_open(const struct hal_input_params *p, struct hal_input *in, void **priv,
                      char *err, size_t errlen)
{
	char root[HAL_SYSFS_PATH_MAX];
	struct evdev *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	int rc = hal_sysfs_root(p->root, root, sizeof(root));
	if (rc == 0 &&
	    (!p->device || strncmp(p->device, "/dev/input/", 11) != 0 || strstr(p->device, "..")))
		rc = -EINVAL;
	if (rc == 0)
		rc = hal_sysfs_path(root, p->device, e->path, sizeof(e->path));
	if (rc == 0 && (p->key < 0 || p->key > KEY_MAX))
		rc = -EINVAL;
	if (rc < 0) {
		if (err)
			snprintf(err, errlen,
			         "input evdev: the device must be a path under /dev/input/ "
			         "and the key a key code");
		free(e);
		return rc;
	}
	e->in = in;
	e->key = p->key ? p->key : KEY_PROG1;
	e->fd = -1;
	*priv = e;
	return 0;
}

static void evdev_detach(void *priv)
{
	struct evdev *e = priv;
	if (e->fd < 0)
		return;
	loop_fd_del(hal_input_loop(e->in), e->fd);
	close(e->fd);
	e->fd = -1;
	e->have = 0;
}

static int evdev_attach(void *priv)
{
	struct evdev *e = priv;
	evdev_detach(e);
	int fd = open(e->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	int rc = loop_fd_add(hal_input_loop(e->in), fd, LOOP_READ, on_read, e);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	e->fd = fd;
	return 0;
}

static void evdev_close(void *priv)
{
	evdev_detach(priv);
	free(priv);
}

const struct hal_input_ops hal_input_evdev_ops = {
    .name = "evdev",
    .desc = "a key on a Linux input device (/dev/input/eventN)",
    .open = evdev_open,
    .close = evdev_close,
    .attach = evdev_attach,
    .detach = evdev_detach,
};
