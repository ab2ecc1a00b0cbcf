/* essd as test equipment for the fault tests (tests/integration/itest_chaos_*.c):
 * the real daemon, the real reference server (on a fixed loopback port, its
 * state in a file so that it survives being killed), optionally the
 * link-emulating proxy between them, driven through the control socket and
 * the dispatcher API; and a ledger of the responders' actions checked
 * against the server's record.
 *
 * Every child runs in its own process group (tests/lib/proc.h: tp_spawn)
 * and is stopped by that pid with tp_stop (never by name): ee_close()
 * stops whatever is still running, also after a failed assertion (call it
 * from the teardown).
 *
 * Programs come from $ESS_BUILD (default build/host). Functions return 0 or
 * a negative errno unless their comment says otherwise. */
#ifndef ESS_TESTS_ESSDENV_H
#define ESS_TESTS_ESSDENV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#define EE_UNIT  "NST-CHAOS-01"
#define EE_ADMIN "tests-essdenv-admin-token"

struct essenv {
	char *dir; /* private temporary directory, removed by ee_close */
	char build[400];
	pid_t srv, essd, proxy;
	int srv_port;              /* the server's fixed port */
	int proxy_port, ctl_port;  /* the proxy's, when running */
	int gps_port;              /* nothing listens there unless a test serves it */
	char conf[600], sock[300]; /* essd's configuration file and control socket */
	char device_id[160];
	int ntok;
	int essd_starts, srv_starts;
};

/* Makes the directory and picks ports. tag names the temporary directory. */
int ee_open(struct essenv *e, const char *tag);
/* Stops every child by pid (SIGKILL), removes the directory. */
void ee_close(struct essenv *e);

/* The reference server on srv_port with its database in dir (kept across
 * restarts); waits until it answers. */
int ee_srv_start(struct essenv *e);
/* One dispatcher API call (docs/refserver.md). *code gets the HTTP status
 * (0: no answer); returns the parsed JSON answer or NULL. */
cJSON *ee_admin(struct essenv *e, const char *method, const char *path, const char *json,
                long *code);
/* POST /admin/faults with json; 0 when the server took it. */
int ee_faults(struct essenv *e, const char *json);

/* The link proxy between essd and the server (call before ee_write_conf so
 * that essd talks through it); extra: more options (NULL-terminated) such as
 * "--blackout-cycle", "2:4". */
int ee_proxy_start(struct essenv *e, char *const *extra);
/* One control command; the answer line in ans (may be NULL). 0 when "ok". */
int ee_proxy_cmd(struct essenv *e, const char *line, char *ans, size_t cap);

/* Writes essd's configuration: the server through the proxy when it runs;
 * extra (may be NULL) is appended verbatim (more sections or keys). */
int ee_write_conf(struct essenv *e, const char *extra);
/* A token, `essd provision`, the device id read back. */
int ee_provision(struct essenv *e);
/* Starts essd run without waiting; the pid is e->essd. */
int ee_essd_spawn(struct essenv *e);
/* Waits (at most wait_ms) until the control socket answers "status";
 * -ECHILD when essd has ended (not reaped: e->essd stays for ee_stop). */
int ee_essd_wait(struct essenv *e, int wait_ms);
int ee_essd_start(struct essenv *e);

/* A control-socket call; the whole answer or NULL (no connection, no
 * answer within timeout_ms). */
cJSON *ee_call(struct essenv *e, const char *method, const char *params, int timeout_ms);
/* The same on the socket at sock (for tests that start essd themselves). */
cJSON *ee_ctl_call(const char *sock, const char *method, const char *params, int timeout_ms);
/* status.A(.B) as a number (true: 1); -1 when absent or not reachable. */
double ee_status_num(struct essenv *e, const char *a, const char *b);
double ee_ctl_status_num(const char *sock, const char *a, const char *b, int timeout_ms);
/* Waits until the outbox is empty (kicking a sync now and then). */
int ee_wait_drained(struct essenv *e, int wait_ms);
/* An assigned incident for the unit, waited for on the device, acked. */
int ee_incident(struct essenv *e, const char *id);

struct store_fix;
/* With essd stopped: every fix still in essd's store (not uploaded yet),
 * read through the store's own API, given to cb in time order. */
int ee_store_fixes(struct essenv *e, int (*cb)(void *arg, const struct store_fix *f, size_t n),
                   void *arg);

/* ---- the ledger: every action the test tried, and what essd answered ---- */

struct ee_action {
	int64_t seq;       /* 0: not acknowledged (essd died or refused) */
	char event_id[37]; /* when acknowledged */
	int accepted;      /* times the server accepted it (filled by the check) */
};

struct ee_ledger {
	char prefix[32]; /* each action's text is "<prefix> <index>" */
	struct ee_action *a;
	size_t n, cap;
	int64_t last_seq;
	int seq_back; /* acknowledged seqs that did not grow */
};

struct ee_result {
	size_t tried, acked;
	size_t lost;     /* acknowledged, never accepted by the server */
	size_t doubled;  /* accepted more than once (or two events for one action) */
	size_t invented; /* accepted, but not an action tried, or not the one acknowledged */
	size_t out_of_order;
	size_t accepted;
};

void ee_ledger_init(struct ee_ledger *l, const char *prefix);
void ee_ledger_free(struct ee_ledger *l);
/* One action: a note on incident (or an SOS when incident is NULL) with
 * the next text, through the control socket (timeout_ms for the answer).
 * Returns 1 when acknowledged, 0 when refused or cut off, -1 when essd
 * could not be reached (nothing sent, not in the ledger). An answer that
 * came with a refusal code is copied into code (may be NULL). */
int ee_act(struct essenv *e, struct ee_ledger *l, const char *incident, int timeout_ms, char *code,
           size_t codecap);
/* The same through the essctl program. */
int ee_act_essctl(struct essenv *e, struct ee_ledger *l, const char *incident);
/* Compares the server's record of the device's events with the ledger. */
int ee_ledger_check(struct essenv *e, struct ee_ledger *l, struct ee_result *r);
/* "tried=… acked=… accepted=… lost=… doubled=… invented=… out_of_order=…" */
void ee_result_str(const struct ee_result *r, char *out, size_t cap);

#endif
