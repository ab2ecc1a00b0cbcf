/* The power-cut VFS: see powercut_vfs.h. */
#define _GNU_SOURCE
#include "tests/lib/powercut_vfs.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR PCV_SECTOR

/* One file as this boot sees it: data is the current content, durable
 * image plus pending writes; dirty marks the sectors not yet synced. */
struct node {
	struct node *next;
	char *path;
	unsigned char *data;
	unsigned char *dirty; /* bitmap, one bit per sector of cap */
	int64_t size;         /* current size */
	int64_t durable_size; /* size of the real file */
	size_t cap;
	int nopen;
	int name_pending; /* created and its directory not synced since */
	int main_db;
	dev_t dev; /* the real file (see find_live) */
	ino_t ino;
	int detached; /* unlinked while open: freed at the last close */
};

/* An unlink whose directory was not synced: undone by a cut. */
struct gone {
	struct gone *next;
	char *path;
	unsigned char *data;
	size_t len;
};

/* What a cut let reach the disk, written at reboot (after the program
 * closed its files). len < 0: truncate to off. */
struct landed {
	struct landed *next;
	char *path;
	int64_t off;
	int64_t len;
	unsigned char data[];
};

struct pcv_file {
	sqlite3_file base;
	struct node *node; /* NULL: not modelled (temporary files), passed through */
	int dirsync;       /* the first sync also syncs the directory */
	sqlite3_file *real;
};

static struct {
	sqlite3_vfs vfs;
	sqlite3_vfs *root;
	struct node *nodes;
	struct gone *gone;
	struct landed *landed, **landed_tail;
	uint64_t ops, cut_at, rng;
	enum pcv_cut_kind kind;
	int down;
	int lying; /* xSync of a main database reports success and does nothing */
	int nopen;
	/* the last write not yet synced: the one a cut may tear */
	struct node *last;
	int64_t last_off;
	int64_t last_len;
	struct pcv_cut_info info;
	struct pcv_counters count;
} g;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (g.rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "powercut_vfs: out of memory\n");
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

static const char *base_name(const char *path)
{
	const char *b = strrchr(path, '/');
	return b ? b + 1 : path;
}

static int same_dir(const char *a, const char *b)
{
	size_t la = (size_t)(base_name(a) - a), lb = (size_t)(base_name(b) - b);
	return la == lb && memcmp(a, b, la) == 0;
}

static struct node *find(const char *path)
{
	for (struct node *n = g.nodes; n; n = n->next)
		if (strcmp(n->path, path) == 0)
			return n;
	return NULL;
}

static void node_free(struct node *n)
{
	free(n->path);
	free(n->data);
	free(n->dirty);
	free(n);
}

