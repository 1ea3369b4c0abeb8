/*
 * A reused idle connection is probed with RSET before it takes a
 * message: a connection the upstream silently dropped, or an upstream
 * that hung, costs the probe's wait and not the message's.
 */
#include <errno.h>

#include "client.h"
#include "client_int.h"

int
client_probe(struct client *c, uint64_t ms, client_ready_cb ready,
    void *arg)
{
	if (c->state != CS_IDLE || client_gone(c) || ready == NULL) {
		errno = EBUSY;
		return -1;
	}
	c->ready_cb = ready;
	c->ready_arg = arg;
	c->saved_timeout = c->timeout_ms;
	c->timeout_ms = ms;
	c->state = CS_PROBE;
	client_enter(c);
	if (client_cmd(c, "RSET\r\n") == 0) {
		client_rearm(c);
		client_events(c);
	}
	client_leave(c);
	return 0;
}

/* The reply to the probe: 2xx and the connection is idle again. */
void
client_probe_reply(struct client *c, const struct smtp_reply *r)
{
	client_ready_cb	 ready = c->ready_cb;

	if (r->code / 100 != 2) {
		client_fail(c, "RSET: %d %s", r->code, r->text);
		return;
	}
	c->timeout_ms = c->saved_timeout;
	c->state = CS_IDLE;
	c->ready_cb = NULL;
	client_rearm(c);
	client_events(c);
	if (ready != NULL && !client_gone(c))
		ready(c, 1, r->text, c->ready_arg);
}

uint64_t
client_stalled_ms(const struct client *c)
{
	if (c->state == CS_IDLE || c->state == CS_FAILED)
		return 0;
	return ev_now() - c->progress_ms;
}
