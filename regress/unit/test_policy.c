/*
 * The relay guard: network parsing and matching (host bits, prefixes,
 * v4-mapped v6), the verdict for each kind of client and recipient, the
 * routing tricks refused whoever asks, and the policy's trip from the
 * parent to a child over imsg.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include <bsd/string.h>

#include "addr.h"
#include "imsg.h"
#include "policy.h"
#include "routes.h"
#include "proto.h"

static void
parse_ok(const char *s, int family, int prefix, const char *formatted)
{
	struct netaddr	 na;
	char		 buf[INET6_ADDRSTRLEN + 8];

	if (netaddr_parse(s, &na) != 0)
		fail_msg("refused: %s", s);
	assert_int_equal(na.family, family);
	assert_int_equal(na.prefix, prefix);
	assert_int_equal(netaddr_format(&na, buf, sizeof(buf)), 0);
	assert_string_equal(buf, formatted);
}

static void
test_netaddr_parse(void **state)
{
	(void)state;
	parse_ok("10.0.0.0/8", AF_INET, 8, "10.0.0.0/8");
	parse_ok("127.0.0.1", AF_INET, 32, "127.0.0.1/32");
	parse_ok("127.0.0.1/32", AF_INET, 32, "127.0.0.1/32");
	parse_ok("0.0.0.0/0", AF_INET, 0, "0.0.0.0/0");
	parse_ok("192.168.1.128/25", AF_INET, 25, "192.168.1.128/25");
	parse_ok("128.0.0.0/1", AF_INET, 1, "128.0.0.0/1");
	parse_ok("::1", AF_INET6, 128, "::1/128");
	parse_ok("::/0", AF_INET6, 0, "::/0");
	parse_ok("2001:db8::/32", AF_INET6, 32, "2001:db8::/32");
	parse_ok("2001:DB8:0:0:8000::/65", AF_INET6, 65, "2001:db8:0:0:8000::/65");
	/* A v4-mapped network is the IPv4 network. */
	parse_ok("::ffff:10.0.0.0/104", AF_INET, 8, "10.0.0.0/8");
	parse_ok("::ffff:192.0.2.1", AF_INET, 32, "192.0.2.1/32");
	parse_ok("::ffff:0.0.0.0/96", AF_INET, 0, "0.0.0.0/0");
	parse_ok("::fffe:0:0/95", AF_INET6, 95, "::fffe:0:0/95");
	parse_ok("fe80::/10", AF_INET6, 10, "fe80::/10");
}