static void unlink_node(struct node *n)
{
	for (struct node **pp = &g.nodes; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	if (g.last == n)
		g.last = NULL;
	if (n->nopen > 0)
		n->detached = 1;
	else
		node_free(n);
}

/* The node of path, unless the real file was renamed or removed outside
 * the VFS (the store moves a corrupt database aside with rename(2)): then
 * the node is stale and dropped. */
static struct node *find_live(const char *path)
{
	struct node *n = find(path);
	struct stat st;
	if (n && (stat(path, &st) < 0 || st.st_dev != n->dev || st.st_ino != n->ino)) {
		unlink_node(n);
		n = NULL;
	}
	return n;
}

static void mark_dirty(struct node *n, int64_t off, int64_t len)
{
	if (len <= 0)
		return;
	for (int64_t s = off / SECTOR; s <= (off + len - 1) / SECTOR; s++)
		n->dirty[s / 8] |= (unsigned char)(1u << (s % 8));
}

static int is_dirty(const struct node *n, int64_t s)
{
	return (n->dirty[s / 8] >> (s % 8)) & 1;
}

/* Makes room for size bytes, zero-filled and dirty past the old size. */
static void node_resize(struct node *n, int64_t size)
{
	if ((size_t)size > n->cap || !n->cap) {
		size_t cap = n->cap ? n->cap : 64 * 1024;
		while (cap < (size_t)size)
			cap *= 2;
		n->data = realloc(n->data, cap);
		size_t old_bits = n->cap / SECTOR / 8 + 1, bits = cap / SECTOR / 8 + 1;
		n->dirty = realloc(n->dirty, bits);
		if (!n->data || !n->dirty) {
			fprintf(stderr, "powercut_vfs: out of memory\n");
			abort();
		}
		memset(n->dirty + old_bits, 0, bits - old_bits);
		if (!n->cap)
			memset(n->dirty, 0, bits);
		n->cap = cap;
	}
	if (size > n->size) {
		memset(n->data + n->size, 0, (size_t)(size - n->size));
		mark_dirty(n, n->size, size - n->size);
	}
	n->size = size;
}

/* Reads the real file (the durable image) into a new node. */
static struct node *node_load(const char *path, sqlite3_file *real)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->path = xstrdup(path);
	sqlite3_int64 size = 0;
	if (real->pMethods->xFileSize(real, &size) != SQLITE_OK)
		size = 0;
	node_resize(n, size);
	if (size > 0 && real->pMethods->xRead(real, n->data, (int)size, 0) != SQLITE_OK) {
		node_free(n);
		return NULL;
	}
	memset(n->dirty, 0, n->cap / SECTOR / 8 + 1);
	n->durable_size = size;
	n->next = g.nodes;
	g.nodes = n;
	return n;
}

/* The directory of path is synced: every entry in it is durable. */
static void dir_sync(const char *path)
{
	g.count.dir_syncs++;
	for (struct node *n = g.nodes; n; n = n->next)
		if (same_dir(n->path, path))
			n->name_pending = 0;
	for (struct gone **pp = &g.gone; *pp;) {
		struct gone *x = *pp;
		if (same_dir(x->path, path)) {
			*pp = x->next;
			free(x->path);
			free(x->data);
			free(x);
		} else {
			pp = &x->next;
		}
	}
}

/* ---- the cut ---- */

static void land(const struct node *n, int64_t off, int64_t len)
{
	struct landed *l = xmalloc(sizeof(*l) + (size_t)(len > 0 ? len : 0));
	l->next = NULL;
	l->path = xstrdup(n->path);
	l->off = off;
	l->len = len;
	if (len > 0)
		memcpy(l->data, n->data + off, (size_t)len);
	*g.landed_tail = l;
	g.landed_tail = &l->next;
}

static void land_sector(struct node *n, int64_t s)
{
	int64_t off = s * SECTOR, len = n->size - off;
	if (len <= 0)
		return;
	land(n, off, len < SECTOR ? len : SECTOR);
	n->dirty[s / 8] &= (unsigned char)~(1u << (s % 8));
}

static void power_loss(const char *what, const struct node *at)
{
	struct pcv_cut_info *ci = &g.info;
	memset(ci, 0, sizeof(*ci));
	ci->happened = 1;
	ci->kind = g.kind;
	ci->op = g.ops;
	ci->what = what;
	snprintf(ci->file, sizeof(ci->file), "%s", at ? base_name(at->path) : "-");
	g.down = 1;
	g.count.cuts++;
	if (g.kind >= PCV_CUT_TEAR && g.last) {
		/* The write in flight: its first k sectors landed. */
		struct node *n = g.last;
		int64_t s0 = g.last_off / SECTOR, s1 = (g.last_off + g.last_len - 1) / SECTOR;
		uint64_t total = (uint64_t)(s1 - s0 + 1);
		uint64_t k = total > 1 ? 1 + rnd() % (total - 1) : rnd() % 2;
		for (uint64_t i = 0; i < k; i++)
			if (is_dirty(n, s0 + (int64_t)i))
				land_sector(n, s0 + (int64_t)i);
		ci->torn_kept = (unsigned)k;
		ci->torn_total = (unsigned)total;
		if (k > 0 && k < total)
			g.count.torn++;
	}
	for (struct node *n = g.nodes; n; n = n->next) {
		if (g.kind == PCV_CUT_SCATTER && n->size < n->durable_size && rnd() % 2)
			land(n, n->size, -1);
		for (int64_t s = 0; s <= n->size / SECTOR; s++) {
			if (!is_dirty(n, s) || s * SECTOR >= n->size)
				continue;
			if (g.kind == PCV_CUT_SCATTER && rnd() % 2) {
				land_sector(n, s);
				ci->scatter_kept++;
			} else {
				ci->lost++;
			}
		}
	}
}

