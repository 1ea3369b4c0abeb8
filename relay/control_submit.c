/*
 * Mail submitted by sendmail over the control socket: any local user
 * may.  The envelope sender is the user the kernel names (SO_PEERCRED,
 * by way of the parent) at the configured hostname; only root and
 * control-group may give another (-f).  The message is written to a
 * spool file as it comes, its line ends made CRLF (a bare CR is
 * dropped: nothing smuggled), and queued as a worker's would be.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "control.h"
#include "control_env.h"
#include "log.h"
#include "scheduler.h"

static struct qmsg *
submit_msg(void)
{
	struct qmsg	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	strlcpy(m->peer_ip, "127.0.0.1", sizeof(m->peer_ip));
	strlcpy(m->helo, "localhost", sizeof(m->helo));
	m->flags = ENV_F_ESMTP;
	/* The relay writes its file itself: no worker's pool. */
	m->owner = QUEUE_OWNER_RELAY;
	m->created = m->next_try = (int64_t)time(NULL);
	return m;
}

/*
 * "submit": check the envelope, open a spool file for what follows.
 * 1 if the message waits for its bytes; 0 if it was answered, and then
 * the connection may be gone.
 */
int
control_submit_start(struct ctl_conn *c, char *lines)
{
	struct submit_who	 who;
	const char		*why, *denied = NULL;
	struct qmsg		*m;

	if (control_conf()->mode == MODE_DEBUG) {
		control_reply(c, "error ", "%s\n", "no queue in debug mode");
		return 0;
	}
	if ((m = submit_msg()) == NULL) {
		control_reply(c, "tempfail out of memory\n", "%s", "");
		return 0;
	}
	who.user = c->user;
	who.hostname = control_conf()->hostname;
	who.max_size = (long long)control_conf()->max_size;
	who.admin = c->admin;
	if ((why = submit_envelope(&who, m, lines, &c->want, &denied)) !=
	    NULL || denied != NULL) {
		qmsg_free(m);
		control_reply(c, why != NULL ? "error " : "denied ", "%s\n",
		    why != NULL ? why : denied);
		return 0;
	}
	do {
		queue_new_id(m->id);
	} while ((c->spoolfd = queue_spool_create(m->id, QUEUE_OWNER_RELAY)) == -1 &&
	    errno == EEXIST);
	if (c->spoolfd == -1) {
		log_warn("event=queue-error op=spool source=local");
		qmsg_free(m);
		control_reply(c, "tempfail queue write error\n", "%s", "");
		return 0;
	}
	c->msg = m;
	c->dispatched = 1;
	if (c->want > 0)
		return 1;
	control_submit_data(c, "", 0);
	return 0;
}

/* The message is in the spool: make it durable, then answer. */
static void
submit_commit(struct ctl_conn *c)
{
	struct qmsg	*m = c->msg;

	m->size = c->written;
	if (queue_commit(m, c->spoolfd) == -1 || queue_sync(0) == -1) {
		queue_spool_discard(m->id, QUEUE_OWNER_RELAY);
		control_submit_free(c);
		control_reply(c, "tempfail queue write error\n", "%s", "");
		return;
	}
	close(c->spoolfd);
	c->spoolfd = -1;
	c->msg = NULL;
	log_info("event=message queue_id=%s source=local uid=%u user=%s "
	    "from=%s rcpts=%u size=%llu", m->id, (unsigned int)c->uid,
	    log_quser(c->user), log_qpath(m->from), m->nrcpt,
	    (unsigned long long)m->size);
	log_info("event=queued queue_id=%s", m->id);
	stats_received();
	sched_add(m);
	control_reply(c, "ok ", "%s\n", m->id);
}

/* Message bytes: LF becomes CRLF, CR is dropped. */
void
control_submit_data(struct ctl_conn *c, const char *data, size_t n)
{
	char	 out[2 * 16384 + 2];	/* reads are of 16 KiB at most */
	size_t	 i, o = 0;

	if (c->msg == NULL || c->spoolfd == -1)
		return;
	if (n > c->want)
		n = (size_t)c->want;
	if (n > 16384)
		n = 16384;
	for (i = 0; i < n; i++) {
		if (data[i] == '\r')
			continue;
		if (data[i] == '\n')
			out[o++] = '\r';
		else if ((unsigned char)data[i] >= 0x80)
			c->msg->flags |= ENV_F_8BIT;
		out[o++] = data[i];
	}
	c->want -= n;
	if (c->want == 0 && (o == 0 || out[o - 1] != '\n')) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	if (o > 0 && proc_write_full(c->spoolfd, out, o) == -1) {
		log_warn("event=queue-error queue_id=%s op=write source=local",
		    c->msg->id);
		queue_spool_discard(c->msg->id, QUEUE_OWNER_RELAY);
		control_submit_free(c);
		control_reply(c, "tempfail queue write error\n", "%s", "");
		return;
	}
	c->written += o;
	if (c->want == 0)
		submit_commit(c);
}

void
control_submit_free(struct ctl_conn *c)
{
	if (c->spoolfd != -1)
		close(c->spoolfd);
	c->spoolfd = -1;
	if (c->msg != NULL && c->msg->id[0] != '\0' && c->want > 0)
		queue_spool_discard(c->msg->id, QUEUE_OWNER_RELAY);
	qmsg_free(c->msg);
	c->msg = NULL;
}
