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

/*
 * Hand a message to the parent to run the program on: 0, or -1 to try
 * it again later, or 1 when m was dealt with otherwise.
 */
static int
deliver_start(struct qmsg *m)
{
	struct imsg_out	 out;
	struct drun	*r;
	char		 peer[64];
	uint32_t	 i;
	int		 fd;

	/* Not there now, or set aside: sched_open() has seen to m. */
	if ((fd = sched_open(m)) == -1)
		return 1;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		close(fd);
		return -1;
	}
	snprintf(peer, sizeof(peer), "%s:%u", m->peer_ip, m->peer_port);
	r->id = ++dlv.next_id;
	r->msg = m;
	imsg_out_init(&out, IMSG_DELIVER_RUN, r->id, fd);
	imsg_add_str(&out, m->id);
	imsg_add_str(&out, peer);
	imsg_add_str(&out, m->helo);
	imsg_add_str(&out, m->from);
	imsg_add_u32(&out, m->nrcpt);
	for (i = 0; i < m->nrcpt; i++)
		imsg_add_str(&out, m->rcpts[i].addr);
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
	char		 text[QUEUE_TEXT_MAX];
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
