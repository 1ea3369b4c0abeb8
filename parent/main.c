/*
 * smtpd: main().  One binary, three roles: without -X it is the parent;
 * the parent execs itself with a hidden -X role for each child, so every
 * child gets a fresh address space layout.
 */
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>
#include <bsd/unistd.h>

#include "conf.h"
#include "log.h"
#include "notify.h"
#include "parent.h"
#include "relay/relay.h"
#include "tls.h"
#include "smtpd/worker.h"

static struct parent	parent;		/* the parent process's state */

/* The configuration being started, to say where a setting came from. */
static struct {
	const char		*file;
	const struct conf_file	*cf;
} die_conf;

/* One line on standard error and exit 1: a start-up error at file:line. */
static void __attribute__((noreturn, format(printf, 3, 0)))
vdie_at(const char *file, unsigned int line, const char *fmt, va_list ap)
{
	if (line != 0 && file != NULL)
		fprintf(stderr, "%s:%u: ", file, line);
	else
		fputs("smtpd: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	exit(1);
}

/* A start-up error at file:line, or without a place when line is 0. */
void
parent_die_at(const char *file, unsigned int line, const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	vdie_at(file, line, fmt, ap);
}

/*
 * A start-up error named by the file and line of keyword kw when it
 * came from the file.
 */
static void __attribute__((noreturn, format(printf, 2, 3)))
die_kw(const char *kw, const char *fmt, ...)
{
	va_list		 ap;
	unsigned int	 line = 0;

	if (kw != NULL && die_conf.cf != NULL)
		line = conf_keyword_line(die_conf.cf, kw);
	va_start(ap, fmt);
	vdie_at(die_conf.file, line, fmt, ap);
}

#define die(...)	die_kw(NULL, __VA_ARGS__)

/* Whether cf has no SMTP listener (none, or metrics ones only). */
static int
listen_smtp_none(const struct conf_file *cf)
{
	unsigned int	 i;

	for (i = 0; i < cf->nlisten; i++)
		if (!(cf->listen[i].flags & LISTEN_METRICS))
			return 0;
	return 1;
}

/*
 * hp is the only SMTP listener, first; the metrics listeners stay (an
 * address on the command line is where mail comes in, not a reason to
 * lose the monitoring).
 */
static void
listen_only(struct conf_file *cf, const struct hostport *hp)
{
	struct listen_conf	 keep[LISTEN_METRICS_MAX];
	unsigned int		 i, n = 0;

	for (i = 0; i < cf->nlisten && n < LISTEN_METRICS_MAX; i++)
		if (cf->listen[i].flags & LISTEN_METRICS)
			keep[n++] = cf->listen[i];
	memset(&cf->listen[0], 0, sizeof(cf->listen[0]));
	cf->listen[0].hp = *hp;
	for (i = 0; i < n; i++)
		cf->listen[1 + i] = keep[i];
	cf->nlisten = 1 + n;
}

/*
 * Read the configuration file (if any) into cf and lay the command line
 * over it (SPEC section 3: command-line values override the file's).
 * Returns the number of errors, printed to errs.
 */
int
parent_load_conf(struct parent *p, struct conf_file *cf, FILE *errs)
{
	const struct cmdline	*cl = p->cmdline;
	struct smtpd_conf	*c = &cf->conf;
	char			 why[128];
	long			 ncpu;
	int			 errors = 0;

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	c->workers = ncpu > 0 ? (uint32_t)ncpu : 1;
	if (c->workers > PARENT_MAX_WORKERS)
		c->workers = PARENT_MAX_WORKERS;
	if (p->conffile != NULL &&
	    (errors = conf_file_parse(cf, p->conffile, errs)) != 0)
		return errors < 0 ? 1 : errors;
	if (getenv("SMTPD_WORKERS") != NULL) {
		const char *errstr;

		c->workers = strtonum(getenv("SMTPD_WORKERS"), 1,
		    PARENT_MAX_WORKERS, &errstr);
		if (errstr != NULL) {
			fprintf(errs, "SMTPD_WORKERS is %s\n", errstr);
			errors++;
		}
	}
	if (cl->mode != 0)
		c->mode = cl->mode;
	if (cl->max_size != 0)
		c->max_size = cl->max_size;
	if (cl->smtputf8)
		c->smtputf8 = 1;
	c->verbose = cl->verbose > 0;
	c->foreground = cl->foreground;
	if (cl->have_listen)
		listen_only(cf, &cl->listen);
	else if (listen_smtp_none(cf)) {
		struct hostport	 hp;

		memset(&hp, 0, sizeof(hp));
		strlcpy(hp.host, "localhost", sizeof(hp.host));
		hp.port = 8025;
		listen_only(cf, &hp);
	}
	if (cl->have_remote) {
		strlcpy(c->upstream_host, cl->remote.host,
		    sizeof(c->upstream_host));
		c->upstream_port = cl->remote.port;
	}
	if (cl->program[0] != '\0')
		strlcpy(cf->deliver, cl->program, sizeof(cf->deliver));
	if (c->mode == MODE_DELIVER && cf->deliver[0] == '\0') {
		fprintf(errs, "deliver mode needs a program: -c deliver "
		    "ADDRESS:PORT /path/to/program, or deliver in the "
		    "configuration file\n");
		errors++;
	}
	/* What every child will check (conf_recv()), checked first here. */
	if (conf_check(c, why, sizeof(why)) == -1) {
		fprintf(errs, "%s\n", why);
		errors++;
	}
	return errors;
}

/*
 * One of the unprivileged users of keyword kw (SPEC section 10): it
 * must exist and be neither root nor in root's group.
 */
static void
parent_lookup_user(const char *kw, const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd	*pw;

	if ((pw = getpwnam(name)) == NULL)
		die_kw(kw, "%s %s does not exist: create it (useradd --system "
		    "--user-group --shell /usr/sbin/nologin %s, or make "
		    "user) or use -n", kw, name, name);
	if (pw->pw_uid == 0 || pw->pw_gid == 0)
		die_kw(kw, "%s %s must not have uid or gid 0", kw, name);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
}

/*
 * Privilege separation settings: the users and the chroot directory.
 * The workers' user and the relay's must differ, or a worker could
 * signal, trace or read the relay.
 */
static void
parent_check_privsep(struct parent *p)
{
	struct smtpd_conf	*c = &p->conf;
	struct stat		 st;
	uid_t			 uid;
	gid_t			 gid;

	c->drop_privs = 0;
	if (p->cmdline->no_drop)
		return;
	if (geteuid() != 0) {
		fprintf(stderr, "smtpd: warning: not started as root: -n "
		    "implied, privileges are not dropped\n");
		return;
	}
	c->drop_privs = 1;
	parent_lookup_user("user", c->user, &uid, &gid);
	c->uid = uid;
	c->gid = gid;
	parent_lookup_user("queue-user", c->queue_user, &uid, &gid);
	c->queue_uid = uid;
	c->queue_gid = gid;
	if (c->queue_uid == c->uid)
		die_kw("queue-user", "queue-user %s and user %s must be "
		    "different users", c->queue_user, c->user);
	if (stat(c->chroot, &st) == -1)
		die_kw("chroot", "chroot directory %s: %s", c->chroot,
		    strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)))
		die_kw("chroot", "chroot directory %s must be a directory "
		    "owned by root "
		    "and writable by nobody else", c->chroot);
}

