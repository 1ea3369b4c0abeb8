/*
 * libFuzzer harness for the relay's check of a worker's commit.  The
 * first byte is the relay's smtputf8 setting (its low bit); the rest is
 * the IMSG_MSG_COMMIT payload a lying worker sends.  What is accepted
 * must be bounded and checked field by field, keep its addresses as they
 * parse, and must encode back, with the one encoder the worker uses
 * (envelope_encode()), to exactly the payload.
 *
 * FUZZ_SRCS: lib/envelope.c lib/addr.c lib/imsg.c
 */
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "imsg.h"
#include "envelope.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define HDRSZ	sizeof(struct imsg_hdr)

static void
check_addr(const char *s, int allow_null, int utf8, struct mailaddr *a)
{
	char		 path[ADDR_PATH_MAX + 3];
	size_t		 used;
	int		 n;

	memset(a, 0, sizeof(*a));
	if (strnlen(s, ADDR_PATH_MAX + 1) > ADDR_PATH_MAX)
		abort();
	n = snprintf(path, sizeof(path), "<%s>", s);
	if (n < 0 || (size_t)n >= sizeof(path) ||
	    addr_parse_path(path, n, allow_null, utf8, a, &used) != ADDR_OK ||
	    used != (size_t)n)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imsg_out		 out;
	struct envelope_ref	 ref;
	struct envelope		 env;
	struct mailaddr		 a;
	struct imsg		 imsg;
	unsigned char		 bin[16];
	const unsigned char	*p;
	uint32_t		 i;
	int			 utf8, rc;

	if (size < 1 || size - 1 > IMSG_MAX_SIZE - HDRSZ)
		return 0;
	utf8 = data[0] & 1;
	memset(&imsg, 0, sizeof(imsg));
	imsg.hdr.type = IMSG_MSG_COMMIT;
	imsg.hdr.len = (uint32_t)(HDRSZ + size - 1);
	imsg.fd = -1;
	imsg.datalen = size - 1;
	/* Exactly as long as the payload, so a read past it is caught. */
	if ((imsg.data = malloc(size > 1 ? size - 1 : 1)) == NULL)
		return 0;
	memcpy(imsg.data, data + 1, size - 1);

	memset(&env, 0xa5, sizeof(env));
	rc = envelope_decode(&imsg, &env, utf8);
	if (rc != 0) {
		if (rc != -1 || env.rcpts != NULL)
			abort();
		imsg_free(&imsg);
		return 0;
	}
	if (imsg_get_end(&imsg) != 0)
		abort();

	/* Every field is what a worker could honestly have sent. */
	if (strnlen(env.peer_ip, sizeof(env.peer_ip)) == sizeof(env.peer_ip) ||
	    (inet_pton(AF_INET, env.peer_ip, bin) != 1 &&
	    inet_pton(AF_INET6, env.peer_ip, bin) != 1) ||
	    env.peer_port > 65535 ||
	    strnlen(env.helo, sizeof(env.helo)) == sizeof(env.helo) ||
	    env.helo[0] == '\0' || env.nrcpt == 0 ||
	    env.nrcpt > ENV_RCPT_MAX || env.rcpts == NULL ||
	    (env.flags & ~(uint32_t)ENV_F_MASK) != 0 ||
	    strnlen(env.mail_opts, sizeof(env.mail_opts)) ==
	    sizeof(env.mail_opts) ||
	    strnlen(env.rcpt_opts, sizeof(env.rcpt_opts)) ==
	    sizeof(env.rcpt_opts) ||
	    strpbrk(env.rcpt_opts, "\t\n\v\f\r\x1c\x1d\x1e\x1f" "abcdefghijklm"
	    "nopqrstuvwxyz") != NULL || strstr(env.rcpt_opts, "  ") != NULL ||
	    strspn(env.mail_opts, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789= ") !=
	    strlen(env.mail_opts))
		abort();
	for (p = (const unsigned char *)env.helo; *p != '\0'; p++)
		if (*p <= ' ' || *p == 127 || (*p >= 0x80 && !utf8))
			abort();
	if (helo_valid(env.helo, utf8) != HELO_OK)
		abort();
	check_addr(env.mail_from, 1, utf8, &a);
	if (memcmp(&a, &env.from, sizeof(a)) != 0)
		abort();
	for (i = 0; i < env.nrcpt; i++) {
		if (env.rcpts[i].postmaster) {
			if (strcasecmp(env.rcpts[i].path, "postmaster") != 0)
				abort();
			continue;
		}
		check_addr(env.rcpts[i].path, 0, utf8, &a);
		if (memcmp(&a, &env.rcpts[i].addr, sizeof(a)) != 0)
			abort();
	}

	/* One encoding: the worker's. */
	imsg_out_init(&out, IMSG_MSG_COMMIT, 0, -1);
	envelope_ref(&env, &ref);
	envelope_encode(&out, &ref);
	if (out.overflow || out.len - HDRSZ != imsg.datalen ||
	    memcmp(out.buf + HDRSZ, imsg.data, imsg.datalen) != 0)
		abort();
	imsg_out_free(&out);

	envelope_free(&env);
	if (env.rcpts != NULL)
		abort();
	imsg_free(&imsg);
	return 0;
}
