/*
 * relay mode delivery: the upstream connections, fed from the
 * scheduler's ready list by route and upstream (SPEC 7.2).
 */
#ifndef SMTPD_FORWARD_H
#define SMTPD_FORWARD_H

#include <sys/socket.h>

#include <openssl/ssl.h>

#include "proto.h"
#include "queue.h"
#include "routes.h"
#include "upstream.h"

#define FWD_IDLE_MS		5000
#define FWD_STALL_MS		30000	/* then it no longer counts */
#define FWD_TICK_MS		1000	/* re-check stalls and rates */
#define FWD_FRESH_MS		1000	/* reused this soon: no RSET probe */

void	forward_init(const struct smtpd_conf *, const struct routes *,
	    upstream_resolve_cb);
void	forward_flush(void);
void	forward_reload(void);
int	forward_upstream(uint32_t, const char **);

#endif
