/*
 * The imsg protocol as data: for each type, who may send it to whom,
 * with a descriptor or not, how long its payload may be and in which
 * phase.  proc_recv() checks every message against this table before
 * a handler sees it, so a handler trusts the framing and parses only
 * the payload (the model is OpenSSH's monitor table).
 */
#include <netinet/in.h>

#include <stddef.h>
#include <stdio.h>

#include "imsg.h"
#include "policy.h"
#include "proto.h"

#define PAYLOAD_MAX	(IMSG_MAX_SIZE - (uint32_t)sizeof(struct imsg_hdr))
#define STR_MIN		4		/* a string is a u32 length first */
#define SA_MIN		(4 + (uint32_t)sizeof(struct sockaddr_in))
#define SA_MAX		(4 + (uint32_t)sizeof(struct sockaddr_in6))

#define P	ROLE_PARENT
#define S	ROLE_SESSION
#define R	ROLE_RELAY
#define NO	IMSG_FD_NEVER
#define FD	IMSG_FD_ALWAYS
#define UP	PHASE_STARTUP
#define RUN	PHASE_RUNNING
#define ANY	PHASE_ANY

/* A payload of exactly n bytes; of min..max; parsed by the handler. */
#define EXACT(n)	(n), (n), 0
#define RANGE(a, b)	(a), (b), 1
#define PARSED(a)	(a), PAYLOAD_MAX, 1

