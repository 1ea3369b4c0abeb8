/*
 * PROXY protocol header parser, versions 1 and 2 (HAProxy's
 * proxy-protocol.txt).  Strict: a header is taken only when every
 * field is what the specification allows, every length agrees with
 * the bytes, and it fits its bound; anything else is an error, never a
 * guess (Exim's CVE-2023-42117 came from a lenient one).  The input is
 * whatever has arrived so far; nothing past the header is looked at.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <string.h>

#include "proxy.h"

static const uint8_t	 v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
static const char	 v1_sig[] = "PROXY ";

#define V2_CMD_LOCAL	0x0
#define V2_CMD_PROXY	0x1
#define V2_FAM_TCP4	0x11
#define V2_FAM_TCP6	0x21
#define V2_ADDR4_LEN	12
#define V2_ADDR6_LEN	36
#define V2_TLV_HEAD	3

/* 1 if the len bytes of buf could start a header of sig, else 0. */
static int
proxy_prefix(const uint8_t *buf, size_t len, const void *sig, size_t siglen)
{
	return memcmp(buf, sig, len < siglen ? len : siglen) == 0;
}

/* A port: 1 to 5 decimal digits, no leading zero, at most 65535. */
static int
proxy_v1_port(const char *s, uint16_t *port)
{
	unsigned long	 v = 0;
	size_t		 n;

	n = strlen(s);
	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* An address of family af and its port into ss. */
static int
proxy_v1_addr(int af, const char *ip, const char *port,
    struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	uint16_t		 p;

	memset(ss, 0, sizeof(*ss));
	if (proxy_v1_port(port, &p) == -1)
		return -1;
	if (af == AF_INET) {
		if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(p);
		*sslen = sizeof(*sin);
		return 0;
	}
	/* inet_pton takes no zone or brackets: nothing but the address. */
	if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) != 1)
		return -1;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(p);
	*sslen = sizeof(*sin6);
	return 0;
}

/*
 * Split line (NUL-terminated, without CRLF) at single spaces into at
 * most max words; -1 on an empty word (two spaces, a space at an end)
 * or too many.
 */
static int
proxy_v1_split(char *line, char **w, int max)
{
	int	 n = 0;
	char	*p = line;

	for (;;) {
		if (n == max)
			return -1;
		w[n++] = p;
		if ((p = strchr(p, ' ')) == NULL)
			break;
		*p++ = '\0';
	}
	for (int i = 0; i < n; i++)
		if (w[i][0] == '\0')
			return -1;
	return n;
}

/* Version 1, the text form: "PROXY TCP4|TCP6 src dst sport dport". */
static ssize_t
proxy_v1(const uint8_t *buf, size_t len, struct proxy_hdr *h,
    const char **errstr)
{
	char	 line[PROXY_V1_MAX + 1], *w[6];
	size_t	 i;
	int	 n, af;

	/* The CR may be at most at 105: 107 octets with CRLF. */
	for (i = 0; i < len && i < PROXY_V1_MAX - 1; i++) {
		if (buf[i] == '\r')
			break;
		if (buf[i] < 0x20 || buf[i] > 0x7e) {
			*errstr = "v1 header holds a byte that is not text";
			return -1;
		}
	}
	if (i == PROXY_V1_MAX - 1) {
		*errstr = "v1 header longer than 107 octets";
		return -1;
	}
	if (i == len || i + 1 == len)
		return 0;
	if (buf[i + 1] != '\n') {
		*errstr = "v1 header has a CR without LF";
		return -1;
	}
	memcpy(line, buf, i);
	line[i] = '\0';
	h->version = 1;
	/* UNKNOWN: the balancer could not tell; the rest is ignored. */
	if (strcmp(line, "PROXY UNKNOWN") == 0 ||
	    strncmp(line, "PROXY UNKNOWN ", 14) == 0) {
		h->local = 1;
		return (ssize_t)(i + 2);
	}
	if ((n = proxy_v1_split(line, w, 6)) != 6) {
		*errstr = "v1 header does not have six fields";
		return -1;
	}
	if (strcmp(w[1], "TCP4") == 0)
		af = AF_INET;
	else if (strcmp(w[1], "TCP6") == 0)
		af = AF_INET6;
	else {
		*errstr = "v1 header names an unknown protocol";
		return -1;
	}
	if (proxy_v1_addr(af, w[2], w[4], &h->src, &h->srclen) == -1 ||
	    proxy_v1_addr(af, w[3], w[5], &h->dst, &h->dstlen) == -1) {
		*errstr = "v1 header has an invalid address or port";
		return -1;
	}
	h->local = 0;
	return (ssize_t)(i + 2);
}

