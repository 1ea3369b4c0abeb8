/*
 * The relay keywords of the configuration (SPEC sections 7.1 and 7.2):
 * accept rules, sender-login, named and one-line upstreams, routes and
 * the upstream time-outs.
 */
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "parse_int.h"

/* A host name or an IP address literal. */
static int
valid_upstream_host(const char *s)
{
	unsigned char	 v6[16];

	return strchr(s, ':') != NULL ? inet_pton(AF_INET6, s, v6) == 1 :
	    valid_hostname(s);
}

/* "30/min", "5/s", "1000/h" */
static int
parse_rate(struct parse_ctx *ctx, const char *s, struct upstream_conf *u)
{
	const char	*errstr = NULL, *slash = strchr(s, '/');
	char		 num[16];

	if (slash == NULL || (size_t)(slash - s) >= sizeof(num)) {
		perr(ctx, "upstream: rate %s is not N/s, N/min or N/h", s);
		return -1;
	}
	memcpy(num, s, slash - s);
	num[slash - s] = '\0';
	u->rate_n = strtonum(num, 1, 100000, &errstr);
	if (strcmp(slash, "/s") == 0)
		u->rate_period = 1;
	else if (strcmp(slash, "/min") == 0)
		u->rate_period = 60;
	else if (strcmp(slash, "/h") == 0)
		u->rate_period = 3600;
	else
		u->rate_period = 0;
	if (errstr != NULL || u->rate_period == 0 || !isdigit((unsigned
	    char)num[0])) {
		perr(ctx, "upstream: rate %s is not N/s, N/min or N/h (N from "
		    "1 to 100000)", s);
		return -1;
	}
	return 0;
}

/* One option of an upstream line at w[*i]; -1 after an error. */
static int
upstream_option(struct parse_ctx *ctx, struct upstream_conf *u, char **w,
    int *i, int n, int named)
{
	const char	*o = w[*i], *v = *i + 1 < n ? w[*i + 1] : NULL;

	if (strcmp(o, "plain") == 0)
		u->tls = UPSTREAM_PLAIN;
	else if (strcmp(o, "starttls") == 0)
		u->tls = UPSTREAM_STARTTLS;
	else if (strcmp(o, "tls") == 0)
		u->tls = UPSTREAM_TLS;
	else if (strcmp(o, "no-verify") == 0)
		u->verify = 0;
	else if (v != NULL && strcmp(o, "port") == 0) {
		(*i)++;
		return parse_num(ctx, "upstream port", v, 1, 65535, &u->port);
	} else if (named && v != NULL && strcmp(o, "ca") == 0) {
		(*i)++;
		return parse_path(ctx, "upstream ca", v, u->ca, sizeof(u->ca));
	} else if (named && v != NULL && strcmp(o, "auth") == 0) {
		(*i)++;
		return parse_path(ctx, "upstream auth", v, u->auth,
		    sizeof(u->auth));
	} else if (named && v != NULL && strcmp(o, "max-connections") == 0) {
		(*i)++;
		return parse_num(ctx, "upstream max-connections", v, 1, 1024,
		    &u->max_conns);
	} else if (named && v != NULL && strcmp(o, "rate") == 0) {
		(*i)++;
		return parse_rate(ctx, v, u);
	} else {
		perr(ctx, "upstream: unknown option %s", o);
		return -1;
	}
	return 0;
}

/*
 * upstream NAME host HOST [options]: a named upstream.
 * upstream HOST [port N] [plain|starttls|tls] [no-verify]: the old
 * form; each line one more upstream of the default route, the first
 * named "default".
 */
