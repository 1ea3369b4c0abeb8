/*
 * SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms.
 * The engine only collects the credentials; the parent checks them (a
 * worker never sees a password hash).  Offered only over TLS or to a
 * loopback client, and only on listeners configured with "auth".
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "base64.h"
#include "log.h"
#include "smtp.h"

#define SASL_MAX	(3 * AUTH_FIELD_MAX + 3)

/* Whether AUTH may be offered and used in this session now. */
int
smtp_auth_offered(const struct smtp_session *s)
{
	return s->auth_configured && (s->listen_flags & LISTEN_AUTH) &&
	    !s->authenticated && (s->tls_active || s->loopback);
}


/*
 * Credentials refused here, unchecked (no password of anyone's could
 * match them): a failure of the session, logged by the worker.
 */
static void
smtp_auth_refuse(struct smtp_session *s, const char *user)
{
	log_info("event=auth client=%s user=%s result=failed "
	    "reason=malformed session=" LOG_SID, s->peer_ip, log_quser(user),
	    s->session_id);
	smtp_auth_done(s, AUTH_RESULT_FAILED);
}

/* Give the credentials to the owner; the password is wiped after. */
static void
smtp_auth_submit(struct smtp_session *s, const char *user, char *password)
{
	size_t	 i;

	s->auth_step = AUTH_NONE;
	for (i = 0; user[i] != '\0'; i++)
		if ((unsigned char)user[i] <= ' ' || user[i] == 127) {
			smtp_auth_refuse(s, user);
			return;
		}
	if (user[0] == '\0' || password[0] == '\0') {
		smtp_auth_refuse(s, user);
		return;
	}
	strlcpy(s->auth_user, user, sizeof(s->auth_user));
	s->wait = SMTP_WAIT_AUTH;
	s->ops->auth_check(s, user, password);
}

/* PLAIN: [authzid] NUL authcid NUL passwd, base64. */
static void
smtp_auth_plain(struct smtp_session *s, const char *b64)
{
	unsigned char	 buf[SASL_MAX + 1];
	char		*authz, *user, *pass;
	ssize_t		 n;

	n = b64_decode(b64, strlen(b64), buf, sizeof(buf) - 1);
	if (n < 0) {
		smtp_reply(s, 501, "5.5.2", "Error: invalid base64 data");
		s->auth_step = AUTH_NONE;
		return;
	}
	buf[n] = '\0';
	authz = (char *)buf;
	user = memchr(buf, '\0', n) != NULL ? authz + strlen(authz) + 1 : NULL;
	if (user == NULL || user >= (char *)buf + n ||
	    (pass = memchr(user, '\0', (char *)buf + n - user)) == NULL) {
		explicit_bzero(buf, sizeof(buf));
		smtp_reply(s, 501, "5.5.2", "Error: malformed PLAIN response");
		s->auth_step = AUTH_NONE;
		return;
	}
	pass++;
	/* Acting for someone else is not offered. */
	if ((*authz != '\0' && strcmp(authz, user) != 0) ||
	    memchr(pass, '\0', (char *)buf + n - pass) != NULL ||
	    strlen(user) > AUTH_FIELD_MAX || strlen(pass) > AUTH_FIELD_MAX) {
		explicit_bzero(buf, sizeof(buf));
		s->auth_step = AUTH_NONE;
		smtp_auth_refuse(s, user);
		return;
	}
	smtp_auth_submit(s, user, pass);
	explicit_bzero(buf, sizeof(buf));
}

/* Decode one LOGIN response into out; -1 (and the reply) if bad. */
static int
smtp_auth_login_value(struct smtp_session *s, const char *b64, char *out,
    size_t outlen)
{
	ssize_t	 n;

	n = b64_decode(b64, strlen(b64), (unsigned char *)out, outlen - 1);
	if (n < 0 || memchr(out, '\0', n) != NULL) {
		smtp_reply(s, 501, "5.5.2", "Error: invalid base64 data");
		s->auth_step = AUTH_NONE;
		return -1;
	}
	out[n] = '\0';
	return 0;
}

