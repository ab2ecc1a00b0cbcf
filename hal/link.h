/* Network link state: so that syncing starts the moment a link comes up,
 * instead of when the sync engine's backoff next lets it try.
 *
 * Backends are ops tables (hostap's driver ops are the model): "netlink"
 * (an rtnetlink socket, NETLINK_ROUTE with RTMGRP_LINK and
 * RTMGRP_IPV4_IFADDR, on the event loop: no polling) and "none" (never
 * reports). on_up is called when a non-loopback interface becomes up and
 * running (carrier) and when one gets an IPv4 address (DHCP finished);
 * both mean "try the server now".
 *
 * The parser is separate and pure so that recorded messages can be fed to
 * it (tests, fuzzing); everything the kernel sends is length-checked.
 *
 * Functions return 0 or a negative errno. */
#ifndef ESS_HAL_LINK_H
#define ESS_HAL_LINK_H

#include <stddef.h>
#include <stdint.h>

struct loop;

enum hal_link_why { HAL_LINK_CARRIER = 0, HAL_LINK_ADDRESS };
const char *hal_link_why_str(enum hal_link_why w); /* "carrier", "address" */

typedef void (*hal_link_up_fn)(void *arg, const char *ifname, enum hal_link_why why);

/* ---- the parser ---- */
#define HAL_LINK_MAX_IFS 32
#define HAL_LINK_NAME    16 /* IFNAMSIZ */

struct hal_link_if {
	int index; /* 0: free slot */
	unsigned flags;
	int loopback;
	int running; /* IFF_UP and IFF_RUNNING */
	char name[HAL_LINK_NAME];
};

struct hal_link_tracker {
	int primed; /* the initial dump is done: changes from now on are news */
	struct hal_link_if ifs[HAL_LINK_MAX_IFS];
	uint64_t messages, malformed;
};

void hal_link_tracker_init(struct hal_link_tracker *t);
/* Parses one datagram of rtnetlink messages (RTM_NEWLINK, RTM_DELLINK,
 * RTM_NEWADDR, NLMSG_DONE, NLMSG_ERROR); calls up(arg, …) for every
 * interface that came up once primed. Malformed messages are counted and
 * skipped. Returns the number of up calls. */
int hal_link_parse(struct hal_link_tracker *t, const void *buf, size_t len, hal_link_up_fn up,
                   void *arg);
/* Non-loopback interfaces up and running now. */
int hal_link_running(const struct hal_link_tracker *t);

/* ---- the module ---- */
struct hal_link_params {
	struct loop *loop;
	hal_link_up_fn on_up;
	void *arg;
};

struct hal_link_stats {
	int running;        /* non-loopback links up and running now */
	uint64_t ups;       /* on_up calls */
	uint64_t messages;  /* rtnetlink messages seen */
	uint64_t malformed; /* skipped */
	uint64_t overruns;  /* ENOBUFS: the kernel dropped messages; state re-read */
};

struct hal_link_ops {
	const char *name;
	const char *desc;
	int (*open)(const struct hal_link_params *p, void **priv, char *err, size_t errlen);
	void (*close)(void *priv);
	void (*stats)(void *priv, struct hal_link_stats *st); /* NULL: zeroes */
};

struct hal_link;

/* Opens backend `name` ("netlink", "none"). -ENOENT for an unknown one. */
int hal_link_open(const char *name, const struct hal_link_params *p, struct hal_link **out,
                  char *err, size_t errlen);
void hal_link_close(struct hal_link *k); /* NULL is fine */
const char *hal_link_name(const struct hal_link *k);
void hal_link_stats(const struct hal_link *k, struct hal_link_stats *st);

extern const struct hal_link_ops hal_link_netlink_ops;
extern const struct hal_link_ops hal_link_none_ops;

#endif