void
kw_upstream(struct parse_ctx *ctx, char **w, int n)
{
	struct routes		*r = &ctx->cf->routes;
	struct smtpd_conf	*c = &ctx->cf->conf;
	struct upstream_conf	*u;
	char			 name[UPSTREAM_NAME_MAX];
	int			 i, named = n >= 3 && strcmp(w[1], "host") == 0;

	if (named)
		strlcpy(name, w[0], sizeof(name));
	else if (r->nlegacy == 0)
		strlcpy(name, "default", sizeof(name));
	else
		snprintf(name, sizeof(name), "default-%u", r->nlegacy + 1);
	if (!valid_upstream_host(w[named ? 2 : 0])) {
		perr(ctx, "upstream: %s is not a host name or address",
		    w[named ? 2 : 0]);
		return;
	}
	if ((u = routes_add_upstream(r, name)) == NULL) {
		perr(ctx, "upstream: %s given twice, badly named or one too "
		    "many (at most %d)", name, ROUTES_UPSTREAMS_MAX);
		return;
	}
	strlcpy(u->host, w[named ? 2 : 0], sizeof(u->host));
	u->line = ctx->line;
	u->legacy = !named;
	for (i = named ? 3 : 1; i < n; i++)
		if (upstream_option(ctx, u, w, &i, n, named) == -1)
			return;
	if (named)
		return;
	/* The first old-style line is also the settings of before. */
	if (r->nlegacy++ == 0) {
		strlcpy(c->upstream_host, u->host, sizeof(c->upstream_host));
		c->upstream_port = u->port;
		c->upstream_tls = u->tls;
		c->upstream_verify = u->verify;
	}
}

/* The words of a route's list, up to the next keyword. */
static int
route_list_end(char **w, int i, int n)
{
	while (i < n && strcmp(w[i], "sender") != 0 &&
	    strcmp(w[i], "user") != 0 && strcmp(w[i], "for") != 0 &&
	    strcmp(w[i], "via") != 0 && strcmp(w[i], "rewrite-sender") != 0)
		i++;
	return i;
}

/* A list of route at w[i] into l: -1 after an error, else its end. */
static int
route_list(struct parse_ctx *ctx, struct route_conf *rt, char **w, int i,
    int n)
{
	const char	*what = w[i];
	char		 e[ADDR_PATH_MAX + 1];
	int		 end, j, idx;

	if (strcmp(what, "for") == 0) {
		if (i + 1 >= n || strcmp(w[++i], "domain") != 0) {
			perr(ctx, "route: expected \"for domain D\"");
			return -1;
		}
	}
	end = route_list_end(w, i + 1, n);
	if (end == i + 1) {
		perr(ctx, "route: %s needs a value", what);
		return -1;
	}
	for (j = i + 1; j < end; j++) {
		if (strcmp(what, "sender") == 0) {
			if (rcpt_entry_normalize(w[j], e, sizeof(e)) == -1 ||
			    strlist_add(&rt->senders, e) == -1)
				goto bad;
		} else if (strcmp(what, "user") == 0) {
			if (strlist_add(&rt->users, w[j]) == -1)
				goto bad;
		} else if (strcmp(what, "for") == 0) {
			if (domain_normalize(w[j], e, sizeof(e)) == -1 ||
			    strlist_add(&rt->domains, e) == -1)
				goto bad;
		} else {
			idx = routes_find_upstream(&ctx->cf->routes, w[j]);
			if (idx == -1 || rt->nvia == ROUTE_VIA_MAX) {
				perr(ctx, "route: via %s: no such upstream "
				    "(define it before) or more than %d",
				    w[j], ROUTE_VIA_MAX);
				return -1;
			}
			rt->via[rt->nvia++] = (uint32_t)idx;
		}
	}
	return end;
bad:
	perr(ctx, "route: %s %s is not valid", what, w[j]);
	return -1;
}

/*
 * route [sender ...] [user ...] [for domain ...] via NAME...
 *     [rewrite-sender X]
 */
void
kw_route(struct parse_ctx *ctx, char **w, int n)
{
	struct route_conf	*rt;
	char			 e[ADDR_PATH_MAX + 1];
	int			 i = 0;

	if ((rt = routes_add_route(&ctx->cf->routes)) == NULL) {
		perr(ctx, "route: more than %d routes", ROUTES_MAX);
		return;
	}
	rt->line = ctx->line;
	while (i >= 0 && i < n) {
		if (strcmp(w[i], "rewrite-sender") == 0 && i + 1 < n) {
			if (rcpt_entry_normalize(w[i + 1], e, sizeof(e)) ==
			    -1) {
				perr(ctx, "route: rewrite-sender %s is not an "
				    "address or @domain", w[i + 1]);
				return;
			}
			strlcpy(rt->rewrite, e, sizeof(rt->rewrite));
			i += 2;
		} else if (route_list_end(w, i, n) == i)
			i = route_list(ctx, rt, w, i, n);
		else {
			perr(ctx, "route: unexpected %s", w[i]);
			return;
		}
	}
	if (i >= 0 && rt->nvia == 0)
		perr(ctx, "route: \"via UPSTREAM\" is required");
}

