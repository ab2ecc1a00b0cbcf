#include "sync/refserver/faults.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "sync/proto.h"
#include "sync/refserver/rs.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAULT_COUNT_MAX 1000000
#define FAULT_DELAY_MAX 600000             /* 10 minutes */
#define FAULT_SHIFT_MAX (10 * 365 * 86400) /* ten years */
#define FAULT_RETRY_MAX 86400

struct rs_faults {
	int fail_next;
	int64_t fail_until; /* loop_now_ms */
	int too_large_over;
	unsigned fail_status;
	int retry_after_s;
	int64_t delay_ms;
	int delay_next;
	int lose_next;
	int truncate_next; /* applied, answer cut to half its bytes */
	int portal_next;   /* not applied, a captive portal's HTML page with 200 */
	int64_t clock_shift_s;
	struct rs_extra extra[RS_EXTRA_MAX];
	int nextra;
	enum rs_forge forge_command;
	char forge_device[PROTO_ID_MAX + 1]; /* for forge_command; "" = any device */
};

static const char *const forge_names[] = {"none", "bad_signature", "other_unit", "other_device",
                                          "redeliver"};

int64_t rs_now_ms(const struct rs *rs)
{
	return loop_wall_ms() + faults_clock_shift_ms(rs->faults);
}

int faults_new(struct rs_faults **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	faults_clear(*out);
	return 0;
}

void faults_free(struct rs_faults *f)
{
	free(f);
}

void faults_clear(struct rs_faults *f)
{
	memset(f, 0, sizeof(*f));
	f->fail_status = 503;
	f->retry_after_s = 1;
}

int64_t faults_clock_shift_ms(const struct rs_faults *f)
{
	return f->clock_shift_s * 1000;
}

#define SETERR(...) snprintf(err, errlen, __VA_ARGS__)

static int int_field(const cJSON *obj, const char *name, int64_t min, int64_t max, int64_t *out,
                     char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
	    v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)min ||
	    v->valuedouble > (double)max) {
		SETERR("%s must be an integer in %lld..%lld", name, (long long)min, (long long)max);
		return -EINVAL;
	}
	*out = (int64_t)v->valuedouble;
	return 1;
}

static int forge_field(const cJSON *obj, const char *name, enum rs_forge a, enum rs_forge b,
                       enum rs_forge *out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!v)
		return 0;
	if (cJSON_IsString(v)) {
		if (strcmp(v->valuestring, "none") == 0) {
			*out = RS_FORGE_NONE;
			return 1;
		}
		if (strcmp(v->valuestring, forge_names[a]) == 0 ||
		    strcmp(v->valuestring, forge_names[b]) == 0) {
			*out = strcmp(v->valuestring, forge_names[a]) == 0 ? a : b;
			return 1;
		}
	}
	SETERR("%s must be \"none\", \"%s\" or \"%s\"", name, forge_names[a], forge_names[b]);
	return -EINVAL;
}

