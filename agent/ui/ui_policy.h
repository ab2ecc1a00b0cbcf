/* The touch UI's request policy: who may talk to ess-ui and how much. Pure
 * functions, no HTTP library, so the rules are unit-tested on their own.
 *
 * ess-ui listens on loopback only. A page on another site, or a site whose
 * name was made to resolve to 127.0.0.1 (DNS rebinding), must not drive
 * it: every request needs a loopback Host naming our port, an Origin (when
 * present; always for POST) that is this very origin, and for the API the
 * per-boot token (Authorization: Bearer) or the session cookie that a
 * token exchange (POST /api/login) set. Everything else is refused before
 * a handler runs.
 *
 * Returns: 0 or a negative errno, unless a prototype says otherwise. */
#ifndef ESS_UI_POLICY_H
#define ESS_UI_POLICY_H

#include <stddef.h>

#define UI_TOKEN_BYTES 32 /* random bytes; the file holds them as hex */
#define UI_TOKEN_HEX   (UI_TOKEN_BYTES * 2)
#define UI_URL_MAX     256   /* request target, query included */
#define UI_BODY_MAX    16384 /* a note of PROTO_TEXT_MAX bytes fits, JSON-escaped */
#define UI_HEADER_MAX  4096  /* bytes of one header value we look at */
#define UI_COOKIE_NAME "ess_ui"

/* The secrets, in libsodium guarded memory (ui_policy_open). */
struct ui_policy;

/* Makes a fresh token and session value. The token is written as hex to
 * token_path atomically (never following a symlink), then given mode
 * (0600 or 0640: the kiosk's group may read it). */
int ui_policy_open(const char *token_path, unsigned mode, unsigned port, struct ui_policy **out,
                   char *err, size_t errlen);
/* Same, with a given token (tests); no file. token: UI_TOKEN_HEX hex chars. */
int ui_policy_open_token(const char *token, unsigned port, struct ui_policy **out);
void ui_policy_close(struct ui_policy *p); /* NULL is fine */
unsigned ui_policy_port(const struct ui_policy *p);

/* What the policy looks at in a request (NULL: header absent). */
struct ui_reqinfo {
	const char *method;
	const char *url; /* path and query */
	const char *host;
	const char *origin;
	const char *sec_fetch_site;
	const char *sec_fetch_mode; /* "navigate" for a top-level page load */
	const char *sec_fetch_dest; /* "document" for a top-level page load */
	const char *authorization;
	const char *cookie;
	long long content_length; /* -1: not given */
};

enum ui_auth { UI_AUTH_NONE = 0, UI_AUTH_SESSION, UI_AUTH_TOKEN };

/* Decides whether the request may proceed. On refusal returns the HTTP
 * status (400, 401, 403, 405, 413, 414, 421) and sets *why to a short
 * reason for the answer body (no secret in it); 0 when it may proceed.
 * *auth says how it proved itself (for the API). */
int ui_policy_check(const struct ui_policy *p, const struct ui_reqinfo *r, enum ui_auth *auth,
                    const char **why);

/* 1 when host is a loopback name with our port: 127.0.0.1:P, localhost:P,
 * [::1]:P (exactly; case-insensitive name). */
int ui_host_ok(const char *host, unsigned port);
/* 1 when origin is "http://" + a host that ui_host_ok accepts. */
int ui_origin_ok(const char *origin, unsigned port);
/* 1 when the Bearer token in an Authorization header is the token
 * (constant time). */
int ui_policy_token_ok(const struct ui_policy *p, const char *authorization);
/* 1 when the Cookie header carries our session value (constant time). */
int ui_policy_session_ok(const struct ui_policy *p, const char *cookie);
/* The Set-Cookie value for a successful token exchange, into buf. */
int ui_policy_session_cookie(const struct ui_policy *p, char *buf, size_t cap);

/* Headers every answer carries: a strict Content-Security-Policy (only
 * this origin, no inline script or style, no frames), no sniffing, no
 * referrer, no framing. A NULL-terminated list of name/value pairs. */
struct ui_header {
	const char *name, *value;
};
extern const struct ui_header ui_security_headers[];

#endif
