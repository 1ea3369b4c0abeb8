/*
 * Logging to standard error (-d) or syslog.  Only the parent talks to
 * syslog: a sandboxed child could not reconnect to /dev/log (no socket(2)
 * for it, and no /dev/log in its chroot), so in the background its
 * lines go to the parent over imsg, through the sink it sets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static struct {
	int		 foreground;
	int		 verbose;
	const char	*procname;
	pid_t		 pid;		/* for the lines on standard error */
	log_sink_cb	 sink;		/* a child in the background */
	int		 child;
} log_state = { 1, 0, "smtpd", 0, NULL, 0 };

/* Set where log lines go; called first thing by every process. */
void
log_init(int foreground, int verbose, const char *procname)
{
	log_state.foreground = foreground;
	log_state.verbose = verbose;
	log_state.procname = procname;
	log_state.pid = getpid();
	tzset();
	if (!foreground && !log_state.child)
		openlog("smtpd", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/*
 * A child: never opens syslog.  In the background its lines go to sink
 * (the parent); until there is one, they are dropped.
 */
void
log_init_child(int foreground, int verbose, const char *procname,
    log_sink_cb sink)
{
	log_state.child = 1;
	log_state.sink = sink;
	log_init(foreground, verbose, procname);
}

/* The parent: a line a child sent, already checked. */
void
log_from_child(int pri, pid_t pid, const char *line)
{
	syslog(pri, "[%d] %s", (int)pid, line);
}

#define LOG_QBUFS	8
#define LOG_QBUF_SIZE	4200

static char *
log_qbuf(void)
{
	static char	 bufs[LOG_QBUFS][LOG_QBUF_SIZE];
	static int	 next;

	return bufs[next++ % LOG_QBUFS];
}

/* s as a log value in one of a few rotating buffers; quoted if always. */
static const char *
log_quote(const char *s, int always)
{
	const unsigned char *p;
	char		*b, *o;
	size_t		 left;
	int		 n;

	for (p = (const unsigned char *)s; !always && *p != '\0'; p++)
		if (*p <= ' ' || *p >= 127 || *p == '=' || *p == '"')
			break;
	if (!always && *p == '\0')
		return s;
	b = log_qbuf();
	o = b;
	*o++ = '"';
	/* Room for the longest escape, the closing quote and the NUL. */
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		left = LOG_QBUF_SIZE - (size_t)(o - b);
		if (left < 7)
			break;
		if (*p == '"' || *p == '\\') {
			*o++ = '\\';
			*o++ = (char)*p;
		} else if (*p < ' ' || *p >= 127) {
			n = snprintf(o, left, "\\x%02X", *p);
			o += n;
		} else
			*o++ = (char)*p;
	}
	*o++ = '"';
	*o = '\0';
	return b;
}

/*
 * A value for a key=value field (SPEC 9): as it is when it holds no
 * blank, '=', '"', control or 8-bit byte; else in double quotes, with
 * '"' and '\' escaped and every other non-printable byte as \xHH, so
 * that no client can forge a field or split a line.  The result lives
 * until LOG_QBUFS more calls.
 */
const char *
log_q(const char *s)
{
	return log_quote(s, 0);
}

/* An address as the path <addr>, quoted as log_q() does. */
const char *
log_qpath(const char *addr)
{
	char	*path = log_qbuf();

	snprintf(path, LOG_QBUF_SIZE / 4, "<%s>", addr);
	return log_quote(path, 0);
}

/* A user name for a user= field: "-" for none, else as log_q(). */
const char *
log_quser(const char *user)
{
	return *user == '\0' ? "-" : log_quote(user, 0);
}

/* The same, always quoted: for fields logged as key="...". */
const char *
log_qq(const char *s)
{
	return log_quote(s, 1);
}

/* Change the name a process logs under (after a role is chosen). */
void
log_procname(const char *procname)
{
	log_state.procname = procname;
}

/* smtpctl log verbose|brief, at run time. */
void
log_set_verbose(int verbose)
{
	log_state.verbose = verbose;
}

/* Whether -v was given. */
int
log_verbose(void)
{
	return log_state.verbose;
}

static void	log_vwrite(int, const char *, va_list, const char *)
		    __attribute__((format(printf, 2, 0)));

/* Our pid, known once log_init() ran (no system call a line). */
static int
log_pid(void)
{
	return (int)(log_state.pid != 0 ? log_state.pid : getpid());
}

/* The name of a syslog priority, as -d prints it. */
static const char *
log_severity(int pri)
{
	switch (pri) {
	case LOG_DEBUG:
		return "debug";
	case LOG_INFO:
		return "info";
	case LOG_NOTICE:
		return "notice";
	case LOG_WARNING:
		return "warning";
	case LOG_ERR:
		return "error";
	default:
		return "crit";
	}
}

/*
 * An RFC 3339 time stamp of now, UTC, in milliseconds, into buf (at
 * least LOG_STAMP_LEN + 1 bytes): what syslog would have added, for a
 * log on standard error.  Its length.  The date and the second are made
 * again when the second changes, the milliseconds for every line.
 */
#define LOG_STAMP_LEN	24	/* 2026-12-02T03:14:40.123Z */

static size_t
log_timestamp(char *buf)
{
	static long long	 cached_sec = -1;
	static char		 head[LOG_STAMP_LEN + 8];
	struct timespec		 ts;
	long long		 days, secs, era, doe, yoe, doy, mp, y;
	unsigned int		 m, d;
	long			 ms;
	int			 n;

	clock_gettime(CLOCK_REALTIME, &ts);
	if ((long long)ts.tv_sec != cached_sec) {
		/*
		 * The civil date by arithmetic (H. Hinnant's
		 * days_from_civil, inverted): gmtime(3) may read
		 * /etc/localtime the first time, which a sandboxed
		 * child must not.
		 */
		days = (long long)ts.tv_sec / 86400;
		secs = (long long)ts.tv_sec % 86400;
		days += 719468;
		era = days / 146097;
		doe = days - era * 146097;
		yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
		doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
		mp = (5 * doy + 2) / 153;
		d = (unsigned int)(doy - (153 * mp + 2) / 5 + 1);
		m = (unsigned int)(mp < 10 ? mp + 3 : mp - 9);
		y = yoe + era * 400 + (m <= 2);
		n = snprintf(head, sizeof(head),
		    "%04lld-%02u-%02uT%02lld:%02lld:%02lld.", y, m, d,
		    secs / 3600, secs / 60 % 60, secs % 60);
		if (n != LOG_STAMP_LEN - 4)	/* a year not of 4 digits */
			snprintf(head, sizeof(head), "0000-00-00T00:00:00.");
		cached_sec = (long long)ts.tv_sec;
	}
	ms = ts.tv_nsec / 1000000;
	memcpy(buf, head, LOG_STAMP_LEN - 4);
	buf[LOG_STAMP_LEN - 4] = (char)('0' + ms / 100);
	buf[LOG_STAMP_LEN - 3] = (char)('0' + ms / 10 % 10);
	buf[LOG_STAMP_LEN - 2] = (char)('0' + ms % 10);
	buf[LOG_STAMP_LEN - 1] = 'Z';
	buf[LOG_STAMP_LEN] = '\0';
	return LOG_STAMP_LEN;
}

/*
 * Lines held for one write on standard error (log_batch()): whole lines
 * only, so that the processes sharing it never cut into each other's.
 */
static struct {
	int	 on;
	size_t	 len;
	char	 buf[16384];
} log_held;

static void
log_write_all(const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(STDERR_FILENO, p, len)) == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/*
 * From now on, informational lines on standard error (-d) wait for
 * log_flush(), which the event loop calls at the end of each round: a
 * round that logs for many messages writes once.  A warning, or
 * anything worse, goes at once, after what was held.
 */
void
log_batch(int on)
{
	static int	 registered;

	if (!on)
		log_flush();
	else if (!registered && atexit(log_flush) == 0)
		registered = 1;
	log_held.on = on && registered;
}

void
log_flush(void)
{
	log_write_all(log_held.buf, log_held.len);
	log_held.len = 0;
}

/* One line for standard error: held, or written with what was held. */
static void
log_stderr(int pri, const char *line, size_t len)
{
	if (log_held.on && pri >= LOG_INFO) {
		if (log_held.len + len > sizeof(log_held.buf))
			log_flush();
		if (len <= sizeof(log_held.buf)) {
			memcpy(log_held.buf + log_held.len, line, len);
			log_held.len += len;
			return;
		}
	}
	log_flush();
	log_write_all(line, len);
}

static void	log_vsink(int, const char *, va_list, const char *)
		    __attribute__((format(printf, 2, 0)));
static void	log_vstderr(int, const char *, va_list, const char *)
		    __attribute__((format(printf, 2, 0)));

/* A line being made: what fits of it, and the length it wants. */
struct log_line {
	char	*buf;
	size_t	 cap;		/* characters it may hold, with no NUL */
	size_t	 want;
};

static void
log_cat(struct log_line *l, const char *s, size_t len)
{
	if (l->want < l->cap)
		memcpy(l->buf + l->want, s, l->cap - l->want < len ?
		    l->cap - l->want : len);
	l->want += len;
}

/*
 * " severity smtpd[pid]: procname: " after the time stamp, the part
 * after the severity made again only when the pid or the name change.
 */
static void
log_head(struct log_line *l, int pri)
{
	static char		 tail[128];
	static size_t		 tail_len;
	static const char	*tail_name;
	static int		 tail_pid = -1;
	const char		*sev = log_severity(pri);
	int			 n, pid = log_pid();

	if (tail_pid != pid || tail_name != log_state.procname) {
		n = snprintf(tail, sizeof(tail), " smtpd[%d]: %s: ", pid,
		    log_state.procname);
		tail_len = n < 0 ? 0 : (size_t)n >= sizeof(tail) ?
		    sizeof(tail) - 1 : (size_t)n;
		tail_pid = pid;
		tail_name = log_state.procname;
	}
	l->want = log_timestamp(l->buf);
	log_cat(l, " ", 1);
	log_cat(l, sev, strlen(sev));
	log_cat(l, tail, tail_len);
}

/*
 * A line for standard error, "stamp severity smtpd[pid]: name: msg\n",
 * made in place (the event cut at LOG_LINE_MAX - 1 characters, the line
 * at sizeof(out) - 1, still ending in a newline).
 */
static void
log_vstderr(int pri, const char *fmt, va_list ap, const char *errstr)
{
	char		 out[LOG_WIRE_MAX + 128];
	struct log_line	 l = { out, sizeof(out) - 1, 0 };
	int		 n;

	log_head(&l, pri);
	/* The head is far shorter than the room left past an event. */
	n = vsnprintf(out + l.want, LOG_LINE_MAX, fmt, ap);
	if (n > 0)
		l.want += (size_t)n < LOG_LINE_MAX ? (size_t)n :
		    LOG_LINE_MAX - 1;
	if (errstr != NULL) {
		log_cat(&l, ": ", 2);
		log_cat(&l, errstr, strlen(errstr));
	}
	log_cat(&l, "\n", 1);
	if (l.want > l.cap) {
		/* Cut, but still a line. */
		l.want = l.cap;
		out[l.want - 1] = '\n';
	}
	log_stderr(pri, out, l.want);
}

/* Format one line and send it to its destination. */
static void
log_vwrite(int pri, const char *fmt, va_list ap, const char *errstr)
{
	int	 saved_errno = errno;

	if (log_state.foreground) {
		log_vstderr(pri, fmt, ap, errstr);
		errno = saved_errno;
		return;
	}
	log_vsink(pri, fmt, ap, errstr);
	errno = saved_errno;
}

/* A line for the parent (a child), or for syslog (the parent). */
static void
log_vsink(int pri, const char *fmt, va_list ap, const char *errstr)
{
	char	 msg[LOG_LINE_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_state.child) {
		char	 line[LOG_WIRE_MAX];

		snprintf(line, sizeof(line), "%s: %s%s%s", log_state.procname,
		    msg, errstr != NULL ? ": " : "", errstr != NULL ? errstr :
		    "");
		if (log_state.sink != NULL)
			log_state.sink(pri, line);
	} else {
		if (errstr != NULL)
			syslog(pri, "%s: %s: %s", log_state.procname, msg,
			    errstr);
		else
			syslog(pri, "%s: %s", log_state.procname, msg);
	}
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	char	*errstr = strerror(errno);

	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, fmt, ap, errstr);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, fmt, ap, NULL);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_INFO, fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!log_state.verbose)
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	char	*errstr = strerror(errno);

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap, errstr);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
