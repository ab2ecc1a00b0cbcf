/* The daemon's wiring (daemon.h). */
#include "agent/daemon.h"

#include "agent/config.h"
#include "agent/ctl.h"
#include "agent/ctl_methods.h"
#include "agent/hw.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/responder.h"
#include "agent/store.h"
#include "agent/track.h"
#include "hal/gps.h"
#include "hal/keystore.h"
#include "sync/sync.h"

#include "agent/fmt.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#define NOTIFY(...) sd_notifyf(0, __VA_ARGS__)
#else
#define NOTIFY(...) ((void)0)
#endif

#define WIPE_GRACE_MS    10000 /* the command_result may take this long to go out */
#define MAINTENANCE_MS   60000 /* active-incident check; the WAL checkpoint every tenth */
#define CHECKPOINT_EVERY 10    /* maintenance turns: 10 min */
/* The upload of the trail from memory starts this long before the flush
 * bound, for its answer to come back in time (else the flush writes). */
#define MEM_LEAD_MS       3000
#define PURGE_MS          600000 /* retention purge */
#define ACTIVE_RECHECK_MS 5000
#define STORE_CHECK_MS    2000 /* the deferred integrity check, once serving */

/* Periodic jobs run by a bound: armed at bound - slack with that slack, they
 * run in the last stretch before the bound, in a wakeup the daemon has
 * anyway when one comes (a GPS report), never after the bound. */
static int64_t slack_of(int64_t bound_ms)
{
	return bound_ms / 4 < LOOP_PERIODIC_SLACK_MS ? bound_ms / 4 : LOOP_PERIODIC_SLACK_MS;
}

static int64_t before(int64_t bound_ms)
{
	return bound_ms - slack_of(bound_ms);
}

static struct loop_timer *add_by(struct loop *l, int64_t bound_ms, loop_timer_fn fn, void *arg)
{
	struct loop_timer *t = loop_timer_add(l, before(bound_ms), fn, arg);
	if (t)
		loop_timer_set_slack(t, slack_of(bound_ms));
	return t;
}

struct daemon {
	const char *config_path;
	struct config cfg;      /* in effect: the file's, with the server's values */
	struct config file_cfg; /* as last read from the file (reload compares) */
	struct loop *loop;
	struct hal_keystore *ks;
	struct store *store;
	struct track *track;
	struct hal_gps *gps;
	struct sync *sync;
	struct ctl *ctl;
	struct hw *hw; /* alert, panic button, power, link, clock (agent/hw.h) */
	struct ctlm m;
	struct loop_timer *flush_t, *purge_t, *maint_t, *wd_t, *wipe_t;
	int wipe_now; /* revoked: no result to wait for */
	int wiped;
	int stopping;
	int64_t pos_errors;
	int maint_turns;
	/* The trail's flush: flush_due is the bound of the oldest buffered fix
	 * (monotonic); MEM_LEAD_MS before it the upload may take the buffer
	 * straight from memory (mem_stage 1: started, fixes up to mem_newest_t
	 * sent at mem_kick_ms; 2: not started, flush at the bound). */
	int64_t flush_due;
	int mem_stage;
	int64_t mem_newest_t, mem_kick_ms;
	struct loop_timer *check_t;
	int store_failed; /* the database was found damaged: stop, exit non-zero */
};

static void config_err(void *arg, const char *file, unsigned line, const char *msg)
{
	int *n = arg;
	(*n)++;
	if (line)
		log_errx("%s:%u: %s", file, line, msg);
	else
		log_errx("%s: %s", file, msg);
}

static int load_config(const char *path, struct config *cfg, char *err, size_t errlen)
{
	int n = 0;
	int rc = config_load(path, cfg, config_err, &n);
	if (rc < 0)
		return fmt_err(err, errlen, rc, "%s: %d error%s, refusing to use it", path,
		               n ? n : 1, n == 1 ? "" : "s");
	return 0;
}

static int open_store(const struct config *cfg, int create, struct hal_keystore **ks,
                      struct store **st, char *err, size_t errlen)
{
	char why[512];
	int flags = 0;
	int rc = hal_keystore_open(config_keystore_names[cfg->keystore.backend],
	                           cfg->keystore.key_file, ks, why, sizeof(why));
	if (rc < 0)
		return fmt_err(err, errlen, rc, "keystore: %s", why);
	struct store_params p = {.dir = cfg->store.dir, .keystore = *ks, .create = create};
	if (create)
		mkdir(cfg->store.dir, 0700);
	rc = store_open(&p, st, &flags, why, sizeof(why));
	if (rc < 0) {
		hal_keystore_close(*ks);
		*ks = NULL;
		if (!create && (rc == -ENOENT || rc == -ENOKEY))
			return fmt_err(err, errlen, -ENOKEY,
			               "not provisioned (%s): run essd provision", why);
		return fmt_err(err, errlen, rc, "store: %s", why);
	}
	if (flags & STORE_OPENED_RECOVERED)
		log_warnx("store: the database failed its integrity check and was moved aside");
	else if (flags & STORE_OPENED_CHECKED)
		log_info("store: the last stop was not clean: the database was checked at open");
	return 0;
}

