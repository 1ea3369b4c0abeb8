/*
 * smtpctl's commands (SPEC section 12 has the table), on the relay's
 * queue: what each shows and does.  Only root and members of
 * control-group get here; other users may only submit.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "control.h"
#include "forward.h"
#include "log.h"
#include "scheduler.h"

static int
mode_relay(void)
{
	return control_conf()->mode == MODE_RELAY;
}

/* A string as JSON, quoted and escaped. */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static const char *
rcpt_state(const struct qrcpt *r)
{
	switch (r->state) {
	case RCPT_DONE:
		return "delivered";
	case RCPT_FAILED:
		return "failed";
	default:
		return r->code != 0 ? "deferred" : "queued";
	}
}

static void
queue_json(FILE *f, const struct qmsg *m, int64_t now)
{
	uint32_t	 i;
	char		 reply[REPLY_TEXT_MAX + 8];

	fprintf(f, "{\"id\":\"%s\",\"age\":%" PRId64 ",\"size\":%" PRIu64
	    ",\"sender\":", m->id, now - m->created, m->size);
	json_str(f, m->from);
	fprintf(f, ",\"held\":%s,\"recipients\":[", m->held ? "true" :
	    "false");
	for (i = 0; i < m->nrcpt; i++) {
		const struct qrcpt *r = &m->rcpts[i];

		fprintf(f, "%s{\"address\":", i ? "," : "");
		json_str(f, r->addr);
		fprintf(f, ",\"state\":\"%s\",\"last_reply\":", rcpt_state(r));
		if (r->code != 0) {
			snprintf(reply, sizeof(reply), "%d %s", r->code,
			    r->text);
			json_str(f, reply);
		} else
			fputs("null", f);
		if (r->state == RCPT_PENDING && !m->held)
			fprintf(f, ",\"next_attempt\":%" PRId64 "}",
			    m->next_try);
		else
			fputs(",\"next_attempt\":null}", f);
	}
	fputs("]}", f);
}

/* mailq's format: a line for the message, one per recipient. */
static void
queue_text(FILE *f, const struct qmsg *m, int64_t now)
{
	uint32_t	 i;

	fprintf(f, "%s %" PRId64 "s %" PRIu64 " <%s>%s\n", m->id,
	    now - m->created, m->size, m->from, m->held ? " held" : "");
	for (i = 0; i < m->nrcpt; i++) {
		const struct qrcpt *r = &m->rcpts[i];

		fprintf(f, "    <%s> %s", r->addr, m->held &&
		    r->state == RCPT_PENDING ? "held" : rcpt_state(r));
		if (r->code != 0)
			fprintf(f, " \"%d %s\"", r->code, r->text);
		if (r->state == RCPT_PENDING && !m->held && r->code != 0)
			fprintf(f, " next=%" PRId64 "s", m->next_try > now ?
			    m->next_try - now : 0);
		fputc('\n', f);
	}
}

static void
cmd_show_queue(struct ctl_conn *c, int json)
{
	struct qmsg	*m;
	char		*buf = NULL;
	size_t		 len = 0;
	FILE		*f;
	int64_t		 now = sched_now();

	if ((f = open_memstream(&buf, &len)) == NULL) {
		control_reply(c, "error out of memory\n", "%s", "");
		return;
	}
	fputs("ok\n", f);
	if (json)
		fputc('[', f);
	for (m = sched_list(); m != NULL; m = m->next) {
		if (json) {
			if (m != sched_list())
				fputc(',', f);
			queue_json(f, m, now);
		} else
			queue_text(f, m, now);
	}
	if (json)
		fputs("]\n", f);
	if (fclose(f) != 0) {
		free(buf);
		control_reply(c, "error out of memory\n", "%s", "");
		return;
	}
	control_answer(c, buf, len);
}

