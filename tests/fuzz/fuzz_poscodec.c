/* libFuzzer: position chunks read back from the database (outside input). */
#include "agent/poscodec.h"
#include "agent/store.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct store_fix fixes[512];
	long n = poscodec_decode(data, size, fixes, 512);
	if (n > 0) {
		/* what decodes must encode back to the same bytes */
		unsigned char *again = malloc(POSCODEC_BOUND(n));
		size_t len = poscodec_encode(fixes, (size_t)n, again, POSCODEC_BOUND(n));
		if (len != size)
			abort();
		free(again);
	}
	return 0;
}
