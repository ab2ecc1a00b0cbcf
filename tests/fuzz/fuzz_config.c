/* libFuzzer: the configuration parser (files are outside input). */
#include "agent/config.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)arg, (void)file, (void)line, (void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	config_load_buffer("fuzz.conf", (const char *)data, size, &c, ignore, NULL);
	return 0;
}
