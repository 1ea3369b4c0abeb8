/*
 * sd_notify(3) without libsystemd: the protocol is one datagram of
 * newline-separated assignments to an AF_UNIX socket, a path or (with a
 * leading '@') an abstract name.  A daemon that must not depend on
 * systemd's library at all needs nothing more.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

/* The manager's socket, once found: the parent's only. */
static struct {
	int			 fd;
	struct sockaddr_un	 sun;
	socklen_t		 sunlen;
} notify = { -1, { 0 }, 0 };

int
notify_init(void)
{
	const char	*path;
	size_t		 len;

	if ((path = getenv("NOTIFY_SOCKET")) == NULL || *path == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof(notify.sun.sun_path)) {
		unsetenv("NOTIFY_SOCKET");
		return -1;
	}
	memset(&notify.sun, 0, sizeof(notify.sun));
	notify.sun.sun_family = AF_UNIX;
	memcpy(notify.sun.sun_path, path, len);
	if (path[0] == '@')
		notify.sun.sun_path[0] = '\0';
	notify.sunlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    len + (path[0] == '/'));
	unsetenv("NOTIFY_SOCKET");
	if ((notify.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	return 1;
}

int
notify_active(void)
{
	return notify.fd != -1;
}

void
notify_send(const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;
	int	 n;

	if (notify.fd == -1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return;
	/* A manager that is gone or busy must never stop the daemon. */
	if (sendto(notify.fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT,
	    (struct sockaddr *)&notify.sun, notify.sunlen) == -1)
		log_debug("event=notify result=failed error=\"%s\"",
		    strerror(errno));
}
