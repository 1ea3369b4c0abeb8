/*
 * libFuzzer harness for the open-relay guard's verdict, lib/policy.c
 * (SPEC 7), against a reference written here from the SPEC's words.
 *
 * The input is lines.  Up to a line "--", the configuration: "D name"
 * (relay-domains), "R entry" (relay-recipients), "N network"
 * (trusted-networks); each is also checked here, and must be refused
 * exactly when the reference refuses it.  Then queries: "IP A <path>",
 * A 1 for an authenticated session, the path read by addr_parse_path()
 * as smtp.c reads RCPT TO.  The verdict of policy_check_rcpt() must be
 * the reference's: %, ! and quoted @ refused; then anything for an
 * authenticated or trusted client (loopback only when nothing is
 * configured); else the domain in relay-domains, or the domain or the
 * address in relay-recipients, domains without case and trailing dot.
 *
 * FUZZ_SRCS: lib/policy.c lib/addr.c lib/imsg.c
 * FUZZ_SRCS: lib/rules.c
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ENTRIES_MAX	32

struct ref {
	char	 domains[ENTRIES_MAX][ADDR_DOMAIN_MAX + 1];
	int	 ndomains;
	char	 locals[ENTRIES_MAX][ADDR_LOCAL_MAX + 1];	/* "": @domain */
	char	 rdomains[ENTRIES_MAX][ADDR_DOMAIN_MAX + 1];
	int	 nrcpts;
	struct netaddr nets[ENTRIES_MAX];
	int	 nnets;
};

/* A domain as the guard compares it; -1 if it is not one. */
static int
ref_domain(const char *in, size_t n, char *out)
{
	size_t	 i;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > ADDR_DOMAIN_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = in[i];

		if (c == '.') {
			if (i == 0 || i + 1 == n || in[i - 1] == '.')
				return -1;
		} else if (!isalnum(c) && c != '-' && c < 0x80)
			return -1;
		out[i] = c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
	}
	out[n] = '\0';
	return 0;
}

static void
config(struct policy *p, struct ref *r, const char *l)
{
	struct netaddr	 na;
	const char	*v = l + 2, *at;
	int		 ok, want;

	switch (l[0]) {
	case 'D':
		if (r->ndomains == ENTRIES_MAX)
			return;
		want = ref_domain(v, strlen(v), r->domains[r->ndomains]) == 0;
		ok = policy_add_domain(p, v) == 0;
		if (ok != want)
			abort();
		r->ndomains += ok;
		break;
	case 'R':
		if (r->nrcpts == ENTRIES_MAX)
			return;
		at = strchr(v, '@');
		/* One @, and no longer than an address can be. */
		want = at != NULL && strchr(at + 1, '@') == NULL &&
		    (size_t)(at - v) <= ADDR_LOCAL_MAX && ref_domain(at + 1,
		    strlen(at + 1), r->rdomains[r->nrcpts]) == 0 &&
		    (size_t)(at - v) + 1 + strlen(r->rdomains[r->nrcpts]) <=
		    ADDR_PATH_MAX;
		ok = policy_add_rcpt(p, v) == 0;
		if (ok != want)
			abort();
		if (ok) {
			memcpy(r->locals[r->nrcpts], v, at - v);
			r->locals[r->nrcpts][at - v] = '\0';
			r->nrcpts++;
		}
		break;
	case 'N':
		if (r->nnets == ENTRIES_MAX || netaddr_parse(v, &na) == -1)
			return;
		if (policy_add_net(p, &na) == -1)
			abort();
		r->nets[r->nnets++] = na;
		break;
	}
}

static int
ref_trusted(const struct ref *r, const char *ip)
{
	struct netaddr	 lo4, lo6;
	int		 i;

	if (r->ndomains == 0 && r->nrcpts == 0 && r->nnets == 0) {
		if (netaddr_parse("127.0.0.0/8", &lo4) == -1 ||
		    netaddr_parse("::1", &lo6) == -1)
			abort();
		return netaddr_match(&lo4, ip) || netaddr_match(&lo6, ip);
	}
	for (i = 0; i < r->nnets; i++)
		if (netaddr_match(&r->nets[i], ip))
			return 1;
	return 0;
}

static enum policy_verdict
ref_verdict(const struct ref *r, const struct mailaddr *a, const char *ip,
    int authenticated)
{
	char	 dom[ADDR_DOMAIN_MAX + 1];
	int	 i;

	if (a->null || (a->flags & (ADDR_F_PERCENT | ADDR_F_BANG |
	    ADDR_F_QUOTED_AT)))
		return POLICY_BAD_ROUTE;
	if (authenticated || ref_trusted(r, ip))
		return POLICY_ACCEPT;
	if (ref_domain(a->domain, strlen(a->domain), dom) == -1)
		return POLICY_DENY;
	for (i = 0; i < r->ndomains; i++)
		if (strcmp(r->domains[i], dom) == 0)
			return POLICY_ACCEPT;
	/* Local parts compare without case too, as lib/policy.c does. */
	for (i = 0; i < r->nrcpts; i++)
		if (strcmp(r->rdomains[i], dom) == 0 &&
		    (r->locals[i][0] == '\0' ||
		    strcasecmp(r->locals[i], a->local) == 0))
			return POLICY_ACCEPT;
	return POLICY_DENY;
}

static void
query(const struct policy *p, const struct ref *r, char *l)
{
	struct mailaddr	 a;
	char		*ip = l, *sp, *path;
	size_t		 used;

	if ((sp = strchr(l, ' ')) == NULL || sp[1] == '\0' || sp[2] != ' ')
		return;
	*sp = '\0';
	path = sp + 3;
	if (addr_parse_path(path, strlen(path), 1, 1, &a, &used) != ADDR_OK)
		return;
	if (policy_check_rcpt(p, &a, ip, sp[1] == '1') !=
	    ref_verdict(r, &a, ip, sp[1] == '1'))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data, *end = p + size, *nl;
	struct policy	 pol;
	struct ref	*r;
	char		*l;
	int		 queries = 0;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		abort();
	policy_init(&pol);
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		if (memchr(p, '\0', nl - p) != NULL ||
		    (l = strndup(p, nl - p)) == NULL)
			continue;
		if (strcmp(l, "--") == 0) {
			policy_finish(&pol);
			queries = 1;
		} else if (queries)
			query(&pol, r, l);
		else if (strlen(l) >= 2 && l[1] == ' ')
			config(&pol, r, l);
		free(l);
	}
	policy_free(&pol);
	free(r);
	return 0;
}
