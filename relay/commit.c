/*
 * The group commit of the relay (relay.c hands it each checked message
 * with its spool file): when the queued messages are made durable, and
 * when their clients hear of it.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "event.h"
#include "log.h"
#include "proto.h"
#include "relay.h"
#include "scheduler.h"

static struct {
	struct pending	*pending;	/* commits for the next sync */
	struct ev_timer	 timer;
	uint64_t	 flush_end_us;	/* when the last group's syncs
					   returned */
	uint64_t	 flush_cost_us;	/* and how long they took */
	commit_reply_fn	 reply;
	void		(*synced)(void);
} commit;

static uint64_t
commit_now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * When the next group is synced, in ms from now: at once after a
 * pause, else no sooner than the last group's syncs took after they
 * returned.  The loop blocks in a sync (syncfs: 1-4 ms on a busy disk),
 * and a sync in every round of it left the upstream connections one
 * step a sync: with this, at most half of the time goes to syncs, and
 * a commit waits at most one sync longer (the commit delay of
 * databases).  No 250 still goes before its sync.
 */
static uint64_t
commit_delay(void)
{
	uint64_t	 since = commit_now_us() - commit.flush_end_us;

	if (commit.flush_end_us == 0 || since >= commit.flush_cost_us)
		return 0;
	return (commit.flush_cost_us - since + 999) / 1000;
}

/* A pending commit that failed: the client hears 451, the file goes. */
static void
pending_fail(struct pending *p, const char *why)
{
	queue_spool_discard(p->msg->id, p->msg->owner);
	commit.reply(p->channel, p->session, IMSG_MSG_TEMPFAIL, why);
	close(p->fd);
	qmsg_free(p->msg);
	free(p);
}

/*
 * Group commit: every message committed in this round of the event loop
 * shares the syncs, and no 250 goes out before the sync that covers its
 * message has returned.  A group's files are written, then one syncfs
 * makes their bytes durable, then they are linked into queue/ and the
 * directory synced: reused files are overwritten in place, and no name
 * may reach queue/ before what it names (queue_commit_write()).
 */
static void
commit_flush(void *arg)
{
	struct pending	*p, *next, *done = NULL, *linked = NULL;
	uint64_t	 t0 = commit_now_us();
	int		 synced, group;

	(void)arg;
	group = commit.pending != NULL && commit.pending->next != NULL;
	for (p = commit.pending; p != NULL; p = next) {
		next = p->next;
		if (queue_commit_write(p->msg, p->fd, !group, p->envname,
		    sizeof(p->envname)) == -1) {
			pending_fail(p, "queue write error");
			continue;
		}
		p->next = done;
		done = p;
	}
	commit.pending = NULL;
	if (group && done != NULL && queue_sync(1) == -1) {
		for (p = done; p != NULL; p = next) {
			next = p->next;
			queue_commit_undo(p->envname);
			pending_fail(p, "queue sync error");
		}
		done = NULL;
	}
	for (p = done; p != NULL; p = next) {
		next = p->next;
		if (queue_commit_link(p->msg, p->envname) == -1) {
			pending_fail(p, "queue write error");
			continue;
		}
		p->next = linked;
		linked = p;
	}
	synced = linked != NULL && queue_sync(0) == 0;
	commit.flush_end_us = commit_now_us();
	commit.flush_cost_us = commit.flush_end_us - t0;
	commit.synced();
	for (p = linked; p != NULL; p = next) {
		next = p->next;
		close(p->fd);
		if (!synced) {
			queue_remove(p->msg);
			commit.reply(p->channel, p->session, IMSG_MSG_TEMPFAIL,
			    "queue sync error");
			qmsg_free(p->msg);
		} else {
			log_info("event=queued queue_id=%s", p->msg->id);
			stats_received();
			commit.reply(p->channel, p->session, IMSG_MSG_OK,
			    p->msg->id);
			sched_add(p->msg);
		}
		free(p);
	}
}

/* A checked message for the next group; the answer waits for its sync. */
void
commit_add(struct pending *p)
{
	p->next = commit.pending;
	commit.pending = p;
	if (!ev_timer_pending(&commit.timer))
		ev_timer_add(&commit.timer, commit_delay());
}

void
commit_init(commit_reply_fn reply, void (*synced)(void))
{
	commit.reply = reply;
	commit.synced = synced;
	ev_timer_set(&commit.timer, commit_flush, NULL);
}