/* ---- GPS and the trail ---- */

static void update_active(void *arg)
{
	struct daemon *d = arg;
	if (d->track && d->store)
		track_set_active(d->track, responder_any_active(&d->m.resp));
}

static int64_t flush_timer(struct loop *l, void *arg);

static int64_t flush_ms(const struct daemon *d)
{
	return (int64_t)d->cfg.store.position_flush_s * 1000;
}

/* The disk-full state, told to the user (status "disk_full", a "disk"
 * publication) when it changes. */
static void set_disk_full(struct daemon *d, int full)
{
	if (d->m.disk_full == full)
		return;
	if (full)
		log_warnx("store: the disk is full: positions are not stored, responders' "
		          "actions still are");
	else
		log_info("store: disk space is back");
	ctlm_set_disk_full(&d->m, full);
}

/* The disk is full when the reserve cannot be there (it was given back for
 * an action, or never fitted): then the trail waits, so that what is left
 * goes to responders' actions. Makes the reserve again when space is back. */
static int disk_check(struct daemon *d)
{
	int full = !store_reserve_present(d->store) && store_reserve_ensure(d->store) < 0;
	set_disk_full(d, full);
	return full;
}

static void on_gps_time_jump(void *arg)
{
	struct daemon *d = arg;
	if (d->track)
		track_gps_time_suspect(d->track);
}

/* While the disk is full the flush timer is what notices space coming back
 * (disk_check): it must be armed then even though no fix is stored. */
static int64_t mem_lead(const struct daemon *d)
{
	return flush_ms(d) >= 4 * MEM_LEAD_MS ? MEM_LEAD_MS : 0;
}

/* The delay for the flush timer to run by at (monotonic), within its slack. */
static int64_t flush_delay_to(const struct daemon *d, int64_t at)
{
	int64_t delay = at - loop_now_ms() - slack_of(flush_ms(d));
	return delay > 0 ? delay : 0;
}

static void arm_flush(struct daemon *d)
{
	if (d->flush_t)
		return;
	d->flush_due = loop_now_ms() + flush_ms(d);
	d->mem_stage = 0;
	d->flush_t = add_by(d->loop, flush_ms(d) - mem_lead(d), flush_timer, d);
	if (d->flush_t)
		loop_timer_set_slack(d->flush_t, slack_of(flush_ms(d)));
}

/* Something met a full disk (a responder's action, the panic button): the
 * user is told at once, and the flush timer watches for space coming back
 * (disk_check) even though no fix is stored. */
static void disk_full_met(void *arg)
{
	struct daemon *d = arg;
	set_disk_full(d, 1);
	arm_flush(d);
}

static void on_fix(void *arg, const struct hal_gps_fix *fix)
{
	struct daemon *d = arg;
	struct store_fix sf;
	if (!d->store || !track_offer(d->track, fix, &sf))
		return;
	if (d->m.disk_full) { /* positions go first */
		if (d->pos_errors++ % 100 == 0)
			log_warnx("trail: a fix was not stored: the disk is full");
		arm_flush(d);
		return;
	}
	int rc = store_pos_append(d->store, &sf);
	if (rc < 0 && d->pos_errors++ % 100 == 0)
		log_warnx("trail: a fix was not stored: %s", strerror(-rc));
	if (rc == 0)
		arm_flush(d);
}

static int64_t flush_timer(struct loop *l, void *arg)
{
	(void)l;
	struct daemon *d = arg;
	int64_t dropped = 0, oldest, newest;
	if (disk_check(d))
		return before(flush_ms(d));
	if (d->mem_stage == 0 && mem_lead(d)) {
		/* Online, the server can have these fixes before their bound: no
		 * write (no fsync, no flash wear) unless it does not answer. */
		if (d->sync && store_pos_buffered(d->store, &oldest, &d->mem_newest_t) &&
		    sync_pos_from_memory(d->sync)) {
			d->mem_stage = 1;
			d->mem_kick_ms = loop_now_ms();
		} else {
			d->mem_stage = 2;
		}
		return flush_delay_to(d, d->flush_due);
	}
	if (d->mem_stage == 1) {
		d->mem_stage = 0;
		if (store_pos_buffered(d->store, &oldest, &newest) == 0) {
			d->flush_t = NULL; /* all on the server; the next fix arms again */
			return -1;
		}
		if (oldest > d->mem_newest_t) {
			/* what is left came after the upload started: bound from then */
			d->flush_due = d->mem_kick_ms + flush_ms(d);
			return flush_delay_to(d, d->flush_due - mem_lead(d));
		}
		/* no answer in time: the fixes are written as they always were */
	}
	d->mem_stage = 0;
	int rc = store_pos_flush(d->store);
	if (rc == -ENOSPC) {
		set_disk_full(d, 1);
		return before(flush_ms(d)); /* watch for space */
	}
	if (rc == 0)
		rc = store_pos_thin(d->store, d->cfg.store.max_positions, &dropped);
	if (rc == 0 && d->sync) /* the upload goes with this flush when near its turn */
		sync_pos_flushed(d->sync);
	if (rc < 0)
		log_warnx("trail: flush: %s", strerror(-rc));
	else if (dropped)
		log_info("trail: over %d fixes, %lld older fixes thinned out",
		         d->cfg.store.max_positions, (long long)dropped);
	/* Armed again by the next recorded fix (on_fix): without GPS the
	 * daemon does not wake for an empty flush every few seconds. */
	d->flush_t = NULL;
	return -1;
}

