/*
 * The queue's scheduler: when each message is tried, and what happens
 * after an attempt.
 */
#ifndef SMTPD_SCHEDULER_H
#define SMTPD_SCHEDULER_H

#include "proto.h"
#include "queue.h"

#define SCHED_SWEEP_MS	60000

/* Ready-list classes: a route each, and one for nothing left to send. */
#define SCHED_CLASSES		65
#define SCHED_CLASS_NONE	64

void		 sched_init(const struct smtpd_conf *, void (*kick)(void));
void		 sched_add(struct qmsg *);
struct qmsg	*sched_pop(void);
void		 sched_push(struct qmsg *);
void		 sched_later(struct qmsg *);
void		 sched_done(struct qmsg *);
void		 sched_lost(struct qmsg *, const char *why);
void		 sched_lost_loaded(struct qmsg *);
int		 sched_open(struct qmsg *);
void		 sched_retry_now(void);
int		 sched_has_ready(void);
unsigned int	 sched_count(void);
struct qmsg	*sched_ready_first(int cls);
unsigned int	 sched_ready_n(int cls);
void		 sched_set_classify(int (*)(const struct qmsg *));
void		 sched_take(struct qmsg *);
int64_t		 sched_now(void);
struct qmsg	*sched_list(void);
struct qmsg	*sched_find(const char *);
int		 sched_flush(struct qmsg *);
void		 sched_hold(struct qmsg *, int);
int		 sched_remove(struct qmsg *);
int		 sched_bounce(struct qmsg *);
void		 sched_pause(int);
int		 sched_paused(void);
void		 sched_stop_starting(void);

#endif
