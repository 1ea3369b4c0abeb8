/*
 * The configuration file (SPEC section 4, smtpd.conf(5)).  Parsing has
 * no side effects but the error lines it prints, so -t can run it and
 * SIGHUP can try it before anything changes.
 */
#ifndef SMTPD_PARSE_H
#define SMTPD_PARSE_H

#include <limits.h>
#include <stdio.h>

#include "cmdline.h"
#include "policy.h"
#include "routes.h"
#include "proto.h"

#define CONF_MAX_LISTEN		32
#define CONF_LINE_MAX		4096
#define CONF_WORDS_MAX		256
#define CONF_DELIVER_MAX	1024
#define CONF_DELIVER_ARGS	64
#define CONF_FUNC_KEYWORDS	20	/* keywords[] of parse.c, at most */
#define CONF_KEYWORDS_MAX	(CONF_FUNC_KEYWORDS + SETTINGS_N)

struct listen_conf {
	struct hostport	 hp;
	uint32_t	 flags;		/* LISTEN_* */
	struct netaddr	 proxy[LISTEN_PROXY_MAX];	/* proxy-from */
	uint32_t	 nproxy;
};

struct conf_file {
	struct smtpd_conf	 conf;
	struct listen_conf	 listen[CONF_MAX_LISTEN];
	unsigned int		 nlisten;
	struct policy		 policy;
	struct routes		 routes;	/* upstreams and routes */
	char			 tls_cert[PATH_MAX];
	char			 tls_key[PATH_MAX];
	char			 upstream_auth[PATH_MAX];
	char			 deliver[CONF_DELIVER_MAX];
	char			 recipients[PATH_MAX];
	char			 users[PATH_MAX];
	char			 sender_login[PATH_MAX];
	char			 pid_file[PATH_MAX];	/* "" : the default */
	unsigned int		 kwline[CONF_KEYWORDS_MAX]; /* last line of each */
};

void	conf_file_init(struct conf_file *);
void	conf_file_free(struct conf_file *);
int	conf_file_parse(struct conf_file *, const char *path, FILE *errs);
int	conf_recipients_load(struct policy *, const char *path, FILE *errs);
int	conf_logins_load(struct policy *, const char *path, FILE *errs);
int	parse_duration(const char *, uint32_t *);
int	cmd_split(const char *, char *, size_t, char **, int);
unsigned int conf_keyword_line(const struct conf_file *, const char *);

#endif
