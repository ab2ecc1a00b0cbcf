/* A fake GPIO chip for the unit tests: the libgpiod 1.6 functions that
 * hal/gpio.c calls, implemented over files under the HAL root
 * (HAL_SYSFS_ROOT), because this machine's kernel has neither gpio-sim nor
 * any /dev/gpiochip*. The unit tests link tests/lib/fakegpiod.c instead of
 * libgpiod (Makefile); every program links the real library.
 *
 * The tree, under the root:
 *
 *   dev/gpiochipN                  the chip: a regular file
 *                                  "fakegpiod LINES LABEL GENERATION\n" (the
 *                                  generation tells a chip that came back
 *                                  from the one a handle opened). Anything
 *                                  else there (an empty file, say) is "not a
 *                                  GPIO chip" (ENOTTY, as libgpiod says for
 *                                  a file that is no GPIO character device)
 *   dev/gpiochipN.lines/K/value    line K's level, "0" or "1": the fake
 *                                  writes it for an output, the test for an
 *                                  input (fg_line_set)
 *   dev/gpiochipN.lines/K/history  every value an output was driven to, one
 *                                  character each ("0" at the request, then
 *                                  one per set), appended by the fake
 *   dev/gpiochipN.lines/K/request  the consumer while requested; held with
 *                                  flock, so a second request is EBUSY as
 *                                  the kernel says, even in one process
 *   dev/gpiochipN.lines/K/edges    while requested for edge events: a FIFO,
 *                                  the line's event fd. fg_line_set writes
 *                                  'R' or 'F' for a level change, so the fd
 *                                  turns readable in the event loop;
 *                                  fg_chip_remove writes 'X' (the kernel's
 *                                  POLLHUP and ENODEV for a removed chip)
 *
 * A handle of a removed chip stays dead (ENODEV) even when a chip of the
 * same name comes back, as with the kernel: the user must request anew.
 * The fake follows libgpiod's errno conventions: NULL or -1 with errno set.
 *
 * The helpers below abort on setup failures, like faketree. */
#ifndef ESS_FAKEGPIOD_H
#define ESS_FAKEGPIOD_H

#include <stddef.h>

/* A chip "dev/NAME" with `lines` lines (all inputs reading 0) and a label. */
void fg_chip_add(const char *root, const char *name, unsigned lines, const char *label);
/* The chip goes away (unbound, unplugged): every edge fd of it wakes up and
 * reads ENODEV, every other call on its lines fails with ENODEV. */
void fg_chip_remove(const char *root, const char *name);
/* Drives an input line to level (0/1). A change is an edge for a line
 * requested for events. Returns 1 when an edge was queued, else 0. */
int fg_line_set(const char *root, const char *name, unsigned line, int level);
/* The line's level now (an output: what it was driven to), or -1 if the
 * chip or line is not there. */
int fg_line_get(const char *root, const char *name, unsigned line);
/* The output history (see above) into buf: "" when never driven. */
const char *fg_line_history(const char *root, const char *name, unsigned line, char *buf,
                            size_t cap);
/* Forgets the history (between phases of a test). */
void fg_line_history_clear(const char *root, const char *name, unsigned line);
/* 1 when some handle has the line requested now, else 0. */
int fg_line_requested(const char *root, const char *name, unsigned line);

#endif
