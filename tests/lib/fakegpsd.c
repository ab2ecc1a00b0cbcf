#include "tests/lib/fakegpsd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The child: one client at a time, a line per tick. */
static void serve(int lfd, int interval_ms, fakegpsd_gen gen, void *arg)
{
	static const char banner[] = "{\"class\":\"VERSION\",\"release\":\"3.22\",\"rev\":\"3.22\","
	                             "\"proto_major\":3,\"proto_minor\":14}\n";
	enum { CAP = 128 * 1024 };
	char *line = malloc(CAP + 1);
	int cfd = -1;
	unsigned tick = 0;
	int64_t next = wall_ms();
	if (!line)
		_exit(1);
	for (;;) {
		struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = cfd, .events = POLLIN}};
		int64_t wait = next - wall_ms();
		int n = poll(p, cfd >= 0 ? 2 : 1, wait > 0 ? (int)wait : 0);
		if (n < 0 && errno != EINTR)
			_exit(1);
		if (p[0].revents & POLLIN) {
			int fd = accept(lfd, NULL, NULL);
			if (fd >= 0) {
				if (cfd >= 0)
					close(cfd);
				cfd = fd;
				if (write_all(cfd, banner, sizeof(banner) - 1) < 0) {
					close(cfd);
					cfd = -1;
				}
			}
		}
		if (cfd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			char junk[512];
			if (read(cfd, junk, sizeof(junk)) <= 0) { /* ?WATCH and the like */
				close(cfd);
				cfd = -1;
			}
		}
		if (wall_ms() < next)
			continue;
		next += interval_ms;
		unsigned t = tick++; /* ticks go on without a client: a script's clock */
		if (cfd < 0)
			continue;
		int len = gen(arg, t, wall_ms(), line, CAP);
		if (len < 0) {
			close(cfd);
			cfd = -1;
		} else if (len > 0) {
			line[len] = '\n';
			if (write_all(cfd, line, (size_t)len + 1) < 0) {
				close(cfd);
				cfd = -1;
			}
		}
	}
}

pid_t fakegpsd_start(int port, int interval_ms, fakegpsd_gen gen, void *arg)
{
	int one = 1;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (lfd < 0)
		return -errno;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4) < 0) {
		int rc = -errno;
		close(lfd);
		return rc;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int rc = -errno;
		close(lfd);
		return rc;
	}
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGPIPE, SIG_IGN);
		serve(lfd, interval_ms, gen, arg);
		_exit(0);
	}
	close(lfd);
	return pid;
}

void fakegpsd_stop(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
	*pid = 0;
}

int fakegpsd_tpv(char *line, size_t cap, int mode, int64_t t_ms, double lat, double lon, double eph,
                 double speed)
{
	char t[64] = "";
	if (t_ms) {
		time_t s = (time_t)(t_ms / 1000);
		struct tm tm;
		gmtime_r(&s, &tm);
		char d[40];
		strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(t, sizeof(t), "\"time\":\"%s.%03dZ\",", d, (int)(t_ms % 1000));
	}
	return snprintf(line, cap,
	                "{\"class\":\"TPV\",\"device\":\"/dev/ttyFAKE\",\"mode\":%d,%s"
	                "\"lat\":%.7f,\"lon\":%.7f,\"altHAE\":5.0,\"eph\":%.1f,\"speed\":%.2f,"
	                "\"track\":10.0}",
	                mode, t, lat, lon, eph, speed);
}
