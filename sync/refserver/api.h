/* The two faces of the reference server, each a router over its paths:
 * the device API (docs/device-api.md) and the dispatcher API
 * (docs/refserver.md). http.c calls them once a request is whole.
 * Returns: RS_REPLY (an answer was set) or RS_HOLD (hold the request). */
#ifndef ESS_RS_API_H
#define ESS_RS_API_H

struct rs;
struct rs_req;

int api_device_handle(struct rs *rs, struct rs_req *r);
int api_dispatch_handle(struct rs *rs, struct rs_req *r);

#endif
