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

#include "log.h"
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

/* The listener of lc in l: its flags and proxy-from sources. */
static void
listener_set(struct listener *l, const struct listen_conf *lc)
{
	l->flags = lc->flags;
	memcpy(l->proxy, lc->proxy, sizeof(l->proxy));
	l->nproxy = lc->nproxy;
}

/* The running listener of the same address as hp, or -1. */
static int
listener_find(const struct parent *p, const struct hostport *hp)
{
	struct listener	 l;
	unsigned int	 i;

	memset(&l, 0, sizeof(l));
	if (hp->host[0] != '\0' && strchr(hp->host, ':') != NULL)
		snprintf(l.name, sizeof(l.name), "[%s]:%u", hp->host, hp->port);
	else
		snprintf(l.name, sizeof(l.name), "%s:%u", hp->host, hp->port);
	for (i = 0; i < p->nlisteners; i++)
		if (strcmp(p->listeners[i].name, l.name) == 0)
			return (int)i;
	return -1;
}

/* Whether fd is one of the running listeners'. */
static int
listener_running(const struct parent *p, int fd)
{
	unsigned int	 i;

	for (i = 0; i < p->nlisteners; i++)
		if (p->listeners[i].fd == fd)
			return 1;
	return 0;
}

/*
 * A reload's listeners into out: a running one of the same address
 * keeps its socket (what waits in its backlog waits on for the new
 * workers), a new one is bound now.  -1 and the error in err, with
 * nothing left open, if one cannot be bound.
 */
int
listeners_prepare(struct parent *p, const struct listen_conf *lc,
    unsigned int n, struct listener *out, unsigned int *nout, char *err,
    size_t errlen)
{
	unsigned int	 i;
	int		 j;

	*nout = 0;
	for (i = 0; i < n; i++) {
		if ((j = listener_find(p, &lc[i].hp)) != -1)
			out[i] = p->listeners[j];
		else if (listener_open(&out[i], &lc[i].hp, err, errlen) == -1) {
			listeners_abort(p, out, i);
			return -1;
		}
		listener_set(&out[i], &lc[i]);
	}
	*nout = n;
	return 0;
}

/* A reload that failed: the sockets it bound are closed again. */
void
listeners_abort(struct parent *p, struct listener *out, unsigned int n)
{
	unsigned int	 i;

	for (i = 0; i < n; i++)
		if (!listener_running(p, out[i].fd))
			close(out[i].fd);
}

/*
 * The reload's listeners become the running ones; a listener it no
 * longer has is closed here, and in the old workers when they retire.
 */
void
listeners_commit(struct parent *p, struct listener *out, unsigned int n,
    unsigned int *added, unsigned int *removed)
{
	unsigned int	 i, j;

	*added = *removed = 0;
	for (i = 0; i < p->nlisteners; i++) {
		for (j = 0; j < n && out[j].fd != p->listeners[i].fd; j++)
			;
		if (j == n) {
			log_info("event=listener-closed listen=%s",
			    p->listeners[i].name);
			close(p->listeners[i].fd);
			(*removed)++;
		}
	}
	for (j = 0; j < n; j++)
		if (!listener_running(p, out[j].fd)) {
			log_info("event=listener-added listen=%s", out[j].name);
			(*added)++;
		}
	memcpy(p->listeners, out, n * sizeof(*out));
	p->nlisteners = n;
}
