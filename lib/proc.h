/*
 * The processes' channels: one receive path for every imsgbuf, that
 * checks each message against imsg_rules[] and hands it to the
 * handler of its type; and what every child does first, reading its
 * configuration from the parent over the inherited channel
 * (descriptor 3).
 */
#ifndef SMTPD_PROC_H
#define SMTPD_PROC_H

#include <stddef.h>

#include "imsg.h"
#include "proto.h"

#define PROC_PARENT_FD	3
#define PROC_WHY_MAX	128

struct proc_chan;

/* A handler parses the payload; -1 if it is bad (the sender lied). */
struct proc_handler {
	uint32_t	 type;
	int		(*fn)(struct proc_chan *, struct imsg *);
};

/* One end of a channel, as its receiver sees it. */
struct proc_chan {
	struct imsgbuf			*ib;
	enum proc_role			 self;	/* the receiver */
	enum proc_role			 peer;	/* the sender */
	uint32_t			 phase;	/* PHASE_STARTUP or _RUNNING */
	const struct proc_handler	*handlers; /* ended by type 0 */
	void				*arg;
	char				 why[PROC_WHY_MAX]; /* of PROC_BAD */
};

/* What proc_recv() ran into. */
enum proc_status {
	PROC_OK,		/* all that came was handled */
	PROC_EOF,		/* the peer closed its end */
	PROC_ERROR,		/* the read failed: errno */
	PROC_BAD,		/* a message broke the rules: why */
};

void	proc_chan_init(struct proc_chan *, struct imsgbuf *, enum proc_role,
	    enum proc_role, const struct proc_handler *, void *);
enum proc_status proc_recv(struct proc_chan *);
enum proc_status proc_dispatch(struct proc_chan *);
void	proc_startup(struct proc_chan *);
void	proc_parent_io(int, int, void *);
int	proc_conf_end(struct proc_chan *, struct imsg *);
void	proc_nonblock(int);
int	proc_write_full(int, const void *, size_t);
int	proc_send(struct imsgbuf *, struct imsg_out *);
int	proc_queue(struct imsgbuf *, struct imsg_out *);
int	proc_flush(struct imsgbuf *);
int	proc_pong(struct proc_chan *, struct imsg *);
int	proc_log_level(struct proc_chan *, struct imsg *);

#endif
