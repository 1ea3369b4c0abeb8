/*
 * What the processes say to each other: the imsg types, who sends each
 * and who receives it, and the run-time configuration they share.
 */
#ifndef SMTPD_PROTO_H
#define SMTPD_PROTO_H

#include <sys/types.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdint.h>

#include "addr.h"
#include "settings.h"

#define SMTPD_VERSION		"0.1.0"
#define SMTPD_CONFFILE		"/etc/smtpd/smtpd.conf"
#define SMTPD_PIDFILE		"/run/smtpd.pid"
#define SMTPD_CONTROL_SOCKET	"/run/smtpd.sock"

/* The tunables and their defaults are in settings.h. */
#define STOP_DEADLINE_MS	10000	/* stop-timeout's default */
#define RETIRE_DEADLINE_MS	3600000	/* a reload's old worker, at most */
#define SMTP_CMD_MAX		510	/* 512 with CRLF, RFC 5321 4.5.3.1.4 */
#define SMTP_TEXT_MAX		998	/* 1000 with CRLF, RFC 5321 4.5.3.1.6 */

enum smtpd_mode {
	MODE_DEBUG = 1,
	MODE_RELAY,
	MODE_DELIVER,
};

/* debug-format: what DebuggingServer printed with decode_data True/False. */
enum debug_format {
	DEBUG_FORMAT_TEXT = 0,
	DEBUG_FORMAT_BYTES,
};

enum proc_role {
	ROLE_PARENT,
	ROLE_SESSION,
	ROLE_RELAY,
};

/* Listener flags. */
#define LISTEN_TLS		0x01
#define LISTEN_STARTTLS_REQ	0x02
#define LISTEN_AUTH		0x04
#define LISTEN_PROXY		0x08	/* proxy-from: a PROXY header first */
#define LISTEN_METRICS		0x10	/* HTTP GET /metrics, by the relay */
#define LISTEN_METRICS_MAX	8	/* metrics listeners, at most */
#define LISTEN_PROXY_MAX	16	/* proxy-from networks per listener */

/*
 * Run-time settings sent by the parent to every child (IMSG_CONF), one
 * field for each line of SMTPD_SETTINGS.  Strings are bounded; the
 * receiver checks every one.
 */
struct smtpd_conf {
	SMTPD_SETTINGS(SETTING_DECL)
};

#define UPSTREAM_PLAIN		0
#define UPSTREAM_STARTTLS	1
#define UPSTREAM_TLS		2
#define UPSTREAM_OPPORTUNISTIC	3	/* default: STARTTLS when offered */

#define QUEUE_RETRY_MAX		3600

/*
 * imsg types.  Who may send each to whom, with a descriptor or not, how
 * long its payload is and when it may come: the rows of imsg_rules[]
 * (lib/imsg_rules.c), which proc_recv() checks before any handler runs.
 */