static int
is_rule_word(const char *w)
{
	return strcmp(w, "from") == 0 || strcmp(w, "sender") == 0 ||
	    strcmp(w, "for") == 0;
}

/* The words of a list, up to the next of from, sender, for. */
static int
rule_list_end(char **w, int i, int n)
{
	while (i < n && !is_rule_word(w[i]))
		i++;
	return i;
}

/* accept's "from ..." part at w[i]; the index after it, or -1. */
static int
accept_from(struct parse_ctx *ctx, struct rule *r, char **w, int i, int n)
{
	struct netaddr	 na;
	int		 end;

	if (i >= n) {
		perr(ctx, "accept: from what? (any, local, src NET, auth)");
		return -1;
	}
	end = rule_list_end(w, i + 1, n);
	if (strcmp(w[i], "any") == 0 || strcmp(w[i], "local") == 0) {
		r->from = w[i][0] == 'a' ? RULE_FROM_ANY : RULE_FROM_LOCAL;
		return i + 1;
	}
	if (strcmp(w[i], "src") == 0) {
		r->from = RULE_FROM_SRC;
		if (end == i + 1) {
			perr(ctx, "accept: from src needs a network");
			return -1;
		}
		for (i++; i < end; i++)
			if (netaddr_parse(w[i], &na) == -1 ||
			    rule_add_item(r, RULE_ITEM_NET, &na) == -1) {
				perr(ctx, "accept: %s is not an address or "
				    "network (host bits must be zero)", w[i]);
				return -1;
			}
		return end;
	}
	if (strcmp(w[i], "auth") == 0) {
		r->from = RULE_FROM_AUTH;
		for (i++; i < end; i++)
			if (rule_add_item(r, RULE_ITEM_USER, w[i]) == -1) {
				perr(ctx, "accept: bad user %s", w[i]);
				return -1;
			}
		return end;
	}
	perr(ctx, "accept: from %s: expected any, local, src or auth", w[i]);
	return -1;
}

/* Read a file of addresses and @domains, one a line, into r's rcpts. */
static int
accept_rcpt_file(struct parse_ctx *ctx, struct rule *r, const char *path)
{
	struct policy	 tmp;
	size_t		 i;
	int		 rc;

	if (path[0] != '/') {
		perr(ctx, "accept: rcpt-file %s is not an absolute path", path);
		return -1;
	}
	policy_init(&tmp);
	rc = conf_recipients_load(&tmp, path, ctx->errs);
	for (i = 0; rc == 0 && i < tmp.nrcpts; i++)
		if (rule_add_item(r, RULE_ITEM_RCPT, tmp.rcpts[i]) == -1)
			rc = -1;
	policy_free(&tmp);
	if (rc != 0)
		perr(ctx, "accept: rcpt-file %s cannot be used", path);
	return rc == 0 ? 0 : -1;
}

/* accept's "for ..." part at w[i]; the index after it, or -1. */
static int
accept_for(struct parse_ctx *ctx, struct rule *r, char **w, int i, int n)
{
	enum rule_item	 kind;
	int		 end;

	if (i < n && strcmp(w[i], "any") == 0) {
		r->forwhat = RULE_FOR_ANY;
		return i + 1;
	}
	if (i + 1 < n && strcmp(w[i], "rcpt-file") == 0) {
		r->forwhat = RULE_FOR_RCPT;
		return accept_rcpt_file(ctx, r, w[i + 1]) == -1 ? -1 : i + 2;
	}
	if (i >= n || (strcmp(w[i], "domain") != 0 &&
	    strcmp(w[i], "rcpt") != 0)) {
		perr(ctx, "accept: for what? (any, domain D, rcpt ADDR, "
		    "rcpt-file FILE)");
		return -1;
	}
	r->forwhat = w[i][0] == 'd' ? RULE_FOR_DOMAIN : RULE_FOR_RCPT;
	kind = w[i][0] == 'd' ? RULE_ITEM_DOMAIN : RULE_ITEM_RCPT;
	end = rule_list_end(w, i + 1, n);
	if (end == i + 1) {
		perr(ctx, "accept: for %s needs a value", w[i]);
		return -1;
	}
	for (i++; i < end; i++)
		if (rule_add_item(r, kind, w[i]) == -1) {
			perr(ctx, "accept: %s is not a %s", w[i], kind ==
			    RULE_ITEM_DOMAIN ? "domain" : "address or @domain");
			return -1;
		}
	return end;
}

