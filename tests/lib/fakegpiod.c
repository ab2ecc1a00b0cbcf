/* The fake GPIO chip (fakegpiod.h): libgpiod 1.6's functions as hal/gpio.c
 * calls them, over a tree of files, and the helpers the tests drive it
 * with. */
#define _GNU_SOURCE /* ppoll */
#include "tests/lib/fakegpiod.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBGPIOD
#include <gpiod.h>
#endif

#define FG_MAX_LINES 1024
#define FG_CHIP      1000 /* a chip file's path */
#define FG_PATH      1100 /* a path under its lines */

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fakegpiod: %s %s: %s\n", what, path, strerror(errno));
	abort();
}

/* "<chip path>.lines/<off>/<leaf>" (leaf NULL: the line's directory). */
static int line_path(const char *chip, unsigned off, const char *leaf, char *out, size_t cap)
{
	int n = leaf ? snprintf(out, cap, "%s.lines/%u/%s", chip, off, leaf)
	             : snprintf(out, cap, "%s.lines/%u", chip, off);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int write_file(const char *path, const char *v, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
	if (fd < 0)
		return -1;
	size_t len = strlen(v);
	int rc = write(fd, v, len) == (ssize_t)len ? 0 : -1;
	close(fd);
	return rc;
}

static int read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* Parses a chip file: 0 and the line count and label, or -1 with ENOENT
 * (missing) or ENOTTY (something else is there). */
static int chip_parse(const char *path, unsigned *lines, char *label, size_t cap,
                      unsigned long long *gen)
{
	char buf[160], lab[64];
	unsigned n;
	unsigned long long g = 0;
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode) || read_file(path, buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "fakegpiod %u %63s %llu", &n, lab, &g) < 2 || n == 0 || n > FG_MAX_LINES) {
		errno = ENOTTY;
		return -1;
	}
	*lines = n;
	if (gen)
		*gen = g;
	if (label)
		snprintf(label, cap, "%s", lab);
	return 0;
}

static void chip_file(const char *root, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/dev/%s", root, name);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		die("path", name);
	}
}

/* ---- the test's side ---- */

static void mkdirs(const char *path)
{
	char p[FG_PATH];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			die("mkdir", p);
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		die("mkdir", p);
}

static void rmtree(const char *path)
{
	DIR *d = opendir(path);
	if (!d) {
		unlink(path);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char p[FG_PATH];
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		rmtree(p);
	}
	closedir(d);
	rmdir(path);
}

void fg_chip_add(const char *root, const char *name, unsigned lines, const char *label)
{
	char chip[FG_CHIP], p[FG_PATH], v[128];
	chip_file(root, name, chip, sizeof(chip));
	snprintf(p, sizeof(p), "%s/dev", root);
	mkdirs(p);
	for (unsigned i = 0; i < lines; i++) {
		if (line_path(chip, i, NULL, p, sizeof(p)) < 0)
			die("path", chip);
		mkdirs(p);
		if (line_path(chip, i, "value", p, sizeof(p)) < 0 ||
		    write_file(p, "0\n", O_TRUNC) < 0)
			die("write", p);
	}
	/* the chip file last: a handle never sees a chip without its lines.
	 * A generation tells a chip that came back from the one a handle
	 * opened (the file system may well reuse the inode). */
	static unsigned long long count;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long gen =
	    ((unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec) ^
	    ((unsigned long long)getpid() << 40) ^ ++count;
	snprintf(v, sizeof(v), "fakegpiod %u %s %llu\n", lines, label, gen);
	if (write_file(chip, v, O_TRUNC) < 0)
		die("write", chip);
}

void fg_chip_remove(const char *root, const char *name)
{
	char chip[FG_CHIP], p[FG_PATH], buf[128];
	unsigned lines = 0;
	chip_file(root, name, chip, sizeof(chip));
	if (chip_parse(chip, &lines, buf, sizeof(buf), NULL) < 0)
		lines = 0;
	if (unlink(chip) < 0 && errno != ENOENT)
		die("unlink", chip);
	/* after the unlink: a handle woken by 'X' finds the chip gone */
	for (unsigned i = 0; i < lines; i++) {
		if (line_path(chip, i, "edges", p, sizeof(p)) < 0)
			continue;
		int fd = open(p, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, "X", 1) != 1)
				die("write", p);
			close(fd);
		}
	}
	snprintf(p, sizeof(p), "%s.lines", chip);
	rmtree(p);
}

int fg_line_set(const char *root, const char *name, unsigned line, int level)
{
	char chip[FG_CHIP], p[FG_PATH];
	chip_file(root, name, chip, sizeof(chip));
	int old = fg_line_get(root, name, line);
	if (old < 0 || line_path(chip, line, "value", p, sizeof(p)) < 0)
		die("no such line on", chip);
	level = !!level;
	if (write_file(p, level ? "1\n" : "0\n", O_TRUNC) < 0)
		die("write", p);
	if (old == level || line_path(chip, line, "edges", p, sizeof(p)) < 0)
		return 0;
	/* ENXIO (no reader) or ENOENT: nobody watches the line's edges */
	int fd = open(p, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, level ? "R" : "F", 1) != 1)
		die("write", p);
	close(fd);
	return 1;
}

