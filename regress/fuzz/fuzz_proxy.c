/*
 * libFuzzer harness for the PROXY protocol parser.  Besides not
 * crashing, a verdict must not depend on how the bytes arrive: a header
 * found in the whole input is found, with the same length, in every
 * longer cut and asked more of in every shorter one; bytes refused stay
 * refused however many follow.  A v1 header taken must print back to a
 * v1 header that parses to the same addresses.
 *
 * FUZZ_SRCS: lib/proxy.c
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* "ip port" of ss into out. */
static void
fmt(const struct sockaddr_storage *ss, char *ip, size_t iplen,
    unsigned int *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		if (inet_ntop(AF_INET, &s->sin_addr, ip, iplen) == NULL)
			abort();
		*port = ntohs(s->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		if (inet_ntop(AF_INET6, &s->sin6_addr, ip, iplen) == NULL)
			abort();
		*port = ntohs(s->sin6_port);
	} else
		abort();
}

/* Print h as v1 and parse it again: the same addresses. */
static void
roundtrip(const struct proxy_hdr *h)
{
	struct proxy_hdr	 h2;
	const char		*err;
	char			 line[256], s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	unsigned int		 sp, dp;
	int			 n;

	if (h->src.ss_family != h->dst.ss_family)
		abort();
	fmt(&h->src, s, sizeof(s), &sp);
	fmt(&h->dst, d, sizeof(d), &dp);
	n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
	    h->src.ss_family == AF_INET ? "TCP4" : "TCP6", s, d, sp, dp);
	if (n <= 0 || (size_t)n >= sizeof(line))
		abort();
	if (proxy_parse((uint8_t *)line, (size_t)n, &h2, &err) != n ||
	    h2.local || h2.srclen != h->srclen ||
	    memcmp(&h2.src, &h->src, h->srclen) != 0 ||
	    memcmp(&h2.dst, &h->dst, h->dstlen) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr	 h, h2;
	const char		*err;
	ssize_t			 r, r2;
	size_t			 cut;

	if (size > PROXY_HDR_MAX + 64)
		return 0;
	r = proxy_parse(data, size, &h, &err);
	if (r < -1 || r > (ssize_t)size || r > PROXY_HDR_MAX)
		abort();
	if ((r == -1) != (err != NULL))
		abort();
	if (r > 0) {
		for (cut = 0; cut < (size_t)r; cut++)
			if (proxy_parse(data, cut, &h2, &err) != 0)
				abort();
		if (!h.local)
			roundtrip(&h);
		return 0;
	}
	/* Refused or incomplete: every shorter cut is not a header. */
	for (cut = size > 64 ? size - 64 : 0; cut < size; cut++) {
		r2 = proxy_parse(data, cut, &h2, &err);
		if (r2 > 0 || (r == 0 && r2 == -1))
			abort();
	}
	return 0;
}
