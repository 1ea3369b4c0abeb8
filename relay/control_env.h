/*
 * The parts of a control request that are read without the socket or
 * the queue (relay/control_env.c).
 */
#ifndef SMTPD_CONTROL_ENV_H
#define SMTPD_CONTROL_ENV_H

#include <stdint.h>

#include "queue.h"

/* Who sent a submission, and what the configuration allows it. */
struct submit_who {
	const char	*user;		/* from SO_PEERCRED, by the parent */
	const char	*hostname;
	long long	 max_size;
	int		 admin;		/* root or control-group */
};

const char	*submit_envelope(const struct submit_who *, struct qmsg *,
		    char *lines, uint64_t *want, const char **denied);
int		 control_words(char *line, char **words, int max);

#endif
