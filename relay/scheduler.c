/*
 * The scheduler of the queue, shared by relay and deliver modes: each
 * message waits on its own timer until its next attempt, then joins the
 * ready list, from which the transport (upstream connections, or the
 * deliver program) takes it.  After an attempt it bounces what failed,
 * removes what is finished, and backs off what is left, until
 * queue-lifetime.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "bounce.h"
#include "control.h"
#include "logrep.h"
#include "log.h"
#include "scheduler.h"

static struct {
	const struct smtpd_conf	*conf;
	void			(*kick)(void);
	struct qmsg		*all;
	/*
	 * The ready list, one per class (relay mode: the route a message
	 * takes next, found once as it joins): a transport counts and
	 * takes by class without walking every ready message.
	 */
	struct ready_class {
		struct qmsg	*head;
		struct qmsg	*tail;
		unsigned int	 n;
	}			 ready[SCHED_CLASSES];
	unsigned int		 nready;
	uint64_t		 seq;		/* of the last push */
	int			(*classify)(const struct qmsg *);
	unsigned int		 nmsgs;
	struct ev_timer		 sweep_timer;
	struct ev_timer		 kick_timer;
	int			 paused;	/* smtpctl pause delivery */
} sched;

int64_t
sched_now(void)
{
	return (int64_t)time(NULL);
}

/*
 * m joins the tail of the ready list of its class.  Its class cannot
 * change while it is there: what it depends on (its recipients' states,
 * the routes tried this round) changes only once it is taken off.
 */
void
sched_push(struct qmsg *m)
{
	struct ready_class	*rc;
	int			 cls = 0;

	ev_timer_del(&m->timer);
	if (m->state == QMSG_READY && (m->rprev != NULL ||
	    sched.ready[m->rclass].head == m))
		return;		/* on it already */
	if (sched.classify != NULL)
		cls = sched.classify(m);
	if (cls < 0 || cls >= SCHED_CLASSES)
		cls = SCHED_CLASS_NONE;
	rc = &sched.ready[cls];
	m->state = QMSG_READY;
	m->rclass = cls;
	m->rseq = ++sched.seq;
	m->rnext = NULL;
	m->rprev = rc->tail;
	if (rc->tail != NULL)
		rc->tail->rnext = m;
	else
		rc->head = m;
	rc->tail = m;
	rc->n++;
	sched.nready++;
}

/* Take m off the ready list, in constant time: transports pick anywhere. */
static void
ready_remove(struct qmsg *m)
{
	struct ready_class	*rc = &sched.ready[m->rclass];

	if (m->rprev != NULL)
		m->rprev->rnext = m->rnext;
	else if (rc->head == m)
		rc->head = m->rnext;
	else
		return;		/* not on it */
	if (m->rnext != NULL)
		m->rnext->rprev = m->rprev;
	else
		rc->tail = m->rprev;
	m->rnext = m->rprev = NULL;
	rc->n--;
	sched.nready--;
}

/* The oldest ready message, of any class. */
static struct qmsg *
ready_oldest(void)
{
	struct qmsg	*m, *best = NULL;
	int		 i;

	for (i = 0; i < SCHED_CLASSES; i++)
		if ((m = sched.ready[i].head) != NULL &&
		    (best == NULL || m->rseq < best->rseq))
			best = m;
	return best;
}

struct qmsg *
sched_pop(void)
{
	struct qmsg	*m;
	uint32_t	 i;

	while (!sched.paused && (m = ready_oldest()) != NULL) {
		ready_remove(m);
		for (i = 0; i < m->nrcpt; i++)
			if (m->rcpts[i].state == RCPT_PENDING)
				return m;
		/* Nothing to send, only a DSN still to make: try that. */
		sched_done(m);
	}
	return NULL;
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

	if (m->held) {
		/* No timer: only smtpctl release brings it back. */
		ev_timer_del(&m->timer);
		m->state = QMSG_WAITING;
		return;
	}
	if (m->next_try <= now) {
		sched_push(m);
		return;
	}
	m->state = QMSG_WAITING;
	ev_timer_add(&m->timer, (uint64_t)(m->next_try - now) * 1000);
}

