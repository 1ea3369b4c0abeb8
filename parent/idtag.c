/*
 * The tag of a session worker in the ids of its sessions (the scheme is
 * in smtpd/session.c, session_new_id()): the lowest tag that no other
 * living worker holds, retiring ones included, so that no two workers
 * ever make ids with the same tag at the same time.
 */
#include <string.h>

#include "imsg.h"
#include "parent.h"

/* The lowest tag free among the living workers but c; c's first. */
static uint32_t
parent_idtag(struct parent *p, const struct child *c)
{
	uint8_t		 held[SESSION_TAG_MAX + 1];
	struct child	*o;
	uint32_t	 t;

	memset(held, 0, sizeof(held));
	for (o = p->children; o != NULL; o = o->next)
		if (o != c && o->role == ROLE_SESSION)
			held[o->idtag] = 1;
	for (t = 0; t <= SESSION_TAG_MAX; t++)
		if (!held[t])
			return t;
	/*
	 * More than SESSION_TAG_MAX + 1 workers alive (four pools of the
	 * largest size, three of them draining): the oldest's tag, which
	 * a draining worker holds (it opens no session).
	 */
	for (o = p->children; o != NULL; o = o->next)
		if (o != c && o->role == ROLE_SESSION && o->retiring)
			t = o->idtag;
	return t % (SESSION_TAG_MAX + 1);
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
