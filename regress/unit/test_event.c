/*
 * The event loop: timer order and cancellation, descriptor callbacks,
 * a descriptor removed by another's callback in the same round, and the
 * flush hook that ends every round.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "event.h"

#define WATCHDOG_MS	5000

struct tctx {
	struct ev_timer	 t;
	int		 id;
	int		 fired;
	int		 brk;		/* ev_break() when fired */
	struct ev_timer	*cancel;	/* ev_timer_del() this when fired */
	uint64_t	 rearm;		/* re-arm once with this delay */
};

static int	 order[512];
static size_t	 norder;
static uint64_t	 last_when;

static void
watchdog_cb(void *arg)
{
	(void)arg;
	fail_msg("event loop watchdog expired");
}

static void
watchdog(struct ev_timer *w)
{
	ev_timer_set(w, watchdog_cb, NULL);
	ev_timer_add(w, WATCHDOG_MS);
}

static void
timer_cb(void *arg)
{
	struct tctx	*c = arg;
	uint64_t	 now = ev_now();

	assert_false(ev_timer_pending(&c->t));
	/* Never early, never out of order. */
	assert_true(now >= c->t.when);
	assert_true(c->t.when >= last_when);
	last_when = c->t.when;
	c->fired++;
	assert_true(norder < sizeof(order) / sizeof(order[0]));
	order[norder++] = c->id;
	if (c->cancel != NULL)
		ev_timer_del(c->cancel);
	if (c->rearm) {
		ev_timer_add(&c->t, c->rearm);
		c->rearm = 0;
	}
	if (c->brk)
		ev_break();
}

static void
tctx_init(struct tctx *c, int id)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
	ev_timer_set(&c->t, timer_cb, c);
}

static void
reset_order(void)
{
	norder = 0;
	last_when = 0;
}

static int
setup(void **state)
{
	(void)state;
	ev_init();
	return 0;
}

static void
test_timer_order(void **state)
{
	struct tctx	 c[4];
	struct ev_timer	 w;
	uint64_t	 start;
	int		 i;

	(void)state;
	reset_order();
	for (i = 0; i < 4; i++)
		tctx_init(&c[i], i + 1);
	assert_false(ev_timer_pending(&c[0].t));
	start = ev_now();
	ev_timer_add(&c[0].t, 30);
	ev_timer_add(&c[1].t, 10);
	ev_timer_add(&c[2].t, 20);
	ev_timer_add(&c[3].t, 40);
	c[3].brk = 1;
	for (i = 0; i < 4; i++)
		assert_true(ev_timer_pending(&c[i].t));
	watchdog(&w);
	ev_loop();
	ev_timer_del(&w);
	assert_int_equal(norder, 4);
	assert_int_equal(order[0], 2);
	assert_int_equal(order[1], 3);
	assert_int_equal(order[2], 1);
	assert_int_equal(order[3], 4);
	assert_true(ev_now() - start >= 40);
	for (i = 0; i < 4; i++) {
		assert_int_equal(c[i].fired, 1);
		assert_false(ev_timer_pending(&c[i].t));
	}
}

static void
test_timer_del(void **state)
{
	struct tctx	 c[5];
	struct ev_timer	 w;
	int		 i;

	(void)state;
	reset_order();
	for (i = 0; i < 5; i++)
		tctx_init(&c[i], i);
	ev_timer_add(&c[0].t, 5);	/* cancels c[3] when it fires */
	ev_timer_add(&c[1].t, 10);	/* deleted before the loop */
	ev_timer_add(&c[2].t, 30);	/* stops the loop */
	ev_timer_add(&c[3].t, 15);
	ev_timer_add(&c[4].t, 20);
	c[0].cancel = &c[3].t;
	c[2].brk = 1;
	ev_timer_del(&c[1].t);
	assert_false(ev_timer_pending(&c[1].t));
	/* Deleting twice is harmless. */
	ev_timer_del(&c[1].t);
	watchdog(&w);
	ev_loop();
	ev_timer_del(&w);
	assert_int_equal(norder, 3);
	assert_int_equal(order[0], 0);
	assert_int_equal(order[1], 4);
	assert_int_equal(order[2], 2);
	assert_int_equal(c[1].fired, 0);
	assert_int_equal(c[3].fired, 0);
	assert_false(ev_timer_pending(&c[3].t));
}

