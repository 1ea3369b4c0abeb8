/*
 * accept rules and sender-login (SPEC section 7.1): who may relay to
 * whom, and which envelope senders an authenticated user may use.  They
 * live in struct policy after the shorthands (relay-domains,
 * trusted-networks, relay-recipients), which are tried first.
 */
#ifndef SMTPD_RULES_H
#define SMTPD_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "imsg.h"

struct policy;
struct netaddr;

enum rule_from {
	RULE_FROM_ANY,
	RULE_FROM_LOCAL,	/* loopback */
	RULE_FROM_SRC,		/* nets */
	RULE_FROM_AUTH,		/* an authenticated session, of users if any */
};

enum rule_for {
	RULE_FOR_ANY,
	RULE_FOR_DOMAIN,	/* domains */
	RULE_FOR_RCPT,		/* rcpts: addresses and @domains */
};

enum rule_item {
	RULE_ITEM_NET,
	RULE_ITEM_USER,
	RULE_ITEM_SENDER,
	RULE_ITEM_DOMAIN,
	RULE_ITEM_RCPT,
};

struct strlist {
	char		**v;
	size_t		  n;
};

struct rule {
	uint32_t	 line;		/* of its accept, for the logs */
	uint32_t	 from;		/* RULE_FROM_* */
	uint32_t	 forwhat;	/* RULE_FOR_* */
	struct netaddr	*nets;
	size_t		 nnets;
	struct strlist	 users;
	struct strlist	 senders;	/* "local@domain" or "@domain" */
	struct strlist	 domains;
	struct strlist	 rcpts;		/* sorted by policy_finish() */
};

/* sender-login: a user and an address or @domain of theirs. */
struct login {
	char		*user;
	char		*entry;
};

int	 strlist_add(struct strlist *, const char *);
void	 strlist_free(struct strlist *);
int	 strlist_has(const struct strlist *, const char *);
int	 strlist_find_sorted(const struct strlist *, const char *);

struct rule *rule_new(struct policy *, uint32_t from, uint32_t forwhat,
	    uint32_t line);
int	 rule_add_item(struct rule *, enum rule_item, const void *);
void	 rules_free(struct policy *);
void	 rules_finish(struct policy *);
int	 rules_match(const struct policy *, const struct mailaddr *rcpt,
	    const char *ip, const char *user, const char *sender);
int	 entry_match(const struct strlist *, const char *addr);

int	 login_add(struct policy *, const char *user, const char *entry);
int	 login_check(const struct policy *, const char *user,
	    const char *sender);

int	 rules_send(struct imsgbuf *, const struct policy *);
int	 rules_recv(struct policy *, struct imsg *);

#endif
