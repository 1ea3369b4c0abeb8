/*
 * The tag of a session worker in the ids of its sessions (the scheme is
 * in smtpd/session.c, session_new_id()): the lowest tag that no other
 * living worker holds, retiring ones included, so that no two workers
 * ever make ids with the same tag at the same time.
 */
#include <string.h>

#include "imsg.h"
#include "log.h"
#include "parent.h"

#define TAG_DRAINING	0x01	/* held by a retired worker */
#define TAG_OPENS	0x02	/* held by one that opens sessions */

_Static_assert(PARENT_MAX_WORKERS <= SESSION_TAG_MAX,
    "a tag for each worker of the pool, with one to spare");

/*
 * The lowest tag free among the living workers but c; c's first.  With
 * more living workers than tags (pools of the largest size that a
 * reload after reload left draining, each kept by a session), a tag
 * only draining workers hold: they open no session, and the new ids
 * are later than theirs.  There is always one, as fewer workers than
 * tags take sessions (PARENT_MAX_WORKERS), and each new one gets its
 * own: two workers that open sessions never share a tag.
 */
static uint32_t
parent_idtag(struct parent *p, const struct child *c)
{
	uint8_t		 held[SESSION_TAG_MAX + 1];
	struct child	*o;
	uint32_t	 t;

	memset(held, 0, sizeof(held));
	for (o = p->children; o != NULL; o = o->next)
		if (o != c && o->role == ROLE_SESSION)
			held[o->idtag] |= o->retiring ? TAG_DRAINING : TAG_OPENS;
	for (t = 0; t <= SESSION_TAG_MAX; t++)
		if (held[t] == 0)
			return t;
	for (t = 0; t <= SESSION_TAG_MAX; t++)
		if (!(held[t] & TAG_OPENS))
			return t;
	fatalx("no session id tag left");
}

/*
 * Give a new worker its tag and its slot in the pool (IMSG_CONF_IDTAG),
 * before IMSG_CONF_END: the worker of slot 0 takes new connections at
 * once, the others only what it leaves waiting (worker.c, worker_defer).
 */
void
parent_idtag_send(struct parent *p, struct child *c)
{
	struct imsg_out	 out;

	c->idtag = parent_idtag(p, c);
	imsg_out_init(&out, IMSG_CONF_IDTAG, 0, -1);
	imsg_add_u32(&out, c->idtag);
	imsg_add_u32(&out, c->slot);
	parent_child_send(c, &out);
}