/* Re-arming a pending timer moves it; it never fires twice. */
static void
test_timer_rearm(void **state)
{
	struct tctx	 c[4];
	struct ev_timer	 w;
	int		 i;

	(void)state;
	reset_order();
	for (i = 0; i < 4; i++)
		tctx_init(&c[i], i);
	ev_timer_add(&c[0].t, 10);
	ev_timer_add(&c[1].t, 20);
	ev_timer_add(&c[0].t, 40);	/* moved after c[1] */
	ev_timer_add(&c[2].t, 0);	/* re-arms itself from its handler */
	c[2].rearm = 30;
	ev_timer_add(&c[3].t, 60);
	c[3].brk = 1;
	watchdog(&w);
	ev_loop();
	ev_timer_del(&w);
	assert_int_equal(norder, 5);
	assert_int_equal(order[0], 2);
	assert_int_equal(order[1], 1);
	assert_int_equal(order[2], 2);
	assert_int_equal(order[3], 0);
	assert_int_equal(order[4], 3);
	assert_int_equal(c[0].fired, 1);
	assert_int_equal(c[2].fired, 2);
}

/* Many timers, some deleted: the heap gives them back in time order. */
static void
test_timer_heap(void **state)
{
	static struct tctx	 c[300];
	struct tctx		 stop;
	struct ev_timer		 w;
	int			 i, want = 0;

	(void)state;
	reset_order();
	srandom(25);
	for (i = 0; i < 300; i++) {
		tctx_init(&c[i], i);
		ev_timer_add(&c[i].t, random() % 40);
	}
	for (i = 0; i < 300; i++) {
		if (i % 3 == 0)
			ev_timer_del(&c[i].t);
		else
			want++;
	}
	/* Some moved again. */
	for (i = 1; i < 300; i += 7)
		if (i % 3 != 0)
			ev_timer_add(&c[i].t, random() % 40);
	tctx_init(&stop, -1);
	stop.brk = 1;
	ev_timer_add(&stop.t, 80);
	watchdog(&w);
	ev_loop();
	ev_timer_del(&w);
	assert_int_equal(norder, (size_t)want + 1);
	assert_int_equal(order[norder - 1], -1);
	for (i = 0; i < 300; i++)
		assert_int_equal(c[i].fired, i % 3 == 0 ? 0 : 1);
}

struct ioctx {
	int	 fd;
	int	 calls;
	int	 events;
	int	 other;		/* ev_del() this from the callback, or -1 */
	int	*total;
	char	 got;
	ssize_t	 nread;
};

static void
io_cb(int fd, int events, void *arg)
{
	struct ioctx	*c = arg;

	assert_int_equal(fd, c->fd);
	c->calls++;
	c->events = events;
	if (c->total != NULL)
		(*c->total)++;
	if (events & EV_READ)
		c->nread = read(fd, &c->got, 1);
	if (c->other != -1)
		ev_del(c->other);
	ev_break();
}

static void
stop_cb(void *arg)
{
	int	*stopped = arg;

	*stopped = 1;
	ev_break();
}

static void
test_fd_pipe(void **state)
{
	struct ioctx	 r, w;
	struct ev_timer	 wd, stop;
	int		 p[2], stopped = 0;

	(void)state;
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	memset(&r, 0, sizeof(r));
	r.fd = p[0];
	r.other = -1;
	memset(&w, 0, sizeof(w));
	w.fd = p[1];
	w.other = -1;
	watchdog(&wd);

	assert_int_equal(ev_add(p[0], EV_READ, io_cb, &r), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	ev_loop();
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.events, EV_READ);
	assert_int_equal(r.nread, 1);
	assert_int_equal(r.got, 'x');

	/* Nothing more to read: only the timer ends the next round. */
	ev_timer_set(&stop, stop_cb, &stopped);
	ev_timer_add(&stop, 30);
	ev_loop();
	assert_int_equal(stopped, 1);
	assert_int_equal(r.calls, 1);

	/* The write end is writable. */
	assert_int_equal(ev_add(p[1], EV_WRITE, io_cb, &w), 0);
	ev_loop();
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.events, EV_WRITE);
	/* No longer watched for writing: no call. */
	assert_int_equal(ev_mod(p[1], EV_READ), 0);
	assert_int_equal(ev_mod(p[1], EV_READ), 0);
	stopped = 0;
	ev_timer_add(&stop, 30);
	ev_loop();
	assert_int_equal(stopped, 1);
	assert_int_equal(w.calls, 1);
	assert_int_equal(r.calls, 1);

	/* The writer goes away: the reader is woken and sees EOF. */
	ev_del(p[1]);
	close(p[1]);
	ev_loop();
	assert_int_equal(r.calls, 2);
	assert_true(r.events & EV_READ);
	assert_int_equal(r.nread, 0);
	ev_del(p[0]);
	close(p[0]);
	ev_timer_del(&wd);
}

