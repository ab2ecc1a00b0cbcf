/* libFuzzer: datagrams as a NETLINK_KOBJECT_UEVENT socket (or anything that
 * manages to write to it) hands them to hal/power's uevent parser. */
#include "hal/uevent.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* p must point into [b, b + n) and be NUL-terminated there. */
static void inside(const char *b, size_t n, const char *p)
{
	if (p < b || p >= b + n || !memchr(p, 0, (size_t)(b + n - p)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[HAL_UEVENT_MAX + 1];
	if (size > sizeof(buf))
		return 0;
	memcpy(buf, data, size);
	struct hal_uevent ev;
	if (hal_uevent_parse(buf, size, &ev) != 0)
		return 0;
	inside(buf, size, ev.action);
	inside(buf, size, ev.devpath);
	inside(buf, size, ev.subsystem);
	if (ev.devpath[0] != '/' || !ev.subsystem[0] || !ev.action[0])
		abort();
	return 0;
}
