/*
 * Listening sockets, bound by the parent while it is root.  v6 sockets
 * are IPV6_V6ONLY so that "listen on ::" never shadows a v4 listener.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "parent.h"

#define LISTEN_BACKLOG	4096

/* Bind hp into l; on error a message in err and -1. */
int
listener_open(struct listener *l, const struct hostport *hp, char *err,
    size_t errlen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 slen;
	int			 fd, on = 1;

	if (hp->host[0] != '\0' && strchr(hp->host, ':') != NULL)
		snprintf(l->name, sizeof(l->name), "[%s]:%u", hp->host,
		    hp->port);
	else
		snprintf(l->name, sizeof(l->name), "%s:%u", hp->host, hp->port);
	if (hostport_sockaddr(hp, &ss, &slen) == -1) {
		snprintf(err, errlen, "%s: listen address must be an IP "
		    "address or localhost", l->name);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (fd == -1) {
		snprintf(err, errlen, "%s: socket: %s", l->name,
		    strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1) ||
	    bind(fd, (struct sockaddr *)&ss, slen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1) {
		snprintf(err, errlen, "%s: %s", l->name, strerror(errno));
		close(fd);
		return -1;
	}
	l->fd = fd;
	l->flags = 0;
	return 0;
}
