/*
 * The relay process.  Each session worker has a channel here; a worker
 * asks for a spool file (MSG_OPEN), writes the message into it, and
 * commits (MSG_COMMIT) with the envelope.  The relay checks the envelope
 * and the file against each other, delivers, and only then answers, so
 * the client's 250 always follows the delivery or the durable commit.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <bsd/unistd.h>
#include <time.h>

#include "conf.h"
#include "control.h"
#include "debug.h"
#include "deliver.h"
#include "drain.h"
#include "event.h"
#include "forward.h"
#include "scheduler.h"
#include "log.h"
#include "metrics_http.h"
#include "policy.h"
#include "proc.h"
#include "relay.h"
#include "sandbox.h"
#include "syncer.h"
#include "tls.h"

static struct relay {
	struct smtpd_conf	 conf;
	struct policy		 policy;
	struct routes		 routes;	/* upstreams, from the parent */
	struct policy		 next_policy;	/* being received (SIGHUP) */
	struct policy		 old_policy;	/* before the last reload */
	struct smtpd_conf	 old_conf;	/* the same for the settings */
	uint32_t		 old_channels;	/* channels older hold to it */
	int			 policy_loading;
	struct imsgbuf		 parent;
	struct proc_chan	 parent_chan;
	struct channel		*channels;
	uint64_t		 qid_base;
	uint64_t		 qid_next;
	int			 space_low;	/* below queue-min-free */
	struct ev_timer		 space_timer;
	uint64_t		 spool_pending;	/* last sum measured */
	uint64_t		 spool_pending_at;	/* ev_now() then, +1 */
} relay;

static char	relay_outbuf[65536];	/* stdout's: debug_flush() empties it */

#define RELAY_SPACE_MS	1000	/* how often the free space is measured */
#define RELAY_PENDING_MS	50	/* how long a spool sum far below the
					   limit is used again */

static void	relay_channel_io(int, int, void *);
static void	relay_space_check(void);
static void	channel_space(struct channel *);
static void	relay_parent_send(struct imsg_out *);
static const char *channel_authenticated(const struct channel *, uint32_t);
static void	relay_debug_reply(uint32_t, uint32_t, uint32_t, const char *);

/* A queue id: unique for this relay's life, not guessable from outside. */
static void
relay_queue_id(char *buf, size_t len)
{
	static const char	 hex[] = "0123456789ABCDEF";
	uint64_t		 id = relay.qid_base + relay.qid_next++;
	size_t			 i;

	/* "%016llX" by hand: one a message in debug mode. */
	if (len < 17) {
		if (len > 0)
			buf[0] = '\0';
		return;
	}
	for (i = 16; i > 0; i--, id >>= 4)
		buf[i - 1] = hex[id & 0xf];
	buf[16] = '\0';
}

static struct spool *
spool_find(struct channel *ch, uint32_t session)
{
	struct spool	*sp;

	for (sp = ch->spools; sp != NULL; sp = sp->next)
		if (sp->session == session)
			return sp;
	return NULL;
}

/* A worker of before the last reload may hold to the limits of then. */
static const struct smtpd_conf *
channel_conf(const struct channel *ch)
{
	return ch->id > relay.old_channels ? &relay.conf :
	    relay_conf_larger(&relay.conf, &relay.old_conf);
}

static void
spool_drop(struct channel *ch, struct spool *sp)
{
	struct spool	**spp;

	for (spp = &ch->spools; *spp != NULL; spp = &(*spp)->next)
		if (*spp == sp) {
			*spp = sp->next;
			break;
		}
	if (sp->fd != -1)
		close(sp->fd);
	if (sp->id[0] != '\0')
		queue_spool_discard_data(sp->file, ch->id, sp->file_new);
	free(sp);
	ch->nspools--;
}

static void
channel_write(struct channel *ch)
{
	if (proc_flush(&ch->ib) == -1)
		log_warn("write to worker channel %u", ch->id);
}

/*
 * A round's end: the debug messages printed in it, then its log lines
 * (a client with 250 finds them), then the answers.
 */
static void
relay_flush(void)
{
	struct channel	*ch;

	debug_flush(stdout, relay_debug_reply);
	log_flush();
	for (ch = relay.channels; ch != NULL; ch = ch->next)
		channel_write(ch);
}