static const char *
mode_name(uint32_t mode)
{
	switch (mode) {
	case MODE_RELAY:
		return "relay";
	case MODE_DELIVER:
		return "deliver";
	default:
		return "debug";
	}
}

/*
 * A queue directory that belonged to another user (the workers' user,
 * before queue-user existed): its files become the relay's too, or the
 * relay could not read what an earlier run queued.
 */
static void
parent_queue_migrate(const struct smtpd_conf *c, const char *path)
{
	struct dirent	*de;
	DIR		*dir;
	int		 dfd;

	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1 || (dir = fdopendir(dfd)) == NULL)
		die("queue directory %s: %s", path, strerror(errno));
	while ((de = readdir(dir)) != NULL) {
		if (de->d_type == DT_DIR)
			continue;
		if (fchownat(dfd, de->d_name, c->queue_uid, c->queue_gid,
		    AT_SYMLINK_NOFOLLOW) == -1 && errno != ENOENT)
			die("queue file %s/%s: %s", path, de->d_name,
			    strerror(errno));
	}
	closedir(dir);
}

/*
 * The queue directory: created if missing, owned by queue-user, and by
 * nobody else (the relay chroots into it).
 */
static void
parent_check_queue(struct parent *p)
{
	static const char	*subdirs[] = { "", "/tmp", "/queue",
	    "/queue/corrupt", "/data" };
	struct smtpd_conf	*c = &p->conf;
	struct stat		 st;
	char			 path[PATH_MAX];
	size_t			 i;

	for (i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s%s", c->queue,
		    subdirs[i]) >= sizeof(path))
			die("queue directory %s: name too long", c->queue);
		if (mkdir(path, 0700) == -1 && errno != EEXIST)
			die("queue directory %s: %s", path, strerror(errno));
		if (lstat(path, &st) == -1)
			die("queue directory %s: %s", path, strerror(errno));
		if (!S_ISDIR(st.st_mode))
			die("queue directory %s is not a directory", path);
		if (c->drop_privs) {
			if (st.st_uid != c->queue_uid)
				parent_queue_migrate(c, path);
			if (chown(path, c->queue_uid, c->queue_gid) == -1 ||
			    chmod(path, 0700) == -1)
				die("queue directory %s: %s", path,
				    strerror(errno));
		} else if (access(path, R_OK | W_OK | X_OK) == -1)
			die("queue directory %s: %s", path, strerror(errno));
	}
}

