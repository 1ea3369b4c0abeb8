/*
 * The relay's stop.  The workers are gone when it comes, so nothing new
 * arrives; a delivery on a connection is let finish, so that its
 * upstream's reply is recorded and a restart does not send the message
 * again.  No new delivery starts, and stop-timeout bounds the wait:
 * what is still in flight then is sent again after the restart (at
 * least once, never lost).
 */
#include <stdio.h>
#include <stdlib.h>

#include "drain.h"
#include "event.h"
#include "log.h"
#include "scheduler.h"

#define DRAIN_POLL_MS	20

static struct {
	struct ev_timer	 timer;
	uint64_t	 deadline;
} drain;

static unsigned int
drain_in_flight(void)
{
	struct qmsg	*m;
	unsigned int	 n = 0;

	for (m = sched_list(); m != NULL; m = m->next)
		if (m->state == QMSG_SENDING)
			n++;
	return n;
}

static void
drain_check(void *arg)
{
	unsigned int	 n = drain_in_flight();

	(void)arg;
	if (n > 0 && ev_now() < drain.deadline) {
		ev_timer_add(&drain.timer, DRAIN_POLL_MS);
		return;
	}
	if (n > 0)
		log_warnx("event=stop in_flight=%u reason=stop-timeout", n);
	else
		log_debug("event=stop");
	fflush(stdout);
	exit(0);
}

void
relay_drain(unsigned int seconds)
{
	unsigned int	 n;

	sched_stop_starting();
	if ((n = drain_in_flight()) > 0)
		log_info("event=stop-draining in_flight=%u", n);
	drain.deadline = ev_now() + (uint64_t)seconds * 1000;
	ev_timer_set(&drain.timer, drain_check, NULL);
	drain_check(NULL);
}
