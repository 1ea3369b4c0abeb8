/*
 * The event loop.  Descriptors are looked up in a table by number at
 * dispatch time, so a handler that removes another descriptor during the
 * same round never makes the loop call into freed state.
 */
#include <sys/epoll.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "log.h"

#define EV_BATCH	128

struct ev_io {
	ev_io_cb	 cb;
	void		*arg;
	int		 events;
	int		 active;
	int		 parked;	/* out of the epoll set: see ev_dispatch() */
};

static struct {
	int		  epfd;
	struct ev_io	 *io;		/* indexed by descriptor */
	size_t		  nio;
	struct ev_timer	**heap;
	size_t		  nheap;
	size_t		  heapsize;
	int		  stop;
	ev_flush_cb	  flush;
} ev = { -1, NULL, 0, NULL, 0, 0, 0, NULL };

/* Milliseconds on the monotonic clock. */
uint64_t
ev_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
ev_init(void)
{
	if ((ev.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
}

static uint32_t
ev_mask(int events)
{
	uint32_t	 mask = 0;

	/* EPOLLEXCLUSIVE allows nothing but EPOLLIN and EPOLLOUT with it. */
	if (events & EV_READ)
		mask |= (events & EV_EXCLUSIVE) ? EPOLLIN : EPOLLIN | EPOLLRDHUP;
	if (events & EV_WRITE)
		mask |= EPOLLOUT;
	if (events & EV_EXCLUSIVE)
		mask |= EPOLLEXCLUSIVE;
	return mask;
}

/* Watch fd for events; cb runs with what is ready. */
int
ev_add(int fd, int events, ev_io_cb cb, void *arg)
{
	struct epoll_event	 ee;
	struct ev_io		*io;
	size_t			 n;

	if (fd < 0)
		return -1;
	if ((size_t)fd >= ev.nio) {
		n = (size_t)fd + 64;
		if ((io = reallocarray(ev.io, n, sizeof(*io))) == NULL)
			return -1;
		memset(io + ev.nio, 0, (n - ev.nio) * sizeof(*io));
		ev.io = io;
		ev.nio = n;
	}
	memset(&ee, 0, sizeof(ee));
	ee.events = ev_mask(events);
	ee.data.fd = fd;
	if (epoll_ctl(ev.epfd, EPOLL_CTL_ADD, fd, &ee) == -1)
		return -1;
	io = &ev.io[fd];
	io->cb = cb;
	io->arg = arg;
	io->events = events;
	io->active = 1;
	return 0;
}

/* Change what fd is watched for. */
int
ev_mod(int fd, int events)
{
	struct epoll_event	 ee;

	if (fd < 0 || (size_t)fd >= ev.nio || !ev.io[fd].active)
		return -1;
	if (ev.io[fd].events == events)
		return 0;
	memset(&ee, 0, sizeof(ee));
	ee.events = ev_mask(events);
	ee.data.fd = fd;
	if (epoll_ctl(ev.epfd, ev.io[fd].parked ? EPOLL_CTL_ADD :
	    EPOLL_CTL_MOD, fd, &ee) == -1)
		return -1;
	ev.io[fd].events = events;
	ev.io[fd].parked = 0;
	return 0;
}

/* Stop watching fd; call before closing it. */
void
ev_del(int fd)
{
	if (fd < 0 || (size_t)fd >= ev.nio || !ev.io[fd].active)
		return;
	if (!ev.io[fd].parked)
		epoll_ctl(ev.epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(&ev.io[fd], 0, sizeof(ev.io[fd]));
}

static void
heap_swap(size_t a, size_t b)
{
	struct ev_timer	*t = ev.heap[a];

	ev.heap[a] = ev.heap[b];
	ev.heap[b] = t;
	ev.heap[a]->slot = a + 1;
	ev.heap[b]->slot = b + 1;
}

static void
heap_up(size_t i)
{
	while (i > 0 && ev.heap[(i - 1) / 2]->when > ev.heap[i]->when) {
		heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(size_t i)
{
	size_t	 l, r, min;

	for (;;) {
		l = 2 * i + 1;
		r = l + 1;
		min = i;
		if (l < ev.nheap && ev.heap[l]->when < ev.heap[min]->when)
			min = l;
		if (r < ev.nheap && ev.heap[r]->when < ev.heap[min]->when)
			min = r;
		if (min == i)
			return;
		heap_swap(i, min);
		i = min;
	}
}

void
ev_timer_set(struct ev_timer *t, ev_timer_cb cb, void *arg)
{
	t->when = 0;
	t->slot = 0;
	t->cb = cb;
	t->arg = arg;
}

/* Fire t once, ms milliseconds from now (re-arming moves it). */
void
ev_timer_add(struct ev_timer *t, uint64_t ms)
{
	struct ev_timer	**heap;
	size_t		  n;

	ev_timer_del(t);
	if (ev.nheap == ev.heapsize) {
		n = ev.heapsize ? ev.heapsize * 2 : 64;
		if ((heap = reallocarray(ev.heap, n, sizeof(*heap))) == NULL)
			fatal("timer heap");
		ev.heap = heap;
		ev.heapsize = n;
	}
	t->when = ev_now() + ms;
	ev.heap[ev.nheap] = t;
	t->slot = ++ev.nheap;
	heap_up(ev.nheap - 1);
}

void
ev_timer_del(struct ev_timer *t)
{
	size_t	 i;

	if (t->slot == 0)
		return;
	i = t->slot - 1;
	t->slot = 0;
	if (i != --ev.nheap) {
		ev.heap[i] = ev.heap[ev.nheap];
		ev.heap[i]->slot = i + 1;
		heap_down(i);
		heap_up(i);
	}
}

int
ev_timer_pending(const struct ev_timer *t)
{
	return t->slot != 0;
}

/* Run the timers that are due; return ms until the next (-1: none). */
static int
ev_run_timers(void)
{
	struct ev_timer	*t;
	uint64_t	 now = ev_now();

	while (ev.nheap > 0 && ev.heap[0]->when <= now) {
		t = ev.heap[0];
		ev_timer_del(t);
		t->cb(t->arg);
	}
	if (ev.nheap == 0)
		return -1;
	now = ev_now();
	if (ev.heap[0]->when <= now)
		return 0;
	if (ev.heap[0]->when - now > 60000)
		return 60000;
	return (int)(ev.heap[0]->when - now);
}

/* Make ev_loop() return after the current round. */
void
ev_break(void)
{
	ev.stop = 1;
}

/*
 * fn runs at the end of every round, before the loop waits, and when
 * it ends: writes held back while the round's events were handled go
 * out together (one sendmsg(2), one wake-up of the peer, for what many
 * handlers queued).
 */
void
ev_set_flush(ev_flush_cb fn)
{
	ev.flush = fn;
}

/*
 * One event of epoll_wait() to its callback.  An error or hang-up wakes
 * whatever is waiting; epoll reports it even for a descriptor watched
 * for nothing (its owner waits for another process), and would then
 * wake every round until that owner asks again: such a descriptor
 * leaves the epoll set until the next ev_mod(), when the owner sees
 * the hang-up itself.
 */
static void
ev_dispatch(const struct epoll_event *ee)
{
	struct ev_io	*io;
	int		 fd = ee->data.fd, events = 0;

	if ((size_t)fd >= ev.nio || !(io = &ev.io[fd])->active || io->parked)
		return;
	if ((ee->events & (EPOLLHUP | EPOLLERR)) && io->events == 0) {
		if (epoll_ctl(ev.epfd, EPOLL_CTL_DEL, fd, NULL) == 0)
			io->parked = 1;
		return;
	}
	if (ee->events & (EPOLLIN | EPOLLRDHUP))
		events |= EV_READ;
	if (ee->events & EPOLLOUT)
		events |= EV_WRITE;
	if (ee->events & (EPOLLHUP | EPOLLERR))
		events |= io->events;
	events &= io->events & (EV_READ | EV_WRITE);
	if (events != 0)
		io->cb(fd, events, io->arg);
}

/* Dispatch events until ev_break(). */
void
ev_loop(void)
{
	struct epoll_event	 ees[EV_BATCH];
	int			 i, n, timeout;

	ev.stop = 0;
	while (!ev.stop) {
		timeout = ev_run_timers();
		if (ev.stop)
			break;
		if (ev.flush != NULL)
			ev.flush();
		n = epoll_wait(ev.epfd, ees, EV_BATCH, timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait");
		}
		for (i = 0; i < n; i++)
			ev_dispatch(&ees[i]);
	}
	if (ev.flush != NULL)
		ev.flush();
}