/*
 * deliver mode: the program must exist and be executable, and, when we
 * are root, the user it runs as must exist (it never runs as root).
 */
static void
parent_check_deliver(struct parent *p)
{
	char		 buf[CONF_DELIVER_MAX], *argv[CONF_DELIVER_ARGS];

	if (cmd_split(p->deliver, buf, sizeof(buf), argv,
	    CONF_DELIVER_ARGS) < 1)
		die_kw("deliver", "deliver: bad command: %s", p->deliver);
	if (argv[0][0] != '/')
		die_kw("deliver", "deliver: %s: the program must be an "
		    "absolute path",
		    argv[0]);
	if (access(argv[0], X_OK) == -1)
		die_kw("deliver", "deliver: %s: %s", argv[0],
		    strerror(errno));
	p->deliver_uid = geteuid();
	p->deliver_gid = getegid();
	if (geteuid() != 0)
		return;
	/* Even under -n: the program never runs as root. */
	parent_lookup_user("deliver-user", p->conf.deliver_user,
	    &p->deliver_uid, &p->deliver_gid);
	if (p->conf.drop_privs && (p->deliver_uid == p->conf.queue_uid ||
	    p->deliver_uid == p->conf.uid))
		die_kw("deliver-user", "deliver-user %s must be a user of its "
		    "own, not user %s or queue-user %s", p->conf.deliver_user,
		    p->conf.user, p->conf.queue_user);
}

/*
 * The server certificate and key (checked here, as a context, so that
 * a bad pair stops the start and not a worker) and the users file.
 */
static void
parent_load_secrets(struct parent *p, struct conf_file *cf)
{
	SSL_CTX		*ctx;
	char		 err[512];
	unsigned int	 i;

	for (i = 0; i < cf->nlisten; i++) {
		if ((cf->listen[i].flags & (LISTEN_TLS | LISTEN_STARTTLS_REQ)) &&
		    cf->tls_cert[0] == '\0')
			die_kw("listen", "listen on %s: tls and starttls-required "
			    "need "
			    "\"tls certificate FILE key FILE\"",
			    cf->listen[i].hp.host);
		if ((cf->listen[i].flags & LISTEN_AUTH) && cf->users[0] == '\0')
			die_kw("listen", "listen on %s: auth needs \"users "
			    "FILE\"",
			    cf->listen[i].hp.host);
	}
	if (cf->tls_cert[0] != '\0') {
		if ((p->tls_cert = parent_read_pem(cf->tls_cert,
		    &p->tls_certlen, err, sizeof(err))) == NULL ||
		    (p->tls_key = parent_read_pem(cf->tls_key, &p->tls_keylen,
		    err, sizeof(err))) == NULL)
			die_kw("tls", "tls: %s", err);
		tls_init();
		if ((ctx = tls_server_ctx(p->tls_cert, p->tls_certlen,
		    p->tls_key, p->tls_keylen, err, sizeof(err))) == NULL)
			die_kw("tls", "tls: %s or %s: %s", cf->tls_cert,
			    cf->tls_key, err);
		SSL_CTX_free(ctx);
	}
	if (cf->users[0] != '\0') {
		if (parent_users_load(cf->users, stderr) == -1)
			die_kw("users", "users: %s cannot be used",
			    cf->users);
		p->conf.auth_enabled = 1;
	}
}

