/*
 * deliver mode, the relay's side: ready messages go to the parent, at
 * most deliver-max at once, each with its message file and envelope;
 * the program's exit decides: delivered, tried again later, or bounced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "deliver.h"
#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "scheduler.h"

struct drun {
	struct drun	*next;
	uint32_t	 id;
	struct qmsg	*msg;
};

static struct {
	const struct smtpd_conf	*conf;
	deliver_send_cb		 send;
	struct drun		*runs;
	unsigned int		 nruns;
	uint32_t		 next_id;
} dlv;

static const char *
deliver_rcpt(const void *arg, uint32_t i)
{
	const struct qmsg	*m = arg;

	return m->rcpts[i].addr;
}

/*
 * Hand a message to the parent to run the program on: 0, or -1 to try
 * it again later, or 1 when m was dealt with otherwise.
 */
static int
deliver_start(struct qmsg *m)
{
	struct envelope_ref	 e;
	struct imsg_out		 out;
	struct drun		*r;
	int			 fd;

	/*
	 * The program reads its file to the end: an envelope there (a
	 * queue a relay left, queue_inline.c) goes to queue/ID.env first.
	 */
	if (m->inline_len != 0 && queue_update(m) == -1)
		return -1;
	if (m->file_long)
		return -1;	/* an envelope may still follow: not yet */
	/* Not there now, or set aside: sched_open() has seen to m. */
	if ((fd = sched_open(m)) == -1)
		return 1;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		close(fd);
		return -1;
	}
	r->id = ++dlv.next_id;
	r->msg = m;
	memset(&e, 0, sizeof(e));
	e.peer_ip = m->peer_ip;
	e.peer_port = m->peer_port;
	e.helo = m->helo;
	e.mail_from = m->from;
	e.nrcpt = m->nrcpt;
	e.rcpt = deliver_rcpt;
	e.arg = m;
	imsg_out_init(&out, IMSG_DELIVER_RUN, r->id, fd);
	deliver_env_encode(&out, m->id, &e);
	if (out.overflow) {
		log_warnx("event=deliver-error queue_id=%s reason=\"envelope "
		    "too large\"", m->id);
		close(fd);
		imsg_out_free(&out);
		free(r);
		return -1;
	}
	m->state = QMSG_SENDING;
	dlv.send(&out);
	r->next = dlv.runs;
	dlv.runs = r;
	dlv.nruns++;
	return 0;
}

/* Start what may start. */
static void
deliver_kick(void)
{
	struct qmsg	*m;

	while (dlv.nruns < dlv.conf->deliver_max && (m = sched_pop()) !=
	    NULL)
		if (deliver_start(m) == -1) {
			m->next_try = sched_now() + dlv.conf->queue_retry;
			sched_later(m);
		}
}

/* IMSG_DELIVER_DONE from the parent; -1 if it makes no sense. */
int
deliver_done(struct imsg *imsg)
{
	struct drun	**rp, *r;
	struct qmsg	*m;
	char		 text[REPLY_TEXT_MAX];
	uint32_t	 result, i;

	if (imsg_get_u32(imsg, &result) == -1 || result > DELIVER_PERMFAIL ||
	    imsg_get_str(imsg, text, sizeof(text)) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	for (rp = &dlv.runs; (r = *rp) != NULL; rp = &r->next)
		if (r->id == imsg->hdr.peerid)
			break;
	if (r == NULL)
		return -1;
	*rp = r->next;
	dlv.nruns--;
	m = r->msg;
	free(r);
	for (i = 0; i < m->nrcpt; i++) {
		struct qrcpt *rc = &m->rcpts[i];

		if (rc->state != RCPT_PENDING)
			continue;
		strlcpy(rc->text, text, sizeof(rc->text));
		switch (result) {
		case DELIVER_OK:
			rc->state = RCPT_DONE;
			rc->code = 250;
			break;
		case DELIVER_TEMPFAIL:
			rc->code = 451;
			break;
		default:
			rc->state = RCPT_FAILED;
			rc->code = 550;
			break;
		}
	}
	log_info("event=attempt queue_id=%s transport=deliver result=%s "
	    "reply=%s", m->id, result == DELIVER_OK ? "delivered" :
	    result == DELIVER_TEMPFAIL ? "deferred" : "failed", log_qq(text));
	sched_done(m);
	deliver_kick();
	return 0;
}

void
deliver_init(const struct smtpd_conf *conf, deliver_send_cb send)
{
	dlv.conf = conf;
	dlv.send = send;
	sched_init(conf, deliver_kick);
}
