/*
 * Named upstreams and routes (SPEC section 7.2): read by the parent,
 * sent to the relay at its start, matched by the relay per recipient.
 */
#ifndef SMTPD_ROUTES_H
#define SMTPD_ROUTES_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "addr.h"
#include "imsg.h"
#include "rules.h"

#define UPSTREAM_NAME_MAX	64
#define ROUTES_UPSTREAMS_MAX	32
#define ROUTE_VIA_MAX		8
#define ROUTES_MAX		64
#define DEFAULT_UPSTREAM_CONNS	8

struct upstream_conf {
	char		 name[UPSTREAM_NAME_MAX];
	char		 host[256];
	uint32_t	 port;
	uint32_t	 tls;		/* UPSTREAM_PLAIN ... */
	uint32_t	 verify;
	uint32_t	 max_conns;
	uint32_t	 rate_n;	/* messages per rate_period; 0: no limit */
	uint32_t	 rate_period;	/* seconds */
	char		 ca[PATH_MAX];	/* "": the system store */
	char		 auth[PATH_MAX]; /* parent only: "user password" */
	uint32_t	 line;		/* of its keyword, for errors */
	uint32_t	 legacy;	/* an old one-line "upstream HOST" */
};

struct route_conf {
	struct strlist	 senders;	/* "local@domain" or "@domain" */
	struct strlist	 users;
	struct strlist	 domains;
	uint32_t	 via[ROUTE_VIA_MAX];
	uint32_t	 nvia;
	char		 rewrite[ADDR_PATH_MAX + 1];	/* "" none, "@dom" */
	uint32_t	 line;
};

struct routes {
	struct upstream_conf	*ups;
	uint32_t		 nups;
	struct route_conf	*routes;
	uint32_t		 nroutes;
	uint32_t		 nlegacy;
};

void	routes_init(struct routes *);
void	routes_free(struct routes *);
struct upstream_conf *routes_add_upstream(struct routes *, const char *);
int	routes_find_upstream(const struct routes *, const char *);
struct route_conf *routes_add_route(struct routes *);
int	routes_finish(struct routes *, const char *conffile, FILE *errs);
int	routes_default(const struct routes *);
int	routes_match(const struct routes *, const char *sender,
	    const char *user, const char *rcpt);
void	routes_rewrite(const struct route_conf *, const char *from,
	    char *out, size_t len);
int	routes_send(struct imsgbuf *, const struct routes *);
int	routes_recv(struct routes *, struct imsg *);

#endif
