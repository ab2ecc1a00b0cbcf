/* libFuzzer: everything the agent parses from the server. The first byte
 * picks the parser so one corpus covers them all. */
#include "agent/store.h"
#include "sync/proto.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char pk[32];
	static int ready;
	if (!ready) {
		unsigned char sk[64];
		if (sodium_init() < 0)
			abort();
		crypto_sign_ed25519_keypair(pk, sk);
		ready = 1;
	}
	if (size < 1)
		return 0;
	uint8_t which = data[0] % 6;
	data++;
	size--;
	char err[128];
	switch (which) {
	case 0: {
		struct proto_incident inc;
		proto_incident_parse((const char *)data, size, &inc, err, sizeof(err));
		break;
	}
	case 1: {
		cJSON *j = proto_json_parse(data, size);
		struct proto_event ev;
		if (j) {
			proto_event_parse(j, &ev, err, sizeof(err));
			const cJSON *a;
			cJSON_ArrayForEach(a, cJSON_GetObjectItem(j, "events"))
			    proto_event_parse(a, &ev, err, sizeof(err));
		}
		cJSON_Delete(j);
		break;
	}
	case 2: {
		cJSON *j = proto_json_parse(data, size);
		unsigned char *payload, sig[64];
		size_t len;
		if (j && proto_envelope_open(j, pk, &payload, &len, sig, err, sizeof(err)) == 0)
			free(payload);
		cJSON_Delete(j);
		break;
	}
	case 3: {
		cJSON *j = proto_json_parse(data, size);
		struct store_fix *fixes;
		size_t n;
		if (j && proto_fixes_parse(j, &fixes, &n, err, sizeof(err)) == 0)
			free(fixes);
		cJSON_Delete(j);
		break;
	}
	case 4: {
		unsigned char *out;
		size_t len;
		if (proto_gunzip(data, size, 1 << 20, &out, &len) == 0)
			free(out);
		break;
	}
	case 5: {
		int64_t ms;
		char s[64];
		size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
		memcpy(s, data, n);
		s[n] = 0;
		proto_time_parse(s, &ms);
		proto_uuid_valid(s);
		proto_id_valid(s);
		unsigned char bin[64];
		proto_b64_decode(s, n, bin, sizeof(bin), &n);
		break;
	}
	}
	return 0;
}
