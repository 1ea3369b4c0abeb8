/*
 * Base64 (RFC 4648 section 4), strict: for SASL exchanges (RFC 4954).
 */
#ifndef SMTPD_BASE64_H
#define SMTPD_BASE64_H

#include <stddef.h>
#include <sys/types.h>

ssize_t	b64_decode(const char *, size_t, unsigned char *, size_t);
ssize_t	b64_encode(const unsigned char *, size_t, char *, size_t);

#endif