/* Counts an operation; 1 if the power goes now. */
static int tick(void)
{
	g.ops++;
	return g.cut_at && g.ops >= g.cut_at;
}

/* ---- io methods ---- */

static int pc_close(sqlite3_file *file)
{
	struct pcv_file *f = (struct pcv_file *)file;
	int rc = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
	struct node *n = f->node;
	if (n && --n->nopen == 0 && n->detached)
		node_free(n);
	f->node = NULL;
	g.nopen--;
	return rc;
}

static int pc_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
	struct pcv_file *f = (struct pcv_file *)file;
	struct node *n = f->node;
	if (!n)
		return f->real->pMethods->xRead(f->real, buf, amt, off);
	if (g.down)
		return SQLITE_IOERR_READ;
	int64_t have = n->size - off;
	if (have >= amt) {
		memcpy(buf, n->data + off, (size_t)amt);
		return SQLITE_OK;
	}
	if (have < 0)
		have = 0;
	if (have)
		memcpy(buf, n->data + off, (size_t)have);
	memset((char *)buf + have, 0, (size_t)(amt - have));
	return SQLITE_IOERR_SHORT_READ;
}

static void apply_write(struct node *n, const void *buf, int amt, int64_t off)
{
	if (off + amt > n->size)
		node_resize(n, off + amt);
	memcpy(n->data + off, buf, (size_t)amt);
	mark_dirty(n, off, amt);
	if (n->detached)
		return;
	g.last = n;
	g.last_off = off;
	g.last_len = amt;
}

static int pc_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
	struct pcv_file *f = (struct pcv_file *)file;
	struct node *n = f->node;
	if (!n)
		return f->real->pMethods->xWrite(f->real, buf, amt, off);
	if (g.down)
		return SQLITE_IOERR_WRITE;
	g.count.writes++;
	g.count.db_writes += n->main_db;
	apply_write(n, buf, amt, off);
	if (tick()) {
		power_loss("write", n);
		return SQLITE_IOERR_WRITE;
	}
	return SQLITE_OK;
}

static int pc_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct pcv_file *f = (struct pcv_file *)file;
	struct node *n = f->node;
	if (!n)
		return f->real->pMethods->xTruncate(f->real, size);
	if (g.down)
		return SQLITE_IOERR_TRUNCATE;
	g.count.truncates++;
	if (tick()) {
		power_loss("truncate", n);
		return SQLITE_IOERR_TRUNCATE;
	}
	node_resize(n, size);
	if (g.last == n && g.last_off + g.last_len > size)
		g.last = NULL;
	return SQLITE_OK;
}

static int pc_sync(sqlite3_file *file, int flags)
{
	struct pcv_file *f = (struct pcv_file *)file;
	struct node *n = f->node;
	if (!n)
		return f->real->pMethods->xSync(f->real, flags);
	if (g.down)
		return SQLITE_IOERR_FSYNC;
	g.count.syncs++;
	if (tick()) {
		power_loss("sync", n);
		return SQLITE_IOERR_FSYNC;
	}
	if (g.lying && n->main_db)
		return SQLITE_OK;
	/* Copy the pending sectors to the real file, which is the durable
	 * image, in runs of at most 64 KiB (the unix VFS expects page-sized
	 * writes: it cannot write 128 KiB or more at once). No real fsync: the
	 * machine itself never loses power here. */
	sqlite3_file *r = f->real;
	for (int64_t s = 0; s * SECTOR < n->size; s++) {
		if (!is_dirty(n, s))
			continue;
		int64_t e = s;
		while (e - s < 127 && (e + 1) * SECTOR < n->size && is_dirty(n, e + 1))
			e++;
		int64_t off = s * SECTOR, end = (e + 1) * SECTOR;
		if (end > n->size)
			end = n->size;
		int rc = r->pMethods->xWrite(r, n->data + off, (int)(end - off), off);
		if (rc != SQLITE_OK)
			return rc;
		s = e;
	}
	if (n->durable_size != n->size) {
		int rc = r->pMethods->xTruncate(r, n->size);
		if (rc != SQLITE_OK)
			return rc;
	}
	memset(n->dirty, 0, n->cap / SECTOR / 8 + 1);
	n->durable_size = n->size;
	if (g.last == n)
		g.last = NULL;
	if (f->dirsync) {
		f->dirsync = 0;
		dir_sync(n->path);
	}
	return SQLITE_OK;
}

