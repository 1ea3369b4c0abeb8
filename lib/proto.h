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

#define SMTPD_VERSION		"0.1.0"
#define SMTPD_USER		"_smtpd"		/* session workers */
#define SMTPD_QUEUE_USER	"_smtpq"		/* the relay and its queue */
#define SMTPD_DELIVER_USER	"_smtpdeliver"	/* the deliver program */
#define SMTPD_CHROOT		"/var/empty"
#define SMTPD_QUEUE		"/var/spool/smtpd"
#define SMTPD_CONFFILE		"/etc/smtpd/smtpd.conf"
#define SMTPD_PIDFILE		"/run/smtpd.pid"

/* Tunables, each with its default in one place (SPEC sections 3, 4, 8). */
#define DEFAULT_MAX_SIZE	33554432
#define DEFAULT_MAX_RCPT	100
#define DEFAULT_MAX_SESSIONS	4096
#define DEFAULT_MAX_PER_IP	50
#define DEFAULT_TIMEOUT		300
#define DEFAULT_MAX_BAD		20
#define DEFAULT_SPOOL_PENDING	(1024ULL * 1024 * 1024)	/* bytes, daemon */
#define DEFAULT_SESSION_LIFE	3600	/* seconds */
#define DEFAULT_DATA_RATE	1024	/* bytes/s a DATA must average... */
#define DEFAULT_DATA_GRACE	60	/* ...after this many seconds */
#define STOP_DEADLINE_MS	10000
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

/*
 * Run-time settings sent by the parent to every child (IMSG_CONF).
 * Strings are bounded; the receiver checks every one.
 */
struct smtpd_conf {
	uint32_t	mode;
	uint32_t	verbose;
	uint32_t	foreground;
	uint32_t	smtputf8;
	uint32_t	drop_privs;		/* 0 under -n or without root */
	uint32_t	uid;			/* user: session workers */
	uint32_t	gid;
	uint32_t	queue_uid;		/* queue-user: the relay */
	uint32_t	queue_gid;
	uint32_t	workers;
	uint32_t	max_rcpt;
	uint32_t	max_sessions;
	uint32_t	max_per_ip;
	uint32_t	max_bad;
	uint32_t	timeout;		/* seconds */
	uint64_t	max_size;
	uint64_t	max_spool_pending;	/* bytes; 0: no limit */
	uint32_t	session_lifetime;	/* seconds; 0: no limit */
	uint32_t	data_rate_min;		/* bytes/s; 0: no floor */
	uint32_t	data_rate_grace;	/* seconds */
	uint32_t	queue_lifetime;		/* seconds */
	uint32_t	queue_retry;		/* seconds, first retry */
	uint32_t	x_peer;			/* add X-Peer: when relaying */
	uint32_t	debug_format;		/* DEBUG_FORMAT_TEXT ... */
	uint32_t	upstream_port;
	uint32_t	upstream_tls;		/* UPSTREAM_PLAIN ... */
	uint32_t	upstream_verify;
	uint32_t	deliver_timeout;	/* seconds */
	uint32_t	deliver_max;		/* programs at once */
	uint32_t	auth_enabled;		/* a users file is configured */
	uint64_t	queue_min_free;		/* bytes; 0: the default */
	uint32_t	queue_min_free_pct;	/* per cent; 0: the default */
	char		hostname[256];
	char		chroot[PATH_MAX];
	char		queue[PATH_MAX];
	char		user[64];
	char		queue_user[64];
	char		deliver_user[64];	/* used by the parent alone */
	char		upstream_host[256];
	char		upstream_ca[PATH_MAX];	/* "" for the system store */
};

#define UPSTREAM_PLAIN		0
#define UPSTREAM_STARTTLS	1
#define UPSTREAM_TLS		2
#define UPSTREAM_OPPORTUNISTIC	3	/* default: STARTTLS when offered */

#define DEFAULT_QUEUE_LIFETIME	(4 * 86400)
#define DEFAULT_QUEUE_RETRY	30
#define QUEUE_RETRY_MAX		3600
#define DEFAULT_DELIVER_TIMEOUT	300
#define DEFAULT_DELIVER_MAX	4

