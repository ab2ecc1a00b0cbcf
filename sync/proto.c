#include "sync/proto.h"
#include "agent/store.h"

#include "agent/fmt.h"
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define SETERR(...)                                                                                \
	do {                                                                                       \
		if (err)                                                                           \
			snprintf(err, errlen, __VA_ARGS__);                                        \
	} while (0)

/* ---- encoding helpers ---- */

size_t proto_b64_encode(const void *in, size_t len, char *out, size_t cap)
{
	size_t need = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	if (need > cap)
		return 0;
	sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_ORIGINAL);
	return need - 1;
}

int proto_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t cap, size_t *outlen)
{
	const char *end = NULL;
	size_t n = 0;
	if (inlen == 0) {
		*outlen = 0;
		return 0;
	}
	if (sodium_base642bin(out, cap, in, inlen, NULL, &n, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != in + inlen)
		return -EINVAL;
	*outlen = n;
	return 0;
}

static const char hexd[] = "0123456789abcdef";

void proto_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, data, len);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hexd[h[i] >> 4];
		out[2 * i + 1] = hexd[h[i] & 15];
	}
	out[64] = 0;
}

void proto_time_format(int64_t unix_ms, char out[32])
{
	int64_t s = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
	int ms = (int)(unix_ms - s * 1000);
	time_t t = (time_t)s;
	struct tm tm;
	gmtime_r(&t, &tm);
	char buf[96];
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
	size_t n = strnlen(buf, 31);
	memcpy(out, buf, n);
	out[n] = 0;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int proto_time_parse(const char *s, int64_t *unix_ms)
{
	/* 2026-11-28T10:31:02.120Z */
	int Y, M, D, h, m, sec, ms;
	if (!s || strlen(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != '.' || s[23] != 'Z')
		return -EINVAL;
	if (digits(s, 4, &Y) || digits(s + 5, 2, &M) || digits(s + 8, 2, &D) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &m) || digits(s + 17, 2, &sec) ||
	    digits(s + 20, 3, &ms))
		return -EINVAL;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 ||
	    sec > 60)
		return -EINVAL;
	int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (M == 2 && D == 29 && !leap)
		return -EINVAL;
	struct tm tm = {.tm_year = Y - 1900,
	                .tm_mon = M - 1,
	                .tm_mday = D,
	                .tm_hour = h,
	                .tm_min = m,
	                .tm_sec = sec > 59 ? 59 : sec};
	time_t t = timegm(&tm);
	*unix_ms = (int64_t)t * 1000 + ms;
	return 0;
}

int proto_server_clock_offset(const cJSON *doc, int64_t *offset_s)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "server_time");
	/* 9999-12-31T23:59:59.999Z, the last time proto_time_format can write */
	if (!cJSON_IsNumber(t) || !(t->valuedouble > 0 && t->valuedouble <= 253402300799999.0))
		return -EINVAL;
	*offset_s = (int64_t)(t->valuedouble / 1000) - (int64_t)time(NULL);
	return 0;
}

