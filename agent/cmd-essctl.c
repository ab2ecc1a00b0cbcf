/* essctl: the responder's and technician's command line to essd, a thin
 * client of the control socket (ctl_client.h). Human output by default,
 * --json for scripts (the daemon's answer as it came). */
#include "agent/config.h"
#include "agent/ctl_client.h"
#include "sync/proto.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

#define DEFAULT_CONFIG "/etc/ess/essd.conf"
#define TIMEOUT_MS     15000

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: essctl [-s SOCKET | -c FILE] [--json] COMMAND [ARGS]\n"
	        "  status                      online or offline, last sync, queues, last fix, "
	        "clock, unit\n"
	        "  list                        the incidents on this device\n"
	        "  show ID                     every field of an incident\n"
	        "  ack ID                      acknowledge\n"
	        "  set ID STATUS [--note TEXT] en_route, on_scene, resolved, referred,\n"
	        "                              unable_to_locate, declined\n"
	        "  note ID TEXT                add a note\n"
	        "  sos [TEXT]                  the responder's own emergency\n"
	        "  sync                        sync now\n"
	        "  rejected                    events the server rejected\n"
	        "  lock | unlock               hide everything / show it again\n"
	        "  watch                       print changes as they happen\n"
	        "  -s SOCKET  the control socket; -c FILE  read it from essd's configuration\n"
	        "             (default %s)\n",
	        DEFAULT_CONFIG);
}

static const char *str(const cJSON *o, const char *key, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : def;
}

static double num(const cJSON *o, const char *key, double def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static int flag(const cJSON *o, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static const char *compass(int deg)
{
	static const char *const p[] = {"N", "NE", "E", "SE", "S", "SW", "W", "NW"};
	return p[((deg % 360 + 360) % 360 * 2 + 45) / 90 % 8];
}

static void print_distance(const cJSON *o)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "distance_m");
	if (!cJSON_IsNumber(d)) {
		printf("-");
		return;
	}
	int b = (int)num(o, "bearing_deg", 0);
	if (d->valuedouble >= 1000)
		printf("%.1f km %s (%d°)", d->valuedouble / 1000, compass(b), b);
	else
		printf("%.0f m %s (%d°)", d->valuedouble, compass(b), b);
}

static void print_status(const cJSON *r)
{
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(r, "queue");
	const cJSON *fix = cJSON_GetObjectItemCaseSensitive(r, "last_fix");
	printf("unit          %s\n", str(r, "unit", "-")[0] ? str(r, "unit", "-") : "-");
	printf("sync          %s", flag(r, "online")    ? "online"
	                           : flag(r, "syncing") ? "offline"
	                                                : "stopped");
	printf(", last sync %s\n", str(r, "last_sync", "never"));
	printf("queue         %.0f events, %.0f positions, %.0f rejected\n", num(q, "events", 0),
	       num(q, "positions", 0), num(q, "rejected", 0));
	if (cJSON_IsObject(fix)) {
		printf("last fix      %.5f, %.5f", num(fix, "lat", 0), num(fix, "lon", 0));
		if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(fix, "accuracy_m")))
			printf(" ±%.0f m", num(fix, "accuracy_m", 0));
		printf(" at %s (%.0f s ago)\n", str(fix, "t", "?"), num(fix, "age_s", 0));
	} else {
		printf("last fix      none%s\n",
		       flag(r, "gps_connected") ? "" : " (gpsd not connected)");
	}
	printf("clock         %s\n", str(r, "clock", "?"));
	printf("incidents     %.0f\n", num(r, "incidents", 0));
	if (flag(r, "locked"))
		printf("LOCKED        nothing is shown until the device is unlocked\n");
	if (flag(r, "wiping"))
		printf("WIPING        this device is being wiped\n");
	if (flag(r, "disk_full"))
		printf("DISK FULL     the trail is not recorded; actions are still queued\n");
	printf("version       %s, up %.0f s\n", str(r, "version", "?"), num(r, "uptime_s", 0));
}

static void print_list(const cJSON *r)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r, "incidents"), *it;
	if (!cJSON_GetArraySize(arr)) {
		printf("no incidents\n");
		return;
	}
	printf("%-20s %-3s %-18s %-10s %-17s %s\n", "ID", "PRI", "CATEGORY", "STATE", "STATUS",
	       "DISTANCE");
	cJSON_ArrayForEach(it, arr)
	{
		printf("%-20s %-3.0f %-18s %-10s %-17s ", str(it, "id", "?"),
		       num(it, "priority", 0), str(it, "category", "?"), str(it, "state", "?"),
		       str(it, "status", "?"));
		print_distance(it);
		if (flag(it, "silent"))
			printf("  SILENT");
		printf("\n");
	}
}