static void
channel_reply(struct channel *ch, uint32_t type, uint32_t session,
    const char *text)
{
	struct imsg_out	 out;

	imsg_out_init(&out, type, session, -1);
	imsg_add_str(&out, text);
	if (proc_queue(&ch->ib, &out) == -1)
		log_warn("reply to worker channel %u", ch->id);
}

static void
channel_close(struct channel *ch)
{
	struct channel	**chp;

	while (ch->spools != NULL)
		spool_drop(ch, ch->spools);
	/* Its worker may still hold its files open. */
	if (relay.conf.mode != MODE_DEBUG)
		queue_pool_drop(ch->id);
	while (ch->nauth > 0)
		free(ch->auth[--ch->nauth].user);
	free(ch->auth);
	for (chp = &relay.channels; *chp != NULL; chp = &(*chp)->next)
		if (*chp == ch) {
			*chp = ch->next;
			break;
		}
	ev_del(ch->ib.fd);
	close(ch->ib.fd);
	imsgbuf_clear(&ch->ib);
	free(ch);
}

/*
 * A worker broke the protocol: it may be compromised.  Drop its channel
 * and ask the parent to kill it.
 */
static void
channel_violation(struct channel *ch, const char *what)
{
	struct imsg_out	 out;

	log_warnx("event=worker-violation channel=%u reason=\"%s\"", ch->id,
	    what);
	imsg_out_init(&out, IMSG_WORKER_BAD, ch->id, -1);
	relay_parent_send(&out);
	channel_close(ch);
}

/*
 * Bytes of mail being received, over every channel: the sizes of the
 * spool files themselves, as the kernel has them, never what a worker
 * says it wrote.  An fstat of every open spool at every DATA was a cost
 * per message that grew with the sessions: a sum far below the limit
 * (under half) is used again for RELAY_PENDING_MS; near it, every DATA
 * measures.
 */
static uint64_t
relay_spool_pending(void)
{
	struct channel	*ch;
	struct spool	*sp;
	struct stat	 st;
	uint64_t	 total = 0, now = ev_now();

	if (relay.spool_pending_at != 0 &&
	    now + 1 - relay.spool_pending_at < RELAY_PENDING_MS &&
	    relay.spool_pending < relay.conf.max_spool_pending / 2)
		return relay.spool_pending;
	for (ch = relay.channels; ch != NULL; ch = ch->next)
		for (sp = ch->spools; sp != NULL; sp = sp->next)
			/* Debug mode: not what was printed already. */
			if (sp->fd != -1 && fstat(sp->fd, &st) == 0 &&
			    (uint64_t)st.st_size > sp->base)
				total += (uint64_t)st.st_size - sp->base;
	relay.spool_pending = total;
	relay.spool_pending_at = now + 1;
	return total;
}

static void
channel_full(struct channel *ch, uint32_t session)
{
	struct imsg_out	 out;

	imsg_out_init(&out, IMSG_MSG_FULL, session, -1);
	if (proc_queue(&ch->ib, &out) == -1)
		log_warn("reply to worker channel %u", ch->id);
}