/* The GPS policy: the configuration's, with the power policy's interval. */
static int track_params_of(const struct daemon *d, struct track_params *p)
{
	const struct config *c = &d->cfg;
	*p = (struct track_params){.interval_s = hw_gps_interval(d->hw, c),
	                           .min_distance_m = c->gps.min_distance_m,
	                           .active_interval_s = c->gps.active_interval_s};
	return 0;
}

static int gps_start(struct daemon *d, char *err, size_t errlen)
{
	struct hal_gps_params gp = {.loop = d->loop,
	                            .host = d->cfg.gps.host,
	                            .port = d->cfg.gps.port,
	                            .on_fix = on_fix,
	                            .on_time_jump = on_gps_time_jump,
	                            .arg = d};
	char why[256];
	int rc = hal_gps_open("gpsd", &gp, &d->gps, why, sizeof(why));
	if (rc < 0)
		return fmt_err(err, errlen, rc, "gps: %s", why);
	d->m.gps = d->gps;
	return 0;
}

/* ---- timers ---- */

static int64_t purge_timer(struct loop *l, void *arg)
{
	(void)l;
	struct daemon *d = arg;
	int rc =
	    store_purge(d->store, loop_wall_ms(), (int64_t)d->cfg.store.retention_hours * 3600000,
	                (int64_t)d->cfg.store.audit_retention_days * 86400000);
	if (rc < 0) {
		log_warnx("retention purge: %s", strerror(-rc));
	} else if (rc > 0) {
		log_info("retention purge: %d incident%s removed", rc, rc == 1 ? "" : "s");
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "incidents", rc);
		ctlm_publish(&d->m, "purged", o);
	}
	/* the first purge runs at once, the later ones by their bound */
	loop_timer_set_slack(d->purge_t, slack_of(PURGE_MS));
	return before(PURGE_MS);
}

/* The store found its database damaged (the deferred check, or SQLite at
 * any call): essd stops and exits with an error; the next start finds no
 * clean marker, checks the database at open and moves it aside, the same
 * path as a database found damaged at open (docs/store.md, "Integrity"). */
static void on_store_failed(void *arg)
{
	struct daemon *d = arg;
	d->store_failed = 1;
	loop_stop(d->loop);
}

/* After a clean stop the store leaves its integrity check to now: serving
 * already, and ~10 ms for 10 MB once is nothing to an idle loop. */
static int64_t integrity_timer(struct loop *l, void *arg)
{
	(void)l;
	struct daemon *d = arg;
	int rc = store_integrity_check(d->store);
	if (rc < 0 && rc != -EUCLEAN) {
		log_warnx("store: integrity check: %s; again in a minute", strerror(-rc));
		return MAINTENANCE_MS;
	}
	if (rc == 0)
		log_info("store: integrity check passed");
	d->check_t = NULL;
	return -1;
}

static int64_t maint_timer(struct loop *l, void *arg)
{
	(void)l;
	struct daemon *d = arg;
	/* A checkpoint writes pages into the database and syncs it: several
	 * I/O sleeps (wakeups), measured. Every 10 minutes is enough to keep
	 * the WAL short (a few hundred KiB at 1 Hz GPS; SQLite checkpoints by
	 * itself at 4 MiB anyway, docs/store.md). */
	if (++d->maint_turns % CHECKPOINT_EVERY == 0)
		store_checkpoint(d->store);
	update_active(d);
	int64_t next = loop_timer_due(d->maint_t) + MAINTENANCE_MS - loop_now_ms(); /* in phase */
	return next >= 0 ? next : MAINTENANCE_MS - LOOP_IDLE_SLACK_MS;
}

#ifdef HAVE_SYSTEMD
static int64_t watchdog_timer(struct loop *l, void *arg)
{
	(void)l;
	uint64_t usec = 0;
	(void)arg;
	sd_notify(0, "WATCHDOG=1");
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec < 2000)
		return -1;
	return before((int64_t)(usec / 2000));
}
#endif