/* The header block of m's message file, into f. */
static void
message_headers(FILE *f, const struct qmsg *m)
{
	char	 data[16384], *eoh;
	size_t	 have = 0;
	ssize_t	 n;
	int	 fd;

	if ((fd = queue_msg_open(m)) == -1) {
		fprintf(f, "(message file: %s)\n", strerror(errno));
		return;
	}
	/* Its size only: its envelope may follow (queue_inline.c). */
	while (have < sizeof(data) - 1 && have < m->size && (n = read(fd,
	    data + have, (m->size - have < sizeof(data) - 1 - have ?
	    m->size - have : sizeof(data) - 1 - have))) > 0)
		have += (size_t)n;
	close(fd);
	data[have] = '\0';
	if ((eoh = strstr(data, "\r\n\r\n")) != NULL)
		eoh[2] = '\0';
	fputs(data, f);
}

/* The envelope, then the header block of the message file. */
static void
cmd_show_message(struct ctl_conn *c, const char *id)
{
	struct qmsg	*m;
	char		*buf = NULL;
	size_t		 len = 0;
	FILE		*f;

	if ((m = sched_find(id)) == NULL) {
		control_reply(c, "error no such message: ", "%s\n", id);
		return;
	}
	if ((f = open_memstream(&buf, &len)) == NULL) {
		control_reply(c, "error out of memory\n", "%s", "");
		return;
	}
	fputs("ok\n", f);
	fprintf(f, "id: %s\nclient: %s\nhelo: %s\n", m->id, m->peer_ip,
	    m->helo);
	queue_text(f, m, sched_now());
	fputc('\n', f);
	message_headers(f, m);
	if (fclose(f) != 0) {
		free(buf);
		control_reply(c, "error out of memory\n", "%s", "");
		return;
	}
	control_answer(c, buf, len);
}

enum qop { QOP_FLUSH, QOP_HOLD, QOP_RELEASE, QOP_REMOVE, QOP_BOUNCE };

/* One message: NULL if done, else why not. */
static const char *
qop_one(struct qmsg *m, enum qop op, int all)
{
	switch (op) {
	case QOP_FLUSH:
		/* "all" passes over what is held or already going. */
		if (sched_flush(m) == -1 && !all)
			return "held: release it first";
		return NULL;
	case QOP_HOLD:
	case QOP_RELEASE:
		sched_hold(m, op == QOP_HOLD);
		return NULL;
	case QOP_REMOVE:
		return sched_remove(m) == -1 ? "being delivered, try again" :
		    NULL;
	case QOP_BOUNCE:
		return sched_bounce(m) == -1 ? "being delivered, try again" :
		    NULL;
	}
	return NULL;
}

static void
cmd_queue_op(struct ctl_conn *c, enum qop op, char **ids, int n)
{
	static const char *const done[] = { "flushed", "held", "released",
	    "removed", "bounced" };
	struct qmsg	*m, *next;
	const char	*why;
	char		 first[256] = "";
	unsigned int	 count = 0, failed = 0;
	int		 i, all = n == 0 || strcmp(ids[0], "all") == 0;

	if (all && op == QOP_BOUNCE) {
		control_reply(c, "error bounce needs message ids\n", "%s", "");
		return;
	}
	for (m = sched_list(); all && m != NULL; m = next) {
		next = m->next;
		if (qop_one(m, op, 1) == NULL)
			count++;
	}
	for (i = 0; !all && i < n; i++) {
		if ((m = sched_find(ids[i])) == NULL)
			why = "no such message";
		else if ((why = qop_one(m, op, 0)) == NULL)
			count++;
		if (why != NULL && failed++ == 0)
			snprintf(first, sizeof(first), "%s: %s", ids[i], why);
	}
	if (op == QOP_FLUSH && mode_relay())
		forward_flush();
	if (failed > 0)
		control_reply(c, "error ", "%s%s\n", first, failed > 1 ?
		    " (and more)" : "");
	else
		control_reply(c, "ok\n", "%u message%s %s\n", count,
		    count == 1 ? "" : "s", done[op]);
}

