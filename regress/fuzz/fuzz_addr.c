/*
 * libFuzzer harness for the SMTP path parser.  The first byte chooses
 * allow_null and allow_utf8; the rest is the path and what follows it.
 * Beyond memory errors, it checks what a success promises.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_ok(const char *s, size_t len, int allow_null, int allow_utf8,
    const struct mailaddr *a, size_t consumed)
{
	struct mailaddr	 b;
	size_t		 consumed2, i;
	char		 out[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];

	if (consumed < 2 || consumed > len || consumed > ADDR_PATH_MAX)
		abort();
	if (s[0] != '<' || s[consumed - 1] != '>')
		abort();
	if (strlen(a->local) > ADDR_LOCAL_MAX ||
	    strlen(a->domain) > ADDR_DOMAIN_MAX)
		abort();
	if (a->null) {
		if (!allow_null || consumed != 2 || a->local[0] != '\0' ||
		    a->domain[0] != '\0' || a->flags != 0)
			abort();
	} else {
		if (a->local[0] == '\0' || a->domain[0] == '\0')
			abort();
		/* The trailing dot is always gone. */
		if (a->domain[strlen(a->domain) - 1] == '.')
			abort();
		if (!addr_domain_eq(a->domain, a->domain))
			abort();
	}
	if ((a->flags & ADDR_F_UTF8) && !allow_utf8)
		abort();
	for (i = 0; i < consumed; i++) {
		if ((unsigned char)s[i] >= 0x80 && !(a->flags & ADDR_F_UTF8))
			abort();
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
			abort();
	}
	if ((a->flags & ADDR_F_QUOTED_AT) && !(a->flags & ADDR_F_QUOTED))
		abort();
	if (addr_format(a, out, sizeof(out)) != 0)
		abort();

	/* The path alone parses the same. */
	if (addr_parse_path(s, consumed, allow_null, allow_utf8, &b,
	    &consumed2) != ADDR_OK || consumed2 != consumed ||
	    strcmp(a->local, b.local) != 0 ||
	    strcmp(a->domain, b.domain) != 0 || a->flags != b.flags ||
	    a->null != b.null)
		abort();
	/* Cut one byte short, it never does. */
	if (addr_parse_path(s, consumed - 1, allow_null, allow_utf8, &b,
	    &consumed2) == ADDR_OK)
		abort();
	/* What SMTPUTF8 permits is a superset. */
	if (!allow_utf8 && addr_parse_path(s, len, allow_null, 1, &b,
	    &consumed2) != ADDR_OK)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailaddr	 a;
	enum addr_error	 err;
	size_t		 consumed;
	char		*s;
	int		 allow_null, allow_utf8;

	if (size < 1)
		return 0;
	allow_null = data[0] & 1;
	allow_utf8 = (data[0] >> 1) & 1;
	data++;
	size--;
	/* An exact-size copy: any read past the end is caught. */
	if ((s = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	consumed = 12345;
	err = addr_parse_path(s, size, allow_null, allow_utf8, &a, &consumed);
	if (addr_strerror(err) == NULL)
		abort();
	if (err == ADDR_OK)
		check_ok(s, size, allow_null, allow_utf8, &a, consumed);
	else if (consumed != 0)
		abort();
	free(s);
	return 0;
}