/* MSG_OPEN: a fresh spool file for a session. */
static int
relay_open(struct proc_chan *pc, struct imsg *imsg)
{
	struct channel	*ch = pc->arg;
	struct spool	*sp;
	struct imsg_out	 out;
	char		 id[QUEUE_ID_LEN + 1], file[QUEUE_ID_LEN + 1];
	uint64_t	 pending, sid;
	int		 fd, dupfd, created = 0;

	if (imsg_get_u64(imsg, &sid) == -1 ||
	    spool_find(ch, imsg->hdr.peerid) != NULL)
		return -1;
	/* A worker that asks and never reads holds our descriptors. */
	if (ch->ib.wqueued > 2 * relay.conf.max_sessions + 64)
		return -1;
	if (ch->nspools >= channel_conf(ch)->max_sessions) {
		channel_full(ch, imsg->hdr.peerid);
		return 0;
	}
	if (relay.conf.max_spool_pending > 0 &&
	    (pending = relay_spool_pending()) >= relay.conf.max_spool_pending) {
		log_warnx("event=spool-full channel=%u session=" LOG_SID
		    " pending=%llu max=%llu", ch->id, sid,
		    (unsigned long long)pending,
		    (unsigned long long)relay.conf.max_spool_pending);
		channel_full(ch, imsg->hdr.peerid);
		return 0;
	}
	if (relay.space_low) {
		/* What is left is the queue's own (queue-min-free). */
		channel_reply(ch, IMSG_MSG_TEMPFAIL, imsg->hdr.peerid,
		    "insufficient system storage");
		return 0;
	}
	if (relay.conf.mode == MODE_DEBUG) {
		id[0] = file[0] = '\0';
		/* Appending: emptied for the next message, no lseek(). */
		if ((fd = memfd_create("smtpd-spool", MFD_CLOEXEC)) != -1 &&
		    fcntl(fd, F_SETFL, O_APPEND) == -1) {
			close(fd);
			fd = -1;
		}
	} else {
		do {
			queue_new_id(id);
		} while ((fd = queue_spool_reuse(id, ch->id, file,
		    sizeof(file), &created)) == -1 &&
		    errno == EEXIST);
	}
	if (fd == -1 || (dupfd = dup(fd)) == -1) {
		log_warn("event=spool-create session=" LOG_SID, sid);
		if (fd != -1)
			close(fd);
		if (id[0] != '\0')
			queue_spool_discard_data(file, ch->id, created);
		channel_reply(ch, IMSG_MSG_TEMPFAIL, imsg->hdr.peerid,
		    "cannot create spool file");
		return 0;
	}
	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		fatal("spool");
	sp->session = imsg->hdr.peerid;
	sp->session_id = sid;
	sp->fd = fd;
	strlcpy(sp->id, id, sizeof(sp->id));
	strlcpy(sp->file, file, sizeof(sp->file));
	sp->file_new = created;
	sp->next = ch->spools;
	ch->spools = sp;
	ch->nspools++;
	imsg_out_init(&out, IMSG_MSG_FD, sp->session, dupfd);
	if (proc_queue(&ch->ib, &out) == -1)
		log_warn("spool file to worker channel %u", ch->id);
	return 0;
}

/*
 * Debug mode: print the message; its answer waits for the flush of
 * standard output at the round's end (relay_flush()).
 */
static void
relay_commit_debug(struct channel *ch, struct spool *sp, struct envelope *env,
    const struct debug_spool *ds)
{
	struct debug_msg	 m;
	char			 qid[DEBUG_QID_MAX];

	relay_queue_id(qid, sizeof(qid));
	relay_log_message(qid, sp, env, (env->flags & ENV_F_AUTH) ?
	    channel_authenticated(ch, sp->session) : NULL);
	m.peer_ip = env->peer_ip;
	m.mail_opts = env->mail_opts;
	m.rcpt_opts = env->rcpt_opts;
	m.format = relay.conf.debug_format;
	if (debug_print_spool(ds, &m, stdout) == -1) {
		log_warn("event=delivery queue_id=%s mode=debug result=tempfail",
		    qid);
		channel_reply(ch, IMSG_MSG_TEMPFAIL, sp->session,
		    "cannot print the message");
		spool_drop(ch, sp);
		return;
	}
	/* Emptied now: what the worker writes next is its next message. */
	debug_hold(ch->id, sp->session, env->nrcpt,
	    debug_spool_next(ds, &sp->base) == 0, qid);
}

/* The user the parent saw this session authenticate as, or NULL. */
static const char *
channel_authenticated(const struct channel *ch, uint32_t session)
{
	uint32_t	 i;

	for (i = ch->nauth; i > 0; i--)
		if (ch->auth[i - 1].session == session)
			return ch->auth[i - 1].user;
	return NULL;
}

