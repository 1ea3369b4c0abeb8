/*
 * SMTP server engine (RFC 5321), with PIPELINING (RFC 2920), SIZE
 * (RFC 1870), 8BITMIME (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034,
 * RFC 3463) and SMTPUTF8 (RFC 6531).  One table row per verb says in
 * which states it is allowed; replies all go through smtp_reply(), which
 * adds the enhanced code and counts errors.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>
#include <limits.h>

#include "envelope.h"
#include "log.h"
#include "smtp.h"

#define STATES_ANY	0x3f
#define ST(s)		(1 << (s))

struct smtp_cmd {
	const char	*verb;
	unsigned int	 states;	/* where it is in order */
	int		 takes_args;	/* 0: must have none */
	void		(*run)(struct smtp_session *, char *);
	int		 wrong_code;	/* reply when out of order */
	const char	*wrong_text;
};

static void	smtp_reset(struct smtp_session *);
static void	smtp_rcpt_add(struct smtp_session *, const char *);
static void	smtp_rcpt_postmaster(struct smtp_session *, const char *);

/* Start a session for the client at ip:port. */
void
smtp_init(struct smtp_session *s, const struct smtpd_conf *conf,
    const struct smtp_ops *ops, void *owner, const char *ip, uint16_t port)
{
	memset(s, 0, sizeof(*s));
	s->conf = conf;
	s->ops = ops;
	s->owner = owner;
	s->state = SMTP_CONNECTED;
	s->spool_fd = -1;
	strlcpy(s->peer_ip, ip, sizeof(s->peer_ip));
	s->peer_port = port;
	linebuf_init(&s->in, NULL, 0);
	buf_init(&s->out, SMTP_OUTBUF_MAX);
	buf_init(&s->dbuf, SMTP_DATABUF_FLUSH * 2);
}

/* Release everything the session holds; an open message is aborted. */
void
smtp_free(struct smtp_session *s)
{
	smtp_reset(s);
	free(s->in.buf);
	s->in.buf = NULL;
	buf_free(&s->out);
	buf_free(&s->dbuf);
}

/* Whether a transaction is open (the daemon lets it finish on stop). */
int
smtp_busy(const struct smtp_session *s)
{
	return s->state == SMTP_MAIL || s->state == SMTP_RCPT ||
	    s->state == SMTP_DATA || s->wait != SMTP_WAIT_NONE;
}

/* Room for received bytes; the buffer exists only while input waits. */
uint8_t *
smtp_input_space(struct smtp_session *s, size_t *avail)
{
	if (s->in.buf == NULL) {
		if ((s->in.buf = malloc(SMTP_INBUF_SIZE)) == NULL) {
			*avail = 0;
			return NULL;
		}
		s->in.size = SMTP_INBUF_SIZE;
		s->in.len = s->in.pos = 0;
	}
	return linebuf_space(&s->in, avail);
}

void
smtp_input_fill(struct smtp_session *s, size_t n)
{
	linebuf_fill(&s->in, n);
}

/* Give back the input buffer when it holds nothing. */
void
smtp_input_release(struct smtp_session *s)
{
	if (s->in.buf != NULL && linebuf_pending(&s->in) == 0) {
		/* It may have held an AUTH response. */
		explicit_bzero(s->in.buf, s->in.len);
		free(s->in.buf);
		s->in.buf = NULL;
		s->in.size = s->in.len = s->in.pos = 0;
	}
}

/* Queue one reply line; cont makes it "code-text" of a multi-line reply. */
static void
smtp_reply_line(struct smtp_session *s, int code, int cont, const char *enh,
    const char *text)
{
	int	 rc;

	if (s->esmtp && enh != NULL)
		rc = buf_printf(&s->out, "%d%c%s %s\r\n", code,
		    cont ? '-' : ' ', enh, text);
	else
		rc = buf_printf(&s->out, "%d%c%s\r\n", code, cont ? '-' : ' ',
		    text);
	if (rc == -1) {
		/* The client does not read its replies: give up on it. */
		log_warnx("event=overflow session=" LOG_SID " client=%s "
		    "reason=\"reply buffer full\"", s->session_id, s->peer_ip);
		s->state = SMTP_CLOSING;
	}
}

