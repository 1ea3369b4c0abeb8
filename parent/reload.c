/*
 * A reload (SIGHUP or smtpctl reload, SPEC section 12): everything is
 * read and checked first (the file, the certificate and key, the
 * upstreams' credentials, the users file, the new listeners bound), and
 * only when all of it is good does anything change; otherwise the
 * running configuration stays as it was and the log says why, as for a
 * syntax error.  Then the unchanged listeners keep their sockets, new
 * workers take over (the old ones drain their sessions) and the relay
 * takes the new settings, rules, upstreams and routes for the mail not
 * yet in flight.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "conf.h"
#include "log.h"
#include "parent.h"
#include "tls.h"

/* What a reload read, before it is applied. */
static struct reload {
	struct conf_file	 cf;
	char			*cert, *key;	/* NULL: no TLS */
	size_t			 certlen, keylen;
	struct routes		 routes;
	struct upstream_secret	 secrets[ROUTES_UPSTREAMS_MAX];
	int			 routes_kept;	/* the relay cannot take them */
	struct listener		 listeners[PARENT_MAX_LISTENERS];
	unsigned int		 nlisteners;
	char			 kept[512];
} rl;

static void
pem_free(char *pem, size_t len)
{
	if (pem == NULL)
		return;
	explicit_bzero(pem, len);
	free(pem);
}

/* The certificate and key, read and tried as a server context. */
static int
reload_tls(struct reload *r, FILE *errs)
{
	struct conf_file	*cf = &r->cf;
	SSL_CTX			*ctx;
	char			 err[512];
	unsigned int		 i;

	for (i = 0; i < cf->nlisten; i++) {
		if ((cf->listen[i].flags & (LISTEN_TLS |
		    LISTEN_STARTTLS_REQ)) && cf->tls_cert[0] == '\0') {
			fprintf(errs, "listen on %s: tls and starttls-required "
			    "need \"tls certificate FILE key FILE\"\n",
			    cf->listen[i].hp.host);
			return -1;
		}
		if ((cf->listen[i].flags & LISTEN_AUTH) &&
		    cf->users[0] == '\0') {
			fprintf(errs, "listen on %s: auth needs \"users "
			    "FILE\"\n", cf->listen[i].hp.host);
			return -1;
		}
	}
	if (cf->tls_cert[0] == '\0')
		return 0;
	if ((r->cert = parent_read_pem(cf->tls_cert, &r->certlen, err,
	    sizeof(err))) == NULL || (r->key = parent_read_pem(cf->tls_key,
	    &r->keylen, err, sizeof(err))) == NULL) {
		fprintf(errs, "tls: %s\n", err);
		return -1;
	}
	tls_init();
	if ((ctx = tls_server_ctx(r->cert, r->certlen, r->key, r->keylen, err,
	    sizeof(err))) == NULL) {
		fprintf(errs, "tls: %s or %s: %s\n", cf->tls_cert, cf->tls_key,
		    err);
		return -1;
	}
	SSL_CTX_free(ctx);
	return 0;
}

/*
 * Whether the running relay can take the upstreams of nr: its upstreams
 * are known by their place in the list and hold TLS contexts made
 * before its sandbox, so the old ones must stay first, in their order,
 * with their TLS set-up, and a new one needs no context the relay does
 * not have already.
 */
static int
routes_takeable(const struct routes *or, const struct routes *nr)
{
	const struct upstream_conf	*o, *n;
	uint32_t			 i, j;

	if (nr->nups < or->nups)
		return 0;
	for (i = 0; i < or->nups; i++) {
		o = &or->ups[i];
		n = &nr->ups[i];
		if (strcmp(o->name, n->name) != 0 || strcmp(o->ca, n->ca) !=
		    0 || o->verify != n->verify ||
		    (o->tls == UPSTREAM_PLAIN) != (n->tls == UPSTREAM_PLAIN))
			return 0;
	}
	for (; i < nr->nups; i++) {
		n = &nr->ups[i];
		if (n->tls == UPSTREAM_PLAIN)
			continue;
		for (j = 0; j < or->nups; j++)
			if (or->ups[j].tls != UPSTREAM_PLAIN &&
			    strcmp(or->ups[j].ca, n->ca) == 0 &&
			    or->ups[j].verify == n->verify)
				break;
		if (j == or->nups)
			return 0;
	}
	return 1;
}

static void
kept_add(struct reload *r, const char *what)
{
	if (r->kept[0] != '\0')
		strlcat(r->kept, " ", sizeof(r->kept));
	strlcat(r->kept, what, sizeof(r->kept));
}

/* deliver mode: the program must be there, as at the start. */
static int
reload_deliver(const struct reload *r, FILE *errs)
{
	char	 buf[CONF_DELIVER_MAX], *argv[CONF_DELIVER_ARGS];

	if (r->cf.conf.mode != MODE_DELIVER)
		return 0;
	if (cmd_split(r->cf.deliver, buf, sizeof(buf), argv,
	    CONF_DELIVER_ARGS) < 1 || argv[0][0] != '/') {
		fprintf(errs, "deliver: bad command: %s\n", r->cf.deliver);
		return -1;
	}
	if (access(argv[0], X_OK) == -1) {
		fprintf(errs, "deliver: %s: %s\n", argv[0], strerror(errno));
		return -1;
	}
	return 0;
}

