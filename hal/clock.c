/* RTC presence and the clock assessment (clock.h). */
#include "hal/clock.h"

#include "hal/sysfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTC_AGREE_S 60

struct hal_clock {
	const struct hal_clock_ops *ops;
	void *priv;
};

static const struct hal_clock_ops *const backends[] = {
    &hal_clock_sysfs_ops,
    &hal_clock_none_ops,
};

int hal_clock_open(const char *name, const char *root, const char *rtc, struct hal_clock **out,
                   char *err, size_t errlen)
{
	*out = NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		if (strcmp(backends[i]->name, name) != 0)
			continue;
		struct hal_clock *c = calloc(1, sizeof(*c));
		if (!c)
			return -ENOMEM;
		c->ops = backends[i];
		int rc = c->ops->open(root, rtc, &c->priv, err, errlen);
		if (rc < 0) {
			free(c);
			return rc;
		}
		*out = c;
		return 0;
	}
	if (err)
		snprintf(err, errlen, "unknown clock backend '%.32s'", name);
	return -ENOENT;
}

void hal_clock_close(struct hal_clock *c)
{
	if (!c)
		return;
	c->ops->close(c->priv);
	free(c);
}

const char *hal_clock_name(const struct hal_clock *c)
{
	return c->ops->name;
}

void hal_clock_read(struct hal_clock *c, struct hal_clock_info *info)
{
	memset(info, 0, sizeof(*info));
	info->rtc_s = -1;
	c->ops->read(c->priv, info);
}

const char *hal_clock_assess(const struct hal_clock_info *info, const char *sync_state,
                             int64_t sys_s, int64_t *drift_s)
{
	*drift_s = 0;
	int readable = info->rtc_present && info->rtc_s >= 0;
	if (readable)
		*drift_s = info->rtc_s - sys_s;
	if (!strcmp(sync_state, "gps") || !strcmp(sync_state, "system"))
		return "ok";
	if (!readable)
		return "no-time";
	return *drift_s > RTC_AGREE_S || *drift_s < -RTC_AGREE_S ? "rtc-drift" : "rtc-only";
}

/* ---- sysfs ---- */

struct sysfs_clock {
	char root[HAL_SYSFS_PATH_MAX];
	char rtc[80];
};

static int sysfs_open(const char *root, const char *rtc, void **priv, char *err, size_t errlen)
{
	struct sysfs_clock *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int rc = hal_sysfs_root(root, s->root, sizeof(s->root));
	if (rc == 0 && rtc && rtc[0] && !hal_sysfs_name_ok(rtc))
		rc = -EINVAL;
	if (rc < 0) {
		if (err)
			snprintf(err, errlen, "clock sysfs: bad root or RTC name");
		free(s);
		return rc;
	}
	snprintf(s->rtc, sizeof(s->rtc), "%s", rtc ? rtc : "");
	*priv = s;
	return 0;
}

static void sysfs_close(void *priv)
{
	free(priv);
}

static void sysfs_read(void *priv, struct hal_clock_info *info)
{
	struct sysfs_clock *s = priv;
	char dev[HAL_SYSFS_PATH_MAX], p[HAL_SYSFS_PATH_MAX + 32];
	long long v;
	if (hal_sysfs_class_dev(s->root, "rtc", s->rtc, dev, sizeof(dev)) < 0)
		return;
	info->rtc_present = 1;
	snprintf(p, sizeof(p), "%s/name", dev);
	if (hal_sysfs_read(p, info->rtc_name, sizeof(info->rtc_name)) < 0)
		info->rtc_name[0] = 0;
	snprintf(p, sizeof(p), "%s/since_epoch", dev);
	/* an RTC that lost its battery reads 1970 or errors: not a time */
	if (hal_sysfs_read_int(p, &v) == 0 && v > 946684800LL && v < 4102444800LL)
		info->rtc_s = v;
	snprintf(p, sizeof(p), "%s/hctosys", dev);
	info->hctosys = hal_sysfs_read_int(p, &v) == 0 && v == 1;
}

const struct hal_clock_ops hal_clock_sysfs_ops = {
    .name = "sysfs",
    .desc = "RTC class (/sys/class/rtc)",
    .open = sysfs_open,
    .close = sysfs_close,
    .read = sysfs_read,
};

static int none_open(const char *root, const char *rtc, void **priv, char *err, size_t errlen)
{
	(void)root;
	(void)rtc;
	(void)err;
	(void)errlen;
	*priv = NULL;
	return 0;
}

static void none_close(void *priv)
{
	(void)priv;
}

static void none_read(void *priv, struct hal_clock_info *info)
{
	(void)priv;
	(void)info;
}

const struct hal_clock_ops hal_clock_none_ops = {
    .name = "none",
    .desc = "no RTC",
    .open = none_open,
    .close = none_close,
    .read = none_read,
};
