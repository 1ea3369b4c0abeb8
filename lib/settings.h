/*
 * Every run-time setting, declared once (an X-macro list): struct
 * smtpd_conf, its defaults, its encoding on the wire and the receiver's
 * checks (lib/conf.c), the simple keywords of smtpd.conf (parent/parse.c)
 * and what a reload applies (parent/parent.c) all come from this list.
 * A new simple setting is one line here and its text in smtpd.conf.5.
 *
 * SETTING(name, field, type, how, default, min, max, reload)
 *
 *   name     the keyword (or, for an internal field, its name in logs)
 *   type     U32, U64 (numbers), DURATION (u32 seconds: 30s, 5m, 1h, 4d),
 *            SIZE (u64 bytes, K, M or G), RATE (u32 bytes a second, a
 *            size), BOOL (u32 0 or 1, yes or no), STR (a name, char[max]),
 *            PATH (absolute, char[PATH_MAX])
 *   how      KW: a keyword of its own, read by its type alone;
 *            FN: set by a keyword function of parse.c (or the command
 *            line); IN: internal, set by the parent, never from the file
 *   min/max  the bounds of a number (the receiver refuses any other, but
 *            for the default, which is always valid: workers' 0 is "one
 *            per CPU", resolved by the parent); for SIZE and RATE a min
 *            of 0 lets the keyword say "0"; for STR max is the size of
 *            the field with its NUL, for PATH PATH_MAX
 *   reload   NEW: a reload takes the new value (new workers, the parent,
 *            the relay for mail not yet in flight);
 *            KEEP: kept until a restart, and named in the reload's log
 *            when the new configuration asks for another value (SPEC 12:
 *            the users, the chroot and the queue; the mode and the
 *            control socket, which the running processes are built on)
 *
 * Defaults and bounds may name the constants of proto.h: the list is
 * expanded where they are known.  The order is the order on the wire.  Checks across fields (user and
 * queue-user differ, no uid 0) stay as code in conf_recv().
 */
#ifndef SMTPD_SETTINGS_H
#define SMTPD_SETTINGS_H

#include <limits.h>
#include <stdint.h>

/* Defaults named elsewhere too (SPEC sections 3, 4, 8). */
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
#define DEFAULT_QUEUE_LIFETIME	(4 * 86400)
#define DEFAULT_QUEUE_RETRY	30
#define DEFAULT_DELIVER_TIMEOUT	300
#define DEFAULT_DELIVER_MAX	4
#define DEFAULT_CONNECT_TIMEOUT	30	/* an upstream's connect, greeting */
#define DEFAULT_RSET_TIMEOUT	20	/* the RSET probe of a reused one */
/*
 * max-recipients: at most this many, so that a commit carrying that
 * many of the longest addresses still fits one imsg.
 */
#define CONF_RCPT_MAX		200
#define CONF_WORKERS_MAX	256
#define CONF_NAME_MAX		64	/* user, queue-user, deliver-user */
#define CONF_HOST_MAX		256	/* hostname, upstream host */

#define SMTPD_USER		"_smtpd"		/* session workers */
#define SMTPD_QUEUE_USER	"_smtpq"		/* the relay and its queue */
#define SMTPD_DELIVER_USER	"_smtpdeliver"	/* the deliver program */
#define SMTPD_CHROOT		"/var/empty"
#define SMTPD_QUEUE		"/var/spool/smtpd"

