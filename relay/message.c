/*
 * A message a worker committed: its log line and its entry in the
 * queue, made from the envelope the relay decoded and checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <bsd/string.h>

#include "log.h"
#include "relay.h"

/*
 * Log the envelope of a committed message, one line: the session it
 * came in, who authenticated (as the parent said, never the worker)
 * and the TLS protocol, "-" for none.
 */
void
relay_log_message(const char *qid, const struct spool *sp,
    const struct envelope *env, const char *user)
{
	char		 rcpts[1024];
	size_t		 off = 0;
	uint32_t	 i;
	int		 n;

	rcpts[0] = '\0';
	for (i = 0; i < env->nrcpt && off < sizeof(rcpts); i++) {
		n = snprintf(rcpts + off, sizeof(rcpts) - off, "%s<%s>",
		    i ? "," : "", env->rcpts[i].path);
		if (n < 0)
			break;
		off += n;
	}
	log_info("event=message queue_id=%s client=%s helo=%s from=%s "
	    "rcpt=%s nrcpt=%u size=%llu session=" LOG_SID " user=%s tls=%s",
	    qid, env->peer_ip, log_q(env->helo), log_qpath(env->mail_from),
	    log_q(rcpts), env->nrcpt, (unsigned long long)env->size,
	    sp->session_id, log_quser(user != NULL ? user : ""),
	    env->tls_proto[0] != '\0' ? env->tls_proto : "-");
}

/* A queue entry for a checked envelope. */
struct qmsg *
relay_qmsg(const struct spool *sp, const struct envelope *env,
    const char *user, uint32_t ch_id)
{
	struct qmsg	*m;
	uint32_t	 i;

	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->rcpts = calloc(env->nrcpt, sizeof(*m->rcpts))) == NULL) {
		free(m);
		return NULL;
	}
	strlcpy(m->id, sp->id, sizeof(m->id));
	strlcpy(m->file, sp->file, sizeof(m->file));
	m->file_new = sp->file_new;
	m->owner = ch_id;
	strlcpy(m->peer_ip, env->peer_ip, sizeof(m->peer_ip));
	m->peer_port = env->peer_port;
	strlcpy(m->helo, env->helo, sizeof(m->helo));
	strlcpy(m->from, env->mail_from, sizeof(m->from));
	if (user != NULL)
		strlcpy(m->auth_user, user, sizeof(m->auth_user));
	m->size = env->size;
	m->flags = env->flags;
	m->created = m->next_try = (int64_t)time(NULL);
	m->nrcpt = env->nrcpt;
	for (i = 0; i < env->nrcpt; i++) {
		strlcpy(m->rcpts[i].addr, env->rcpts[i].path,
		    sizeof(m->rcpts[i].addr));
		m->rcpts[i].state = RCPT_PENDING;
	}
	return m;
}