/* Fork into the background with standard streams on /dev/null. */
static void
parent_daemonize(void)
{
	int	 fd;

	switch (fork()) {
	case -1:
		die("fork: %s", strerror(errno));
	case 0:
		break;
	default:
		_exit(0);
	}
	if (setsid() == -1)
		fatal("setsid");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

/* CLOCK_MONOTONIC in microseconds, as sd_notify's reload wants it. */
static unsigned long long
parent_monotonic_usec(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000;
}

/* Tell a service manager that we serve, and what. */
static void
parent_notify_ready(struct parent *p)
{
	notify_send("READY=1\nSTATUS=%s mode, %u listener%s, %u worker%s"
	    "\nMAINPID=%d", mode_name(p->conf.mode), p->nlisteners,
	    p->nlisteners == 1 ? "" : "s", p->conf.workers,
	    p->conf.workers == 1 ? "" : "s", (int)getpid());
}

/* A reload (SIGHUP or smtpctl reload), told to the service manager. */
void
parent_reload_notify(struct parent *p)
{
	notify_send("RELOADING=1\nMONOTONIC_USEC=%llu",
	    parent_monotonic_usec());
	parent_reload(p);
	parent_notify_ready(p);
}

/* Signals arrive as reads on a signalfd: no handler runs at all. */
static void
parent_signal(int fd, int events, void *arg)
{
	struct parent			*p = arg;
	struct signalfd_siginfo		 si;
	pid_t				 pid;
	int				 status;

	(void)events;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			notify_send("STOPPING=1");
			parent_stop(p);
			break;
		case SIGHUP:
			if (p->stopping)
				break;
			parent_reload_notify(p);
			break;
		case SIGUSR1:
			parent_stats(p);
			break;
		case SIGCHLD:
			/* A stopped child is as bad as a dead one, later. */
			while ((pid = waitpid(-1, &status, WNOHANG | WUNTRACED |
			    WCONTINUED)) > 0) {
				if (WIFSTOPPED(status) || WIFCONTINUED(status))
					parent_watch_stopped(p, pid, status);
				else
					parent_child_exited(p, pid, status);
			}
			break;
		}
	}
}

static void
parent_signals(struct parent *p)
{
	sigset_t	 set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		fatal("sigprocmask");
	if ((p->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	signal(SIGPIPE, SIG_IGN);
	if (ev_add(p->sigfd, EV_READ, parent_signal, p) == -1)
		fatal("ev_add signalfd");
}

/* Bind every listener of cf, or die naming it. */
static void
parent_open_listeners(struct parent *p, struct conf_file *cf)
{
	char		 err[512];
	unsigned int	 i;

	for (i = 0; i < cf->nlisten; i++) {
		if (listener_open(&p->listeners[i], &cf->listen[i].hp, err,
		    sizeof(err)) == -1)
			die("listen on %s", err);
		p->listeners[i].flags = cf->listen[i].flags;
		memcpy(p->listeners[i].proxy, cf->listen[i].proxy,
		    sizeof(p->listeners[i].proxy));
		p->listeners[i].nproxy = cf->listen[i].nproxy;
	}
	p->nlisteners = cf->nlisten;
}

/*
 * The control socket.  One named in the file must work; the default
 * one may be missing (not root, or another smtpd serves it): then this
 * daemon runs without smtpctl and says so.
 */
static void
parent_open_control(struct parent *p, struct conf_file *cf)
{
	char	 err[512];

	if (parent_control_open(p->conf.control_socket, err,
	    sizeof(err)) == 0)
		return;
	if (conf_keyword_line(cf, "control-socket") != 0)
		die_kw("control-socket", "%s", err);
	/* Another instance serves the default: no fault of ours. */
	p->control_warning = errno == EADDRINUSE ? 1 : 2;
	strlcpy(p->control_error, err, sizeof(p->control_error));
}

/* The start line: version, mode, every listener (SPEC 9). */
static void
parent_log_start(struct parent *p)
{
	char		 names[1024];
	unsigned int	 i;

	for (i = 0, names[0] = '\0'; i < p->nlisteners; i++) {
		if (i > 0)
			strlcat(names, ",", sizeof(names));
		/* A metrics listener by the address a scraper is given. */
		if (p->listeners[i].flags & LISTEN_METRICS)
			strlcat(names, "http://", sizeof(names));
		strlcat(names, p->listeners[i].name, sizeof(names));
		if (p->listeners[i].flags & LISTEN_METRICS)
			strlcat(names, "/metrics", sizeof(names));
	}
	log_info("event=start version=%s mode=%s listen=%s workers=%u "
	    "privsep=%s", SMTPD_VERSION, mode_name(p->conf.mode), names,
	    p->conf.workers, p->conf.drop_privs ? "yes" : "no");
	if (p->control_warning == 1)
		log_info("event=control-off reason=\"%s\"", p->control_error);
	else if (p->control_warning)
		log_warnx("event=control-off reason=\"%s\"", p->control_error);
}

/*
 * A socket pair for each living worker and the relay, and workers that a
 * reload retired draining beside the new pool: past a thousand under a
 * service manager's soft limit of 1024, which a socketpair() that fails
 * at a reload would end the daemon on.  The soft limit goes up to the
 * hard one; a program run for a delivery gets the one of before.
 */
static void
parent_raise_nofile(struct parent *p)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= rl.rlim_max)
		return;
	p->nofile_soft = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		p->nofile_soft = 0;
}