/* Take m off every list and free it (in constant time: a busy queue). */
static void
msg_forget(struct qmsg *m)
{
	ev_timer_del(&m->timer);
	if (m->next != NULL)
		m->next->prev = m->prev;
	if (m->prev != NULL)
		m->prev->next = m->next;
	else if (sched.all == m)
		sched.all = m->next;
	sched.nmsgs--;
	qmsg_free(m);
}

/* A queued message joins the scheduler (new, or loaded at start). */
void
sched_add(struct qmsg *m)
{
	ev_timer_set(&m->timer, msg_timer, m);
	m->prev = NULL;
	m->next = sched.all;
	if (sched.all != NULL)
		sched.all->prev = m;
	sched.all = m;
	sched.nmsgs++;
	sched_later(m);
	/*
	 * Not at once: sched_add() is called from inside an attempt (a
	 * DSN made by sched_done()), and a transport that took the next
	 * message there would be handed two at a time.
	 */
	if (!ev_timer_pending(&sched.kick_timer))
		ev_timer_add(&sched.kick_timer, 0);
}

static void
kick_timer(void *arg)
{
	(void)arg;
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
	char		 last[REPLY_TEXT_MAX], text[2 * REPLY_TEXT_MAX];
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

/* Make the DSN for m's failed recipients; 0 when there is none to make. */
static int
msg_bounce(struct qmsg *m)
{
	uint32_t	 i, failed = 0;

	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_FAILED && !m->rcpts[i].bounced)
			failed++;
	if (failed == 0)
		return 0;
	if (m->is_bounce || m->from[0] == '\0')
		log_info("event=bounce-suppressed queue_id=%s "
		    "reason=null-sender", m->id);
	else if (bounce_create(m, sched.conf) == -1) {
		log_rep("bounce-failed", "event=bounce-failed queue_id=%s "
		    "reason=\"%s\" action=retry", m->id, strerror(errno));
		return -1;
	}
	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_FAILED)
			m->rcpts[i].bounced = 1;
	return 0;
}

/* The recipients still to try; with the next attempt's time set. */
static uint32_t
msg_pending(struct qmsg *m)
{
	uint32_t	 i, pending = 0;
	uint64_t	 backoff;

	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_PENDING)
			pending++;
	if (pending == 0)
		return 0;
	m->attempts++;
	backoff = (uint64_t)sched.conf->queue_retry <<
	    (m->attempts > 16 ? 16 : m->attempts - 1);
	if (backoff > QUEUE_RETRY_MAX)
		backoff = QUEUE_RETRY_MAX;
	m->next_try = sched_now() + (int64_t)backoff;
	if (m->next_try > m->created + sched.conf->queue_lifetime) {
		msg_expire(m);
		return 0;
	}
	return pending;
}

/* Whether m has a recipient delivered or bounced: a mark to keep. */
static int
msg_has_marks(const struct qmsg *m)
{
	uint32_t	 i;

	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_DONE ||
		    (m->rcpts[i].state == RCPT_FAILED && m->rcpts[i].bounced))
			return 1;
	return 0;
}

static int
msg_finished(const struct qmsg *m)
{
	uint32_t	 i;

	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_PENDING ||
		    (m->rcpts[i].state == RCPT_FAILED && !m->rcpts[i].bounced))
			return 0;
	return 1;
}

/*
 * After an attempt.  What was delivered is recorded first, in place
 * (queue_mark() needs no free block), so that no later failure, a full
 * disk included, can make a restart send it again.  Then the DSN for
 * what failed, from the space queue-min-free keeps; then m is removed
 * when nothing is left, or its new state is written and it waits.
 */
