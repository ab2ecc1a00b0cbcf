/* Request signatures (section 2): ESS-Device, ESS-Timestamp and
 * ESS-Signature over "ESS-V1\nMETHOD\npath?query\ntimestamp\nsha256(body as
 * sent)", built with proto_sign_string so that server and agent cannot
 * disagree. Checked in this order: unknown_device, bad_signature, revoked
 * (410), clock_skew (more than PROTO_SKEW_S from the server's clock, with
 * server_time) — a revoked device hears it even with a wrong clock, and
 * only a genuine device is told the server's time.
 * Returns: 0 with dev filled and r->device_id set, or -1 with the error
 * answer set on r. */
#ifndef ESS_RS_AUTH_H
#define ESS_RS_AUTH_H

struct rs;
struct rs_req;
struct rs_device;

int auth_device(struct rs *rs, struct rs_req *r, struct rs_device *dev);

#endif