/*
 * Queue a reply.  Every error reply, 4xx or 5xx (relay denials too, so
 * that recipients cannot be probed without end), counts towards the
 * bad-command limit; at the limit the session gets 421 and is closed.
 */
void
smtp_reply(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...)
{
	char	 text[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_reply_line(s, code, 0, enh, text);

	/*
	 * Except 452 4.5.3: too many recipients is flow control a client
	 * must handle (RFC 5321 4.5.3.1.10), and it is given before the
	 * address is looked at, so it tells nothing about it.
	 */
	if (code >= 400 && !(code == 452 && enh != NULL &&
	    strcmp(enh, "4.5.3") == 0) && ++s->errors >= s->conf->max_bad &&
	    s->state != SMTP_CLOSING) {
		smtp_close_reply(s, 421, "4.7.0", "Error: too many errors");
		log_info("event=disconnect session=" LOG_SID " client=%s "
		    "reason=errors", s->session_id, s->peer_ip);
	}
}

/* Send a final 421-style reply and close once it is written. */
void
smtp_close_reply(struct smtp_session *s, int code, const char *enh,
    const char *text)
{
	char	 line[512];

	if (s->state == SMTP_CLOSING)
		return;
	snprintf(line, sizeof(line), "%s %s", s->conf->hostname, text);
	smtp_reply_line(s, code, 0, enh, line);
	s->state = SMTP_CLOSING;
}

/* The 220 greeting (RFC 5321 4.2). */
void
smtp_greet(struct smtp_session *s)
{
	char	 line[512];

	snprintf(line, sizeof(line), "%s ESMTP smtpd", s->conf->hostname);
	smtp_reply_line(s, 220, 0, NULL, line);
}

/* Forget the transaction; an open spool file is given back. */
static void
smtp_reset(struct smtp_session *s)
{
	uint32_t	 i;

	if (s->spool_fd != -1) {
		close(s->spool_fd);
		s->spool_fd = -1;
		if (s->wait != SMTP_WAIT_COMMIT && s->ops->msg_abort != NULL)
			s->ops->msg_abort(s);
	}
	for (i = 0; i < s->nrcpt; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpt = 0;
	s->mail_from[0] = '\0';
	free(s->mail_opts);
	s->mail_opts = NULL;
	free(s->rcpt_opts);
	s->rcpt_opts = NULL;
	s->body_8bit = 0;
	s->smtputf8 = 0;
	s->datalen = 0;
	s->data_err = DATA_OK;
	s->data_cont = 0;
	buf_free(&s->dbuf);
	if (s->state != SMTP_CONNECTED && s->state != SMTP_CLOSING)
		s->state = SMTP_HELO;
}

/* The HELO or EHLO argument: one domain or address literal. */
static int
smtp_check_helo(struct smtp_session *s, const char *verb, char *arg)
{
	switch (helo_valid(arg, s->conf->smtputf8)) {
	case HELO_OK:
		break;
	case HELO_UTF8:
		smtp_reply(s, 501, "5.5.4", "Syntax: %s hostname (invalid "
		    "UTF-8 or bidirectional control)", verb);
		return -1;
	default:
		smtp_reply(s, 501, "5.5.4", "Syntax: %s hostname", verb);
		return -1;
	}
	strlcpy(s->helo, arg, sizeof(s->helo));
	log_debug("event=helo session=" LOG_SID " client=%s verb=%s helo=%s",
	    s->session_id, s->peer_ip, verb, log_q(s->helo));
	return 0;
}

static void
smtp_cmd_helo(struct smtp_session *s, char *arg)
{
	if (smtp_check_helo(s, "HELO", arg) == -1)
		return;
	smtp_reset(s);
	s->esmtp = 0;
	s->state = SMTP_HELO;
	smtp_reply(s, 250, NULL, "%s", s->conf->hostname);
}

/* EHLO and its keywords (RFC 5321 4.1.1.1). */
static void
smtp_cmd_ehlo(struct smtp_session *s, char *arg)
{
	char	 line[64];

	if (smtp_check_helo(s, "EHLO", arg) == -1)
		return;
	smtp_reset(s);
	s->esmtp = 1;
	s->state = SMTP_HELO;
	smtp_reply_line(s, 250, 1, NULL, s->conf->hostname);
	snprintf(line, sizeof(line), "SIZE %llu",
	    (unsigned long long)s->conf->max_size);
	smtp_reply_line(s, 250, 1, NULL, line);
	smtp_reply_line(s, 250, 1, NULL, "8BITMIME");
	smtp_reply_line(s, 250, 1, NULL, "PIPELINING");
	smtp_reply_line(s, 250, 1, NULL, "ENHANCEDSTATUSCODES");
	if (s->conf->smtputf8)
		smtp_reply_line(s, 250, 1, NULL, "SMTPUTF8");
	if (s->tls_available && !s->tls_active)
		smtp_reply_line(s, 250, 1, NULL, "STARTTLS");
	if (smtp_auth_offered(s))
		smtp_reply_line(s, 250, 1, NULL, "AUTH PLAIN LOGIN");
	smtp_reply_line(s, 250, 0, NULL, "HELP");
}

int	smtp_queue_low;

/* A refusal the metrics count by its reason. */
static void
smtp_refused(struct smtp_session *s, uint32_t reason)
{
	if (s->ops->refused != NULL)
		s->ops->refused(s, reason);
}

static void
smtp_cmd_mail(struct smtp_session *s, char *arg)
{
	struct mailaddr	 a;
	char		*path, *params;

	if ((s->listen_flags & LISTEN_STARTTLS_REQ) && !s->tls_active) {
		smtp_refused(s, REFUSED_STARTTLS);
		smtp_reply(s, 530, "5.7.0", "Must issue a STARTTLS command "
		    "first");
		return;
	}
	if ((path = smtp_path_arg(arg, "FROM:")) == NULL) {
		smtp_reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	/* SMTPUTF8 is a parameter after the path: allow it if advertised. */
	if (smtp_parse_path(s, path, 1, &a, &params, s->conf->smtputf8) == -1)
		return;
	s->smtputf8 = 0;
	s->body_8bit = 0;
	if (smtp_opts_save(&s->mail_opts, params) == -1) {
		smtp_reply(s, 451, "4.3.0", "Error: out of memory");
		return;
	}
	if (smtp_mail_params(s, params) == -1)
		return;
	if ((a.flags & ADDR_F_UTF8) && !s->smtputf8) {
		smtp_reply(s, 553, "5.6.7", "UTF-8 address needs SMTPUTF8");
		return;
	}
	/* Below queue-min-free: what is left is for the queue itself. */
	if (smtp_queue_low) {
		smtp_refused(s, REFUSED_STORAGE);
		smtp_reply(s, 452, "4.3.1", "Insufficient system storage");
		return;
	}
	addr_format(&a, s->mail_from, sizeof(s->mail_from));
	/* sender-login: an authenticated user sends only as themselves. */
	if (s->conf->mode == MODE_RELAY && s->policy != NULL &&
	    !policy_sender_ok(s->policy, s->authenticated ? s->auth_user :
	    NULL, s->mail_from)) {
		log_info("event=mail-refused session=" LOG_SID " client=%s "
		    "user=%s from=%s reason=sender-login", s->session_id,
		    s->peer_ip, log_qq(s->auth_user), log_qpath(s->mail_from));
		smtp_reply(s, 553, "5.7.1", "<%s>: Sender address not owned "
		    "by user", s->mail_from);
		s->mail_from[0] = '\0';
		smtp_refused(s, REFUSED_SENDER_LOGIN);
		return;
	}
	s->state = SMTP_MAIL;
	log_debug("event=mail session=" LOG_SID " client=%s from=%s",
	    s->session_id, s->peer_ip, log_qpath(s->mail_from));
	smtp_reply(s, 250, "2.1.0", "Ok");
}

static void
smtp_cmd_rcpt(struct smtp_session *s, char *arg)
{
	struct mailaddr	  a;
	char		 *path, *params;
	char		  addr[ADDR_PATH_MAX + 1];

	if ((path = smtp_path_arg(arg, "TO:")) == NULL) {
		smtp_reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	/* Before any check of the address: the 452 says nothing of it. */
	if (s->nrcpt >= s->conf->max_rcpt) {
		smtp_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (strncasecmp(path, "<postmaster>", 12) == 0 &&
	    (path[12] == '\0' || path[12] == ' ')) {
		smtp_rcpt_postmaster(s, path);
		return;
	}
	if (smtp_parse_path(s, path, 0, &a, &params, s->smtputf8) == -1)
		return;
	while (*params == ' ')
		params++;
	/* Python kept the options of the last RCPT, refused or not. */
	if ((s->esmtp || *params == '\0') &&
	    smtp_opts_save(&s->rcpt_opts, params) == -1) {
		smtp_reply(s, 451, "4.3.0", "Error: out of memory");
		return;
	}
	if (*params != '\0') {
		smtp_reply(s, 555, "5.5.4", "Unsupported parameter");
		return;
	}
	if (addr_format(&a, addr, sizeof(addr)) == -1) {
		smtp_reply(s, 553, "5.1.3", "Address too long");
		return;
	}
	if (s->conf->mode == MODE_RELAY && s->policy != NULL &&
	    !addr_is_postmaster(addr, s->conf->hostname)) {
		switch (policy_check(s->policy, &a, s->peer_ip,
		    s->authenticated ? s->auth_user : NULL, s->mail_from)) {
		case POLICY_ACCEPT:
			break;
		case POLICY_BAD_ROUTE:
			smtp_log_rcpt_refused(s, addr, "routing-characters");
			smtp_reply(s, 553, "5.1.3", "<%s@%s>: %%, ! and quoted "
			    "@ are not accepted in addresses", a.local,
			    a.domain);
			smtp_refused(s, REFUSED_ROUTING);
			return;
		case POLICY_DENY:
			smtp_log_rcpt_refused(s, addr, "relay-denied");
			smtp_reply(s, 550, "5.7.1", "<%s@%s>: Relay access "
			    "denied", a.local, a.domain);
			smtp_refused(s, REFUSED_RELAY_DENIED);
			return;
		}
	}
	/*
	 * The deliver program gets the recipients comma-separated: a comma
	 * inside one (a quoted local part) would make two of it.
	 */
	if (s->conf->mode == MODE_DELIVER && strchr(a.local, ',') != NULL) {
		smtp_reply(s, 553, "5.1.3", "<%s@%s>: a comma is not accepted "
		    "in addresses here", a.local, a.domain);
		return;
	}
	smtp_rcpt_add(s, addr);
}

/*
 * RCPT TO:<postmaster>, bare (RFC 5321 4.5.1): always accepted, kept as
 * given, for the default route.
 */
static void
smtp_rcpt_postmaster(struct smtp_session *s, const char *path)
{
	const char	*params = path + 12;
	char		 given[11];

	while (*params == ' ')
		params++;
	if (*params != '\0') {
		smtp_reply(s, 555, "5.5.4", "Unsupported parameter");
		return;
	}
	/* Kept as the client spelt it. */
	memcpy(given, path + 1, 10);
	given[10] = '\0';
	smtp_rcpt_add(s, given);
}

/* Keep an accepted recipient. */
static void
smtp_rcpt_add(struct smtp_session *s, const char *addr)
{
	char	**rcpts;

	if (s->nrcpt >= s->conf->max_rcpt) {
		smtp_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	rcpts = reallocarray(s->rcpts, s->nrcpt + 1, sizeof(*rcpts));
	if (rcpts == NULL) {
		smtp_reply(s, 451, "4.3.0", "Error: out of memory");
		return;
	}
	s->rcpts = rcpts;
	if ((s->rcpts[s->nrcpt] = strdup(addr)) == NULL) {
		smtp_reply(s, 451, "4.3.0", "Error: out of memory");
		return;
	}
	s->nrcpt++;
	s->state = SMTP_RCPT;
	log_debug("event=rcpt session=" LOG_SID " client=%s from=%s rcpt=%s",
	    s->session_id, s->peer_ip, log_qpath(s->mail_from),
	    log_qpath(addr));
	smtp_reply(s, 250, "2.1.5", "Ok");
	if (s->nrcpt == 1 && s->ops->msg_prefetch != NULL)
		s->ops->msg_prefetch(s);
}

/* DATA: ask for a spool file; 354 comes when it arrives. */
static void
smtp_cmd_data(struct smtp_session *s, char *arg)
{
	(void)arg;
	s->wait = SMTP_WAIT_OPEN;
	s->ops->msg_open(s);
}

static void
smtp_cmd_rset(struct smtp_session *s, char *arg)
{
	(void)arg;
	smtp_reset(s);
	smtp_reply(s, 250, "2.0.0", "Ok");
}

static void
smtp_cmd_noop(struct smtp_session *s, char *arg)
{
	(void)arg;
	smtp_reply(s, 250, "2.0.0", "Ok");
}

static void
smtp_cmd_quit(struct smtp_session *s, char *arg)
{
	(void)arg;
	smtp_reply(s, 221, "2.0.0", "Bye");
	s->state = SMTP_CLOSING;
}

/* VRFY: 252, never a directory lookup (RFC 5321 3.5.3). */
static void
smtp_cmd_vrfy(struct smtp_session *s, char *arg)
{
	if (*arg == '\0') {
		smtp_reply(s, 501, "5.5.4", "Syntax: VRFY address");
		return;
	}
	smtp_reply(s, 252, "2.0.0", "Cannot VRFY user, but will accept "
	    "message and attempt delivery");
}

static void
smtp_cmd_help(struct smtp_session *s, char *arg)
{
	(void)arg;
	smtp_reply(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA RSET "
	    "NOOP QUIT VRFY HELP");
}

/*
 * STARTTLS (RFC 3207).  After the 220 the session waits for the
 * handshake; smtp_process() reads nothing more, and what the client
 * sent after the command is thrown away by the owner (CVE-2011-0411).
 */
static void
smtp_cmd_starttls(struct smtp_session *s, char *arg)
{
	if (!s->tls_available) {
		smtp_reply(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (s->tls_active) {
		smtp_reply(s, 503, "5.5.1", "Error: TLS already active");
		return;
	}
	if (*arg != '\0') {
		smtp_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
	s->wait = SMTP_WAIT_TLS;
}

/*
 * The handshake is done: forget everything said before it (RFC 3207
 * 4.2); the client must send EHLO again.
 */
void
smtp_tls_started(struct smtp_session *s)
{
	smtp_reset(s);
	s->wait = SMTP_WAIT_NONE;
	s->tls_active = 1;
	s->esmtp = 0;
	s->helo[0] = '\0';
	/* What was authenticated in the clear is not over TLS (SPEC 8). */
	s->authenticated = 0;
	s->auth_step = AUTH_NONE;
	explicit_bzero(s->auth_user, sizeof(s->auth_user));
	s->cmd_bare = 0;
	if (s->state != SMTP_CLOSING)
		s->state = SMTP_CONNECTED;
}

#define NOTX	(ST(SMTP_CONNECTED) | ST(SMTP_HELO) | ST(SMTP_MAIL) | \
		    ST(SMTP_RCPT))

static const struct smtp_cmd smtp_cmds[] = {
	{ "HELO", NOTX, 1, smtp_cmd_helo, 0, NULL },
	{ "EHLO", NOTX, 1, smtp_cmd_ehlo, 0, NULL },
	{ "MAIL", ST(SMTP_HELO), 1, smtp_cmd_mail, 503,
	    "Error: send HELO/EHLO first" },
	{ "RCPT", ST(SMTP_MAIL) | ST(SMTP_RCPT), 1, smtp_cmd_rcpt, 503,
	    "Error: need MAIL command" },
	{ "DATA", ST(SMTP_RCPT), 0, smtp_cmd_data, 503,
	    "Error: need RCPT command" },
	{ "RSET", NOTX, 0, smtp_cmd_rset, 0, NULL },
	{ "NOOP", NOTX, 1, smtp_cmd_noop, 0, NULL },
	{ "QUIT", NOTX, 0, smtp_cmd_quit, 0, NULL },
	{ "VRFY", NOTX, 1, smtp_cmd_vrfy, 0, NULL },
	{ "HELP", NOTX, 1, smtp_cmd_help, 0, NULL },
	{ "STARTTLS", NOTX, 1, smtp_cmd_starttls, 0, NULL },
	{ "AUTH", NOTX, 1, smtp_cmd_auth, 0, NULL },
};

/* Which out-of-order reply fits: MAIL during a transaction is nested. */
static void
smtp_wrong_order(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (cmd->run == smtp_cmd_mail && s->state != SMTP_CONNECTED)
		smtp_reply(s, 503, "5.5.1", "Error: nested MAIL command");
	else
		smtp_reply(s, cmd->wrong_code, "5.5.1", "%s",
		    cmd->wrong_text);
}

/* Run one command line (without its CRLF). */
static void
smtp_command(struct smtp_session *s, char *line)
{
	const struct smtp_cmd	*cmd;
	char			*arg;
	size_t			 i, verblen;

	verblen = strcspn(line, " ");
	arg = line + verblen;
	while (*arg == ' ')
		arg++;
	for (i = 0; i < sizeof(smtp_cmds) / sizeof(smtp_cmds[0]); i++) {
		cmd = &smtp_cmds[i];
		if (strlen(cmd->verb) == verblen &&
		    strncasecmp(line, cmd->verb, verblen) == 0)
			break;
	}
	if (i == sizeof(smtp_cmds) / sizeof(smtp_cmds[0])) {
		smtp_reply(s, 500, "5.5.2", "Error: command not recognized");
		return;
	}
	if (!(cmd->states & ST(s->state))) {
		smtp_wrong_order(s, cmd);
		return;
	}
	if (!cmd->takes_args && *arg != '\0') {
		smtp_reply(s, 501, "5.5.4", "Syntax: %s", cmd->verb);
		return;
	}
	cmd->run(s, arg);
}

/*
 * Write the collected data to the spool file, with write(2): the
 * relay checks the file offset, which the descriptors share, against
 * the size the commit says (relay/queue_pool.c, queue_spool_fit()).
 */
static void
smtp_data_flush(struct smtp_session *s)
{
	const char	*p;
	size_t		 left = buf_left(&s->dbuf);
	ssize_t		 n;

	if (left == 0)
		return;
	p = s->dbuf.data + s->dbuf.off;
	while (left > 0 && s->data_err == DATA_OK) {
		n = write(s->spool_fd, p, left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("event=spool-write session=" LOG_SID
			    " client=%s", s->session_id, s->peer_ip);
			s->data_err = DATA_IO;
			break;
		}
		p += n;
		left -= n;
	}
	buf_free(&s->dbuf);
}

/* Append one unstuffed line and its CRLF to the message. */
static void
smtp_data_add(struct smtp_session *s, const uint8_t *line, size_t len)
{
	if (s->data_err != DATA_OK)
		return;
	if (s->datalen + len + 2 > s->conf->max_size) {
		s->data_err = DATA_TOO_BIG;
		return;
	}
	s->datalen += len + 2;
	if (buf_add(&s->dbuf, line, len) == -1 ||
	    buf_add(&s->dbuf, "\r\n", 2) == -1) {
		s->data_err = DATA_IO;
		return;
	}
	if (buf_left(&s->dbuf) >= SMTP_DATABUF_FLUSH)
		smtp_data_flush(s);
}

/* The final dot: refuse what was flagged, or ask for the commit. */
static void
smtp_data_end(struct smtp_session *s)
{
	if (s->data_err == DATA_OK)
		smtp_data_flush(s);
	switch (s->data_err) {
	case DATA_OK:
		s->wait = SMTP_WAIT_COMMIT;
		s->ops->msg_commit(s);
		return;
	case DATA_TOO_BIG:
		smtp_log_data_refused(s, 552, "message too big");
		smtp_reply(s, 552, "5.3.4", "Error: message too big");
		break;
	case DATA_BARE_EOL:
		smtp_log_data_refused(s, 550, "bare LF or CR");
		smtp_reply(s, 550, "5.5.2", "Error: bare LF or CR in message "
		    "data");
		break;
	case DATA_LONG_LINE:
		smtp_log_data_refused(s, 550, "line too long");
		smtp_reply(s, 550, "5.5.2", "Error: line longer than 1000 "
		    "octets in message data");
		break;
	case DATA_IO:
		smtp_log_data_refused(s, 451, "queue file write error");
		smtp_reply(s, 451, "4.3.0", "Error: queue file write error");
		break;
	}
	smtp_reset(s);
}

/*
 * One piece of message data.  A line is only a line if the previous one
 * ended with CRLF: after a bare LF or CR nothing, not even ".", is at
 * the start of a line (the SMTP smuggling defence).
 */
static void
smtp_data_line(struct smtp_session *s, enum line_kind kind,
    const uint8_t *line, size_t len)
{
	s->data_received += len + (kind == LINE_CRLF ? 2 : 1);
	switch (kind) {
	case LINE_CRLF:
		if (!s->data_cont && len == 1 && line[0] == '.') {
			smtp_data_end(s);
			return;
		}
		if (!s->data_cont && len > 0 && line[0] == '.') {
			line++;
			len--;
		}
		smtp_data_add(s, line, len);
		s->data_cont = 0;
		break;
	case LINE_BARE_LF:
	case LINE_BARE_CR:
		if (s->data_err == DATA_OK)
			s->data_err = DATA_BARE_EOL;
		s->data_cont = 1;
		break;
	case LINE_TOO_LONG:
		if (s->data_err == DATA_OK)
			s->data_err = DATA_LONG_LINE;
		s->data_cont = 0;
		break;
	case LINE_NONE:
		break;
	}
}

/* One piece of a command. */
static void
smtp_command_line(struct smtp_session *s, enum line_kind kind,
    const uint8_t *line, size_t len)
{
	char	 cmd[SMTP_CMD_MAX + 1];

	switch (kind) {
	case LINE_CRLF:
		if (s->cmd_bare) {
			s->cmd_bare = 0;
			s->auth_step = AUTH_NONE;
			smtp_reply(s, 500, "5.5.2", "Error: bare LF or CR in "
			    "command");
			return;
		}
		memcpy(cmd, line, len);
		cmd[len] = '\0';
		if (memchr(cmd, '\0', len) != NULL) {
			s->auth_step = AUTH_NONE;
			smtp_reply(s, 500, "5.5.2", "Error: NUL in command");
			return;
		}
		if (s->auth_step != AUTH_NONE)
			smtp_auth_line(s, cmd);
		else
			smtp_command(s, cmd);
		explicit_bzero(cmd, len);
		break;
	case LINE_BARE_LF:
	case LINE_BARE_CR:
		s->cmd_bare = 1;
		break;
	case LINE_TOO_LONG:
		s->cmd_bare = 0;
		s->auth_step = AUTH_NONE;
		smtp_reply(s, 500, "5.5.2", "Error: line too long");
		break;
	case LINE_NONE:
		break;
	}
}

/*
 * Work through the buffered input.  It stops while the relay is asked
 * something, when the session is closing, or when replies pile up
 * unread; buffered input is never refused for being there (RFC 2920).
 */
void
smtp_process(struct smtp_session *s)
{
	const uint8_t	*line;
	size_t		 len;
	enum line_kind	 kind;

	while (s->in.buf != NULL && s->wait == SMTP_WAIT_NONE &&
	    s->state != SMTP_CLOSING && buf_left(&s->out) < SMTP_OUTBUF_PAUSE) {
		if (s->state == SMTP_DATA)
			kind = linebuf_next(&s->in, SMTP_TEXT_MAX, &line, &len);
		else
			kind = linebuf_next(&s->in, SMTP_CMD_MAX, &line, &len);
		if (kind == LINE_NONE)
			break;
		if (s->state == SMTP_DATA)
			smtp_data_line(s, kind, line, len);
		else
			smtp_command_line(s, kind, line, len);
	}
	if (s->draining && !smtp_busy(s) && linebuf_pending(&s->in) == 0)
		smtp_close_reply(s, 421, "4.3.2", "Service shutting down");
}

/* The relay answered MSG_OPEN: fd is the spool file, or -1. */
void
smtp_open_done(struct smtp_session *s, int fd)
{
	if (s->wait != SMTP_WAIT_OPEN) {
		if (fd != -1)
			close(fd);
		return;
	}
	s->wait = SMTP_WAIT_NONE;
	if (fd == -1) {
		smtp_log_data_refused(s, 451, "queue unavailable");
		smtp_reply(s, 451, "4.3.0", "Error: queue unavailable, try "
		    "again later");
		return;
	}
	s->spool_fd = fd;
	s->datalen = 0;
	s->data_received = 0;
	s->data_err = DATA_OK;
	s->data_cont = 0;
	s->state = SMTP_DATA;
	smtp_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

/* The relay has too much mail in progress: this DATA waits (452). */
void
smtp_open_full(struct smtp_session *s)
{
	if (s->wait != SMTP_WAIT_OPEN)
		return;
	s->wait = SMTP_WAIT_NONE;
	smtp_log_data_refused(s, 452, "too much mail in progress");
	smtp_reply(s, 452, "4.3.1", "Error: too much mail in progress, try "
	    "again later");
}

/* The relay answered MSG_COMMIT. */
void
smtp_commit_done(struct smtp_session *s, int ok, const char *text)
{
	if (s->wait != SMTP_WAIT_COMMIT)
		return;
	if (ok) {
		s->nmessages++;
		smtp_reply(s, 250, "2.0.0", "Ok: queued as %s", text);
	} else {
		smtp_log_data_refused(s, 451, text);
		smtp_reply(s, 451, "4.3.0", "Error: %s", text);
	}
	smtp_reset(s);
	s->wait = SMTP_WAIT_NONE;
}

/*
 * The spool file of the commit waited for, taken from the session (the
 * relay lets it keep the file: MSG_KEPT); -1 if no commit is waited for.
 */
int
smtp_commit_take(struct smtp_session *s)
{
	int	 fd = s->spool_fd;

	if (s->wait != SMTP_WAIT_COMMIT)
		return -1;
	s->spool_fd = -1;
	return fd;
}

/* The daemon is stopping: close now if idle, else after the message. */
void
smtp_drain(struct smtp_session *s)
{
	s->draining = 1;
	if (!smtp_busy(s))
		smtp_close_reply(s, 421, "4.3.2", "Service shutting down");
}
