/*
 * The run-time configuration on the wire: the parent sends it, every
 * child reads and checks it.  Everything is driven by the list of
 * settings.h, described at run time by settings[].
 */
#ifndef SMTPD_CONF_H
#define SMTPD_CONF_H

#include <stddef.h>

#include "imsg.h"
#include "proto.h"

enum setting_type {
	SET_U32, SET_U64, SET_DURATION, SET_SIZE, SET_RATE, SET_BOOL,
	SET_STR, SET_PATH,
};

enum setting_how {
	SET_KW,			/* a keyword of its own, read by its type */
	SET_FN,			/* a keyword function or the command line */
	SET_IN,			/* internal, set by the parent */
};

enum setting_reload {
	SET_NEW,		/* a reload applies it */
	SET_KEEP,		/* kept until a restart */
};

/* One line of SMTPD_SETTINGS. */
struct setting {
	const char		*name;
	enum setting_type	 type;
	enum setting_how	 how;
	enum setting_reload	 reload;
	size_t			 off;		/* in struct smtpd_conf */
	size_t			 size;		/* of the field */
	uint64_t		 def, min, max;	/* numbers */
	const char		*sdef;		/* strings */
};

extern const struct setting	settings[];
extern const size_t		nsettings;

void	conf_defaults(struct smtpd_conf *);
int	conf_send(struct imsgbuf *, const struct smtpd_conf *);
int	conf_recv(struct imsg *, struct smtpd_conf *);
int	conf_check(const struct smtpd_conf *, char *why, size_t);
int	setting_is_str(const struct setting *);
uint64_t setting_get(const struct smtpd_conf *, const struct setting *);
void	setting_set(struct smtpd_conf *, const struct setting *, uint64_t);
int	setting_in_bounds(const struct setting *, uint64_t);
size_t	conf_keep(struct smtpd_conf *, const struct smtpd_conf *,
	    char *kept, size_t);
int	conf_kept_same(const struct smtpd_conf *, const struct smtpd_conf *);

#endif