/* Everything of the new configuration read and checked; -1 if bad. */
static int
reload_read(struct parent *p, struct reload *r, FILE *errs)
{
	char	 err[512];

	if (parent_load_conf(p, &r->cf, errs) != 0)
		return -1;
	conf_keep(&r->cf.conf, &p->conf, r->kept, sizeof(r->kept));
	r->cf.conf.auth_enabled = r->cf.users[0] != '\0';
	if (reload_tls(r, errs) == -1 || reload_deliver(r, errs) == -1)
		return -1;
	if (parent_routes_load(p, &r->cf, &r->cf.conf, &r->routes,
	    r->secrets, errs) != 0)
		return -1;
	if (p->conf.mode == MODE_RELAY &&
	    !routes_takeable(&p->routes, &r->routes)) {
		r->routes_kept = 1;
		kept_add(r, "upstream");
	}
	if (listeners_prepare(p, r->cf.listen, r->cf.nlisten, r->listeners,
	    &r->nlisteners, err, sizeof(err)) == -1) {
		fprintf(errs, "listen on %s\n", err);
		return -1;
	}
	/* Last: it replaces the table, and nothing may fail after it. */
	if (r->cf.users[0] != '\0' && parent_users_load(r->cf.users,
	    errs) == -1) {
		fprintf(errs, "users: %s cannot be used\n", r->cf.users);
		listeners_abort(p, r->listeners, r->nlisteners);
		return -1;
	}
	return 0;
}

static void
reload_free(struct reload *r)
{
	conf_file_free(&r->cf);
	pem_free(r->cert, r->certlen);
	pem_free(r->key, r->keylen);
	routes_free(&r->routes);
	explicit_bzero(r->secrets, sizeof(r->secrets));
	memset(r, 0, sizeof(*r));
}

/* The new configuration becomes the parent's. */
static void
reload_apply(struct parent *p, struct reload *r, unsigned int *added,
    unsigned int *removed)
{
	p->conf = r->cf.conf;
	policy_free(&p->policy);
	p->policy = r->cf.policy;
	policy_init(&r->cf.policy);
	strlcpy(p->deliver, r->cf.deliver, sizeof(p->deliver));
	pem_free(p->tls_cert, p->tls_certlen);
	pem_free(p->tls_key, p->tls_keylen);
	p->tls_cert = r->cert;
	p->tls_certlen = r->certlen;
	p->tls_key = r->key;
	p->tls_keylen = r->keylen;
	r->cert = r->key = NULL;
	if (!r->routes_kept) {
		routes_free(&p->routes);
		p->routes = r->routes;
		routes_init(&r->routes);
		memcpy(p->secrets, r->secrets, sizeof(p->secrets));
	}
	listeners_commit(p, r->listeners, r->nlisteners, added, removed);
}

/* Errors go to the log: standard error may be /dev/null. */
static void
reload_log_errors(char *text)
{
	char	*line, *last;

	for (line = strtok_r(text, "\n", &last); line != NULL;
	    line = strtok_r(NULL, "\n", &last))
		log_warnx("event=config-error %s", line);
}

void
parent_reload(struct parent *p)
{
	struct reload	*r = &rl;
	char		*errtext = NULL;
	size_t		 errlen = 0;
	FILE		*errs;
	uint32_t	 old_workers = p->conf.workers;
	unsigned int	 added = 0, removed = 0;
	int		 failed;

	log_info("event=reload");
	p->reload_ok = 0;
	strlcpy(p->reload_result, "configuration errors, the running one "
	    "is kept (see the log)", sizeof(p->reload_result));
	memset(r, 0, sizeof(*r));
	conf_file_init(&r->cf);
	routes_init(&r->routes);
	if ((errs = open_memstream(&errtext, &errlen)) == NULL)
		fatal("open_memstream");
	failed = reload_read(p, r, errs) == -1;
	fclose(errs);
	reload_log_errors(errtext);
	free(errtext);
	if (failed) {
		log_warnx("event=reload result=failed reason=\"configuration "
		    "errors, keeping the running one\"");
		reload_free(r);
		return;
	}
	reload_apply(p, r, &added, &removed);
	p->reload_ok = 1;
	snprintf(p->reload_result, sizeof(p->reload_result), "applied: "
	    "settings, rules, %u listener%s (%u new, %u closed), %u worker%s%s"
	    "%s%s", p->nlisteners, p->nlisteners == 1 ? "" : "s", added,
	    removed, p->conf.workers, p->conf.workers == 1 ? "" : "s",
	    p->tls_cert != NULL ? ", TLS certificate" : "",
	    p->conf.auth_enabled ? ", users" : "",
	    p->conf.mode != MODE_RELAY || r->routes_kept ? "" :
	    ", upstreams, routes and credentials");
	if (r->kept[0] != '\0') {
		log_warnx("event=reload kept=\"%s\" reason=\"needs a "
		    "restart\"", r->kept);
		strlcat(p->reload_result, "\nneeds a restart: ",
		    sizeof(p->reload_result));
		strlcat(p->reload_result, r->kept, sizeof(p->reload_result));
	}
	log_info("event=reload result=applied listeners=%u added=%u "
	    "closed=%u workers=%u", p->nlisteners, added, removed,
	    p->conf.workers);
	parent_reload_children(p, old_workers, !r->routes_kept);
	reload_free(r);
}
