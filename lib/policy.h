/*
 * The open-relay guard (SPEC section 7): who may relay to which
 * recipient.  Workers apply it at RCPT; the relay applies it again to
 * every committed envelope.
 */
#ifndef SMTPD_POLICY_H
#define SMTPD_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "imsg.h"
#include "rules.h"

struct netaddr {
	uint8_t		family;		/* AF_INET or AF_INET6 */
	uint8_t		prefix;
	uint8_t		addr[16];
};

struct policy {
	char		**domains;
	size_t		  ndomains;
	char		**rcpts;	/* "local@domain" or "@domain", sorted */
	size_t		  nrcpts;
	struct netaddr	 *nets;
	size_t		  nnets;
	struct rule	 *rules;	/* accept rules, after the above */
	size_t		  nrules;
	struct login	 *logins;	/* sender-login entries */
	size_t		  nlogins;
	int		  sender_login;	/* sender-login is configured */
};

enum policy_verdict {
	POLICY_ACCEPT,
	POLICY_DENY,		/* 550 5.7.1 Relay access denied */
	POLICY_BAD_ROUTE,	/* 550 5.7.1: %, ! or quoted @ */
};

int	netaddr_parse(const char *, struct netaddr *);
int	netaddr_match(const struct netaddr *, const char *ip);
int	netaddr_format(const struct netaddr *, char *, size_t);

void	policy_init(struct policy *);
void	policy_free(struct policy *);
int	policy_add_domain(struct policy *, const char *);
int	policy_add_rcpt(struct policy *, const char *);
int	policy_add_net(struct policy *, const struct netaddr *);
void	policy_finish(struct policy *);
int	policy_client_trusted(const struct policy *, const char *ip);
enum policy_verdict policy_check_rcpt(const struct policy *,
	    const struct mailaddr *, const char *ip, int authenticated);
enum policy_verdict policy_check(const struct policy *,
	    const struct mailaddr *, const char *ip, const char *user,
	    const char *sender);
int	policy_sender_ok(const struct policy *, const char *user,
	    const char *sender);
int	domain_normalize(const char *, char *, size_t);
int	policy_send(struct imsgbuf *, const struct policy *);
int	policy_recv(struct policy *, struct imsg *);
int	rcpt_entry_normalize(const char *, char *, size_t);

#endif
