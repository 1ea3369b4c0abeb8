/*
 * Sessions per client address (max-sessions-per-ip), counted here for
 * the whole daemon: a worker asks for a slot before it greets
 * (IMSG_SLOT_ASK), gets the verdict (IMSG_SLOT_ANSWER), and gives the
 * slot back when the session ends (IMSG_SLOT_FREE).  A worker is not
 * trusted with the count: it can only hold as many slots as it may have
 * sessions, and every slot it holds is released when it exits, however
 * it exits.  IPv6 addresses count per /64; loopback is exempt.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "parent.h"

/* An address key: the IPv4 address, or the /64 of an IPv6 one. */
struct addrcount {
	struct addrcount	*next;
	uint8_t			 key[9];	/* family byte, 4 or 8 bytes */
	uint32_t		 count;
};

/* One slot a worker holds: its session id and the address counted. */
struct slot_held {
	struct slot_held	*next;
	uint32_t		 session;
	struct addrcount	*ac;
};

static struct addrcount	*addrcounts[SLOTS_HASH_SIZE];

static uint32_t
key_hash(const uint8_t *key)
{
	uint32_t	 h = 2166136261u;
	size_t		 i;

	for (i = 0; i < 9; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % SLOTS_HASH_SIZE;
}

static uint32_t
session_hash(uint32_t id)
{
	return (id * 2654435761u) % SLOTS_HASH_SIZE;
}

/*
 * The key of a client address; 1 if it is loopback (not counted), 0
 * if counted.  A v4-mapped IPv6 address is its IPv4 address.
 */
static int
addr_key(const struct sockaddr_storage *ss, uint8_t *key)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)ss;
	const uint8_t			*a;

	memset(key, 0, 9);
	if (ss->ss_family == AF_INET6 &&
	    !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return 1;
		key[0] = 6;
		memcpy(key + 1, sin6->sin6_addr.s6_addr, 8);
		return 0;
	}
	a = ss->ss_family == AF_INET ? (const uint8_t *)&sin->sin_addr :
	    sin6->sin6_addr.s6_addr + 12;
	if (a[0] == 127)
		return 1;
	key[0] = 4;
	memcpy(key + 1, a, 4);
	return 0;
}

static struct addrcount *
addrcount_get(const uint8_t *key)
{
	struct addrcount	*ac;
	uint32_t		 h = key_hash(key);

	for (ac = addrcounts[h]; ac != NULL; ac = ac->next)
		if (memcmp(ac->key, key, sizeof(ac->key)) == 0)
			return ac;
	if ((ac = calloc(1, sizeof(*ac))) == NULL)
		return NULL;
	memcpy(ac->key, key, sizeof(ac->key));
	ac->next = addrcounts[h];
	addrcounts[h] = ac;
	return ac;
}

/* One session of ac's address ended; forget the address at zero. */
static void
addrcount_release(struct addrcount *ac)
{
	struct addrcount	**acp;

	if (--ac->count > 0)
		return;
	for (acp = &addrcounts[key_hash(ac->key)]; *acp != NULL;
	    acp = &(*acp)->next)
		if (*acp == ac) {
			*acp = ac->next;
			free(ac);
			return;
		}
}

static struct slot_held **
slot_find(struct child *c, uint32_t session)
{
	struct slot_held	**sp;

	for (sp = &c->slots[session_hash(session)]; *sp != NULL;
	    sp = &(*sp)->next)
		if ((*sp)->session == session)
			return sp;
	return NULL;
}

static void
slot_answer(struct child *c, uint32_t session, uint32_t ok)
{
	struct imsg_out	 out;

	imsg_out_init(&out, IMSG_SLOT_ANSWER, session, -1);
	imsg_add_u32(&out, ok);
	parent_child_send(c, &out);
}

/*
 * IMSG_SLOT_ASK: peerid session id, sockaddr of the client.  -1 (the
 * worker is killed) for a malformed request, a session that already
 * holds a slot, or more slots than the worker may have sessions.
 */
int
parent_slot_ask(struct parent *p, struct child *c, struct imsg *imsg)
{
	struct sockaddr_storage	 ss;
	struct addrcount	*ac;
	struct slot_held	*sh;
	socklen_t		 slen;
	uint8_t			 key[9];

	if (imsg->fd != -1 || imsg_get_sa(imsg, &ss, &slen) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	if (c->slots != NULL && slot_find(c, imsg->hdr.peerid) != NULL)
		return -1;
	if (c->nslots >= c->max_sessions)
		return -1;
	if (p->conf.max_per_ip == 0 || addr_key(&ss, key) == 1) {
		slot_answer(c, imsg->hdr.peerid, 1);
		return 0;
	}
	if (c->slots == NULL && (c->slots = calloc(SLOTS_HASH_SIZE,
	    sizeof(*c->slots))) == NULL) {
		slot_answer(c, imsg->hdr.peerid, 0);
		return 0;
	}
	if ((ac = addrcount_get(key)) == NULL) {
		slot_answer(c, imsg->hdr.peerid, 0);
		return 0;
	}
	if (ac->count >= p->conf.max_per_ip ||
	    (sh = calloc(1, sizeof(*sh))) == NULL) {
		if (ac->count == 0) {
			ac->count = 1;
			addrcount_release(ac);
		}
		slot_answer(c, imsg->hdr.peerid, 0);
		return 0;
	}
	ac->count++;
	sh->session = imsg->hdr.peerid;
	sh->ac = ac;
	sh->next = c->slots[session_hash(sh->session)];
	c->slots[session_hash(sh->session)] = sh;
	c->nslots++;
	slot_answer(c, imsg->hdr.peerid, 1);
	return 0;
}

/* IMSG_SLOT_FREE: peerid session id; one that holds none is ignored. */
int
parent_slot_free(struct child *c, struct imsg *imsg)
{
	struct slot_held	**sp, *sh;

	if (imsg->fd != -1 || imsg->datalen != 0)
		return -1;
	if (c->slots == NULL || (sp = slot_find(c, imsg->hdr.peerid)) == NULL)
		return 0;
	sh = *sp;
	*sp = sh->next;
	addrcount_release(sh->ac);
	free(sh);
	c->nslots--;
	return 0;
}

/* The worker is gone: every slot it held is free again. */
void
parent_slots_release(struct child *c)
{
	struct slot_held	*sh, *next;
	size_t			 i;

	if (c->slots == NULL)
		return;
	for (i = 0; i < SLOTS_HASH_SIZE; i++)
		for (sh = c->slots[i]; sh != NULL; sh = next) {
			next = sh->next;
			addrcount_release(sh->ac);
			free(sh);
		}
	free(c->slots);
	c->slots = NULL;
	c->nslots = 0;
}