/* IMSG_AUTH_GRANT from the parent. */
static int
relay_auth_grant(struct proc_chan *pc, struct imsg *imsg)
{
	struct channel		*ch;
	struct channel_auth	*more;
	char			 user[AUTH_FIELD_MAX + 1];
	uint32_t		 session;

	(void)pc;
	if (imsg_get_u32(imsg, &session) == -1 ||
	    imsg_get_str(imsg, user, sizeof(user)) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	for (ch = relay.channels; ch != NULL; ch = ch->next)
		if (ch->id == imsg->hdr.peerid)
			break;
	if (ch == NULL)
		return 0;
	if (ch->nauth == CHANNEL_AUTH_MAX) {
		free(ch->auth[0].user);
		memmove(ch->auth, ch->auth + 1, (ch->nauth - 1) *
		    sizeof(*ch->auth));
		ch->nauth--;
	}
	if ((more = reallocarray(ch->auth, ch->nauth + 1,
	    sizeof(*ch->auth))) == NULL)
		fatal("auth grant");
	ch->auth = more;
	ch->auth[ch->nauth].session = session;
	if ((ch->auth[ch->nauth].user = strdup(user)) == NULL)
		fatal("auth grant");
	ch->nauth++;
	return 0;
}

/*
 * Every recipient must pass the relay guard here too: a worker lies.
 * A worker from before the last reload drains sessions that began
 * under the policy of then: either policy will do for it.  The
 * addresses were parsed by envelope_decode().
 */
static int
relay_recheck(const struct channel *ch, const struct envelope *env,
    const char *user)
{
	const struct env_rcpt	*r;
	uint32_t		 i;
	int			 old = ch->id <= relay.old_channels;

	if (relay.conf.mode != MODE_RELAY)
		return 0;
	if (!policy_sender_ok(&relay.policy, user, env->mail_from) &&
	    (!old || !policy_sender_ok(&relay.old_policy, user,
	    env->mail_from)))
		return -1;
	for (i = 0; i < env->nrcpt; i++) {
		r = &env->rcpts[i];
		/* The reserved postmaster is always accepted (SPEC 7.1). */
		if (r->postmaster ||
		    addr_is_postmaster(r->path, relay.conf.hostname))
			continue;
		if (policy_check(&relay.policy, &r->addr, env->peer_ip, user,
		    env->mail_from) == POLICY_ACCEPT)
			continue;
		if (!old || policy_check(&relay.old_policy, &r->addr,
		    env->peer_ip, user, env->mail_from) != POLICY_ACCEPT)
			return -1;
	}
	return 0;
}

static struct channel *
channel_find(uint32_t id)
{
	struct channel	*ch;

	for (ch = relay.channels; ch != NULL; ch = ch->next)
		if (ch->id == id)
			return ch;
	return NULL;
}

/* The answer to a commit (commit.c), if its channel is still there. */
static void
relay_commit_reply(uint32_t channel, uint32_t session, uint32_t type,
    const char *text)
{
	struct channel	*ch;

	if ((ch = channel_find(channel)) != NULL)
		channel_reply(ch, type, session, text);
}

/*
 * A held debug answer, once its message is flushed (or not): the spool
 * file stays the session's with MSG_KEPT (until MSG_ABORT), and goes
 * with any other answer.
 */
static void
relay_debug_reply(uint32_t channel, uint32_t session, uint32_t type,
    const char *text)
{
	struct channel	*ch;
	struct spool	*sp;

	if ((ch = channel_find(channel)) == NULL)
		return;
	if ((sp = spool_find(ch, session)) == NULL && type == IMSG_MSG_KEPT)
		type = IMSG_MSG_OK;
	channel_reply(ch, type, session, text);
	if (sp != NULL && type != IMSG_MSG_KEPT)
		spool_drop(ch, sp);
}

/* Relay mode: queue the message; the answer waits for the sync. */
static int
relay_commit_queue(struct channel *ch, struct spool *sp,
    struct envelope *env)
{
	struct pending	*p;
	struct qmsg	*m;

	const char	*user = NULL;

	if ((env->flags & ENV_F_AUTH) &&
	    (user = channel_authenticated(ch, sp->session)) == NULL) {
		/* The grant may be lost with a relay restart: no blame. */
		log_warnx("event=auth-unconfirmed channel=%u session=" LOG_SID,
		    ch->id, sp->session_id);
		channel_reply(ch, IMSG_MSG_TEMPFAIL, sp->session,
		    "authentication not confirmed, try again");
		spool_drop(ch, sp);
		return 0;
	}
	if (relay_recheck(ch, env, user) == -1)
		return -1;
	if ((m = relay_qmsg(sp, env, user, ch->id)) == NULL ||
	    (p = calloc(1, sizeof(*p))) == NULL) {
		qmsg_free(m);
		channel_reply(ch, IMSG_MSG_TEMPFAIL, sp->session,
		    "out of memory");
		spool_drop(ch, sp);
		return 0;
	}
	/* A deliver program reads its file to the end: not there. */
	m->inline_want = relay.conf.mode == MODE_RELAY;
	relay_log_message(m->id, sp, env, user);
	p->channel = ch->id;
	p->session = sp->session;
	p->msg = m;
	/* The pending commit owns the file now. */
	p->fd = sp->fd;
	sp->fd = -1;
	sp->id[0] = '\0';
	spool_drop(ch, sp);
	commit_add(p);
	return 0;
}

/* MSG_COMMIT: check the envelope against the file, then deliver or queue. */
static int
relay_commit(struct proc_chan *pc, struct imsg *imsg)
{
	struct channel	*ch = pc->arg;
	struct envelope		 env;
	struct debug_spool	 ds;
	struct spool		*sp;
	int			 rc = 0;

	if ((sp = spool_find(ch, imsg->hdr.peerid)) == NULL)
		return -1;
	if (envelope_decode(imsg, &env, channel_conf(ch)->smtputf8) == -1)
		return -1;
	if (env.size > channel_conf(ch)->max_size) {
		envelope_free(&env);
		return -1;
	}
	if (relay.conf.mode == MODE_DEBUG) {
		if (debug_spool_check(sp->fd, sp->base, env.size, &ds) == -1) {
			envelope_free(&env);
			return -1;
		}
		relay_commit_debug(ch, sp, &env, &ds);
	} else if (queue_spool_fit(sp->fd, env.size,
	    relay.conf.mode != MODE_RELAY) == -1) {
		/* The worker wrote other than it says: a violation. */
		rc = errno == EINVAL ? -1 : 0;
		if (rc == 0) {
			log_warn("event=queue-error op=truncate");
			channel_reply(ch, IMSG_MSG_TEMPFAIL, sp->session,
			    "queue write error");
			spool_drop(ch, sp);
		}
	} else
		rc = relay_commit_queue(ch, sp, &env);
	envelope_free(&env);
	return rc;
}

/* MSG_ABORT: the session dropped its message. */
static int
relay_abort(struct proc_chan *pc, struct imsg *imsg)
{
	struct channel	*ch = pc->arg;
	struct spool	*sp;

	if ((sp = spool_find(ch, imsg->hdr.peerid)) != NULL)
		spool_drop(ch, sp);
	return 0;
}

static const struct proc_handler relay_channel_handlers[] = {
	{ IMSG_MSG_OPEN,	relay_open },
	{ IMSG_MSG_COMMIT,	relay_commit },
	{ IMSG_MSG_ABORT,	relay_abort },
	{ IMSG_NONE,		NULL },
};

/* A worker's channel: a worker that breaks the rules is reported. */
static void
relay_channel_io(int fd, int events, void *arg)
{
	struct channel		*ch = arg;
	struct proc_chan	 pc;

	(void)fd;
	if (events & EV_WRITE)
		channel_write(ch);
	if (!(events & EV_READ))
		return;
	proc_chan_init(&pc, &ch->ib, ROLE_RELAY, ROLE_SESSION,
	    relay_channel_handlers, ch);
	switch (proc_recv(&pc)) {
	case PROC_OK:
		return;
	case PROC_EOF:
	case PROC_ERROR:
		log_debug("event=channel-closed channel=%u", ch->id);
		channel_close(ch);
		return;
	case PROC_BAD:
		channel_violation(ch, pc.why);
		return;
	}
}

/* A new worker channel from the parent. */
static void
relay_channel_add(uint32_t id, int fd)
{
	struct channel	*ch;

	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		fatal("channel");
	ch->id = id;
	proc_nonblock(fd);
	imsgbuf_init(&ch->ib, fd);
	ch->next = relay.channels;
	relay.channels = ch;
	if (ev_add(fd, EV_READ, relay_channel_io, ch) == -1)
		fatal("ev_add channel");
	if (relay.space_low)
		channel_space(ch);
	log_debug("event=channel-open channel=%u", id);
}

/* An upstream's addresses, as the parent resolved them. */
static int
relay_upstream_addrs(struct proc_chan *pc, struct imsg *imsg)
{
	struct sockaddr_storage	 ss[FWD_MAX_ADDRS];
	socklen_t		 lens[FWD_MAX_ADDRS];
	uint32_t		 i, idx, n;

	(void)pc;
	/* A reload's come before its end, for its upstreams. */
	if (imsg_get_u32(imsg, &idx) == -1 || (idx >= relay.routes.nups &&
	    (!relay.policy_loading || idx >= relay_reload_nups())) ||
	    imsg_get_u32(imsg, &n) == -1 || n > FWD_MAX_ADDRS)
		return -1;
	for (i = 0; i < n; i++)
		if (imsg_get_sa(imsg, &ss[i], &lens[i]) == -1)
			return -1;
	if (imsg_get_end(imsg) == -1)
		return -1;
	up_set_addrs(idx, ss, lens, n);
	return 0;
}

/* Queue a message to the parent and write what the socket takes. */
static void
relay_parent_send(struct imsg_out *out)
{
	if (proc_send(&relay.parent, out) == -1)
		fatal("message to the parent");
}

/* A log line for the parent to give to syslog (in the background). */
static void
relay_log_sink(int pri, const char *line)
{
	struct imsg_out	 out;

	imsg_out_init(&out, IMSG_LOG, 0, -1);
	imsg_add_u32(&out, (uint32_t)pri);
	imsg_add_str(&out, line);
	(void)proc_send(&relay.parent, &out);
}

/* Ask the parent to resolve an upstream again (after a failure). */
static void
relay_resolve(uint32_t idx)
{
	struct imsg_out	 out;

	imsg_out_init(&out, IMSG_RESOLVE, 0, -1);
	imsg_add_u32(&out, idx);
	relay_parent_send(&out);
}

/*
 * The parent's messages: at start-up the configuration, the policy and
 * the upstream, then orders.  imsg_rules[] has checked the phase,
 * descriptor and size of each; a bad one is fatal.
 */
static int
relay_on_conf(struct proc_chan *pc, struct imsg *imsg)
{
	if (pc->phase == PHASE_STARTUP)
		return conf_recv(imsg, &relay.conf);
	if (!relay.policy_loading)
		return -1;
	return relay_reload_conf(imsg, &relay.conf);
}

static int
relay_on_channel(struct proc_chan *pc, struct imsg *imsg)
{
	(void)pc;
	relay_channel_add(imsg->hdr.peerid, imsg->fd);
	imsg->fd = -1;
	return 0;
}

/* The policy at start-up, or the next one after a POLICY_BEGIN. */
static int
relay_on_policy(struct proc_chan *pc, struct imsg *imsg)
{
	if (pc->phase == PHASE_STARTUP)
		return policy_recv(&relay.policy, imsg);
	if (!relay.policy_loading)
		return -1;
	return policy_recv(&relay.next_policy, imsg);
}

static int
relay_on_policy_begin(struct proc_chan *pc, struct imsg *imsg)
{
	(void)pc;
	(void)imsg;
	if (relay.policy_loading)
		return -1;
	policy_init(&relay.next_policy);
	relay_reload_begin();
	relay.policy_loading = 1;
	return 0;
}

static int
relay_on_policy_end(struct proc_chan *pc, struct imsg *imsg)
{
	struct channel	*c;

	(void)pc;
	(void)imsg;
	if (!relay.policy_loading)
		return -1;
	policy_finish(&relay.next_policy);
	policy_free(&relay.old_policy);
	relay.old_policy = relay.policy;
	relay.policy = relay.next_policy;
	relay.policy_loading = 0;
	relay_reload_end(&relay.conf, &relay.old_conf, &relay.routes);
	/* The workers of before have the channels up to now. */
	relay.old_channels = 0;
	for (c = relay.channels; c != NULL; c = c->next)
		if (c->id > relay.old_channels)
			relay.old_channels = c->id;
	log_info("event=policy-reloaded");
	return 0;
}

/* A named upstream or a route: at start-up, or a reload's. */
static int
relay_on_route(struct proc_chan *pc, struct imsg *imsg)
{
	if (pc->phase == PHASE_STARTUP)
		return routes_recv(&relay.routes, imsg);
	if (!relay.policy_loading)
		return -1;
	return relay_reload_route(imsg);
}

/* Credentials at start-up, or a reload's (relay/reload.c). */
static int
relay_on_upstream_auth(struct proc_chan *pc, struct imsg *imsg)
{
	if (pc->phase == PHASE_STARTUP)
		return relay_auth_recv(imsg, relay.routes.nups);
	return relay.policy_loading ? relay_auth_recv(imsg, 0) : -1;
}

static int
relay_on_deliver_done(struct proc_chan *pc, struct imsg *imsg)
{
	(void)pc;
	if (relay.conf.mode != MODE_DELIVER)
		return -1;
	return deliver_done(imsg);
}

static int
relay_on_stop(struct proc_chan *pc, struct imsg *imsg)
{
	(void)pc;
	(void)imsg;
	/* Workers are gone; every commit was answered. */
	relay_drain(relay.conf.stop_timeout);
	return 0;
}

static const struct proc_handler relay_parent_handlers[] = {
	{ IMSG_CONF,		relay_on_conf },
	{ IMSG_RELAY_CHANNEL,	relay_on_channel },
	{ IMSG_CONF_DOMAIN,	relay_on_policy },
	{ IMSG_CONF_RCPT,	relay_on_policy },
	{ IMSG_CONF_NET,	relay_on_policy },
	{ IMSG_CONF_RULE,	relay_on_policy },
	{ IMSG_CONF_RULE_ITEM,	relay_on_policy },
	{ IMSG_CONF_LOGIN,	relay_on_policy },
	{ IMSG_CONF_UPSTREAM,	relay_on_route },
	{ IMSG_CONF_ROUTE,	relay_on_route },
	{ IMSG_UPSTREAM_ADDRS,	relay_upstream_addrs },
	{ IMSG_CONF_UPSTREAM_AUTH, relay_on_upstream_auth },
	{ IMSG_CONF_END,	proc_conf_end },
	{ IMSG_AUTH_GRANT,	relay_auth_grant },
	{ IMSG_DELIVER_DONE,	relay_on_deliver_done },
	{ IMSG_POLICY_BEGIN,	relay_on_policy_begin },
	{ IMSG_POLICY_END,	relay_on_policy_end },
	{ IMSG_PING,		proc_pong },
	{ IMSG_STOP,		relay_on_stop },
	{ IMSG_CONF_CONTROL,	control_on_socket },
	{ IMSG_CONF_METRICS,	metrics_http_on_socket },
	{ IMSG_CTL_PEER_INFO,	control_on_peer_info },
	{ IMSG_CTL_RESULT,	control_on_result },
	{ IMSG_LOG_LEVEL,	proc_log_level },
	{ IMSG_NONE,		NULL },
};

/*
 * The client TLS context for the upstream, with its CA certificates
 * loaded now: the chroot has no certificate store.
 */
static void
relay_tls_init(void)
{
	const struct upstream_conf	*u;
	SSL_CTX				*ctx;
	char				 err[256];
	uint32_t			 i;

	for (i = 0; i < relay.routes.nups; i++) {
		u = &relay.routes.ups[i];
		if (u->tls == UPSTREAM_PLAIN)
			continue;
		tls_init();
		ctx = tls_client_ctx(u->ca[0] != '\0' ? u->ca : NULL,
		    u->verify, err, sizeof(err));
		if (ctx == NULL && u->tls == UPSTREAM_OPPORTUNISTIC &&
		    u->ca[0] == '\0') {
			log_warnx("event=upstream-tls-off upstream_name=%s "
			    "reason=\"%s\"", u->name, err);
			continue;
		}
		if (ctx == NULL)
			fatalx("upstream %s TLS: %s", u->name, err);
		up_set_tls(i, ctx);
	}
}

/* Load what a previous run left in the queue. */
static void
relay_queue_resume(void)
{
	struct qmsg	*m, *next;
	unsigned int	 count;

	struct qmsg	*lost;

	m = queue_load(&count, &lost);
	log_info("event=queue-loaded messages=%u", count);
	for (; m != NULL; m = next) {
		next = m->next;
		sched_add(m);
	}
	for (m = lost; m != NULL; m = next) {
		next = m->next;
		sched_lost_loaded(m);
	}
}

/* Tell a worker whether new mail can be taken (IMSG_QUEUE_SPACE). */
static void
channel_space(struct channel *ch)
{
	struct imsg_out	 out;

	imsg_out_init(&out, IMSG_QUEUE_SPACE, 0, -1);
	imsg_add_u32(&out, relay.space_low);
	if (proc_queue(&ch->ib, &out) == -1)
		log_warn("queue space to worker channel %u", ch->id);
}

/*
 * Below queue-min-free the workers refuse new mail at MAIL (452 4.3.1),
 * so that what is left serves the queue's own updates and bounces.  The
 * relay measures, the workers only hear the result: nothing a client
 * sends decides it.
 */
static void
relay_space_check(void)
{
	struct channel	*ch;
	uint64_t	 avail = 0, limit = 0;
	int		 low;

	if (relay.conf.mode == MODE_DEBUG)
		return;
	low = queue_space_low(relay.conf.queue_min_free,
	    relay.conf.queue_min_free_pct, &avail, &limit);
	if (low == relay.space_low)
		return;
	relay.space_low = low;
	if (low)
		log_warnx("event=queue-space-low free=%llu min_free=%llu "
		    "action=refuse-new-mail", (unsigned long long)avail,
		    (unsigned long long)limit);
	else
		log_info("event=queue-space-ok free=%llu min_free=%llu",
		    (unsigned long long)avail, (unsigned long long)limit);
	for (ch = relay.channels; ch != NULL; ch = ch->next)
		channel_space(ch);
}

static void
relay_space_timer(void *arg)
{
	(void)arg;
	relay_space_check();
	ev_timer_add(&relay.space_timer, RELAY_SPACE_MS);
}

/* The relay's main(): never returns. */
int
relay_main(void)
{
	unsigned int	 maxfiles;
	const char	*root;

	setproctitle("relay");
	imsgbuf_init(&relay.parent, PROC_PARENT_FD);
	proc_chan_init(&relay.parent_chan, &relay.parent, ROLE_RELAY,
	    ROLE_PARENT, relay_parent_handlers, NULL);
	ev_init();
	commit_init(relay_commit_reply, relay_space_check, relay_flush);
	proc_startup(&relay.parent_chan);
	if (relay.conf.mode == 0)
		fatalx("no configuration from the parent");
	log_init_child(relay.conf.foreground, relay.conf.verbose, "relay",
	    relay_log_sink);
	policy_finish(&relay.policy);
	proc_nonblock(relay.parent.fd);
	if (getentropy(&relay.qid_base, sizeof(relay.qid_base)) == -1)
		fatal("getentropy");
	/*
	 * Standard output is the debug mode's output: block-buffered, a
	 * round's messages in one write (glibc takes the size only with
	 * a buffer given).
	 */
	setvbuf(stdout, relay_outbuf, _IOFBF, sizeof(relay_outbuf));

	root = relay.conf.chroot;
	if (relay.conf.mode != MODE_DEBUG) {
		if (queue_open(relay.conf.queue) == -1)
			fatalx("cannot use the queue %s", relay.conf.queue);
		/* The queue is all the relay may see. */
		root = relay.conf.queue;
		if (relay.conf.mode == MODE_RELAY) {
			forward_init(&relay.conf, &relay.routes,
			    relay_resolve);
			relay_tls_init();
		}
		else
			deliver_init(&relay.conf, relay_parent_send);
	}
	maxfiles = RELAY_MAXFILES;	/* not this configuration's: relay.h */
	/* The queue's syncs, in a thread: started inside the sandbox. */
	if (relay.conf.mode != MODE_DEBUG)
		sandbox_set_thread_hook(syncer_start);
	sandbox_enter(ROLE_RELAY, &relay.conf, root, maxfiles);
	if (relay.conf.mode != MODE_DEBUG)
		syncer_init();
	control_init(&relay.conf, relay_parent_send);
	metrics_http_init(relay_parent_send);

	if (ev_add(relay.parent.fd, EV_READ, proc_parent_io,
	    &relay.parent_chan) == -1)
		fatal("ev_add parent");
	/* Messages that came with the start-up ones are already read. */
	proc_parent_io(relay.parent.fd, EV_READ, &relay.parent_chan);
	if (relay.conf.mode != MODE_DEBUG) {
		relay_queue_resume();
		ev_timer_set(&relay.space_timer, relay_space_timer, NULL);
		relay_space_timer(NULL);
	}
	ev_set_flush(relay_flush);
	log_batch(1);
	ev_loop();
	return 0;
}
