/*
 * The SMTP server engine of one session: a state machine fed with
 * received bytes, producing replies in a buffer and asking its owner,
 * through callbacks, for a spool file and a commit.  It knows nothing of
 * sockets, so it can be driven by a unit test.
 */
#ifndef SMTPD_SMTP_H
#define SMTPD_SMTP_H

#include <sys/socket.h>
#include <netinet/in.h>
#include <stdint.h>

#include "addr.h"
#include "buf.h"
#include "linebuf.h"
#include "policy.h"
#include "proto.h"

#define SMTP_INBUF_SIZE		4096
#define SMTP_OUTBUF_MAX		65536
#define SMTP_OUTBUF_PAUSE	16384	/* stop reading commands past this */
#define SMTP_DATABUF_FLUSH	32768

enum smtp_state {
	SMTP_CONNECTED,		/* greeting sent, no HELO yet */
	SMTP_HELO,		/* HELO/EHLO done, no transaction */
	SMTP_MAIL,		/* MAIL accepted */
	SMTP_RCPT,		/* at least one RCPT accepted */
	SMTP_DATA,		/* reading message data */
	SMTP_CLOSING,		/* flush replies, then close */
};

enum smtp_wait {
	SMTP_WAIT_NONE,
	SMTP_WAIT_OPEN,		/* asked for a spool file */
	SMTP_WAIT_COMMIT,	/* asked the relay to commit */
	SMTP_WAIT_AUTH,		/* asked the parent to check a password */
	SMTP_WAIT_TLS,		/* STARTTLS: handshake to come */
	SMTP_WAIT_SLOT,		/* not greeted: the parent counts the address */
};

/* Why a message was refused at the end of DATA. */
enum smtp_data_err {
	DATA_OK,
	DATA_TOO_BIG,
	DATA_BARE_EOL,
	DATA_LONG_LINE,
	DATA_IO,
};

struct smtp_session;

enum smtp_auth_step {
	AUTH_NONE,
	AUTH_PLAIN_RESPONSE,	/* 334 sent, waiting for the credentials */
	AUTH_LOGIN_USER,	/* 334 Username: */
	AUTH_LOGIN_PASSWORD,	/* 334 Password: */
};

#define SMTP_AUTH_FAILURES	3	/* then 421 */

struct smtp_ops {
	void	(*msg_open)(struct smtp_session *);
	void	(*msg_commit)(struct smtp_session *);
	void	(*msg_abort)(struct smtp_session *);
	void	(*auth_check)(struct smtp_session *, const char *user,
		    const char *password);
	/* A refusal for the metrics (REFUSED_*); may be NULL. */
	void	(*refused)(struct smtp_session *, uint32_t reason);
	/* A recipient was accepted: DATA may follow; may be NULL. */
	void	(*msg_prefetch)(struct smtp_session *);
};

struct smtp_session {
	const struct smtpd_conf	*conf;
	const struct policy	*policy;	/* relay guard, relay mode */
	const struct smtp_ops	*ops;
	void			*owner;
	uint64_t		 session_id;	/* as logged: session= */
	enum smtp_state		 state;
	enum smtp_wait		 wait;
	int			 esmtp;		/* EHLO: enhanced codes */
	int			 authenticated;
	uint32_t		 listen_flags;	/* LISTEN_* of the listener */
	int			 loopback;	/* the client is on loopback */
	int			 tls_available;	/* STARTTLS can be offered */
	int			 tls_active;
	char			 tls_proto[ENV_TLS_MAX + 1];	/* or "" */
	int			 auth_configured; /* a users file exists */
	enum smtp_auth_step	 auth_step;
	unsigned int		 auth_failures;
	char			 auth_user[AUTH_FIELD_MAX + 1];
	int			 cmd_bare;	/* bare LF/CR in this command */
	int			 draining;	/* daemon is stopping */
	unsigned int		 errors;
	char			 peer_ip[INET6_ADDRSTRLEN];
	uint16_t		 peer_port;
	char			 helo[ENV_HELO_MAX + 1];

	/* The transaction. */
	char			 mail_from[ADDR_PATH_MAX + 1];
	char			**rcpts;
	uint32_t		 nrcpt;
	int			 body_8bit;
	int			 smtputf8;
	char			*mail_opts;	/* for debug-format bytes */
	char			*rcpt_opts;	/* the last RCPT's */

	/* Message data. */
	int			 spool_fd;
	uint64_t		 datalen;
	uint64_t		 data_received;	/* bytes read in DATA (rate) */
	enum smtp_data_err	 data_err;
	int			 data_cont;	/* last piece ended bare */
	struct buf		 dbuf;

	/* Input and output. */
	struct linebuf		 in;
	struct buf		 out;
	uint32_t		 nmessages;
};

/* Set by the worker when the relay says the queue is low on space. */
extern int	smtp_queue_low;

void	smtp_init(struct smtp_session *, const struct smtpd_conf *,
	    const struct smtp_ops *, void *, const char *ip, uint16_t port);
void	smtp_free(struct smtp_session *);
void	smtp_greet(struct smtp_session *);
uint8_t	*smtp_input_space(struct smtp_session *, size_t *);
void	smtp_input_fill(struct smtp_session *, size_t);
void	smtp_input_release(struct smtp_session *);
void	smtp_process(struct smtp_session *);
void	smtp_open_done(struct smtp_session *, int fd);
void	smtp_open_full(struct smtp_session *);
void	smtp_commit_done(struct smtp_session *, int ok, const char *);
int	smtp_commit_take(struct smtp_session *);
void	smtp_close_reply(struct smtp_session *, int code, const char *enh,
	    const char *text);
void	smtp_drain(struct smtp_session *);
void	smtp_tls_started(struct smtp_session *);
void	smtp_auth_done(struct smtp_session *, int verdict);
int	smtp_auth_offered(const struct smtp_session *);
void	smtp_auth_line(struct smtp_session *, char *);
void	smtp_cmd_auth(struct smtp_session *, char *);
void	smtp_reply(struct smtp_session *, int, const char *, const char *, ...)
	    __attribute__((format(printf, 4, 5)));
int	smtp_busy(const struct smtp_session *);
void	smtp_log_rcpt_refused(const struct smtp_session *, const char *,
	    const char *);
void	smtp_log_data_refused(const struct smtp_session *, int,
	    const char *);

/* smtp_params.c */
struct mailaddr;
char	*smtp_path_arg(char *, const char *keyword);
int	 smtp_mail_params(struct smtp_session *, char *);
int	 smtp_opts_save(char **, const char *);
int	 smtp_parse_path(struct smtp_session *, char *, int sender,
	    struct mailaddr *, char **params, int utf8);

#endif
