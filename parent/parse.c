/*
 * smtpd.conf parser.  Line oriented: a keyword and its words; '#'
 * starts a comment outside quotes; "double quotes" keep spaces, with \"
 * and \\ as the only escapes; commas separate list items.  Every error
 * is reported as "file:line: what", and parsing goes on to find more.
 */
#include <arpa/inet.h>

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "conf.h"
#include "imsg.h"
#include "parse.h"
#include "parse_int.h"


/* How a keyword of keywords[] is read. */
enum kw_type {
	KW_FUNC,		/* parse() does it all */
	KW_PATH,		/* an absolute path, char[PATH_MAX] */
};

struct keyword {
	const char	*name;
	int		 min, max;	/* words after the keyword; -1: any */
	int		 repeatable;
	void		(*parse)(struct parse_ctx *, char **, int);
	enum kw_type	 type;
	size_t		 off;		/* of a KW_PATH in struct conf_file */
};

#define KW_FILE(name, field) \
	{ name, 1, 1, 0, NULL, KW_PATH, offsetof(struct conf_file, field) }

void __attribute__((format(printf, 2, 3)))
perr(struct parse_ctx *ctx, const char *fmt, ...)
{
	va_list	 ap;

	fprintf(ctx->errs, "%s:%u: ", ctx->file, ctx->line);
	va_start(ap, fmt);
	vfprintf(ctx->errs, fmt, ap);
	va_end(ap);
	fputc('\n', ctx->errs);
	ctx->errors++;
}

void
conf_file_init(struct conf_file *cf)
{
	memset(cf, 0, sizeof(*cf));
	conf_defaults(&cf->conf);
	policy_init(&cf->policy);
	routes_init(&cf->routes);
}

void
conf_file_free(struct conf_file *cf)
{
	policy_free(&cf->policy);
	routes_free(&cf->routes);
}

/* "30", "30s", "5m", "1h", "4d" in seconds; -1 if malformed or 0. */
int
parse_duration(const char *s, uint32_t *secs)
{
	char		*end;
	unsigned long	 v, mult = 1;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v == 0 || v > UINT32_MAX / mult)
		return -1;
	*secs = (uint32_t)(v * mult);
	return 0;
}