void
sched_done(struct qmsg *m)
{
	uint32_t	 pending;
	int		 bounce_rc;

	stats_attempt(m);
	m->routes_tried = 0;	/* a new round of its routes next time */
	pending = msg_pending(m);
	if (msg_finished(m)) {
		queue_remove(m);
		log_info("event=removed queue_id=%s", m->id);
		msg_forget(m);
		return;
	}
	if (msg_has_marks(m) && queue_mark(m) == -1 && m->has_marks)
		log_rep("queue-mark", "event=queue-error queue_id=%s op=mark "
		    "reason=\"%s\"", m->id, strerror(errno));
	bounce_rc = msg_bounce(m);
	if (msg_finished(m)) {
		queue_remove(m);
		log_info("event=removed queue_id=%s", m->id);
		msg_forget(m);
		return;
	}
	/* The sender must hear of it: keep m until the DSN is made. */
	if (bounce_rc == -1 && pending == 0)
		m->next_try = sched_now() + sched.conf->queue_retry;
	if (queue_update(m) == -1) {
		log_rep("queue-update", "event=queue-error queue_id=%s "
		    "op=update reason=\"%s\"", m->id, strerror(errno));
		/* At least the DSN made must not be made again. */
		(void)queue_mark(m);
	}
	if (pending > 0)
		log_info("event=deferred queue_id=%s rcpts=%u retry_in=%llds",
		    m->id, pending, (long long)(m->next_try - sched_now()));
	sched_later(m);
}

/* Tell the sender of what a lost message m did not deliver. */
static void
msg_lost_notify(struct qmsg *m, const char *why)
{
	queue_lost_mark(m, why);
	log_warnx("event=lost queue_id=%s from=%s reason=%s dsn=%s",
	    m->id, log_qpath(m->from), log_qq(why), msg_bounce(m) == 0 ?
	    "yes" : "failed");
}

/*
 * m, taken off the ready list, cannot be delivered any more (its file
 * is gone or damaged): set it aside, tell the sender, forget it.
 */
void
sched_lost(struct qmsg *m, const char *why)
{
	queue_quarantine(m, why);
	msg_lost_notify(m, why);
	msg_forget(m);
}

/* The same for one that queue_load() set aside (not scheduled). */
void
sched_lost_loaded(struct qmsg *m)
{
	msg_lost_notify(m, "damaged in the queue");
	qmsg_free(m);
}

/*
 * The message file of m for an attempt, checked against its envelope;
 * -1 when there is none now (m was set aside, or waits to be tried
 * again): the caller takes the next message.
 */
int
sched_open(struct qmsg *m)
{
	struct stat	 st;
	char		 why[256];
	int		 fd;

	/* Its commit's descriptor: the file as checked then, unless cut. */
	if ((fd = queue_msg_take(m)) != -1) {
		if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= m->size)
			return fd;
		close(fd);
	}
	if (queue_msg_check(m, why, sizeof(why)) == -1) {
		sched_lost(m, why);
		return -1;
	}
	if ((fd = queue_msg_open(m)) == -1) {
		log_rep("queue-open", "event=queue-error queue_id=%s op=open "
		    "reason=\"%s\"", m->id, strerror(errno));
		m->next_try = sched_now() + sched.conf->queue_retry;
		sched_later(m);
		return -1;
	}
	return fd;
}

/*
 * How often to look for expired mail: every minute, but a quarter of a
 * short queue-lifetime, so that mail waiting for an unreachable upstream
 * expires near its time and not up to a minute late.
 */
static uint64_t
sweep_ms(void)
{
	uint64_t	 ms = (uint64_t)sched.conf->queue_lifetime * 250;

	if (ms < 1000)
		return 1000;
	return ms > SCHED_SWEEP_MS ? SCHED_SWEEP_MS : ms;
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
	ev_timer_add(&sched.sweep_timer, sweep_ms());
}


/*
 * What smtpctl does to the queue (relay/control.c).  A message on a
 * connection is left alone but for hold, which takes effect when the
 * attempt ends.
 */
struct qmsg *
sched_list(void)
{
	return sched.all;
}

