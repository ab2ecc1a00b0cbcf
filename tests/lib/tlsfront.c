#include "tests/lib/tlsfront.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int sh(const char *cmd)
{
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int tlsfront_start(struct tlsfront *t, const char *dir, int upstream_port)
{
	char cmd[4096];
	memset(t, 0, sizeof(*t));
	if (sh("command -v nginx >/dev/null && command -v openssl >/dev/null") != 0)
		return -ENOENT;
	snprintf(
	    cmd, sizeof(cmd),
	    "cd %s && "
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
	    "-subj /CN=ess-test-ca -keyout ca.key -out ca.pem >/dev/null 2>&1 && "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost "
	    "-keyout srv.key -out srv.csr >/dev/null 2>&1 && "
	    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext && "
	    "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
	    "-extfile ext -out srv.pem >/dev/null 2>&1",
	    dir);
	if (sh(cmd) != 0)
		return -EIO;
	if ((size_t)snprintf(t->ca_file, sizeof(t->ca_file), "%s/ca.pem", dir) >=
	    sizeof(t->ca_file))
		return -ENAMETOOLONG;
	if ((size_t)snprintf(t->access_log, sizeof(t->access_log), "%s/tls.access", dir) >=
	    sizeof(t->access_log))
		return -ENAMETOOLONG;
	t->port = tu_free_port();
	/* http2 on the TLS listener: the agent multiplexes every request on
	 * one connection. Bodies up to the contract's 8 MiB; long polls held
	 * up to 60 s upstream. Sessions resumable (cache and tickets, as a
	 * device front should be); tls.access has a line per request,
	 * "<connection serial> <r if the session was resumed, else .>". */
	snprintf(
	    cmd, sizeof(cmd),
	    "cat > %s/nginx.conf <<EOF\n"
	    "daemon off; master_process off; pid %s/nginx.pid; error_log %s/nginx.err;\n"
	    "events {}\n"
	    "http { log_format conn '\\$connection \\$ssl_session_reused';\n"
	    " access_log %s/tls.access conn; client_body_temp_path %s; proxy_temp_path %s;\n"
	    " client_max_body_size 8m; ssl_session_cache builtin:1000; ssl_session_timeout 1h;\n"
	    " ssl_session_tickets on;\n"
	    " server { listen 127.0.0.1:%d ssl http2; ssl_certificate %s/srv.pem;\n"
	    "  ssl_certificate_key %s/srv.key;\n"
	    "  location / { proxy_pass http://127.0.0.1:%d; proxy_http_version 1.1;\n"
	    "   proxy_buffering off; proxy_request_buffering on; proxy_read_timeout 60s; } } }\n"
	    "EOF",
	    dir, dir, dir, dir, dir, dir, t->port, dir, dir, upstream_port);
	if (sh(cmd) != 0)
		return -EIO;
	t->pid = fork();
	if (t->pid < 0)
		return -errno;
	if (t->pid == 0) {
		char conf[600];
		snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
		/* it dies with the test or bench that started it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		execlp("nginx", "nginx", "-c", conf, "-e", "/dev/null", (char *)NULL);
		_exit(127);
	}
	snprintf(cmd, sizeof(cmd),
	         "for i in $(seq 50); do curl -s --cacert %s https://localhost:%d/admin/health "
	         "-o /dev/null && exit 0; sleep 0.1; done; exit 1",
	         t->ca_file, t->port);
	if (sh(cmd) != 0) {
		tlsfront_stop(t);
		return -ETIMEDOUT;
	}
	return 0;
}

void tlsfront_stop(struct tlsfront *t)
{
	if (t->pid <= 0)
		return;
	kill(t->pid, SIGTERM);
	for (int i = 0; i < 50; i++) {
		if (waitpid(t->pid, NULL, WNOHANG) == t->pid) {
			t->pid = 0;
			return;
		}
		usleep(20000);
	}
	kill(t->pid, SIGKILL);
	waitpid(t->pid, NULL, 0);
	t->pid = 0;
}

int tlsfront_sessions(const struct tlsfront *t, long long skip, long long *resumed, long long *full)
{
	char line[128];
	long long seen[256];
	int n = 0;
	*resumed = *full = 0;
	FILE *f = fopen(t->access_log, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		long long c;
		char r;
		if (sscanf(line, "%lld %c", &c, &r) != 2)
			continue;
		int known = 0;
		for (int i = 0; i < n; i++)
			known |= seen[i] == c;
		if (known || n == 256)
			continue;
		seen[n++] = c;
		if (n > skip)
			*(r == 'r' ? resumed : full) += 1;
	}
	fclose(f);
	return 0;
}