#define ROW(t, from, to, fd, phase, size) \
	{ IMSG_##t, "IMSG_" #t, from, to, fd, phase, size }

/*
 * Sorted by type; a type with two pairs of roles has a row for each.
 * The relay's configuration, upstreams, routes and credentials come
 * again with a reload, between POLICY_BEGIN and POLICY_END only (its
 * handlers refuse them anywhere else).
 */
const struct imsg_rule imsg_rules[] = {
	ROW(CONF,		P, S, NO, UP,  PARSED(0)),
	ROW(CONF,		P, R, NO, ANY, PARSED(0)),
	ROW(CONF_LISTENER,	P, S, FD, UP,  RANGE(4, 4 + LISTEN_PROXY_MAX *
	    (uint32_t)sizeof(struct netaddr))),
	ROW(CONF_END,		P, S, NO, UP,  EXACT(0)),
	ROW(CONF_END,		P, R, NO, UP,  EXACT(0)),
	ROW(RELAY_CHANNEL,	P, S, FD, ANY, EXACT(0)),
	ROW(RELAY_CHANNEL,	P, R, FD, ANY, EXACT(0)),
	ROW(STOP,		P, S, NO, RUN, EXACT(0)),
	ROW(STOP,		P, R, NO, RUN, EXACT(0)),
	ROW(LOAD,		S, P, NO, RUN, EXACT(4)),
	ROW(MSG_OPEN,		S, R, NO, RUN, EXACT(8)),
	ROW(MSG_FD,		R, S, FD, RUN, EXACT(0)),
	ROW(MSG_COMMIT,		S, R, NO, RUN, PARSED(0)),
	ROW(MSG_ABORT,		S, R, NO, RUN, EXACT(0)),
	ROW(MSG_OK,		R, S, NO, RUN, PARSED(STR_MIN)),
	ROW(MSG_TEMPFAIL,	R, S, NO, RUN, PARSED(STR_MIN)),
	ROW(WORKER_BAD,		R, P, NO, RUN, EXACT(0)),
	ROW(CONF_DOMAIN,	P, S, NO, UP,  PARSED(STR_MIN)),
	ROW(CONF_DOMAIN,	P, R, NO, ANY, PARSED(STR_MIN)),
	ROW(CONF_RCPT,		P, S, NO, UP,  PARSED(STR_MIN)),
	ROW(CONF_RCPT,		P, R, NO, ANY, PARSED(STR_MIN)),
	ROW(CONF_NET,		P, S, NO, UP,  EXACT(sizeof(struct netaddr))),
	ROW(CONF_NET,		P, R, NO, ANY, EXACT(sizeof(struct netaddr))),
	ROW(POLICY_BEGIN,	P, R, NO, RUN, EXACT(0)),
	ROW(POLICY_END,		P, R, NO, RUN, EXACT(0)),
	ROW(UPSTREAM_ADDRS,	P, R, NO, ANY, PARSED(8)),
	ROW(RESOLVE,		R, P, NO, RUN, EXACT(4)),
	ROW(DELIVER_RUN,	R, P, FD, RUN, PARSED(4 * STR_MIN + 4)),
	ROW(DELIVER_DONE,	P, R, NO, RUN, PARSED(4 + STR_MIN)),
	ROW(CONF_UPSTREAM_AUTH,	P, R, NO, ANY, PARSED(4 + 2 * STR_MIN)),
	ROW(CONF_TLS_CERT,	P, S, NO, UP,  PARSED(1)),
	ROW(CONF_TLS_KEY,	P, S, NO, UP,  PARSED(1)),
	ROW(AUTH_REQUEST,	S, P, NO, RUN, PARSED(8 + 3 * STR_MIN)),
	ROW(AUTH_RESULT,	P, S, NO, RUN, EXACT(4)),
	ROW(AUTH_GRANT,		P, R, NO, RUN, PARSED(4 + STR_MIN)),
	ROW(LOG,		S, P, NO, RUN, PARSED(4 + STR_MIN)),
	ROW(LOG,		R, P, NO, RUN, PARSED(4 + STR_MIN)),
	ROW(QUEUE_SPACE,	R, S, NO, RUN, EXACT(4)),
	ROW(RETIRE,		P, S, NO, RUN, EXACT(0)),
	ROW(SLOT_ASK,		S, P, NO, RUN, RANGE(SA_MIN, SA_MAX)),
	ROW(SLOT_ANSWER,	P, S, NO, RUN, EXACT(4)),
	ROW(SLOT_FREE,		S, P, NO, RUN, EXACT(0)),
	ROW(MSG_FULL,		R, S, NO, RUN, EXACT(0)),
	ROW(PING,		P, S, NO, RUN, EXACT(4)),
	ROW(PING,		P, R, NO, RUN, EXACT(4)),
	ROW(PONG,		S, P, NO, RUN, EXACT(4)),
	ROW(PONG,		R, P, NO, RUN, EXACT(4)),
	ROW(CONF_RULE,		P, S, NO, UP,  EXACT(12)),
	ROW(CONF_RULE,		P, R, NO, ANY, EXACT(12)),
	ROW(CONF_RULE_ITEM,	P, S, NO, UP,  PARSED(4 + STR_MIN)),
	ROW(CONF_RULE_ITEM,	P, R, NO, ANY, PARSED(4 + STR_MIN)),
	ROW(CONF_LOGIN,		P, S, NO, UP,  PARSED(2 * STR_MIN)),
	ROW(CONF_LOGIN,		P, R, NO, ANY, PARSED(2 * STR_MIN)),
	ROW(CONF_UPSTREAM,	P, R, NO, ANY, PARSED(3 * STR_MIN + 6 * 4)),
	ROW(CONF_ROUTE,		P, R, NO, ANY, PARSED(4 + STR_MIN + 3 * 4)),
	ROW(CONF_CONTROL,	P, R, FD, ANY, EXACT(0)),
	ROW(CTL_PEER,		R, P, NO, RUN, EXACT(8)),
	ROW(CTL_PEER_INFO,	P, R, NO, RUN, PARSED(4 + STR_MIN)),
	ROW(CTL_REQUEST,	R, P, NO, RUN, EXACT(4)),
	ROW(CTL_RESULT,		P, R, NO, RUN, PARSED(4 + STR_MIN)),
	ROW(LOG_LEVEL,		P, S, NO, ANY, EXACT(4)),
	ROW(LOG_LEVEL,		P, R, NO, ANY, EXACT(4)),
	ROW(CONF_IDTAG,		P, S, NO, UP,  EXACT(8)),
	ROW(CONF_METRICS,	P, R, FD, ANY, EXACT(0)),
	ROW(STAT,		S, P, NO, RUN, EXACT(4)),
	ROW(MSG_KEPT,		R, S, NO, RUN, PARSED(STR_MIN)),
};

const size_t imsg_nrules = sizeof(imsg_rules) / sizeof(imsg_rules[0]);

/* The name of a type for logs and errors: "IMSG_LOG", or its number. */
const char *
imsg_name(uint32_t type)
{
	static char	 unknown[32];
	size_t		 i;

	for (i = 0; i < imsg_nrules; i++)
		if (imsg_rules[i].type == type)
			return imsg_rules[i].name;
	snprintf(unknown, sizeof(unknown), "imsg type %u", type);
	return unknown;
}

const char *
role_name(enum proc_role role)
{
	switch (role) {
	case ROLE_SESSION:
		return "session";
	case ROLE_RELAY:
		return "relay";
	default:
		return "parent";
	}
}

/* The row of type from sender to receiver, or NULL if there is none. */
const struct imsg_rule *
imsg_rule_find(uint32_t type, enum proc_role from, enum proc_role to)
{
	size_t	 i;

	for (i = 0; i < imsg_nrules; i++)
		if (imsg_rules[i].type == type && imsg_rules[i].from == from &&
		    imsg_rules[i].to == to)
			return &imsg_rules[i];
	return NULL;
}

/*
 * Whether to (in phase) may take imsg from a sender of role from: NULL
 * if so, else what is wrong with it.
 */
const char *
imsg_rule_check(const struct imsg *imsg, enum proc_role from,
    enum proc_role to, uint32_t phase)
{
	const struct imsg_rule	*r;
	uint32_t		 type = imsg->hdr.type;

	if (type <= IMSG_NONE || type >= IMSG_MAX)
		return "unknown type";
	if ((r = imsg_rule_find(type, from, to)) == NULL)
		return "not allowed from this sender";
	if ((r->phase & phase) == 0)
		return phase == PHASE_STARTUP ? "not allowed during start-up" :
		    "allowed during start-up only";
	if (r->fd == IMSG_FD_NEVER && imsg->fd != -1)
		return "descriptor where none belongs";
	if (r->fd == IMSG_FD_ALWAYS && imsg->fd == -1)
		return "descriptor missing";
	if (imsg->datalen < r->min)
		return "payload too short";
	if (imsg->datalen > r->max)
		return "payload too long";
	return NULL;
}
