/*
 * The relay's state of each upstream (SPEC 7.2): its addresses, TLS
 * context and credentials, whether it is down and until when, and its
 * delivery rate.
 */
#ifndef SMTPD_UPSTREAM_H
#define SMTPD_UPSTREAM_H

#include <sys/socket.h>

#include <openssl/ssl.h>

#include "event.h"
#include "proto.h"
#include "routes.h"

#define FWD_MAX_ADDRS		8

struct upstream {
	const struct upstream_conf *conf;
	uint32_t		 index;
	struct sockaddr_storage	 addrs[FWD_MAX_ADDRS];
	socklen_t		 lens[FWD_MAX_ADDRS];
	unsigned int		 naddrs;
	unsigned int		 next_addr;
	int			 down;
	unsigned int		 failures;	/* probes failed in a row */
	unsigned int		 failed_in_row;	/* addresses failed */
	uint64_t		 retry_at;	/* ev_now() of the next probe */
	int			 probing;	/* a probe is connecting */
	SSL_CTX			*tls_ctx;	/* NULL: plain text */
	char			 auth_user[AUTH_FIELD_MAX + 1]; /* "": none */
	char			 auth_pass[AUTH_FIELD_MAX + 1];
	uint64_t		 tat;		/* rate: GCRA arrival time */
	uint64_t		 interval_ms;	/* rate: between messages */
	uint64_t		 burst_ms;	/* rate: (burst - 1) * interval */
	struct ev_timer		 timer;		/* kick when rate or probe allow */
};

typedef void (*upstream_resolve_cb)(uint32_t);

/* An upstream's credentials, as a reload brings them ("": none). */
struct upstream_auth {
	char	 user[AUTH_FIELD_MAX + 1];
	char	 pass[AUTH_FIELD_MAX + 1];
};

void		 up_init(const struct routes *, const struct smtpd_conf *,
		    upstream_resolve_cb, void (*kick)(void));
struct upstream	*up_get(uint32_t);
uint32_t	 up_count(void);
void		 up_set_addrs(uint32_t, const struct sockaddr_storage *,
		    const socklen_t *, unsigned int);
void		 up_set_tls(uint32_t, SSL_CTX *);
void		 up_set_auth(uint32_t, const char *, const char *);
void		 up_reload(const struct routes *,
		    const struct upstream_auth *);
int		 up_next_addr(struct upstream *, struct sockaddr_storage **,
		    socklen_t *, char *, size_t);
void		 up_failed(struct upstream *, const char *addr, const char *);
void		 up_ok(struct upstream *);
int		 up_probe_due(struct upstream *);
uint64_t	 up_rate_wait(struct upstream *);
void		 up_rate_take(struct upstream *);
int		 up_tls_mode(const struct upstream *);

#endif
