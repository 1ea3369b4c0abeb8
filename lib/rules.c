/*
 * accept rules (SPEC section 7.1), tried in order after the shorthands:
 * the first whose every condition holds accepts the recipient.  And
 * sender-login, Postfix's reject_sender_login_mismatch: an
 * authenticated user sends only as the addresses listed for them.
 */
#include <sys/socket.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "policy.h"
#include "proto.h"
#include "rules.h"

int
strlist_add(struct strlist *l, const char *s)
{
	char	**v, *copy;

	if ((copy = strdup(s)) == NULL)
		return -1;
	if ((v = reallocarray(l->v, l->n + 1, sizeof(*v))) == NULL) {
		free(copy);
		return -1;
	}
	v[l->n++] = copy;
	l->v = v;
	return 0;
}

void
strlist_free(struct strlist *l)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Whether s is in l (case-insensitively). */
int
strlist_has(const struct strlist *l, const char *s)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

static int
strcase_ptr(const void *a, const void *b)
{
	return strcasecmp(*(char * const *)a, *(char * const *)b);
}

int
strlist_find_sorted(const struct strlist *l, const char *s)
{
	return l->n > 0 && bsearch(&s, l->v, l->n, sizeof(*l->v),
	    strcase_ptr) != NULL;
}

struct rule *
rule_new(struct policy *p, uint32_t from, uint32_t forwhat, uint32_t line)
{
	struct rule	*r;

	if (from > RULE_FROM_AUTH || forwhat > RULE_FOR_RCPT)
		return NULL;
	if ((r = reallocarray(p->rules, p->nrules + 1, sizeof(*r))) == NULL)
		return NULL;
	p->rules = r;
	r = &p->rules[p->nrules++];
	memset(r, 0, sizeof(*r));
	r->from = from;
	r->forwhat = forwhat;
	r->line = line;
	return r;
}

/* An address or @domain entry, its domain normalized; -1 if neither. */
static int
rule_add_entry(struct strlist *l, const char *s)
{
	char	 e[ADDR_PATH_MAX + 1];

	if (rcpt_entry_normalize(s, e, sizeof(e)) == -1)
		return -1;
	return strlist_add(l, e);
}

/* Add a condition's item: a struct netaddr, or a string. */
int
rule_add_item(struct rule *r, enum rule_item kind, const void *item)
{
	char		 d[ADDR_DOMAIN_MAX + 1];
	struct netaddr	*nets;

	switch (kind) {
	case RULE_ITEM_NET:
		if ((nets = reallocarray(r->nets, r->nnets + 1,
		    sizeof(*nets))) == NULL)
			return -1;
		nets[r->nnets++] = *(const struct netaddr *)item;
		r->nets = nets;
		return 0;
	case RULE_ITEM_USER:
		if (*(const char *)item == '\0')
			return -1;
		return strlist_add(&r->users, item);
	case RULE_ITEM_SENDER:
		return rule_add_entry(&r->senders, item);
	case RULE_ITEM_DOMAIN:
		if (domain_normalize(item, d, sizeof(d)) == -1)
			return -1;
		return strlist_add(&r->domains, d);
	case RULE_ITEM_RCPT:
		return rule_add_entry(&r->rcpts, item);
	}
	return -1;
}

void
rules_free(struct policy *p)
{
	size_t	 i;

	for (i = 0; i < p->nrules; i++) {
		free(p->rules[i].nets);
		strlist_free(&p->rules[i].users);
		strlist_free(&p->rules[i].senders);
		strlist_free(&p->rules[i].domains);
		strlist_free(&p->rules[i].rcpts);
	}
	free(p->rules);
	for (i = 0; i < p->nlogins; i++) {
		free(p->logins[i].user);
		free(p->logins[i].entry);
	}
	free(p->logins);
	p->rules = NULL;
	p->nrules = 0;
	p->logins = NULL;
	p->nlogins = 0;
}

/* Sort what is looked up (rcpt-file lists may be long). */
void
rules_finish(struct policy *p)
{
	size_t	 i;

	for (i = 0; i < p->nrules; i++)
		if (p->rules[i].rcpts.n > 1)
			qsort(p->rules[i].rcpts.v, p->rules[i].rcpts.n,
			    sizeof(char *), strcase_ptr);
}

/*
 * Whether addr ("local@domain") is listed in l as itself or as its
 * @domain.  l holds normalized entries; addr's domain is normalized
 * here.
 */
