/*
 * Command line parsing.  Python's "python -m smtpd -n -c DebuggingServer
 * localhost:1025" must work as it is, so the class names are aliases of
 * the modes and the positional arguments are host:port pairs.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmdline.h"

void
cmdline_usage(void)
{
	fprintf(stderr, "usage: smtpd [-dhntvV] [-c mode] [-f file] [-s size] "
	    "[-u] [localhost:port [remotehost:port]]\n");
}

/* A mode name or one of Python's class names; 0 if unknown. */
int
cmdline_mode(const char *name)
{
	if (strcmp(name, "debug") == 0 || strcmp(name, "DebuggingServer") == 0)
		return MODE_DEBUG;
	if (strcmp(name, "relay") == 0 || strcmp(name, "PureProxy") == 0)
		return MODE_RELAY;
	if (strcmp(name, "deliver") == 0)
		return MODE_DELIVER;
	return 0;
}

/* A size in bytes, with an optional K, M or G suffix. */
int
parse_size(const char *s, uint64_t *size)
{
	char			*end;
	unsigned long long	 v;
	uint64_t		 mult = 1;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		switch (toupper((unsigned char)*end)) {
		case 'K':
			mult = 1024;
			break;
		case 'M':
			mult = 1024 * 1024;
			break;
		case 'G':
			mult = 1024 * 1024 * 1024;
			break;
		default:
			return -1;
		}
		if (end[1] != '\0')
			return -1;
	}
	if (v == 0 || v > UINT64_MAX / mult)
		return -1;
	*size = v * mult;
	return 0;
}

/*
 * "host:port", "[v6addr]:port" or "host" alone is refused: Python's
 * form always names the port.
 */
int
hostport_parse(const char *s, struct hostport *hp, char *err, size_t errlen)
{
	const char	*colon, *hostp;
	size_t		 hostlen;
	const char	*errstr = NULL;
	long long	 port;

	memset(hp, 0, sizeof(*hp));
	if (strlen(s) > HOSTPORT_MAX) {
		snprintf(err, errlen, "address too long");
		return -1;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':') {
			snprintf(err, errlen, "%s: expected [address]:port", s);
			return -1;
		}
		hostp = s + 1;
		hostlen = close - hostp;
		colon = close + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			snprintf(err, errlen, "%s: expected host:port", s);
			return -1;
		}
		hostp = s;
		hostlen = colon - s;
		if (memchr(hostp, ':', hostlen) != NULL) {
			snprintf(err, errlen,
			    "%s: write an IPv6 address as [address]:port", s);
			return -1;
		}
	}
	if (hostlen >= sizeof(hp->host)) {
		snprintf(err, errlen, "%s: host name too long", s);
		return -1;
	}
	memcpy(hp->host, hostp, hostlen);
	hp->host[hostlen] = '\0';
	/* Digits only: strtonum() would take " 25" and "+25" too. */
	if (colon[1] == '\0' || strspn(colon + 1, "0123456789") !=
	    strlen(colon + 1)) {
		snprintf(err, errlen, "%s: port is not a number", s);
		return -1;
	}
	port = strtonum(colon + 1, 1, 65535, &errstr);
	if (errstr != NULL) {
		snprintf(err, errlen, "%s: port is %s", s, errstr);
		return -1;
	}
	hp->port = (uint16_t)port;
	return 0;
}

/*
 * The socket address of a listening host:port.  Only IP literals,
 * "localhost" (127.0.0.1) and "" (all v4 addresses) are accepted: a
 * listener never costs a DNS query.
 */
int
hostport_sockaddr(const struct hostport *hp, struct sockaddr_storage *ss,
    socklen_t *slen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	const char		*host = hp->host;

	memset(ss, 0, sizeof(*ss));
	if (strcasecmp(host, "localhost") == 0)
		host = "127.0.0.1";
	else if (host[0] == '\0')
		host = "0.0.0.0";
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(hp->port);
		*slen = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(hp->port);
		*slen = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static int	cmdline_positional(int, char **, struct cmdline *, char *,
		    size_t);

/* Parse argv into cl; on error, a message in err and -1. */
int
cmdline_parse(int argc, char **argv, struct cmdline *cl, char *err,
    size_t errlen)
{
	int	 ch;

	memset(cl, 0, sizeof(*cl));
	/*
	 * 0, not 1: glibc then forgets the rest of a cluster left over by
	 * an earlier call, which would point into that call's argv.
	 */
	optind = 0;
	opterr = 0;
	while ((ch = getopt(argc, argv, "+:c:df:hns:tuvVX:")) != -1) {
		switch (ch) {
		case 'c':
			if ((cl->mode = cmdline_mode(optarg)) == 0) {
				snprintf(err, errlen, "unknown mode: %s "
				    "(debug, relay, deliver)", optarg);
				return -1;
			}
			break;
		case 'd':
			cl->foreground = 1;
			break;
		case 'f':
			cl->conffile = optarg;
			break;
		case 'h':
			cl->help = 1;
			break;
		case 'n':
			cl->no_drop = 1;
			break;
		case 's':
			if (parse_size(optarg, &cl->max_size) == -1) {
				snprintf(err, errlen, "bad size: %s", optarg);
				return -1;
			}
			break;
		case 't':
			cl->check_only = 1;
			break;
		case 'u':
			cl->smtputf8 = 1;
			break;
		case 'v':
			cl->verbose++;
			break;
		case 'V':
			cl->version = 1;
			break;
		case 'X':
			cl->role = optarg;
			break;
		case ':':
			snprintf(err, errlen, "option -%c needs an argument",
			    optopt);
			return -1;
		default:
			snprintf(err, errlen, "unknown option -%c", optopt);
			return -1;
		}
	}
	return cmdline_positional(argc - optind, argv + optind, cl, err,
	    errlen);
}

/*
 * The operands: where to listen, then the upstream (or, in deliver
 * mode, the program).
 */
static int
cmdline_positional(int argc, char **argv, struct cmdline *cl, char *err,
    size_t errlen)
{
	if (argc > 2) {
		snprintf(err, errlen, "too many arguments");
		return -1;
	}
	if (argc >= 1) {
		if (hostport_parse(argv[0], &cl->listen, err, errlen) == -1)
			return -1;
		cl->have_listen = 1;
	}
	if (argc == 2) {
		if (cl->mode == MODE_DELIVER) {
			if (strlcpy(cl->program, argv[1], sizeof(cl->program)) >=
			    sizeof(cl->program)) {
				snprintf(err, errlen, "program path too long");
				return -1;
			}
		} else {
			if (hostport_parse(argv[1], &cl->remote, err,
			    errlen) == -1)
				return -1;
			cl->have_remote = 1;
		}
	}
	return 0;
}
