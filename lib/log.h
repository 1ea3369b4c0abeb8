/*
 * Logging: one line per event, to standard error (-d) or syslog(3),
 * facility mail.  fatal() and fatalx() end the process.
 */
#ifndef SMTPD_LOG_H
#define SMTPD_LOG_H

#include <sys/types.h>
#include <inttypes.h>
#include <stdarg.h>

/* A child's line crosses to the parent: both bound it by these. */
#define LOG_LINE_MAX	2048			/* one formatted event */
#define LOG_WIRE_MAX	(LOG_LINE_MAX + 256)	/* with role and error */

/*
 * A session id as every process logs it (session=...): 16 hex digits,
 * as OpenSMTPD's.  How one is made unique: session_new_id(), smtpd/.
 */
#define LOG_SID		"%016" PRIx64

typedef void (*log_sink_cb)(int pri, const char *line);

void	log_init(int foreground, int verbose, const char *procname);
void	log_init_child(int foreground, int verbose, const char *procname,
	    log_sink_cb);
void	log_from_child(int pri, pid_t pid, const char *line);
void	log_procname(const char *procname);
const char *log_q(const char *);
const char *log_quser(const char *);
const char *log_qq(const char *);
const char *log_qpath(const char *);
int	log_verbose(void);
void	log_set_verbose(int);
void	log_batch(int);
void	log_flush(void);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2),
	    noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2),
	    noreturn));

#endif