/* A number in [min, max] or an error naming the keyword. */
int
parse_num(struct parse_ctx *ctx, const char *kw, const char *s,
    long long min, long long max, uint32_t *out)
{
	const char	*errstr = NULL;
	long long	 v;

	v = strtonum(s, min, max, &errstr);
	if (errstr != NULL) {
		perr(ctx, "%s: %s is %s (%lld to %lld)", kw, s, errstr, min,
		    max);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

int
parse_path(struct parse_ctx *ctx, const char *kw, const char *s, char *out,
    size_t len)
{
	if (s[0] != '/') {
		perr(ctx, "%s: %s is not an absolute path", kw, s);
		return -1;
	}
	if (strlcpy(out, s, len) >= len) {
		perr(ctx, "%s: path too long", kw);
		return -1;
	}
	return 0;
}

int
valid_hostname(const char *s)
{
	size_t	 i, n = strlen(s);

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '.')
			return 0;
	return 1;
}

static void
kw_hostname(struct parse_ctx *ctx, char **w, int n)
{
	(void)n;
	if (!valid_hostname(w[0]))
		perr(ctx, "hostname: %s is not a host name", w[0]);
	else
		strlcpy(ctx->cf->conf.hostname, w[0],
		    sizeof(ctx->cf->conf.hostname));
}

/*
 * proxy-from NET[, NET...] at w[*i]: the networks, as many words as
 * parse as one, at least one.  0, or -1 after an error.
 */
static int
parse_proxy_from(struct parse_ctx *ctx, char **w, int n, int *i,
    struct listen_conf *l)
{
	struct netaddr	 na;

	while (*i + 1 < n && netaddr_parse(w[*i + 1], &na) == 0) {
		if (l->nproxy == LISTEN_PROXY_MAX) {
			perr(ctx, "listen: proxy-from: more than %d networks",
			    LISTEN_PROXY_MAX);
			return -1;
		}
		l->proxy[l->nproxy++] = na;
		(*i)++;
	}
	if (l->nproxy == 0) {
		perr(ctx, "listen: proxy-from needs an address or network%s%s",
		    *i + 1 < n ? ", not " : "", *i + 1 < n ? w[*i + 1] : "");
		return -1;
	}
	l->flags |= LISTEN_PROXY;
	return 0;
}

/*
 * A metrics listener speaks HTTP, not SMTP: none of the SMTP options,
 * and a port of its own (25 would be a mistake).  The relay takes at
 * most LISTEN_METRICS_MAX of them.
 */
static int
listen_metrics_check(struct parse_ctx *ctx, const struct listen_conf *l,
    int port_given)
{
	const struct conf_file	*cf = ctx->cf;
	unsigned int		 i, n = 0;

	if (!(l->flags & LISTEN_METRICS))
		return 0;
	if (l->flags & ~LISTEN_METRICS) {
		perr(ctx, "listen: metrics takes none of tls, "
		    "starttls-required, auth and proxy-from");
		return -1;
	}
	if (!port_given) {
		perr(ctx, "listen: metrics needs \"port N\"");
		return -1;
	}
	for (i = 0; i < cf->nlisten; i++)
		if (cf->listen[i].flags & LISTEN_METRICS)
			n++;
	if (n == LISTEN_METRICS_MAX) {
		perr(ctx, "listen: more than %d metrics listeners",
		    LISTEN_METRICS_MAX);
		return -1;
	}
	return 0;
}

/*
 * listen on ADDR [port N] [tls] [starttls-required] [auth]
 *     [proxy-from NET[, NET...]]
 * listen on ADDR port N metrics
 */
static void
kw_listen(struct parse_ctx *ctx, char **w, int n)
{
	struct conf_file	*cf = ctx->cf;
	struct listen_conf	 l;
	struct sockaddr_storage	 ss;
	socklen_t		 slen;
	uint32_t		 port = 25;
	int			 i, port_given = 0;

	memset(&l, 0, sizeof(l));
	if (strcmp(w[0], "on") != 0) {
		perr(ctx, "listen: expected \"listen on ADDRESS\"");
		return;
	}
	if (strlcpy(l.hp.host, w[1], sizeof(l.hp.host)) >= sizeof(l.hp.host)) {
		perr(ctx, "listen: address too long");
		return;
	}
	for (i = 2; i < n; i++) {
		if (strcmp(w[i], "port") == 0 && i + 1 < n) {
			if (parse_num(ctx, "listen port", w[++i], 1, 65535,
			    &port) == -1)
				return;
			port_given = 1;
		} else if (strcmp(w[i], "tls") == 0)
			l.flags |= LISTEN_TLS;
		else if (strcmp(w[i], "starttls-required") == 0)
			l.flags |= LISTEN_STARTTLS_REQ;
		else if (strcmp(w[i], "auth") == 0)
			l.flags |= LISTEN_AUTH;
		else if (strcmp(w[i], "metrics") == 0)
			l.flags |= LISTEN_METRICS;
		else if (strcmp(w[i], "proxy-from") == 0) {
			if (parse_proxy_from(ctx, w, n, &i, &l) == -1)
				return;
		} else {
			perr(ctx, "listen: unknown option %s", w[i]);
			return;
		}
	}
	l.hp.port = (uint16_t)port;
	if (hostport_sockaddr(&l.hp, &ss, &slen) == -1) {
		perr(ctx, "listen: %s is not an IP address or localhost",
		    w[1]);
		return;
	}
	if (listen_metrics_check(ctx, &l, port_given) == -1)
		return;
	if ((l.flags & LISTEN_TLS) && (l.flags & LISTEN_STARTTLS_REQ)) {
		perr(ctx, "listen: tls and starttls-required exclude each "
		    "other");
		return;
	}
	if (cf->nlisten == CONF_MAX_LISTEN) {
		perr(ctx, "listen: more than %d listeners", CONF_MAX_LISTEN);
		return;
	}
	cf->listen[cf->nlisten++] = l;
}

/* tls certificate PATH key PATH */
static void
kw_tls(struct parse_ctx *ctx, char **w, int n)
{
	(void)n;
	if (strcmp(w[0], "certificate") != 0 || strcmp(w[2], "key") != 0) {
		perr(ctx, "tls: expected \"tls certificate FILE key FILE\"");
		return;
	}
	parse_path(ctx, "tls certificate", w[1], ctx->cf->tls_cert,
	    sizeof(ctx->cf->tls_cert));
	parse_path(ctx, "tls key", w[3], ctx->cf->tls_key,
	    sizeof(ctx->cf->tls_key));
}

static void
kw_mode(struct parse_ctx *ctx, char **w, int n)
{
	int	 mode;

	(void)n;
	if ((mode = cmdline_mode(w[0])) == 0)
		perr(ctx, "mode: %s is not debug, relay or deliver", w[0]);
	else {
		ctx->cf->conf.mode = mode;
		ctx->mode_line = ctx->line;
	}
}

/* debug-format text|bytes: DebuggingServer's decode_data=True or False */
static void
kw_debug_format(struct parse_ctx *ctx, char **w, int n)
{
	(void)n;
	if (strcmp(w[0], "text") == 0)
		ctx->cf->conf.debug_format = DEBUG_FORMAT_TEXT;
	else if (strcmp(w[0], "bytes") == 0)
		ctx->cf->conf.debug_format = DEBUG_FORMAT_BYTES;
	else
		perr(ctx, "debug-format: %s is not text or bytes", w[0]);
}

/*
 * Split a deliver command into argv words: blanks separate words,
 * 'single' and "double" quotes keep blanks, a backslash takes the next
 * character as it is.  Nothing is expanded: no shell ever sees it.
 * Returns the number of words, or -1 (unbalanced quote, too many).
 */
int
cmd_split(const char *cmd, char *buf, size_t buflen, char **argv, int max)
{
	const char	*r = cmd;
	char		*w = buf, *end = buf + buflen;
	int		 n = 0;
	char		 quote;

	for (;;) {
		while (*r == ' ' || *r == '\t')
			r++;
		if (*r == '\0')
			break;
		if (n == max - 1)
			return -1;
		argv[n++] = w;
		quote = 0;
		for (; *r != '\0' && (quote || (*r != ' ' && *r != '\t')); r++) {
			if (w + 1 >= end)
				return -1;
			if (quote && *r == quote)
				quote = 0;
			else if (!quote && (*r == '\'' || *r == '"'))
				quote = *r;
			else if (*r == '\\' && quote != '\'' && r[1] != '\0')
				*w++ = *++r;
			else
				*w++ = *r;
		}
		if (quote)
			return -1;
		*w++ = '\0';
	}
	argv[n] = NULL;
	return n;
}

static void
kw_deliver(struct parse_ctx *ctx, char **w, int n)
{
	char	 buf[CONF_DELIVER_MAX], *argv[CONF_DELIVER_ARGS];

	(void)n;
	if (strlcpy(ctx->cf->deliver, w[0], sizeof(ctx->cf->deliver)) >=
	    sizeof(ctx->cf->deliver))
		perr(ctx, "deliver: command too long");
	else if (cmd_split(w[0], buf, sizeof(buf), argv,
	    CONF_DELIVER_ARGS) < 1)
		perr(ctx, "deliver: unbalanced quote, too many words or no "
		    "program");
	else if (argv[0][0] != '/')
		perr(ctx, "deliver: the program must be an absolute path");
}

static void
kw_relay_domains(struct parse_ctx *ctx, char **w, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (policy_add_domain(&ctx->cf->policy, w[i]) == -1)
			perr(ctx, "relay-domains: %s is not a domain", w[i]);
}

static void
kw_relay_recipients(struct parse_ctx *ctx, char **w, int n)
{
	FILE	*f;

	(void)n;
	if (parse_path(ctx, "relay-recipients", w[0], ctx->cf->recipients,
	    sizeof(ctx->cf->recipients)) == -1)
		return;
	/* A file that cannot be read is this line's error (file:line). */
	if ((f = fopen(w[0], "re")) == NULL) {
		perr(ctx, "relay-recipients: %s: %s", w[0], strerror(errno));
		ctx->cf->recipients[0] = '\0';
		return;
	}
	fclose(f);
}

static void
kw_trusted_networks(struct parse_ctx *ctx, char **w, int n)
{
	struct netaddr	 na;
	int		 i;

	for (i = 0; i < n; i++) {
		if (netaddr_parse(w[i], &na) == -1)
			perr(ctx, "trusted-networks: %s is not an address or "
			    "network (host bits must be zero)", w[i]);
		else if (policy_add_net(&ctx->cf->policy, &na) == -1)
			perr(ctx, "trusted-networks: out of memory");
	}
}

/* queue-min-free: a size (K, M, G) or a share of the file system. */
static void
kw_queue_min_free(struct parse_ctx *ctx, char **w, int n)
{
	const char	*errstr = NULL;
	char		 num[16];
	size_t		 len = strlen(w[0]);
	uint64_t	 v;

	(void)n;
	if (len > 1 && len < sizeof(num) && w[0][len - 1] == '%') {
		memcpy(num, w[0], len - 1);
		num[len - 1] = '\0';
		ctx->cf->conf.queue_min_free_pct = strtonum(num, 1, 100,
		    &errstr);
		ctx->cf->conf.queue_min_free = 0;
		if (errstr != NULL)
			perr(ctx, "queue-min-free: %s is not a share from 1%% "
			    "to 100%%", w[0]);
		return;
	}
	if (parse_size(w[0], &v) == -1 || v == 0) {
		perr(ctx, "queue-min-free: %s is not a size (bytes, or with K, "
		    "M or G) or a share (5%%)", w[0]);
		return;
	}
	ctx->cf->conf.queue_min_free = v;
	ctx->cf->conf.queue_min_free_pct = 0;
}

/*
 * The keywords with a function of their own, and the files of struct
 * conf_file; the simple settings of struct smtpd_conf are settings[]
 * (settings.h), read by their type.
 */
static const struct keyword keywords[] = {
	{ "hostname", 1, 1, 0, kw_hostname, KW_FUNC, 0 },
	{ "listen", 2, 9 + LISTEN_PROXY_MAX, 1, kw_listen, KW_FUNC, 0 },
	{ "tls", 4, 4, 0, kw_tls, KW_FUNC, 0 },
	{ "mode", 1, 1, 0, kw_mode, KW_FUNC, 0 },
	{ "debug-format", 1, 1, 0, kw_debug_format, KW_FUNC, 0 },
	{ "upstream", 1, 20, 1, kw_upstream, KW_FUNC, 0 },
	{ "route", 2, -1, 1, kw_route, KW_FUNC, 0 },
	KW_FILE("upstream-auth", upstream_auth),
	{ "deliver", 1, 1, 0, kw_deliver, KW_FUNC, 0 },
	{ "relay-domains", 1, -1, 1, kw_relay_domains, KW_FUNC, 0 },
	{ "relay-recipients", 1, 1, 0, kw_relay_recipients, KW_FUNC, 0 },
	{ "trusted-networks", 1, -1, 1, kw_trusted_networks, KW_FUNC, 0 },
	KW_FILE("users", users),
	{ "accept", 2, -1, 1, kw_accept, KW_FUNC, 0 },
	{ "sender-login", 1, 1, 0, kw_sender_login, KW_FUNC, 0 },
	{ "queue-min-free", 1, 1, 0, kw_queue_min_free, KW_FUNC, 0 },
	KW_FILE("pid-file", pid_file),
};
#define NKEYWORDS	(sizeof(keywords) / sizeof(keywords[0]))
_Static_assert(NKEYWORDS <= CONF_FUNC_KEYWORDS,
    "more keywords than kwline[] holds");

_Static_assert(CONF_RCPT_MAX * (ADDR_PATH_MAX + 5) + 4096 < IMSG_MAX_SIZE,
    "a commit with max-recipients of the longest addresses fits an imsg");

/*
 * The index in kwline[] of keyword name: keywords[] first, then the
 * settings read by their type; -1 if there is none.
 */
static int
keyword_index(const char *name)
{
	size_t	 i;

	for (i = 0; i < NKEYWORDS; i++)
		if (strcmp(keywords[i].name, name) == 0)
			return (int)i;
	for (i = 0; i < nsettings; i++)
		if (settings[i].how == SET_KW &&
		    strcmp(settings[i].name, name) == 0)
			return (int)(NKEYWORDS + i);
	return -1;
}

/* The line where keyword kw was last given, 0 if it was not. */
unsigned int
conf_keyword_line(const struct conf_file *cf, const char *kw)
{
	int	 i;

	if ((i = keyword_index(kw)) == -1 || i >= CONF_KEYWORDS_MAX)
		return 0;
	return cf->kwline[i];
}

/*
 * Split a line into words in place.  Returns the number of words, or
 * -1 after reporting an unterminated quote or too many words.
 */
int
split_words(struct parse_ctx *ctx, char *line, char **words)
{
	char	*r = line, *wp;
	int	 n = 0;

	for (;;) {
		while (*r == ' ' || *r == '\t' || *r == ',' || *r == '\r')
			r++;
		if (*r == '\0' || *r == '#')
			return n;
		if (n == CONF_WORDS_MAX) {
			perr(ctx, "too many words");
			return -1;
		}
		words[n++] = wp = r;
		if (*r == '"') {
			for (r++; *r != '"'; r++) {
				if (*r == '\0') {
					perr(ctx, "unterminated quote");
					return -1;
				}
				if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
					r++;
				*wp++ = *r;
			}
			r++;
			if (*r != '\0' && *r != ' ' && *r != '\t' &&
			    *r != ',' && *r != '#' && *r != '\r') {
				perr(ctx, "text after a closing quote");
				return -1;
			}
		} else {
			while (*r != '\0' && *r != ' ' && *r != '\t' &&
			    *r != ',' && *r != '#' && *r != '"' && *r != '\r')
				*wp++ = *r++;
			if (*r == '"') {
				perr(ctx, "quote inside a word");
				return -1;
			}
		}
		if (*r == '#') {
			*wp = '\0';
			return n;
		}
		if (*r != '\0')
			r++;
		*wp = '\0';
	}
}

/* A size, or "0" when the setting's bounds allow it. */
static int
parse_setting_size(const struct setting *st, const char *v, uint64_t *out)
{
	if (st->min == 0 && strcmp(v, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (parse_size(v, out) == -1 || *out < st->min || *out > st->max)
		return -1;
	return 0;
}

/* The one value of a setting read by its type (settings.h). */
static void
parse_setting(struct parse_ctx *ctx, const struct setting *st,
    const char *v)
{
	char		*field = (char *)&ctx->cf->conf + st->off;
	uint64_t	 v64;
	uint32_t	 v32;

	switch (st->type) {
	case SET_U32:
	case SET_U64:
		if (parse_num(ctx, st->name, v, st->min, st->max, &v32) == 0)
			setting_set(&ctx->cf->conf, st, v32);
		break;
	case SET_DURATION:
		if (parse_duration(v, &v32) == -1 || v32 < st->min ||
		    v32 > st->max)
			perr(ctx, "%s: %s is not a duration (30s, 5m, 1h, 4d)",
			    st->name, v);
		else
			setting_set(&ctx->cf->conf, st, v32);
		break;
	case SET_SIZE:
	case SET_RATE:
		if (parse_setting_size(st, v, &v64) == 0)
			setting_set(&ctx->cf->conf, st, v64);
		else if (st->type == SET_SIZE)
			perr(ctx, "%s: %s is not a size (bytes, or with K, M "
			    "or G)", st->name, v);
		else
			perr(ctx, "%s: %s is not a size per second (bytes, or "
			    "with K or M)", st->name, v);
		break;
	case SET_BOOL:
		if (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0)
			setting_set(&ctx->cf->conf, st, strcmp(v, "yes") == 0);
		else
			perr(ctx, "%s: expected yes or no", st->name);
		break;
	case SET_STR:
		if (strlcpy(field, v, st->size) >= st->size)
			perr(ctx, "%s: name too long", st->name);
		break;
	case SET_PATH:
		parse_path(ctx, st->name, v, field, st->size);
		break;
	}
}

static void
parse_line(struct parse_ctx *ctx, char *line)
{
	char			*words[CONF_WORDS_MAX];
	const struct keyword	*kw = NULL;
	const struct setting	*st = NULL;
	const char		*name;
	int			 i, n, min = 1, max = 1;

	if ((n = split_words(ctx, line, words)) <= 0)
		return;
	if ((i = keyword_index(words[0])) == -1) {
		perr(ctx, "unknown keyword %s", words[0]);
		return;
	}
	if ((size_t)i < NKEYWORDS) {
		kw = &keywords[i];
		name = kw->name;
		min = kw->min;
		max = kw->max;
	} else
		name = (st = &settings[i - NKEYWORDS])->name;
	/* Lines count from 1: a keyword not given yet has 0. */
	if ((kw == NULL || !kw->repeatable) && ctx->cf->kwline[i] != 0) {
		perr(ctx, "%s given twice", name);
		return;
	}
	ctx->cf->kwline[i] = ctx->line;
	if (n - 1 < min || (max != -1 && n - 1 > max)) {
		perr(ctx, "%s: wrong number of arguments", name);
		return;
	}
	if (st != NULL)
		parse_setting(ctx, st, words[1]);
	else if (kw->type == KW_FUNC)
		kw->parse(ctx, words + 1, n - 1);
	else
		parse_path(ctx, name, words[1], (char *)ctx->cf + kw->off,
		    PATH_MAX);
}

/* Cross-keyword checks, once the whole file is read. */
static void
parse_finish(struct parse_ctx *ctx)
{
	struct conf_file	*cf = ctx->cf;

	if (cf->conf.mode == MODE_DELIVER && cf->deliver[0] == '\0') {
		/* Name the line that asked for deliver mode. */
		ctx->line = ctx->mode_line;
		perr(ctx, "mode deliver needs a deliver program");
	}
	if ((cf->tls_cert[0] == '\0') != (cf->tls_key[0] == '\0'))
		perr(ctx, "tls needs both certificate and key");
	if (routes_finish(&cf->routes, ctx->file, ctx->errs) == -1)
		ctx->errors++;
}

/*
 * Read a line of f into line (CONF_LINE_MAX + 1 bytes) without its
 * newline: 0, or -1 at the end of the file, 1 if the line is longer
 * than CONF_LINE_MAX (the rest of it is skipped), 2 if it holds a NUL
 * byte (which fgets() cannot tell from the end of the line).
 */
int
conf_read_line(FILE *f, char *line)
{
	size_t	 len = 0;
	int	 c, rc = 0;

	while ((c = getc(f)) != EOF && c != '\n') {
		if (len == CONF_LINE_MAX)
			rc = 1;
		else
			line[len++] = (char)c;
		if (c == '\0' && rc == 0)
			rc = 2;
	}
	line[len] = '\0';
	if (c == EOF && len == 0)
		return -1;
	return rc;
}

/*
 * Parse path into cf (initialised by conf_file_init).  Returns the
 * number of errors printed to errs; -1 if the file cannot be read.
 */
int
conf_file_parse(struct conf_file *cf, const char *path, FILE *errs)
{
	struct parse_ctx	 ctx;
	char			 line[CONF_LINE_MAX + 1];
	FILE			*f;
	int			 rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cf = cf;
	ctx.file = path;
	ctx.errs = errs;
	if ((f = fopen(path, "re")) == NULL) {
		fprintf(errs, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((rc = conf_read_line(f, line)) != -1) {
		ctx.line++;
		if (rc == 1)
			perr(&ctx, "line longer than %d characters",
			    CONF_LINE_MAX);
		else if (rc == 2)
			perr(&ctx, "NUL byte in line");
		else
			parse_line(&ctx, line);
	}
	if (ferror(f))
		perr(&ctx, "read error");
	fclose(f);
	if (cf->recipients[0] != '\0' &&
	    conf_recipients_load(&cf->policy, cf->recipients, errs) != 0)
		ctx.errors++;
	parse_finish(&ctx);
	policy_finish(&cf->policy);
	return (int)ctx.errors;
}

/*
 * Open a file that a keyword names (relay-recipients, sender-login),
 * with a context of its own for errors at its lines; NULL after saying
 * why it cannot be read.
 */
FILE *
side_file_open(struct parse_ctx *ctx, struct conf_file *dummy,
    const char *path, FILE *errs)
{
	FILE	*f;

	memset(ctx, 0, sizeof(*ctx));
	ctx->cf = dummy;
	ctx->file = path;
	ctx->errs = errs;
	if ((f = fopen(path, "re")) == NULL)
		fprintf(errs, "%s: %s\n", path, strerror(errno));
	return f;
}

/*
 * Read a relay-recipients file: one "user@domain" or "@domain" a line,
 * '#' comments.  Returns the number of errors; -1 if it cannot be read.
 */
int
conf_recipients_load(struct policy *p, const char *path, FILE *errs)
{
	struct parse_ctx	 ctx;
	struct conf_file	 dummy;
	char			 line[CONF_LINE_MAX + 1];
	char			*words[CONF_WORDS_MAX];
	FILE			*f;
	int			 n, rc;

	if ((f = side_file_open(&ctx, &dummy, path, errs)) == NULL)
		return -1;
	while ((rc = conf_read_line(f, line)) != -1) {
		ctx.line++;
		if (rc == 1) {
			perr(&ctx, "line too long");
			break;
		}
		if (rc == 2) {
			perr(&ctx, "NUL byte in line");
			continue;
		}
		if ((n = split_words(&ctx, line, words)) <= 0)
			continue;
		if (n != 1)
			perr(&ctx, "one address or @domain a line");
		else if (policy_add_rcpt(p, words[0]) == -1)
			perr(&ctx, "%s is not an address or @domain", words[0]);
	}
	fclose(f);
	return (int)ctx.errors;
}
