/* Child processes of the tests and benchmarks (proc.h). */
#include "tests/lib/proc.h"

#include "tests/lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t tp_spawn(const char *log, char *const argv[], char *const env[])
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		abort();
	}
	if (pid == 0) {
		setpgid(0, 0);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		for (size_t i = 0; env && env[i]; i++) {
			const char *eq = strchr(env[i], '=');
			if (eq) {
				char name[128];
				snprintf(name, sizeof(name), "%.*s", (int)(eq - env[i]), env[i]);
				setenv(name, eq + 1, 1);
			} else {
				unsetenv(env[i]);
			}
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	setpgid(pid, pid); /* also here: no race with a kill right after */
	return pid;
}

static int status_of(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int tp_wait(pid_t *pid, int wait_ms)
{
	int status;
	if (*pid <= 0)
		return -1;
	int64_t until = tu_now_ms() + wait_ms;
	do {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = 0;
			return status_of(status);
		}
		usleep(10000);
	} while (tu_now_ms() < until);
	return -1;
}

int tp_stop(pid_t *pid, int sig, int wait_ms)
{
	if (*pid <= 0)
		return -1;
	pid_t group = *pid;
	kill(-group, sig);
	int rc = tp_wait(pid, wait_ms);
	if (rc < 0) {
		int status;
		kill(-group, SIGKILL);
		waitpid(group, &status, 0);
		rc = 999;
		*pid = 0;
	}
	kill(-group, SIGKILL); /* anything left in its group (gpsfake's gpsd) */
	return rc;
}

int tp_run(const char *prog, char *const argv[], char *out, size_t cap)
{
	FILE *f = tmpfile(); /* removed when closed */
	if (!f) {
		perror("tmpfile");
		abort();
	}
	int fd = fileno(f);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		abort();
	}
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(prog, argv);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	ssize_t n = pread(fd, out, cap - 1, 0);
	out[n > 0 ? n : 0] = 0;
	fclose(f);
	return status_of(status);
}

/* 1 when a client watching gpsd on port hears of a device (or a report)
 * within ms. */
static int gpsd_has_device(int port, int ms)
{
	int64_t end = tu_now_ms() + ms;
	while (tu_now_ms() < end) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return 0;
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			close(fd);
			usleep(100000);
			continue;
		}
		static const char watch[] = "?WATCH={\"enable\":true,\"json\":true};\n";
		int found = 0;
		char buf[8192];
		size_t have = 0;
		if (write(fd, watch, sizeof(watch) - 1) == (ssize_t)(sizeof(watch) - 1)) {
			while (!found && tu_now_ms() < end) {
				struct pollfd p = {.fd = fd, .events = POLLIN};
				int left = (int)(end - tu_now_ms());
				if (poll(&p, 1, left > 0 ? left : 0) <= 0)
					break;
				ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
				if (r <= 0)
					break;
				have += (size_t)r;
				buf[have] = '\0';
				found = strstr(buf, "\"class\":\"DEVICE\",") != NULL ||
				        strstr(buf, "\"class\":\"TPV\"") != NULL;
				if (have >
				    sizeof(buf) / 2) { /* keep the tail: a class may straddle */
					memmove(buf, buf + have - 64, 64);
					have = 64;
				}
			}
		}
		close(fd);
		return found;
	}
	return 0;
}

pid_t tp_gpsfake(const char *log, int port, const char *nmea, const char *cycle)
{
	char portstr[16], path[1024], cyc[32];
	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(path, sizeof(path), "%s", nmea);
	snprintf(cyc, sizeof(cyc), "%s", cycle);
	char *argv[] = {"gpsfake", "-P", portstr, "-1", "-q", "-n", "-c", cyc, path, NULL};
	for (int attempt = 0; attempt < 3; attempt++) {
		pid_t pid = tp_spawn(log, argv, NULL);
		if (gpsd_has_device(port, 8000))
			return pid;
		fprintf(stderr,
		        "# gpsfake on port %d: gpsd never got the receiver; starting it again\n",
		        port);
		tp_stop(&pid, SIGTERM, 2000);
	}
	return 0;
}
