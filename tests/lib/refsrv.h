/* The reference server (ess-refserver) as test equipment, shared by the
 * integration tests and the benchmarks: started on 127.0.0.1:0 with a port
 * file, stopped by pid, driven through its dispatcher API
 * (docs/refserver.md) with blocking libcurl calls.
 *
 * The program is $ESS_REFSERVER_CMD (given only --port-file) or
 * $ESS_BUILD/ess-refserver (default build/host).
 *
 * Returns: 0 or a negative errno, unless a prototype says otherwise. */
#ifndef ESS_TESTS_REFSRV_H
#define ESS_TESTS_REFSRV_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#define REFSRV_ADMIN_TOKEN "tests-refsrv-admin-token"

struct refsrv {
	pid_t pid; /* 0 when not running */
	int port;
	char base[128];    /* http://127.0.0.1:PORT (admin API at its root) */
	char api_url[160]; /* base + "/api": the devices' server URL */
};

/* The shell command that runs the server with its port written to
 * port_file. -ENOENT when there is no server program. */
int refsrv_command(char *cmd, size_t cap, const char *port_file);

/* Starts the server with its port file in dir; its stderr (one line per
 * request) goes to log_path, or stays this process's when NULL. Waits
 * (at most 10 s) until it listens. */
int refsrv_start(struct refsrv *s, const char *dir, const char *log_path);

/* SIGTERM by pid, then waits. Returns the exit status (0: a clean stop),
 * -1 when it died of a signal, 0 when it was not running. */
int refsrv_stop(struct refsrv *s);

/* One dispatcher API call with the bearer token: method "GET", "POST",
 * "DELETE", …; json (may be NULL) is the body. *status receives the HTTP
 * status (0 when the transport failed). Returns the parsed answer (NULL
 * when empty or not JSON); the caller cJSON_Delete()s it. */
cJSON *refsrv_admin(const struct refsrv *s, const char *method, const char *path, const char *json,
                    long *status);

/* refsrv_admin's call, to any reference server: base is http://HOST:PORT,
 * token its admin token, timeout_s bounds the whole call, nosignal sets
 * CURLOPT_NOSIGNAL. Returns the answer's body (malloc'd, NUL-terminated;
 * NULL when empty or when it could not be held), *status as refsrv_admin's;
 * prints nothing. (tests/lib/essdenv's ee_admin is this too.) */
char *refsrv_admin_body(const char *base, const char *token, const char *method, const char *path,
                        const char *json, long timeout_s, int nosignal, long *status);

/* POST /admin/tokens for unit with the given token id. */
int refsrv_token(const struct refsrv *s, const char *unit, const char *token);

/* The first enrolled device's id (GET /admin/devices). */
int refsrv_device_id(const struct refsrv *s, char *out, size_t cap);

#endif
