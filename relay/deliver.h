/*
 * deliver mode transport: the relay asks the parent to run the
 * deliver program for each ready message.
 */
#ifndef SMTPD_DELIVER_H
#define SMTPD_DELIVER_H

#include "imsg.h"
#include "proto.h"

typedef void (*deliver_send_cb)(struct imsg_out *);

void	deliver_init(const struct smtpd_conf *, deliver_send_cb);
int	deliver_done(struct imsg *);

#endif
