/*
 * relay mode delivery: the scheduler and the upstream connections.
 */
#ifndef SMTPD_FORWARD_H
#define SMTPD_FORWARD_H

#include <sys/socket.h>

#include <openssl/ssl.h>

#include "proto.h"
#include "queue.h"

#define FWD_MAX_CONNS		4
#define FWD_MAX_ADDRS		8
#define FWD_IDLE_MS		5000
#define FWD_CONNECT_MS		30000

typedef void (*forward_resolve_cb)(void);

void	forward_init(const struct smtpd_conf *, forward_resolve_cb);
void	forward_set_tls(SSL_CTX *);
void	forward_set_auth(const char *user, const char *password);
void	forward_set_addrs(const struct sockaddr_storage *, const socklen_t *,
	    unsigned int);
void	forward_flush(void);
int	forward_is_down(void);

#endif
