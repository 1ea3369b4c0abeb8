/*
 * The counters of smtpctl show stats and show metrics (SPEC section
 * 12): the relay's own (messages, outcomes per upstream, the queue, the
 * upstreams, the seconds from 250 to delivery) and the parent's
 * (sessions, TLS, refusals, AUTH), which it sends as "name value"
 * lines.  show metrics (and GET /metrics, metrics_http.c) is
 * OpenMetrics text: every name smtpd_*, ending "# EOF".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "forward.h"
#include "routes.h"
#include "scheduler.h"

/* Upper bounds of the delivery-delay histogram, in seconds. */
static const double buckets[] = { 1, 5, 10, 30, 60, 300, 900, 3600,
	14400, 86400 };
#define NBUCKETS	(sizeof(buckets) / sizeof(buckets[0]))

enum { OUT_DELIVERED, OUT_DEFERRED, OUT_BOUNCED, OUT_N };
static const char *const out_names[OUT_N] = { "delivered", "deferred",
	"bounced" };

/*
 * Recipient outcomes by the upstream that gave them: every upstream
 * of the routes, and "debug", "deliver" (those modes' transports) or
 * "none" (expired, or bounced by smtpctl, with no reply of its own).
 */
#define LABELS_MAX	(ROUTES_UPSTREAMS_MAX + 3)

struct outcomes {
	char		 name[UPSTREAM_NAME_MAX];
	uint64_t	 n[OUT_N];
};

