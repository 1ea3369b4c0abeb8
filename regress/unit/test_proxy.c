/*
 * The PROXY protocol parser: each valid form of versions 1 and 2 gives
 * the client's address whatever way it is cut, and every malformed
 * shape is refused, never half taken.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy.h"

static const uint8_t	 sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* Every proper prefix of buf[0..len) must ask for more. */
static void
prefixes_need_more(const uint8_t *buf, size_t len)
{
	struct proxy_hdr	 h;
	const char		*err;
	size_t			 i;

	for (i = 0; i < len; i++)
		assert_int_equal(proxy_parse(buf, i, &h, &err), 0);
}

/* The printable form of the address and port in ss. */
static void
fmt(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char	 ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(out, outlen, "%s:%u", ip, ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(out, outlen, "[%s]:%u", ip, ntohs(s->sin6_port));
	}
}

/* text must parse, as a whole and cut anywhere, to src and dst. */
static void
v1_ok(const char *text, const char *src, const char *dst)
{
	struct proxy_hdr	 h;
	const char		*err;
	uint8_t			 buf[256];
	size_t			 len = strlen(text);
	char			 s[64], d[64];

	memcpy(buf, text, len);
	memcpy(buf + len, "EHLO x\r\n", 8);
	prefixes_need_more(buf, len);
	assert_int_equal(proxy_parse(buf, len + 8, &h, &err), (ssize_t)len);
	assert_int_equal(h.version, 1);
	if (src == NULL) {
		assert_int_equal(h.local, 1);
		return;
	}
	assert_int_equal(h.local, 0);
	fmt(&h.src, s, sizeof(s));
	fmt(&h.dst, d, sizeof(d));
	assert_string_equal(s, src);
	assert_string_equal(d, dst);
}

/* text must be refused, and no longer prefix of it accepted. */
static void
v1_bad(const char *text)
{
	struct proxy_hdr	 h;
	const char		*err = NULL;
	size_t			 len = strlen(text);

	assert_int_equal(proxy_parse((const uint8_t *)text, len, &h, &err),
	    -1);
	assert_non_null(err);
}