#define SMTPD_SETTINGS(X)						\
	X("mode", mode, U32, FN, MODE_DEBUG, MODE_DEBUG, MODE_DELIVER,	\
	    KEEP)							\
	X("verbose", verbose, BOOL, IN, 0, 0, 1, NEW)			\
	X("foreground", foreground, BOOL, IN, 0, 0, 1, NEW)		\
	X("smtputf8", smtputf8, BOOL, KW, 0, 0, 1, NEW)		\
	X("privsep", drop_privs, BOOL, IN, 0, 0, 1, KEEP) /* 0: -n */	\
	X("uid", uid, U32, IN, 0, 0, UINT32_MAX, KEEP)	/* user */	\
	X("gid", gid, U32, IN, 0, 0, UINT32_MAX, KEEP)			\
	X("queue-uid", queue_uid, U32, IN, 0, 0, UINT32_MAX, KEEP)	\
	X("queue-gid", queue_gid, U32, IN, 0, 0, UINT32_MAX, KEEP)	\
	X("workers", workers, U32, KW, 0, 1, CONF_WORKERS_MAX, NEW)	\
	X("max-recipients", max_rcpt, U32, KW, DEFAULT_MAX_RCPT, 1,	\
	    CONF_RCPT_MAX, NEW)						\
	X("max-sessions", max_sessions, U32, KW, DEFAULT_MAX_SESSIONS,	\
	    1, 100000, NEW)						\
	X("max-sessions-per-ip", max_per_ip, U32, KW,			\
	    DEFAULT_MAX_PER_IP, 0, 100000, NEW)				\
	X("max-bad", max_bad, U32, IN, DEFAULT_MAX_BAD, 0, UINT32_MAX,	\
	    NEW)							\
	X("timeout", timeout, DURATION, KW, DEFAULT_TIMEOUT, 1,		\
	    UINT32_MAX, NEW)						\
	X("max-message-size", max_size, SIZE, KW, DEFAULT_MAX_SIZE, 1,	\
	    UINT64_MAX, NEW)						\
	X("max-spool-pending", max_spool_pending, SIZE, KW,		\
	    DEFAULT_SPOOL_PENDING, 0, UINT64_MAX, NEW)	/* 0: none */	\
	X("stop-timeout", stop_timeout, DURATION, KW,			\
	    STOP_DEADLINE_MS / 1000, 1, 3600, NEW)			\
	X("session-lifetime", session_lifetime, DURATION, KW,		\
	    DEFAULT_SESSION_LIFE, 1, UINT32_MAX, NEW)			\
	X("data-rate-min", data_rate_min, RATE, KW, DEFAULT_DATA_RATE,	\
	    0, UINT32_MAX, NEW)				/* 0: none */	\
	X("data-rate-grace", data_rate_grace, DURATION, KW,		\
	    DEFAULT_DATA_GRACE, 1, UINT32_MAX, NEW)			\
	X("queue-lifetime", queue_lifetime, DURATION, KW,		\
	    DEFAULT_QUEUE_LIFETIME, 1, UINT32_MAX, NEW)		\
	X("queue-retry", queue_retry, DURATION, KW, DEFAULT_QUEUE_RETRY,\
	    1, UINT32_MAX, NEW)			/* first retry */\
	X("x-peer-header", x_peer, BOOL, KW, 1, 0, 1, NEW)		\
	X("debug-format", debug_format, U32, FN, DEBUG_FORMAT_TEXT,	\
	    DEBUG_FORMAT_TEXT, DEBUG_FORMAT_BYTES, NEW)		\
	X("upstream", upstream_port, U32, FN, 25, 1, 65535, NEW)	\
	X("upstream", upstream_tls, U32, FN, UPSTREAM_OPPORTUNISTIC,	\
	    UPSTREAM_PLAIN, UPSTREAM_OPPORTUNISTIC, NEW)		\
	X("upstream", upstream_verify, BOOL, FN, 1, 0, 1, NEW)		\
	X("upstream-connect-timeout", upstream_connect_timeout,		\
	    DURATION, KW, DEFAULT_CONNECT_TIMEOUT, 1, UINT32_MAX, NEW)	\
	X("upstream-rset-timeout", upstream_rset_timeout, DURATION, KW,	\
	    DEFAULT_RSET_TIMEOUT, 1, UINT32_MAX, NEW)			\
	X("deliver-timeout", deliver_timeout, DURATION, KW,		\
	    DEFAULT_DELIVER_TIMEOUT, 1, UINT32_MAX, NEW)		\
	X("deliver-max", deliver_max, U32, KW, DEFAULT_DELIVER_MAX, 1,	\
	    256, NEW)					/* at once */	\
	X("auth", auth_enabled, BOOL, IN, 0, 0, 1, NEW) /* users file */\
	X("queue-min-free", queue_min_free, U64, FN, 0, 0, UINT64_MAX,	\
	    NEW)					/* 0: default */\
	X("queue-min-free", queue_min_free_pct, U32, FN, 0, 0, 100,	\
	    NEW)					/* per cent */	\
	X("hostname", hostname, STR, FN, "localhost", 0, CONF_HOST_MAX,	\
	    NEW)				/* or gethostname() */	\
	X("chroot", chroot, PATH, KW, SMTPD_CHROOT, 0, PATH_MAX, KEEP)	\
	X("queue", queue, PATH, KW, SMTPD_QUEUE, 0, PATH_MAX, KEEP)	\
	X("user", user, STR, KW, SMTPD_USER, 0, CONF_NAME_MAX, KEEP)	\
	X("queue-user", queue_user, STR, KW, SMTPD_QUEUE_USER, 0,	\
	    CONF_NAME_MAX, KEEP)					\
	X("deliver-user", deliver_user, STR, KW, SMTPD_DELIVER_USER, 0,	\
	    CONF_NAME_MAX, KEEP)			/* the parent's */	\
	X("upstream", upstream_host, STR, FN, "localhost", 0,		\
	    CONF_HOST_MAX, NEW)					\
	X("upstream-ca", upstream_ca, PATH, KW, "", 0, PATH_MAX, NEW)	\
	X("control-socket", control_socket, PATH, KW,			\
	    SMTPD_CONTROL_SOCKET, 0, PATH_MAX, KEEP)			\
	X("control-group", control_group, STR, KW, "", 0, CONF_NAME_MAX,\
	    NEW)			/* "": root only */		\
	/* "" for the system store */

/* The C type of each setting type, for struct smtpd_conf. */
#define SETTING_DECL_U32(f, max)	uint32_t f;
#define SETTING_DECL_U64(f, max)	uint64_t f;
#define SETTING_DECL_DURATION(f, max)	uint32_t f;
#define SETTING_DECL_SIZE(f, max)	uint64_t f;
#define SETTING_DECL_RATE(f, max)	uint32_t f;
#define SETTING_DECL_BOOL(f, max)	uint32_t f;
#define SETTING_DECL_STR(f, max)	char f[max];
#define SETTING_DECL_PATH(f, max)	char f[max];
/* How many settings there are, as a constant expression. */
#define SETTING_ONE(name, f, type, how, def, min, max, reload)	+ 1
#define SETTINGS_N	(0 SMTPD_SETTINGS(SETTING_ONE))

#define SETTING_DECL(name, f, type, how, def, min, max, reload) \
	SETTING_DECL_##type(f, max)

#endif