static void print_value(const cJSON *v, int indent);

static void print_field(const char *name, const cJSON *v, int indent)
{
	printf("%*s%s:", indent, "", name);
	if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
		printf("\n");
		print_value(v, indent + 2);
	} else {
		printf(" ");
		print_value(v, 0);
	}
}

static void print_value(const cJSON *v, int indent)
{
	const cJSON *it;
	char idx[16];
	int i = 0;
	if (cJSON_IsObject(v)) {
		cJSON_ArrayForEach(it, v) print_field(it->string, it, indent);
	} else if (cJSON_IsArray(v)) {
		cJSON_ArrayForEach(it, v)
		{
			snprintf(idx, sizeof(idx), "[%d]", i++);
			print_field(idx, it, indent);
		}
	} else if (cJSON_IsString(v)) {
		printf("%s\n", v->valuestring);
	} else if (cJSON_IsBool(v)) {
		printf("%s\n", cJSON_IsTrue(v) ? "yes" : "no");
	} else if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (d == floor(d) && fabs(d) < 1e15)
			printf("%.0f\n", d);
		else
			printf("%.7g\n", d);
	} else {
		printf("-\n");
	}
}

static void print_show(const cJSON *r)
{
	const cJSON *inc = cJSON_GetObjectItemCaseSensitive(r, "incident");
	const cJSON *loc = cJSON_GetObjectItemCaseSensitive(r, "local");
	if (flag(loc, "silent"))
		printf("!! SILENT INCIDENT: the reporter cannot use their voice.\n"
		       "!! Do NOT call back. Approach quietly. Text only. No audible alert.\n\n");
	printf("status:       %s (dispatch: %s, version %.0f)\n", str(loc, "status", "?"),
	       str(loc, "state", "?"), num(loc, "version", 0));
	printf("distance:     ");
	print_distance(loc);
	printf("\n\n");
	print_value(inc, 0);
}

static void print_queued(const cJSON *r)
{
	if (flag(r, "queued"))
		printf("queued: event %.0f (%s)\n", num(r, "seq", 0), str(r, "event_id", "?"));
	else
		printf("no change: already in that status\n");
}

static void print_rejected(const cJSON *r)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r, "rejected"), *it;
	if (!cJSON_GetArraySize(arr)) {
		printf("no rejected events\n");
		return;
	}
	cJSON_ArrayForEach(it, arr)
	{
		const cJSON *ev = cJSON_GetObjectItemCaseSensitive(it, "event");
		printf("event %.0f %s", num(it, "seq", 0), str(it, "type", "?"));
		if (str(ev, "incident_id", NULL))
			printf(" incident %s", str(ev, "incident_id", ""));
		if (str(ev, "status", NULL))
			printf(" status %s", str(ev, "status", ""));
		printf(" rejected %s: %s\n", str(it, "rejected_at", "?"), str(it, "reason", ""));
	}
}

static int socket_path(const char *sock, const char *conf, char *out, size_t cap)
{
	if (sock) {
		snprintf(out, cap, "%s", sock);
		return 0;
	}
	struct config cfg;
	int rc = config_load(conf ? conf : DEFAULT_CONFIG, &cfg, NULL, NULL);
	if (rc < 0) {
		if (conf) {
			fprintf(stderr, "essctl: %s: cannot use it (essd check -c %s says why)\n",
			        conf, conf);
			return rc;
		}
		config_defaults(&cfg); /* no config here: the default socket */
	}
	snprintf(out, cap, "%s", cfg.control.socket);
	return 0;
}