/* accept [from ...] [sender ...] for ... (SPEC 7.1) */
void
kw_accept(struct parse_ctx *ctx, char **w, int n)
{
	struct policy	*p = &ctx->cf->policy;
	struct rule	*r;
	int		 i = 0, end, seen_for = 0, seen_from = 0;

	if ((r = rule_new(p, RULE_FROM_ANY, RULE_FOR_ANY, ctx->line)) == NULL) {
		perr(ctx, "accept: out of memory");
		return;
	}
	while (i >= 0 && i < n) {
		if (strcmp(w[i], "from") == 0 && !seen_from++)
			i = accept_from(ctx, r, w, i + 1, n);
		else if (strcmp(w[i], "for") == 0 && !seen_for++)
			i = accept_for(ctx, r, w, i + 1, n);
		else if (strcmp(w[i], "sender") == 0 && r->senders.n == 0) {
			end = rule_list_end(w, i + 1, n);
			for (i++; i < end && i >= 0; i++)
				if (rule_add_item(r, RULE_ITEM_SENDER, w[i]) ==
				    -1) {
					perr(ctx, "accept: sender %s is not an "
					    "address or @domain", w[i]);
					i = -2;
				}
			if (i > 0 && r->senders.n == 0) {
				perr(ctx, "accept: sender needs a value");
				i = -1;
			}
		} else {
			perr(ctx, "accept: unexpected %s", w[i]);
			i = -1;
		}
	}
	if (i >= 0 && !seen_for)
		perr(ctx, "accept: \"for\" is required");
	else if (i >= 0 && r->from == RULE_FROM_ANY &&
	    r->forwhat == RULE_FOR_ANY)
		perr(ctx, "accept: \"accept from any for any\" is an open "
		    "relay; refused");
}

/* sender-login FILE: "user address|@domain ..." a line */
void
kw_sender_login(struct parse_ctx *ctx, char **w, int n)
{
	(void)n;
	if (parse_path(ctx, "sender-login", w[0], ctx->cf->sender_login,
	    sizeof(ctx->cf->sender_login)) == -1)
		return;
	if (conf_logins_load(&ctx->cf->policy, w[0], ctx->errs) != 0) {
		perr(ctx, "sender-login: %s cannot be used", w[0]);
		ctx->cf->sender_login[0] = '\0';
	}
}

/*
 * Read a sender-login file: "user address|@domain ..." a line, '#'
 * comments.  Returns the number of errors; -1 if it cannot be read.
 */
int
conf_logins_load(struct policy *p, const char *path, FILE *errs)
{
	struct parse_ctx	 ctx;
	struct conf_file	 dummy;
	char			 line[CONF_LINE_MAX + 1];
	char			*words[CONF_WORDS_MAX];
	FILE			*f;
	int			 i, n, rc;

	if ((f = side_file_open(&ctx, &dummy, path, errs)) == NULL)
		return -1;
	p->sender_login = 1;
	while ((rc = conf_read_line(f, line)) != -1) {
		ctx.line++;
		if (rc != 0) {
			perr(&ctx, rc == 1 ? "line too long" : "NUL byte in line");
			continue;
		}
		if ((n = split_words(&ctx, line, words)) <= 0)
			continue;
		if (n < 2)
			perr(&ctx, "expected \"user address|@domain ...\"");
		for (i = 1; i < n; i++)
			if (login_add(p, words[0], words[i]) == -1)
				perr(&ctx, "%s is not an address or @domain",
				    words[i]);
	}
	fclose(f);
	return (int)ctx.errors;
}
