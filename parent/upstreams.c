/*
 * The upstreams of relay mode in the parent: the old one-line form made
 * into the upstream "default", every upstream's credentials read here
 * (the relay never sees the files) and its TLS set-up tried before the
 * start, and all of it sent to the relay when it starts.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "parent.h"
#include "tls.h"

/* Where an upstream's settings came from, for its errors. */
struct upsrc {
	const char	*file;
	unsigned int	 auth_line, ca_line;
	char		 auth_kw[UPSTREAM_NAME_MAX + 32];
	char		 ca_kw[UPSTREAM_NAME_MAX + 32];
};

/* An error at the file's line, as a start-up error says it. */
static void __attribute__((format(printf, 4, 5)))
up_err(FILE *errs, const char *file, unsigned int line, const char *fmt,
    ...)
{
	va_list	 ap;

	if (line != 0 && file != NULL)
		fprintf(errs, "%s:%u: ", file, line);
	va_start(ap, fmt);
	vfprintf(errs, fmt, ap);
	va_end(ap);
	fputc('\n', errs);
}

/* The credentials of an upstream (parent/secret.c reads the file). */
static int
read_auth(const struct upsrc *w, const char *path, struct upstream_secret *s,
    FILE *errs)
{
	char	 err[PATH_MAX + 2 * UPSTREAM_NAME_MAX + 128];

	if (upstream_auth_read(w->auth_kw, path, s->user, sizeof(s->user),
	    s->pass, sizeof(s->pass), err, sizeof(err)) == 0)
		return 0;
	up_err(errs, w->file, w->auth_line, "%s", err);
	return -1;
}

/* The relay loads the same CA file later: fail here, not there. */
static int
check_tls(const struct upsrc *w, const struct upstream_conf *u, int has_auth,
    FILE *errs)
{
	SSL_CTX	*ctx;
	char	 err[512];

	if (u->tls == UPSTREAM_PLAIN || (u->tls == UPSTREAM_OPPORTUNISTIC &&
	    u->ca[0] == '\0' && !has_auth))
		return 0;
	tls_init();
	if ((ctx = tls_client_ctx(u->ca[0] != '\0' ? u->ca : NULL, u->verify,
	    err, sizeof(err))) == NULL) {
		up_err(errs, w->file, u->ca[0] != '\0' ? w->ca_line : u->line,
		    "%s TLS: %s: %s", w->ca_kw, u->ca[0] != '\0' ? u->ca :
		    "system CA store", err);
		return -1;
	}
	SSL_CTX_free(ctx);
	return 0;
}

/* Read the credentials and try the TLS set-up of every upstream. */
static int
check_upstreams(struct parent *p, struct conf_file *cf, struct routes *r,
    struct upstream_secret *secrets, FILE *errs)
{
	struct upstream_conf	*u;
	struct upsrc		 w;
	uint32_t		 i;
	int			 errors = 0;

	for (i = 0; i < r->nups; i++) {
		u = &r->ups[i];
		memset(&w, 0, sizeof(w));
		w.file = p->conffile;
		if (u->legacy) {
			w.auth_line = conf_keyword_line(cf, "upstream-auth");
			w.ca_line = conf_keyword_line(cf, "upstream-ca");
			strlcpy(w.auth_kw, "upstream-auth", sizeof(w.auth_kw));
			strlcpy(w.ca_kw, "upstream", sizeof(w.ca_kw));
			if (w.ca_line == 0)
				w.ca_line = u->line;
		} else {
			w.auth_line = w.ca_line = u->line;
			snprintf(w.auth_kw, sizeof(w.auth_kw), "upstream %s: "
			    "auth", u->name);
			snprintf(w.ca_kw, sizeof(w.ca_kw), "upstream %s",
			    u->name);
		}
		if (u->auth[0] != '\0' && read_auth(&w, u->auth, &secrets[i],
		    errs) == -1)
			errors++;
		if (check_tls(&w, u, u->auth[0] != '\0', errs) == -1)
			errors++;
	}
	return errors;
}

/*
 * Take the upstreams and routes of cf (with the settings c) into r and
 * their credentials into secrets; the number of errors, said on errs.
 * Without any upstream line the upstream "default" is the command
 * line's or the built-in one; the old upstream-ca and upstream-auth
 * belong to the old one-line upstreams.  A reload calls it too: it
 * never exits.
 */
int
parent_routes_load(struct parent *p, struct conf_file *cf,
    const struct smtpd_conf *c, struct routes *r,
    struct upstream_secret *secrets, FILE *errs)
{
	struct upstream_conf	*u;
	uint32_t		 i;
	int			 first = 1;

	*r = cf->routes;
	routes_init(&cf->routes);
	memset(secrets, 0, ROUTES_UPSTREAMS_MAX * sizeof(*secrets));
	if (r->nups == 0) {
		if ((u = routes_add_upstream(r, "default")) == NULL)
			fatal("upstream");
		u->legacy = 1;
		r->nlegacy = 1;
		u->tls = c->upstream_tls;
		u->verify = c->upstream_verify;
		(void)routes_finish(r, "", errs);
	}
	for (i = 0; i < r->nups; i++) {
		u = &r->ups[i];
		if (!u->legacy)
			continue;
		strlcpy(u->ca, c->upstream_ca, sizeof(u->ca));
		strlcpy(u->auth, cf->upstream_auth, sizeof(u->auth));
		/* The command line's remote host is the first one's. */
		if (first) {
			strlcpy(u->host, c->upstream_host, sizeof(u->host));
			u->port = c->upstream_port;
			first = 0;
		}
	}
	if (c->mode != MODE_RELAY)
		return 0;
	return check_upstreams(p, cf, r, secrets, errs);
}

/* At start-up: an error stops it (said on standard error). */
void
parent_routes_setup(struct parent *p, struct conf_file *cf)
{
	if (parent_routes_load(p, cf, &p->conf, &p->routes, p->secrets,
	    stderr) != 0)
		exit(1);
}

/* The relay's upstreams, routes, credentials and (addrs) addresses. */
void
parent_send_routes(struct parent *p, struct child *relay, int addrs)
{
	struct imsg_out	 out;
	uint32_t	 i;

	if (routes_send(&relay->ib, &p->routes) == -1)
		fatal("routes to the relay");
	for (i = 0; i < p->routes.nups; i++) {
		if (p->secrets[i].user[0] == '\0')
			continue;
		imsg_out_init(&out, IMSG_CONF_UPSTREAM_AUTH, 0, -1);
		imsg_add_u32(&out, i);
		imsg_add_str(&out, p->secrets[i].user);
		imsg_add_str(&out, p->secrets[i].pass);
		parent_child_send(relay, &out);
	}
	for (i = 0; addrs && i < p->routes.nups; i++)
		parent_send_upstream(p, relay, i);
}