static void watchdog_start(struct daemon *d)
{
#ifdef HAVE_SYSTEMD
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
		d->wd_t = add_by(d->loop, (int64_t)(usec / 2000), watchdog_timer, d);
		log_info("systemd watchdog every %llu ms", (unsigned long long)(usec / 2000));
	}
#else
	(void)d;
#endif
}

/* ---- wipe ---- */

static int64_t wipe_timer(struct loop *l, void *arg)
{
	struct daemon *d = arg;
	char why[256];
	d->wipe_t = NULL;
	sync_close(d->sync);
	d->sync = d->m.sync = NULL;
	hal_gps_close(d->gps);
	d->gps = d->m.gps = NULL;
	int rc = store_wipe(d->store, why, sizeof(why));
	d->store = d->m.resp.store = NULL;
	if (rc < 0)
		log_errx("wipe: %s", why);
	else
		log_info("wiped: keys destroyed, local data removed; provision anew to use this "
		         "device");
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "done", rc == 0);
	ctlm_publish(&d->m, "wipe", o);
	d->wiped = 1;
	loop_stop(l);
	return -1;
}

static void wipe_soon(struct daemon *d, int64_t delay_ms)
{
	d->m.wiping = 1;
	if (d->wipe_t)
		loop_timer_set(d->loop, d->wipe_t, delay_ms);
	else
		d->wipe_t = loop_timer_add(d->loop, delay_ms, wipe_timer, d);
}

/* ---- what the sync engine tells ---- */

static int bounded(const cJSON *o, const char *key, int lo, int hi, int *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || v->valuedouble != v->valuedouble)
		return 0;
	double x = v->valuedouble;
	*out = x < lo ? lo : x > hi ? hi : (int)x;
	return 1;
}

/* Server configuration (device API section 8), every value bounded to the
 * configuration file's own limits. */
static void apply_server_config(struct daemon *d, const cJSON *cfg)
{
	int v, changed = 0;
	if (bounded(cfg, "position_interval_s", 1, 3600, &v) && v != d->cfg.gps.interval_s)
		d->cfg.gps.interval_s = v, changed = 1;
	if (bounded(cfg, "position_min_distance_m", 0, 10000, &v) && v != d->cfg.gps.min_distance_m)
		d->cfg.gps.min_distance_m = v, changed = 1;
	if (bounded(cfg, "retention_hours", 1, 8760, &v) && v != d->cfg.store.retention_hours)
		d->cfg.store.retention_hours = v, changed = 1;
	if (bounded(cfg, "heartbeat_interval_s", 10, 3600, &v))
		d->cfg.heartbeat.interval_s = v;
	if (bounded(cfg, "long_poll_s", 0, 30, &v) && v < d->cfg.server.request_timeout_s)
		d->cfg.server.long_poll_s = v;
	if (changed) {
		struct track_params tp;
		track_params_of(d, &tp);
		track_set_params(d->track, &tp);
		log_info("server configuration applied: interval %d s, min distance %d m, "
		         "retention %d h",
		         d->cfg.gps.interval_s, d->cfg.gps.min_distance_m,
		         d->cfg.store.retention_hours);
	}
}

static void on_note(void *arg, const struct sync_note *n)
{
	struct daemon *d = arg;
	cJSON *o;
	switch (n->kind) {
	case SYNC_NOTE_INCIDENT:
		store_audit_add(d->store, STORE_AUDIT_RECEIVED, n->id, n->is_new ? "new" : "update",
		                loop_wall_ms());
		ctlm_publish_incident(&d->m, n->id, n->is_new ? "new" : "updated");
		if (n->is_new)
			hw_alert(d->hw, n->silent); /* silent: never a sound (hal/alert) */
		update_active(d);
		break;
	case SYNC_NOTE_CONFLICT:
	case SYNC_NOTE_REJECTED:
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "seq", (double)n->seq);
		if (n->id)
			cJSON_AddStringToObject(o, "id", n->id);
		if (n->version)
			cJSON_AddNumberToObject(o, "version", (double)n->version);
		if (!d->m.locked)
			cJSON_AddStringToObject(o, "reason", n->reason ? n->reason : "");
		ctlm_publish(&d->m, n->kind == SYNC_NOTE_CONFLICT ? "conflict" : "rejected", o);
		if (n->id)
			ctlm_publish_incident(&d->m, n->id, "conflict");
		update_active(d);
		break;
	case SYNC_NOTE_COMMAND:
		store_audit_add(d->store, STORE_AUDIT_COMMAND, n->id,
		                n->command == SYNC_CMD_WIPE     ? "wipe"
		                : n->command == SYNC_CMD_LOCK   ? "lock"
		                : n->command == SYNC_CMD_RESYNC ? "resync"
		                                                : "config",
		                loop_wall_ms());
		if (n->command == SYNC_CMD_WIPE) {
			log_warnx("command %s: wipe once the result is out (at most %d s)", n->id,
			          WIPE_GRACE_MS / 1000);
			ctlm_publish(&d->m, "wipe", NULL);
			wipe_soon(d, WIPE_GRACE_MS);
		} else if (n->command == SYNC_CMD_LOCK) {
			ctlm_set_locked(&d->m, 1);
		} else if (n->command == SYNC_CMD_RESYNC) {
			ctlm_publish(&d->m, "resync", NULL);
		}
		/* config: SYNC_NOTE_CONFIG follows with the values */
		break;
	case SYNC_NOTE_CONFIG:
		apply_server_config(d, n->args);
		break;
	case SYNC_NOTE_REVOKED:
		log_warnx("device revoked by the server: wiping");
		wipe_soon(d, 0);
		break;
	case SYNC_NOTE_UNKNOWN_DEVICE:
		log_warnx("the server does not know this device: syncing stopped; provision anew");
		o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "online", 0);
		cJSON_AddBoolToObject(o, "stopped", 1);
		ctlm_publish(&d->m, "sync", o);
		break;
	case SYNC_NOTE_ONLINE:
	case SYNC_NOTE_OFFLINE:
		o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "online", n->kind == SYNC_NOTE_ONLINE);
		ctlm_publish(&d->m, "sync", o);
		break;
	case SYNC_NOTE_DRAINED:
		if (d->m.wiping && d->wipe_t)
			wipe_soon(d, 0);
		break;
	}
}