int
entry_match(const struct strlist *l, const char *addr)
{
	char		 key[ADDR_PATH_MAX + 1], dom[ADDR_DOMAIN_MAX + 1];
	const char	*at = strrchr(addr, '@');
	size_t		 i;

	if (at == NULL || domain_normalize(at + 1, dom, sizeof(dom)) == -1)
		return 0;
	if (snprintf(key, sizeof(key), "%.*s@%s", (int)(at - addr), addr,
	    dom) >= (int)sizeof(key))
		return 0;
	for (i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], key) == 0 ||
		    (l->v[i][0] == '@' && strcasecmp(l->v[i] + 1, dom) == 0))
			return 1;
	return 0;
}

static int
rule_from_match(const struct rule *r, const char *ip, const char *user)
{
	struct netaddr	 lo4, lo6;
	size_t		 i;

	switch (r->from) {
	case RULE_FROM_ANY:
		return 1;
	case RULE_FROM_LOCAL:
		netaddr_parse("127.0.0.0/8", &lo4);
		netaddr_parse("::1", &lo6);
		return netaddr_match(&lo4, ip) || netaddr_match(&lo6, ip);
	case RULE_FROM_SRC:
		for (i = 0; i < r->nnets; i++)
			if (netaddr_match(&r->nets[i], ip))
				return 1;
		return 0;
	case RULE_FROM_AUTH:
		return user != NULL && (r->users.n == 0 ||
		    strlist_has(&r->users, user));
	}
	return 0;
}

static int
rule_for_match(const struct rule *r, const struct mailaddr *a,
    const char *dom)
{
	char	 key[ADDR_PATH_MAX + 1];

	switch (r->forwhat) {
	case RULE_FOR_ANY:
		return 1;
	case RULE_FOR_DOMAIN:
		return strlist_has(&r->domains, dom);
	case RULE_FOR_RCPT:
		snprintf(key, sizeof(key), "@%s", dom);
		if (strlist_find_sorted(&r->rcpts, key))
			return 1;
		return snprintf(key, sizeof(key), "%s@%s", a->local, dom) <
		    (int)sizeof(key) && strlist_find_sorted(&r->rcpts, key);
	}
	return 0;
}

/* Whether some accept rule accepts rcpt a. */
int
rules_match(const struct policy *p, const struct mailaddr *a,
    const char *ip, const char *user, const char *sender)
{
	char		 dom[ADDR_DOMAIN_MAX + 1];
	const struct rule *r;
	size_t		 i;

	if (domain_normalize(a->domain, dom, sizeof(dom)) == -1)
		return 0;
	for (i = 0; i < p->nrules; i++) {
		r = &p->rules[i];
		if (!rule_from_match(r, ip, user))
			continue;
		if (r->senders.n > 0 && (sender == NULL ||
		    !entry_match(&r->senders, sender)))
			continue;
		if (rule_for_match(r, a, dom))
			return 1;
	}
	return 0;
}

int
login_add(struct policy *p, const char *user, const char *entry)
{
	char		 e[ADDR_PATH_MAX + 1];
	struct login	*l;

	if (*user == '\0' || rcpt_entry_normalize(entry, e, sizeof(e)) == -1)
		return -1;
	if ((l = reallocarray(p->logins, p->nlogins + 1, sizeof(*l))) == NULL)
		return -1;
	p->logins = l;
	l = &p->logins[p->nlogins];
	if ((l->user = strdup(user)) == NULL)
		return -1;
	if ((l->entry = strdup(e)) == NULL) {
		free(l->user);
		return -1;
	}
	p->nlogins++;
	p->sender_login = 1;
	return 0;
}

/* Whether one of user's entries is sender or its @domain. */
int
login_check(const struct policy *p, const char *user, const char *sender)
{
	struct strlist	 one;
	char		*v[1];
	size_t		 i;

	for (i = 0; i < p->nlogins; i++) {
		if (strcmp(p->logins[i].user, user) != 0)
			continue;
		v[0] = p->logins[i].entry;
		one.v = v;
		one.n = 1;
		if (entry_match(&one, sender))
			return 1;
	}
	return 0;
}

static int
rule_send_items(struct imsgbuf *ib, enum rule_item kind,
    const struct strlist *l)
{
	struct imsg_out	 out;
	size_t		 i;

	for (i = 0; i < l->n; i++) {
		imsg_out_init(&out, IMSG_CONF_RULE_ITEM, 0, -1);
		imsg_add_u32(&out, kind);
		imsg_add_str(&out, l->v[i]);
		if (imsgbuf_queue(ib, &out) == -1)
			return -1;
	}
	return 0;
}

