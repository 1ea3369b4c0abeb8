/*
 * The queue's syncs in a thread of their own, so that the relay's event
 * loop goes on while the disk makes a group commit durable: workers get
 * their spool files (MSG_OPEN), deliveries go on, the next group forms.
 * A sync took 1-4 ms on a busy disk, and every session waited for it
 * at DATA as well as for its own commit.
 *
 * The thread makes nothing but the sync calls (no log, no allocation,
 * no shared state but the descriptors it is told of): the loop hands it
 * one request at a time through a pipe and hears the errno back through
 * another, which the loop watches.  It is started inside sandbox_enter()
 * (sandbox_set_thread_hook()), after the privilege drop and before the
 * rlimits, and the seccomp filter is loaded with TSYNC, so it runs as
 * confined as the relay; it needs no clone(2) in the filter.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "event.h"
#include "log.h"
#include "queue.h"
#include "syncer.h"

struct sync_req {
	int	 op;		/* SYNC_FS, SYNC_DIR or SYNC_FILE */
	int	 fd;		/* SYNC_FILE's */
};

/* The call itself, in the thread or (no thread) in the loop. */
static int
sync_call(const struct sync_req *r)
{
	if (r->op == SYNC_FILE)
		return fdatasync(r->fd);
	return queue_sync_call(r->op == SYNC_FS);
}

static struct {
	int		 req[2];	/* loop -> thread */
	int		 res[2];	/* thread -> loop */
	int		 busy;
	syncer_done_fn	 done;
	void		*arg;
} syncer = { { -1, -1 }, { -1, -1 }, 0, NULL, NULL };

static void *
syncer_main(void *arg)
{
	struct sync_req	 r;
	ssize_t		 n;
	int		 err;

	(void)arg;
	/* Started (glibc's rseq and robust list set up): say so. */
	err = 0;
	if (write(syncer.res[1], &err, sizeof(err)) != sizeof(err))
		return NULL;
	for (;;) {
		n = read(syncer.req[0], &r, sizeof(r));
		if (n == -1 && errno == EINTR)
			continue;
		if (n != sizeof(r))
			return NULL;	/* the relay is going */
		err = sync_call(&r) == -1 ? errno : 0;
		/* The loop waits for this: only a reader gone stops it. */
		while (write(syncer.res[1], &err, sizeof(err)) == -1)
			if (errno == EPIPE || errno == EBADF)
				return NULL;
	}
}

/* The thread answered: hand its errno to whoever asked. */
static void
syncer_io(int fd, int events, void *arg)
{
	syncer_done_fn	 done;
	ssize_t		 n;
	int		 err;

	(void)events;
	(void)arg;
	n = read(fd, &err, sizeof(err));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n != sizeof(err))
		fatalx("syncer: short answer");
	syncer.busy = 0;
	done = syncer.done;
	syncer.done = NULL;
	done(err, syncer.arg);
}

/* sandbox_enter()'s hook: the thread, its signals all blocked. */
void
syncer_start(void)
{
	pthread_t	 t;
	sigset_t	 all, old;
	int		 rc;

	if (pipe2(syncer.req, O_CLOEXEC) == -1 ||
	    pipe2(syncer.res, O_CLOEXEC) == -1)
		fatal("syncer pipe");
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, NULL, syncer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		fatal("syncer thread");
	}
	pthread_detach(t);
	/*
	 * The thread's own start-up calls (rseq, set_robust_list) are
	 * not in the filter: it must be past them before it is loaded.
	 */
	if (read(syncer.res[0], &rc, sizeof(rc)) != sizeof(rc))
		fatal("syncer start");
	if (fcntl(syncer.res[0], F_SETFL, O_NONBLOCK) == -1)
		fatal("syncer fcntl");
}

/* After sandbox_enter(): the loop watches the answers. */
void
syncer_init(void)
{
	if (ev_add(syncer.res[0], EV_READ, syncer_io, NULL) == -1)
		fatal("ev_add syncer");
}

int
syncer_busy(void)
{
	return syncer.busy;
}

/*
 * Sync (SYNC_FS: the queue's file system, SYNC_DIR: the queue
 * directory, SYNC_FILE: the data of fd, which stays open until done)
 * in the thread; done(errno or 0, arg) once it returned.  One request
 * at a time.
 */
void
syncer_run(int op, int fd, syncer_done_fn done, void *arg)
{
	struct sync_req	 r;

	if (syncer.busy)
		fatalx("syncer: a request while one is running");
	r.op = op;
	r.fd = fd;
	while (write(syncer.req[1], &r, sizeof(r)) == -1) {
		if (errno == EINTR)
			continue;
		/* Not the thread's, then: the loop's own, and it waits. */
		log_warn("syncer request");
		done(sync_call(&r) == -1 ? errno : 0, arg);
		return;
	}
	syncer.busy = 1;
	syncer.done = done;
	syncer.arg = arg;
}