static void
test_v1_valid(void **state)
{
	(void)state;
	v1_ok("PROXY TCP4 10.1.2.3 192.0.2.1 56324 25\r\n",
	    "10.1.2.3:56324", "192.0.2.1:25");
	v1_ok("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
	    "0.0.0.0:0", "255.255.255.255:65535");
	v1_ok("PROXY TCP6 2001:db8::1 2001:db8::2 1 587\r\n",
	    "[2001:db8::1]:1", "[2001:db8::2]:587");
	v1_ok("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
	v1_ok("PROXY UNKNOWN\r\n", NULL, NULL);
	v1_ok("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", NULL, NULL);
}

static void
test_v1_malformed(void **state)
{
	static const char	*bad[] = {
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
		"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
		"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
		"PROXY TCP6 [::1] ::1 1 2\r\n",
		"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 080 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 123456 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 +1 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
		"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xc3\xa9\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"EHLO client.example\r\n",
		"GET / HTTP/1.0\r\n",
	};
	struct proxy_hdr	 h;
	const char		*err;
	char			 longer[200];
	uint8_t			 nul[] = "PROXY TCP4 1.2.3.4\0005.6.7.8 1 2\r\n";
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		v1_bad(bad[i]);
	assert_int_equal(proxy_parse(nul, sizeof(nul) - 1, &h, &err), -1);
	/* 107 octets with CRLF is the most; 108 is refused unseen. */
	memset(longer, 'x', sizeof(longer));
	memcpy(longer, "PROXY UNKNOWN ", 14);
	memcpy(longer + 105, "\r\n", 2);
	assert_int_equal(proxy_parse((uint8_t *)longer, 107, &h, &err), 107);
	memcpy(longer + 105, "x\r\n", 3);
	assert_int_equal(proxy_parse((uint8_t *)longer, 108, &h, &err), -1);
	assert_int_equal(proxy_parse((uint8_t *)longer, 106, &h, &err), -1);
	assert_int_equal(proxy_parse((uint8_t *)longer, 105, &h, &err), 0);
}

/* A v2 header: command, family, then body bytes. */
static size_t
v2(uint8_t *out, uint8_t vercmd, uint8_t fam, const uint8_t *body,
    size_t blen)
{
	memcpy(out, sig, 12);
	out[12] = vercmd;
	out[13] = fam;
	out[14] = (uint8_t)(blen >> 8);
	out[15] = (uint8_t)blen;
	memcpy(out + 16, body, blen);
	return 16 + blen;
}

static const uint8_t	 body4[12] = {
	10, 9, 8, 7, 192, 0, 2, 1, 0xdc, 0x04, 0x00, 0x19
};

static void
test_v2_valid(void **state)
{
	struct proxy_hdr	 h;
	const char		*err;
	uint8_t			 buf[2048], body[64];
	size_t			 n;
	char			 s[64], d[64];

	(void)state;
	n = v2(buf, 0x21, 0x11, body4, sizeof(body4));
	prefixes_need_more(buf, n);
	memcpy(buf + n, "EHLO", 4);
	assert_int_equal(proxy_parse(buf, n + 4, &h, &err), (ssize_t)n);
	assert_int_equal(h.version, 2);
	assert_int_equal(h.local, 0);
	fmt(&h.src, s, sizeof(s));
	fmt(&h.dst, d, sizeof(d));
	assert_string_equal(s, "10.9.8.7:56324");
	assert_string_equal(d, "192.0.2.1:25");

	/* TLVs are skipped: a NOOP and a unique id. */
	memcpy(body, body4, 12);
	memcpy(body + 12, "\x04\x00\x02zz\x05\x00\x03" "abc", 11);
	n = v2(buf, 0x21, 0x11, body, 23);
	prefixes_need_more(buf, n);
	assert_int_equal(proxy_parse(buf, n, &h, &err), (ssize_t)n);
	fmt(&h.src, s, sizeof(s));
	assert_string_equal(s, "10.9.8.7:56324");

	memset(body, 0, 36);
	body[15] = 1;
	body[31] = 2;
	body[32] = 0x12;
	body[33] = 0x34;
	body[35] = 25;
	n = v2(buf, 0x21, 0x21, body, 36);
	prefixes_need_more(buf, n);
	assert_int_equal(proxy_parse(buf, n, &h, &err), (ssize_t)n);
	fmt(&h.src, s, sizeof(s));
	fmt(&h.dst, d, sizeof(d));
	assert_string_equal(s, "[::1]:4660");
	assert_string_equal(d, "[::2]:25");

	/* LOCAL: a health check of the balancer; its body is not read. */
	n = v2(buf, 0x20, 0x00, body, 0);
	assert_int_equal(proxy_parse(buf, n, &h, &err), 16);
	assert_int_equal(h.local, 1);
	n = v2(buf, 0x20, 0x11, body4, 5);
	assert_int_equal(proxy_parse(buf, n, &h, &err), 21);
	assert_int_equal(h.local, 1);

	/* The most we take, in TLVs. */
	memcpy(body, body4, 12);
	memset(buf, 0, sizeof(buf));
	n = v2(buf, 0x21, 0x11, body4, 12);
	buf[14] = PROXY_V2_BODY_MAX >> 8;
	buf[15] = PROXY_V2_BODY_MAX & 0xff;
	buf[28] = 0x04;
	buf[29] = (PROXY_V2_BODY_MAX - 15) >> 8;
	buf[30] = (PROXY_V2_BODY_MAX - 15) & 0xff;
	assert_int_equal(proxy_parse(buf, PROXY_HDR_MAX, &h, &err),
	    PROXY_HDR_MAX);
}

static void
v2_bad(uint8_t vercmd, uint8_t fam, const uint8_t *body, size_t blen)
{
	struct proxy_hdr	 h;
	const char		*err = NULL;
	uint8_t			 buf[2048];
	size_t			 n;

	n = v2(buf, vercmd, fam, body, blen);
	assert_int_equal(proxy_parse(buf, n, &h, &err), -1);
	assert_non_null(err);
}

static void
test_v2_malformed(void **state)
{
	struct proxy_hdr	 h;
	const char		*err;
	uint8_t			 body[64], buf[2048];

	(void)state;
	v2_bad(0x11, 0x11, body4, 12);		/* version 1 in binary */
	v2_bad(0x31, 0x11, body4, 12);		/* version 3 */
	v2_bad(0x22, 0x11, body4, 12);		/* command 2 */
	v2_bad(0x2f, 0x11, body4, 12);
	v2_bad(0x21, 0x12, body4, 12);		/* UDP */
	v2_bad(0x21, 0x31, body4, 12);		/* UNIX stream */
	v2_bad(0x21, 0x00, body4, 12);		/* UNSPEC with PROXY */
	v2_bad(0x21, 0x10, body4, 12);
	v2_bad(0x21, 0x41, body4, 12);
	v2_bad(0x21, 0x11, body4, 11);		/* addresses cut short */
	v2_bad(0x21, 0x21, body4, 12);		/* v6 needs 36 */
	memcpy(body, body4, 12);
	memcpy(body + 12, "\x04\x00", 2);	/* a TLV head cut short */
	v2_bad(0x21, 0x11, body, 14);
	memcpy(body + 12, "\x04\x00\x05zz", 5);	/* a TLV value past the end */
	v2_bad(0x21, 0x11, body, 17);
	memcpy(body + 12, "\x04\x00\x01z\x04", 5); /* a trailing octet */
	v2_bad(0x21, 0x11, body, 17);
	/* Longer than we take: refused on the head alone. */
	v2(buf, 0x21, 0x11, body4, 12);
	buf[14] = (PROXY_V2_BODY_MAX + 1) >> 8;
	buf[15] = (PROXY_V2_BODY_MAX + 1) & 0xff;
	assert_int_equal(proxy_parse(buf, 16, &h, &err), -1);
	buf[14] = buf[15] = 0xff;
	assert_int_equal(proxy_parse(buf, 16, &h, &err), -1);
	/* A signature that goes wrong at any octet is no header. */
	for (size_t i = 0; i < 12; i++) {
		v2(buf, 0x21, 0x11, body4, 12);
		buf[i] ^= 0x20;
		assert_int_equal(proxy_parse(buf, i + 1, &h, &err), -1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_valid),
		cmocka_unit_test(test_v1_malformed),
		cmocka_unit_test(test_v2_valid),
		cmocka_unit_test(test_v2_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
