/*
 * smtpctl(8): smtpd's control program, and sendmail(8) and mailq(1)
 * when called by those names.  It talks to the daemon over the control
 * socket (relay/control.h has the protocol); the daemon decides what
 * the caller may do from its uid, never from what this program says.
 */
#ifndef SMTPCTL_H
#define SMTPCTL_H

#include <stddef.h>

#define CTL_DEFAULT_SOCKET	"/run/smtpd.sock"
#define CTL_CONFFILE		"/etc/smtpd/smtpd.conf"

/* sysexits(3), for sendmail's callers. */
#define EX_OK_		0
#define EX_USAGE_	64
#define EX_DATAERR_	65
#define EX_UNAVAIL_	69
#define EX_SOFTWARE_	70
#define EX_TEMPFAIL_	75
#define EX_NOPERM_	77

/* What the daemon answered. */
enum ctl_status {
	CTL_OK,
	CTL_ERROR,	/* a bad request or a failed command */
	CTL_DENIED,	/* not for this uid */
	CTL_TEMPFAIL,	/* try again later */
	CTL_DOWN,	/* no daemon on the socket */
};

struct ctl_answer {
	enum ctl_status	 status;
	char		*text;		/* the rest of the status line */
	char		*body;		/* what follows it */
	size_t		 bodylen;
	char		*buf;
};

const char	*ctl_socket_path(const char *opt);
int		 ctl_request(const char *path, const char *header,
		    const char *data, size_t datalen, struct ctl_answer *);
void		 ctl_answer_free(struct ctl_answer *);
#define SM_RCPT_MAX	1000

int		 sendmail_main(int, char **, const char *path);
int		 sendmail_bs(const char *path, const char *from);
int		 sendmail_submit(const char *path, const char *from,
		    char **rcpts, size_t nrcpt, const char *msg, size_t len,
		    int quiet);
size_t		 sm_extract(char *msg, size_t len, char **rcpts, size_t *n);
int		 sm_has_field(const char *msg, size_t len, const char *name);

#endif
