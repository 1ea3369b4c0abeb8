/*
 * debug mode delivery: the block Python's DebuggingServer printed.
 */
#ifndef SMTPD_DEBUG_H
#define SMTPD_DEBUG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What the printer needs of the envelope; NULL or "" options: none. */
struct debug_msg {
	const char	*peer_ip;
	const char	*mail_opts;	/* MAIL parameters, space-separated */
	const char	*rcpt_opts;	/* the last RCPT's parameters */
	uint32_t	 format;	/* DEBUG_FORMAT_TEXT or _BYTES */
};

/* A message in a spool file, checked against its committed size. */
struct debug_spool {
	int		 fd;
	uint64_t	 base;		/* where it starts in the file */
	uint64_t	 size;
	size_t		 have;		/* bytes of it read already */
};

/*
 * A kept spool file is emptied once it holds this much: the messages of
 * a session follow each other in it until then (no ftruncate() a small
 * message, and the pages of the last ones used again).
 */
#define DEBUG_SPOOL_KEEP	4096

int	debug_spool_check(int spoolfd, uint64_t base, uint64_t size,
	    struct debug_spool *);
int	debug_print_spool(const struct debug_spool *, const struct debug_msg *,
	    FILE *);
int	debug_print(int spoolfd, uint64_t size, const struct debug_msg *,
	    FILE *);
int	debug_spool_next(const struct debug_spool *, uint64_t *base);

/* debug_hold.c: answers held until the flush that prints their messages */
#define DEBUG_QID_MAX	32
typedef void	(*debug_reply_fn)(uint32_t channel, uint32_t session,
		    uint32_t type, const char *text);
void	debug_hold(uint32_t channel, uint32_t session, uint32_t nrcpt,
	    int kept, const char *qid);
void	debug_flush(FILE *, debug_reply_fn);

#endif