int proto_uuid_valid(const char *s)
{
	if (!s || strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

int proto_id_valid(const char *s)
{
	if (!s)
		return 0;
	size_t n = strnlen(s, PROTO_ID_MAX + 1);
	if (n == 0 || n > PROTO_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return 0;
	}
	return 1;
}

/* ---- signing ---- */

size_t proto_sign_string(const char *method, const char *path_query, int64_t timestamp,
                         const void *body, size_t body_len, char *out, size_t cap)
{
	char hash[65];
	proto_sha256_hex(body ? body : "", body ? body_len : 0, hash);
	int n = snprintf(out, cap, "ESS-V1\n%s\n%s\n%lld\n%s", method, path_query,
	                 (long long)timestamp, hash);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}

/* ---- envelopes ---- */

char *proto_envelope_make(const void *payload, size_t len, const unsigned char sk[64])
{
	unsigned char sig[64];
	crypto_sign_ed25519_detached(sig, NULL, payload, len, sk);
	size_t plen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	size_t cap = plen + 128 + 32;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	size_t o = (size_t)snprintf(out, cap, "{\"payload\":\"");
	sodium_bin2base64(out + o, cap - o, payload, len, sodium_base64_VARIANT_ORIGINAL);
	o += plen - 1;
	o += (size_t)snprintf(out + o, cap - o, "\",\"sig\":\"");
	sodium_bin2base64(out + o, cap - o, sig, 64, sodium_base64_VARIANT_ORIGINAL);
	o += sodium_base64_encoded_len(64, sodium_base64_VARIANT_ORIGINAL) - 1;
	snprintf(out + o, cap - o, "\"}");
	return out;
}

int proto_envelope_open(const cJSON *env, const unsigned char server_pk[32],
                        unsigned char **payload, size_t *len, unsigned char sig[64], char *err,
                        size_t errlen)
{
	*payload = NULL;
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(env, "payload");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(env, "sig");
	if (!cJSON_IsObject(env) || !cJSON_IsString(p) || !cJSON_IsString(s)) {
		SETERR("not an envelope");
		return -EINVAL;
	}
	size_t plen = strlen(p->valuestring), slen;
	if (plen > (size_t)PROTO_DOC_MAX * 4 / 3 + 8) {
		SETERR("envelope payload too large");
		return -EINVAL;
	}
	if (proto_b64_decode(s->valuestring, strlen(s->valuestring), sig, 64, &slen) < 0 ||
	    slen != 64) {
		SETERR("envelope signature is not 64 bytes of base64");
		return -EINVAL;
	}
	unsigned char *buf = malloc(plen / 4 * 3 + 4);
	if (!buf)
		return -ENOMEM;
	size_t n;
	if (proto_b64_decode(p->valuestring, plen, buf, plen / 4 * 3 + 3, &n) < 0) {
		free(buf);
		SETERR("envelope payload is not base64");
		return -EINVAL;
	}
	if (crypto_sign_ed25519_verify_detached(sig, buf, n, server_pk) != 0) {
		sodium_memzero(buf, n);
		free(buf);
		SETERR("envelope signature does not verify");
		return -EBADMSG;
	}
	buf[n] = 0;
	*payload = buf;
	*len = n;
	return 0;
}

/* ---- names ---- */

static const char *const category_names[] = {"assault_threat", "confinement", "sexual_abuse_risk",
                                             "deranged_person", "gang_gathering"};
static const char *const state_names[] = {"assigned", "cancelled", "reassigned", "closed"};
static const char *const type_names[] = {"status", "note", "receipt", "sos", "command_result"};
static const char *const status_names[] = {
    NULL,       "acknowledged", "en_route",         "on_scene",
    "resolved", "referred",     "unable_to_locate", "declined",
};
static const char *const clock_names[] = {"gps", "system", "unsynced"};

static int name_index(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], s) == 0)
			return i;
	return -1;
}

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

const char *proto_event_type_name(enum proto_event_type t)
{
	return (unsigned)t < (unsigned)COUNT(type_names) ? type_names[t] : NULL;
}
const char *proto_status_name(enum proto_status s)
{
	return (unsigned)s < (unsigned)COUNT(status_names) ? status_names[s] : NULL;
}
int proto_status_parse(const char *s, enum proto_status *out)
{
	int i = s ? name_index(status_names, COUNT(status_names), s) : -1;
	if (i < 0)
		return -EINVAL;
	*out = (enum proto_status)i;
	return 0;
}
const char *proto_state_name(enum proto_dispatch_state s)
{
	return (unsigned)s < (unsigned)COUNT(state_names) ? state_names[s] : NULL;
}
const char *proto_category_name(enum proto_category c)
{
	return (unsigned)c < (unsigned)COUNT(category_names) ? category_names[c] : NULL;
}
const char *proto_clock_name(enum proto_clock c)
{
	return (unsigned)c < (unsigned)COUNT(clock_names) ? clock_names[c] : NULL;
}

