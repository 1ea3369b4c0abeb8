/*
 * Debug mode: the answers of a round's printed messages, held until the
 * flush of standard output that holds them (SPEC section 5: a message
 * is printed, and flushed, before its 250).  One write(2) a round in
 * place of one a message; a flush that fails answers each of them 451,
 * as a failed print did.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "control.h"
#include "debug.h"
#include "log.h"
#include "proto.h"

struct held {
	uint32_t	 channel;
	uint32_t	 session;
	uint32_t	 nrcpt;
	int		 kept;		/* the spool file stays for reuse */
	char		 qid[DEBUG_QID_MAX];
};

static struct held	*held;
static size_t		 nheld, held_cap;

/* The answer to a message printed into stdout, for debug_flush(). */
void
debug_hold(uint32_t channel, uint32_t session, uint32_t nrcpt, int kept,
    const char *qid)
{
	struct held	*h;
	size_t		 cap;

	if (nheld == held_cap) {
		cap = held_cap ? held_cap * 2 : 64;
		if ((h = reallocarray(held, cap, sizeof(*held))) == NULL)
			fatal("debug answers");
		held = h;
		held_cap = cap;
	}
	h = &held[nheld++];
	h->channel = channel;
	h->session = session;
	h->nrcpt = nrcpt;
	h->kept = kept;
	strlcpy(h->qid, qid, sizeof(h->qid));
}

/*
 * Flush out, then give each held message its answer: MSG_KEPT or
 * MSG_OK once it is out, MSG_TEMPFAIL if the flush failed.
 */
void
debug_flush(FILE *out, debug_reply_fn reply)
{
	struct held	*h;
	size_t		 i;
	int		 ok;

	if (nheld == 0)
		return;
	ok = fflush(out) != EOF && !ferror(out);
	for (i = 0; i < nheld; i++) {
		h = &held[i];
		if (!ok) {
			log_warn("event=delivery queue_id=%s mode=debug "
			    "result=tempfail", h->qid);
			reply(h->channel, h->session, IMSG_MSG_TEMPFAIL,
			    "cannot print the message");
			continue;
		}
		log_info("event=delivery queue_id=%s mode=debug "
		    "result=printed", h->qid);
		stats_printed(h->nrcpt);
		reply(h->channel, h->session, h->kept ? IMSG_MSG_KEPT :
		    IMSG_MSG_OK, h->qid);
	}
	nheld = 0;
}
