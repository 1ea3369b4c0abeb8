/*
 * AUTH towards the upstream (RFC 4954): PLAIN (RFC 4616) when offered,
 * else LOGIN.  The credentials come from upstream-auth by way of the
 * parent; every line that carries them is wiped as it goes out.
 */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "client_int.h"
#include "proto.h"
#include "log.h"

/* AUTH in clear text is worth one warning per process, not one a try. */
static int	client_cleartext_warned;

/*
 * Queue prefix and base64 of len octets of data (RFC 4954 4), a line
 * that may hold a password: no copy stays on the stack, and the output
 * is wiped as it goes out.
 */
static int
client_cmd_b64(struct client *c, const char *prefix, const void *data,
    size_t len)
{
	unsigned char	 line[1024];
	size_t		 plen = strlen(prefix);
	int		 n, rc;

	if (plen + (len + 2) / 3 * 4 + 3 > sizeof(line)) {
		client_fail(c, "cannot queue command");
		return -1;
	}
	memcpy(line, prefix, plen);
	n = EVP_EncodeBlock(line + plen, data, (int)len);
	memcpy(line + plen + n, "\r\n", 2);
	c->out_secret = 1;
	rc = buf_add(&c->out, line, plen + (size_t)n + 2);
	explicit_bzero(line, sizeof(line));
	if (rc == -1)
		client_fail(c, "cannot queue command");
	return rc;
}

/* Send the PLAIN response (RFC 4616 2: no authzid, user, password). */
static void
client_auth_plain(struct client *c, const char *prefix)
{
	char	 plain[2 * AUTH_FIELD_MAX + 2];
	size_t	 ulen = strlen(c->auth_user), plen = strlen(c->auth_pass);

	plain[0] = '\0';
	memcpy(plain + 1, c->auth_user, ulen);
	plain[1 + ulen] = '\0';
	memcpy(plain + 2 + ulen, c->auth_pass, plen);
	c->auth_step = AUTH_PLAIN;
	client_cmd_b64(c, prefix, plain, 2 + ulen + plen);
	explicit_bzero(plain, sizeof(plain));
}

/*
 * Authenticate (RFC 4954): PLAIN when offered, in one round trip with
 * the initial response, else LOGIN, which asks for the user, then for
 * the password.  An initial response that would make the command
 * longer than 512 octets is not sent (RFC 4954 4): LOGIN then, when
 * offered, else PLAIN waits for its 334.
 */
void
client_auth_start(struct client *c)
{
	size_t	 n = strlen(c->auth_user) + strlen(c->auth_pass) + 2;
	/* "AUTH PLAIN ", the base64 of n octets, CRLF. */
	int	 fits = 11 + (n + 2) / 3 * 4 + 2 <= SMTP_CMD_MAX + 2;

	if (!(c->capa & (CAPA_AUTH_PLAIN | CAPA_AUTH_LOGIN))) {
		client_fail(c, "upstream offers no AUTH PLAIN/LOGIN");
		return;
	}
	if (!c->tls_up && !client_cleartext_warned) {
		client_cleartext_warned = 1;
		log_warnx("event=upstream-auth-cleartext reason=\"upstream is "
		    "plain: the password goes in clear text\"");
	}
	c->state = CS_AUTH;
	if ((c->capa & CAPA_AUTH_PLAIN) && fits)
		client_auth_plain(c, "AUTH PLAIN ");
	else if (c->capa & CAPA_AUTH_LOGIN) {
		c->auth_step = AUTH_LOGIN;
		client_cmd(c, "AUTH LOGIN\r\n");
	} else {
		c->auth_step = AUTH_PLAIN_ASK;
		client_cmd(c, "AUTH PLAIN\r\n");
	}
}

/*
 * A reply in the AUTH exchange: 334 asks LOGIN for its next item, 235
 * says yes.  Anything else, a refusal (535 and the like) above all,
 * fails the connection with the upstream's words, never with ours.
 */
void
client_auth_reply(struct client *c, const struct smtp_reply *r)
{
	const char	*mech = c->auth_step == AUTH_PLAIN ||
			    c->auth_step == AUTH_PLAIN_ASK ? "PLAIN" : "LOGIN";
	const char	*item;

	if (r->code == 235 && (c->auth_step == AUTH_PLAIN ||
	    c->auth_step == AUTH_LOGIN_PASS)) {
		c->authed = 1;
		log_debug("event=upstream-auth mechanism=%s result=ok", mech);
		client_session_ready(c, r->text);
		return;
	}
	if (r->code == 334 && c->auth_step == AUTH_PLAIN_ASK) {
		client_auth_plain(c, "");
		return;
	}
	if (r->code == 334 && (c->auth_step == AUTH_LOGIN ||
	    c->auth_step == AUTH_LOGIN_USER)) {
		item = c->auth_step == AUTH_LOGIN ? c->auth_user :
		    c->auth_pass;
		c->auth_step = c->auth_step == AUTH_LOGIN ? AUTH_LOGIN_USER :
		    AUTH_LOGIN_PASS;
		client_cmd_b64(c, "", item, strlen(item));
		return;
	}
	client_fail(c, "AUTH %s failed: %d %s", mech, r->code, r->text);
}

/* Credentials for AUTH, set before the loop runs; user "" for none. */
int
client_set_auth(struct client *c, const char *user, const char *password)
{
	size_t	 ulen, plen;

	if ((c->state != CS_GREETING && c->state != CS_TLS) || c->tls_up ||
	    user == NULL || password == NULL) {
		errno = EINVAL;
		return -1;
	}
	explicit_bzero(c->auth_user, sizeof(c->auth_user));
	explicit_bzero(c->auth_pass, sizeof(c->auth_pass));
	if (user[0] == '\0')
		return 0;
	ulen = strlen(user);
	plen = strlen(password);
	if (ulen > AUTH_FIELD_MAX || plen > AUTH_FIELD_MAX || plen == 0) {
		errno = EINVAL;
		return -1;
	}
	memcpy(c->auth_user, user, ulen);
	memcpy(c->auth_pass, password, plen);
	return 0;
}