/* ---- field readers ---- */

static const cJSON *field(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

/* A JSON number that is an exact integer within [min, max]. */
static int get_int(const cJSON *v, int64_t min, int64_t max, int64_t *out)
{
	if (!cJSON_IsNumber(v))
		return -EINVAL;
	double d = v->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
		return -EINVAL;
	*out = (int64_t)d;
	return 0;
}

static int get_str(const cJSON *v, size_t max, const char **out)
{
	if (!cJSON_IsString(v) || !v->valuestring || strlen(v->valuestring) > max)
		return -EINVAL;
	*out = v->valuestring;
	return 0;
}

static int get_enum(const cJSON *v, const char *const *names, int n, int *out)
{
	if (!cJSON_IsString(v))
		return -EINVAL;
	int i = name_index(names, n, v->valuestring);
	if (i < 0)
		return -EINVAL;
	*out = i;
	return 0;
}

static int get_location(const cJSON *v, double *lat, double *lon, double *acc)
{
	const cJSON *a = field(v, "lat"), *o = field(v, "lon"), *c = field(v, "accuracy_m");
	if (!cJSON_IsObject(v) || !cJSON_IsNumber(a) || !cJSON_IsNumber(o) || !cJSON_IsNumber(c))
		return -EINVAL;
	if (!isfinite(a->valuedouble) || fabs(a->valuedouble) > 90 || !isfinite(o->valuedouble) ||
	    fabs(o->valuedouble) > 180 || !isfinite(c->valuedouble) || c->valuedouble < 0 ||
	    c->valuedouble > 1e7)
		return -EINVAL;
	*lat = a->valuedouble;
	*lon = o->valuedouble;
	*acc = c->valuedouble;
	return 0;
}

static int copy_id(const cJSON *v, char *out)
{
	if (!cJSON_IsString(v) || !proto_id_valid(v->valuestring))
		return -EINVAL;
	strcpy(out, v->valuestring);
	return 0;
}

/* ---- incident document ---- */

static int check_optional_objects(const cJSON *doc, char *err, size_t errlen)
{
	const char *s;
	const cJSON *v;
	if ((v = field(doc, "address")) && get_str(v, PROTO_TEXT_MAX, &s) < 0) {
		SETERR("address is not a string");
		return -EINVAL;
	}
	if ((v = field(doc, "reporter"))) {
		if (!cJSON_IsObject(v)) {
			SETERR("reporter is not an object");
			return -EINVAL;
		}
		static const char *const strs[] = {"name", "phone", "line_id"};
		for (int i = 0; i < 3; i++) {
			const cJSON *f = field(v, strs[i]);
			if (f && get_str(f, 1024, &s) < 0) {
				SETERR("reporter.%s is not a string", strs[i]);
				return -EINVAL;
			}
		}
		const cJSON *ok = field(v, "contact_ok");
		if (ok && !cJSON_IsBool(ok)) {
			SETERR("reporter.contact_ok is not a boolean");
			return -EINVAL;
		}
	}
	if ((v = field(doc, "subjects"))) {
		static const char *const roles[] = {"victim", "suspect", "other"};
		static const char *const ages[] = {"child", "youth", "adult", "elderly"};
		const cJSON *sub;
		int k;
		if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > 100) {
			SETERR("subjects is not an array");
			return -EINVAL;
		}
		cJSON_ArrayForEach(sub, v)
		{
			const cJSON *r = field(sub, "role"), *a = field(sub, "age_group"),
			            *n = field(sub, "notes");
			if (!cJSON_IsObject(sub) || (r && get_enum(r, roles, 3, &k) < 0) ||
			    (a && get_enum(a, ages, 4, &k) < 0) ||
			    (n && get_str(n, PROTO_TEXT_MAX, &s) < 0)) {
				SETERR("a subject is malformed");
				return -EINVAL;
			}
		}
	}
	if ((v = field(doc, "dispatch_notes"))) {
		const cJSON *dn;
		int64_t t;
		if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > 1000) {
			SETERR("dispatch_notes is not an array");
			return -EINVAL;
		}
		cJSON_ArrayForEach(dn, v)
		{
			const cJSON *at = field(dn, "at"), *tx = field(dn, "text");
			if (!cJSON_IsObject(dn) || !cJSON_IsString(at) ||
			    proto_time_parse(at->valuestring, &t) < 0 ||
			    get_str(tx, PROTO_TEXT_MAX, &s) < 0) {
				SETERR("a dispatch note is malformed");
				return -EINVAL;
			}
		}
	}
	return 0;
}

