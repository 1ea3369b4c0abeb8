/*
 * The command line of SPEC section 3, parsed without side effects so
 * that it can be tested and fuzzed.
 */
#ifndef SMTPD_CMDLINE_H
#define SMTPD_CMDLINE_H

#include <sys/socket.h>
#include <limits.h>
#include <stdint.h>

#include "proto.h"

#define HOSTPORT_MAX	300

struct hostport {
	char		host[256];	/* as given, brackets removed */
	uint16_t	port;
};

struct cmdline {
	int		 foreground;		/* -d */
	int		 no_drop;		/* -n */
	int		 check_only;		/* -t */
	int		 verbose;		/* -v, repeatable */
	int		 version;		/* -V */
	int		 help;			/* -h */
	int		 smtputf8;		/* -u */
	int		 mode;			/* -c, 0 when not given */
	uint64_t	 max_size;		/* -s, 0 when not given */
	const char	*conffile;		/* -f, NULL when not given */
	const char	*role;			/* -X, hidden: child role */
	int		 have_listen;
	struct hostport	 listen;		/* first positional */
	int		 have_remote;
	struct hostport	 remote;		/* second, relay mode */
	char		 program[PATH_MAX];	/* second, deliver mode */
};

int	cmdline_parse(int, char **, struct cmdline *, char *, size_t);
int	cmdline_mode(const char *);
int	hostport_parse(const char *, struct hostport *, char *, size_t);
int	hostport_sockaddr(const struct hostport *, struct sockaddr_storage *,
	    socklen_t *);
int	parse_size(const char *, uint64_t *);
void	cmdline_usage(void);

#endif
