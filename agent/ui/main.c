/* ess-ui: the responder's touch screen. A small web server on loopback for
 * the kiosk browser on the device; it talks to essd only through the
 * control socket and never touches the store (docs/ui.md). */
#include "agent/config.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/ui/ui_ctl.h"
#include "agent/ui/ui_http.h"
#include "agent/ui/ui_policy.h"
#include "hal/fsutil.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONFIG     "/etc/ess/essd.conf"
#define DEFAULT_LISTEN     "127.0.0.1:8088"
#define DEFAULT_TOKEN_FILE "/run/ess-ui/token"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: ess-ui [-s SOCKET | -c FILE] [--listen ADDR] [--token-file PATH]\n"
	        "              [--token-mode 0600|0640] [--port-file PATH] [-v]\n"
	        "  -s SOCKET          essd's control socket (or read it from essd's -c FILE,\n"
	        "                     default %s)\n"
	        "  --listen ADDR      loopback only: 127.0.0.1:PORT or [::1]:PORT (default %s;\n"
	        "                     port 0: any free port)\n"
	        "  --token-file PATH  where the per-boot token is written (default %s)\n"
	        "  --token-mode MODE  0600 (default) or 0640 for the kiosk's group\n"
	        "  --port-file PATH   write the port listened on (tests)\n"
	        "  -v                 debug logging\n",
	        DEFAULT_CONFIG, DEFAULT_LISTEN, DEFAULT_TOKEN_FILE);
}

struct app {
	struct loop *l;
	struct ui_http *http;
	struct ui_ctl *ctl;
};

static void on_event(void *arg, const char *name, const cJSON *data)
{
	struct app *a = arg;
	ui_http_publish(a->http, name, data);
}

static void on_state(void *arg, int connected)
{
	struct app *a = arg;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddBoolToObject(d, "connected", connected);
	ui_http_publish(a->http, "essd", d);
	cJSON_Delete(d);
}

static void on_signal(struct loop *l, int signo, void *arg)
{
	(void)arg;
	log_info("ui: signal %d, stopping", signo);
	loop_stop(l);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"socket", required_argument, 0, 's'},
	                                     {"config", required_argument, 0, 'c'},
	                                     {"listen", required_argument, 0, 'l'},
	                                     {"token-file", required_argument, 0, 't'},
	                                     {"token-mode", required_argument, 0, 'm'},
	                                     {"port-file", required_argument, 0, 'p'},
	                                     {"verbose", no_argument, 0, 'v'},
	                                     {"help", no_argument, 0, 'h'},
	                                     {0, 0, 0, 0}};
	const char *sock = NULL, *conf = NULL, *listen = DEFAULT_LISTEN;
	const char *token_file = DEFAULT_TOKEN_FILE, *port_file = NULL;
	unsigned mode = 0600;
	int verbose = 0, o;
	char err[512];
	while ((o = getopt_long(argc, argv, "s:c:vh", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "0600") == 0 || strcmp(optarg, "600") == 0) {
				mode = 0600;
			} else if (strcmp(optarg, "0640") == 0 || strcmp(optarg, "640") == 0) {
				mode = 0640;
			} else {
				fprintf(stderr, "ess-ui: --token-mode: 0600 or 0640\n");
				return 2;
			}
			break;
		case 'p':
			port_file = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (sock && conf)) {
		usage(stderr);
		return 2;
	}
	log_open("ess-ui", LOG_TARGET_STDERR, verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	static struct config cfg;
	if (!sock) {
		if (config_load(conf ? conf : DEFAULT_CONFIG, &cfg, config_error_log, NULL) < 0)
			return 1;
		sock = cfg.control.socket;
	}
	if (!ui_http_listen_is_loopback(listen)) {
		log_errx("--listen %s: loopback addresses only (127.0.0.0/8, [::1])", listen);
		return 2;
	}
	struct app a = {0};
	struct ui_policy *pol = NULL;
	int rc = 1;
	if (loop_open(&a.l) < 0) {
		log_errx("cannot create the event loop");
		return 1;
	}
	if (ui_http_start(a.l, listen, &a.http, err, sizeof(err)) < 0) {
		log_errx("%s", err);
		goto out;
	}
	unsigned port = ui_http_port(a.http);
	if (ui_policy_open(token_file, mode, port, &pol, err, sizeof(err)) < 0) {
		log_errx("token: %s", err);
		goto out;
	}
	if (ui_ctl_open(a.l, sock, on_event, on_state, &a, &a.ctl) < 0) {
		log_errx("control socket %s: bad path", sock);
		goto out;
	}
	ui_http_set(a.http, pol, a.ctl);
	if (port_file) {
		char p[16];
		int n = snprintf(p, sizeof(p), "%u\n", port);
		if (fsu_write_private(port_file, p, (size_t)n, 0, err, sizeof(err)) < 0) {
			log_errx("%s", err);
			goto out;
		}
	}
	loop_signal_add(a.l, SIGTERM, on_signal, NULL);
	loop_signal_add(a.l, SIGINT, on_signal, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* the port, not the token: the kiosk reads the token from its file */
	log_info("ui: serving port %u on loopback, token in %s, essd at %s", port, token_file,
	         sock);
	rc = loop_run(a.l) < 0 ? 1 : 0;
out:
	ui_ctl_close(a.ctl); /* answers every waiting request first */
	ui_http_stop(a.http);
	ui_policy_close(pol);
	loop_close(a.l);
	log_close();
	return rc;
}
