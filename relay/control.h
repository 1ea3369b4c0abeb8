/*
 * The control socket, served by the relay (SPEC section 12): smtpctl's
 * commands on the queue, and the mail that sendmail submits.
 *
 * A request is lines ending with an empty line; the first line is the
 * command and its words ("show queue --json", "flush all", "submit").
 * A submission's header adds "from ADDR" (optional), "rcpt ADDR" (one
 * or more) and "size N"; N bytes of message follow.  The answer is one
 * line, "ok", "error TEXT", "tempfail TEXT" or "denied TEXT", then the
 * command's output, up to the end of the connection.
 */
#ifndef SMTPD_CONTROL_H
#define SMTPD_CONTROL_H

#include <sys/types.h>
#include <stdint.h>
#include <stdio.h>

#include "conn.h"
#include "imsg.h"
#include "proc.h"
#include "proto.h"
#include "queue.h"

#define CTL_HEADER_MAX	(256 * 1024)	/* a request's lines */
#define CTL_CONNS_MAX	64		/* clients at once */
#define CTL_TIMEOUT_MS	60000		/* a client must finish in this */
#define CTL_USER_MAX	64

struct ctl_conn {
	struct conn	 conn;		/* first: conn.c allocates it all */
	uid_t		 uid;
	gid_t		 gid;
	int		 known;		/* the parent said who it is */
	int		 admin;		/* root or control-group */
	char		 user[CTL_USER_MAX];
	char		*in;		/* the request's lines */
	size_t		 inlen;
	int		 dispatched;	/* the request is being answered */
	uint32_t	 waiting;	/* CTL_REQ_* sent to the parent, or 0 */
	int		 json;
	/* A submission: the message goes to the spool as it comes. */
	struct qmsg	*msg;
	int		 spoolfd;
	uint64_t	 want;		/* bytes of message still to come */
	uint64_t	 written;
};

typedef void (*control_send_cb)(struct imsg_out *);

void	control_init(const struct smtpd_conf *, control_send_cb);
int	control_on_socket(struct proc_chan *, struct imsg *);
int	control_on_peer_info(struct proc_chan *, struct imsg *);
int	control_on_result(struct proc_chan *, struct imsg *);

/* control.c, for the commands */
void	control_reply(struct ctl_conn *, const char *status, const char *fmt,
	    ...) __attribute__((format(printf, 3, 4)));
void	control_answer(struct ctl_conn *, char *buf, size_t len);
void	control_ask_parent(struct ctl_conn *, uint32_t req);
const struct smtpd_conf *control_conf(void);

/* control_cmd.c */
void	control_dispatch(struct ctl_conn *, char **words, int nwords);
void	control_parent_result(struct ctl_conn *, int ok, const char *text);

/* control_submit.c */
int	control_submit_start(struct ctl_conn *, char *header);
void	control_submit_data(struct ctl_conn *, const char *, size_t);
void	control_submit_free(struct ctl_conn *);

/* control_stats.c */
void	control_stats(struct ctl_conn *, const char *parent_text, int metrics);
void	stats_received(void);
void	stats_printed(uint32_t nrcpt);
void	stats_attempt(struct qmsg *);
void	stats_rcpt(const char *label, struct qrcpt *, int64_t created);
int	stats_metrics(const char *parent_text, char **buf, size_t *len);

#endif