static struct {
	uint64_t	 received;
	uint64_t	 total[OUT_N];
	struct outcomes	 by[LABELS_MAX];
	size_t		 nby;
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

static struct outcomes *
stats_label(const char *name)
{
	size_t	 i;

	for (i = 0; i < st.nby; i++)
		if (strcmp(st.by[i].name, name) == 0)
			return &st.by[i];
	if (st.nby == LABELS_MAX)
		return NULL;	/* (more names than there can be) */
	snprintf(st.by[st.nby].name, sizeof(st.by[0].name), "%s", name);
	return &st.by[st.nby++];
}

static void
stats_count(const char *label, int out)
{
	struct outcomes	*o;

	st.total[out]++;
	if ((o = stats_label(label)) != NULL)
		o->n[out]++;
}

/*
 * The reply to recipient r of a message queued at created, by the
 * upstream (or transport) label: a delivery and a bounce are counted
 * once, a deferral at each reply.
 */
void
stats_rcpt(const char *label, struct qrcpt *r, int64_t created)
{
	if (r->counted)
		return;
	if (r->state == RCPT_DONE) {
		stats_count(label, OUT_DELIVERED);
		stats_delay(difftime(time(NULL), (time_t)created));
		r->counted = 1;
	} else if (r->state == RCPT_FAILED) {
		stats_count(label, OUT_BOUNCED);
		r->counted = 1;
	} else if (r->code >= 400)
		stats_count(label, OUT_DEFERRED);
}

/*
 * Debug mode: a message printed before its 250, so received and
 * delivered to each recipient at once.
 */
void
stats_printed(uint32_t nrcpt)
{
	st.received++;
	for (; nrcpt > 0; nrcpt--) {
		stats_count("debug", OUT_DELIVERED);
		stats_delay(0);
	}
}

/*
 * After an attempt on m: what no upstream counted already.  In relay
 * mode forward.c counts each reply as it comes; what is left is given
 * up without one (expired, smtpctl bounce).
 */
void
stats_attempt(struct qmsg *m)
{
	const struct smtpd_conf	*conf = control_conf();
	uint32_t		 i;
	int			 relay = conf == NULL || conf->mode == MODE_RELAY;
	const char		*label = relay ? "none" : conf->mode ==
				    MODE_DEBUG ? "debug" : "deliver";

	for (i = 0; i < m->nrcpt; i++) {
		struct qrcpt *r = &m->rcpts[i];

		if (r->state == RCPT_PENDING && relay)
			continue;
		stats_rcpt(label, r, m->created);
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

/* A label's value, escaped as OpenMetrics says: \\, \" and \n. */
static void
label(FILE *f, const char *v)
{
	for (; *v != '\0'; v++)
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
}

static void
metrics_upstreams(FILE *f)
{
	const char	*name;
	uint32_t	 i;
	int		 state;

	metric(f, "upstream_up", "gauge", "1 if the upstream is reachable.");
	for (i = 0; (state = forward_upstream(i, &name)) != -1; i++) {
		fputs("smtpd_upstream_up{upstream=\"", f);
		label(f, name);
		fprintf(f, "\"} %d\n", state);
	}
}

static void
stats_text(FILE *f, const char *pt, int json)
{
	unsigned int	 qlen;
	int64_t		 oldest;

	queue_figures(&qlen, &oldest);
	fprintf(f, json ? "{\"sessions_open\":%llu,\"sessions_total\":%llu,"
	    "\"tls_sessions\":%llu,\"auth_success\":%llu,"
	    "\"auth_failure\":%llu,\"messages_received\":%" PRIu64 ","
	    "\"delivered\":%" PRIu64 ",\"deferred\":%" PRIu64 ",\"bounced\":%"
	    PRIu64 ",\"queue_length\":%u,\"queue_oldest_seconds\":%" PRId64
	    ",\"upstream_up\":%d,\"delivery_paused\":%s}\n" :
	    "sessions_open %llu\nsessions_total %llu\ntls_sessions %llu\n"
	    "auth_success %llu\nauth_failure %llu\n"
	    "messages_received %" PRIu64 "\ndelivered %" PRIu64 "\ndeferred %"
	    PRIu64 "\nbounced %" PRIu64 "\nqueue_length %u\n"
	    "queue_oldest_seconds %" PRId64 "\nupstream_up %d\n"
	    "delivery_paused %s\n",
	    parent_value(pt, "sessions_open"),
	    parent_value(pt, "sessions_total"), parent_value(pt, "tls_sessions"),
	    parent_value(pt, "auth_success"), parent_value(pt, "auth_failure"),
	    st.received, st.total[OUT_DELIVERED], st.total[OUT_DEFERRED],
	    st.total[OUT_BOUNCED], qlen, oldest, upstream_up(),
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

/*
 * Every upstream has its three lines from the start, at 0, so that a
 * rate over them is defined before the first outcome.
 */
static void
metrics_recipients(FILE *f)
{
	const char	*name;
	uint32_t	 i;
	size_t		 j;
	int		 out;

	for (i = 0; forward_upstream(i, &name) != -1; i++)
		(void)stats_label(name);
	metric(f, "recipients", "counter",
	    "Recipient outcomes by upstream: delivered, deferred, bounced.");
	for (j = 0; j < st.nby; j++)
		for (out = 0; out < OUT_N; out++) {
			fputs("smtpd_recipients_total{upstream=\"", f);
			label(f, st.by[j].name);
			fprintf(f, "\",result=\"%s\"} %" PRIu64 "\n",
			    out_names[out], st.by[j].n[out]);
		}
}

/* The parent's refused_NAME lines, as one labelled counter. */
static void
metrics_refused(FILE *f, const char *pt)
{
	const char	*p, *sp;

	metric(f, "refused", "counter",
	    "Connections and commands refused, by reason.");
	for (p = pt; (p = strstr(p, "refused_")) != NULL; p = sp) {
		if ((p != pt && p[-1] != '\n') || (sp = strchr(p, ' ')) == NULL)
			break;
		fprintf(f, "smtpd_refused_total{reason=\"%.*s\"} %llu\n",
		    (int)(sp - p - 8), p + 8, strtoull(sp + 1, NULL, 10));
	}
}

static void
metrics_sessions(FILE *f, const char *pt)
{
	metric(f, "sessions_open", "gauge", "SMTP sessions open now.");
	fprintf(f, "smtpd_sessions_open %llu\n",
	    parent_value(pt, "sessions_open"));
	metric(f, "sessions", "counter",
	    "SMTP connections taken, the refused ones included.");
	fprintf(f, "smtpd_sessions_total %llu\n",
	    parent_value(pt, "sessions_total"));
	metric(f, "tls_sessions", "counter",
	    "TLS handshakes completed (STARTTLS or implicit TLS).");
	fprintf(f, "smtpd_tls_sessions_total %llu\n",
	    parent_value(pt, "tls_sessions"));
	metrics_refused(f, pt);
	metric(f, "auth", "counter", "AUTH attempts by result.");
	fprintf(f, "smtpd_auth_total{result=\"success\"} %llu\n"
	    "smtpd_auth_total{result=\"failure\"} %llu\n",
	    parent_value(pt, "auth_success"), parent_value(pt, "auth_failure"));
}

static void
metrics_text(FILE *f, const char *pt)
{
	unsigned int	 qlen;
	int64_t		 oldest;

	queue_figures(&qlen, &oldest);
	metrics_sessions(f, pt);
	metric(f, "messages_received", "counter", "Messages queued.");
	fprintf(f, "smtpd_messages_received_total %" PRIu64 "\n", st.received);
	metrics_recipients(f);
	metric(f, "queue_length", "gauge", "Messages in the queue.");
	fprintf(f, "smtpd_queue_length %u\n", qlen);
	metric(f, "queue_oldest_seconds", "gauge",
	    "Age of the oldest queued message.");
	fprintf(f, "smtpd_queue_oldest_seconds %" PRId64 "\n", oldest);
	metrics_upstreams(f);
	metrics_delay(f);
	fputs("# EOF\n", f);
}

/* The OpenMetrics text, malloc'd in *buf; -1 when out of memory. */
int
stats_metrics(const char *parent_text, char **buf, size_t *len)
{
	FILE	*f;

	*buf = NULL;
	*len = 0;
	if ((f = open_memstream(buf, len)) == NULL)
		return -1;
	metrics_text(f, parent_text);
	if (fclose(f) != 0) {
		free(*buf);
		*buf = NULL;
		return -1;
	}
	return 0;
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
