/* Child processes of the tests and benchmarks (essd, gpsfake, the skeleton):
 * each runs in its own process group with its output appended to a log
 * file, and is stopped by its pid (never by name: other engineers run the
 * same programs on this machine), with a SIGKILL fallback for the whole
 * group (gpsfake can outlive SIGTERM and leave its gpsd).
 *
 * Returns: as each prototype says; setup failures abort (a test that cannot
 * set up fails). */
#ifndef ESS_TESTS_PROC_H
#define ESS_TESTS_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* fork + exec of argv[0] (PATH searched) in a new process group, stdout and
 * stderr appended to log. env: NULL, or a NULL-terminated list of
 * "NAME=value" to set and "NAME" to remove in the child. */
pid_t tp_spawn(const char *log, char *const argv[], char *const env[]);

/* Sends sig to the process group, waits up to wait_ms for the leader, then
 * SIGKILLs the group. Returns the exit status, 128 + signal when killed by a
 * signal, 999 when it had to be SIGKILLed, -1 when *pid was 0. *pid = 0. */
int tp_stop(pid_t *pid, int sig, int wait_ms);

/* Waits up to wait_ms for the leader to exit by itself: its status as
 * tp_stop's (and *pid = 0), or -1 if it still runs (*pid kept). */
int tp_wait(pid_t *pid, int wait_ms);

/* Runs prog (PATH searched) with argv to its end, stdout and stderr
 * captured: the first cap - 1 bytes in out, NUL-terminated. Returns the
 * exit status, 128 + signal when killed by one. */
int tp_run(const char *prog, char *const argv[], char *out, size_t cap);

/* gpsfake replaying nmea (a log, paced at cycle seconds a sentence, once)
 * to a gpsd on 127.0.0.1:port, in its own process group (tp_spawn, output
 * appended to log), returned once gpsd has the fake receiver: a watching
 * client is told of the device or gets a report. gpsfake sometimes leaves
 * its gpsd without the receiver for good (seen under load: "DEVICES" empty
 * and nothing after it): then it is stopped and started again, three
 * times at most; a test fails on its subject, not on that. 0 when gpsd
 * never had the receiver (the last one is stopped). */
pid_t tp_gpsfake(const char *log, int port, const char *nmea, const char *cycle);

#endif
