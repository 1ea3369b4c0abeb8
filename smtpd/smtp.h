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

struct smtp_ops {
	void	(*msg_open)(struct smtp_session *);
	void	(*msg_commit)(struct smtp_session *);
	void	(*msg_abort)(struct smtp_session *);
};

struct smtp_session {
	const struct smtpd_conf	*conf;
	const struct policy	*policy;	/* relay guard, relay mode */
	const struct smtp_ops	*ops;
	void			*owner;
	enum smtp_state		 state;
	enum smtp_wait		 wait;
	int			 esmtp;		/* EHLO: enhanced codes */
	int			 authenticated;
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

	/* Message data. */
	int			 spool_fd;
	uint64_t		 datalen;
	enum smtp_data_err	 data_err;
	int			 data_cont;	/* last piece ended bare */
	struct buf		 dbuf;

	/* Input and output. */
	struct linebuf		 in;
	struct buf		 out;
	uint32_t		 nmessages;
};

void	smtp_init(struct smtp_session *, const struct smtpd_conf *,
	    const struct smtp_ops *, void *, const char *ip, uint16_t port);
void	smtp_free(struct smtp_session *);
void	smtp_greet(struct smtp_session *);
uint8_t	*smtp_input_space(struct smtp_session *, size_t *);
void	smtp_input_fill(struct smtp_session *, size_t);
void	smtp_input_release(struct smtp_session *);
void	smtp_process(struct smtp_session *);
void	smtp_open_done(struct smtp_session *, int fd);
void	smtp_commit_done(struct smtp_session *, int ok, const char *);
void	smtp_close_reply(struct smtp_session *, int code, const char *enh,
	    const char *text);
void	smtp_drain(struct smtp_session *);
int	smtp_busy(const struct smtp_session *);

#endif
