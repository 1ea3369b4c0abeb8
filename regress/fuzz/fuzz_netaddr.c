/*
 * libFuzzer harness for the relay guard's parsers.  The input is
 * "NETWORK\nADDRESS[\nENTRY]": the network goes to netaddr_parse(), the
 * address to netaddr_match() (checked against a reference matcher
 * written here bit by bit), and the entry to policy_add_domain() and
 * policy_add_rcpt().  What the parsers accept must format and parse
 * back to the same thing.
 *
 * FUZZ_SRCS: lib/policy.c lib/rules.c lib/addr.c lib/imsg.c
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
bit(const uint8_t *a, int i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1;
}

/* The reference: ip's first prefix bits are na's. */
static int
ref_match(const struct netaddr *na, const char *ip)
{
	static const uint8_t	 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	uint8_t			 a[16];
	const uint8_t		*p = a;
	int			 family, i;

	if (inet_pton(AF_INET, ip, a) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, ip, a) == 1) {
		family = AF_INET6;
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			family = AF_INET;
			p = a + 12;
		}
	} else
		return 0;
	if (family != na->family)
		return 0;
	for (i = 0; i < na->prefix; i++)
		if (bit(p, i) != bit(na->addr, i))
			return 0;
	return 1;
}

static void
check_net(const char *s, const char *ip)
{
	struct netaddr	 na, nb;
	char		 buf[INET6_ADDRSTRLEN + 8], *slash;
	int		 max, i;

	if (netaddr_parse(s, &na) != 0)
		return;
	if (na.family != AF_INET && na.family != AF_INET6)
		abort();
	max = na.family == AF_INET ? 32 : 128;
	if (na.prefix > max)
		abort();
	/* Host bits are zero, and nothing past the address is set. */
	for (i = na.prefix; i < 128; i++)
		if (bit(na.addr, i))
			abort();
	/* It formats and parses back the same. */
	if (netaddr_format(&na, buf, sizeof(buf)) != 0 ||
	    netaddr_parse(buf, &nb) != 0 || memcmp(&na, &nb, sizeof(na)) != 0)
		abort();
	/* The network's own address lies in it; the match agrees. */
	if ((slash = strchr(buf, '/')) == NULL)
		abort();
	*slash = '\0';
	if (!netaddr_match(&na, buf))
		abort();
	if (netaddr_match(&na, ip) != ref_match(&na, ip))
		abort();
	/* Whoever the trusted networks trust, the policy trusts. */
	{
		struct policy	 p;

		policy_init(&p);
		if (policy_add_net(&p, &na) != 0)
			abort();
		if (policy_client_trusted(&p, ip) != ref_match(&na, ip))
			abort();
		policy_free(&p);
	}
}

static void
check_entry(const char *s)
{
	struct policy	 p, q;
	const char	*d;
	size_t		 i, n;

	policy_init(&p);
	policy_init(&q);
	if (policy_add_domain(&p, s) == 0) {
		d = p.domains[0];
		n = strlen(d);
		if (n == 0 || n > ADDR_DOMAIN_MAX || d[0] == '.' ||
		    d[n - 1] == '.' || strstr(d, "..") != NULL)
			abort();
		for (i = 0; i < n; i++)
			if (isupper((unsigned char)d[i]) ||
			    !(isalnum((unsigned char)d[i]) || d[i] == '-' ||
			    d[i] == '.' || (unsigned char)d[i] >= 0x80))
				abort();
		/* Normalized is a fixed point. */
		if (policy_add_domain(&q, d) != 0 ||
		    strcmp(q.domains[0], d) != 0)
			abort();
	}
	if (policy_add_rcpt(&p, s) == 0) {
		d = strchr(p.rcpts[0], '@');
		if (d == NULL || strchr(d + 1, '@') != NULL ||
		    (size_t)(d - p.rcpts[0]) > ADDR_LOCAL_MAX ||
		    strlen(p.rcpts[0]) > ADDR_PATH_MAX)
			abort();
		if (policy_add_rcpt(&q, p.rcpts[0]) != 0 ||
		    strcmp(q.rcpts[0], p.rcpts[0]) != 0)
			abort();
	}
	policy_free(&p);
	policy_free(&q);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s, *ip, *entry;

	if (size > 4096 || memchr(data, '\0', size) != NULL)
		return 0;
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	entry = NULL;
	if ((ip = strchr(s, '\n')) != NULL) {
		*ip++ = '\0';
		if ((entry = strchr(ip, '\n')) != NULL)
			*entry++ = '\0';
	} else
		ip = s + size;
	check_net(s, ip);
	check_entry(entry != NULL ? entry : s);
	free(s);
	return 0;
}
