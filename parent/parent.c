/*
 * Children: fork and exec of each role, the start-up messages, the
 * worker<->relay channels, respawn with back-off, and what children may
 * ask of the parent.  A child that sends anything malformed or outside
 * its role is killed.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <bsd/string.h>

#include "conf.h"
#include "log.h"
#include "parent.h"
#include "proc.h"
#include "sandbox.h"

static void	parent_child_io(int, int, void *);

const char *
parent_role_name(enum proc_role role)
{
	return role_name(role);
}

struct child *
parent_child_by_pid(struct parent *p, pid_t pid)
{
	struct child	*c;

	for (c = p->children; c != NULL; c = c->next)
		if (c->pid == pid)
			return c;
	return NULL;
}

static struct child *
parent_relay(struct parent *p)
{
	return p->slots[p->conf.workers].child;
}

/* Queue a message to a child and write what its socket takes. */
void
parent_child_send(struct child *c, struct imsg_out *out)
{
	if (proc_send(&c->ib, out) == -1)
		log_warn("message to %s %d", parent_role_name(c->role),
		    (int)c->pid);
}

static void
child_send_empty(struct child *c, uint32_t type)
{
	struct imsg_out	 out;

	imsg_out_init(&out, type, 0, -1);
	parent_child_send(c, &out);
}

/* A new socketpair between worker w and the relay, one end to each. */
static void
parent_connect(struct parent *p, struct child *w)
{
	struct child	*relay = parent_relay(p);
	struct imsg_out	 out;
	int		 sp[2];

	if (relay == NULL)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1) {
		log_warn("socketpair");
		return;
	}
	w->channel = ++p->next_channel;
	imsg_out_init(&out, IMSG_RELAY_CHANNEL, w->channel, sp[0]);
	parent_child_send(relay, &out);
	imsg_out_init(&out, IMSG_RELAY_CHANNEL, w->channel, sp[1]);
	parent_child_send(w, &out);
}

/* The metrics listeners, to a new relay: it serves them. */
static void
parent_send_metrics(struct parent *p, struct child *relay)
{
	struct imsg_out	 out;
	unsigned int	 i;
	int		 fd;

	for (i = 0; i < p->nlisteners; i++) {
		if (!(p->listeners[i].flags & LISTEN_METRICS))
			continue;
		if ((fd = dup(p->listeners[i].fd)) == -1)
			fatal("dup metrics listener");
		imsg_out_init(&out, IMSG_CONF_METRICS, 0, fd);
		parent_child_send(relay, &out);
	}
}

/* Send a child what it needs to start: configuration and descriptors. */
static void
parent_startup(struct parent *p, struct child *c)
{
	struct imsg_out	 out;
	struct child	*w;
	unsigned int	 i;
	int		 fd;

	if (conf_send(&c->ib, &p->conf) == -1 ||
	    policy_send(&c->ib, &p->policy) == -1)
		fatal("configuration to child");
	if (c->role == ROLE_SESSION) {
		for (i = 0; i < p->nlisteners; i++) {
			/* HTTP: the relay's (parent_send_metrics()). */
			if (p->listeners[i].flags & LISTEN_METRICS)
				continue;
			if ((fd = dup(p->listeners[i].fd)) == -1)
				fatal("dup listener");
			imsg_out_init(&out, IMSG_CONF_LISTENER, 0, fd);
			imsg_add_u32(&out, p->listeners[i].flags);
			imsg_add_data(&out, p->listeners[i].proxy,
			    p->listeners[i].nproxy *
			    sizeof(p->listeners[i].proxy[0]));
			parent_child_send(c, &out);
		}
		if (p->tls_cert != NULL) {
			parent_send_pem(c, IMSG_CONF_TLS_CERT, p->tls_cert,
			    p->tls_certlen);
			parent_send_pem(c, IMSG_CONF_TLS_KEY, p->tls_key,
			    p->tls_keylen);
		}
		parent_idtag_send(p, c);
		parent_connect(p, c);
	} else {
		if (p->conf.mode == MODE_RELAY)
			parent_send_routes(p, c, 1);
		parent_control_send(c);
		parent_send_metrics(p, c);
		/* A new relay: every live worker needs a new channel. */
		for (w = p->children; w != NULL; w = w->next)
			if (w->role == ROLE_SESSION)
				parent_connect(p, w);
	}
	child_send_empty(c, IMSG_CONF_END);
}