static int pc_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct pcv_file *f = (struct pcv_file *)file;
	if (!f->node)
		return f->real->pMethods->xFileSize(f->real, size);
	if (g.down)
		return SQLITE_IOERR_FSTAT;
	*size = f->node->size;
	return SQLITE_OK;
}

static int pc_lock(sqlite3_file *file, int lock)
{
	struct pcv_file *f = (struct pcv_file *)file;
	return f->real->pMethods->xLock(f->real, lock);
}

static int pc_unlock(sqlite3_file *file, int lock)
{
	struct pcv_file *f = (struct pcv_file *)file;
	return f->real->pMethods->xUnlock(f->real, lock);
}

static int pc_check_reserved(sqlite3_file *file, int *out)
{
	struct pcv_file *f = (struct pcv_file *)file;
	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int pc_file_control(sqlite3_file *file, int op, void *arg)
{
	struct pcv_file *f = (struct pcv_file *)file;
	/* These would size the real file behind the model's back. */
	if (f->node && (op == SQLITE_FCNTL_SIZE_HINT || op == SQLITE_FCNTL_CHUNK_SIZE))
		return SQLITE_OK;
	if (f->node && op == SQLITE_FCNTL_MMAP_SIZE)
		return SQLITE_NOTFOUND;
	return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int pc_sector_size(sqlite3_file *file)
{
	struct pcv_file *f = (struct pcv_file *)file;
	return f->real->pMethods->xSectorSize(f->real);
}

static int pc_device_characteristics(sqlite3_file *file)
{
	struct pcv_file *f = (struct pcv_file *)file;
	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* The wal-index (-shm) is shared memory: passed through. */
static int pc_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
	struct pcv_file *f = (struct pcv_file *)file;
	if (g.down)
		return SQLITE_IOERR_SHMMAP;
	return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int pc_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	struct pcv_file *f = (struct pcv_file *)file;
	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void pc_shm_barrier(sqlite3_file *file)
{
	struct pcv_file *f = (struct pcv_file *)file;
	f->real->pMethods->xShmBarrier(f->real);
}

static int pc_shm_unmap(sqlite3_file *file, int del)
{
	struct pcv_file *f = (struct pcv_file *)file;
	return f->real->pMethods->xShmUnmap(f->real, del);
}

/* Version 2: no xFetch, so SQLite never reads the real file through mmap. */
static const sqlite3_io_methods pc_io = {
    .iVersion = 2,
    .xClose = pc_close,
    .xRead = pc_read,
    .xWrite = pc_write,
    .xTruncate = pc_truncate,
    .xSync = pc_sync,
    .xFileSize = pc_file_size,
    .xLock = pc_lock,
    .xUnlock = pc_unlock,
    .xCheckReservedLock = pc_check_reserved,
    .xFileControl = pc_file_control,
    .xSectorSize = pc_sector_size,
    .xDeviceCharacteristics = pc_device_characteristics,
    .xShmMap = pc_shm_map,
    .xShmLock = pc_shm_lock,
    .xShmBarrier = pc_shm_barrier,
    .xShmUnmap = pc_shm_unmap,
};

/* ---- vfs methods ---- */

static int pc_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                   int *out_flags)
{
	(void)vfs;
	struct pcv_file *f = (struct pcv_file *)file;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	const int modelled = SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL |
	                     SQLITE_OPEN_SUPER_JOURNAL | SQLITE_OPEN_WAL;
	int track = name && (flags & modelled);
	if (track && g.down)
		return SQLITE_IOERR;
	struct stat st;
	int existed = track && stat(name, &st) == 0;
	int rc = g.root->xOpen(g.root, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK)
		return rc;
	if (track) {
		struct node *n = find_live(name);
		if (!n && stat(name, &st) < 0) {
			f->real->pMethods->xClose(f->real);
			return SQLITE_IOERR;
		}
		if (!n) {
			n = node_load(name, f->real);
			if (!n) {
				f->real->pMethods->xClose(f->real);
				return SQLITE_IOERR;
			}
			n->name_pending = !existed;
			n->dev = st.st_dev;
			n->ino = st.st_ino;
		}
		n->nopen++;
		if (flags & SQLITE_OPEN_MAIN_DB)
			n->main_db = 1;
		f->node = n;
		f->dirsync = (flags & SQLITE_OPEN_CREATE) &&
		             (flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_SUPER_JOURNAL |
		                       SQLITE_OPEN_WAL));
	}
	g.nopen++;
	f->base.pMethods = &pc_io;
	return SQLITE_OK;
}

static int pc_delete(sqlite3_vfs *vfs, const char *path, int dirsync)
{
	(void)vfs;
	if (g.down)
		return SQLITE_IOERR_DELETE;
	struct node *n = find_live(path);
	if (!n || !n->name_pending) {
		/* The entry was durable: a cut before the next directory sync
		 * brings the file back as it is on disk. */
		size_t len = 0;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			struct stat st;
			struct gone *x = xmalloc(sizeof(*x));
			x->data = NULL;
			if (fstat(fd, &st) == 0 && st.st_size > 0) {
				x->data = xmalloc((size_t)st.st_size);
				ssize_t r = pread(fd, x->data, (size_t)st.st_size, 0);
				len = r > 0 ? (size_t)r : 0;
			}
			close(fd);
			x->path = xstrdup(path);
			x->len = len;
			x->next = g.gone;
			g.gone = x;
		}
	}
	int rc = g.root->xDelete(g.root, path, 0);
	if (n)
		unlink_node(n);
	if (dirsync)
		dir_sync(path);
	return rc;
}

