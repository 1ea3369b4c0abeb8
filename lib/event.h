/*
 * A small epoll(7) event loop with one-shot timers kept in a heap.
 * One loop per process; handlers run one at a time.
 */
#ifndef SMTPD_EVENT_H
#define SMTPD_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define EV_READ		0x1
#define EV_WRITE	0x2
#define EV_EXCLUSIVE	0x4	/* EPOLLEXCLUSIVE, for shared listeners */

typedef void (*ev_io_cb)(int fd, int events, void *arg);
typedef void (*ev_timer_cb)(void *arg);
typedef void (*ev_flush_cb)(void);

struct ev_timer {
	uint64_t	 when;		/* ms on the monotonic clock */
	size_t		 slot;		/* heap index + 1; 0 when idle */
	ev_timer_cb	 cb;
	void		*arg;
};

void		ev_init(void);
int		ev_add(int fd, int events, ev_io_cb, void *);
int		ev_mod(int fd, int events);
void		ev_del(int fd);
void		ev_timer_set(struct ev_timer *, ev_timer_cb, void *);
void		ev_timer_add(struct ev_timer *, uint64_t ms);
void		ev_timer_del(struct ev_timer *);
int		ev_timer_pending(const struct ev_timer *);
uint64_t	ev_now(void);
void		ev_set_flush(ev_flush_cb);
void		ev_loop(void);
void		ev_break(void);

#endif
