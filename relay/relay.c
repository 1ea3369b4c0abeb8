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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/unistd.h>

#include "conf.h"
#include "debug.h"
#include "event.h"
#include "log.h"
#include "policy.h"
#include "proc.h"
#include "relay.h"
#include "sandbox.h"

static struct relay {
	struct smtpd_conf	 conf;
	struct policy		 policy;
	struct policy		 next_policy;	/* being received (SIGHUP) */
	int			 policy_loading;
	struct imsgbuf		 parent;
	struct channel		*channels;
	uint64_t		 qid_base;
	uint64_t		 qid_next;
} relay;

static void	relay_channel_io(int, int, void *);

/* A queue id: unique for this relay's life, not guessable from outside. */
static void
relay_queue_id(char *buf, size_t len)
{
	snprintf(buf, len, "%016llX",
	    (unsigned long long)(relay.qid_base + relay.qid_next++));
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

static void
spool_drop(struct channel *ch, struct spool *sp)
{
	struct spool	**spp;

	for (spp = &ch->spools; *spp != NULL; spp = &(*spp)->next)
		if (*spp == sp) {
			*spp = sp->next;
			break;
		}
	close(sp->fd);
	free(sp);
	ch->nspools--;
}

static void
channel_write(struct channel *ch)
{
	if (imsgbuf_write(&ch->ib) == -1)
		log_warn("write to worker channel %u", ch->id);
	ev_mod(ch->ib.fd, imsgbuf_pending(&ch->ib) ? EV_READ | EV_WRITE :
	    EV_READ);
}

static void
channel_reply(struct channel *ch, uint32_t type, uint32_t session,
    const char *text)
{
	struct imsg_out	 out;

	imsg_out_init(&out, type, session, -1);
	imsg_add_str(&out, text);
	if (imsgbuf_queue(&ch->ib, &out) == -1)
		fatal("reply to worker");
	channel_write(ch);
}

static void
channel_close(struct channel *ch)
{
	struct channel	**chp;

	while (ch->spools != NULL)
		spool_drop(ch, ch->spools);
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
	if (imsgbuf_queue(&relay.parent, &out) == -1)
		fatal("parent channel");
	if (imsgbuf_write(&relay.parent) == -1)
		fatal("write to parent");
	if (imsgbuf_pending(&relay.parent))
		ev_mod(relay.parent.fd, EV_READ | EV_WRITE);
	channel_close(ch);
}

/* MSG_OPEN: a fresh spool file for a session. */
static int
relay_open(struct channel *ch, struct imsg *imsg)
{
	struct spool	*sp;
	struct imsg_out	 out;
	int		 fd, dupfd;

	if (imsg->datalen != 0 || imsg->fd != -1)
		return -1;
	if (spool_find(ch, imsg->hdr.peerid) != NULL)
		return -1;
	if (ch->nspools >= relay.conf.max_sessions)
		return -1;
	fd = memfd_create("smtpd-spool", MFD_CLOEXEC);
	if (fd == -1 || (dupfd = dup(fd)) == -1) {
		log_warn("event=spool-create");
		if (fd != -1)
			close(fd);
		channel_reply(ch, IMSG_MSG_TEMPFAIL, imsg->hdr.peerid,
		    "cannot create spool file");
		return 0;
	}
	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		fatal("spool");
	sp->session = imsg->hdr.peerid;
	sp->fd = fd;
	sp->next = ch->spools;
	ch->spools = sp;
	ch->nspools++;
	imsg_out_init(&out, IMSG_MSG_FD, sp->session, dupfd);
	if (imsgbuf_queue(&ch->ib, &out) == -1)
		fatal("spool fd to worker");
	channel_write(ch);
	return 0;
}

/* Log the envelope of a committed message, one line. */
static void
relay_log_message(const char *qid, const struct envelope *env)
{
	char		 rcpts[1024];
	size_t		 off = 0;
	uint32_t	 i;
	int		 n;

	rcpts[0] = '\0';
	for (i = 0; i < env->nrcpt && off < sizeof(rcpts); i++) {
		n = snprintf(rcpts + off, sizeof(rcpts) - off, "%s<%s>",
		    i ? "," : "", env->rcpts[i]);
		if (n < 0)
			break;
		off += n;
	}
	log_info("event=message queue_id=%s client=%s helo=%s from=<%s> "
	    "rcpt=%s nrcpt=%u size=%llu", qid, env->peer_ip, env->helo,
	    env->mail_from, rcpts, env->nrcpt,
	    (unsigned long long)env->size);
}

/* MSG_COMMIT: check the envelope against the file, deliver, answer. */
static int
relay_commit(struct channel *ch, struct imsg *imsg)
{
	struct envelope	 env;
	struct spool	*sp;
	struct stat	 st;
	char		 qid[32];

	if (imsg->fd != -1 ||
	    (sp = spool_find(ch, imsg->hdr.peerid)) == NULL)
		return -1;
	if (envelope_decode(imsg, &env, relay.conf.smtputf8) == -1)
		return -1;
	if (fstat(sp->fd, &st) == -1 || (uint64_t)st.st_size != env.size ||
	    env.size > relay.conf.max_size) {
		envelope_free(&env);
		return -1;
	}
	relay_queue_id(qid, sizeof(qid));
	relay_log_message(qid, &env);
	if (log_verbose())
		log_debug("event=envelope queue_id=%s from=<%s> nrcpt=%u",
		    qid, env.mail_from, env.nrcpt);
	if (debug_print(sp->fd, env.peer_ip, stdout) == -1) {
		log_warn("event=delivery queue_id=%s mode=debug result=tempfail",
		    qid);
		channel_reply(ch, IMSG_MSG_TEMPFAIL, sp->session,
		    "cannot print the message");
	} else {
		log_info("event=delivery queue_id=%s mode=debug result=printed",
		    qid);
		channel_reply(ch, IMSG_MSG_OK, sp->session, qid);
	}
	spool_drop(ch, sp);
	envelope_free(&env);
	return 0;
}

/* MSG_ABORT: the session dropped its message. */
static int
relay_abort(struct channel *ch, struct imsg *imsg)
{
	struct spool	*sp;

	if (imsg->datalen != 0 || imsg->fd != -1)
		return -1;
	if ((sp = spool_find(ch, imsg->hdr.peerid)) != NULL)
		spool_drop(ch, sp);
	return 0;
}

static void
relay_channel_io(int fd, int events, void *arg)
{
	struct channel	*ch = arg;
	struct imsg	 imsg;
	ssize_t		 n;
	int		 rc;

	(void)fd;
	if (events & EV_WRITE)
		channel_write(ch);
	if (!(events & EV_READ))
		return;
	n = imsgbuf_read(&ch->ib);
	if (n == 0 || (n == -1 && errno != EAGAIN)) {
		log_debug("event=channel-closed channel=%u", ch->id);
		channel_close(ch);
		return;
	}
	for (;;) {
		if ((n = imsgbuf_get(&ch->ib, &imsg)) == -1) {
			channel_violation(ch, "malformed message");
			return;
		}
		if (n == 0)
			break;
		switch (imsg.hdr.type) {
		case IMSG_MSG_OPEN:
			rc = relay_open(ch, &imsg);
			break;
		case IMSG_MSG_COMMIT:
			rc = relay_commit(ch, &imsg);
			break;
		case IMSG_MSG_ABORT:
			rc = relay_abort(ch, &imsg);
			break;
		default:
			rc = -1;
			break;
		}
		imsg_free(&imsg);
		if (rc == -1) {
			channel_violation(ch, "bad or unexpected message");
			return;
		}
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
	log_debug("event=channel-open channel=%u", id);
}

static void
relay_parent_io(int fd, int events, void *arg)
{
	struct imsg	 imsg;
	ssize_t		 n;

	(void)fd;
	(void)arg;
	if (events & EV_WRITE) {
		if (imsgbuf_write(&relay.parent) == -1)
			fatal("write to parent");
		if (!imsgbuf_pending(&relay.parent))
			ev_mod(relay.parent.fd, EV_READ);
	}
	if (!(events & EV_READ))
		return;
	n = imsgbuf_read(&relay.parent);
	if (n == 0)
		fatalx("parent went away");
	if (n == -1 && errno != EAGAIN)
		fatal("read from parent");
	while ((n = imsgbuf_get(&relay.parent, &imsg)) > 0) {
		switch (imsg.hdr.type) {
		case IMSG_RELAY_CHANNEL:
			if (imsg.fd == -1 || imsg.datalen != 0)
				fatalx("bad RELAY_CHANNEL");
			relay_channel_add(imsg.hdr.peerid, imsg.fd);
			imsg.fd = -1;
			break;
		case IMSG_POLICY_BEGIN:
			if (imsg.datalen != 0 || relay.policy_loading)
				fatalx("bad POLICY_BEGIN");
			policy_init(&relay.next_policy);
			relay.policy_loading = 1;
			break;
		case IMSG_CONF_DOMAIN:
		case IMSG_CONF_RCPT:
		case IMSG_CONF_NET:
			if (!relay.policy_loading ||
			    policy_recv(&relay.next_policy, &imsg) == -1)
				fatalx("bad relay policy from the parent");
			break;
		case IMSG_POLICY_END:
			if (imsg.datalen != 0 || !relay.policy_loading)
				fatalx("bad POLICY_END");
			policy_finish(&relay.next_policy);
			policy_free(&relay.policy);
			relay.policy = relay.next_policy;
			relay.policy_loading = 0;
			log_info("event=policy-reloaded");
			break;
		case IMSG_STOP:
			/* Workers are gone; every commit was answered. */
			log_debug("event=stop");
			fflush(stdout);
			exit(0);
		default:
			fatalx("parent sent message type %u", imsg.hdr.type);
		}
		imsg_free(&imsg);
	}
	if (n == -1)
		fatal("parent channel");
}

static void
relay_startup(struct imsg *imsg, void *arg)
{
	(void)arg;
	switch (imsg->hdr.type) {
	case IMSG_CONF:
		if (conf_recv(imsg, &relay.conf) == -1)
			fatalx("bad configuration from the parent");
		break;
	case IMSG_RELAY_CHANNEL:
		if (imsg->fd == -1 || imsg->datalen != 0)
			fatalx("bad RELAY_CHANNEL");
		relay_channel_add(imsg->hdr.peerid, imsg->fd);
		imsg->fd = -1;
		break;
	case IMSG_CONF_DOMAIN:
	case IMSG_CONF_RCPT:
	case IMSG_CONF_NET:
		if (policy_recv(&relay.policy, imsg) == -1)
			fatalx("bad relay policy from the parent");
		break;
	default:
		fatalx("unexpected start-up message %u", imsg->hdr.type);
	}
}

/* The relay's main(): never returns. */
int
relay_main(void)
{
	unsigned int	 maxfiles;

	setproctitle("relay");
	imsgbuf_init(&relay.parent, PROC_PARENT_FD);
	ev_init();
	proc_read_startup(&relay.parent, relay_startup, NULL);
	if (relay.conf.mode == 0)
		fatalx("no configuration from the parent");
	log_init(relay.conf.foreground, relay.conf.verbose, "relay");
	policy_finish(&relay.policy);
	proc_nonblock(relay.parent.fd);
	if (getentropy(&relay.qid_base, sizeof(relay.qid_base)) == -1)
		fatal("getentropy");
	/* Standard output is the debug mode's output: block-buffered. */
	setvbuf(stdout, NULL, _IOFBF, 65536);

	maxfiles = relay.conf.max_sessions * (relay.conf.workers + 1) + 64;
	if (maxfiles > 65536)
		maxfiles = 65536;
	sandbox_enter(ROLE_RELAY, &relay.conf, relay.conf.chroot, maxfiles);

	if (ev_add(relay.parent.fd, EV_READ, relay_parent_io, NULL) == -1)
		fatal("ev_add parent");
	/* Messages that came with the start-up ones are already read. */
	relay_parent_io(relay.parent.fd, EV_READ, NULL);
	ev_loop();
	return 0;
}