static int pc_access(sqlite3_vfs *vfs, const char *path, int flags, int *out)
{
	(void)vfs;
	if (g.down)
		return SQLITE_IOERR_ACCESS;
	struct node *n = find_live(path);
	if (n && flags == SQLITE_ACCESS_EXISTS) {
		*out = n->size > 0; /* as the unix VFS: an empty file does not count */
		return SQLITE_OK;
	}
	return g.root->xAccess(g.root, path, flags, out);
}

static int pc_full_pathname(sqlite3_vfs *vfs, const char *path, int n, char *out)
{
	(void)vfs;
	return g.root->xFullPathname(g.root, path, n, out);
}

static void *pc_dlopen(sqlite3_vfs *vfs, const char *path)
{
	(void)vfs;
	return g.root->xDlOpen(g.root, path);
}

static void pc_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	g.root->xDlError(g.root, n, msg);
}

static void (*pc_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return g.root->xDlSym(g.root, h, sym);
}

static void pc_dlclose(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	g.root->xDlClose(g.root, h);
}

static int pc_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return g.root->xRandomness(g.root, n, out);
}

static int pc_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return g.root->xSleep(g.root, us);
}

static int pc_current_time(sqlite3_vfs *vfs, double *t)
{
	(void)vfs;
	return g.root->xCurrentTime(g.root, t);
}

static int pc_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	return g.root->xGetLastError ? g.root->xGetLastError(g.root, n, msg) : 0;
}

static int pc_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	(void)vfs;
	return g.root->xCurrentTimeInt64(g.root, t);
}

