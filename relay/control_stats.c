/*
 * The counters of smtpctl show stats and show metrics (SPEC section
 * 12): the relay's own (messages, outcomes, the queue, the upstream,
 * the seconds from 250 to delivery) and the parent's (sessions, AUTH),
 * which it sends as "name value" lines.  show metrics is OpenMetrics
 * text: every name smtpd_*, ending "# EOF".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "forward.h"
#include "scheduler.h"

/* Upper bounds of the delivery-delay histogram, in seconds. */
static const double buckets[] = { 1, 5, 10, 30, 60, 300, 900, 3600,
	14400, 86400 };
#define NBUCKETS	(sizeof(buckets) / sizeof(buckets[0]))

static struct {
	uint64_t	 received;
	uint64_t	 delivered;
	uint64_t	 deferred;
	uint64_t	 bounced;
	uint64_t	 delay_count[NBUCKETS + 1];	/* the last: +Inf */
	double		 delay_sum;
} st;

void
stats_received(void)
{
	st.received++;
}

static void
stats_delay(double secs)
{
	size_t	 i;

	for (i = 0; i < NBUCKETS && secs > buckets[i]; i++)
		;
	st.delay_count[i]++;
	st.delay_sum += secs;
}

/* After an attempt on m: each recipient's outcome, counted once. */
void
stats_attempt(struct qmsg *m)
{
	uint32_t	 i;
	double		 secs = difftime(time(NULL), (time_t)m->created);

	for (i = 0; i < m->nrcpt; i++) {
		struct qrcpt *r = &m->rcpts[i];

		if (r->counted)
			continue;
		if (r->state == RCPT_DONE) {
			st.delivered++;
			stats_delay(secs);
			r->counted = 1;
		} else if (r->state == RCPT_FAILED) {
			st.bounced++;
			r->counted = 1;
		} else if (r->code >= 400)
			st.deferred++;
	}
}

/* A value of the parent's "name value" lines, 0 if it is not there. */
static unsigned long long
parent_value(const char *text, const char *name)
{
	const char	*p;
	size_t		 n = strlen(name);

	for (p = text; (p = strstr(p, name)) != NULL; p += n)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtoull(p + n + 1, NULL, 10);
	return 0;
}

static void
queue_figures(unsigned int *len, int64_t *oldest)
{
	struct qmsg	*m;
	int64_t		 now = sched_now();

	*len = 0;
	*oldest = 0;
	for (m = sched_list(); m != NULL; m = m->next) {
		(*len)++;
		if (now - m->created > *oldest)
			*oldest = now - m->created;
	}
}

static void	metric(FILE *, const char *, const char *, const char *);

/* 1 when every upstream is up (or there is none: debug, deliver). */
static int
upstream_up(void)
{
	const char	*name;
	uint32_t	 i;
	int		 state;

	for (i = 0; (state = forward_upstream(i, &name)) != -1; i++)
		if (state == 0)
			return 0;
	return 1;
}

static void
metrics_upstreams(FILE *f)
{
	const char	*name;
	uint32_t	 i;
	int		 state;

	metric(f, "upstream_up", "gauge", "1 if the upstream is reachable.");
	for (i = 0; (state = forward_upstream(i, &name)) != -1; i++)
		fprintf(f, "smtpd_upstream_up{upstream=\"%s\"} %d\n", name,
		    state);
}

static void
stats_text(FILE *f, const char *pt, int json)
{
	unsigned int	 qlen;
	int64_t		 oldest;

	queue_figures(&qlen, &oldest);
	fprintf(f, json ? "{\"sessions_open\":%llu,\"auth_success\":%llu,"
	    "\"auth_failure\":%llu,\"messages_received\":%" PRIu64 ","
	    "\"delivered\":%" PRIu64 ",\"deferred\":%" PRIu64 ",\"bounced\":%"
	    PRIu64 ",\"queue_length\":%u,\"queue_oldest_seconds\":%" PRId64
	    ",\"upstream_up\":%d,\"delivery_paused\":%s}\n" :
	    "sessions_open %llu\nauth_success %llu\nauth_failure %llu\n"
	    "messages_received %" PRIu64 "\ndelivered %" PRIu64 "\ndeferred %"
	    PRIu64 "\nbounced %" PRIu64 "\nqueue_length %u\n"
	    "queue_oldest_seconds %" PRId64 "\nupstream_up %d\n"
	    "delivery_paused %s\n",
	    parent_value(pt, "sessions_open"), parent_value(pt, "auth_success"),
	    parent_value(pt, "auth_failure"), st.received, st.delivered,
	    st.deferred, st.bounced, qlen, oldest, upstream_up(),
	    sched_paused() ? (json ? "true" : "yes") : (json ? "false" : "no"));
}

