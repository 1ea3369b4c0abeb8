/*
 * The run-time configuration on the wire: the parent sends it, every
 * child reads and checks it.
 */
#ifndef SMTPD_CONF_H
#define SMTPD_CONF_H

#include "imsg.h"
#include "proto.h"

void	conf_defaults(struct smtpd_conf *);
int	conf_send(struct imsgbuf *, const struct smtpd_conf *);
int	conf_recv(struct imsg *, struct smtpd_conf *);

#endif
