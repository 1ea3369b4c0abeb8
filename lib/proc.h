/*
 * What every child does first: read its configuration from the parent
 * over the inherited channel (descriptor 3).
 */
#ifndef SMTPD_PROC_H
#define SMTPD_PROC_H

#include <stddef.h>

#include "imsg.h"

#define PROC_PARENT_FD	3

typedef void (*proc_startup_cb)(struct imsg *, void *);

void	proc_read_startup(struct imsgbuf *, proc_startup_cb, void *);
void	proc_nonblock(int);
int	proc_write_full(int, const void *, size_t);
int	proc_send(struct imsgbuf *, struct imsg_out *);
int	proc_pong(struct imsgbuf *, struct imsg *);

#endif
