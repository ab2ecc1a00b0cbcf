/* The "none" power backend: nothing is known (every reading unknown), so
 * the daemon's configured fallback is reported. */
#include "hal/power.h"

static int none_open(const struct hal_power_params *p, struct hal_power *pw, void **priv, char *err,
                     size_t errlen)
{
	(void)p;
	(void)pw;
	(void)err;
	(void)errlen;
	*priv = NULL;
	return 0;
}

static void none_close(void *priv)
{
	(void)priv;
}

static void none_read(void *priv, struct hal_power_raw *r)
{
	(void)priv;
	*r = (struct hal_power_raw){-1, -1, 0, -1, -1};
}

const struct hal_power_ops hal_power_none_ops = {
    .name = "none",
    .desc = "no power information",
    .open = none_open,
    .close = none_close,
    .read = none_read,
};
