/*
 * OpenSSL glue.  Contexts are built before the sandbox, from memory
 * (the server's certificate and key arrive from the parent over imsg,
 * never as a file the worker could read) or from a CA file loaded at
 * once (the relay is chrooted later and cannot read the CA directory).
 */
#include <arpa/inet.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls.h"

#define TLS_CIPHERS	"HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES:!CAMELLIA:!ARIA"
#define TLS_SYSTEM_CA	"/etc/ssl/certs/ca-certificates.crt"

void
tls_init(void)
{
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS |
	    OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
}

/* The oldest queued OpenSSL error as text. */
void
tls_error(char *buf, size_t len)
{
	unsigned long	 e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "unknown TLS error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

/* Settings both sides share: TLS 1.2 at least, strong ciphers only. */
static int
tls_ctx_common(SSL_CTX *ctx)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS) != 1)
		return -1;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

/* A server context from PEM text: certificate chain and private key. */
SSL_CTX *
tls_server_ctx(const char *cert, size_t certlen, const char *key,
    size_t keylen, char *err, size_t errlen)
{
	SSL_CTX		*ctx = NULL;
	BIO		*bio = NULL;
	X509		*x509 = NULL, *ca;
	EVP_PKEY	*pkey = NULL;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    tls_ctx_common(ctx) == -1)
		goto fail;
	if ((bio = BIO_new_mem_buf(cert, (int)certlen)) == NULL ||
	    (x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL ||
	    SSL_CTX_use_certificate(ctx, x509) != 1)
		goto fail;
	/* The rest of the file is the chain. */
	while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (SSL_CTX_add_extra_chain_cert(ctx, ca) != 1) {
			X509_free(ca);
			goto fail;
		}
	ERR_clear_error();
	BIO_free(bio);
	if ((bio = BIO_new_mem_buf(key, (int)keylen)) == NULL ||
	    (pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL ||
	    SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	BIO_free(bio);
	X509_free(x509);
	EVP_PKEY_free(pkey);
	return ctx;
fail:
	tls_error(err, errlen);
	BIO_free(bio);
	X509_free(x509);
	EVP_PKEY_free(pkey);
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * A client context that verifies the server against cafile (NULL: the
 * system store), or not at all when verify is 0.
 */
SSL_CTX *
tls_client_ctx(const char *cafile, int verify, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    tls_ctx_common(ctx) == -1)
		goto fail;
	if (verify) {
		if (SSL_CTX_load_verify_locations(ctx, cafile != NULL ?
		    cafile : TLS_SYSTEM_CA, NULL) != 1)
			goto fail;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
fail:
	tls_error(err, errlen);
	SSL_CTX_free(ctx);
	return NULL;
}

/* A client connection on fd that checks the certificate names host. */
SSL *
tls_client_ssl(SSL_CTX *ctx, int fd, const char *host)
{
	SSL		*ssl;
	unsigned char	 bin[16];
	int		 literal;

	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	literal = inet_pton(AF_INET, host, bin) == 1 ||
	    inet_pton(AF_INET6, host, bin) == 1;
	if (!literal)
		SSL_set_tlsext_host_name(ssl, host);
	if (SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

		if ((literal ? X509_VERIFY_PARAM_set1_ip_asc(param, host) :
		    X509_VERIFY_PARAM_set1_host(param, host, 0)) != 1) {
			SSL_free(ssl);
			return NULL;
		}
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

/* One step of the handshake (either side). */
int
tls_handshake(SSL *ssl)
{
	int	 rc;

	ERR_clear_error();
	if ((rc = SSL_do_handshake(ssl)) == 1)
		return TLS_HANDSHAKE_DONE;
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return TLS_HANDSHAKE_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_HANDSHAKE_WANT_WRITE;
	default:
		return TLS_HANDSHAKE_FAILED;
	}
}

/* Why the peer's certificate was refused, or NULL if it was not. */
const char *
tls_verify_error(SSL *ssl)
{
	long	 rc = SSL_get_verify_result(ssl);

	if (rc == X509_V_OK)
		return NULL;
	return X509_verify_cert_error_string(rc);
}

static ssize_t
tls_io_result(SSL *ssl, int rc)
{
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return TLS_IO_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_IO_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		/* An EOF without close_notify: treat it as end of file. */
		if (ERR_peek_error() == 0 && errno == 0)
			return 0;
		return TLS_IO_ERROR;
	default:
		return TLS_IO_ERROR;
	}
}

/* Read decrypted bytes: >0, 0 at end of file, or a TLS_IO_* code. */
ssize_t
tls_read(SSL *ssl, void *buf, size_t len)
{
	int	 rc;

	ERR_clear_error();
	errno = 0;
	if ((rc = SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX :
	    (int)len)) > 0)
		return rc;
	return tls_io_result(ssl, rc);
}

/* Write bytes: how many were taken, or a TLS_IO_* code. */
ssize_t
tls_write(SSL *ssl, const void *buf, size_t len)
{
	int	 rc;

	ERR_clear_error();
	errno = 0;
	if ((rc = SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX :
	    (int)len)) > 0)
		return rc;
	return tls_io_result(ssl, rc);
}
