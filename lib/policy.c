/*
 * The relay guard, after Postfix's reject_unauth_destination: a
 * recipient is relayed only for a listed domain, a listed address, a
 * trusted client or an authenticated session.  Addresses that smuggle a
 * second routing step (%, !, a quoted @) are never relayed, whoever
 * asks (RFC 5321 3.6.1 and 7.1).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "policy.h"
#include "proto.h"

/*
 * "10.0.0.0/8", "::1", "127.0.0.1/32"; host bits must be zero.  A
 * v4-mapped network ("::ffff:10.0.0.0/104") becomes its IPv4 form.
 */
int
netaddr_parse(const char *s, struct netaddr *na)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	char		 buf[INET6_ADDRSTRLEN + 8], *slash;
	const char	*errstr = NULL;
	int		 max, i, bits;

	memset(na, 0, sizeof(*na));
	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
		return -1;
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, na->addr) == 1) {
		na->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, na->addr) == 1) {
		na->family = AF_INET6;
		max = 128;
	} else
		return -1;
	na->prefix = max;
	if (slash != NULL) {
		na->prefix = strtonum(slash, 0, max, &errstr);
		if (errstr != NULL || !isdigit((unsigned char)*slash))
			return -1;
	}
	for (i = 0; i < max / 8; i++) {
		bits = na->prefix - i * 8;
		if (bits >= 8)
			continue;
		if (na->addr[i] & (bits <= 0 ? 0xff : 0xff >> bits))
			return -1;
	}
	/* A v4-mapped client is matched as IPv4: so is a v4-mapped net. */
	if (na->family == AF_INET6 && na->prefix >= 96 &&
	    memcmp(na->addr, v4mapped, sizeof(v4mapped)) == 0) {
		memmove(na->addr, na->addr + 12, 4);
		memset(na->addr + 4, 0, sizeof(na->addr) - 4);
		na->family = AF_INET;
		na->prefix -= 96;
	}
	return 0;
}

/* Whether ip (a literal) lies in na; v4-mapped v6 counts as v4. */
int
netaddr_match(const struct netaddr *na, const char *ip)
{
	uint8_t		 addr[16];
	const uint8_t	*a = addr;
	int		 family, i, bits;

	if (inet_pton(AF_INET, ip, addr) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, ip, addr) == 1) {
		family = AF_INET6;
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)addr)) {
			family = AF_INET;
			a = addr + 12;
		}
	} else
		return 0;
	if (family != na->family)
		return 0;
	for (i = 0, bits = na->prefix; bits > 0; i++, bits -= 8) {
		uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));

		if ((a[i] & mask) != (na->addr[i] & mask))
			return 0;
	}
	return 1;
}

int
netaddr_format(const struct netaddr *na, char *buf, size_t len)
{
	char	 ip[INET6_ADDRSTRLEN];
	int	 n;

	if (inet_ntop(na->family, na->addr, ip, sizeof(ip)) == NULL)
		return -1;
	n = snprintf(buf, len, "%s/%u", ip, na->prefix);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

void
policy_init(struct policy *p)
{
	memset(p, 0, sizeof(*p));
}

void
policy_free(struct policy *p)
{
	size_t	 i;

	for (i = 0; i < p->ndomains; i++)
		free(p->domains[i]);
	for (i = 0; i < p->nrcpts; i++)
		free(p->rcpts[i]);
	free(p->domains);
	free(p->rcpts);
	free(p->nets);
	rules_free(p);
	policy_init(p);
}

/* Lower-case, without a trailing dot; -1 if it is no domain name. */
int
domain_normalize(const char *in, char *out, size_t len)
{
	size_t	 i, n = strlen(in);

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n >= len || n > ADDR_DOMAIN_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = in[i];

		if (!(isalnum(c) || c == '-' || c == '.' || c >= 0x80))
			return -1;
		/* No empty label: ".example", "a..b", "example..". */
		if (c == '.' && (i == 0 || i == n - 1 || in[i - 1] == '.'))
			return -1;
		out[i] = tolower(c);
	}
	out[n] = '\0';
	return 0;
}

