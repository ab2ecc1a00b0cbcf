/* The baseline for essd's memory and start-up figures (bench_essd): a
 * program that links the libraries essd links (SQLite, libcurl, libsodium,
 * libgps, cJSON, zlib, libsystemd when built with it), initialises each one
 * the way essd does at start, says READY=1 to $NOTIFY_SOCKET like essd, and
 * then sleeps until SIGTERM. What essd costs beyond this is essd's own.
 *
 *   skeleton [GPSD_PORT]   with a port: one libgps connection to
 *                          127.0.0.1:PORT is opened and closed at start. */
#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <gps.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

int main(int argc, char **argv)
{
	sigset_t set;
	int sig = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);

	if (sodium_init() < 0)
		return 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	CURLM *multi = curl_multi_init();
	CURL *easy = curl_easy_init();
	if (!multi || !easy)
		return 1;
	sqlite3 *db = NULL;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", NULL, NULL, NULL) !=
	        SQLITE_OK)
		return 1;
	cJSON *doc = cJSON_Parse("{\"ready\":true}");
	unsigned long crc = crc32(0L, (const unsigned char *)"x", 1);
	if (argc > 1) {
		struct gps_data_t g;
		if (gps_open("127.0.0.1", argv[1], &g) == 0)
			gps_close(&g);
	}
#ifdef HAVE_SYSTEMD
	sd_notify(0, "READY=1");
#endif
	sigwait(&set, &sig);
#ifdef HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
	cJSON_Delete(doc);
	sqlite3_close(db);
	curl_easy_cleanup(easy);
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return crc == 0; /* keeps the zlib call */
}