int faults_set(struct rs_faults *f, const cJSON *obj, char *err, size_t errlen)
{
	static const char *const known[] = {
	    "fail_next",  "fail_status",    "retry_after_s", "delay_ms",      "delay_next",
	    "lose_next",  "clock_shift_s",  "forge_item",    "forge_command", "forge_device",
	    "fail_for_s", "too_large_over", "redeliver",     "truncate_next", "portal_next"};
	struct rs_faults n = *f;
	enum rs_forge item = RS_FORGE_NONE;
	int64_t v;
	int rc;
	const cJSON *it;
	if (!cJSON_IsObject(obj)) {
		SETERR("body must be a JSON object");
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, obj)
	{
		size_t i;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(it->string, known[i]) == 0)
				break;
		if (i == sizeof(known) / sizeof(known[0])) {
			SETERR("unknown fault switch");
			return -EINVAL;
		}
	}
	if ((rc = int_field(obj, "fail_next", 0, FAULT_COUNT_MAX, &v, err, errlen)) < 0)
		return rc;
	if (rc)
		n.fail_next = (int)v;
	if ((rc = int_field(obj, "fail_status", 429, 504, &v, err, errlen)) < 0)
		return rc;
	if (rc) {
		if (v != 429 && v != 500 && v != 502 && v != 503 && v != 504) {
			SETERR("fail_status must be 429, 500, 502, 503 or 504");
			return -EINVAL;
		}
		n.fail_status = (unsigned)v;
	}
	if ((rc = int_field(obj, "retry_after_s", 0, FAULT_RETRY_MAX, &v, err, errlen)) < 0)
		return rc;
	if (rc)
		n.retry_after_s = (int)v;
	if ((rc = int_field(obj, "delay_ms", 0, FAULT_DELAY_MAX, &v, err, errlen)) < 0)
		return rc;
	if (rc)
		n.delay_ms = v;
	if ((rc = int_field(obj, "delay_next", 0, FAULT_COUNT_MAX, &v, err, errlen)) < 0)
		return rc;
	if (rc)
		n.delay_next = (int)v;
	if ((rc = int_field(obj, "lose_next", 0, FAULT_COUNT_MAX, &v, err, errlen)) < 0)
		return rc;
	if (rc)
		n.lose_next = (int)v;
	if ((rc = int_field(obj, "truncate_next", 0, FAULT_COUNT_MAX, &v, err, errlen)) < 0)
		return rc;
	if (rc)
		n.truncate_next = (int)v;
	if ((rc = int_field(obj, "portal_next", 0, FAULT_COUNT_MAX, &v, err, errlen)) < 0)
		return rc;
	if (rc)
		n.portal_next = (int)v;
	if ((rc = int_field(obj, "clock_shift_s", -FAULT_SHIFT_MAX, FAULT_SHIFT_MAX, &v, err,
	                    errlen)) < 0)
		return rc;
	if (rc)
		n.clock_shift_s = v;
	if ((rc = int_field(obj, "fail_for_s", 0, FAULT_SHIFT_MAX, &v, err, errlen)) < 0)
		return rc;
	if (rc)
		n.fail_until = v ? loop_now_ms() + v * 1000 : 0;
	if ((rc = int_field(obj, "too_large_over", 0, PROTO_MAX_EVENTS, &v, err, errlen)) < 0)
		return rc;
	if (rc)
		n.too_large_over = (int)v;
	if ((rc = forge_field(obj, "forge_item", RS_FORGE_BAD_SIGNATURE, RS_FORGE_OTHER_UNIT, &item,
	                      err, errlen)) < 0)
		return rc;
	if ((rc = forge_field(obj, "forge_command", RS_FORGE_BAD_SIGNATURE, RS_FORGE_OTHER_DEVICE,
	                      &n.forge_command, err, errlen)) < 0)
		return rc;
	it = cJSON_GetObjectItemCaseSensitive(obj, "forge_device");
	if (it) {
		if (!cJSON_IsString(it) ||
		    (it->valuestring[0] && !proto_id_valid(it->valuestring))) {
			SETERR("forge_device must be a device id or \"\"");
			return -EINVAL;
		}
		snprintf(n.forge_device, sizeof(n.forge_device), "%s", it->valuestring);
	}
	const cJSON *rd = cJSON_GetObjectItemCaseSensitive(obj, "redeliver");
	const cJSON *rid = cJSON_GetObjectItemCaseSensitive(rd, "id");
	if (rd && (!cJSON_IsString(rid) || !proto_id_valid(rid->valuestring) ||
	           int_field(rd, "version", 1, INT64_C(1) << 53, &v, err, errlen) != 1)) {
		SETERR("redeliver must be {\"id\": incident id, \"version\": n}");
		return -EINVAL;
	}
	if (n.nextra + (item != RS_FORGE_NONE) + (rd != NULL) > RS_EXTRA_MAX) {
		SETERR("more than %d extra items pending", RS_EXTRA_MAX);
		return -EINVAL;
	}
	if (item != RS_FORGE_NONE) {
		struct rs_extra *x = &n.extra[n.nextra++];
		memset(x, 0, sizeof(*x));
		x->kind = item;
		memcpy(x->device, n.forge_device, sizeof(x->device));
	}
	if (rd) {
		struct rs_extra *x = &n.extra[n.nextra++];
		memset(x, 0, sizeof(*x));
		x->kind = RS_FORGE_REDELIVER;
		memcpy(x->device, n.forge_device, sizeof(x->device));
		snprintf(x->id, sizeof(x->id), "%s", rid->valuestring);
		x->version = v;
	}
	*f = n;
	log_info("faults: fail_next=%d status=%u retry_after=%d delay_ms=%lld delay_next=%d "
	         "lose_next=%d truncate_next=%d portal_next=%d clock_shift_s=%lld "
	         "too_large_over=%d extra_items=%d forge_command=%s",
	         f->fail_next, f->fail_status, f->retry_after_s, (long long)f->delay_ms,
	         f->delay_next, f->lose_next, f->truncate_next, f->portal_next,
	         (long long)f->clock_shift_s, f->too_large_over, f->nextra,
	         forge_names[f->forge_command]);
	return 0;
}