int proto_incident_parse(const char *json, size_t len, struct proto_incident *out, char *err,
                         size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len > PROTO_DOC_MAX) {
		SETERR("incident document too large");
		return -EINVAL;
	}
	cJSON *doc = proto_json_parse(json, len);
	if (!doc || !cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		SETERR("incident document is not a JSON object");
		return -EINVAL;
	}
	int rc = -EINVAL, k;
	int64_t v;
	const char *s;
	const cJSON *f;
	if (copy_id(field(doc, "id"), out->id) < 0) {
		SETERR("id missing or malformed");
		goto out;
	}
	if (get_int(field(doc, "version"), 1, INT64_C(1) << 53, &out->version) < 0) {
		SETERR("version missing or not an integer >= 1");
		goto out;
	}
	if (get_enum(field(doc, "category"), category_names, COUNT(category_names), &k) < 0) {
		SETERR("category missing or unknown");
		goto out;
	}
	out->category = (enum proto_category)k;
	if (get_int(field(doc, "priority"), 1, 3, &v) < 0) {
		SETERR("priority missing or not 1-3");
		goto out;
	}
	out->priority = (int)v;
	f = field(doc, "silent");
	if (!cJSON_IsBool(f)) {
		SETERR("silent missing or not a boolean");
		goto out;
	}
	out->silent = cJSON_IsTrue(f);
	if (get_enum(field(doc, "state"), state_names, COUNT(state_names), &k) < 0) {
		SETERR("state missing or unknown");
		goto out;
	}
	out->state = (enum proto_dispatch_state)k;
	f = field(doc, "reported_at");
	if (!cJSON_IsString(f) || proto_time_parse(f->valuestring, &out->reported_at_ms) < 0) {
		SETERR("reported_at missing or not an RFC 3339 time");
		goto out;
	}
	if (get_location(field(doc, "location"), &out->lat, &out->lon, &out->accuracy_m) < 0) {
		SETERR("location missing or out of range");
		goto out;
	}
	if (get_str(field(doc, "summary"), PROTO_TEXT_MAX, &s) < 0) {
		SETERR("summary missing or not a string");
		goto out;
	}
	if (copy_id(field(doc, "unit"), out->unit) < 0) {
		SETERR("unit missing or malformed");
		goto out;
	}
	rc = check_optional_objects(doc, err, errlen);
out:
	cJSON_Delete(doc);
	return rc;
}

/* ---- events ---- */