/*
 * A relay-recipients entry, "user@domain" or "@domain", with its domain
 * normalized; -1 if it is neither.
 */
int
rcpt_entry_normalize(const char *in, char *out, size_t len)
{
	const char	*at = strrchr(in, '@');
	size_t		 local;

	if (at == NULL || strchr(in, '@') != at)
		return -1;
	local = at - in;
	if (local >= len || local > ADDR_LOCAL_MAX)
		return -1;
	memcpy(out, in, local);
	out[local] = '@';
	return domain_normalize(at + 1, out + local + 1, len - local - 1);
}

static int
list_add(char ***list, size_t *n, const char *s)
{
	struct strlist	 l = { *list, *n };

	if (strlist_add(&l, s) == -1)
		return -1;
	*list = l.v;
	*n = l.n;
	return 0;
}

int
policy_add_domain(struct policy *p, const char *domain)
{
	char	 d[ADDR_DOMAIN_MAX + 1];

	if (domain_normalize(domain, d, sizeof(d)) == -1)
		return -1;
	return list_add(&p->domains, &p->ndomains, d);
}

int
policy_add_rcpt(struct policy *p, const char *entry)
{
	char	 e[ADDR_PATH_MAX + 1];

	if (rcpt_entry_normalize(entry, e, sizeof(e)) == -1)
		return -1;
	return list_add(&p->rcpts, &p->nrcpts, e);
}

int
policy_add_net(struct policy *p, const struct netaddr *na)
{
	struct netaddr	*nets;

	if ((nets = reallocarray(p->nets, p->nnets + 1, sizeof(*nets))) ==
	    NULL)
		return -1;
	nets[p->nnets++] = *na;
	p->nets = nets;
	return 0;
}

static int
strcmp_ptr(const void *a, const void *b)
{
	return strcasecmp(*(char * const *)a, *(char * const *)b);
}

/* Sort the recipient list for lookups; call after the last add. */
void
policy_finish(struct policy *p)
{
	if (p->nrcpts > 1)
		qsort(p->rcpts, p->nrcpts, sizeof(*p->rcpts), strcmp_ptr);
	rules_finish(p);
}

static int
policy_has_rcpt(const struct policy *p, const char *key)
{
	return p->nrcpts > 0 && bsearch(&key, p->rcpts, p->nrcpts,
	    sizeof(*p->rcpts), strcmp_ptr) != NULL;
}

static int
is_loopback_ip(const char *ip)
{
	struct netaddr	 lo4, lo6;

	netaddr_parse("127.0.0.0/8", &lo4);
	netaddr_parse("::1", &lo6);
	return netaddr_match(&lo4, ip) || netaddr_match(&lo6, ip);
}

/*
 * Whether the client may relay anywhere: in trusted-networks, or on
 * loopback when nothing at all is configured (never an open relay).
 */
int
policy_client_trusted(const struct policy *p, const char *ip)
{
	size_t	 i;

	if (p->ndomains == 0 && p->nrcpts == 0 && p->nnets == 0 &&
	    p->nrules == 0)
		return is_loopback_ip(ip);
	for (i = 0; i < p->nnets; i++)
		if (netaddr_match(&p->nets[i], ip))
			return 1;
	return 0;
}

/* The verdict for one recipient of a client at ip. */
enum policy_verdict
policy_check_rcpt(const struct policy *p, const struct mailaddr *a,
    const char *ip, int authenticated)
{
	return policy_check(p, a, ip, authenticated ? "" : NULL, NULL);
}

/*
 * The shorthands first (AUTH, trusted-networks, relay-domains,
 * relay-recipients), then the accept rules in order.  user is NULL for
 * a session that did not authenticate; sender NULL when unknown.
 */