enum imsg_type {
	IMSG_NONE,
	IMSG_CONF,		/* struct smtpd_conf fields */
	IMSG_CONF_LISTENER,	/* u32 flags, its proxy-from struct netaddrs
				   (0 to LISTEN_PROXY_MAX), fd: a listening
				   socket */
	IMSG_CONF_END,		/* nothing */
	IMSG_RELAY_CHANNEL,	/* fd: a session<->relay socket; peerid its id */
	IMSG_STOP,		/* nothing: drain and exit */
	IMSG_LOAD,		/* u32 open sessions */
	IMSG_MSG_OPEN,		/* peerid session id, u64 its logged id */
	IMSG_MSG_FD,		/* peerid session id, fd: spool file, at
				   offset 0, written from there on with
				   write(2): the relay checks the offset */
	IMSG_MSG_COMMIT,	/* peerid session id, envelope */
	IMSG_MSG_ABORT,		/* peerid session id */
	IMSG_MSG_OK,		/* peerid session id, str queue id */
	IMSG_MSG_TEMPFAIL,	/* peerid session id, str reason */
	IMSG_WORKER_BAD,	/* peerid channel id of a worker that lied */
	IMSG_CONF_DOMAIN,	/* str: a relay-domains entry */
	IMSG_CONF_RCPT,		/* str: a relay-recipients entry */
	IMSG_CONF_NET,		/* struct netaddr: a trusted network */
	IMSG_POLICY_BEGIN,	/* nothing: a reload's configuration follows */
	IMSG_POLICY_END,	/* nothing: it is complete, apply it */
	IMSG_UPSTREAM_ADDRS,	/* u32 upstream, u32 n, n sockaddrs: its */
	IMSG_RESOLVE,		/* u32 upstream: resolve its name again */
	IMSG_DELIVER_RUN,	/* peerid run id, fd spool, envelope */
	IMSG_DELIVER_DONE,	/* peerid run id, u32 result, str text */
	IMSG_CONF_UPSTREAM_AUTH, /* u32 upstream, str user, str password */
	IMSG_CONF_TLS_CERT,	/* a chunk of the certificate chain (PEM) */
	IMSG_CONF_TLS_KEY,	/* a chunk of the private key (PEM) */
	IMSG_AUTH_REQUEST,	/* peerid session id, u64 its logged id,
				   str user, str password,
				   str client address */
	IMSG_AUTH_RESULT,	/* peerid session id, u32 AUTH_RESULT_* */
	IMSG_AUTH_GRANT,	/* peerid channel id, u32 session id, str user */
	IMSG_LOG,		/* u32 priority, str line: a child's log */
	IMSG_QUEUE_SPACE,	/* u32 1: below queue-min-free, 0: not */
	IMSG_RETIRE,		/* nothing: stop accepting, end with the sessions */
	IMSG_SLOT_ASK,		/* peerid session id, sockaddr of the client;
				 * at most max-sessions outstanding */
	IMSG_SLOT_ANSWER,	/* peerid session id, u32 ok (0 or 1) */
	IMSG_SLOT_FREE,		/* peerid session id: its session ended */
	IMSG_MSG_FULL,		/* peerid session id: no MSG_OPEN now, too
				 * much mail is being received */
	IMSG_PING,		/* u32 seq: are you alive? (every child) */
	IMSG_PONG,		/* u32 seq: the same, back to the parent */
	IMSG_CONF_RULE,		/* u32 line, u32 from, u32 for: an accept rule */
	IMSG_CONF_RULE_ITEM,	/* u32 RULE_ITEM_*, netaddr or str: of the
				 * last rule */
	IMSG_CONF_LOGIN,	/* str user, str address or @domain */
	IMSG_CONF_UPSTREAM,	/* struct upstream_conf fields: a named one */
	IMSG_CONF_ROUTE,	/* a route: see lib/routes.c */
	IMSG_CONF_CONTROL,	/* fd: the listening control socket */
	IMSG_CTL_PEER,		/* peerid conn, u32 uid, u32 gid: who is it? */
	IMSG_CTL_PEER_INFO,	/* peerid conn, u32 admin, str user name */
	IMSG_CTL_REQUEST,	/* peerid conn, u32 CTL_REQ_* */
	IMSG_CTL_RESULT,	/* peerid conn, u32 ok, str text */
	IMSG_LOG_LEVEL,		/* u32 verbose (0 or 1) */
	IMSG_CONF_IDTAG,	/* u32 tag in session ids, u32 pool slot */
	IMSG_CONF_METRICS,	/* fd: a listening metrics socket (HTTP) */
	IMSG_STAT,		/* u32 STAT_*: a worker counted an event */
	IMSG_MSG_KEPT,		/* peerid session id, str queue id: as MSG_OK,
				 * and the spool file, emptied, stays the
				 * session's for its next DATA (debug mode) */
	IMSG_MAX,
};

/* When a message may come, as its receiver sees the channel. */
#define PHASE_STARTUP		0x1	/* a child, before IMSG_CONF_END */
#define PHASE_RUNNING		0x2	/* after it; every other channel */
#define PHASE_ANY		(PHASE_STARTUP | PHASE_RUNNING)

enum imsg_fd_rule {
	IMSG_FD_NEVER,
	IMSG_FD_ALWAYS,
	IMSG_FD_OPTIONAL,
};

/*
 * One row per (type, sender, receiver).  The payload is min..max bytes
 * (min == max: exactly that); by_handler says the handler parses it
 * further with the imsg_get_* helpers, within those bounds.
 */