int proto_event_parse(const cJSON *obj, struct proto_event *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	int k;
	int64_t v;
	const cJSON *f;
	if (!cJSON_IsObject(obj)) {
		SETERR("event is not an object");
		return -EINVAL;
	}
	f = field(obj, "event_id");
	if (!cJSON_IsString(f) || !proto_uuid_valid(f->valuestring)) {
		SETERR("event_id missing or not a lower-case UUID v4");
		return -EINVAL;
	}
	strcpy(out->event_id, f->valuestring);
	if (get_int(field(obj, "seq"), 0, INT64_C(1) << 53, &out->seq) < 0) {
		SETERR("seq missing or not a non-negative integer");
		return -EINVAL;
	}
	if (get_enum(field(obj, "type"), type_names, COUNT(type_names), &k) < 0) {
		SETERR("type missing or unknown");
		return -EINVAL;
	}
	out->type = (enum proto_event_type)k;
	f = field(obj, "at");
	if (!cJSON_IsString(f) || proto_time_parse(f->valuestring, &out->at_ms) < 0) {
		SETERR("at missing or not an RFC 3339 time");
		return -EINVAL;
	}
	if (get_enum(field(obj, "clock"), clock_names, COUNT(clock_names), &k) < 0) {
		SETERR("clock missing or unknown");
		return -EINVAL;
	}
	out->clock = (enum proto_clock)k;
	f = field(obj, "location");
	if (!f) {
		SETERR("location missing (an object or null)");
		return -EINVAL;
	}
	if (!cJSON_IsNull(f)) {
		if (get_location(f, &out->lat, &out->lon, &out->accuracy_m) < 0) {
			SETERR("location out of range");
			return -EINVAL;
		}
		out->has_location = 1;
	}
	f = field(obj, "text");
	if (f) {
		if (get_str(f, PROTO_TEXT_MAX, &out->text) < 0) {
			SETERR("text not a string or too long");
			return -EINVAL;
		}
	}
	switch (out->type) {
	case PROTO_EV_STATUS:
	case PROTO_EV_NOTE:
	case PROTO_EV_RECEIPT:
		if (copy_id(field(obj, "incident_id"), out->incident_id) < 0) {
			SETERR("incident_id missing or malformed");
			return -EINVAL;
		}
		if (get_int(field(obj, "incident_version"), 1, INT64_C(1) << 53,
		            &out->incident_version) < 0) {
			SETERR("incident_version missing or not an integer >= 1");
			return -EINVAL;
		}
		if (out->type == PROTO_EV_STATUS) {
			f = field(obj, "status");
			if (!cJSON_IsString(f) ||
			    proto_status_parse(f->valuestring, &out->status) < 0) {
				SETERR("status missing or unknown");
				return -EINVAL;
			}
		}
		if (out->type == PROTO_EV_NOTE && (!out->text || !out->text[0])) {
			SETERR("a note needs text");
			return -EINVAL;
		}
		break;
	case PROTO_EV_COMMAND_RESULT:
		if (copy_id(field(obj, "command_id"), out->command_id) < 0) {
			SETERR("command_id missing or malformed");
			return -EINVAL;
		}
		f = field(obj, "ok");
		if (!cJSON_IsBool(f)) {
			SETERR("ok missing or not a boolean");
			return -EINVAL;
		}
		out->ok = cJSON_IsTrue(f);
		break;
	case PROTO_EV_SOS:
		break;
	}
	(void)v;
	return 0;
}

