/*
 * Strict parsing of SMTP paths (RFC 5321 4.1.2, RFC 6531 for UTF-8).
 * A parse error is never a success: what is not understood is refused.
 */
#ifndef SMTPD_ADDR_H
#define SMTPD_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define ADDR_DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define ADDR_PATH_MAX	256	/* RFC 5321 4.5.3.1.3 */

/* Properties a relay policy must look at (RFC 5321 3.6.1, 7.1). */
#define ADDR_F_PERCENT	0x01	/* '%' in the local part */
#define ADDR_F_BANG	0x02	/* '!' in the local part */
#define ADDR_F_QUOTED	0x04	/* quoted-string local part */
#define ADDR_F_QUOTED_AT 0x08	/* '@' inside the quoted local part */
#define ADDR_F_UTF8	0x10	/* octets above 127 */
#define ADDR_F_LITERAL	0x20	/* domain is an address literal */

enum addr_error {
	ADDR_OK = 0,
	ADDR_ERR_SYNTAX,	/* not a path at all */
	ADDR_ERR_ROUTE,		/* a source route, <@a:u@b> */
	ADDR_ERR_LENGTH,	/* a part is longer than RFC 5321 allows */
	ADDR_ERR_8BIT,		/* UTF-8 without SMTPUTF8 */
	ADDR_ERR_EMPTY,		/* <> where a mailbox is needed */
};

struct mailaddr {
	char	local[ADDR_LOCAL_MAX + 1];
	char	domain[ADDR_DOMAIN_MAX + 1];	/* without a trailing dot */
	int	flags;
	int	null;		/* the null path <> */
};

enum addr_error	addr_parse_path(const char *, size_t, int allow_null,
		    int allow_utf8, struct mailaddr *, size_t *consumed);
int		addr_format(const struct mailaddr *, char *, size_t);
const char     *addr_strerror(enum addr_error);
int		addr_domain_eq(const char *, const char *);
int		addr_is_postmaster(const char *, const char *);
int		addr_utf8_check(const char *);

#endif