/*
 * imsg types.  Each has one sender and one receiver:
 *
 * parent -> child:   CONF, CONF_LISTENER (session), CONF_DOMAIN, CONF_RCPT,
 *                    CONF_NET, CONF_END, RELAY_CHANNEL, STOP
 * parent -> session: RETIRE (on SIGHUP)
 * parent -> relay:   POLICY_BEGIN, CONF_DOMAIN, CONF_RCPT, CONF_NET,
 *                    CONF_RULE, CONF_RULE_ITEM, CONF_LOGIN,
 *                    POLICY_END (on SIGHUP)
 * parent -> child:   CONF_RULE, CONF_RULE_ITEM, CONF_LOGIN (with the
 *                    policy)
 * parent -> relay:   CONF_UPSTREAM, CONF_ROUTE (at start-up)
 * session -> parent: LOAD
 * parent -> relay:   UPSTREAM_ADDRS, DELIVER_DONE, CONF_UPSTREAM_AUTH,
 *                    AUTH_GRANT
 * parent -> session: CONF_TLS_CERT, CONF_TLS_KEY, AUTH_RESULT
 * session -> parent: AUTH_REQUEST, LOG, SLOT_ASK, SLOT_FREE
 * parent -> session: SLOT_ANSWER
 * relay -> parent:   LOG
 * relay -> parent:   WORKER_BAD, RESOLVE, DELIVER_RUN
 * session -> relay:  MSG_OPEN, MSG_COMMIT, MSG_ABORT
 * relay -> session:  MSG_FD, MSG_OK, MSG_TEMPFAIL, QUEUE_SPACE, MSG_FULL
 * parent -> child:   PING (u32 sequence number, exactly 4 bytes, no fd)
 * child -> parent:   PONG (the u32 of the ping outstanding, exactly 4
 *                    bytes, no fd; any other is a lie and kills the child)
 */
enum imsg_type {
	IMSG_NONE,
	IMSG_CONF,		/* struct smtpd_conf fields */
	IMSG_CONF_LISTENER,	/* u32 flags, fd: a listening socket */
	IMSG_CONF_END,		/* nothing */
	IMSG_RELAY_CHANNEL,	/* fd: a session<->relay socket; peerid its id */
	IMSG_STOP,		/* nothing: drain and exit */
	IMSG_LOAD,		/* u32 open sessions */
	IMSG_MSG_OPEN,		/* peerid session id */
	IMSG_MSG_FD,		/* peerid session id, fd: spool file */
	IMSG_MSG_COMMIT,	/* peerid session id, envelope */
	IMSG_MSG_ABORT,		/* peerid session id */
	IMSG_MSG_OK,		/* peerid session id, str queue id */
	IMSG_MSG_TEMPFAIL,	/* peerid session id, str reason */
	IMSG_WORKER_BAD,	/* peerid channel id of a worker that lied */
	IMSG_CONF_DOMAIN,	/* str: a relay-domains entry */
	IMSG_CONF_RCPT,		/* str: a relay-recipients entry */
	IMSG_CONF_NET,		/* struct netaddr: a trusted network */
	IMSG_POLICY_BEGIN,	/* nothing: a new policy follows (SIGHUP) */
	IMSG_POLICY_END,	/* nothing: the new policy is complete */
	IMSG_UPSTREAM_ADDRS,	/* u32 upstream, u32 n, n sockaddrs: its */
	IMSG_RESOLVE,		/* u32 upstream: resolve its name again */
	IMSG_DELIVER_RUN,	/* peerid run id, fd spool, envelope */
	IMSG_DELIVER_DONE,	/* peerid run id, u32 result, str text */
	IMSG_CONF_UPSTREAM_AUTH, /* u32 upstream, str user, str password */
	IMSG_CONF_TLS_CERT,	/* a chunk of the certificate chain (PEM) */
	IMSG_CONF_TLS_KEY,	/* a chunk of the private key (PEM) */
	IMSG_AUTH_REQUEST,	/* peerid session id, str user, str password,
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
	IMSG_MAX,
};

/* The parent's verdict on an AUTH (IMSG_AUTH_RESULT). */
#define AUTH_RESULT_FAILED	0	/* 535 */
#define AUTH_RESULT_OK		1	/* 235 */
#define AUTH_RESULT_TEMPFAIL	2	/* 454: locked out or too busy */

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

/* Bounds the relay enforces on a committed envelope. */
#define ENV_HELO_MAX		255
#define ENV_RCPT_MAX		1000
#define ENV_OPTS_MAX		SMTP_CMD_MAX	/* MAIL or RCPT parameters */
/*
 * max-recipients: at most this many, so that a commit carrying that
 * many of the longest addresses still fits one imsg.
 */
#define CONF_RCPT_MAX		200

#endif
