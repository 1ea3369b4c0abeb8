/*
 * The parent process: keeps root, binds the listeners, forks and
 * respawns the children, and answers signals.
 */
#ifndef SMTPD_PARENT_H
#define SMTPD_PARENT_H

#include <sys/types.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>

#include "cmdline.h"
#include "event.h"
#include "imsg.h"
#include "parse.h"
#include "policy.h"
#include "proto.h"

#define PARENT_MAX_LISTENERS	32
#define PARENT_MAX_WORKERS	256
#define RESPAWN_BACKOFF_MIN	250	/* ms, after a quick death */
#define RESPAWN_BACKOFF_MAX	10000
#define RESPAWN_QUICK_DEATH	1000	/* ms: died sooner than this */
#define PARENT_UPSTREAM_ADDRS	8
#define SLOTS_HASH_SIZE		1024	/* per-address session counts */

struct slot_held;

#define PING_INTERVAL_MS	5000	/* a ping to every child this often */
#define PING_DEADLINE_MIN_MS	1000	/* unanswered this long: killed */
#define PING_STARTUP_MS		120000	/* the same before the first answer */
#define STOP_GRACE_MS		2000	/* stopped this long: killed */

struct parent;

struct child {
	struct child	*next;
	struct parent	*parent;
	enum proc_role	 role;
	pid_t		 pid;
	uint32_t	 slot;		/* worker slot */
	uint32_t	 channel;	/* worker: its relay channel id */
	uint32_t	 idtag;		/* worker: in its session ids */
	int		 retiring;	/* replaced on SIGHUP, draining */
	int		 stop_sent;	/* worker: IMSG_STOP is on its way */
	struct ev_timer	 retire_timer;	/* kill a retired worker after */
	uint64_t	 started;
	uint32_t	 load;
	uint32_t	 max_sessions;	/* worker: as configured at its start */
	int		 auth;		/* worker: AUTH offered at its start */
	struct slot_held **slots;	/* worker: max-sessions-per-ip slots */
	uint32_t	 nslots;
	struct imsgbuf	 ib;
	uint32_t	 ping_seq;	/* of the last ping sent */
	uint64_t	 ping_sent;	/* when, if unanswered; else 0 */
	int		 ping_ok;	/* it answered one: it is up */
	int		 stopped;	/* by a signal (WUNTRACED) */
	int		 killed;	/* SIGKILL sent: reaping pending */
	struct ev_timer	 stop_timer;
};

struct slot {
	struct parent	*parent;
	struct child	*child;
	uint64_t	 backoff;
	struct ev_timer	 timer;
	uint32_t	 index;		/* workers: 0..N-1; the relay: N */
};

struct listener {
	int		 fd;
	uint32_t	 flags;
	struct netaddr	 proxy[LISTEN_PROXY_MAX];	/* proxy-from */
	uint32_t	 nproxy;
	char		 name[HOSTPORT_MAX];
};

/* An upstream's credentials, from its auth file ("": no AUTH). */
struct upstream_secret {
	char	 user[AUTH_FIELD_MAX + 1];
	char	 pass[AUTH_FIELD_MAX + 1];
};

struct parent {
	struct smtpd_conf	 conf;
	struct policy		 policy;
	const char		*conffile;	/* NULL: command line only */
	struct cmdline		*cmdline;
	char			 self[PATH_MAX];
	int			 argv_foreground;
	int			 argv_verbose;
	uint64_t		 nofile_soft;	/* for programs run: 0 same */
	struct listener		 listeners[PARENT_MAX_LISTENERS];
	unsigned int		 nlisteners;
	struct child		*children;
	struct slot		 slots[PARENT_MAX_WORKERS + 1];
	uint32_t		 next_channel;
	char			 deliver[CONF_DELIVER_MAX];
	char			*tls_cert;	/* PEM, for the workers */
	size_t			 tls_certlen;
	char			*tls_key;
	size_t			 tls_keylen;
	struct routes		 routes;	/* upstreams and routes */
	struct upstream_secret	 secrets[ROUTES_UPSTREAMS_MAX];
	uid_t			 deliver_uid;
	gid_t			 deliver_gid;
	int			 stopping;
	int			 sigfd;
	uint64_t		 auth_ok;	/* AUTH verdicts, for metrics */
	uint64_t		 auth_failed;
	uint64_t		 stats[STAT_MAX];	/* the workers' events */
	int			 control_warning; /* no control socket */
	char			 control_error[256];
	int			 reload_ok;	/* the last reload's outcome */
	char			 reload_result[1024];
	struct ev_timer		 stop_timer;
};

