/*
 * What the parts of the configuration parser share (parse.c, and
 * parse_relay.c for the relay keywords of SPEC 7.1 and 7.2).
 */
#ifndef SMTPD_PARSE_INT_H
#define SMTPD_PARSE_INT_H

#include <stdint.h>
#include <stdio.h>

#include "parse.h"

struct parse_ctx {
	struct conf_file	*cf;
	const char		*file;
	unsigned int		 line;
	unsigned int		 mode_line;	/* of the mode keyword */
	unsigned int		 errors;
	FILE			*errs;
};

void	perr(struct parse_ctx *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	parse_num(struct parse_ctx *, const char *, const char *, long long,
	    long long, uint32_t *);
int	parse_path(struct parse_ctx *, const char *, const char *, char *,
	    size_t);
int	valid_hostname(const char *);
int	split_words(struct parse_ctx *, char *, char **);
int	conf_read_line(FILE *, char *);
FILE	*side_file_open(struct parse_ctx *, struct conf_file *, const char *,
	    FILE *);

void	kw_upstream(struct parse_ctx *, char **, int);
void	kw_route(struct parse_ctx *, char **, int);
void	kw_accept(struct parse_ctx *, char **, int);
void	kw_sender_login(struct parse_ctx *, char **, int);

#endif