struct imsg_rule {
	uint32_t		 type;
	const char		*name;
	enum proc_role		 from;
	enum proc_role		 to;
	enum imsg_fd_rule	 fd;
	uint32_t		 phase;		/* PHASE_* bits */
	uint32_t		 min;
	uint32_t		 max;
	int			 by_handler;
};

struct imsg;

extern const struct imsg_rule	imsg_rules[];
extern const size_t		imsg_nrules;

const char	*imsg_name(uint32_t);
const char	*role_name(enum proc_role);
const struct imsg_rule *imsg_rule_find(uint32_t, enum proc_role,
		    enum proc_role);
const char	*imsg_rule_check(const struct imsg *, enum proc_role,
		    enum proc_role, uint32_t);

/* The parent's verdict on an AUTH (IMSG_AUTH_RESULT). */
#define AUTH_RESULT_FAILED	0	/* 535 */
#define AUTH_RESULT_OK		1	/* 235 */
#define AUTH_RESULT_TEMPFAIL	2	/* 454: locked out or too busy */

/* What the relay asks of the parent for a control client. */
#define CTL_REQ_RELOAD		1	/* as SIGHUP; the result says what */
#define CTL_REQ_VERBOSE		2	/* smtpctl log verbose */
#define CTL_REQ_BRIEF		3	/* smtpctl log brief */
#define CTL_REQ_STATS		4	/* the parent's counters, as text */
#define CTL_REQ_MAX		4

/*
 * What a worker counts for the metrics (IMSG_STAT), one event each: a
 * session, a TLS session, or a refusal, by its reason (STAT_REFUSED +
 * REFUSED_*).  The parent adds them up, and names the reasons.
 */
#define STAT_SESSION		0	/* a connection taken */
#define STAT_TLS		1	/* a TLS handshake completed */
#define STAT_REFUSED		2	/* + REFUSED_* */
#define REFUSED_MAX_SESSIONS	0	/* the worker was full: 421 */
#define REFUSED_PER_IP		1	/* max-sessions-per-ip: 421 */
#define REFUSED_PROXY		2	/* a bad PROXY header or source */
#define REFUSED_STARTTLS	3	/* starttls-required: 530 */
#define REFUSED_SENDER_LOGIN	4	/* sender-login: 553 */
#define REFUSED_RELAY_DENIED	5	/* RCPT: 550 relay access denied */
#define REFUSED_ROUTING		6	/* RCPT: %, ! or quoted @: 553 */
#define REFUSED_STORAGE		7	/* queue-min-free: 452 */
#define REFUSED_NREASONS	8
#define STAT_MAX		(STAT_REFUSED + REFUSED_NREASONS)

/* Outcome of a deliver program (IMSG_DELIVER_DONE). */
#define DELIVER_OK		0
#define DELIVER_TEMPFAIL	1	/* exit 75: try again later */
#define DELIVER_PERMFAIL	2	/* anything else: bounce */

/* Envelope flags, from the worker's commit to the queue file. */
#define ENV_F_8BIT		0x1	/* BODY=8BITMIME */
#define ENV_F_SMTPUTF8		0x2	/* SMTPUTF8 */
#define ENV_F_ESMTP		0x4	/* the client said EHLO */
#define ENV_F_AUTH		0x8	/* the session authenticated */
#define ENV_F_MASK		0xf

/*
 * Limits that cross a process boundary, named once: what one side
 * makes, the other bounds its buffer by.
 */
#define REPLY_TEXT_MAX		256	/* a reply's text kept for logs, DSNs */
#define AUTH_FIELD_MAX		255	/* a user name or a password */

/* Bounds the relay enforces on a committed envelope. */
#define ENV_HELO_MAX		255
#define ENV_RCPT_MAX		1000
#define ENV_OPTS_MAX		SMTP_CMD_MAX	/* MAIL or RCPT parameters */
#define ENV_TLS_MAX		15	/* "TLSv1.3": the session's protocol */

/* A worker's tag in its session ids: 0..SESSION_TAG_MAX (smtpd/). */
#define SESSION_TAG_BITS	10
#define SESSION_TAG_MAX		((1u << SESSION_TAG_BITS) - 1)

#endif