/*
 * The environment of a child: nothing of the parent's (SPEC section
 * 10), but for the sanitizers' options in a sanitizer build, with leak
 * detection off (see sandbox_sanitized()).
 */
static void
parent_child_env(char **envp, size_t n)
{
	const char	*v;
	size_t		 i = 0;

	memset(envp, 0, n * sizeof(*envp));
	if (!sandbox_sanitized())
		return;
	v = getenv("ASAN_OPTIONS");
	if (asprintf(&envp[i++], "ASAN_OPTIONS=%s%sdetect_leaks=0",
	    v != NULL ? v : "", v != NULL && *v != '\0' ? ":" : "") == -1)
		_exit(1);
	if ((v = getenv("UBSAN_OPTIONS")) != NULL && i + 1 < n &&
	    asprintf(&envp[i++], "UBSAN_OPTIONS=%s", v) == -1)
		_exit(1);
}

/* In the child: become role by exec of our own binary. */
static void __attribute__((noreturn))
parent_exec_child(struct parent *p, enum proc_role role, int fd)
{
	char		*argv[8], *envp[4];
	int		 argc = 0;
	sigset_t	 none;

	if (dup2(fd, PROC_PARENT_FD) == -1)
		_exit(1);
	close_range(PROC_PARENT_FD + 1, ~0U, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* The parent alone decides when a child stops. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	parent_child_env(envp, sizeof(envp) / sizeof(envp[0]));
	argv[argc++] = "smtpd";
	if (p->argv_foreground)
		argv[argc++] = "-d";
	if (p->argv_verbose)
		argv[argc++] = "-v";
	argv[argc++] = "-X";
	argv[argc++] = (char *)parent_role_name(role);
	argv[argc] = NULL;
	execve(p->self, argv, envp);
	fprintf(stderr, "smtpd: exec %s: %s\n", p->self, strerror(errno));
	_exit(1);
}

/* Start the child of slot s. */
void
parent_spawn(struct parent *p, struct slot *s)
{
	enum proc_role	 role;
	struct child	*c;
	int		 sp[2];
	pid_t		 pid;

	role = s->index == p->conf.workers ? ROLE_RELAY : ROLE_SESSION;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
		fatal("socketpair");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		close(sp[0]);
		parent_exec_child(p, role, sp[1]);
	}
	close(sp[1]);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("child");
	c->parent = p;
	c->role = role;
	c->pid = pid;
	c->slot = s->index;
	c->started = ev_now();
	c->max_sessions = p->conf.max_sessions;
	c->auth = p->conf.auth_enabled;
	proc_nonblock(sp[0]);
	imsgbuf_init(&c->ib, sp[0]);
	c->next = p->children;
	p->children = c;
	s->child = c;
	if (ev_add(sp[0], EV_READ, parent_child_io, p) == -1)
		fatal("ev_add child");
	log_info("event=spawn role=%s pid=%d", parent_role_name(role), (int)pid);
	parent_startup(p, c);
}

static void
parent_child_free(struct parent *p, struct child *c)
{
	struct child	**cp;

	for (cp = &p->children; *cp != NULL; cp = &(*cp)->next)
		if (*cp == c) {
			*cp = c->next;
			break;
		}
	if (p->slots[c->slot].child == c)
		p->slots[c->slot].child = NULL;
	ev_timer_del(&c->retire_timer);
	parent_slots_release(c);
	parent_watch_forget(c);
	ev_del(c->ib.fd);
	close(c->ib.fd);
	imsgbuf_clear(&c->ib);
	free(c);
}

/* Kill a child that misbehaved; SIGCHLD does the rest. */
void
parent_kill_child(struct child *c, const char *why)
{
	log_warnx("event=kill role=%s pid=%d reason=\"%s\"",
	    parent_role_name(c->role), (int)c->pid, why);
	kill(c->pid, SIGKILL);
}