int fg_line_get(const char *root, const char *name, unsigned line)
{
	char chip[FG_CHIP], p[FG_PATH], buf[16];
	chip_file(root, name, chip, sizeof(chip));
	if (line_path(chip, line, "value", p, sizeof(p)) < 0 || read_file(p, buf, sizeof(buf)) < 0)
		return -1;
	return buf[0] == '1';
}

const char *fg_line_history(const char *root, const char *name, unsigned line, char *buf,
                            size_t cap)
{
	char chip[FG_CHIP], p[FG_PATH];
	chip_file(root, name, chip, sizeof(chip));
	if (line_path(chip, line, "history", p, sizeof(p)) < 0 || read_file(p, buf, cap) < 0)
		buf[0] = 0;
	return buf;
}

void fg_line_history_clear(const char *root, const char *name, unsigned line)
{
	char chip[FG_CHIP], p[FG_PATH];
	chip_file(root, name, chip, sizeof(chip));
	if (line_path(chip, line, "history", p, sizeof(p)) == 0)
		unlink(p);
}

int fg_line_requested(const char *root, const char *name, unsigned line)
{
	char chip[FG_CHIP], p[FG_PATH];
	chip_file(root, name, chip, sizeof(chip));
	if (line_path(chip, line, "request", p, sizeof(p)) < 0)
		return 0;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd); /* drops our lock, if we got it */
	return held;
}

#ifdef HAVE_LIBGPIOD
/* ---- libgpiod's side ---- */

enum { FREE = 0, REQ_INPUT, REQ_OUTPUT, REQ_EVENTS };

struct gpiod_line {
	struct gpiod_chip *chip;
	unsigned off;
	int state;
	int req_fd; /* the flock'd request file */
	int ev_fd;  /* the edges FIFO */
	int value;  /* an output's value */
};

struct gpiod_chip {
	char path[FG_CHIP];
	unsigned long long gen;
	unsigned n;
	char label[64];
	struct gpiod_line **lines;
};

/* The chip this handle opened is still there: the same file (a chip that
 * went and came back is a new device; old handles stay dead). */
static int alive(const struct gpiod_chip *c)
{
	unsigned n;
	unsigned long long gen;
	if (chip_parse(c->path, &n, NULL, 0, &gen) < 0 || gen != c->gen) {
		errno = ENODEV;
		return 0;
	}
	return 1;
}

struct gpiod_chip *gpiod_chip_open(const char *path)
{
	unsigned n;
	unsigned long long gen;
	char label[64];
	if (strlen(path) >= FG_CHIP) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (chip_parse(path, &n, label, sizeof(label), &gen) < 0)
		return NULL;
	struct gpiod_chip *c = calloc(1, sizeof(*c));
	if (!c || !(c->lines = calloc(n, sizeof(*c->lines)))) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(c->label, sizeof(c->label), "%s", label);
	c->gen = gen;
	c->n = n;
	return c;
}

/* libgpiod scans /dev; the fake scans $FAKEGPIOD_DEV (default /dev), so a
 * test can point the label lookup at its tree. */
struct gpiod_chip *gpiod_chip_open_by_label(const char *label)
{
	const char *dir = getenv("FAKEGPIOD_DEV");
	if (!dir || !*dir)
		dir = "/dev";
	DIR *d = opendir(dir);
	if (!d) {
		errno = ENOENT;
		return NULL;
	}
	struct dirent *e;
	struct gpiod_chip *found = NULL;
	while (!found && (e = readdir(d))) {
		char p[FG_PATH];
		if (strncmp(e->d_name, "gpiochip", 8) != 0 || strchr(e->d_name, '.'))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		struct gpiod_chip *c = gpiod_chip_open(p);
		if (c && !strcmp(c->label, label))
			found = c;
		else
			gpiod_chip_close(c);
	}
	closedir(d);
	if (!found)
		errno = ENOENT;
	return found;
}

static void line_release(struct gpiod_line *l)
{
	if (l->ev_fd >= 0)
		close(l->ev_fd);
	if (l->req_fd >= 0)
		close(l->req_fd); /* drops the flock */
	l->ev_fd = l->req_fd = -1;
	l->state = FREE;
}

void gpiod_chip_close(struct gpiod_chip *chip)
{
	if (!chip)
		return;
	for (unsigned i = 0; i < chip->n; i++) {
		if (chip->lines[i]) {
			line_release(chip->lines[i]);
			free(chip->lines[i]);
		}
	}
	free(chip->lines);
	free(chip);
}

unsigned int gpiod_chip_num_lines(struct gpiod_chip *chip)
{
	return chip->n;
}