static void
test_netaddr_parse_bad(void **state)
{
	static const char	*bad[] = {
		"", "/", "/8", "10.0.0.0/", "localhost", "10.0.0", "10.0.0.0.0",
		"256.0.0.0", "10.0.0.0/33", "::/129", "::1/129",
		"10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0 /8",
		"10.0.0.0/8 ", " 10.0.0.0/8", "10.0.0.0/8x", "10.0.0.0/0x8",
		"10.0.0.0/8/8", "10.0.0.0/99999999999999999999",
		/* Host bits must be zero. */
		"10.0.0.1/8", "10.64.0.0/9", "192.168.1.129/25",
		"192.168.1.1/31", "0.0.0.1/0", "128.0.0.0/0", "::1/127",
		"2001:db8::1/32", "2001:db8:0:0:8000::/64", "fe80::1/10",
		"::ffff:10.0.0.1/104",
		/* Not literals. */
		"fe80::1%lo", "[::1]", "10.0.0.0/8\n", "1.2.3.4:25",
		"0x7f.0.0.1",
		"1111:2222:3333:4444:5555:6666:7777:8888:9999/128",
	};
	struct netaddr	 na;
	char		 longs[200];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (netaddr_parse(bad[i], &na) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
	memset(longs, '0', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	memcpy(longs, "10.0.0.0/", 9);
	assert_int_equal(netaddr_parse(longs, &na), -1);
}

static int
match(const char *net, const char *ip)
{
	struct netaddr	 na;

	if (netaddr_parse(net, &na) != 0)
		fail_msg("refused: %s", net);
	return netaddr_match(&na, ip);
}

static void
test_netaddr_match(void **state)
{
	(void)state;
	assert_true(match("10.0.0.0/8", "10.0.0.0"));
	assert_true(match("10.0.0.0/8", "10.255.255.255"));
	assert_false(match("10.0.0.0/8", "11.0.0.0"));
	assert_false(match("10.0.0.0/8", "9.255.255.255"));
	assert_true(match("192.168.1.128/25", "192.168.1.128"));
	assert_true(match("192.168.1.128/25", "192.168.1.255"));
	assert_false(match("192.168.1.128/25", "192.168.1.127"));
	assert_true(match("127.0.0.1", "127.0.0.1"));
	assert_false(match("127.0.0.1", "127.0.0.2"));
	assert_true(match("0.0.0.0/0", "203.0.113.9"));
	assert_false(match("0.0.0.0/0", "::1"));
	assert_true(match("128.0.0.0/1", "255.1.2.3"));
	assert_false(match("128.0.0.0/1", "127.1.2.3"));

	assert_true(match("::1", "::1"));
	assert_true(match("::1", "0:0:0:0:0:0:0:1"));
	assert_false(match("::1", "::2"));
	assert_true(match("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(match("2001:db8::/32", "2001:db9::1"));
	assert_true(match("2001:db8:0:0:8000::/65", "2001:db8::ffff:0:0:1"));
	assert_false(match("2001:db8:0:0:8000::/65", "2001:db8::7fff:0:0:1"));
	assert_true(match("::/0", "fe80::1"));
	assert_false(match("::/0", "10.0.0.1"));

	/* A v4-mapped client is its IPv4 address (smtpd.conf(5)). */
	assert_true(match("10.0.0.0/8", "::ffff:10.1.2.3"));
	assert_true(match("10.0.0.0/8", "::FFFF:10.1.2.3"));
	assert_false(match("10.0.0.0/8", "::ffff:11.1.2.3"));
	assert_true(match("127.0.0.1", "::ffff:127.0.0.1"));
	assert_false(match("::/0", "::ffff:10.1.2.3"));
	assert_true(match("::ffff:10.0.0.0/104", "10.1.2.3"));
	assert_true(match("::ffff:10.0.0.0/104", "::ffff:10.1.2.3"));
	assert_false(match("::ffff:10.0.0.0/104", "11.1.2.3"));
	assert_true(match("::ffff:192.0.2.1", "::ffff:192.0.2.1"));
	/* v4-compatible and NAT64 forms are not v4-mapped. */
	assert_false(match("10.0.0.0/8", "::10.1.2.3"));
	assert_false(match("10.0.0.0/8", "64:ff9b::10.1.2.3"));

	/* Only literals ever match. */
	assert_false(match("0.0.0.0/0", "localhost"));
	assert_false(match("0.0.0.0/0", ""));
	assert_false(match("0.0.0.0/0", "10.0.0.1/32"));
	assert_false(match("0.0.0.0/0", "10.0.0.1 "));
	assert_false(match("::/0", "fe80::1%lo"));
}

/* A mailbox as the worker's parser gives it. */
static void
mk(const char *s, struct mailaddr *a)
{
	char	 path[ADDR_PATH_MAX + 3];
	size_t	 used;
	int	 n;

	n = snprintf(path, sizeof(path), "<%s>", s);
	assert_true(n > 0 && (size_t)n < sizeof(path));
	if (addr_parse_path(path, (size_t)n, 1, 1, a, &used) != ADDR_OK ||
	    used != (size_t)n)
		fail_msg("parser refused %s", path);
}

static enum policy_verdict
check(const struct policy *p, const char *rcpt, const char *ip, int auth)
{
	struct mailaddr	 a;

	mk(rcpt, &a);
	return policy_check_rcpt(p, &a, ip, auth);
}

/* Nothing configured: loopback only, never an open relay. */
static void
test_empty_policy(void **state)
{
	struct policy	 p;

	(void)state;
	policy_init(&p);
	policy_finish(&p);
	assert_int_equal(check(&p, "u@example.org", "127.0.0.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@example.org", "127.255.0.9", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@example.org", "::1", 0), POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@example.org", "::ffff:127.0.0.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@example.org", "128.0.0.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@example.org", "10.0.0.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@example.org", "::2", 0), POLICY_DENY);
	assert_int_equal(check(&p, "u@example.org", "::ffff:10.0.0.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@example.org", "localhost", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@example.org", "", 0), POLICY_DENY);
	assert_true(policy_client_trusted(&p, "127.0.0.1"));
	assert_false(policy_client_trusted(&p, "192.0.2.1"));
	/* An authenticated session may relay. */
	assert_int_equal(check(&p, "u@example.org", "10.0.0.1", 1),
	    POLICY_ACCEPT);
	policy_free(&p);
}

static void
test_relay_domains(void **state)
{
	struct policy	 p;

	(void)state;
	policy_init(&p);
	assert_int_equal(policy_add_domain(&p, "Example.ORG."), 0);
	assert_int_equal(policy_add_domain(&p, "b\xc3\xbc" "cher.example"), 0);
	policy_finish(&p);

	assert_int_equal(check(&p, "u@example.org", "203.0.113.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@EXAMPLE.org", "203.0.113.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@example.org.", "203.0.113.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "\"john doe\"@Example.Org",
	    "203.0.113.1", 0), POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@b\xc3\xbc" "cher.example",
	    "203.0.113.1", 0), POLICY_ACCEPT);
	/* A subdomain is not its parent, nor a parent its subdomain. */
	assert_int_equal(check(&p, "u@sub.example.org", "203.0.113.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@org", "203.0.113.1", 0), POLICY_DENY);
	assert_int_equal(check(&p, "u@xexample.org", "203.0.113.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@example.org.evil", "203.0.113.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@example.or", "203.0.113.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@[192.0.2.1]", "203.0.113.1", 0),
	    POLICY_DENY);
	/* Something is configured: loopback is no longer trusted. */
	assert_int_equal(check(&p, "u@other.example", "127.0.0.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@other.example", "::1", 0), POLICY_DENY);
	assert_int_equal(check(&p, "u@example.org", "127.0.0.1", 0),
	    POLICY_ACCEPT);
	assert_false(policy_client_trusted(&p, "127.0.0.1"));
	policy_free(&p);
	assert_int_equal(p.ndomains, 0);
	assert_null(p.domains);
}

static void
test_bad_entries(void **state)
{
	static const char	*domains[] = {
		"", ".", "..", ".example.org", "example..org", "example.org..",
		"exa mple.org", "a@b.org", "_dmarc.org",
		"example.org/", "[192.0.2.1]", "exa\tmple", "ex\"ample",
	};
	static const char	*rcpts[] = {
		"", "nobody", "a@b@example.org", "a@", "@", "user@",
		"@exa mple.org", "u@.", "@@example.org", "@.example.org",
		"u@example..org",
	};
	struct policy		 p;
	char			 big[400];
	size_t			 i;

	(void)state;
	policy_init(&p);
	for (i = 0; i < sizeof(domains) / sizeof(domains[0]); i++)
		if (policy_add_domain(&p, domains[i]) != -1)
			fail_msg("domain accepted: \"%s\"", domains[i]);
	for (i = 0; i < sizeof(rcpts) / sizeof(rcpts[0]); i++)
		if (policy_add_rcpt(&p, rcpts[i]) != -1)
			fail_msg("rcpt accepted: \"%s\"", rcpts[i]);
	/* Lengths: a domain of 255 is fine, 256 is not; a local part 64. */
	memset(big, 'a', sizeof(big));
	big[255] = '\0';
	assert_int_equal(policy_add_domain(&p, big), 0);
	big[255] = '.';
	big[256] = '\0';
	assert_int_equal(policy_add_domain(&p, big), 0);
	big[255] = 'a';
	assert_int_equal(policy_add_domain(&p, big), -1);
	memset(big, 'a', sizeof(big));
	memcpy(big + 64, "@example.org", 13);
	assert_int_equal(policy_add_rcpt(&p, big), 0);
	memset(big, 'a', sizeof(big));
	memcpy(big + 65, "@example.org", 13);
	assert_int_equal(policy_add_rcpt(&p, big), -1);
	assert_int_equal(p.ndomains, 2);
	assert_int_equal(p.nrcpts, 1);
	policy_free(&p);
}

static void
test_relay_recipients(void **state)
{
	static const char	*more[] = {
		"zed@z.example", "amy@a.example", "Mid@M.example",
		"@Whole.Example.", "bob@listed.example",
	};
	struct policy		 p;
	size_t			 i;

	(void)state;
	policy_init(&p);
	for (i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		assert_int_equal(policy_add_rcpt(&p, more[i]), 0);
	policy_finish(&p);
	for (i = 1; i < p.nrcpts; i++)
		assert_true(strcasecmp(p.rcpts[i - 1], p.rcpts[i]) <= 0);

	assert_int_equal(check(&p, "bob@listed.example", "198.51.100.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "bob@LISTED.example.", "198.51.100.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "alice@listed.example", "198.51.100.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "bob@sub.listed.example", "198.51.100.1",
	    0), POLICY_DENY);
	assert_int_equal(check(&p, "bobby@listed.example", "198.51.100.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "mid@m.example", "198.51.100.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "zed@z.example", "198.51.100.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "amy@a.example", "198.51.100.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "amy@z.example", "198.51.100.1", 0),
	    POLICY_DENY);
	/* "@domain": any local part of that domain, not its subdomains. */
	assert_int_equal(check(&p, "anyone@whole.example", "198.51.100.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "\"x y\"@whole.example", "198.51.100.1",
	    0), POLICY_ACCEPT);
	assert_int_equal(check(&p, "anyone@sub.whole.example", "198.51.100.1",
	    0), POLICY_DENY);
	assert_int_equal(check(&p, "anyone@example", "198.51.100.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@other.example", "127.0.0.1", 0),
	    POLICY_DENY);
	policy_free(&p);
}

static void
test_trusted_networks(void **state)
{
	struct policy	 p;
	struct netaddr	 na;

	(void)state;
	policy_init(&p);
	assert_int_equal(netaddr_parse("192.0.2.0/24", &na), 0);
	assert_int_equal(policy_add_net(&p, &na), 0);
	assert_int_equal(netaddr_parse("2001:db8::/32", &na), 0);
	assert_int_equal(policy_add_net(&p, &na), 0);
	policy_finish(&p);

	assert_int_equal(check(&p, "u@anywhere.example", "192.0.2.7", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@anywhere.example", "::ffff:192.0.2.7",
	    0), POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@anywhere.example", "2001:db8::25", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@[203.0.113.1]", "192.0.2.7", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "u@anywhere.example", "192.0.3.7", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@anywhere.example", "2001:db9::25", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@anywhere.example", "127.0.0.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@anywhere.example", "::1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "u@anywhere.example", "203.0.113.1", 1),
	    POLICY_ACCEPT);
	assert_true(policy_client_trusted(&p, "192.0.2.255"));
	assert_false(policy_client_trusted(&p, "192.0.1.255"));
	policy_free(&p);
}

/* %, ! and a quoted @ are never relayed, whoever asks. */
static void
test_bad_route(void **state)
{
	static const char	*routes[] = {
		"u%other.example@example.org",
		"other.example!u@example.org",
		"\"u@other.example\"@example.org",
		"\"u%other\"@example.org",
		"\"a!b\"@example.org",
		"%@example.org",
		"!@example.org",
	};
	struct policy		 p, empty;
	struct netaddr		 na;
	struct mailaddr		 a;
	size_t			 i;

	(void)state;
	policy_init(&p);
	policy_init(&empty);
	assert_int_equal(policy_add_domain(&p, "example.org"), 0);
	assert_int_equal(netaddr_parse("0.0.0.0/0", &na), 0);
	assert_int_equal(policy_add_net(&p, &na), 0);
	assert_int_equal(netaddr_parse("::/0", &na), 0);
	assert_int_equal(policy_add_net(&p, &na), 0);
	policy_finish(&p);

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		assert_int_equal(check(&p, routes[i], "192.0.2.1", 0),
		    POLICY_BAD_ROUTE);
		assert_int_equal(check(&p, routes[i], "192.0.2.1", 1),
		    POLICY_BAD_ROUTE);
		assert_int_equal(check(&p, routes[i], "2001:db8::1", 1),
		    POLICY_BAD_ROUTE);
		assert_int_equal(check(&empty, routes[i], "127.0.0.1", 1),
		    POLICY_BAD_ROUTE);
		assert_int_equal(check(&empty, routes[i], "::1", 0),
		    POLICY_BAD_ROUTE);
	}
	/* A quoted local part without an @ is fine. */
	assert_int_equal(check(&p, "\"u.x\"@example.org", "192.0.2.1", 0),
	    POLICY_ACCEPT);
	/* The null path is no recipient. */
	mk("", &a);
	assert_true(a.null);
	assert_int_equal(policy_check_rcpt(&p, &a, "192.0.2.1", 1),
	    POLICY_BAD_ROUTE);
	/* Flags alone decide, however the address was made. */
	mk("u@example.org", &a);
	a.flags |= ADDR_F_BANG;
	assert_int_equal(policy_check_rcpt(&p, &a, "192.0.2.1", 1),
	    POLICY_BAD_ROUTE);
	policy_free(&p);
	policy_free(&empty);
}

/* Pump messages from w to r until w is empty; received into q. */
static void
pump(struct imsgbuf *w, struct imsgbuf *r, struct policy *q,
    unsigned int *count)
{
	struct imsg	 imsg;
	ssize_t		 n;
	int		 tries;

	for (tries = 0; tries < 100000; tries++) {
		assert_int_equal(imsgbuf_write(w), 0);
		n = imsgbuf_read(r);
		assert_true(n > 0 || (n == -1 && errno == EAGAIN));
		while ((n = imsgbuf_get(r, &imsg)) > 0) {
			assert_int_equal(policy_recv(q, &imsg), 0);
			imsg_free(&imsg);
			(*count)++;
		}
		assert_int_equal(n, 0);
		if (!imsgbuf_pending(w) && r->rlen == 0)
			return;
	}
	fail_msg("policy did not arrive");
}

static void
test_send_recv(void **state)
{
	struct imsgbuf	*w, *r;
	struct policy	 p, q;
	struct netaddr	 na;
	char		 name[64];
	unsigned int	 count = 0, i;
	int		 sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
	w = malloc(sizeof(*w));
	r = malloc(sizeof(*r));
	assert_non_null(w);
	assert_non_null(r);
	imsgbuf_init(w, sv[0]);
	imsgbuf_init(r, sv[1]);
	policy_init(&p);
	policy_init(&q);
	/* Enough to fill the socket more than once. */
	for (i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "d%u.Example.ORG", i);
		assert_int_equal(policy_add_domain(&p, name), 0);
		snprintf(name, sizeof(name), "User%u@r%u.example", i, i % 7);
		assert_int_equal(policy_add_rcpt(&p, name), 0);
	}
	assert_int_equal(policy_add_rcpt(&p, "@catchall.example"), 0);
	assert_int_equal(netaddr_parse("10.0.0.0/8", &na), 0);
	assert_int_equal(policy_add_net(&p, &na), 0);
	assert_int_equal(netaddr_parse("2001:db8::/32", &na), 0);
	assert_int_equal(policy_add_net(&p, &na), 0);
	policy_finish(&p);

	assert_int_equal(policy_send(w, &p), 0);
	pump(w, r, &q, &count);
	policy_finish(&q);
	assert_int_equal(count, 2000 + 2001 + 2);
	assert_int_equal(q.ndomains, p.ndomains);
	assert_int_equal(q.nrcpts, p.nrcpts);
	assert_int_equal(q.nnets, p.nnets);
	for (i = 0; i < p.ndomains; i++)
		assert_string_equal(q.domains[i], p.domains[i]);
	for (i = 0; i < p.nrcpts; i++)
		assert_string_equal(q.rcpts[i], p.rcpts[i]);
	assert_memory_equal(q.nets, p.nets, p.nnets * sizeof(*p.nets));

	/* The received policy decides the same. */
	assert_int_equal(check(&q, "u@D17.example.org", "192.0.2.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&q, "user5@r5.example", "192.0.2.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&q, "user5@r4.example", "192.0.2.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&q, "x@catchall.example", "192.0.2.1", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&q, "x@other.example", "10.9.8.7", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&q, "x@other.example", "192.0.2.1", 0),
	    POLICY_DENY);

	/* An empty policy sends nothing. */
	policy_free(&q);
	policy_init(&q);
	assert_int_equal(policy_send(w, &q), 0);
	assert_false(imsgbuf_pending(w));

	policy_free(&p);
	policy_free(&q);
	imsgbuf_clear(w);
	imsgbuf_clear(r);
	free(w);
	free(r);
	close(sv[0]);
	close(sv[1]);
}

static int
recv_raw(uint32_t type, const void *data, size_t len, struct policy *p)
{
	struct imsg	 imsg;
	int		 rc;

	memset(&imsg, 0, sizeof(imsg));
	imsg.hdr.type = type;
	imsg.fd = -1;
	imsg.datalen = len;
	if (len > 0) {
		imsg.data = malloc(len);
		assert_non_null(imsg.data);
		memcpy(imsg.data, data, len);
	}
	rc = policy_recv(p, &imsg);
	imsg_free(&imsg);
	return rc;
}

static int
recv_str(uint32_t type, const char *s, size_t extra, struct policy *p)
{
	uint8_t		 buf[600];
	uint32_t	 len = (uint32_t)strlen(s);

	assert_true(sizeof(len) + len + extra <= sizeof(buf));
	memcpy(buf, &len, sizeof(len));
	memcpy(buf + sizeof(len), s, len);
	memset(buf + sizeof(len) + len, 'x', extra);
	return recv_raw(type, buf, sizeof(len) + len + extra, p);
}

/* A child refuses what the parent could never have sent. */
static void
test_recv_bad(void **state)
{
	struct policy	 p;
	struct netaddr	 na;
	char		 big[400];
	uint32_t	 len;

	(void)state;
	policy_init(&p);
	assert_int_equal(recv_str(IMSG_CONF_DOMAIN, "example.org", 0, &p), 0);
	assert_int_equal(recv_str(IMSG_CONF_DOMAIN, "example.org", 1, &p), -1);
	assert_int_equal(recv_str(IMSG_CONF_DOMAIN, "exa mple.org", 0, &p),
	    -1);
	assert_int_equal(recv_str(IMSG_CONF_DOMAIN, "", 0, &p), -1);
	assert_int_equal(recv_str(IMSG_CONF_RCPT, "u@example.org", 0, &p), 0);
	assert_int_equal(recv_str(IMSG_CONF_RCPT, "u@example.org", 2, &p),
	    -1);
	assert_int_equal(recv_str(IMSG_CONF_RCPT, "nobody", 0, &p), -1);
	assert_int_equal(recv_str(IMSG_CONF_RCPT, "a@b@c", 0, &p), -1);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[10] = '@';
	assert_int_equal(recv_str(IMSG_CONF_RCPT, big, 0, &p), -1);
	assert_int_equal(recv_str(IMSG_CONF_DOMAIN, big + 11, 0, &p), -1);
	/* A string with a NUL inside, a length past the payload. */
	assert_int_equal(recv_raw(IMSG_CONF_DOMAIN,
	    "\x07\0\0\0exa\0ple", 11, &p), -1);
	len = 50;
	assert_int_equal(recv_raw(IMSG_CONF_DOMAIN, &len, sizeof(len), &p),
	    -1);
	assert_int_equal(recv_raw(IMSG_CONF_DOMAIN, NULL, 0, &p), -1);

	assert_int_equal(netaddr_parse("10.0.0.0/8", &na), 0);
	assert_int_equal(recv_raw(IMSG_CONF_NET, &na, sizeof(na), &p), 0);
	assert_int_equal(recv_raw(IMSG_CONF_NET, &na, sizeof(na) - 1, &p),
	    -1);
	memcpy(big, &na, sizeof(na));
	big[sizeof(na)] = 0;
	assert_int_equal(recv_raw(IMSG_CONF_NET, big, sizeof(na) + 1, &p),
	    -1);
	na.prefix = 33;
	assert_int_equal(recv_raw(IMSG_CONF_NET, &na, sizeof(na), &p), -1);
	na.prefix = 8;
	na.family = AF_UNIX;
	assert_int_equal(recv_raw(IMSG_CONF_NET, &na, sizeof(na), &p), -1);
	na.family = 0;
	assert_int_equal(recv_raw(IMSG_CONF_NET, &na, sizeof(na), &p), -1);
	assert_int_equal(netaddr_parse("::/0", &na), 0);
	na.prefix = 129;
	assert_int_equal(recv_raw(IMSG_CONF_NET, &na, sizeof(na), &p), -1);
	na.prefix = 128;
	assert_int_equal(recv_raw(IMSG_CONF_NET, &na, sizeof(na), &p), 0);

	assert_int_equal(recv_str(IMSG_CONF, "example.org", 0, &p), -1);
	assert_int_equal(recv_str(IMSG_POLICY_BEGIN, "example.org", 0, &p),
	    -1);
	assert_int_equal(recv_str(9999, "example.org", 0, &p), -1);

	assert_int_equal(p.ndomains, 1);
	assert_int_equal(p.nrcpts, 1);
	assert_int_equal(p.nnets, 2);
	policy_free(&p);
}

/* accept rules after the shorthands; with a rule loopback is not trusted. */
static void
test_rules(void **state)
{
	struct policy	 p;
	struct rule	*r;
	struct netaddr	 na;
	struct mailaddr	 a;

	(void)state;
	policy_init(&p);
	r = rule_new(&p, RULE_FROM_SRC, RULE_FOR_DOMAIN, 1);
	assert_non_null(r);
	assert_int_equal(netaddr_parse("10.0.0.0/8", &na), 0);
	assert_int_equal(rule_add_item(r, RULE_ITEM_NET, &na), 0);
	assert_int_equal(rule_add_item(r, RULE_ITEM_DOMAIN, "Example.ORG."),
	    0);
	r = rule_new(&p, RULE_FROM_AUTH, RULE_FOR_RCPT, 2);
	assert_int_equal(rule_add_item(r, RULE_ITEM_USER, "alice"), 0);
	assert_int_equal(rule_add_item(r, RULE_ITEM_RCPT, "@b.example"), 0);
	r = rule_new(&p, RULE_FROM_ANY, RULE_FOR_ANY, 3);
	assert_int_equal(rule_add_item(r, RULE_ITEM_SENDER, "@s.example"), 0);
	policy_finish(&p);
	assert_int_equal(check(&p, "x@example.org", "10.1.2.3", 0),
	    POLICY_ACCEPT);
	assert_int_equal(check(&p, "x@example.net", "10.1.2.3", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "x@example.org", "127.0.0.1", 0),
	    POLICY_DENY);
	assert_int_equal(check(&p, "x@sub.example.org", "10.1.2.3", 0),
	    POLICY_DENY);
	mk("y@B.example", &a);
	/* The AUTH shorthand accepts any authenticated session first. */
	assert_int_equal(policy_check(&p, &a, "192.0.2.1", "bob", NULL),
	    POLICY_ACCEPT);
	assert_int_equal(rules_match(&p, &a, "192.0.2.1", "bob", NULL), 0);
	assert_int_equal(rules_match(&p, &a, "192.0.2.1", "alice", NULL), 1);
	assert_int_equal(policy_check(&p, &a, "192.0.2.1", NULL,
	    "u@s.example"), POLICY_ACCEPT);
	assert_int_equal(policy_check(&p, &a, "192.0.2.1", NULL,
	    "u@t.example"), POLICY_DENY);
	assert_int_equal(policy_check(&p, &a, "192.0.2.1", NULL, NULL),
	    POLICY_DENY);
	policy_free(&p);
}

/* sender-login: only the user's entries, <> always, no line no sender. */
static void
test_sender_login(void **state)
{
	struct policy	 p;

	(void)state;
	policy_init(&p);
	assert_int_equal(policy_sender_ok(&p, "bob", "x@y.example"), 1);
	assert_int_equal(login_add(&p, "alice", "alice@example.com"), 0);
	assert_int_equal(login_add(&p, "alice", "@alice.example"), 0);
	assert_int_equal(login_add(&p, "alice", "not an address"), -1);
	assert_int_equal(policy_sender_ok(&p, "alice", "alice@Example.COM"),
	    1);
	assert_int_equal(policy_sender_ok(&p, "alice", "z@alice.example"), 1);
	assert_int_equal(policy_sender_ok(&p, "alice", "bob@example.com"), 0);
	assert_int_equal(policy_sender_ok(&p, "bob", "bob@example.com"), 0);
	assert_int_equal(policy_sender_ok(&p, "bob", ""), 1);
	assert_int_equal(policy_sender_ok(&p, NULL, "bob@example.com"), 1);
	policy_free(&p);
}

/* Rules and logins survive the trip to a child. */
static void
test_rules_send_recv(void **state)
{
	struct imsgbuf	*w, *r;
	struct policy	 p, q;
	struct rule	*ru;
	struct netaddr	 na;
	struct mailaddr	 a;
	unsigned int	 count = 0;
	int		 sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
	w = malloc(sizeof(*w));
	r = malloc(sizeof(*r));
	assert_non_null(w);
	assert_non_null(r);
	imsgbuf_init(w, sv[0]);
	imsgbuf_init(r, sv[1]);
	policy_init(&p);
	policy_init(&q);
	ru = rule_new(&p, RULE_FROM_SRC, RULE_FOR_RCPT, 7);
	assert_int_equal(netaddr_parse("2001:db8::/32", &na), 0);
	assert_int_equal(rule_add_item(ru, RULE_ITEM_NET, &na), 0);
	assert_int_equal(rule_add_item(ru, RULE_ITEM_RCPT, "u@r.example"), 0);
	assert_int_equal(rule_add_item(ru, RULE_ITEM_SENDER, "@s.example"), 0);
	assert_int_equal(login_add(&p, "alice", "@alice.example"), 0);
	policy_finish(&p);
	assert_int_equal(policy_send(w, &p), 0);
	pump(w, r, &q, &count);
	policy_finish(&q);
	assert_int_equal(q.nrules, 1);
	assert_int_equal(q.rules[0].line, 7);
	assert_int_equal(q.nlogins, 1);
	mk("u@R.example", &a);
	assert_int_equal(policy_check(&q, &a, "2001:db8::5", NULL,
	    "x@s.example"), POLICY_ACCEPT);
	assert_int_equal(policy_check(&q, &a, "2001:db9::5", NULL,
	    "x@s.example"), POLICY_DENY);
	assert_int_equal(policy_sender_ok(&q, "alice", "a@alice.example"), 1);
	policy_free(&p);
	policy_free(&q);
	imsgbuf_clear(w);
	imsgbuf_clear(r);
	close(sv[0]);
	close(sv[1]);
	free(w);
	free(r);
}

/* Routes: first match by sender, user, domain; <> the default. */
static void
test_routes(void **state)
{
	struct routes		 rt;
	struct route_conf	*r;
	char			 out[ADDR_PATH_MAX + 1];

	(void)state;
	routes_init(&rt);
	assert_non_null(routes_add_upstream(&rt, "a"));
	assert_non_null(routes_add_upstream(&rt, "b"));
	assert_null(routes_add_upstream(&rt, "a"));
	r = routes_add_route(&rt);
	assert_int_equal(strlist_add(&r->senders, "@a.example"), 0);
	r->via[r->nvia++] = 0;
	strlcpy(r->rewrite, "@relay.example", sizeof(r->rewrite));
	r = routes_add_route(&rt);
	assert_int_equal(strlist_add(&r->users, "bob"), 0);
	assert_int_equal(strlist_add(&r->domains, "d.example"), 0);
	r->via[r->nvia++] = 1;
	r = routes_add_route(&rt);
	r->via[r->nvia++] = 1;
	assert_int_equal(routes_finish(&rt, "x", stderr), 0);
	assert_int_equal(routes_match(&rt, "u@A.example", NULL, "r@x"), 0);
	assert_int_equal(routes_match(&rt, "", NULL, "r@x"), 2);
	assert_int_equal(routes_match(&rt, "u@c.example", "bob",
	    "r@D.example."), 1);
	assert_int_equal(routes_match(&rt, "u@c.example", "bob", "r@e.example"),
	    2);
	assert_int_equal(routes_match(&rt, "u@c.example", NULL, "r@d.example"),
	    2);
	routes_rewrite(&rt.routes[0], "u@a.example", out, sizeof(out));
	assert_string_equal(out, "u@relay.example");
	routes_rewrite(&rt.routes[0], "", out, sizeof(out));
	assert_string_equal(out, "");
	strlcpy(rt.routes[0].rewrite, "fixed@relay.example",
	    sizeof(rt.routes[0].rewrite));
	routes_rewrite(&rt.routes[0], "u@a.example", out, sizeof(out));
	assert_string_equal(out, "fixed@relay.example");
	routes_free(&rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_netaddr_parse),
		cmocka_unit_test(test_netaddr_parse_bad),
		cmocka_unit_test(test_netaddr_match),
		cmocka_unit_test(test_empty_policy),
		cmocka_unit_test(test_relay_domains),
		cmocka_unit_test(test_bad_entries),
		cmocka_unit_test(test_relay_recipients),
		cmocka_unit_test(test_trusted_networks),
		cmocka_unit_test(test_bad_route),
		cmocka_unit_test(test_send_recv),
		cmocka_unit_test(test_recv_bad),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_sender_login),
		cmocka_unit_test(test_rules_send_recv),
		cmocka_unit_test(test_routes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
