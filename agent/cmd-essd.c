/* essd: the ESS field agent. This file only parses the command line and
 * wires modules together; every concern lives in its own module. */
#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/log.h"
#include "agent/selftest.h"
#include "agent/store.h"
#include "agent/tokenfile.h"
#include "hal/keystore.h"
#include "sync/proto.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
	fprintf(f, "usage: essd --version\n"
	           "       essd run -c FILE              the daemon, in the foreground\n"
	           "       essd provision -c FILE [--token TOKEN | --token-file PATH] [--force]\n"
	           "                                     make the device key and enroll; a token\n"
	           "                                     file is deleted after success\n"
	           "       essd selftest -c FILE [--json] [--gps-timeout S] [--no-gps]\n"
	           "                              [--panic-timeout S]\n"
	           "                     [--min-free-mb N]\n"
	           "                                     check the device; exit 1 on a failure\n"
	           "       essd check -c FILE [--dump]   validate the configuration\n"
	           "       essd inspect -c FILE          store health (no personal data)\n"
	           "       essd wipe -c FILE --yes       crypto-shred the local store\n");
}

struct opts {
	const char *config;
	const char *token;
	const char *token_file;
	int dump;
	int yes;
	int force;
	int json;
	int no_gps;
	int gps_timeout_s;
	int min_free_mb;
	int panic_timeout_s;
};

/* A numeric option: the configuration's strict integer syntax, within
 * [lo, hi] (each option's bounds are in its case below). */
static int opt_int(const char *s, long long lo, long long hi, int *out)
{
	long long v;
	if (config_parse_int(s, &v) < 0 || v < lo || v > hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {{"config", required_argument, NULL, 'c'},
	                                      {"dump", no_argument, NULL, 'd'},
	                                      {"yes", no_argument, NULL, 'y'},
	                                      {"token", required_argument, NULL, 't'},
	                                      {"force", no_argument, NULL, 'f'},
	                                      {"token-file", required_argument, NULL, 'T'},
	                                      {"json", no_argument, NULL, 'j'},
	                                      {"no-gps", no_argument, NULL, 'G'},
	                                      {"gps-timeout", required_argument, NULL, 'g'},
	                                      {"min-free-mb", required_argument, NULL, 'm'},
	                                      {"panic-timeout", required_argument, NULL, 'P'},
	                                      {NULL, 0, NULL, 0}};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", longs, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'd':
			o->dump = 1;
			break;
		case 'y':
			o->yes = 1;
			break;
		case 't':
			o->token = optarg;
			break;
		case 'f':
			o->force = 1;
			break;
		case 'T':
			o->token_file = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'G':
			o->no_gps = 1;
			break;
		case 'g':
			if (opt_int(optarg, 1, 3600, &o->gps_timeout_s) < 0)
				return -EINVAL;
			break;
		case 'm':
			if (opt_int(optarg, 1, 1048576, &o->min_free_mb) < 0)
				return -EINVAL;
			break;
		case 'P':
			if (opt_int(optarg, 1, 600, &o->panic_timeout_s) < 0)
				return -EINVAL;
			break;
		default:
			return -EINVAL;
		}
	}
	if (optind != argc || !o->config)
		return -EINVAL;
	return 0;
}

static void print_config_error(void *arg, const char *file, unsigned line, const char *msg)
{
	int *count = arg;
	(*count)++;
	if (line)
		fprintf(stderr, "%s:%u: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

static int load_config(const char *path, struct config *cfg)
{
	int errors = 0;
	int rc = config_load(path, cfg, print_config_error, &errors);
	if (rc < 0) {
		fprintf(stderr, "%s: %d error%s, refusing to use it\n", path, errors ? errors : 1,
		        errors == 1 ? "" : "s");
		return rc;
	}
	log_open("essd", cfg->log.target, cfg->log.level);
	return 0;
}

static int open_store(const struct config *cfg, struct hal_keystore **ks, struct store **s)
{
	char err[512];
	int rc = hal_keystore_open(config_keystore_names[cfg->keystore.backend],
	                           cfg->keystore.key_file, ks, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "essd: keystore: %s\n", err);
		return rc;
	}
	struct store_params p = {.dir = cfg->store.dir, .keystore = *ks, .create = 0};
	int flags = 0;
	rc = store_open(&p, s, &flags, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "essd: store: %s\n", err);
		hal_keystore_close(*ks);
		*ks = NULL;
		return rc;
	}
	if (flags & STORE_OPENED_RECOVERED)
		fprintf(stderr,
		        "essd: the database failed its integrity check and was moved aside; "
		        "a new one was started\n");
	return 0;
}

static int cmd_check(const struct opts *o)
{
	struct config cfg;
	if (load_config(o->config, &cfg) < 0)
		return EXIT_USAGE;
	if (o->dump && config_dump(&cfg, stdout) < 0)
		return EXIT_FAIL;
	if (!o->dump)
		printf("%s: ok\n", o->config);
	return EXIT_OK;
}