struct gpiod_line *gpiod_chip_get_line(struct gpiod_chip *chip, unsigned int offset)
{
	if (offset >= chip->n) {
		errno = EINVAL;
		return NULL;
	}
	if (!chip->lines[offset]) {
		struct gpiod_line *l = calloc(1, sizeof(*l));
		if (!l) {
			errno = ENOMEM;
			return NULL;
		}
		*l = (struct gpiod_line){.chip = chip, .off = offset, .req_fd = -1, .ev_fd = -1};
		chip->lines[offset] = l;
	}
	return chip->lines[offset];
}

static int record(struct gpiod_line *l, int value)
{
	char p[FG_PATH];
	if (line_path(l->chip->path, l->off, "value", p, sizeof(p)) < 0 ||
	    write_file(p, value ? "1\n" : "0\n", O_TRUNC) < 0 ||
	    line_path(l->chip->path, l->off, "history", p, sizeof(p)) < 0 ||
	    write_file(p, value ? "1" : "0", O_APPEND) < 0) {
		errno = ENODEV;
		return -1;
	}
	l->value = value;
	return 0;
}

static int request(struct gpiod_line *l, const char *consumer, int state, int value)
{
	char p[FG_PATH];
	if (l->state != FREE) {
		errno = EBUSY;
		return -1;
	}
	if (!alive(l->chip))
		return -1;
	if (line_path(l->chip->path, l->off, "request", p, sizeof(p)) < 0)
		return -1;
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		errno = ENODEV;
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		errno = EBUSY; /* another holder: the kernel's answer */
		return -1;
	}
	/* the consumer, as gpioinfo would show it */
	if (ftruncate(fd, 0) < 0 ||
	    write(fd, consumer ? consumer : "", strlen(consumer ? consumer : "")) < 0) {
		close(fd);
		errno = ENODEV;
		return -1;
	}
	l->req_fd = fd;
	l->state = state;
	if (state == REQ_OUTPUT && record(l, !!value) < 0) {
		line_release(l);
		errno = ENODEV;
		return -1;
	}
	if (state == REQ_EVENTS) {
		if (line_path(l->chip->path, l->off, "edges", p, sizeof(p)) < 0 ||
		    ((mkfifo(p, 0600) < 0 && errno != EEXIST)) ||
		    /* read-write: the fake is a writer of its own, so the FIFO
		     * never reports a hang-up between the test's writes */
		    (l->ev_fd = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0) {
			line_release(l);
			errno = ENODEV;
			return -1;
		}
	}
	return 0;
}

int gpiod_line_request_input(struct gpiod_line *line, const char *consumer)
{
	return request(line, consumer, REQ_INPUT, 0);
}

int gpiod_line_request_output(struct gpiod_line *line, const char *consumer, int default_val)
{
	return request(line, consumer, REQ_OUTPUT, default_val);
}

int gpiod_line_request_both_edges_events(struct gpiod_line *line, const char *consumer)
{
	return request(line, consumer, REQ_EVENTS, 0);
}

int gpiod_line_get_value(struct gpiod_line *line)
{
	char p[FG_PATH], buf[16];
	if (line->state == FREE) {
		errno = EPERM;
		return -1;
	}
	if (!alive(line->chip))
		return -1;
	if (line->state == REQ_OUTPUT)
		return line->value;
	if (line_path(line->chip->path, line->off, "value", p, sizeof(p)) < 0 ||
	    read_file(p, buf, sizeof(buf)) < 0) {
		errno = ENODEV;
		return -1;
	}
	return buf[0] == '1';
}

int gpiod_line_set_value(struct gpiod_line *line, int value)
{
	if (line->state != REQ_OUTPUT) {
		errno = EPERM;
		return -1;
	}
	if (!alive(line->chip))
		return -1;
	return record(line, !!value);
}

int gpiod_line_event_get_fd(struct gpiod_line *line)
{
	if (line->state != REQ_EVENTS) {
		errno = EPERM;
		return -1;
	}
	return line->ev_fd;
}

int gpiod_line_event_wait(struct gpiod_line *line, const struct timespec *timeout)
{
	if (line->state != REQ_EVENTS) {
		errno = EPERM;
		return -1;
	}
	struct pollfd pfd = {.fd = line->ev_fd, .events = POLLIN | POLLPRI};
	int rc = ppoll(&pfd, 1, timeout, NULL);
	if (rc < 0)
		return -1;
	return rc > 0 ? 1 : 0;
}

int gpiod_line_event_read(struct gpiod_line *line, struct gpiod_line_event *event)
{
	char c;
	if (line->state != REQ_EVENTS) {
		errno = EPERM;
		return -1;
	}
	ssize_t n = read(line->ev_fd, &c, 1);
	if (n < 0)
		return -1; /* EAGAIN: where libgpiod would block */
	if (n == 0 || c == 'X' || !alive(line->chip)) {
		errno = ENODEV;
		return -1;
	}
	memset(event, 0, sizeof(*event));
	clock_gettime(CLOCK_MONOTONIC, &event->ts);
	event->event_type = c == 'R' ? GPIOD_LINE_EVENT_RISING_EDGE : GPIOD_LINE_EVENT_FALLING_EDGE;
	return 0;
}
#endif