enum policy_verdict
policy_check(const struct policy *p, const struct mailaddr *a,
    const char *ip, const char *user, const char *sender)
{
	char	 key[ADDR_PATH_MAX + 1], dom[ADDR_DOMAIN_MAX + 1];
	size_t	 i;

	if (a->null || (a->flags & (ADDR_F_PERCENT | ADDR_F_BANG |
	    ADDR_F_QUOTED_AT)))
		return POLICY_BAD_ROUTE;
	if (user != NULL || policy_client_trusted(p, ip))
		return POLICY_ACCEPT;
	if (domain_normalize(a->domain, dom, sizeof(dom)) == -1)
		return POLICY_DENY;
	for (i = 0; i < p->ndomains; i++)
		if (strcmp(p->domains[i], dom) == 0)
			return POLICY_ACCEPT;
	snprintf(key, sizeof(key), "@%s", dom);
	if (policy_has_rcpt(p, key))
		return POLICY_ACCEPT;
	if (snprintf(key, sizeof(key), "%s@%s", a->local, dom) <
	    (int)sizeof(key) && policy_has_rcpt(p, key))
		return POLICY_ACCEPT;
	if (rules_match(p, a, ip, user, sender))
		return POLICY_ACCEPT;
	return POLICY_DENY;
}

/*
 * sender-login: whether user may send as sender ("" for <>, always
 * allowed).  Without sender-login, or unauthenticated, anything goes.
 */
int
policy_sender_ok(const struct policy *p, const char *user,
    const char *sender)
{
	if (!p->sender_login || user == NULL || sender[0] == '\0')
		return 1;
	return login_check(p, user, sender);
}

/* Send the policy as IMSG_CONF_DOMAIN, _RCPT and _NET messages. */
int
policy_send(struct imsgbuf *ib, const struct policy *p)
{
	struct imsg_out	 out;
	size_t		 i;

	for (i = 0; i < p->ndomains; i++) {
		imsg_out_init(&out, IMSG_CONF_DOMAIN, 0, -1);
		imsg_add_str(&out, p->domains[i]);
		if (imsgbuf_queue(ib, &out) == -1)
			return -1;
	}
	for (i = 0; i < p->nrcpts; i++) {
		imsg_out_init(&out, IMSG_CONF_RCPT, 0, -1);
		imsg_add_str(&out, p->rcpts[i]);
		if (imsgbuf_queue(ib, &out) == -1)
			return -1;
	}
	for (i = 0; i < p->nnets; i++) {
		imsg_out_init(&out, IMSG_CONF_NET, 0, -1);
		imsg_add_data(&out, &p->nets[i], sizeof(p->nets[i]));
		if (imsgbuf_queue(ib, &out) == -1)
			return -1;
	}
	return rules_send(ib, p);
}

/* Take one IMSG_CONF_DOMAIN, _RCPT or _NET; -1 if it is malformed. */
int
policy_recv(struct policy *p, struct imsg *imsg)
{
	char		 s[ADDR_PATH_MAX + 1];
	struct netaddr	 na;

	switch (imsg->hdr.type) {
	case IMSG_CONF_DOMAIN:
		if (imsg_get_str(imsg, s, sizeof(s)) == -1 ||
		    imsg_get_end(imsg) == -1)
			return -1;
		return policy_add_domain(p, s);
	case IMSG_CONF_RCPT:
		if (imsg_get_str(imsg, s, sizeof(s)) == -1 ||
		    imsg_get_end(imsg) == -1)
			return -1;
		return policy_add_rcpt(p, s);
	case IMSG_CONF_NET:
		if (imsg_get_data(imsg, &na, sizeof(na)) == -1 ||
		    imsg_get_end(imsg) == -1 ||
		    (na.family != AF_INET && na.family != AF_INET6) ||
		    na.prefix > (na.family == AF_INET ? 32 : 128))
			return -1;
		return policy_add_net(p, &na);
	}
	return rules_recv(p, imsg);
}