/* A child's log line: bounded, printable, then to syslog. */
static int
parent_child_log(struct child *c, struct imsg *imsg)
{
	char		 line[LOG_WIRE_MAX];
	uint32_t	 pri;
	size_t		 i;

	if (imsg_get_u32(imsg, &pri) == -1 || pri > LOG_DEBUG ||
	    imsg_get_str(imsg, line, sizeof(line)) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	for (i = 0; line[i] != '\0'; i++)
		if ((unsigned char)line[i] < ' ' || line[i] == 127)
			line[i] = '?';
	log_from_child((int)pri, c->pid, line);
	return 0;
}

/*
 * What a child may ask of the parent.  imsg_rules[] has checked the
 * sender's role, the descriptor and the size; these check the rest.
 */
static int
parent_on_load(struct proc_chan *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg;
	uint32_t	 load;

	/* Its own limit: a reload may have lowered the parent's. */
	if (imsg_get_u32(imsg, &load) == -1 || load > c->max_sessions)
		return -1;
	c->load = load;
	return 0;
}

static int
parent_on_slot_ask(struct proc_chan *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg;

	return parent_slot_ask(c->parent, c, imsg);
}

static int
parent_on_slot_free(struct proc_chan *ch, struct imsg *imsg)
{
	return parent_slot_free(ch->arg, imsg);
}

static int
parent_on_resolve(struct proc_chan *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg;

	return parent_resolve_request(c->parent, c, imsg);
}

static int
parent_on_log(struct proc_chan *ch, struct imsg *imsg)
{
	return parent_child_log(ch->arg, imsg);
}

static int
parent_on_pong(struct proc_chan *ch, struct imsg *imsg)
{
	return parent_watch_pong(ch->arg, imsg);
}

static int
parent_on_auth_request(struct proc_chan *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg;

	/* A worker of before a reload may offer AUTH still. */
	if (!c->auth)
		return -1;
	return parent_auth_request(c->parent, c, imsg);
}

static int
parent_on_deliver_run(struct proc_chan *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg;

	if (c->parent->conf.mode != MODE_DELIVER)
		return -1;
	return parent_deliver_run(c->parent, c, imsg);
}

/* The relay says a worker lied on its channel: the worker is killed. */
static int
parent_on_worker_bad(struct proc_chan *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg, *w;

	for (w = c->parent->children; w != NULL; w = w->next)
		if (w->role == ROLE_SESSION && w->channel == imsg->hdr.peerid)
			parent_kill_child(w, "protocol violation on the "
			    "relay channel");
	return 0;
}

static int
parent_on_ctl_peer(struct proc_chan *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg;

	return parent_control_peer(c->parent, c, imsg);
}

static int
parent_on_ctl_request(struct proc_chan *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg;

	return parent_control_request(c->parent, c, imsg);
}

static int
parent_on_stat(struct proc_chan *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg;

	return parent_control_stat(c->parent, imsg);
}

static const struct proc_handler parent_handlers[] = {
	{ IMSG_LOAD,		parent_on_load },
	{ IMSG_SLOT_ASK,	parent_on_slot_ask },
	{ IMSG_SLOT_FREE,	parent_on_slot_free },
	{ IMSG_RESOLVE,		parent_on_resolve },
	{ IMSG_LOG,		parent_on_log },
	{ IMSG_PONG,		parent_on_pong },
	{ IMSG_AUTH_REQUEST,	parent_on_auth_request },
	{ IMSG_DELIVER_RUN,	parent_on_deliver_run },
	{ IMSG_WORKER_BAD,	parent_on_worker_bad },
	{ IMSG_CTL_PEER,	parent_on_ctl_peer },
	{ IMSG_CTL_REQUEST,	parent_on_ctl_request },
	{ IMSG_STAT,		parent_on_stat },
	{ IMSG_NONE,		NULL },
};

/*
 * A child's channel.  A child that sends anything outside its role or
 * malformed is killed, and nothing more from it is worth reading.
 */
static void
parent_child_io(int fd, int events, void *arg)
{
	struct parent		*p = arg;
	struct child		*c;
	struct proc_chan	 ch;
	char			 why[PROC_WHY_MAX + 32];

	for (c = p->children; c != NULL && c->ib.fd != fd; c = c->next)
		;
	if (c == NULL) {
		ev_del(fd);
		return;
	}
	if ((events & EV_WRITE) && proc_flush(&c->ib) == -1)
		log_warn("write to %s", parent_role_name(c->role));
	if (!(events & EV_READ))
		return;
	proc_chan_init(&ch, &c->ib, ROLE_PARENT, c->role, parent_handlers, c);
	switch (proc_recv(&ch)) {
	case PROC_OK:
		return;
	case PROC_ERROR:
		if (errno == EBADMSG)
			parent_kill_child(c, "malformed message");
		/* Otherwise it is dying; SIGCHLD reaps it. */
		break;
	case PROC_EOF:
		break;
	case PROC_BAD:
		snprintf(why, sizeof(why), "bad message to the parent: %s",
		    ch.why);
		parent_kill_child(c, why);
		break;
	}
	ev_mod(fd, 0);
}

static void
parent_respawn_timer(void *arg)
{
	struct slot	*s = arg;
	struct parent	*p = s->parent;

	if (!p->stopping && s->child == NULL)
		parent_spawn(p, s);
}

/* What a stop waits for: workers first, then the relay. */
static void
parent_stop_progress(struct parent *p)
{
	struct child	*c, *relay = parent_relay(p);
	int		 workers = 0;

	for (c = p->children; c != NULL; c = c->next)
		if (c->role == ROLE_SESSION)
			workers++;
	if (workers > 0)
		return;
	if (relay != NULL) {
		if (!relay->retiring) {
			relay->retiring = 1;
			child_send_empty(relay, IMSG_STOP);
			/* Its deliveries in flight get stop-timeout too. */
			ev_timer_add(&p->stop_timer,
			    (uint64_t)p->conf.stop_timeout * 1000 + 3000);
		}
		return;
	}
	parent_deliver_kill_all();
	parent_remove_pid();
	log_info("event=stop result=clean");
	exit(0);
}

/* A child ended: log it, and start its successor unless stopping. */
void
parent_child_exited(struct parent *p, pid_t pid, int status)
{
	struct child	*c;
	struct slot	*s;
	uint64_t	 lived;
	char		 how[64];

	if (parent_deliver_exited(p, pid, status))
		return;
	if ((c = parent_child_by_pid(p, pid)) == NULL)
		return;
	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "signal=%d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "status=%d", WEXITSTATUS(status));
	s = &p->slots[c->slot];
	lived = ev_now() - c->started;
	if (p->stopping || c->retiring || c->stop_sent)
		log_info("event=exit role=%s pid=%d %s", parent_role_name(c->role),
		    (int)pid, how);
	else
		log_warnx("event=child-died role=%s pid=%d %s uptime_ms=%llu",
		    parent_role_name(c->role), (int)pid, how,
		    (unsigned long long)lived);
	if (s->child != c || p->stopping) {
		parent_child_free(p, c);
		if (p->stopping)
			parent_stop_progress(p);
		return;
	}
	parent_child_free(p, c);
	/* A child that dies at once is restarted ever more slowly. */
	if (lived < RESPAWN_QUICK_DEATH) {
		s->backoff = s->backoff ? s->backoff * 2 : RESPAWN_BACKOFF_MIN;
		if (s->backoff > RESPAWN_BACKOFF_MAX)
			s->backoff = RESPAWN_BACKOFF_MAX;
	} else
		s->backoff = 0;
	if (s->backoff == 0)
		parent_spawn(p, s);
	else
		ev_timer_add(&s->timer, s->backoff);
}

static void
parent_stop_deadline(void *arg)
{
	struct parent	*p = arg;
	struct child	*c;

	for (c = p->children; c != NULL; c = c->next) {
		log_warnx("event=kill role=%s pid=%d reason=stop-deadline",
		    parent_role_name(c->role), (int)c->pid);
		kill(c->pid, SIGKILL);
	}
}

/* SIGTERM or SIGINT: workers drain, then the relay stops. */
void
parent_stop(struct parent *p)
{
	struct child	*c;
	unsigned int	 i;

	if (p->stopping)
		return;
	p->stopping = 1;
	log_info("event=stop-requested");
	/*
	 * The listeners close at once (the workers close theirs on
	 * IMSG_STOP): a new client is refused, and a balancer sends it to
	 * another instance, instead of waiting in a backlog no one reads.
	 */
	for (i = 0; i < p->nlisteners; i++)
		close(p->listeners[i].fd);
	p->nlisteners = 0;
	ev_timer_set(&p->stop_timer, parent_stop_deadline, p);
	ev_timer_add(&p->stop_timer, (uint64_t)p->conf.stop_timeout * 1000 +
	    3000);
	/* Workers a reload retired stop too: their sessions get 421. */
	for (c = p->children; c != NULL; c = c->next)
		if (c->role == ROLE_SESSION && !c->stop_sent) {
			c->stop_sent = 1;
			child_send_empty(c, IMSG_STOP);
		}
	parent_stop_progress(p);
}

/* A retired worker that outlived its bound (it ignored its own). */
static void
parent_retire_deadline(void *arg)
{
	struct child	*c = arg;

	parent_kill_child(c, "retire-deadline");
}

/*
 * A reload: the worker stops accepting and ends with its last session.
 * It is off the pool (its slot has a new worker) but still reaped, and
 * killed if it outlives RETIRE_DEADLINE_MS and its own stop deadline.
 */
static void
parent_retire(struct child *c)
{
	c->retiring = 1;
	child_send_empty(c, IMSG_RETIRE);
	ev_timer_set(&c->retire_timer, parent_retire_deadline, c);
	ev_timer_add(&c->retire_timer, RETIRE_DEADLINE_MS +
	    (uint64_t)c->parent->conf.stop_timeout * 1000 + 5000);
}

/*
 * The relay slot follows the pool's size: it is the one after the
 * workers' (parent_spawn() tells the roles apart by it).
 */
static void
parent_move_relay(struct parent *p, uint32_t from, uint32_t to)
{
	struct slot	*os = &p->slots[from], *ns = &p->slots[to];
	int		 pending = ev_timer_pending(&os->timer);

	if (from == to)
		return;
	ev_timer_del(&os->timer);
	ev_timer_del(&ns->timer);
	ns->child = os->child;
	ns->backoff = os->backoff;
	if (ns->child != NULL)
		ns->child->slot = to;
	os->child = NULL;
	os->backoff = 0;
	if (pending)
		ev_timer_add(&ns->timer, ns->backoff);
}

/*
 * The relay's part of a reload: the settings, the rules and, when it
 * can take them, the upstreams, routes, credentials and addresses,
 * applied together at POLICY_END (a new upstream is never tried
 * before its addresses are there).
 */
static void
parent_reload_relay(struct parent *p, int routes)
{
	struct child	*relay;
	struct imsg_out	 out;

	if ((relay = parent_relay(p)) == NULL)
		return;
	child_send_empty(relay, IMSG_POLICY_BEGIN);
	if (conf_send(&relay->ib, &p->conf) == -1 ||
	    policy_send(&relay->ib, &p->policy) == -1)
		fatal("configuration to relay");
	if (routes && p->conf.mode == MODE_RELAY)
		parent_send_routes(p, relay, 1);
	parent_send_metrics(p, relay);
	imsg_out_init(&out, IMSG_POLICY_END, 0, -1);
	parent_child_send(relay, &out);
}

/*
 * After a reload (parent/reload.c): the relay gets the new
 * configuration, new workers take over with the new listeners and the
 * old ones drain their sessions.  The pool takes its new size.
 */
void
parent_reload_children(struct parent *p, uint32_t old_workers, int routes)
{
	struct child	*c;
	uint32_t	 i;

	parent_move_relay(p, old_workers, p->conf.workers);
	/* Slots the pool no longer has: their workers only drain. */
	for (i = p->conf.workers + 1; i <= old_workers; i++) {
		p->slots[i].child = NULL;
		ev_timer_del(&p->slots[i].timer);
	}
	parent_reload_relay(p, routes);
	for (c = p->children; c != NULL; c = c->next)
		if (c->role == ROLE_SESSION && !c->retiring)
			parent_retire(c);
	for (i = 0; i < p->conf.workers; i++) {
		p->slots[i].child = NULL;
		p->slots[i].backoff = 0;
		ev_timer_del(&p->slots[i].timer);
		parent_spawn(p, &p->slots[i]);
	}
}

/* SIGUSR1: one line per child. */
void
parent_stats(struct parent *p)
{
	struct child	*c;

	for (c = p->children; c != NULL; c = c->next)
		log_info("event=stats role=%s pid=%d sessions=%u%s",
		    parent_role_name(c->role), (int)c->pid, c->load,
		    c->retiring ? " retiring=yes" : "");
}

/* Start the relay, then every worker. */
void
parent_spawn_all(struct parent *p)
{
	uint32_t	 i;

	/* Every slot: a reload may resize the pool. */
	for (i = 0; i <= PARENT_MAX_WORKERS; i++) {
		p->slots[i].index = i;
		p->slots[i].parent = p;
		ev_timer_set(&p->slots[i].timer, parent_respawn_timer,
		    &p->slots[i]);
	}
	parent_spawn(p, &p->slots[p->conf.workers]);
	for (i = 0; i < p->conf.workers; i++)
		parent_spawn(p, &p->slots[i]);
}
