/* The touch UI's request policy (ui_policy.h). */
#include "agent/ui/ui_policy.h"

#include "hal/fsutil.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct ui_policy {
	unsigned port;
	/* both hex, NUL-terminated; the struct lives in guarded memory */
	char token[UI_TOKEN_HEX + 1];
	char session[UI_TOKEN_HEX + 1];
};

const struct ui_header ui_security_headers[] = {
    /* Only this origin: the page's own script, style, images and API. No
     * inline script or style attribute, no plugin, no frame, no form to
     * elsewhere: an injected string cannot run. */
    {"Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "font-src 'self'; connect-src 'self'; media-src 'self'; object-src 'none'; "
     "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Cross-Origin-Opener-Policy", "same-origin"},
    {"Cross-Origin-Resource-Policy", "same-origin"},
    {"Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"},
    {NULL, NULL},
};

static int random_hex(char *out /* UI_TOKEN_HEX + 1 */)
{
	unsigned char raw[UI_TOKEN_BYTES];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(out, UI_TOKEN_HEX + 1, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	return 0;
}

static int alloc_policy(unsigned port, struct ui_policy **out)
{
	if (sodium_init() < 0)
		return -EIO;
	struct ui_policy *p = sodium_malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	memset(p, 0, sizeof(*p));
	p->port = port;
	random_hex(p->session);
	*out = p;
	return 0;
}

int ui_policy_open(const char *token_path, unsigned mode, unsigned port, struct ui_policy **out,
                   char *err, size_t errlen)
{
	struct ui_policy *p;
	int rc;
	*out = NULL;
	if (mode & 0137) { /* never writable but by the owner, never for others */
		snprintf(err, errlen, "token file mode %03o: want 0600 or 0640", mode);
		return -EINVAL;
	}
	if ((rc = alloc_policy(port, &p)) < 0) {
		snprintf(err, errlen, "guarded memory: %s", strerror(-rc));
		return rc;
	}
	random_hex(p->token);
	/* a per-boot token: a new one at every start replaces the old file */
	if ((rc = fsu_write_private(token_path, p->token, UI_TOKEN_HEX, 0, err, errlen)) < 0) {
		ui_policy_close(p);
		return rc;
	}
	if (chmod(token_path, mode) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: chmod: %s", token_path, strerror(errno));
		ui_policy_close(p);
		return rc;
	}
	sodium_mprotect_readonly(p);
	*out = p;
	return 0;
}

int ui_policy_open_token(const char *token, unsigned port, struct ui_policy **out)
{
	struct ui_policy *p;
	int rc;
	*out = NULL;
	if (!token || strlen(token) != UI_TOKEN_HEX)
		return -EINVAL;
	if ((rc = alloc_policy(port, &p)) < 0)
		return rc;
	memcpy(p->token, token, UI_TOKEN_HEX);
	sodium_mprotect_readonly(p);
	*out = p;
	return 0;
}

void ui_policy_close(struct ui_policy *p)
{
	if (p)
		sodium_free(p); /* zeroes it */
}

unsigned ui_policy_port(const struct ui_policy *p)
{
	return p->port;
}

int ui_host_ok(const char *host, unsigned port)
{
	static const char *const names[] = {"127.0.0.1", "localhost", "[::1]"};
	if (!host || strnlen(host, UI_HEADER_MAX) >= UI_HEADER_MAX)
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);
		if (strncasecmp(host, names[i], n) != 0 || host[n] != ':')
			continue;
		const char *d = host + n + 1;
		unsigned v = 0;
		size_t digits = 0;
		for (; *d >= '0' && *d <= '9' && digits < 6; d++, digits++)
			v = v * 10 + (unsigned)(*d - '0');
		/* the port exactly, without leading zeros or anything after it */
		if (*d == 0 && digits > 0 && digits < 6 && v == port &&
		    !(digits > 1 && host[n + 1] == '0'))
			return 1;
	}
	return 0;
}

int ui_origin_ok(const char *origin, unsigned port)
{
	return origin && strncmp(origin, "http://", 7) == 0 && ui_host_ok(origin + 7, port);
}

/* Constant-time equality of a candidate of any length with a secret of
 * UI_TOKEN_HEX characters. */