static void
metric(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# TYPE smtpd_%s %s\n# HELP smtpd_%s %s\n", name, type,
	    name, help);
}

static void
metrics_delay(FILE *f)
{
	uint64_t	 cum = 0;
	size_t		 i;

	metric(f, "delivery_delay_seconds", "histogram",
	    "Seconds from the 250 to the delivery of a recipient.");
	for (i = 0; i < NBUCKETS; i++) {
		cum += st.delay_count[i];
		fprintf(f, "smtpd_delivery_delay_seconds_bucket{le=\"%g\"} %"
		    PRIu64 "\n", buckets[i], cum);
	}
	cum += st.delay_count[NBUCKETS];
	fprintf(f, "smtpd_delivery_delay_seconds_bucket{le=\"+Inf\"} %" PRIu64
	    "\nsmtpd_delivery_delay_seconds_count %" PRIu64 "\n"
	    "smtpd_delivery_delay_seconds_sum %.3f\n", cum, cum, st.delay_sum);
}

static void
recipients(FILE *f, const char *up, const char *result, uint64_t n)
{
	fprintf(f, "smtpd_recipients_total{upstream=\"%s\",result=\"%s\"} %"
	    PRIu64 "\n", up, result, n);
}

static void
metrics_text(FILE *f, const char *pt)
{
	const char	*up = "all";
	unsigned int	 qlen;
	int64_t		 oldest;

	queue_figures(&qlen, &oldest);
	metric(f, "sessions_open", "gauge", "SMTP sessions open now.");
	fprintf(f, "smtpd_sessions_open %llu\n",
	    parent_value(pt, "sessions_open"));
	metric(f, "auth", "counter", "AUTH attempts by result.");
	fprintf(f, "smtpd_auth_total{result=\"success\"} %llu\n"
	    "smtpd_auth_total{result=\"failure\"} %llu\n",
	    parent_value(pt, "auth_success"), parent_value(pt, "auth_failure"));
	metric(f, "messages_received", "counter", "Messages queued.");
	fprintf(f, "smtpd_messages_received_total %" PRIu64 "\n", st.received);
	metric(f, "recipients", "counter",
	    "Recipient outcomes by upstream: delivered, deferred, bounced.");
	recipients(f, up, "delivered", st.delivered);
	recipients(f, up, "deferred", st.deferred);
	recipients(f, up, "bounced", st.bounced);
	metric(f, "queue_length", "gauge", "Messages in the queue.");
	fprintf(f, "smtpd_queue_length %u\n", qlen);
	metric(f, "queue_oldest_seconds", "gauge",
	    "Age of the oldest queued message.");
	fprintf(f, "smtpd_queue_oldest_seconds %" PRId64 "\n", oldest);
	metrics_upstreams(f);
	metrics_delay(f);
	fputs("# EOF\n", f);
}

/* The answer to show stats [--json] (json 0, 1) or show metrics (2). */
void
control_stats(struct ctl_conn *c, const char *parent_text, int json)
{
	char	*buf = NULL;
	size_t	 len = 0;
	FILE	*f;

	if ((f = open_memstream(&buf, &len)) == NULL) {
		control_reply(c, "error out of memory\n", "%s", "");
		return;
	}
	fputs("ok\n", f);
	if (json == 2)
		metrics_text(f, parent_text);
	else
		stats_text(f, parent_text, json);
	if (fclose(f) != 0) {
		free(buf);
		control_reply(c, "error out of memory\n", "%s", "");
		return;
	}
	control_answer(c, buf, len);
}
