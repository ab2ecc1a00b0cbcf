/* A SQLite VFS for power-cut tests: it wraps the default (unix) VFS and
 * keeps what a disk keeps across a power cut apart from what it does not.
 *
 * The real files on disk are the durable images. Every write and truncate
 * lands only in an in-memory copy of the file (reads are served from it);
 * xSync copies that file's pending sectors to the real file. So a power
 * cut is simply: forget the in-memory copies. At the cut point (the Nth
 * write, truncate or sync from pcv_arm) the VFS loses power:
 *   - every write not made durable by a sync of its file is lost;
 *   - PCV_CUT_TEAR: the write in flight (or the last unsynced one) lands
 *     torn, a prefix of its 512-byte sectors new over the old content;
 *   - PCV_CUT_SCATTER: as TEAR, and each other unsynced sector (and a
 *     pending truncate) reached the disk or not, at random: a disk
 *     reorders its write-back cache;
 *   - every later call fails with SQLITE_IOERR until pcv_reboot().
 * Sectors are persisted whole from the in-memory copy, so bytes the program
 * never wrote are never changed (SQLite's POWERSAFE_OVERWRITE, which the
 * unix VFS reports, holds).
 *
 * Directory entries: a file created by this VFS exists only until its
 * directory is synced; SQLite does that at the first sync of a WAL or
 * journal it created (the unix VFS's rule), or in xDelete with dirSync. An
 * unlink without a directory sync is undone by a cut (the file comes back
 * with its durable content). The -shm file is memory: pcv_reboot() removes
 * it, SQLite rebuilds it from the WAL.
 *
 * pcv_reboot() needs every file of the VFS closed (close the store first,
 * errors ignored): it writes what the cut let through, removes the files
 * whose creation was never durable, restores the undone unlinks, removes
 * the -shm files, and starts a fresh state.
 *
 * Not thread-safe: one test thread, one connection at a time. Files the
 * program writes outside SQLite (the keys file) are not modelled. */
#ifndef ESS_POWERCUT_VFS_H
#define ESS_POWERCUT_VFS_H

#include <stdint.h>

#define PCV_NAME   "powercut"
#define PCV_SECTOR 512

enum pcv_cut_kind {
	PCV_CUT_CLEAN = 0, /* unsynced writes lost, nothing else */
	PCV_CUT_TEAR,      /* and the last unsynced write torn at a sector boundary */
	PCV_CUT_SCATTER,   /* and any unsynced sector may have reached the disk */
	PCV_CUT_KINDS
};

struct pcv_cut_info {
	int happened;
	enum pcv_cut_kind kind;
	uint64_t op;           /* the operation number the power went at (1-based) */
	const char *what;      /* "write", "truncate", "sync", or "reboot" (cut at reboot) */
	char file[64];         /* base name of that operation's file */
	unsigned torn_kept;    /* sectors of the torn write that landed ... */
	unsigned torn_total;   /* ... out of this many (0: nothing torn) */
	unsigned scatter_kept; /* other unsynced sectors that landed ... */
	unsigned lost;         /* ... and those that did not */
};

struct pcv_counters { /* since pcv_register, over every boot */
	uint64_t writes, truncates, syncs, dir_syncs;
	uint64_t db_writes;     /* writes to a main database file (checkpoints) */
	uint64_t cuts, torn;    /* cuts; cuts that left a write torn */
	uint64_t vanished;      /* files removed at reboot: creation never durable */
	uint64_t unlink_undone; /* files brought back at reboot */
};

/* Registers the VFS PCV_NAME (not the default) once; 0 or an SQLite code. */
int pcv_register(void);
/* Cuts the power at the nth operation (write, truncate or sync of a
 * database, WAL or journal) from now; 0 disarms. seed drives the tearing. */
void pcv_arm(uint64_t nth, enum pcv_cut_kind kind, uint64_t seed);
/* A disk that acknowledges a flush it did not do (cheap flash does): with
 * on, xSync of a main database file succeeds and makes nothing durable.
 * For the harness's own controls. */
void pcv_set_lying_db_sync(int on);
/* Cuts the power now (no write in flight). */
void pcv_cut_now(void);
/* 1 once the power is gone (until pcv_reboot). */
int pcv_is_down(void);
/* Operations counted since the last reboot. */
uint64_t pcv_ops(void);
const struct pcv_cut_info *pcv_last_cut(void);
const struct pcv_counters *pcv_counters(void);
/* Cuts the power if it is still on, then boots: see above. Returns 0, or
 * -EBUSY if a file of the VFS is still open (nothing done), or -errno if a
 * file could not be written. */
int pcv_reboot(void);

#endif