/* The reader closed: a write watcher is woken by the error. */
static void
test_fd_error(void **state)
{
	struct ioctx	 w;
	struct ev_timer	 wd;
	int		 p[2];
	char		 fill[65536];

	(void)state;
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	memset(fill, 0, sizeof(fill));
	while (write(p[1], fill, sizeof(fill)) > 0)
		;
	memset(&w, 0, sizeof(w));
	w.fd = p[1];
	w.other = -1;
	assert_int_equal(ev_add(p[1], EV_WRITE, io_cb, &w), 0);
	close(p[0]);
	watchdog(&wd);
	ev_loop();
	ev_timer_del(&wd);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.events, EV_WRITE);
	ev_del(p[1]);
	close(p[1]);
}

/*
 * Two descriptors ready in the same round; whichever runs first removes
 * the other, whose callback must then never run.
 */
static void
test_del_in_round(void **state)
{
	struct ioctx	 a, b;
	struct ev_timer	 wd;
	int		 pa[2], pb[2], total, round;

	(void)state;
	watchdog(&wd);
	for (round = 0; round < 50; round++) {
		assert_int_equal(pipe2(pa, O_NONBLOCK), 0);
		assert_int_equal(pipe2(pb, O_NONBLOCK), 0);
		total = 0;
		memset(&a, 0, sizeof(a));
		a.fd = pa[0];
		a.other = pb[0];
		a.total = &total;
		memset(&b, 0, sizeof(b));
		b.fd = pb[0];
		b.other = pa[0];
		b.total = &total;
		assert_int_equal(ev_add(pa[0], EV_READ, io_cb, &a), 0);
		assert_int_equal(ev_add(pb[0], EV_READ, io_cb, &b), 0);
		assert_int_equal(write(pa[1], "a", 1), 1);
		assert_int_equal(write(pb[1], "b", 1), 1);
		ev_loop();
		assert_int_equal(total, 1);
		assert_int_equal(a.calls + b.calls, 1);
		/* The survivor is still registered, the other is not. */
		if (a.calls) {
			assert_int_equal(ev_mod(pb[0], EV_WRITE), -1);
			assert_int_equal(ev_mod(pa[0], EV_READ), 0);
		} else {
			assert_int_equal(ev_mod(pa[0], EV_READ | EV_WRITE), -1);
			assert_int_equal(ev_mod(pb[0], EV_READ), 0);
		}
		ev_del(pa[0]);
		ev_del(pb[0]);
		close(pa[0]);
		close(pa[1]);
		close(pb[0]);
		close(pb[1]);
	}
	ev_timer_del(&wd);
}

static void
test_add_errors(void **state)
{
	struct ioctx	 c;
	char		 tmpl[] = "/tmp/test_event.XXXXXX";
	int		 p[2], fd;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(ev_add(-1, EV_READ, io_cb, &c), -1);
	assert_int_equal(ev_mod(-1, EV_READ), -1);
	ev_del(-1);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(ev_mod(p[0], EV_READ), -1);
	ev_del(p[0]);
	assert_int_equal(ev_add(p[0], EV_READ, io_cb, &c), 0);
	/* Twice is an error. */
	assert_int_equal(ev_add(p[0], EV_READ, io_cb, &c), -1);
	ev_del(p[0]);
	ev_del(p[0]);
	assert_int_equal(ev_add(p[0], EV_READ, io_cb, &c), 0);
	ev_del(p[0]);
	/* epoll refuses a regular file; nothing is left registered. */
	assert_true((fd = mkstemp(tmpl)) >= 0);
	unlink(tmpl);
	assert_int_equal(ev_add(fd, EV_READ, io_cb, &c), -1);
	assert_int_equal(ev_mod(fd, EV_READ), -1);
	close(fd);
	/* A high descriptor grows the table. */
	assert_true((fd = fcntl(p[0], F_DUPFD, 900)) >= 900);
	assert_int_equal(ev_add(fd, EV_READ, io_cb, &c), 0);
	assert_int_equal(ev_mod(fd, EV_WRITE), 0);
	ev_del(fd);
	close(fd);
	close(p[0]);
	close(p[1]);
}

