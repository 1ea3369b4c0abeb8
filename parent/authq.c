/*
 * AUTH checks in the parent: queued per client address, taken
 * round-robin between addresses, and throttled per address across
 * sessions and workers (SPEC section 10).
 *
 * The delay comes before a check, never after its verdict: an address
 * with k recent failures waits k seconds (at most AUTH_DELAY_MAX_MS)
 * before its next check, and the verdict, right or wrong, is sent as
 * soon as the hash is done.  So a client learns nothing sooner by
 * hanging up, and its check and its failure (counted and logged here,
 * whether the session still exists or not) happen all the same.  After
 * AUTH_LOCK_FAILURES failures the address gets 454 4.7.0 without a
 * check for AUTH_LOCK_MS.
 */
#include <sys/socket.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "parent.h"

#define AUTH_QUEUE_MAX		256	/* checks waiting, all addresses */
#define AUTH_ADDR_QUEUE_MAX	16	/* checks waiting, one address */
#define AUTH_PER_ROUND		2	/* hashes per turn of the loop */
#define AUTH_ROUND_MS		10
#define AUTH_DELAY_STEP_MS	1000	/* wait per recent failure */
#define AUTH_DELAY_MAX_MS	10000
#define AUTH_LOCK_FAILURES	5
#define AUTH_LOCK_MS		(10 * 60 * 1000)
#define AUTH_FORGET_MS		(15 * 60 * 1000)	/* after the last failure */
#define AUTH_ADDRS_MAX		16384
#define AUTH_HASH_SIZE		1024
#define AUTH_KEY_MAX		(INET6_ADDRSTRLEN + 4)

struct auth_req {
	STAILQ_ENTRY(auth_req)	 entry;
	pid_t		 worker;
	uint32_t	 session;	/* the worker's handle */
	uint64_t	 session_id;	/* as logged */
	char		 user[AUTH_FIELD_MAX + 1];
	char		 password[AUTH_FIELD_MAX + 1];
	char		 client[INET6_ADDRSTRLEN];
};

/* What is known of one client address (IPv6: of its /64). */
struct auth_addr {
	struct auth_addr	*hnext;
	TAILQ_ENTRY(auth_addr)	 entry;		/* in authq.active */
	int			 active;
	char			 key[AUTH_KEY_MAX];
	unsigned int		 failures;
	uint64_t		 last_failure;
	uint64_t		 locked_until;
	uint64_t		 ready_at;	/* no check before */
	STAILQ_HEAD(, auth_req)	 reqs;		/* waiting, oldest first */
	unsigned int		 n;
};

static struct {
	struct parent		*p;
	struct auth_addr	*hash[AUTH_HASH_SIZE];
	TAILQ_HEAD(, auth_addr)	 active;	/* with checks waiting */
	unsigned int		 naddrs;
	unsigned int		 n;		/* checks waiting */
	struct ev_timer		 timer;
	int			 init;
	uint64_t		 refused_logged;
	unsigned int		 refused;	/* since the last log line */
} authq;

/* The throttling key of an address: IPv4 as is, IPv6 per /64. */
static int
authq_key(const char *ip, char *key, size_t len)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;
	char		 buf[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, ip, &a4) == 1)
		return strlcpy(key, ip, len) < len ? 0 : -1;
	if (inet_pton(AF_INET6, ip, &a6) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
		return inet_ntop(AF_INET, &a4, key, len) == NULL ? -1 : 0;
	}
	memset(&a6.s6_addr[8], 0, 8);
	if (inet_ntop(AF_INET6, &a6, buf, sizeof(buf)) == NULL)
		return -1;
	return (size_t)snprintf(key, len, "%s/64", buf) < len ? 0 : -1;
}

static uint32_t
authq_hash(const char *key)
{
	uint32_t	 h = 2166136261u;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % AUTH_HASH_SIZE;
}

/* Failures and locks run out with time. */
static void
authq_age(struct auth_addr *a, uint64_t now)
{
	if (a->locked_until != 0 && now >= a->locked_until)
		a->locked_until = 0;
	if (a->failures > 0 && a->locked_until == 0 &&
	    now >= a->last_failure + AUTH_FORGET_MS)
		a->failures = 0;
}

static int
authq_forgettable(struct auth_addr *a, uint64_t now)
{
	authq_age(a, now);
	return a->n == 0 && a->failures == 0 && a->locked_until == 0;
}

