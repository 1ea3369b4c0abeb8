/*
 * The group commit of the relay (relay.c hands it each checked message
 * with its spool file): when the queued messages are made durable, and
 * when their clients hear of it.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "control.h"
#include "event.h"
#include "log.h"
#include "proto.h"
#include "relay.h"
#include "scheduler.h"
#include "syncer.h"

static struct {
	struct pending	*pending;	/* commits for the next group */
	struct pending	*group;		/* the group being synced */
	struct ev_timer	 timer;
	commit_reply_fn	 reply;
	void		(*synced)(void);
} commit;

static void	commit_link(int, void *);
static void	commit_answer(int, void *);

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
 * Group commit: every message committed while the last group was
 * synced shares the next syncs, and no 250 goes out before the sync
 * that covers its message has returned.  A group's files are written,
 * then one syncfs makes their bytes durable, then they are linked into
 * queue/ and the directory synced: reused files are overwritten in
 * place, and no name may reach queue/ before what it names
 * (queue_commit_write()).  The syncs run in the syncer thread
 * (relay/syncer.c): the loop goes on meanwhile, and the commits that
 * come in form the next group, which starts when this one is answered.
 * A message alone is synced file by file (fdatasync, no syncfs of a
 * busy file system) before its link; only its directory sync waits in
 * the thread then.
 */
static void
commit_flush(void *arg)
{
	struct pending	*p, *next, *done = NULL;
	int		 group;

	(void)arg;
	if (syncer_busy() || commit.group != NULL)
		return;		/* commit_answer() starts the next */
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
	if ((commit.group = done) == NULL)
		return;
	if (group)
		syncer_run(SYNC_FS, commit_link, NULL);
	else
		commit_link(0, NULL);
}

/* The group's bytes are on the disk (err 0): link its names. */
static void
commit_link(int err, void *arg)
{
	struct pending	*p, *next, *linked = NULL;

	(void)arg;
	for (p = commit.group; p != NULL; p = next) {
		next = p->next;
		if (err != 0) {
			errno = err;
			log_warn("event=queue-error op=syncfs");
			queue_commit_undo(p->envname);
			pending_fail(p, "queue sync error");
			continue;
		}
		if (queue_commit_link(p->msg, p->envname) == -1) {
			pending_fail(p, "queue write error");
			continue;
		}
		p->next = linked;
		linked = p;
	}
	if ((commit.group = linked) == NULL) {
		commit_answer(-1, NULL);
		return;
	}
	syncer_run(SYNC_DIR, commit_answer, NULL);
}

/* The directory sync returned (err 0: synced; -1: nothing to sync). */
static void
commit_answer(int err, void *arg)
{
	struct pending	*p, *next;

	(void)arg;
	if (err > 0) {
		errno = err;
		log_warn("event=queue-error op=fsync-dir");
	}
	commit.synced();
	for (p = commit.group; p != NULL; p = next) {
		next = p->next;
		close(p->fd);
		if (err != 0) {
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
	commit.group = NULL;
	if (commit.pending != NULL && !ev_timer_pending(&commit.timer))
		ev_timer_add(&commit.timer, 0);
}

/* A checked message for the next group; the answer waits for its sync. */
void
commit_add(struct pending *p)
{
	p->next = commit.pending;
	commit.pending = p;
	if (commit.group == NULL && !ev_timer_pending(&commit.timer))
		ev_timer_add(&commit.timer, 0);
}

void
commit_init(commit_reply_fn reply, void (*synced)(void))
{
	commit.reply = reply;
	commit.synced = synced;
	ev_timer_set(&commit.timer, commit_flush, NULL);
}