/* ev_break from a timer ends the loop before any waiting. */
static void
test_break(void **state)
{
	struct tctx	 c;
	struct ev_timer	 w;
	uint64_t	 start;

	(void)state;
	reset_order();
	tctx_init(&c, 7);
	c.brk = 1;
	start = ev_now();
	ev_timer_add(&c.t, 0);
	watchdog(&w);
	ev_loop();
	assert_int_equal(norder, 1);
	assert_true(ev_now() - start < 1000);
	/* The loop runs again after a break. */
	ev_timer_add(&c.t, 5);
	ev_loop();
	assert_int_equal(norder, 2);
	ev_timer_del(&w);
}

static int	 flushes;	/* calls of flush_cb */
static int	 handled;	/* calls of flush_io_cb */
static int	 flushes_seen[4];	/* flushes when each handler ran */
static int	 handled_at_flush[8];

static void
flush_cb(void)
{
	assert_true(flushes < 8);
	handled_at_flush[flushes++] = handled;
}

static void
flush_io_cb(int fd, int events, void *arg)
{
	char	 c;

	(void)events;
	(void)arg;
	assert_int_equal(read(fd, &c, 1), 1);
	assert_true(handled < 4);
	flushes_seen[handled++] = flushes;
	if (handled == 2)
		ev_break();
}

/*
 * The flush hook runs once before each wait and when the loop ends,
 * never between two handlers of one round: what they queued goes out
 * together.
 */
static void
test_flush(void **state)
{
	struct ev_timer	 wd;
	int		 a[2], b[2];

	(void)state;
	flushes = handled = 0;
	assert_int_equal(pipe2(a, O_NONBLOCK), 0);
	assert_int_equal(pipe2(b, O_NONBLOCK), 0);
	assert_int_equal(ev_add(a[0], EV_READ, flush_io_cb, NULL), 0);
	assert_int_equal(ev_add(b[0], EV_READ, flush_io_cb, NULL), 0);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "y", 1), 1);
	watchdog(&wd);
	ev_set_flush(flush_cb);
	ev_loop();
	ev_set_flush(NULL);
	ev_timer_del(&wd);
	/* Both handlers in one round, after the flush before its wait. */
	assert_int_equal(handled, 2);
	assert_int_equal(flushes_seen[0], 1);
	assert_int_equal(flushes_seen[1], 1);
	/* And the loop's end flushed what they queued. */
	assert_int_equal(flushes, 2);
	assert_int_equal(handled_at_flush[0], 0);
	assert_int_equal(handled_at_flush[1], 2);
	ev_del(a[0]);
	ev_del(b[0]);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

static int	 rounds;
static int	 parked_calls;

static void
count_rounds(void)
{
	rounds++;
}

static void
parked_cb(int fd, int events, void *arg)
{
	char	 c;

	(void)arg;
	assert_int_equal(events, EV_READ);
	assert_int_equal(read(fd, &c, 1), 0);	/* the hang-up, seen */
	parked_calls++;
	ev_break();
}

static void
break_cb(void *arg)
{
	(void)arg;
	ev_break();
}

/*
 * A descriptor watched for nothing whose peer hangs up: epoll reports
 * EPOLLHUP whatever the mask, and the loop must not wake for it every
 * round (it spun until the owner asked again).  Asked again, the owner
 * gets the hang-up.
 */
static void
test_hangup_while_watched_for_nothing(void **state)
{
	struct ev_timer	 wd, stop;
	int		 sp[2];

	(void)state;
	rounds = parked_calls = 0;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sp), 0);
	assert_int_equal(ev_add(sp[0], 0, parked_cb, NULL), 0);
	close(sp[1]);
	watchdog(&wd);
	ev_timer_set(&stop, break_cb, NULL);
	ev_timer_add(&stop, 100);
	ev_set_flush(count_rounds);
	ev_loop();
	assert_true(rounds < 10);
	assert_int_equal(parked_calls, 0);
	assert_int_equal(ev_mod(sp[0], EV_READ), 0);
	ev_loop();
	ev_set_flush(NULL);
	ev_timer_del(&wd);
	assert_int_equal(parked_calls, 1);
	ev_del(sp[0]);
	close(sp[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_order),
		cmocka_unit_test(test_timer_del),
		cmocka_unit_test(test_timer_rearm),
		cmocka_unit_test(test_timer_heap),
		cmocka_unit_test(test_fd_pipe),
		cmocka_unit_test(test_fd_error),
		cmocka_unit_test(test_del_in_round),
		cmocka_unit_test(test_add_errors),
		cmocka_unit_test(test_break),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_hangup_while_watched_for_nothing),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