static void on_status(void *arg, struct sync_device_status *st)
{
	struct daemon *d = arg;
	struct hal_gps_fix f;
	st->uptime_s = (loop_now_ms() - d->m.started_mono_ms) / 1000;
	st->power = hw_power(d->hw, &d->cfg, &st->battery_pct);
	st->has_fix = d->track && track_last_fix(d->track, &f) == 0;
	if (st->has_fix) {
		st->fix_t_ms = f.t_ms;
		st->fix_lat = f.lat_e7 / 1e7;
		st->fix_lon = f.lon_e7 / 1e7;
		st->fix_accuracy_m = f.accuracy_dm >= 0 ? f.accuracy_dm / 10.0 : 9999.0;
	}
	enum track_clock c = d->track ? track_clock_state(d->track) : TRACK_CLOCK_UNSYNCED;
	st->clock = c == TRACK_CLOCK_GPS      ? PROTO_CLOCK_GPS
	            : c == TRACK_CLOCK_SYSTEM ? PROTO_CLOCK_SYSTEM
	                                      : PROTO_CLOCK_UNSYNCED;
}

static int sync_begin(struct daemon *d, char *err, size_t errlen)
{
	struct sync_params sp = {.loop = d->loop,
	                         .store = d->store,
	                         .cfg = &d->cfg,
	                         .note = on_note,
	                         .status = on_status,
	                         .arg = d};
	char why[256];
	int rc = sync_open(&sp, &d->sync, why, sizeof(why));
	if (rc == -ENOKEY)
		return fmt_err(err, errlen, rc, "not provisioned (%s): run essd provision", why);
	if (rc < 0)
		return fmt_err(err, errlen, rc, "sync: %s", why);
	d->m.sync = d->sync;
	if ((rc = sync_start(d->sync)) < 0)
		return fmt_err(err, errlen, rc, "sync: cannot start: %s", strerror(-rc));
	return 0;
}

/* ---- hardware (agent/hw.h) ---- */

static void on_panic(void *arg, const char *how)
{
	struct daemon *d = arg;
	struct responder_done done;
	char why[256];
	if (d->m.wiping || !d->store) {
		log_warnx("panic button (%s press): ignored, the device is being wiped", how);
		return;
	}
	/* the same path as essctl sos: first in the outbox, allowed while locked */
	int rc = responder_sos(&d->m.resp, NULL, &done, why, sizeof(why));
	if (rc < 0) {
		log_errx("panic button (%s press): SOS not queued: %s", how, why);
		if (rc == -ENOSPC)
			disk_full_met(d);
		return;
	}
	log_warnx("panic button (%s press): SOS queued (seq %lld)", how, (long long)done.seq);
	cJSON *e = cJSON_CreateObject();
	cJSON_AddNumberToObject(e, "seq", (double)done.seq);
	cJSON_AddStringToObject(e, "source", "button");
	ctlm_publish(&d->m, "sos", e);
	if (d->sync)
		sync_kick(d->sync);
}

static void on_power(void *arg)
{
	struct daemon *d = arg;
	struct track_params tp;
	track_params_of(d, &tp);
	if (d->track)
		track_set_params(d->track, &tp);
}

static void on_link_up(void *arg, const char *ifname)
{
	struct daemon *d = arg;
	(void)ifname;
	if (d->sync)
		sync_link_up(d->sync);
}

/* The responder acted on the device (ack, status, note, sos): the alert
 * has done its job. */