static int cmd_inspect(const struct opts *o)
{
	struct config cfg;
	if (load_config(o->config, &cfg) < 0)
		return EXIT_USAGE;
	struct hal_keystore *ks;
	struct store *s;
	if (open_store(&cfg, &ks, &s) < 0)
		return EXIT_FAIL;
	int64_t inc = 0, out = 0, rej = 0, pos = 0, quar = 0;
	unsigned char pk[32];
	int rc = store_incident_count(s, &inc);
	if (rc == 0)
		rc = store_outbox_count(s, &out);
	if (rc == 0)
		rc = store_rejected_count(s, &rej);
	if (rc == 0)
		rc = store_pos_count(s, &pos);
	if (rc == 0)
		rc = store_quarantine_count(s, &quar);
	if (rc == 0) {
		printf("store            %s\n", cfg.store.dir);
		printf("device key       %s\n",
		       store_device_pubkey(s, pk) == 0 ? "present" : "none");
		printf("incidents        %lld\n", (long long)inc);
		printf("queued events    %lld\n", (long long)out);
		printf("rejected events  %lld\n", (long long)rej);
		printf("stored fixes     %lld\n", (long long)pos);
		printf("quarantined rows %lld%s\n", (long long)quar,
		       quar ? "  (damaged or tampered)" : "");
		printf("bytes on disk    %lld\n", (long long)store_disk_bytes(s));
	} else {
		fprintf(stderr, "essd: reading the store: %s\n", strerror(-rc));
	}
	store_close(s);
	hal_keystore_close(ks);
	return rc == 0 ? EXIT_OK : EXIT_FAIL;
}

static int cmd_wipe(const struct opts *o)
{
	if (!o->yes) {
		fprintf(stderr, "essd wipe destroys every key and all local data; add --yes\n");
		return EXIT_USAGE;
	}
	struct config cfg;
	if (load_config(o->config, &cfg) < 0)
		return EXIT_USAGE;
	struct hal_keystore *ks;
	struct store *s;
	if (open_store(&cfg, &ks, &s) < 0)
		return EXIT_FAIL;
	char err[512];
	int rc = store_wipe(s, err, sizeof(err));
	hal_keystore_close(ks);
	if (rc < 0) {
		fprintf(stderr, "essd: wipe: %s\n", err);
		return EXIT_FAIL;
	}
	printf("wiped: keys destroyed, database removed\n");
	return EXIT_OK;
}

static int cmd_run(const struct opts *o)
{
	char err[512] = "";
	int wiped = 0;
	int rc = daemon_run(o->config, &wiped, err, sizeof(err));
	if (rc < 0) {
		log_errx("%s", err);
		return rc == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
	}
	return EXIT_OK;
}

/* Where the token comes from: --token, --token-file, the file named by
 * server.enroll_token_file when it exists (first boot), or the config's
 * server.enroll_token (daemon_provision's default). */
static int cmd_provision(const struct opts *o)
{
	char err[512] = "", unit[PROTO_ID_MAX + 1] = "", id[PROTO_ID_MAX + 1] = "";
	const char *file = o->token ? NULL : o->token_file;
	if (o->token && o->token_file) {
		fprintf(stderr, "essd: provision: give --token or --token-file, not both\n");
		return EXIT_USAGE;
	}
	if (!o->token && !file) {
		struct config cfg;
		if (load_config(o->config, &cfg) < 0)
			return EXIT_USAGE;
		explicit_bzero(cfg.server.enroll_token, sizeof(cfg.server.enroll_token));
		static char cfg_file[CONFIG_PATH_SIZE];
		memcpy(cfg_file, cfg.server.enroll_token_file, sizeof(cfg_file));
		if (cfg_file[0] && access(cfg_file, F_OK) == 0)
			file = cfg_file;
	}
	char *token = NULL;
	if (file && tokenfile_read(file, &token, err, sizeof(err)) < 0) {
		fprintf(stderr, "essd: provision: %s\n", err);
		return EXIT_FAIL;
	}
	struct daemon_provision_info info = {.token = token ? token : o->token, .force = o->force};
	int rc = daemon_provision(o->config, &info, unit, id, err, sizeof(err));
	tokenfile_free(token);
	if (rc < 0) {
		/* the token file stays: the next boot (or the technician) tries again */
		fprintf(stderr, "essd: provision: %s\n", err);
		return rc == -EEXIST || rc == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
	}
	printf("provisioned: device %s, unit %s\n", id, unit);
	if (file && tokenfile_consume(file, err, sizeof(err)) < 0)
		/* enrolled all the same; a copy the first-boot unit was handed
		 * (systemd credential) is read-only, and the unit deletes the
		 * original itself */
		fprintf(stderr, "essd: provision: note: %s\n", err);
	else if (file)
		printf("token file %s deleted\n", file);
	return EXIT_OK;
}

static int cmd_selftest(const struct opts *o)
{
	/* the table is the output; only errors from modules go to stderr */
	log_open("essd", LOG_TARGET_STDERR, LOG_LEVEL_ERR);
	struct selftest_params p = {.config_path = o->config,
	                            .gps_timeout_s = o->gps_timeout_s,
	                            .min_free_bytes = (int64_t)o->min_free_mb << 20,
	                            .skip_gps = o->no_gps,
	                            .panic_timeout_s = o->panic_timeout_s};
	struct selftest_report r;
	int failed = selftest_run(&p, &r);
	if (failed < 0) {
		fprintf(stderr, "essd: selftest: %s\n", strerror(-failed));
		return EXIT_FAIL;
	}
	if (o->json) {
		if (selftest_print_json(&r, stdout) < 0)
			return EXIT_FAIL;
	} else {
		selftest_print_text(&r, stdout);
	}
	fflush(stdout);
	return failed ? EXIT_FAIL : EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("essd %s\n", ESS_VERSION);
		return EXIT_OK;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	struct opts o = {0};
	if (parse_opts(argc - 1, argv + 1, &o) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "run") == 0)
		return cmd_run(&o);
	if (strcmp(cmd, "provision") == 0)
		return cmd_provision(&o);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(&o);
	if (strcmp(cmd, "selftest") == 0)
		return cmd_selftest(&o);
	if (strcmp(cmd, "inspect") == 0)
		return cmd_inspect(&o);
	if (strcmp(cmd, "wipe") == 0)
		return cmd_wipe(&o);
	usage(stderr);
	return EXIT_USAGE;
}