cJSON *proto_event_json(const struct proto_event *ev)
{
	char at[32];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	proto_time_format(ev->at_ms, at);
	int ok = cJSON_AddStringToObject(o, "event_id", ev->event_id) &&
	         cJSON_AddNumberToObject(o, "seq", (double)ev->seq) &&
	         cJSON_AddStringToObject(o, "type", proto_event_type_name(ev->type));
	if (ok && (ev->type == PROTO_EV_STATUS || ev->type == PROTO_EV_NOTE ||
	           ev->type == PROTO_EV_RECEIPT))
		ok = cJSON_AddStringToObject(o, "incident_id", ev->incident_id) &&
		     cJSON_AddNumberToObject(o, "incident_version", (double)ev->incident_version);
	if (ok && ev->type == PROTO_EV_STATUS)
		ok = cJSON_AddStringToObject(o, "status", proto_status_name(ev->status)) != NULL;
	if (ok && ev->text)
		ok = cJSON_AddStringToObject(o, "text", ev->text) != NULL;
	if (ok && ev->type == PROTO_EV_COMMAND_RESULT)
		ok = cJSON_AddStringToObject(o, "command_id", ev->command_id) &&
		     cJSON_AddBoolToObject(o, "ok", ev->ok);
	if (ok)
		ok = cJSON_AddStringToObject(o, "at", at) &&
		     cJSON_AddStringToObject(o, "clock", proto_clock_name(ev->clock));
	if (ok) {
		if (ev->has_location) {
			cJSON *loc = cJSON_AddObjectToObject(o, "location");
			ok = loc && cJSON_AddNumberToObject(loc, "lat", ev->lat) &&
			     cJSON_AddNumberToObject(loc, "lon", ev->lon) &&
			     cJSON_AddNumberToObject(loc, "accuracy_m", ev->accuracy_m);
		} else {
			ok = cJSON_AddNullToObject(o, "location") != NULL;
		}
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ---- status rules ---- */

int proto_status_final(enum proto_status s)
{
	return s == PROTO_STATUS_RESOLVED || s == PROTO_STATUS_REFERRED ||
	       s == PROTO_STATUS_DECLINED || s == PROTO_STATUS_UNABLE_TO_LOCATE;
}

/* acknowledged < en_route < on_scene < (resolved | referred) */
static int rank(enum proto_status s)
{
	switch (s) {
	case PROTO_STATUS_NONE:
		return 0;
	case PROTO_STATUS_ACKNOWLEDGED:
		return 1;
	case PROTO_STATUS_EN_ROUTE:
		return 2;
	case PROTO_STATUS_ON_SCENE:
		return 3;
	case PROTO_STATUS_RESOLVED:
	case PROTO_STATUS_REFERRED:
		return 4;
	default:
		return -1;
	}
}

enum proto_verdict proto_status_check(enum proto_dispatch_state state, enum proto_status current,
                                      enum proto_status next)
{
	if (state != PROTO_STATE_ASSIGNED)
		return PROTO_CONFLICT;
	if (next == current)
		return PROTO_SAME;
	if (next == PROTO_STATUS_NONE || proto_status_final(current))
		return PROTO_CONFLICT;
	if (next == PROTO_STATUS_DECLINED)
		return rank(current) < rank(PROTO_STATUS_ON_SCENE) ? PROTO_ACCEPT : PROTO_CONFLICT;
	if (next == PROTO_STATUS_UNABLE_TO_LOCATE)
		return current == PROTO_STATUS_EN_ROUTE || current == PROTO_STATUS_ON_SCENE
		           ? PROTO_ACCEPT
		           : PROTO_CONFLICT;
	return rank(next) > rank(current) ? PROTO_ACCEPT : PROTO_CONFLICT;
}

/* ---- positions ---- */

char *proto_fixes_json(const struct store_fix *fixes, size_t n, size_t *len)
{
	/* 7 numbers of at most 20 characters and their separators per fix */
	size_t cap = 16 + n * (7 * 21 + 3);
	char *out = malloc(cap), *p = out;
	if (!out)
		return NULL;
	memcpy(p, "{\"fixes\":[", 10);
	p += 10;
	for (size_t i = 0; i < n; i++) {
		const struct store_fix *f = &fixes[i];
		if (i)
			*p++ = ',';
		*p++ = '[';
		p = fmt_i64(p, f->t_ms);
		*p++ = ',';
		p = fmt_i64(p, f->lat_e7);
		*p++ = ',';
		p = fmt_i64(p, f->lon_e7);
		*p++ = ',';
		p = fmt_i64(p, f->accuracy_dm);
		*p++ = ',';
		p = fmt_i64(p, f->speed_cm_s);
		*p++ = ',';
		p = fmt_i64(p, f->heading_cdeg);
		*p++ = ',';
		p = fmt_i64(p, f->mode);
		*p++ = ']';
	}
	memcpy(p, "]}", 3);
	p += 2;
	*len = (size_t)(p - out);
	return out;
}

int proto_fixes_parse(const cJSON *body, struct store_fix **out, size_t *n, char *err,
                      size_t errlen)
{
	*out = NULL;
	*n = 0;
	const cJSON *arr = field(body, "fixes"), *fx;
	if (!cJSON_IsObject(body) || !cJSON_IsArray(arr)) {
		SETERR("fixes missing or not an array");
		return -EINVAL;
	}
	int count = cJSON_GetArraySize(arr);
	if (count > PROTO_MAX_FIXES) {
		SETERR("more than %d fixes", PROTO_MAX_FIXES);
		return -E2BIG;
	}
	struct store_fix *v = calloc((size_t)count + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t i = 0;
	cJSON_ArrayForEach(fx, arr)
	{
		int64_t x[7];
		static const int64_t lo[7] = {1, -900000000, -1800000000, -1, -1, -1, 2};
		static const int64_t hi[7] = {INT64_C(253402300799999),
		                              900000000,
		                              1800000000,
		                              INT32_MAX,
		                              INT32_MAX,
		                              35999,
		                              3};
		if (!cJSON_IsArray(fx) || cJSON_GetArraySize(fx) != 7)
			goto bad;
		for (int k = 0; k < 7; k++)
			if (get_int(cJSON_GetArrayItem(fx, k), lo[k], hi[k], &x[k]) < 0)
				goto bad;
		struct store_fix f = {x[0],          (int32_t)x[1], (int32_t)x[2], (int32_t)x[3],
		                      (int32_t)x[4], (int32_t)x[5], (uint8_t)x[6]};
		if (i > 0 && f.t_ms < v[i - 1].t_ms)
			goto bad;
		v[i++] = f;
	}
	*out = v;
	*n = i;
	return 0;
bad:
	free(v);
	SETERR("fix %zu malformed, out of range or out of time order", i);
	return -EINVAL;
}

/* ---- bodies ---- */

int proto_gzip(const void *data, size_t len, unsigned char **out, size_t *outlen)
{
	return proto_gzip_level(data, len, 6, out, outlen);
}

int proto_gzip_level(const void *data, size_t len, int level, unsigned char **out, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (level < 1 || level > 9)
		return -EINVAL;
	if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, level == 9 ? 9 : 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -ENOMEM;
	size_t cap = deflateBound(&z, (uLong)len) + 32;
	unsigned char *buf = malloc(cap);
	if (!buf) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = buf;
	z.avail_out = (uInt)cap;
	int rc = deflate(&z, Z_FINISH);
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(buf);
		return -EIO;
	}
	*out = buf;
	*outlen = cap - z.avail_out;
	return 0;
}

int proto_gunzip(const void *data, size_t len, size_t max_out, unsigned char **out, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return -ENOMEM;
	size_t cap = len * 4 + 1024 < max_out ? len * 4 + 1024 : max_out + 1;
	unsigned char *buf = malloc(cap + 1);
	int rc = buf ? 0 : -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	size_t used = 0;
	while (rc == 0) {
		z.next_out = buf + used;
		z.avail_out = (uInt)(cap - used);
		int zr = inflate(&z, Z_NO_FLUSH);
		used = cap - z.avail_out;
		if (used > max_out) {
			rc = -EFBIG;
			break;
		}
		if (zr == Z_STREAM_END) {
			if (z.avail_in != 0)
				rc = -EINVAL; /* trailing garbage */
			break;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR) {
			rc = -EINVAL;
			break;
		}
		if (z.avail_out == 0) {
			size_t ncap = cap * 2 > max_out + 1 ? max_out + 1 : cap * 2;
			if (ncap == cap) {
				rc = -EFBIG;
				break;
			}
			unsigned char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap = ncap;
		} else if (z.avail_in == 0) {
			rc = -EINVAL; /* truncated stream */
		}
	}
	inflateEnd(&z);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[used] = 0;
	*out = buf;
	*outlen = used;
	return 0;
}

cJSON *proto_json_parse(const void *data, size_t len)
{
	if (len > PROTO_BODY_MAX)
		return NULL;
	char *copy = malloc(len + 1);
	if (!copy)
		return NULL;
	memcpy(copy, data, len);
	copy[len] = 0;
	/* The whole input must be one value: require_null_terminated. */
	cJSON *v = cJSON_ParseWithOpts(copy, NULL, 1);
	if (v && strlen(copy) != len) { /* a NUL inside the data */
		cJSON_Delete(v);
		v = NULL;
	}
	free(copy);
	return v;
}