/* The TLVs after the addresses: each must fit, exactly to the end. */
static int
proxy_v2_tlvs(const uint8_t *p, size_t len)
{
	size_t	 vlen;

	while (len > 0) {
		if (len < V2_TLV_HEAD)
			return -1;
		vlen = (size_t)p[1] << 8 | p[2];
		if (vlen > len - V2_TLV_HEAD)
			return -1;
		p += V2_TLV_HEAD + vlen;
		len -= V2_TLV_HEAD + vlen;
	}
	return 0;
}

/* The addresses of a v2 PROXY command of family fam into h. */
static int
proxy_v2_addrs(uint8_t fam, const uint8_t *p, size_t len,
    struct proxy_hdr *h)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&h->src;
	struct sockaddr_in	*d4 = (struct sockaddr_in *)&h->dst;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&h->src;
	struct sockaddr_in6	*d6 = (struct sockaddr_in6 *)&h->dst;
	size_t			 alen;

	memset(&h->src, 0, sizeof(h->src));
	memset(&h->dst, 0, sizeof(h->dst));
	if (fam == V2_FAM_TCP4) {
		if ((alen = V2_ADDR4_LEN) > len)
			return -1;
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, p, 4);
		memcpy(&d4->sin_addr, p + 4, 4);
		memcpy(&s4->sin_port, p + 8, 2);
		memcpy(&d4->sin_port, p + 10, 2);
		h->srclen = h->dstlen = sizeof(*s4);
	} else if (fam == V2_FAM_TCP6) {
		if ((alen = V2_ADDR6_LEN) > len)
			return -1;
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, p, 16);
		memcpy(&d6->sin6_addr, p + 16, 16);
		memcpy(&s6->sin6_port, p + 32, 2);
		memcpy(&d6->sin6_port, p + 34, 2);
		h->srclen = h->dstlen = sizeof(*s6);
	} else
		return -1;
	return proxy_v2_tlvs(p + alen, len - alen);
}

/* Version 2, the binary form. */
static ssize_t
proxy_v2(const uint8_t *buf, size_t len, struct proxy_hdr *h,
    const char **errstr)
{
	size_t	 blen;
	uint8_t	 cmd;

	if (len < PROXY_V2_HEAD)
		return 0;
	if ((buf[12] >> 4) != 2) {
		*errstr = "v2 header of another version";
		return -1;
	}
	blen = (size_t)buf[14] << 8 | buf[15];
	if (blen > PROXY_V2_BODY_MAX) {
		*errstr = "v2 header longer than we take";
		return -1;
	}
	cmd = buf[12] & 0x0f;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY) {
		*errstr = "v2 header with an unknown command";
		return -1;
	}
	if (len < PROXY_V2_HEAD + blen)
		return 0;
	h->version = 2;
	if (cmd == V2_CMD_LOCAL) {
		/* The balancer's own connection: the body is not ours. */
		h->local = 1;
		return (ssize_t)(PROXY_V2_HEAD + blen);
	}
	if (buf[13] != V2_FAM_TCP4 && buf[13] != V2_FAM_TCP6) {
		*errstr = "v2 header for a protocol other than TCP";
		return -1;
	}
	if (proxy_v2_addrs(buf[13], buf + PROXY_V2_HEAD, blen, h) == -1) {
		*errstr = "v2 header whose lengths do not add up";
		return -1;
	}
	h->local = 0;
	return (ssize_t)(PROXY_V2_HEAD + blen);
}

ssize_t
proxy_parse(const uint8_t *buf, size_t len, struct proxy_hdr *h,
    const char **errstr)
{
	*errstr = NULL;
	if (len == 0)
		return 0;
	if (proxy_prefix(buf, len, v2_sig, sizeof(v2_sig))) {
		if (len < sizeof(v2_sig))
			return 0;
		return proxy_v2(buf, len, h, errstr);
	}
	if (proxy_prefix(buf, len, v1_sig, sizeof(v1_sig) - 1)) {
		if (len < sizeof(v1_sig) - 1)
			return 0;
		return proxy_v1(buf, len, h, errstr);
	}
	*errstr = "no PROXY protocol header";
	return -1;
}
