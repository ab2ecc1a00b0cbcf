/* The "none" GPS source: a device without a receiver. It opens, registers
 * nothing and never delivers a fix, so the rest of the agent runs as on a
 * device that has not found the sky yet. */
#include "hal/gps.h"

static int none_open(const struct hal_gps_params *p, void **priv, char *err, size_t errlen)
{
	(void)p;
	(void)err;
	(void)errlen;
	*priv = NULL;
	return 0;
}

static void none_close(void *priv)
{
	(void)priv;
}

const struct hal_gps_ops hal_gps_none_ops = {
    .name = "none",
    .desc = "no GPS receiver: never delivers a fix",
    .open = none_open,
    .close = none_close,
};
