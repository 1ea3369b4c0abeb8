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
	int		 is_group;	/* synced by syncfs, linked as ID.new */
	uint64_t	 gen;		/* its queue sync (queue.c) */
	struct ev_timer	 timer;
	commit_reply_fn	 reply;
	void		(*synced)(void);
	void		(*flush)(void);
} commit;

static void	commit_answer(int, void *);

/* A pending commit that failed: the client hears 451, the file goes. */
static void
pending_fail(struct pending *p, const char *why)
{
	if (p->msg->file[0] != '\0')
		queue_spool_discard_data(p->msg->file, p->msg->owner,
		    p->msg->file_new);
	else
		queue_spool_discard(p->msg->id, p->msg->owner);
	commit.reply(p->channel, p->session, IMSG_MSG_TEMPFAIL, why);
	close(p->fd);
	qmsg_free(p->msg);
	free(p);
}

/*
 * Group commit: every message committed while the last group was
 * synced shares the next sync, and no 250 goes out before the sync
 * that covers its message has returned.  A group's files are written
 * and renamed into queue/, the envelope as ID.new, and one syncfs makes
 * all of it durable: one wait on the disk, where writing the bytes and
 * then the names took two.  A crash before that sync returned can leave
 * an ID.new naming bytes that are not on the disk (reused files are
 * overwritten in place): its check line tells it at the start, and it
 * was never answered (relay/queue_check.c).  After the sync, ID.new is
 * renamed ID.env.  The syncs run in the syncer thread (relay/syncer.c):
 * the loop goes on meanwhile, and the commits that come in form the
 * next group, which starts when this one is answered.  A message alone
 * is synced file by file (fdatasync, no syncfs of a busy file system)
 * and linked as ID.env; only its directory sync waits in the thread.
 * A relayed message's envelope goes into its own message file (queue
 * format 4, relay/queue_inline.c): nothing is renamed, and a message
 * alone needs only the fdatasync of that file, in the thread.
 */
static void
commit_flush(void *arg)
{
	struct pending	*p, *next, *done = NULL;
	int		 group, op;

	(void)arg;
	if (syncer_busy() || commit.group != NULL)
		return;		/* commit_answer() starts the next */
	/* A new file's name in data/ needs the syncfs too. */
	group = commit.pending != NULL && (commit.pending->next != NULL ||
	    commit.pending->msg->file_new);
	for (p = commit.pending; p != NULL; p = next) {
		next = p->next;
		if (queue_commit_write(p->msg, p->fd, !group, p->envname,
		    sizeof(p->envname)) == -1) {
			pending_fail(p, "queue write error");
			continue;
		}
		if ((group ? queue_commit_link_new(p->msg, p->envname) :
		    queue_commit_link(p->msg, p->envname)) == -1) {
			pending_fail(p, "queue write error");
			continue;
		}
		p->next = done;
		done = p;
	}
	commit.pending = NULL;
	if ((commit.group = done) == NULL)
		return;
	commit.is_group = group;
	/*
	 * A message alone in its own file (format 4): that file's sync,
	 * which is no sync of the queue's names (queue_sync_begin()).
	 */
	op = group ? SYNC_FS : done->msg->inline_len != 0 ? SYNC_FILE :
	    SYNC_DIR;
	commit.gen = op == SYNC_FILE ? 0 : queue_sync_begin();
	syncer_run(op, done->fd, commit_answer, NULL);
}

/* One message of the group whose sync returned (err 0: synced). */
static void
commit_answer_one(struct pending *p, int err)
{
	if (err == 0 && commit.is_group && queue_commit_settle(p->msg) == -1)
		err = EIO;
	if (err != 0) {
		if (commit.is_group)
			queue_commit_drop(p->msg);
		else
			queue_remove(p->msg);
		commit.reply(p->channel, p->session, IMSG_MSG_TEMPFAIL,
		    "queue sync error");
		close(p->fd);
		qmsg_free(p->msg);
		return;
	}
	log_info("event=queued queue_id=%s", p->msg->id);
	stats_received();
	commit.reply(p->channel, p->session, IMSG_MSG_OK, p->msg->id);
	/* Its first delivery reads it through the commit's descriptor. */
	queue_msg_keep(p->msg, p->fd);
	sched_add(p->msg);
}

/* The group's sync returned (err 0: synced). */
static void
commit_answer(int err, void *arg)
{
	struct pending	*p, *next;

	(void)arg;
	if (err != 0) {
		errno = err;
		log_warn("event=queue-error op=%s", commit.is_group ?
		    "syncfs" : commit.group->msg->inline_len != 0 ?
		    "fdatasync" : "fsync-dir");
	} else if (commit.gen != 0)
		queue_sync_end(commit.gen);
	commit.synced();
	for (p = commit.group; p != NULL; p = next) {
		next = p->next;
		commit_answer_one(p, err);
		free(p);
	}
	commit.group = NULL;
	/* The 250s go now, not at the end of a round with more in it. */
	commit.flush();
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
commit_init(commit_reply_fn reply, void (*synced)(void), void (*flush)(void))
{
	commit.reply = reply;
	commit.synced = synced;
	commit.flush = flush;
	ev_timer_set(&commit.timer, commit_flush, NULL);
}
