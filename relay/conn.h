/*
 * The accepted connections of the relay's small local servers (the
 * control socket, the metrics listener): each sends one request, gets
 * one answer and is closed.  This is what they share: a bounded list,
 * an id by which the parent's replies find the connection again, a
 * deadline, and the answer written until done.  What a request is and
 * what else a connection keeps is the owner's (control.c,
 * metrics_http.c), in a struct that begins with a struct conn.
 */
#ifndef SMTPD_CONN_H
#define SMTPD_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

/* The count in an id; the bit above it is free to say whose id it is. */
#define CONN_ID_MASK	0x7fffffffU

enum conn_state {
	CONN_REQUEST,		/* the owner's: reading, or asking the parent */
	CONN_WRITE,		/* the answer is going */
	CONN_LINGER,		/* written: what the client still sends */
};

struct conn_list;

struct conn {
	struct conn		*next;
	struct conn_list	*list;
	uint32_t		 id;
	int			 fd;
	enum conn_state		 state;
	char			*out;		/* the answer */
	size_t			 outlen;
	size_t			 outoff;
	struct ev_timer		 timer;
};

struct conn_list {
	/* Set by the owner. */
	const char	*name;		/* the log's event=NAME-busy */
	size_t		 size;		/* of the owner's struct */
	unsigned int	 max;		/* connections at once */
	uint32_t	 id_bit;	/* in each id, above CONN_ID_MASK */
	int		 events;	/* at first: EV_READ, or 0 to wait */
	uint64_t	 deadline_ms;	/* from accept to the end */
	uint64_t	 linger_ms;	/* after the answer; 0: close at once */
	/* Linked, with its id, timer and events; -1: close it. */
	int		(*open)(struct conn *);
	void		(*read)(struct conn *);	/* EV_READ, before the answer */
	void		(*timeout)(struct conn *);	/* idem; NULL: close */
	void		(*free)(struct conn *);	/* the owner's part */
	/* Kept by conn.c. */
	struct conn	*head;
	unsigned int	 n;
	uint32_t	 next_id;
};

void		 conn_listen(struct conn_list *, int fd);
struct conn	*conn_find(struct conn_list *, uint32_t id);
void		 conn_answer(struct conn *, char *buf, size_t len);
void		 conn_close(struct conn *);

#endif