int pcv_register(void)
{
	if (g.root)
		return SQLITE_OK;
	sqlite3_vfs *root = sqlite3_vfs_find(NULL);
	if (!root || root->iVersion < 2)
		return SQLITE_ERROR;
	g.root = root;
	g.landed_tail = &g.landed;
	g.vfs = (sqlite3_vfs){
	    .iVersion = 2,
	    .szOsFile = (int)sizeof(struct pcv_file) + root->szOsFile,
	    .mxPathname = root->mxPathname,
	    .zName = PCV_NAME,
	    .xOpen = pc_open,
	    .xDelete = pc_delete,
	    .xAccess = pc_access,
	    .xFullPathname = pc_full_pathname,
	    .xDlOpen = pc_dlopen,
	    .xDlError = pc_dlerror,
	    .xDlSym = pc_dlsym,
	    .xDlClose = pc_dlclose,
	    .xRandomness = pc_randomness,
	    .xSleep = pc_sleep,
	    .xCurrentTime = pc_current_time,
	    .xGetLastError = pc_last_error,
	    .xCurrentTimeInt64 = pc_current_time64,
	};
	int rc = sqlite3_vfs_register(&g.vfs, 0);
	if (rc != SQLITE_OK)
		g.root = NULL;
	return rc;
}

void pcv_arm(uint64_t nth, enum pcv_cut_kind kind, uint64_t seed)
{
	g.cut_at = nth ? g.ops + nth : 0;
	g.kind = (unsigned)kind < PCV_CUT_KINDS ? kind : PCV_CUT_CLEAN;
	g.rng = seed;
}

void pcv_set_lying_db_sync(int on)
{
	g.lying = on;
}

void pcv_cut_now(void)
{
	if (!g.down)
		power_loss("reboot", NULL);
}

int pcv_is_down(void)
{
	return g.down;
}

uint64_t pcv_ops(void)
{
	return g.ops;
}

const struct pcv_cut_info *pcv_last_cut(void)
{
	return &g.info;
}

const struct pcv_counters *pcv_counters(void)
{
	return &g.count;
}

static int write_at(const char *path, int64_t off, const void *data, int64_t len, int create)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
	if (fd < 0)
		return errno == ENOENT && !create ? 0 : -errno;
	int rc = 0;
	if (len < 0) {
		if (ftruncate(fd, off) < 0)
			rc = -errno;
	} else if (len > 0 && pwrite(fd, data, (size_t)len, off) != (ssize_t)len) {
		rc = errno ? -errno : -EIO;
	}
	close(fd);
	return rc;
}

int pcv_reboot(void)
{
	if (g.nopen > 0)
		return -EBUSY;
	pcv_cut_now();
	int rc = 0, r;
	/* 1. What reached the platters before the power went. */
	while (g.landed) {
		struct landed *l = g.landed;
		g.landed = l->next;
		if ((r = write_at(l->path, l->off, l->data, l->len, 0)) < 0 && rc == 0)
			rc = r;
		free(l->path);
		free(l);
	}
	g.landed_tail = &g.landed;
	/* 2. Creations never made durable; the -shm is memory. */
	while (g.nodes) {
		struct node *n = g.nodes;
		g.nodes = n->next;
		if (n->name_pending && unlink(n->path) == 0)
			g.count.vanished++;
		if (n->main_db) {
			char shm[4096];
			snprintf(shm, sizeof(shm), "%s-shm", n->path);
			unlink(shm);
		}
		node_free(n);
	}
	/* 3. Unlinks never made durable. */
	while (g.gone) {
		struct gone *x = g.gone;
		g.gone = x->next;
		if ((r = write_at(x->path, 0, x->data, (int64_t)x->len, 1)) < 0 && rc == 0)
			rc = r;
		else
			g.count.unlink_undone++;
		free(x->path);
		free(x->data);
		free(x);
	}
	g.down = 0;
	g.ops = 0;
	g.cut_at = 0;
	g.last = NULL;
	return rc;
}