/* AUTH mechanism [initial-response] */
void
smtp_cmd_auth(struct smtp_session *s, char *arg)
{
	char	*mech, *ir;

	if (!s->auth_configured || !(s->listen_flags & LISTEN_AUTH)) {
		smtp_reply(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (!s->tls_active && !s->loopback) {
		smtp_reply(s, 538, "5.7.11", "Encryption required for "
		    "requested authentication mechanism");
		return;
	}
	if (s->authenticated) {
		smtp_reply(s, 503, "5.5.1", "Error: already authenticated");
		return;
	}
	if (s->state != SMTP_HELO || !s->esmtp) {
		smtp_reply(s, 503, "5.5.1", "Error: send EHLO first, and AUTH "
		    "outside a mail transaction");
		return;
	}
	mech = strsep(&arg, " ");
	ir = arg;
	if (ir != NULL && strchr(ir, ' ') != NULL) {
		smtp_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism "
		    "[initial-response]");
		return;
	}
	if (strcasecmp(mech, "PLAIN") == 0) {
		if (ir == NULL) {
			s->auth_step = AUTH_PLAIN_RESPONSE;
			smtp_reply(s, 334, NULL, "%s", "");
			return;
		}
		smtp_auth_plain(s, strcmp(ir, "=") == 0 ? "" : ir);
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		if (ir == NULL) {
			s->auth_step = AUTH_LOGIN_USER;
			smtp_reply(s, 334, NULL, "VXNlcm5hbWU6");
			return;
		}
		if (smtp_auth_login_value(s, ir, s->auth_user,
		    sizeof(s->auth_user)) == -1)
			return;
		s->auth_step = AUTH_LOGIN_PASSWORD;
		smtp_reply(s, 334, NULL, "UGFzc3dvcmQ6");
	} else
		smtp_reply(s, 504, "5.5.4", "Error: unrecognized "
		    "authentication mechanism");
}

/* A line sent in answer to a 334: a response, or "*" to cancel. */
void
smtp_auth_line(struct smtp_session *s, char *line)
{
	char	 pass[AUTH_FIELD_MAX + 1];

	if (strcmp(line, "*") == 0) {
		s->auth_step = AUTH_NONE;
		smtp_reply(s, 501, "5.7.0", "Authentication cancelled");
		return;
	}
	switch (s->auth_step) {
	case AUTH_PLAIN_RESPONSE:
		smtp_auth_plain(s, line);
		break;
	case AUTH_LOGIN_USER:
		if (smtp_auth_login_value(s, line, s->auth_user,
		    sizeof(s->auth_user)) == -1)
			return;
		s->auth_step = AUTH_LOGIN_PASSWORD;
		smtp_reply(s, 334, NULL, "UGFzc3dvcmQ6");
		break;
	case AUTH_LOGIN_PASSWORD:
		if (smtp_auth_login_value(s, line, pass, sizeof(pass)) == -1)
			return;
		smtp_auth_submit(s, s->auth_user, pass);
		explicit_bzero(pass, sizeof(pass));
		break;
	case AUTH_NONE:
		break;
	}
}

/*
 * The verdict on the credentials (AUTH_RESULT_*, from the parent, which
 * logs it: the session may be gone by then).  Refusals of any kind
 * count towards the session's limit.
 */
void
smtp_auth_done(struct smtp_session *s, int verdict)
{
	s->wait = SMTP_WAIT_NONE;
	s->auth_step = AUTH_NONE;
	if (verdict == AUTH_RESULT_OK) {
		s->authenticated = 1;
		smtp_reply(s, 235, "2.7.0", "Authentication successful");
		return;
	}
	s->auth_user[0] = '\0';
	if (++s->auth_failures >= SMTP_AUTH_FAILURES) {
		smtp_close_reply(s, 421, "4.7.0", "Error: too many "
		    "authentication failures");
		return;
	}
	if (verdict == AUTH_RESULT_TEMPFAIL)
		smtp_reply(s, 454, "4.7.0", "Temporary authentication "
		    "failure, try again later");
	else
		smtp_reply(s, 535, "5.7.8", "Authentication credentials "
		    "invalid");
}
