/*
 * TLS with OpenSSL, for both sides: the workers' server contexts and the
 * relay's client context.  TLS 1.2 is the minimum (SPEC section 10);
 * I/O is non-blocking and reports what it waits for.
 */
#ifndef SMTPD_TLS_H
#define SMTPD_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#define TLS_IO_WANT_READ	(-2)
#define TLS_IO_WANT_WRITE	(-3)
#define TLS_IO_ERROR		(-1)

#define TLS_HANDSHAKE_DONE	1
#define TLS_HANDSHAKE_WANT_READ	2
#define TLS_HANDSHAKE_WANT_WRITE 3
#define TLS_HANDSHAKE_FAILED	(-1)

void	 tls_init(void);
SSL_CTX	*tls_server_ctx(const char *cert, size_t certlen, const char *key,
	    size_t keylen, char *err, size_t errlen);
SSL_CTX	*tls_client_ctx(const char *cafile, int verify, char *err,
	    size_t errlen);
SSL	*tls_client_ssl(SSL_CTX *, int fd, const char *host);
int	 tls_handshake(SSL *);
ssize_t	 tls_read(SSL *, void *, size_t);
ssize_t	 tls_write(SSL *, const void *, size_t);
void	 tls_error(char *, size_t);
const char *tls_verify_error(SSL *);

#endif
