/* libFuzzer: rtnetlink datagrams as the kernel (or anything that manages to
 * write to the socket) hands them to hal/link's parser. */
#include "hal/link.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void up(void *arg, const char *ifname, enum hal_link_why why)
{
	(void)why;
	/* a name must always be terminated within IFNAMSIZ */
	if (strnlen(ifname, HAL_LINK_NAME) >= HAL_LINK_NAME)
		abort();
	(*(int *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hal_link_tracker t;
	/* the socket's buffer is aligned; so is this copy */
	static union {
		uint32_t align;
		unsigned char b[65536];
	} buf;
	if (size > sizeof(buf.b))
		return 0;
	memcpy(buf.b, data, size);
	int calls = 0;
	hal_link_tracker_init(&t);
	t.primed = size & 1; /* half the runs as after the initial dump */
	int n = hal_link_parse(&t, buf.b, size, up, &calls);
	if (n != calls || hal_link_running(&t) > HAL_LINK_MAX_IFS)
		abort();
	return 0;
}
