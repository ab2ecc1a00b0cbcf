/* The text the link-emulating proxy (tests/tools/linkproxy.c) accepts: its
 * control-channel commands, its addresses (loopback only) and its blackout
 * cycle. Pure parsing, no I/O.
 * Returns: 0, or -EINVAL with a message in err (always NUL-terminated). */
#ifndef ESS_LINK_CMD_H
#define ESS_LINK_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum link_cmd_kind {
	LINK_CMD_SET = 1,     /* set [delay MS] [jitter MS] [up KBIT] [down KBIT] */
	LINK_CMD_BLACKOUT,    /* blackout on|off */
	LINK_CMD_REFUSE,      /* refuse on|off */
	LINK_CMD_RESET_ALL,   /* reset all */
	LINK_CMD_RESET_AFTER, /* reset after-bytes N */
	LINK_CMD_STATS,       /* stats */
	LINK_CMD_QUIT,        /* quit */
	LINK_CMD_DROP_ALL,    /* drop all */
};

/* Which fields a "set" gave. */
enum { LINK_SET_DELAY = 1, LINK_SET_JITTER = 2, LINK_SET_UP = 4, LINK_SET_DOWN = 8 };

struct link_cmd {
	enum link_cmd_kind kind;
	int on;            /* BLACKOUT, REFUSE */
	uint64_t bytes;    /* RESET_AFTER */
	unsigned set;      /* SET: LINK_SET_* given */
	uint32_t delay_ms; /* round trip */
	uint32_t jitter_ms;
	uint32_t up_kbit; /* 0: unlimited */
	uint32_t down_kbit;
};

/* One line, without its newline; words separated by blanks. */
int link_cmd_parse(const char *line, struct link_cmd *cmd, char *err, size_t errlen);

/* "127.0.0.1:PORT", "[::1]:PORT" or "localhost:PORT". Any address outside
 * 127.0.0.0/8 and ::1 is refused: this tool never talks to anything else. */
int link_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, char *err,
                    size_t errlen);

/* "UP_S:DOWN_S" in seconds, fractions allowed ("30:120", "0.5:1.5"). */
int link_cycle_parse(const char *text, int64_t *up_ms, int64_t *down_ms, char *err, size_t errlen);

/* A decimal number in [0, max]; the whole string. */
int link_num_parse(const char *text, uint64_t max, uint64_t *out);

#endif
