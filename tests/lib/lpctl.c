/* The proxy's port files and control channel; see lpctl.h. */
#include "tests/lib/lpctl.h"

#include "tests/lib/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

int lpc_port_file(const char *path)
{
	FILE *f = fopen(path, "r");
	int port = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%d", &port) != 1 || port < 1 || port > 65535)
		port = 0;
	fclose(f);
	return port;
}

int lpc_wait_ports(const char *port_file, const char *ctl_file, int wait_ms, int *port,
                   int *ctl_port)
{
	int64_t until = tu_now_ms() + wait_ms;
	for (;;) {
		*port = lpc_port_file(port_file);
		*ctl_port = lpc_port_file(ctl_file);
		if (*port > 0 && *ctl_port > 0)
			return 0;
		if (tu_now_ms() >= until)
			return -ETIMEDOUT;
		usleep(10000);
	}
}

int lpc_start(const char *dir, int connect_port, char *const extra[], int wait_ms, pid_t *pid,
              int *port, int *ctl_port)
{
	char path[512], pf[600], cf[600], conn[64];
	const char *build = getenv("ESS_BUILD");
	*pid = 0;
	snprintf(path, sizeof(path), "%s/tools/linkproxy",
	         build && build[0] ? build : "build/host");
	if (access(path, X_OK) != 0)
		return -ENOENT;
	snprintf(pf, sizeof(pf), "%s/lp.port", dir);
	snprintf(cf, sizeof(cf), "%s/lp.ctl", dir);
	snprintf(conn, sizeof(conn), "127.0.0.1:%d", connect_port);
	char *argv[32] = {path,          "--listen", "127.0.0.1:0",         "--connect", conn,
	                  "--port-file", pf,         "--control-port-file", cf};
	int n = 9;
	for (int i = 0; extra && extra[i]; i++) {
		if (n == 29)
			return -E2BIG;
		argv[n++] = extra[i];
	}
	argv[n] = NULL;
	/* stale port files from an earlier proxy in dir would be read at once */
	unlink(pf);
	unlink(cf);
	pid_t parent = getpid();
	*pid = fork();
	if (*pid < 0) {
		int err = -errno;
		*pid = 0;
		return err;
	}
	if (*pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(path, argv);
		_exit(127);
	}
	return lpc_wait_ports(pf, cf, wait_ms, port, ctl_port);
}

int lpc_cmd(int ctl_port, const char *cmd, char *ans, size_t cap)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)ctl_port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char line[512];
	size_t len = strlen(cmd), n = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	errno = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, cmd, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
		int e = errno ? errno : EIO;
		close(fd);
		return -e;
	}
	while (n < sizeof(line) - 1) {
		ssize_t k = read(fd, line + n, sizeof(line) - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
		if (memchr(line, '\n', n))
			break;
	}
	close(fd);
	line[n] = 0;
	line[strcspn(line, "\n")] = 0;
	if (ans && cap)
		snprintf(ans, cap, "%s", line);
	return strncmp(line, "ok", 2) == 0 ? 0 : -EINVAL;
}
