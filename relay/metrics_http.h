/*
 * The metrics listener (listen on ADDR port N metrics, SPEC section
 * 12): plain HTTP, GET /metrics only, served by the relay.
 */
#ifndef SMTPD_METRICS_HTTP_H
#define SMTPD_METRICS_HTTP_H

#include <stdint.h>

#include "imsg.h"
#include "proc.h"
#include "proto.h"

#define METRICS_CONNS_MAX	16	/* clients at once */
#define METRICS_LISTENERS_MAX	LISTEN_METRICS_MAX
#define METRICS_REQUEST_MS	5000	/* the whole request must come in this */
#define METRICS_LINGER_MS	2000	/* then the answer must be read in this */
#define METRICS_ID_BIT		0x80000000U	/* its CTL_REQ_STATS ids */

typedef void (*metrics_send_cb)(struct imsg_out *);

void	metrics_http_init(metrics_send_cb);
int	metrics_http_on_socket(struct proc_chan *, struct imsg *);
void	metrics_http_reload_begin(void);
void	metrics_http_reload_end(void);
void	metrics_http_result(uint32_t id, const char *parent_text);

#endif