int	parent_main(struct cmdline *);
int	listener_open(struct listener *, const struct hostport *, char *,
	    size_t);
void	parent_spawn(struct parent *, struct slot *);
void	parent_spawn_all(struct parent *);
void	parent_child_exited(struct parent *, pid_t, int);
struct child *parent_child_by_pid(struct parent *, pid_t);
void	parent_stop(struct parent *);
void	parent_reload(struct parent *);
void	parent_reload_children(struct parent *, uint32_t, int);
int	listeners_prepare(struct parent *, const struct listen_conf *,
	    unsigned int, struct listener *, unsigned int *, char *, size_t);
void	listeners_abort(struct parent *, struct listener *, unsigned int);
void	listeners_commit(struct parent *, struct listener *, unsigned int,
	    unsigned int *, unsigned int *);
void	parent_stats(struct parent *);
int	parent_load_conf(struct parent *, struct conf_file *, FILE *);
void	parent_send_upstream(struct parent *, struct child *, uint32_t);
int	parent_resolve_request(struct parent *, struct child *,
	    struct imsg *);
void	parent_routes_setup(struct parent *, struct conf_file *);
int	parent_routes_load(struct parent *, struct conf_file *,
	    const struct smtpd_conf *, struct routes *,
	    struct upstream_secret *, FILE *);
void	parent_die_at(const char *, unsigned int, const char *, ...)
	    __attribute__((noreturn, format(printf, 3, 4)));
void	parent_send_routes(struct parent *, struct child *, int);
void	parent_idtag_send(struct parent *, struct child *);
void	parent_child_send(struct child *, struct imsg_out *);
int	parent_deliver_run(struct parent *, struct child *, struct imsg *);
int	parent_deliver_exited(struct parent *, pid_t, int);
void	parent_deliver_kill_all(void);
int	parent_users_load(const char *, FILE *);
int	parent_auth_verify(const char *, const char *);
int	parent_auth_request(struct parent *, struct child *, struct imsg *);
int	parent_slot_ask(struct parent *, struct child *, struct imsg *);
int	parent_slot_free(struct child *, struct imsg *);
void	parent_slots_release(struct child *);
int	upstream_auth_read(const char *, const char *, char *, size_t, char *,
	    size_t, char *, size_t);
char	*parent_read_pem(const char *, size_t *, char *, size_t);
int	parent_lock_queue(const char *, char *, size_t);
int	parent_open_pid(const char *, int, char *, size_t);
void	parent_write_pid(void);
void	parent_remove_pid(void);

const char *parent_role_name(enum proc_role);
void	parent_kill_child(struct child *, const char *);
void	parent_watch_init(struct parent *);
int	parent_watch_pong(struct child *, struct imsg *);
int	parent_watch_stopped(struct parent *, pid_t, int);
void	parent_watch_forget(struct child *);
void	parent_send_pem(struct child *, uint32_t, const char *, size_t);
void	parent_reload_notify(struct parent *);
int	parent_control_open(const char *, char *, size_t);
void	parent_control_send(struct child *);
int	parent_control_peer(struct parent *, struct child *, struct imsg *);
int	parent_control_request(struct parent *, struct child *, struct imsg *);
int	parent_control_stat(struct parent *, struct imsg *);

#endif