static void on_local_action(void *arg)
{
	struct daemon *d = arg;
	hw_alert_stop(d->hw);
	update_active(d);
	/* the action may have taken the reserve (store_make_room): the trail
	 * waits from now on; the flush timer makes the reserve again */
	if (d->store && !store_reserve_present(d->store))
		disk_full_met(d);
}

static int hw_start(struct daemon *d, char *err, size_t errlen)
{
	struct hw_callbacks cb = {
	    .panic = on_panic, .power = on_power, .link_up = on_link_up, .arg = d};
	int rc = hw_open(d->loop, &d->cfg, &cb, &d->hw, err, errlen);
	if (rc < 0)
		return rc;
	d->m.hw = d->hw;
	on_power(d); /* the GPS policy for the power found at start */
	hw_clock_log(d->hw, track_clock_str(track_clock_state(d->track)));
	return 0;
}

/* ---- signals ---- */

static void on_stop(struct loop *l, int signo, void *arg)
{
	struct daemon *d = arg;
	log_info("signal %d: stopping", signo);
	NOTIFY("STOPPING=1");
	/* no WATCHDOG=1 after STOPPING=1: the rest of this loop pass could
	 * otherwise still ping */
	loop_timer_cancel(l, d->wd_t);
	d->wd_t = NULL;
	d->stopping = 1;
	loop_stop(l);
}

static int same_server(const struct config *a, const struct config *b)
{
	return memcmp(&a->server, &b->server, sizeof(a->server)) == 0 &&
	       a->heartbeat.interval_s == b->heartbeat.interval_s;
}

static void on_hup(struct loop *l, int signo, void *arg)
{
	(void)l;
	(void)signo;
	struct daemon *d = arg;
	struct config nc;
	char why[512];
	NOTIFY("RELOADING=1");
	if (load_config(d->config_path, &nc, why, sizeof(why)) < 0) {
		log_errx("reload: %s; keeping the running configuration", why);
		NOTIFY("READY=1");
		return;
	}
	if (strcmp(nc.store.dir, d->cfg.store.dir) ||
	    memcmp(&nc.keystore, &d->cfg.keystore, sizeof(nc.keystore)) ||
	    memcmp(&nc.control, &d->cfg.control, sizeof(nc.control)) ||
	    memcmp(&nc.alert, &d->cfg.alert, sizeof(nc.alert)) ||
	    memcmp(&nc.input, &d->cfg.input, sizeof(nc.input)) ||
	    memcmp(&nc.power, &d->cfg.power, sizeof(nc.power)) ||
	    memcmp(&nc.link, &d->cfg.link, sizeof(nc.link)) ||
	    memcmp(&nc.clock, &d->cfg.clock, sizeof(nc.clock)))
		log_warnx("reload: [store] dir, [keystore], [control] and the hardware sections "
		          "take effect at restart");
	strcpy(nc.store.dir, d->cfg.store.dir);
	nc.keystore = d->cfg.keystore;
	nc.control = d->cfg.control;
	nc.alert = d->cfg.alert; /* the hardware stays as opened */
	nc.input = d->cfg.input;
	nc.power = d->cfg.power;
	nc.link = d->cfg.link;
	nc.clock = d->cfg.clock;
	int restart_gps = strcmp(nc.gps.host, d->cfg.gps.host) || nc.gps.port != d->cfg.gps.port;
	int restart_sync = !same_server(&nc, &d->file_cfg) && d->sync && !sync_stopped(d->sync);
	d->cfg = d->file_cfg = nc;
	log_set_level(nc.log.level);
	struct track_params tp;
	track_params_of(d, &tp);
	track_set_params(d->track, &tp);
	if (restart_gps) {
		hal_gps_close(d->gps);
		d->gps = d->m.gps = NULL;
		if (gps_start(d, why, sizeof(why)) < 0)
			log_errx("reload: %s", why);
	}
	if (restart_sync) {
		sync_close(d->sync);
		d->sync = d->m.sync = NULL;
		if (sync_begin(d, why, sizeof(why)) < 0)
			log_errx("reload: %s", why);
	}
	if (d->flush_t) { /* the new bound from now: flush (or upload) by it */
		d->flush_due = loop_now_ms() + flush_ms(d);
		d->mem_stage = 0;
		loop_timer_set(d->loop, d->flush_t, before(flush_ms(d)) - mem_lead(d));
		loop_timer_set_slack(d->flush_t, slack_of(flush_ms(d)));
	}
	log_info("configuration reloaded");
	NOTIFY("READY=1");
}

/* ---- run ---- */