static void
authq_unlink(struct auth_addr *a)
{
	struct auth_addr	**ap;

	for (ap = &authq.hash[authq_hash(a->key)]; *ap != NULL;
	    ap = &(*ap)->hnext)
		if (*ap == a) {
			*ap = a->hnext;
			break;
		}
	authq.naddrs--;
	free(a);
}

/* The table is full: drop what is forgotten anyway. */
static void
authq_purge(uint64_t now)
{
	struct auth_addr	*a, *next;
	size_t			 i;

	for (i = 0; i < AUTH_HASH_SIZE; i++)
		for (a = authq.hash[i]; a != NULL; a = next) {
			next = a->hnext;
			if (authq_forgettable(a, now))
				authq_unlink(a);
		}
}

/* The record of key, made on first use; NULL if the table is full. */
static struct auth_addr *
authq_addr(const char *key, uint64_t now)
{
	struct auth_addr	*a;
	uint32_t		 h = authq_hash(key);

	for (a = authq.hash[h]; a != NULL; a = a->hnext)
		if (strcmp(a->key, key) == 0)
			return a;
	if (authq.naddrs >= AUTH_ADDRS_MAX)
		authq_purge(now);
	if (authq.naddrs >= AUTH_ADDRS_MAX ||
	    (a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	strlcpy(a->key, key, sizeof(a->key));
	STAILQ_INIT(&a->reqs);
	a->hnext = authq.hash[h];
	authq.hash[h] = a;
	authq.naddrs++;
	return a;
}

/* The verdict to the worker if it is still there; r is freed. */
static void
authq_send(struct auth_req *r, uint32_t verdict)
{
	struct parent	*p = authq.p;
	struct child	*c, *relay;
	struct imsg_out	 out;

	explicit_bzero(r->password, sizeof(r->password));
	if ((c = parent_child_by_pid(p, r->worker)) != NULL) {
		/* The relay learns it from us, not from the worker's word. */
		if (verdict == AUTH_RESULT_OK &&
		    (relay = p->slots[p->conf.workers].child) != NULL) {
			imsg_out_init(&out, IMSG_AUTH_GRANT, c->channel, -1);
			imsg_add_u32(&out, r->session);
			imsg_add_str(&out, r->user);
			parent_child_send(relay, &out);
		}
		imsg_out_init(&out, IMSG_AUTH_RESULT, r->session, -1);
		imsg_add_u32(&out, verdict);
		parent_child_send(c, &out);
	}
	free(r);
}

/* A checked password: logged here (the session may be gone), sent. */
static void
authq_answer(struct auth_req *r, int ok)
{
	log_info("event=auth client=%s user=%s result=%s session=" LOG_SID,
	    r->client, log_quser(r->user), ok ? "ok" : "failed",
	    r->session_id);
	if (ok)
		authq.p->auth_ok++;
	else
		authq.p->auth_failed++;
	authq_send(r, ok ? AUTH_RESULT_OK : AUTH_RESULT_FAILED);
}

/*
 * 454 without a check (locked out, or too many waiting), logged at
 * most once a second with a count: a flood must not flood the log.
 */
static void
authq_refuse(struct auth_req *r, const char *why)
{
	uint64_t	 now = ev_now();

	authq.refused++;
	if (now >= authq.refused_logged + 1000) {
		log_warnx("event=auth-refused client=%s reason=%s "
		    "refused=%u queued=%u", r->client, why, authq.refused,
		    authq.n);
		authq.refused_logged = now;
		authq.refused = 0;
	}
	authq_send(r, AUTH_RESULT_TEMPFAIL);
}

static struct auth_req *
authq_pop(struct auth_addr *a)
{
	struct auth_req	*r = STAILQ_FIRST(&a->reqs);

	STAILQ_REMOVE_HEAD(&a->reqs, entry);
	a->n--;
	authq.n--;
	return r;
}

/* One check of address a, whose turn it is. */
static void
authq_check(struct auth_addr *a, uint64_t now)
{
	struct auth_req	*r;
	unsigned int	 delay;
	int		 ok;

	authq_age(a, now);
	if (a->locked_until != 0) {
		/* Locked while these waited: none of them is checked. */
		while (!STAILQ_EMPTY(&a->reqs))
			authq_refuse(authq_pop(a), "locked");
		return;
	}
	r = authq_pop(a);
	ok = parent_auth_verify(r->user, r->password);
	if (!ok) {
		now = ev_now();
		a->failures++;
		a->last_failure = now;
		delay = a->failures * AUTH_DELAY_STEP_MS;
		a->ready_at = now + (delay < AUTH_DELAY_MAX_MS ? delay :
		    AUTH_DELAY_MAX_MS);
		if (a->failures >= AUTH_LOCK_FAILURES) {
			a->locked_until = now + AUTH_LOCK_MS;
			log_warnx("event=auth-lockout client=%s failures=%u "
			    "seconds=%u session=" LOG_SID, r->client,
			    a->failures, AUTH_LOCK_MS / 1000, r->session_id);
		}
	}
	authq_answer(r, ok);
}

/*
 * Arm the timer for the next address whose turn may come: at the
 * earliest in soonest ms, so that a queue of slow hashes leaves the
 * parent time for its children and signals.
 */
static void
authq_schedule(uint64_t now, uint64_t soonest)
{
	struct auth_addr	*a;
	uint64_t		 next = UINT64_MAX;

	TAILQ_FOREACH(a, &authq.active, entry)
		if (a->ready_at < next)
			next = a->ready_at;
	if (next == UINT64_MAX)
		return;
	ev_timer_add(&authq.timer, next > now + soonest ? next - now :
	    soonest);
}

/* A turn: a few checks, one address after the other. */
static void
authq_round(void *arg)
{
	struct auth_addr	*a;
	uint64_t		 now = ev_now();
	int			 i;

	(void)arg;
	for (i = 0; i < AUTH_PER_ROUND; i++) {
		TAILQ_FOREACH(a, &authq.active, entry)
			if (a->ready_at <= now)
				break;
		if (a == NULL)
			break;
		TAILQ_REMOVE(&authq.active, a, entry);
		a->active = 0;
		authq_check(a, now);
		if (a->n > 0) {
			/* Round-robin: to the back of the line. */
			TAILQ_INSERT_TAIL(&authq.active, a, entry);
			a->active = 1;
		} else if (authq_forgettable(a, now))
			authq_unlink(a);
		now = ev_now();
	}
	if (!ev_timer_pending(&authq.timer))
		authq_schedule(now, AUTH_ROUND_MS);
}

static void
authq_init(struct parent *p)
{
	if (authq.init)
		return;
	authq.p = p;
	TAILQ_INIT(&authq.active);
	ev_timer_set(&authq.timer, authq_round, NULL);
	authq.init = 1;
}

/* Queue r behind the checks of its address. */
static void
authq_enqueue(struct auth_req *r, const char *key)
{
	struct auth_addr	*a;
	uint64_t		 now = ev_now();

	if ((a = authq_addr(key, now)) == NULL ||
	    authq.n >= AUTH_QUEUE_MAX || a->n >= AUTH_ADDR_QUEUE_MAX) {
		authq_refuse(r, "busy");
		return;
	}
	authq_age(a, now);
	if (a->locked_until != 0) {
		authq_refuse(r, "locked");
		return;
	}
	STAILQ_INSERT_TAIL(&a->reqs, r, entry);
	a->n++;
	authq.n++;
	if (!a->active) {
		TAILQ_INSERT_TAIL(&authq.active, a, entry);
		a->active = 1;
	}
	if (!ev_timer_pending(&authq.timer))
		authq_schedule(now, 0);
	else if (a->ready_at <= now &&
	    authq.timer.when > now + AUTH_ROUND_MS) {
		/* Its turn is now, not when a delayed address is ready. */
		ev_timer_del(&authq.timer);
		ev_timer_add(&authq.timer, 0);
	}
}

/* IMSG_AUTH_REQUEST from a worker; -1 if malformed. */
int
parent_auth_request(struct parent *p, struct child *c, struct imsg *imsg)
{
	struct auth_req	*r;
	char		 key[AUTH_KEY_MAX];

	authq_init(p);
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("auth request");
	r->worker = c->pid;
	r->session = imsg->hdr.peerid;
	if (imsg->fd != -1 ||
	    imsg_get_u64(imsg, &r->session_id) == -1 ||
	    imsg_get_str(imsg, r->user, sizeof(r->user)) == -1 ||
	    imsg_get_str(imsg, r->password, sizeof(r->password)) == -1 ||
	    imsg_get_str(imsg, r->client, sizeof(r->client)) == -1 ||
	    imsg_get_end(imsg) == -1 ||
	    authq_key(r->client, key, sizeof(key)) == -1) {
		explicit_bzero(imsg->data, imsg->datalen);
		explicit_bzero(r, sizeof(*r));
		free(r);
		return -1;
	}
	explicit_bzero(imsg->data, imsg->datalen);
	authq_enqueue(r, key);
	return 0;
}
