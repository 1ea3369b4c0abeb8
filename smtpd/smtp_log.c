/*
 * The engine's log lines of refusals (SPEC 9): each names the session,
 * the client and the sender, so that one grep of session= or of the
 * sender finds what happened to mail that was never queued.
 */
#include "log.h"
#include "smtp.h"

/* A recipient the relay rules refuse: who sent, to whom, why. */
void
smtp_log_rcpt_refused(const struct smtp_session *s, const char *addr,
    const char *why)
{
	log_info("event=rcpt-refused session=" LOG_SID " client=%s from=%s "
	    "rcpt=%s reason=%s", s->session_id, s->peer_ip,
	    log_qpath(s->mail_from), log_qpath(addr), why);
}

/* A message refused at its end, or not queued: code and reason. */
void
smtp_log_data_refused(const struct smtp_session *s, int code,
    const char *why)
{
	log_info("event=data-refused session=" LOG_SID " client=%s from=%s "
	    "nrcpt=%u code=%d reason=%s", s->session_id, s->peer_ip,
	    log_qpath(s->mail_from), s->nrcpt, code, log_qq(why));
}