static int ctl_start(struct daemon *d, char *err, size_t errlen)
{
	gid_t gid = (gid_t)-1;
	char why[256], dir[CONFIG_SOCKET_SIZE];
	if (d->cfg.control.group[0]) {
		struct group *g = getgrnam(d->cfg.control.group);
		if (!g)
			return fmt_err(err, errlen, -ENOENT, "control socket: no group %s",
			               d->cfg.control.group);
		gid = g->gr_gid;
	}
	snprintf(dir, sizeof(dir), "%s", d->cfg.control.socket);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir(dir, 0750); /* systemd's RuntimeDirectory usually made it */
	}
	size_t n;
	const struct ctl_method *ms = ctlm_methods(&n);
	int rc =
	    ctl_open(d->loop, d->cfg.control.socket, gid, ms, n, &d->m, &d->ctl, why, sizeof(why));
	if (rc < 0)
		return fmt_err(err, errlen, rc, "control socket: %s", why);
	d->m.ctl = d->ctl;
	return 0;
}

static void daemon_free(struct daemon *d)
{
	d->m.hw = NULL;
	hw_close(d->hw);
	sync_close(d->sync);
	ctl_close(d->ctl);
	hal_gps_close(d->gps);
	if (d->store) {
		int rc = store_pos_flush(d->store);
		if (rc < 0)
			log_warnx("trail: final flush: %s", strerror(-rc));
		store_close(d->store);
	}
	hal_keystore_close(d->ks);
	track_close(d->track);
	loop_close(d->loop); /* frees the timers */
}

int daemon_run(const char *config_path, int *wiped, char *err, size_t errlen)
{
	struct daemon d = {.config_path = config_path};
	struct track_params tp;
	int rc;
	*wiped = 0;
	signal(SIGPIPE, SIG_IGN);
	if ((rc = load_config(config_path, &d.cfg, err, errlen)) < 0)
		return rc;
	d.file_cfg = d.cfg;
	if (log_open("essd", d.cfg.log.target, d.cfg.log.level) < 0)
		log_warnx("journal logging unavailable: using stderr");
	if ((rc = loop_open(&d.loop)) < 0)
		return fmt_err(err, errlen, rc, "event loop: %s", strerror(-rc));
	d.m.started_mono_ms = loop_now_ms();
	d.m.changed = on_local_action;
	d.m.disk_full_met = disk_full_met;
	d.m.changed_arg = &d;
	if ((rc = open_store(&d.cfg, 0, &d.ks, &d.store, err, errlen)) < 0)
		goto out;
	d.m.resp.store = d.store;
	store_on_failed(d.store, on_store_failed, &d);
	disk_check(&d);
	track_params_of(&d, &tp);
	if ((rc = track_open(&tp, &d.track)) < 0) {
		fmt_err(err, errlen, rc, "gps policy: bad parameters");
		goto out;
	}
	d.m.resp.track = d.track;
	ctlm_load(&d.m);
	update_active(&d);
	if ((rc = sync_begin(&d, err, errlen)) < 0)
		goto out;
	if ((rc = gps_start(&d, err, errlen)) < 0)
		goto out;
	if ((rc = hw_start(&d, err, errlen)) < 0)
		goto out;
	if ((rc = ctl_start(&d, err, errlen)) < 0)
		goto out;
	if ((rc = loop_signal_add(d.loop, SIGTERM, on_stop, &d)) < 0 ||
	    (rc = loop_signal_add(d.loop, SIGINT, on_stop, &d)) < 0 ||
	    (rc = loop_signal_add(d.loop, SIGHUP, on_hup, &d)) < 0) {
		fmt_err(err, errlen, rc, "signals: %s", strerror(-rc));
		goto out;
	}
	arm_flush(&d);
	d.purge_t = loop_timer_add(d.loop, 0, purge_timer, &d);
	/* local reads only (and a checkpoint every tenth): a long window */
	d.maint_t = loop_timer_add(d.loop, MAINTENANCE_MS - LOOP_IDLE_SLACK_MS, maint_timer, &d);
	if (d.maint_t)
		loop_timer_set_slack(d.maint_t, LOOP_IDLE_SLACK_MS);
	if (!d.flush_t || !d.purge_t || !d.maint_t) {
		rc = fmt_err(err, errlen, -ENOMEM, "timers: out of memory");
		goto out;
	}
	if (store_integrity_pending(d.store) &&
	    !(d.check_t = loop_timer_add(d.loop, STORE_CHECK_MS, integrity_timer, &d))) {
		rc = fmt_err(err, errlen, -ENOMEM, "timers: out of memory");
		goto out;
	}
	watchdog_start(&d);
	char pend[4];
	if (store_state_get(d.store, SYNC_KEY_WIPE, pend, sizeof(pend), NULL) == 0) {
		log_warnx("a wipe ordered by the server was not finished: wiping once the result "
		          "is out (at most %d s)",
		          WIPE_GRACE_MS / 1000);
		wipe_soon(&d, WIPE_GRACE_MS);
	}
	log_info("essd %s running: unit %s, control socket %s", ESS_VERSION,
	         d.m.unit[0] ? d.m.unit : "-", d.cfg.control.socket);
	NOTIFY("READY=1\nSTATUS=running");
	rc = d.store_failed ? 0 : loop_run(d.loop); /* failed before the loop ran */
	if (rc < 0)
		fmt_err(err, errlen, rc, "event loop: %s", strerror(-rc));
	if (!d.stopping) /* a signal has said it already */
		NOTIFY("STOPPING=1");
	*wiped = d.wiped;
out:
	/* also when a start-up step failed because of it: the cause, not the
	 * symptom (a damaged store reads as "not provisioned") */
	if (d.store_failed)
		rc = fmt_err(err, errlen, -EUCLEAN,
		             "store: the database is damaged: stopped (the next start moves it "
		             "aside)");
	daemon_free(&d);
	if (rc == 0)
		log_info("stopped");
	return rc;
}