static int
rule_send(struct imsgbuf *ib, const struct rule *r)
{
	struct imsg_out	 out;
	size_t		 i;

	imsg_out_init(&out, IMSG_CONF_RULE, 0, -1);
	imsg_add_u32(&out, r->line);
	imsg_add_u32(&out, r->from);
	imsg_add_u32(&out, r->forwhat);
	if (imsgbuf_queue(ib, &out) == -1)
		return -1;
	for (i = 0; i < r->nnets; i++) {
		imsg_out_init(&out, IMSG_CONF_RULE_ITEM, 0, -1);
		imsg_add_u32(&out, RULE_ITEM_NET);
		imsg_add_data(&out, &r->nets[i], sizeof(r->nets[i]));
		if (imsgbuf_queue(ib, &out) == -1)
			return -1;
	}
	if (rule_send_items(ib, RULE_ITEM_USER, &r->users) == -1 ||
	    rule_send_items(ib, RULE_ITEM_SENDER, &r->senders) == -1 ||
	    rule_send_items(ib, RULE_ITEM_DOMAIN, &r->domains) == -1 ||
	    rule_send_items(ib, RULE_ITEM_RCPT, &r->rcpts) == -1)
		return -1;
	return 0;
}

/* The rules as IMSG_CONF_RULE and _RULE_ITEM, the logins as _LOGIN. */
int
rules_send(struct imsgbuf *ib, const struct policy *p)
{
	struct imsg_out	 out;
	size_t		 i;

	for (i = 0; i < p->nrules; i++)
		if (rule_send(ib, &p->rules[i]) == -1)
			return -1;
	for (i = 0; i < p->nlogins; i++) {
		imsg_out_init(&out, IMSG_CONF_LOGIN, 0, -1);
		imsg_add_str(&out, p->logins[i].user);
		imsg_add_str(&out, p->logins[i].entry);
		if (imsgbuf_queue(ib, &out) == -1)
			return -1;
	}
	if (p->sender_login && p->nlogins == 0) {
		/* A file with no line: only <> for everyone. */
		imsg_out_init(&out, IMSG_CONF_LOGIN, 0, -1);
		imsg_add_str(&out, "");
		imsg_add_str(&out, "");
		if (imsgbuf_queue(ib, &out) == -1)
			return -1;
	}
	return 0;
}

static int
rule_recv_item(struct policy *p, struct imsg *imsg)
{
	char		 s[ADDR_PATH_MAX + 1];
	struct netaddr	 na;
	uint32_t	 kind;

	if (p->nrules == 0 || imsg_get_u32(imsg, &kind) == -1)
		return -1;
	if (kind == RULE_ITEM_NET) {
		if (imsg_get_data(imsg, &na, sizeof(na)) == -1 ||
		    imsg_get_end(imsg) == -1 ||
		    (na.family != AF_INET && na.family != AF_INET6) ||
		    na.prefix > (na.family == AF_INET ? 32 : 128))
			return -1;
		return rule_add_item(&p->rules[p->nrules - 1], kind, &na);
	}
	if (kind > RULE_ITEM_RCPT || imsg_get_str(imsg, s, sizeof(s)) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	return rule_add_item(&p->rules[p->nrules - 1], kind, s);
}

/* Take one IMSG_CONF_RULE, _RULE_ITEM or _LOGIN; -1 if malformed. */
int
rules_recv(struct policy *p, struct imsg *imsg)
{
	char		 user[ADDR_PATH_MAX + 1], entry[ADDR_PATH_MAX + 1];
	uint32_t	 line, from, forwhat;

	switch (imsg->hdr.type) {
	case IMSG_CONF_RULE:
		if (imsg_get_u32(imsg, &line) == -1 ||
		    imsg_get_u32(imsg, &from) == -1 ||
		    imsg_get_u32(imsg, &forwhat) == -1 ||
		    imsg_get_end(imsg) == -1)
			return -1;
		return rule_new(p, from, forwhat, line) == NULL ? -1 : 0;
	case IMSG_CONF_RULE_ITEM:
		return rule_recv_item(p, imsg);
	case IMSG_CONF_LOGIN:
		if (imsg_get_str(imsg, user, sizeof(user)) == -1 ||
		    imsg_get_str(imsg, entry, sizeof(entry)) == -1 ||
		    imsg_get_end(imsg) == -1)
			return -1;
		if (user[0] == '\0' && entry[0] == '\0') {
			p->sender_login = 1;
			return 0;
		}
		return login_add(p, user, entry);
	}
	return -1;
}