cJSON *faults_json(const struct rs_faults *f)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	if (!cJSON_AddNumberToObject(o, "fail_next", f->fail_next) ||
	    !cJSON_AddNumberToObject(o, "fail_status", f->fail_status) ||
	    !cJSON_AddNumberToObject(o, "retry_after_s", f->retry_after_s) ||
	    !cJSON_AddNumberToObject(o, "delay_ms", (double)f->delay_ms) ||
	    !cJSON_AddNumberToObject(o, "delay_next", f->delay_next) ||
	    !cJSON_AddNumberToObject(o, "lose_next", f->lose_next) ||
	    !cJSON_AddNumberToObject(o, "truncate_next", f->truncate_next) ||
	    !cJSON_AddNumberToObject(o, "portal_next", f->portal_next) ||
	    !cJSON_AddNumberToObject(o, "clock_shift_s", (double)f->clock_shift_s) ||
	    !cJSON_AddNumberToObject(o, "fail_for_s",
	                             f->fail_until > loop_now_ms()
	                                 ? (double)((f->fail_until - loop_now_ms() + 999) / 1000)
	                                 : 0) ||
	    !cJSON_AddNumberToObject(o, "too_large_over", f->too_large_over) ||
	    !cJSON_AddNumberToObject(o, "extra_items_pending", f->nextra) ||
	    !cJSON_AddStringToObject(o, "forge_command", forge_names[f->forge_command]) ||
	    !cJSON_AddStringToObject(o, "forge_device", f->forge_device)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

unsigned faults_take_fail(struct rs_faults *f, int *retry_after_s)
{
	*retry_after_s = 0;
	if (f->fail_until && loop_now_ms() >= f->fail_until)
		f->fail_until = 0;
	if (f->fail_next <= 0 && !f->fail_until)
		return 0;
	if (f->fail_next > 0)
		f->fail_next--;
	if (f->fail_status == 429 || f->fail_status == 503)
		*retry_after_s = f->retry_after_s;
	return f->fail_status;
}

/* the count switches: one answer each while the count lasts */
static int take_one(int *count)
{
	if (*count <= 0)
		return 0;
	(*count)--;
	return 1;
}

int faults_take_lose(struct rs_faults *f)
{
	return take_one(&f->lose_next);
}

int faults_take_truncate(struct rs_faults *f)
{
	return take_one(&f->truncate_next);
}

int faults_take_portal(struct rs_faults *f)
{
	return take_one(&f->portal_next);
}

int64_t faults_take_delay(struct rs_faults *f)
{
	if (f->delay_ms <= 0)
		return 0;
	if (f->delay_next > 0 && --f->delay_next == 0) {
		int64_t d = f->delay_ms;
		f->delay_ms = 0;
		return d;
	}
	return f->delay_ms;
}

static int for_device(const struct rs_faults *f, const char *device_id)
{
	return !f->forge_device[0] || strcmp(f->forge_device, device_id) == 0;
}

int faults_too_large_over(const struct rs_faults *f)
{
	return f->too_large_over;
}

static int extra_for(const struct rs_extra *x, const char *device_id)
{
	return !x->device[0] || strcmp(x->device, device_id) == 0;
}

int faults_extra_pending(const struct rs_faults *f, const char *device_id)
{
	for (int i = 0; i < f->nextra; i++)
		if (extra_for(&f->extra[i], device_id))
			return 1;
	return 0;
}

int faults_take_extra(struct rs_faults *f, const char *device_id, struct rs_extra *out)
{
	for (int i = 0; i < f->nextra; i++) {
		if (!extra_for(&f->extra[i], device_id))
			continue;
		*out = f->extra[i];
		memmove(&f->extra[i], &f->extra[i + 1], (size_t)(f->nextra - i - 1) * sizeof(*out));
		f->nextra--;
		return 1;
	}
	return 0;
}

enum rs_forge faults_take_forge_command(struct rs_faults *f, const char *device_id)
{
	enum rs_forge k = f->forge_command;
	if (k == RS_FORGE_NONE || !for_device(f, device_id))
		return RS_FORGE_NONE;
	f->forge_command = RS_FORGE_NONE;
	return k;
}