/* ---- provisioning ---- */

/* The hardware serial: first line of the file, printable ASCII, bounded. */
static int read_serial(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fmt_err(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
	ssize_t n = read(fd, out, cap - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return fmt_err(err, errlen, -e, "%s: cannot read: %s", path, strerror(e));
	out[n] = 0;
	out[strcspn(out, "\r\n")] = 0;
	size_t len = strlen(out);
	while (len && isspace((unsigned char)out[len - 1]))
		out[--len] = 0;
	if (!len || len > PROTO_ID_MAX)
		return fmt_err(err, errlen, -EINVAL, "%s: no serial number on the first line",
		               path);
	for (size_t i = 0; i < len; i++)
		if (out[i] < 0x21 || out[i] > 0x7e)
			return fmt_err(err, errlen, -EINVAL,
			               "%s: the serial number must be printable ASCII", path);
	return 0;
}

int daemon_provision(const char *config_path, const struct daemon_provision_info *info, char *unit,
                     char *device_id, char *err, size_t errlen)
{
	struct config cfg;
	struct hal_keystore *ks = NULL;
	struct store *st = NULL;
	struct loop *l = NULL;
	char serial[PROTO_ID_MAX + 2], buf[PROTO_ID_MAX + 1], why[512];
	size_t len;
	int rc;
	if ((rc = load_config(config_path, &cfg, err, errlen)) < 0)
		return rc;
	log_open("essd", cfg.log.target, cfg.log.level);
	const char *token = info->token ? info->token : cfg.server.enroll_token;
	if (!token[0])
		return fmt_err(err, errlen, -EINVAL,
		               "no enrollment token: give --token or set "
		               "server.enroll_token");
	if (strlen(token) >= CONFIG_TOKEN_SIZE)
		return fmt_err(err, errlen, -EINVAL, "the enrollment token is too long");
	if ((rc = read_serial(cfg.device.serial_file, serial, sizeof(serial), err, errlen)) < 0)
		return rc;
	if ((rc = open_store(&cfg, 1, &ks, &st, err, errlen)) < 0)
		return rc;
	if (store_state_get(st, SYNC_KEY_DEVICE_ID, buf, sizeof(buf), &len) != -ENOENT) {
		if (!info->force) {
			rc =
			    fmt_err(err, errlen, -EEXIST,
			            "already provisioned; --force wipes this device's identity and "
			            "data and enrolls anew");
			goto out;
		}
		/* a new identity starts from nothing: no queued event of the old
		 * device may go out under the new one */
		rc = store_wipe(st, why, sizeof(why));
		st = NULL;
		hal_keystore_close(ks);
		ks = NULL;
		if (rc < 0) {
			fmt_err(err, errlen, rc, "wiping the old identity: %s", why);
			goto out;
		}
		log_info("provision --force: the old identity and its data were wiped");
		if ((rc = open_store(&cfg, 1, &ks, &st, err, errlen)) < 0)
			goto out;
	}
	if ((rc = loop_open(&l)) < 0) {
		fmt_err(err, errlen, rc, "event loop: %s", strerror(-rc));
		goto out;
	}
	struct sync_enroll_info ei = {.token = token, .serial = serial, .board = cfg.device.board};
	if ((rc = sync_enroll(l, st, &cfg, &ei, why, sizeof(why))) < 0) {
		fmt_err(err, errlen, rc, "enrollment failed: %s", why);
		goto out;
	}
	if (unit && store_state_get(st, SYNC_KEY_UNIT, unit, PROTO_ID_MAX, &len) == 0)
		unit[len] = 0;
	if (device_id &&
	    store_state_get(st, SYNC_KEY_DEVICE_ID, device_id, PROTO_ID_MAX, &len) == 0)
		device_id[len] = 0;
	store_audit_add(st, STORE_AUDIT_COMMAND, "provision", NULL, loop_wall_ms());
out:
	store_close(st);
	hal_keystore_close(ks);
	loop_close(l);
	explicit_bzero(cfg.server.enroll_token, sizeof(cfg.server.enroll_token));
	return rc;
}
