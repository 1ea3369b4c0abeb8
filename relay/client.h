/*
 * The upstream ESMTP client of the relay (RFC 5321, with PIPELINING,
 * SIZE, 8BITMIME and SMTPUTF8 where offered, STARTTLS (RFC 3207) or
 * implicit TLS (RFC 8314), and AUTH PLAIN or LOGIN (RFC 4954)).  It
 * runs on the relay's event loop over a connected, non-blocking socket,
 * sends one message at a time, and reports a result per recipient.  The
 * upstream is as untrusted as any client: its replies are parsed
 * strictly and bounded.
 */
#ifndef SMTPD_CLIENT_H
#define SMTPD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "addr.h"
#include "buf.h"
#include "linebuf.h"
#include "event.h"
#include "proto.h"

#define CLIENT_REPLY_LINE_MAX	512	/* octets before CRLF */
#define CLIENT_REPLY_LINES_MAX	100	/* lines in one reply */
#define CLIENT_TIMEOUT_MS	300000	/* any one wait (RFC 5321 4.5.3.2) */

/* Capabilities from the EHLO reply. */
#define CAPA_PIPELINING		0x01
#define CAPA_SIZE		0x02
#define CAPA_8BITMIME		0x04
#define CAPA_SMTPUTF8		0x08
#define CAPA_STARTTLS		0x10
#define CAPA_ESMTP		0x20	/* EHLO worked (else HELO) */
#define CAPA_AUTH_PLAIN		0x40	/* AUTH PLAIN (RFC 4954, 4616) */
#define CAPA_AUTH_LOGIN		0x80	/* AUTH LOGIN (smtp_reply.auth) */

/* How the connection gets TLS (client_set_tls()). */
#define CLIENT_TLS_NONE		0
#define CLIENT_TLS_STARTTLS	1	/* required: never falls back */
#define CLIENT_TLS_IMPLICIT	2	/* handshake before the greeting */
#define CLIENT_TLS_OPPORTUNISTIC 3	/* STARTTLS when offered, else plain */


/* A parsed reply (RFC 5321 4.2). */
struct smtp_reply {
	int	code;			/* 200..599 */
	char	text[REPLY_TEXT_MAX];	/* first line's text, printable */
	int	nlines;
	int	capa;			/* keywords seen, for EHLO replies */
	int	auth;			/* CAPA_AUTH_* of the AUTH keyword */
	uint64_t size_limit;		/* SIZE n, 0 when none */
};

/* Incremental reply reader: feed complete lines, get whole replies. */
struct reply_parser {
	struct smtp_reply	 cur;
	int			 in_progress;
};

enum reply_status {
	REPLY_MORE,		/* line taken, the reply goes on */
	REPLY_DONE,		/* reply complete, in *out */
	REPLY_BAD,		/* protocol violation: drop the connection */
};

void		 reply_parser_init(struct reply_parser *);
enum reply_status reply_parse_line(struct reply_parser *, const char *,
		    size_t, struct smtp_reply *out);

/* One message to send. */
struct client_msg {
	const char	 *mail_from;	/* "" for <> */
	const char	**rcpts;
	uint32_t	  nrcpt;
	uint64_t	  size;		/* of the spool file */
	int		  body_8bit;
	int		  smtputf8;
	int		  spool_fd;	/* read with pread() from offset 0 */
	const char	 *prepend;	/* header lines to put first, CRLF each */
	const char	 *x_peer_ip;	/* NULL: no X-Peer: header */
	const char	 *queue_id;	/* for the log, NULL for none */
};

/* Outcome of one recipient, or of the message as a whole. */
struct client_rcpt_result {
	int	code;			/* 0: not tried (connection failed) */
	char	text[REPLY_TEXT_MAX];
};

/*
 * status is 2 when at least one recipient was delivered, else 4 when
 * one got a 4xx (or the connection failed), else 5; the relay reads the
 * per-recipient results either way.  After a connection failure every
 * recipient has code 0.  rcpt is the client's, valid only during done().
 */
struct client_result {
	int				 status;	/* 2, 4 or 5 */
	int				 code;		/* reply that decided */
	char				 text[REPLY_TEXT_MAX];
	struct client_rcpt_result	*rcpt;		/* nrcpt entries */
	int				 broken;	/* unusable now */
	/*
	 * The upstream took nothing of this transaction: the connection
	 * failed before the reply to MAIL, or MAIL got 421 (the upstream
	 * closes).  No body was sent: the message may go again at once.
	 */
	int				 not_begun;
};

struct client;

/*
 * done() is called once per client_send(): with the result of the
 * message, or, when the connection failed first, status 4 and code 0.
 * After a failure (and whenever result->broken is set, which a failure
 * after the outcome was known, e.g. during RSET, also does) the
 * connection is unusable: call client_free().  done() may call
 * client_send(), client_quit() or client_free() on the client.
 */
typedef void (*client_done_cb)(struct client *, struct client_result *,
    void *);

/*
 * Take over connected socket fd and read the greeting, then EHLO (HELO
 * if EHLO is refused) with helo_name, then STARTTLS and EHLO again, then
 * AUTH, as set up.  ready() is called when the connection can take a
 * message (ok=1) or failed (ok=0, reason in text, never a password).
 * It may call client_send(), client_quit() or client_free().
 */
typedef void (*client_ready_cb)(struct client *, int ok, const char *text,
    void *);

/*
 * client_new() returns NULL (errno set, fd left to the caller) on a bad
 * helo_name or no memory.  client_send() returns -1 when the client is
 * busy or unusable, or the message is malformed; otherwise the message
 * and everything it points to must stay valid until done().
 *
 * client_set_tls() and client_set_auth() go right after client_new(),
 * before the loop runs (they return -1, errno set, otherwise or on bad
 * arguments; the client is then still to be freed).  With STARTTLS, an
 * upstream that does not offer it fails the connection; the certificate
 * is checked against verify_host (a name, or an IP literal) when ctx
 * verifies.  With credentials, AUTH PLAIN (else LOGIN) follows EHLO,
 * after TLS when there is TLS; an upstream that offers neither, or
 * refuses them, fails the connection.  ctx must outlive the client; the
 * credentials are copied, and wiped when the client is freed.
 */
struct client	*client_new(int fd, const char *helo_name, client_ready_cb,
		    void *arg);
int		 client_set_tls(struct client *, SSL_CTX *, int mode,
		    const char *verify_host);
int		 client_set_auth(struct client *, const char *user,
		    const char *password);
int		 client_send(struct client *, const struct client_msg *,
		    client_done_cb, void *arg);
void		 client_quit(struct client *);	/* QUIT, then free itself */
void		 client_free(struct client *);	/* close at once */
int		 client_capa(const struct client *);
int		 client_tls(const struct client *);	/* TLS is up */
int		 client_authenticated(const struct client *);
int		 client_busy(const struct client *);
void		 client_set_timeout(struct client *, uint64_t ms);

/*
 * Probe an idle connection before reuse: RSET, with ms to answer
 * (Postfix's smtp_rset_timeout); ready() says whether it may take a
 * message.  client_stalled_ms() is how long a busy client has waited
 * without progress (0 when idle).
 */
int		 client_probe(struct client *, uint64_t ms, client_ready_cb,
		    void *arg);
uint64_t	 client_stalled_ms(const struct client *);

#endif
