/*
 * Delivery status notifications (RFC 3464) for failed recipients.
 */
#ifndef SMTPD_BOUNCE_H
#define SMTPD_BOUNCE_H

#include "proto.h"
#include "queue.h"

#define BOUNCE_HEADERS_MAX	65536

int	bounce_create(const struct qmsg *, const struct smtpd_conf *);
int	bounce_write(int fd, const struct qmsg *, const char *id,
	    const char *hostname, int origfd);

#endif
