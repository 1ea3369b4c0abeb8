/*
 * What the files of the relay's ESMTP client share: client.c (the state
 * machine and the API of client.h), client_body.c (streaming the
 * message) and client_io.c (socket and TLS I/O).  Nothing else includes
 * this.
 */
#ifndef SMTPD_CLIENT_INT_H
#define SMTPD_CLIENT_INT_H

#include <sys/types.h>

#include <stdint.h>

#include "client.h"

#define CLIENT_IN_SIZE		4096		/* reply bytes read at once */
#define CLIENT_CHUNK		65536		/* spool bytes read at once */
#define CLIENT_OUT_LOW		65536		/* refill below this */
#define CLIENT_OUT_MAX		(4 * CLIENT_CHUNK)	/* output ceiling */
#define CLIENT_HELO_MAX		255		/* RFC 5321 4.5.3.1.2 */

enum client_state {
	CS_GREETING,		/* waiting for 220 */
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,		/* waiting for 220 to STARTTLS */
	CS_TLS,			/* TLS handshake */
	CS_AUTH,		/* AUTH exchange */
	CS_IDLE,		/* ready for client_send() */
	CS_LOCAL,		/* message refused here, done() pending */
	CS_ENVELOPE,		/* MAIL, RCPT, DATA and their replies */
	CS_BODY,		/* streaming the message */
	CS_DOT,			/* waiting for the reply to the final dot */
	CS_RSET,
	CS_QUIT,
	CS_PROBE,		/* RSET on a reused idle connection */
	CS_FAILED,		/* connection closed, client unusable */
};

/* Where an AUTH exchange stands: what the next reply answers. */
enum client_auth_step {
	AUTH_PLAIN,		/* the PLAIN response sent: 235 or a refusal */
	AUTH_PLAIN_ASK,		/* AUTH PLAIN alone: 334 asks for it */
	AUTH_LOGIN,		/* AUTH LOGIN: 334 asks for the user */
	AUTH_LOGIN_USER,	/* user sent: 334 asks for the password */
	AUTH_LOGIN_PASS,	/* password sent: 235 or a refusal */
};

/* The message on its way out: prepend, then the spool file. */
struct body {
	char		*chunk;		/* CLIENT_CHUNK bytes while sending */
	const char	*prep;		/* prepend not yet encoded */
	size_t		 preplen;
	off_t		 off;		/* next spool offset */
	int		 peer;		/* X-Peer still to insert */
	int		 hdr_bol;	/* after CRLF: an empty line may come */
	int		 dot_bol;	/* after CR or LF: a dot gets stuffed */
	int		 cr;		/* a CR held until its successor */
	char		 last[2];	/* last two octets sent */
	uint64_t	 nsent;
};

struct client {
	int			 fd;
	enum client_state	 state;
	int			 depth;		/* entry points on the stack */
	int			 dead;		/* freed while depth > 0 */
	int			 flushing;	/* in client_flush() */
	uint64_t		 timeout_ms;
	uint64_t		 saved_timeout;	/* of a probe's other waits */
	uint64_t		 progress_ms;	/* ev_now() of the last progress */
	char			 helo[CLIENT_HELO_MAX + 1];
	int			 capa;
	uint64_t		 size_limit;
	client_ready_cb		 ready_cb;
	void			*ready_arg;
	client_done_cb		 done_cb;
	void			*done_arg;
	struct ev_timer		 timer;		/* the wait in progress */
	struct ev_timer		 defer;		/* done() of CS_LOCAL */
	struct linebuf		 lb;
	struct reply_parser	 rp;
	struct buf		 out;
	int			 out_secret;	/* out holds a password */

	/* TLS: ssl is made by client_set_tls(), used once tls_on. */
	int			 tls_mode;	/* CLIENT_TLS_* */
	SSL			*ssl;
	int			 tls_on;	/* I/O goes through ssl */
	int			 tls_up;	/* handshake done */
	int			 tls_verify;	/* the certificate is checked */
	int			 tls_want;	/* EV_* the handshake wants */
	int			 tls_bad;	/* TLS failed: no shutdown */
	int			 read_wants_write;
	int			 write_wants_read;

	/* AUTH: user "" when none. */
	char			 auth_user[AUTH_FIELD_MAX + 1];
	char			 auth_pass[AUTH_FIELD_MAX + 1];
	enum client_auth_step	 auth_step;
	int			 authed;

	/* The transaction. */
	struct client_msg	 msg;
	struct client_result	 res;
	int			 decided;	/* res holds the outcome */
	int			 pipelined;
	uint32_t		 cmd_next;	/* MAIL, RCPT 1..n, DATA */
	uint32_t		 reply_next;	/* the next reply answers */
	int			 mail_ok;
	int			 mail_421;	/* MAIL got 421: closing */
	uint32_t		 naccepted;
	int			 dot_ignore;	/* dot sent only to end DATA */
	struct body		 body;

	uint8_t			 in[CLIENT_IN_SIZE];
};

/* What a failure in each state was waiting for, for the text. */
extern const char *const client_state_names[];

/* client.c */
void	client_enter(struct client *);
void	client_leave(struct client *);
int	client_gone(const struct client *);
void	client_rearm(struct client *);
void	client_events(struct client *);
void	client_flush(struct client *);
void	client_fail(struct client *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	client_session_ready(struct client *, const char *);
void	client_auth_start(struct client *);
void	client_probe_reply(struct client *, const struct smtp_reply *);
void	client_auth_reply(struct client *, const struct smtp_reply *);
int	client_cmd(struct client *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	client_envelope_queue(struct client *);
void	client_lines(struct client *);

/* client_body.c */
void	client_body_free(struct client *);
void	client_body_start(struct client *);
void	client_body_fill(struct client *);

/* client_io.c */
void	client_tls_step(struct client *);
void	client_io(int, int, void *);

#endif