static int watch(struct ctl_conn *c, int json)
{
	cJSON *ans = NULL, *ev;
	int rc = ctl_conn_call(c, "subscribe", NULL, TIMEOUT_MS, &ans);
	cJSON_Delete(ans);
	if (rc < 0)
		return rc;
	for (;;) {
		rc = ctl_conn_next_event(c, 3600 * 1000, &ev);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc < 0)
			return rc;
		char *s = cJSON_PrintUnformatted(json ? ev : cJSON_GetObjectItem(ev, "data"));
		if (json)
			printf("%s\n", s ? s : "{}");
		else
			printf("%-10s %s\n", str(ev, "event", "?"), s ? s : "{}");
		fflush(stdout);
		free(s);
		cJSON_Delete(ev);
	}
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
	    {"socket", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},         {"note", required_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
	const char *sock = NULL, *conf = NULL, *note = NULL;
	int json = 0, ch;
	while ((ch = getopt_long(argc, argv, "+s:c:jn:h", longs, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'n':
			note = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	/* options may also follow the command (set ID STATUS --note TEXT) */
	int nargs = 0;
	char *args[4];
	while (optind < argc) {
		if (strcmp(argv[optind], "--note") == 0 && optind + 1 < argc) {
			note = argv[optind + 1];
			optind += 2;
		} else if (strcmp(argv[optind], "--json") == 0) {
			json = 1;
			optind++;
		} else if (nargs < 4) {
			args[nargs++] = argv[optind++];
		} else {
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (nargs < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = args[0];
	cJSON *params = cJSON_CreateObject();
	const char *method = cmd;
	int want = 1, maxw = 1;
	if (!strcmp(cmd, "show") || !strcmp(cmd, "ack")) {
		want = maxw = 2;
	} else if (!strcmp(cmd, "set") || !strcmp(cmd, "note")) {
		want = maxw = 3;
	} else if (!strcmp(cmd, "sos")) {
		maxw = 2;
	} else if (strcmp(cmd, "status") && strcmp(cmd, "list") && strcmp(cmd, "sync") &&
	           strcmp(cmd, "rejected") && strcmp(cmd, "lock") && strcmp(cmd, "unlock") &&
	           strcmp(cmd, "watch")) {
		fprintf(stderr, "essctl: unknown command %s\n", cmd);
		usage(stderr);
		cJSON_Delete(params);
		return EXIT_USAGE;
	}
	if (nargs < want || nargs > maxw || (note && strcmp(cmd, "set"))) {
		usage(stderr);
		cJSON_Delete(params);
		return EXIT_USAGE;
	}
	if (nargs >= 2 && strcmp(cmd, "sos"))
		cJSON_AddStringToObject(params, "id", args[1]);
	if (!strcmp(cmd, "set"))
		cJSON_AddStringToObject(params, "status", args[2]);
	if (!strcmp(cmd, "set") && note)
		cJSON_AddStringToObject(params, "text", note);
	if (!strcmp(cmd, "note"))
		cJSON_AddStringToObject(params, "text", args[2]);
	if (!strcmp(cmd, "sos") && nargs == 2)
		cJSON_AddStringToObject(params, "text", args[1]);

	char path[CONFIG_SOCKET_SIZE + 1], err[512];
	struct ctl_conn *c;
	if (socket_path(sock, conf, path, sizeof(path)) < 0) {
		cJSON_Delete(params);
		return EXIT_USAGE;
	}
	int rc = ctl_conn_open(path, &c, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "essctl: %s\n", err);
		cJSON_Delete(params);
		return EXIT_CONNECT;
	}
	if (!strcmp(cmd, "watch")) {
		cJSON_Delete(params);
		rc = watch(c, json);
		ctl_conn_close(c);
		fprintf(stderr, "essctl: watch ended: %s\n", strerror(-rc));
		return EXIT_FAIL;
	}
	cJSON *ans = NULL;
	rc = ctl_conn_call(c, method, params, TIMEOUT_MS, &ans);
	ctl_conn_close(c);
	if (rc < 0) {
		fprintf(stderr, "essctl: %s: %s\n", method,
		        rc == -ETIMEDOUT ? "no answer from essd" : strerror(-rc));
		return EXIT_FAIL;
	}
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(ans, "result");
	int ok = flag(ans, "ok");
	if (json) {
		char *s = cJSON_Print(ok ? result : cJSON_GetObjectItemCaseSensitive(ans, "error"));
		printf("%s\n", s ? s : "{}");
		free(s);
	} else if (!ok) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(ans, "error");
		fprintf(stderr, "essctl: %s: %s (%s)\n", cmd, str(e, "message", "failed"),
		        str(e, "code", "failed"));
	} else if (!strcmp(cmd, "status")) {
		print_status(result);
	} else if (!strcmp(cmd, "list")) {
		print_list(result);
	} else if (!strcmp(cmd, "show")) {
		print_show(result);
	} else if (!strcmp(cmd, "ack") || !strcmp(cmd, "set") || !strcmp(cmd, "note") ||
	           !strcmp(cmd, "sos")) {
		print_queued(result);
	} else if (!strcmp(cmd, "rejected")) {
		print_rejected(result);
	} else if (!strcmp(cmd, "sync")) {
		printf("sync started (%s)\n", flag(result, "online") ? "online" : "offline");
	} else {
		printf("%s\n", flag(result, "locked") ? "locked" : "unlocked");
	}
	cJSON_Delete(ans);
	return ok ? EXIT_OK : EXIT_FAIL;
}
