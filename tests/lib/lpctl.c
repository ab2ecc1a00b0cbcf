/* The proxy's port files and control channel; see lpctl.h. */
#include "tests/lib/lpctl.h"

#include "tests/lib/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
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