/* The parent's main(). */
int
parent_main(struct cmdline *cl)
{
	struct parent	*p = &parent;
	char		 err[512];
	ssize_t		 n;

	struct conf_file	 cf;
	int			 errors, managed;

	p->cmdline = cl;
	if (cl->conffile != NULL)
		p->conffile = cl->conffile;
	else if (access(SMTPD_CONFFILE, F_OK) == 0)
		p->conffile = SMTPD_CONFFILE;
	conf_file_init(&cf);
	die_conf.file = p->conffile;
	die_conf.cf = p->conffile != NULL ? &cf : NULL;
	if ((errors = parent_load_conf(p, &cf, stderr)) != 0) {
		if (cl->check_only)
			fprintf(stderr, "smtpd: %d error%s in the "
			    "configuration\n", errors, errors == 1 ? "" : "s");
		conf_file_free(&cf);
		return 1;
	}
	p->conf = cf.conf;
	p->policy = cf.policy;
	strlcpy(p->deliver, cf.deliver, sizeof(p->deliver));
	/* -t checks all that a start would, short of binding. */
	parent_routes_setup(p, &cf);
	parent_load_secrets(p, &cf);
	parent_check_privsep(p);
	if (p->conf.mode == MODE_DELIVER)
		parent_check_deliver(p);
	if (cl->check_only) {
		printf("configuration OK\n");
		policy_free(&p->policy);
		return 0;
	}
	if (p->conf.mode != MODE_DEBUG) {
		parent_check_queue(p);
		if (parent_lock_queue(p->conf.queue, err, sizeof(err)) == -1)
			die_kw("queue", "%s", err);
	}
	if ((n = readlink("/proc/self/exe", p->self, sizeof(p->self) - 1)) <= 0)
		die("cannot find my own binary: %s", strerror(errno));
	p->self[n] = '\0';
	p->argv_foreground = cl->foreground;
	p->argv_verbose = cl->verbose > 0;

	parent_raise_nofile(p);
	parent_open_listeners(p, &cf);
	parent_open_control(p, &cf);

	if (parent_open_pid(cf.pid_file[0] != '\0' ? cf.pid_file :
	    SMTPD_PIDFILE, cl->foreground, err, sizeof(err)) == -1)
		die_kw("pid-file", "%s", err);
	/* Under a service manager it supervises us: no fork, no -d. */
	managed = notify_init();
	if (!cl->foreground && managed != 1)
		parent_daemonize();
	log_init(cl->foreground, cl->verbose, "parent");
	/* SIGTERM handled before the pid file appears: a stop is clean. */
	ev_init();
	parent_signals(p);
	setproctitle("parent");
	parent_write_pid();
	parent_log_start(p);
	if (managed == -1)
		log_warnx("event=notify result=failed reason=\"NOTIFY_SOCKET "
		    "names no usable socket\"");

	parent_spawn_all(p);
	parent_watch_init(p);
	/*
	 * Ready: the listeners are bound, so connections wait in their
	 * backlogs for the workers that are starting.
	 */
	parent_notify_ready(p);
	ev_loop();
	return 0;
}

int
main(int argc, char *argv[], char *envp[])
{
	struct cmdline	 cl;
	char		 err[512];

	setproctitle_init(argc, argv, envp);
	if (cmdline_parse(argc, argv, &cl, err, sizeof(err)) == -1) {
		/* SPEC 3: one line saying what; -h prints the usage. */
		fprintf(stderr, "smtpd: %s\n", err);
		return 1;
	}
	if (cl.help) {
		cmdline_usage();
		return 0;
	}
	if (cl.version) {
		printf("smtpd %s\n", SMTPD_VERSION);
		return 0;
	}
	if (cl.role != NULL) {
		log_init_child(cl.foreground, cl.verbose, cl.role, NULL);
		if (strcmp(cl.role, "session") == 0)
			return worker_main();
		if (strcmp(cl.role, "relay") == 0)
			return relay_main();
		fatalx("unknown role %s", cl.role);
	}
	return parent_main(&cl);
}
