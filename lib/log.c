/*
 * Logging to standard error or syslog.  The state is set once by
 * log_init() before any child is sandboxed; openlog() uses LOG_NDELAY so
 * that the syslog socket exists before chroot.
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
} log_state = { 1, 0, "smtpd", 0 };

/* Set where log lines go; called first thing by every process. */
void
log_init(int foreground, int verbose, const char *procname)
{
	log_state.foreground = foreground;
	log_state.verbose = verbose;
	log_state.procname = procname;
	log_state.pid = getpid();
	tzset();
	if (!foreground)
		openlog("smtpd", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* Change the name a process logs under (after a role is chosen). */
void
log_procname(const char *procname)
{
	log_state.procname = procname;
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

/* Format one line and send it to its destination. */
static void
log_vwrite(int pri, const char *fmt, va_list ap, const char *errstr)
{
	char	 msg[2048];
	int	 saved_errno = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_state.foreground) {
		if (errstr != NULL)
			fprintf(stderr, "smtpd[%d]: %s: %s: %s\n", log_pid(),
			    log_state.procname, msg, errstr);
		else
			fprintf(stderr, "smtpd[%d]: %s: %s\n", log_pid(),
			    log_state.procname, msg);
		fflush(stderr);
	} else {
		if (errstr != NULL)
			syslog(pri, "%s: %s: %s", log_state.procname, msg,
			    errstr);
		else
			syslog(pri, "%s: %s", log_state.procname, msg);
	}
	errno = saved_errno;
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
