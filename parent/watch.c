/*
 * Liveness of the children (SPEC section 10): the parent notices a
 * child that stops answering, not only one that exits.  A child stopped
 * by a signal (waitpid reports it with WUNTRACED) that does not go on
 * within STOP_GRACE_MS is killed; every child gets an IMSG_PING every
 * ping interval and is killed when it leaves one unanswered for the
 * deadline (a child held under ptrace, or spinning, or blocked).  The
 * death is then handled as any other: logged, and the child replaced.
 * Until its first answer a child has PING_STARTUP_MS: the relay reads
 * the whole queue before its event loop runs.
 */
#include <sys/wait.h>

#include <signal.h>
#include <stdlib.h>

#include <bsd/stdlib.h>

#include "log.h"
#include "parent.h"

static void	watch_tick(void *);

static uint64_t	 ping_interval = PING_INTERVAL_MS;
static uint64_t	 ping_deadline;
static struct ev_timer	 ping_timer;

/*
 * Start the pings.  SMTPD_PING_INTERVAL (milliseconds) shortens them
 * for tests; the deadline is twice the interval, and at least a second.
 */
void
parent_watch_init(struct parent *p)
{
	const char	*v, *errstr;

	if ((v = getenv("SMTPD_PING_INTERVAL")) != NULL) {
		ping_interval = strtonum(v, 10, 600000, &errstr);
		if (errstr != NULL)
			fatalx("SMTPD_PING_INTERVAL is %s: %s", errstr, v);
	}
	ping_deadline = ping_interval * 2;
	if (ping_deadline < PING_DEADLINE_MIN_MS)
		ping_deadline = PING_DEADLINE_MIN_MS;
#ifdef SMTPD_VALGRIND_BUILD
	/* Everything under valgrind is many times slower. */
	ping_deadline *= 10;
#endif
	ev_timer_set(&ping_timer, watch_tick, p);
	ev_timer_add(&ping_timer, ping_interval);
}

/* Each tick: a child with a ping unanswered too long goes; others get one. */
static void
watch_tick(void *arg)
{
	struct parent	*p = arg;
	struct child	*c;
	struct imsg_out	 out;
	uint64_t	 now = ev_now();

	for (c = p->children; c != NULL; c = c->next) {
		if (c->killed)
			continue;
		if (c->ping_sent != 0) {
			if (now - c->ping_sent >= (c->ping_ok ? ping_deadline :
			    PING_STARTUP_MS)) {
				parent_kill_child(c, "no answer to ping");
				c->killed = 1;
			}
			continue;
		}
		c->ping_seq++;
		c->ping_sent = now;
		imsg_out_init(&out, IMSG_PING, 0, -1);
		imsg_add_u32(&out, c->ping_seq);
		parent_child_send(c, &out);
	}
	ev_timer_add(&ping_timer, ping_interval);
}

/* IMSG_PONG: the answer to the ping outstanding, or a lie (-1). */
int
parent_watch_pong(struct child *c, struct imsg *imsg)
{
	uint32_t	 seq;

	if (imsg->fd != -1 || imsg_get_u32(imsg, &seq) == -1 ||
	    imsg_get_end(imsg) == -1 || c->ping_sent == 0 ||
	    seq != c->ping_seq)
		return -1;
	c->ping_sent = 0;
	if (!c->ping_ok)
		log_debug("event=alive role=%s pid=%d",
		    parent_role_name(c->role), (int)c->pid);
	c->ping_ok = 1;
	return 0;
}

static void
watch_stop_grace(void *arg)
{
	struct child	*c = arg;

	if (c->stopped && !c->killed) {
		parent_kill_child(c, "stopped");
		c->killed = 1;
	}
}

/*
 * waitpid() said pid stopped or continued; 1 if it is one of our
 * children.  A stopped child gets STOP_GRACE_MS to continue (a debugger,
 * an operator's kill -STOP and -CONT) before it is killed.
 */
int
parent_watch_stopped(struct parent *p, pid_t pid, int status)
{
	struct child	*c;

	if ((c = parent_child_by_pid(p, pid)) == NULL)
		return 0;
	if (WIFSTOPPED(status)) {
		log_warnx("event=child-stopped role=%s pid=%d signal=%d",
		    parent_role_name(c->role), (int)pid, WSTOPSIG(status));
		c->stopped = 1;
		ev_timer_set(&c->stop_timer, watch_stop_grace, c);
		ev_timer_add(&c->stop_timer, STOP_GRACE_MS);
	} else if (WIFCONTINUED(status) && c->stopped) {
		log_info("event=child-continued role=%s pid=%d",
		    parent_role_name(c->role), (int)pid);
		c->stopped = 0;
		ev_timer_del(&c->stop_timer);
	}
	return 1;
}

/* c is about to be freed. */
void
parent_watch_forget(struct child *c)
{
	if (ev_timer_pending(&c->stop_timer))
		ev_timer_del(&c->stop_timer);
}
