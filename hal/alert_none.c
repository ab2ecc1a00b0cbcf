/* The "none" alert backend: a device without LED, sounder or screen
 * control (every output op NULL, so the policy has nothing to drive). */
#include "hal/alert.h"

static int none_open(const struct hal_alert_params *p, void **priv, char *err, size_t errlen)
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

const struct hal_alert_ops hal_alert_none_ops = {
    .name = "none",
    .desc = "no alert outputs",
    .open = none_open,
    .close = none_close,
};
