/* A fake gpsd for the daemon-level GPS tests: a child process listening on
 * 127.0.0.1:PORT that speaks just enough of gpsd's JSON protocol for libgps
 * (a VERSION banner; the client's ?WATCH read and ignored) and then sends
 * whatever lines a generator makes, one tick every interval_ms: TPV reports
 * good or absurd, or plain garbage. Stopped by pid (fakegpsd_stop).
 *
 * The generator runs in the child: gen(arg, tick, now_ms, line, cap) writes
 * one line (without its newline) and returns its length; 0 sends nothing
 * this tick; -1 closes the client's connection (it may connect again).
 * tick counts from 0 at the start, one per interval, with or without a
 * client: a script can follow the wall clock. */
#ifndef ESS_TESTS_FAKEGPSD_H
#define ESS_TESTS_FAKEGPSD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef int (*fakegpsd_gen)(void *arg, unsigned tick, int64_t now_ms, char *line, size_t cap);

/* Returns the child's pid (it listens once this returns), or -errno. */
pid_t fakegpsd_start(int port, int interval_ms, fakegpsd_gen gen, void *arg);
/* SIGKILL by pid and reap; *pid set to 0. */
void fakegpsd_stop(pid_t *pid);

/* A TPV line: mode, time (unix ms, 0: none), lat, lon, eph (m), speed
 * (m/s). */
int fakegpsd_tpv(char *line, size_t cap, int mode, int64_t t_ms, double lat, double lon, double eph,
                 double speed);

#endif