static void
cmd_pause(struct ctl_conn *c, char **w, int n, int pause)
{
	if (n != 1 || strcmp(w[0], "delivery") != 0) {
		control_reply(c, "error usage: pause|resume delivery\n", "%s",
		    "");
		return;
	}
	sched_pause(pause);
	if (!pause && mode_relay())
		forward_flush();
	control_reply(c, "ok\n", "delivery %s\n", pause ? "paused" :
	    "resumed");
}

static void
cmd_log(struct ctl_conn *c, char **w, int n)
{
	if (n == 1 && strcmp(w[0], "verbose") == 0)
		control_ask_parent(c, CTL_REQ_VERBOSE);
	else if (n == 1 && strcmp(w[0], "brief") == 0)
		control_ask_parent(c, CTL_REQ_BRIEF);
	else
		control_reply(c, "error usage: log verbose|brief\n", "%s", "");
}

static void
cmd_show(struct ctl_conn *c, char **w, int n)
{
	c->json = n == 2 && strcmp(w[1], "--json") == 0;
	if (n >= 1 && strcmp(w[0], "queue") == 0 && (n == 1 || c->json))
		cmd_show_queue(c, c->json);
	else if (n == 2 && strcmp(w[0], "message") == 0)
		cmd_show_message(c, w[1]);
	else if (n >= 1 && strcmp(w[0], "stats") == 0 && (n == 1 || c->json))
		control_ask_parent(c, CTL_REQ_STATS);
	else if (n == 1 && strcmp(w[0], "metrics") == 0) {
		c->json = 2;	/* OpenMetrics */
		control_ask_parent(c, CTL_REQ_STATS);
	} else
		control_reply(c, "error usage: show queue [--json] | show "
		    "message ID | show stats [--json] | show metrics\n", "%s",
		    "");
}

/* A command of smtpctl; words[0] is its name. */
void
control_dispatch(struct ctl_conn *c, char **w, int n)
{
	if (!c->admin) {
		log_info("event=control-denied uid=%u command=%s",
		    (unsigned int)c->uid, log_q(w[0]));
		control_reply(c, "denied ", "%s\n", "permission denied: only "
		    "root and control-group may do that");
		return;
	}
	if (strcmp(w[0], "show") == 0)
		cmd_show(c, w + 1, n - 1);
	else if (strcmp(w[0], "flush") == 0)
		cmd_queue_op(c, QOP_FLUSH, w + 1, n - 1);
	else if (strcmp(w[0], "hold") == 0 && n > 1)
		cmd_queue_op(c, QOP_HOLD, w + 1, n - 1);
	else if (strcmp(w[0], "release") == 0 && n > 1)
		cmd_queue_op(c, QOP_RELEASE, w + 1, n - 1);
	else if (strcmp(w[0], "remove") == 0 && n > 1)
		cmd_queue_op(c, QOP_REMOVE, w + 1, n - 1);
	else if (strcmp(w[0], "bounce") == 0 && n > 1)
		cmd_queue_op(c, QOP_BOUNCE, w + 1, n - 1);
	else if (strcmp(w[0], "pause") == 0)
		cmd_pause(c, w + 1, n - 1, 1);
	else if (strcmp(w[0], "resume") == 0)
		cmd_pause(c, w + 1, n - 1, 0);
	else if (strcmp(w[0], "reload") == 0 && n == 1)
		control_ask_parent(c, CTL_REQ_RELOAD);
	else if (strcmp(w[0], "log") == 0)
		cmd_log(c, w + 1, n - 1);
	else
		control_reply(c, "error unknown command: ", "%s\n", w[0]);
}

/* The parent's answer to control_ask_parent(). */
void
control_parent_result(struct ctl_conn *c, int ok, const char *text)
{
	uint32_t	 req = c->waiting;

	c->waiting = 0;
	if (req == CTL_REQ_STATS) {
		control_stats(c, text, c->json);
		return;
	}
	if (!ok) {
		control_reply(c, "error ", "%s\n", text);
		return;
	}
	if (req == CTL_REQ_RELOAD)
		control_reply(c, "ok\n", "%s\n", text);
	else
		control_reply(c, "ok\n", "log level %s\n", req ==
		    CTL_REQ_VERBOSE ? "verbose" : "brief");
}
