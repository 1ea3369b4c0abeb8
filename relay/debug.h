/*
 * debug mode delivery: the block Python's DebuggingServer printed.
 */
#ifndef SMTPD_DEBUG_H
#define SMTPD_DEBUG_H

#include <stdint.h>
#include <stdio.h>

/* What the printer needs of the envelope; NULL or "" options: none. */
struct debug_msg {
	const char	*peer_ip;
	const char	*mail_opts;	/* MAIL parameters, space-separated */
	const char	*rcpt_opts;	/* the last RCPT's parameters */
	uint32_t	 format;	/* DEBUG_FORMAT_TEXT or _BYTES */
};

int	debug_print(int spoolfd, uint64_t size, const struct debug_msg *,
	    FILE *);
int	debug_spool_reset(int spoolfd);

#endif