struct qmsg *
sched_find(const char *id)
{
	struct qmsg	*m;

	for (m = sched.all; m != NULL; m = m->next)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

static void
sched_kick_soon(void)
{
	if (!ev_timer_pending(&sched.kick_timer))
		ev_timer_add(&sched.kick_timer, 0);
}

/* Try m now, whatever its back-off; -1 if it is held. */
int
sched_flush(struct qmsg *m)
{
	if (m->held)
		return -1;
	if (m->state != QMSG_WAITING)
		return 0;	/* it is on its way already */
	m->next_try = sched_now();
	sched_push(m);
	sched_kick_soon();
	return 0;
}

void
sched_hold(struct qmsg *m, int held)
{
	if (m->held == held)
		return;
	m->held = held;
	queue_msg_unkeep(m);	/* it may wait long */
	if (queue_update(m) == -1)
		log_warn("event=queue-error queue_id=%s op=update", m->id);
	log_info("event=%s queue_id=%s reason=admin", held ? "held" :
	    "released", m->id);
	if (m->state == QMSG_SENDING)
		return;
	if (m->state == QMSG_READY)
		ready_remove(m);
	sched_later(m);
	sched_kick_soon();
}

/* Delete m; -1 while it is on a connection. */
int
sched_remove(struct qmsg *m)
{
	if (m->state == QMSG_SENDING)
		return -1;
	if (m->state == QMSG_READY)
		ready_remove(m);
	queue_remove(m);
	log_info("event=removed queue_id=%s reason=admin", m->id);
	msg_forget(m);
	return 0;
}

/* Give up on m's pending recipients now and send the DSN. */
int
sched_bounce(struct qmsg *m)
{
	uint32_t	 i;

	if (m->state == QMSG_SENDING)
		return -1;
	if (m->state == QMSG_READY)
		ready_remove(m);
	for (i = 0; i < m->nrcpt; i++) {
		struct qrcpt *r = &m->rcpts[i];

		if (r->state != RCPT_PENDING)
			continue;
		r->state = RCPT_FAILED;
		r->code = 550;
		strlcpy(r->text, "5.0.0 returned by the administrator",
		    sizeof(r->text));
		log_info("event=bounced queue_id=%s rcpt=%s reason=admin",
		    m->id, log_qpath(r->addr));
	}
	m->held = 0;
	sched_done(m);
	return 0;
}

void
sched_pause(int paused)
{
	sched.paused = paused;
	log_info("event=delivery-%s reason=admin", paused ? "paused" :
	    "resumed");
	if (!paused)
		sched_kick_soon();
}

/* The relay stops: no delivery starts any more, and nothing is logged
 * as an operator's pause. */
void
sched_stop_starting(void)
{
	sched.paused = 1;
}

int
sched_paused(void)
{
	return sched.paused;
}

/* Every message that waits for a retry goes now (the upstream is back). */
void
sched_retry_now(void)
{
	struct qmsg	*m;

	for (m = sched.all; m != NULL; m = m->next)
		if (m->state == QMSG_WAITING && m->attempts > 0 && !m->held) {
			m->next_try = sched_now();
			sched_push(m);
		}
}

/*
 * The ready list of class cls, for a transport that picks (m->rnext
 * goes on), and how many are on it; none while delivery is paused.
 */
struct qmsg *
sched_ready_first(int cls)
{
	if (sched.paused || cls < 0 || cls >= SCHED_CLASSES)
		return NULL;
	return sched.ready[cls].head;
}

unsigned int
sched_ready_n(int cls)
{
	if (sched.paused || cls < 0 || cls >= SCHED_CLASSES)
		return 0;
	return sched.ready[cls].n;
}

/* How a transport sorts ready messages (relay mode: by route). */
void
sched_set_classify(int (*classify)(const struct qmsg *))
{
	sched.classify = classify;
}

/* Take m, on the ready list, off it for an attempt. */
void
sched_take(struct qmsg *m)
{
	ready_remove(m);
}

int
sched_has_ready(void)
{
	return !sched.paused && sched.nready > 0;
}

void
sched_init(const struct smtpd_conf *conf, void (*kick)(void))
{
	sched.conf = conf;
	sched.kick = kick;
	ev_timer_set(&sched.sweep_timer, sweep_timer, NULL);
	ev_timer_set(&sched.kick_timer, kick_timer, NULL);
	ev_timer_add(&sched.sweep_timer, sweep_ms());
}