static int secret_eq(const char *cand, size_t len, const char *secret)
{
	if (len != UI_TOKEN_HEX)
		return 0;
	return sodium_memcmp(cand, secret, UI_TOKEN_HEX) == 0;
}

int ui_policy_token_ok(const struct ui_policy *p, const char *authorization)
{
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return 0;
	const char *t = authorization + 7;
	return secret_eq(t, strnlen(t, UI_TOKEN_HEX + 1), p->token);
}

int ui_policy_session_ok(const struct ui_policy *p, const char *cookie)
{
	static const char name[] = UI_COOKIE_NAME "=";
	const char *c = cookie;
	if (!c || strnlen(c, UI_HEADER_MAX) >= UI_HEADER_MAX)
		return 0;
	/* "a=1; ess_ui=…; b=2": each pair, the name matched exactly */
	while (*c) {
		while (*c == ' ' || *c == ';')
			c++;
		size_t len = strcspn(c, ";");
		if (strncmp(c, name, sizeof(name) - 1) == 0) {
			const char *v = c + sizeof(name) - 1;
			size_t vl = len - (sizeof(name) - 1);
			while (vl && v[vl - 1] == ' ')
				vl--;
			if (secret_eq(v, vl, p->session))
				return 1;
		}
		c += len;
	}
	return 0;
}

int ui_policy_session_cookie(const struct ui_policy *p, char *buf, size_t cap)
{
	/* HttpOnly: no script reads it; SameSite=Strict: no other site sends it */
	int n = snprintf(buf, cap, "%s=%s; Path=/; HttpOnly; SameSite=Strict", UI_COOKIE_NAME,
	                 p->session);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

static int refuse(int status, const char *reason, const char **why)
{
	*why = reason;
	return status;
}

/* A top-level load of the page itself, from anywhere: the kiosk's start
 * page (boards/common/ess-kiosk) is a file:// page, so the browser calls its
 * move to ess-ui cross-site. The page holds no data and cannot be framed
 * (frame-ancestors 'none'); everything it then asks goes to /api/ from its
 * own origin, under every check below. Nothing else may come cross-site. */
static int page_navigation(const struct ui_reqinfo *r)
{
	return (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) &&
	       strcmp(r->url, "/") == 0 && r->sec_fetch_mode &&
	       strcmp(r->sec_fetch_mode, "navigate") == 0 && r->sec_fetch_dest &&
	       strcmp(r->sec_fetch_dest, "document") == 0;
}

int ui_policy_check(const struct ui_policy *p, const struct ui_reqinfo *r, enum ui_auth *auth,
                    const char **why)
{
	*auth = UI_AUTH_NONE;
	*why = NULL;
	if (!r->method || !r->url)
		return refuse(400, "bad request", why);
	int post = strcmp(r->method, "POST") == 0;
	if (!post && strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
		return refuse(405, "method not allowed", why);
	if (strnlen(r->url, UI_URL_MAX + 1) > UI_URL_MAX)
		return refuse(414, "request target too long", why);
	if (r->url[0] != '/')
		return refuse(400, "bad request target", why);
	/* DNS rebinding: a foreign name that resolves to us still says so */
	if (!r->host)
		return refuse(400, "Host is required", why);
	if (!ui_host_ok(r->host, p->port))
		return refuse(421, "not a host this server answers for", why);
	/* cross-site requests: a browser says where the page came from */
	if (r->origin && !ui_origin_ok(r->origin, p->port))
		return refuse(403, "foreign origin", why);
	if (post && !r->origin)
		return refuse(403, "Origin is required", why);
	if (r->sec_fetch_site && strcmp(r->sec_fetch_site, "same-origin") != 0 &&
	    strcmp(r->sec_fetch_site, "none") != 0 && !page_navigation(r))
		return refuse(403, "cross-site request", why);
	if (r->content_length > UI_BODY_MAX)
		return refuse(413, "request body too large", why);
	if (!post && r->content_length > 0)
		return refuse(400, "unexpected body", why);
	if (strncmp(r->url, "/api/", 5) == 0) {
		if (ui_policy_token_ok(p, r->authorization))
			*auth = UI_AUTH_TOKEN;
		else if (ui_policy_session_ok(p, r->cookie))
			*auth = UI_AUTH_SESSION;
		else
			return refuse(401, "token required", why);
	}
	return 0;
}
