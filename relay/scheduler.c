/*
 * The scheduler of the queue, shared by relay and deliver modes: each
 * message waits on its own timer until its next attempt, then joins the
 * ready list, from which the transport (upstream connections, or the
 * deliver program) takes it.  After an attempt it bounces what failed,
 * removes what is finished, and backs off what is left, until
 * queue-lifetime.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "bounce.h"
#include "log.h"
#include "scheduler.h"

static struct {
	const struct smtpd_conf	*conf;
	void			(*kick)(void);
	struct qmsg		*all;
	struct qmsg		*ready_head;
	struct qmsg		*ready_tail;
	unsigned int		 nmsgs;
	struct ev_timer		 sweep_timer;
} sched;

int64_t
sched_now(void)
{
	return (int64_t)time(NULL);
}

void
sched_push(struct qmsg *m)
{
	ev_timer_del(&m->timer);
	m->state = QMSG_READY;
	m->rnext = NULL;
	if (sched.ready_tail != NULL)
		sched.ready_tail->rnext = m;
	else
		sched.ready_head = m;
	sched.ready_tail = m;
}

struct qmsg *
sched_pop(void)
{
	struct qmsg	*m;
	uint32_t	 i;

	while ((m = sched.ready_head) != NULL) {
		sched.ready_head = m->rnext;
		if (sched.ready_head == NULL)
			sched.ready_tail = NULL;
		m->rnext = NULL;
		for (i = 0; i < m->nrcpt; i++)
			if (m->rcpts[i].state == RCPT_PENDING)
				return m;
		/* Nothing to send, only a DSN still to make: try that. */
		sched_done(m);
	}
	return NULL;
}

/* Take m off the ready list. */
static void
ready_remove(struct qmsg *m)
{
	struct qmsg	**mp;

	sched.ready_tail = NULL;
	for (mp = &sched.ready_head; *mp != NULL; mp = &(*mp)->rnext) {
		if (*mp == m)
			*mp = m->rnext;
		if (*mp == NULL)
			break;
		sched.ready_tail = *mp;
	}
	m->rnext = NULL;
}

static void
msg_timer(void *arg)
{
	sched_push(arg);
	sched.kick();
}

/* Arm m's timer for its next attempt, or make it ready now. */
void
sched_later(struct qmsg *m)
{
	int64_t	 now = sched_now();

	if (m->next_try <= now) {
		sched_push(m);
		return;
	}
	m->state = QMSG_WAITING;
	ev_timer_add(&m->timer, (uint64_t)(m->next_try - now) * 1000);
}

/* Take m off every list and free it. */
static void
msg_forget(struct qmsg *m)
{
	struct qmsg	**mp;

	ev_timer_del(&m->timer);
	for (mp = &sched.all; *mp != NULL; mp = &(*mp)->next)
		if (*mp == m) {
			*mp = m->next;
			break;
		}
	sched.nmsgs--;
	qmsg_free(m);
}

/* A queued message joins the scheduler (new, or loaded at start). */
void
sched_add(struct qmsg *m)
{
	ev_timer_set(&m->timer, msg_timer, m);
	m->next = sched.all;
	sched.all = m;
	sched.nmsgs++;
	sched_later(m);
	sched.kick();
}

unsigned int
sched_count(void)
{
	return sched.nmsgs;
}

/* Expire m's pending recipients (queue-lifetime is over). */
static void
msg_expire(struct qmsg *m)
{
	char		 last[QUEUE_TEXT_MAX], text[2 * QUEUE_TEXT_MAX];
	uint32_t	 i;

	for (i = 0; i < m->nrcpt; i++) {
		struct qrcpt *r = &m->rcpts[i];

		if (r->state != RCPT_PENDING)
			continue;
		r->state = RCPT_FAILED;
		strlcpy(last, r->code ? r->text : "no reply", sizeof(last));
		snprintf(text, sizeof(text), "4.4.7 delivery time expired; "
		    "last reply: %s", last);
		strlcpy(r->text, text, sizeof(r->text));
		r->code = r->code ? r->code : 451;
		log_info("event=expired queue_id=%s rcpt=%s", m->id,
		    log_qpath(r->addr));
	}
}

/*
 * After an attempt: bounce what failed, remove m when nothing is left,
 * otherwise write its state and schedule the next attempt.
 */
void
sched_done(struct qmsg *m)
{
	uint32_t	 i, pending = 0, failed = 0;
	uint64_t	 backoff;
	int		 bounced = 0;

	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_PENDING)
			pending++;
	if (pending > 0) {
		m->attempts++;
		backoff = (uint64_t)sched.conf->queue_retry <<
		    (m->attempts > 16 ? 16 : m->attempts - 1);
		if (backoff > QUEUE_RETRY_MAX)
			backoff = QUEUE_RETRY_MAX;
		m->next_try = sched_now() + (int64_t)backoff;
		if (m->next_try > m->created + sched.conf->queue_lifetime) {
			msg_expire(m);
			pending = 0;
		}
	}
	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_FAILED && !m->rcpts[i].bounced)
			failed++;
	if (failed > 0) {
		if (m->is_bounce || m->from[0] == '\0') {
			log_info("event=bounce-suppressed queue_id=%s "
			    "reason=null-sender", m->id);
			bounced = 1;
		} else if (bounce_create(m, sched.conf) == -1)
			log_warnx("event=bounce-failed queue_id=%s "
			    "action=retry", m->id);
		else
			bounced = 1;
		for (i = 0; bounced && i < m->nrcpt; i++)
			if (m->rcpts[i].state == RCPT_FAILED)
				m->rcpts[i].bounced = 1;
		/* The sender must hear of it: keep m until the DSN is made. */
		if (!bounced && pending == 0) {
			m->next_try = sched_now() + sched.conf->queue_retry;
			pending = 1;
		}
	}
	if (pending == 0) {
		queue_remove(m);
		log_info("event=removed queue_id=%s", m->id);
		msg_forget(m);
		return;
	}
	if (queue_update(m) == -1)
		log_warnx("event=queue-update-failed queue_id=%s", m->id);
	sched_later(m);
}

/* Expire what waits too long even while the upstream is down. */
static void
sweep_timer(void *arg)
{
	struct qmsg	*m, *next;

	(void)arg;
	for (m = sched.all; m != NULL; m = next) {
		next = m->next;
		if (m->state == QMSG_SENDING || sched_now() <= m->created +
		    sched.conf->queue_lifetime)
			continue;
		if (m->state == QMSG_READY)
			ready_remove(m);
		msg_expire(m);
		sched_done(m);
	}
	ev_timer_add(&sched.sweep_timer, SCHED_SWEEP_MS);
}


/* Every message that waits for a retry goes now (the upstream is back). */
void
sched_retry_now(void)
{
	struct qmsg	*m;

	for (m = sched.all; m != NULL; m = m->next)
		if (m->state == QMSG_WAITING && m->attempts > 0) {
			m->next_try = sched_now();
			sched_push(m);
		}
}

int
sched_has_ready(void)
{
	return sched.ready_head != NULL;
}

/* How many ready messages there are, counting no further than max. */
unsigned int
sched_ready_count(unsigned int max)
{
	struct qmsg	*m;
	unsigned int	 n = 0;

	for (m = sched.ready_head; m != NULL && n < max; m = m->rnext)
		n++;
	return n;
}

void
sched_init(const struct smtpd_conf *conf, void (*kick)(void))
{
	sched.conf = conf;
	sched.kick = kick;
	ev_timer_set(&sched.sweep_timer, sweep_timer, NULL);
	ev_timer_add(&sched.sweep_timer, SCHED_SWEEP_MS);
}
