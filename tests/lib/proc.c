/* Child processes of the tests and benchmarks (proc.h). */
#include "tests/lib/proc.h"

#include "tests/lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
