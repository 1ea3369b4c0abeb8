/*
 * Configuration defaults and its imsg encoding, both driven by the list
 * of settings.h.  Every field is read with a checked helper, every
 * number against its bounds; a child refuses a configuration it cannot
 * fully parse.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "conf.h"

#define SETTING_DEF_U32(d)	.def = (d)
#define SETTING_DEF_U64(d)	.def = (d)
#define SETTING_DEF_DURATION(d)	.def = (d)
#define SETTING_DEF_SIZE(d)	.def = (d)
#define SETTING_DEF_RATE(d)	.def = (d)
#define SETTING_DEF_BOOL(d)	.def = (d)
#define SETTING_DEF_STR(d)	.sdef = (d)
#define SETTING_DEF_PATH(d)	.sdef = (d)

#define SETTING_ROW(n, f, t, h, d, lo, hi, rl) {			\
	.name = (n), .type = SET_##t, .how = SET_##h,			\
	.reload = SET_##rl, .off = offsetof(struct smtpd_conf, f),	\
	.size = sizeof(((struct smtpd_conf *)0)->f),			\
	.min = (lo), .max = (hi), SETTING_DEF_##t(d) },

const struct setting settings[] = {
	SMTPD_SETTINGS(SETTING_ROW)
};
const size_t nsettings = sizeof(settings) / sizeof(settings[0]);

int
setting_is_str(const struct setting *s)
{
	return s->type == SET_STR || s->type == SET_PATH;
}

/* A number setting's value, whatever its width. */
uint64_t
setting_get(const struct smtpd_conf *c, const struct setting *s)
{
	const char	*p = (const char *)c + s->off;
	uint64_t	 v64;
	uint32_t	 v32;

	if (s->size == sizeof(v64)) {
		memcpy(&v64, p, sizeof(v64));
		return v64;
	}
	memcpy(&v32, p, sizeof(v32));
	return v32;
}

/* Set a number setting; v must fit it (setting_in_bounds()). */
void
setting_set(struct smtpd_conf *c, const struct setting *s, uint64_t v)
{
	char		*p = (char *)c + s->off;
	uint32_t	 v32 = (uint32_t)v;

	if (s->size == sizeof(v))
		memcpy(p, &v, sizeof(v));
	else
		memcpy(p, &v32, sizeof(v32));
}

/* The default is always valid (workers' 0: one per CPU). */
int
setting_in_bounds(const struct setting *s, uint64_t v)
{
	return v == s->def || (v >= s->min && v <= s->max);
}

/* Defaults of SPEC sections 3 and 4. */
void
conf_defaults(struct smtpd_conf *c)
{
	const struct setting	*s;
	size_t			 i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < nsettings; i++) {
		s = &settings[i];
		if (setting_is_str(s))
			strlcpy((char *)c + s->off, s->sdef, s->size);
		else
			setting_set(c, s, s->def);
	}
	if (gethostname(c->hostname, sizeof(c->hostname)) == -1 ||
	    c->hostname[0] == '\0')
		strlcpy(c->hostname, "localhost", sizeof(c->hostname));
	c->hostname[sizeof(c->hostname) - 1] = '\0';
}

int
conf_send(struct imsgbuf *ib, const struct smtpd_conf *c)
{
	const struct setting	*s;
	struct imsg_out		 out;
	size_t			 i;

	imsg_out_init(&out, IMSG_CONF, 0, -1);
	for (i = 0; i < nsettings; i++) {
		s = &settings[i];
		if (setting_is_str(s))
			imsg_add_str(&out, (const char *)c + s->off);
		else if (s->size == sizeof(uint64_t))
			imsg_add_u64(&out, setting_get(c, s));
		else
			imsg_add_u32(&out, (uint32_t)setting_get(c, s));
	}
	return imsgbuf_queue(ib, &out);
}

/*
 * Every number within its bounds; -1 with the setting named in why if
 * one is not.  Strings are bounded by their fields.
 */
int
conf_check(const struct smtpd_conf *c, char *why, size_t whylen)
{
	const struct setting	*s;
	size_t			 i;
	uint64_t		 v;

	for (i = 0; i < nsettings; i++) {
		s = &settings[i];
		if (setting_is_str(s))
			continue;
		if (!setting_in_bounds(s, v = setting_get(c, s))) {
			snprintf(why, whylen, "%s: %llu is out of bounds "
			    "(%llu to %llu)", s->name, (unsigned long long)v,
			    (unsigned long long)s->min,
			    (unsigned long long)s->max);
			return -1;
		}
	}
	return 0;
}

/* Fill c from an IMSG_CONF; -1 if anything is short, long or absurd. */
int
conf_recv(struct imsg *imsg, struct smtpd_conf *c)
{
	const struct setting	*s;
	char			 why[128];
	size_t			 i;
	uint64_t		 v64;
	uint32_t		 v32;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < nsettings; i++) {
		s = &settings[i];
		if (setting_is_str(s)) {
			/* NUL-terminated, within its field, no NUL inside. */
			if (imsg_get_str(imsg, (char *)c + s->off, s->size) ==
			    -1)
				return -1;
		} else if (s->size == sizeof(v64)) {
			if (imsg_get_u64(imsg, &v64) == -1)
				return -1;
			setting_set(c, s, v64);
		} else {
			if (imsg_get_u32(imsg, &v32) == -1)
				return -1;
			setting_set(c, s, v32);
		}
	}
	if (imsg_get_end(imsg) == -1 || conf_check(c, why, sizeof(why)) == -1)
		return -1;
	/* Dropping privileges to root, or to the relay's user, is none. */
	if (c->drop_privs && (c->uid == 0 || c->gid == 0 ||
	    c->queue_uid == 0 || c->queue_gid == 0 || c->uid == c->queue_uid))
		return -1;
	return 0;
}

/* Whether word is one of the blank-separated words of list. */
static int
has_word(const char *list, const char *word)
{
	size_t		 n = strlen(word);
	const char	*p;

	for (p = list; (p = strstr(p, word)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' ||
		    p[n] == '\0'))
			return 1;
	return 0;
}

/*
 * A reload: the settings that need a restart keep their values in c
 * from old.  The names of the file's settings whose new value is not
 * applied go to kept ("workers mode"); returns their number.
 */
size_t
conf_keep(struct smtpd_conf *c, const struct smtpd_conf *old, char *kept,
    size_t keptlen)
{
	const struct setting	*s;
	const char		*p, *o;
	size_t			 i, n = 0;

	kept[0] = '\0';
	for (i = 0; i < nsettings; i++) {
		s = &settings[i];
		if (s->reload != SET_KEEP)
			continue;
		p = (const char *)c + s->off;
		o = (const char *)old + s->off;
		if (s->how != SET_IN && (setting_is_str(s) ? strcmp(p, o) != 0 :
		    setting_get(c, s) != setting_get(old, s)) &&
		    !has_word(kept, s->name)) {
			if (n++ > 0)
				strlcat(kept, " ", keptlen);
			strlcat(kept, s->name, keptlen);
		}
		memcpy((char *)c + s->off, o, s->size);
	}
	return n;
}

/* Whether a reload's c kept every restart-only setting of old. */
int
conf_kept_same(const struct smtpd_conf *c, const struct smtpd_conf *old)
{
	const struct setting	*s;
	size_t			 i;

	for (i = 0; i < nsettings; i++) {
		s = &settings[i];
		if (s->reload == SET_KEEP && memcmp((const char *)c + s->off,
		    (const char *)old + s->off, s->size) != 0)
			return 0;
	}
	return 1;
}
