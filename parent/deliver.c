/*
 * deliver mode: the parent runs the user's program for a queued message
 * when the relay asks (SPEC section 6).  The program runs as
 * deliver-user, never as root and never as the queue's owner (it may
 * not read other envelopes or write into the queue), in the directory
 * /, with the message on standard input
 * and the envelope in its environment only: it is executed directly
 * with execve(2), never through a shell, and no envelope value ever
 * reaches its argument vector.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "envelope.h"
#include "log.h"
#include "parent.h"
#include "proc.h"

#define RUN_ERRLINE	256
#define RUN_ENV_MAX	8

struct run {
	struct run	*next;
	pid_t		 pid;
	pid_t		 relay_pid;	/* who asked */
	uint32_t	 id;
	char		 qid[32];
	int		 errfd;
	char		 errline[RUN_ERRLINE];
	size_t		 errlen;
	int		 errdone;	/* first line complete */
	int		 timed_out;
	struct ev_timer	 timer;
};

static struct run	*runs;		/* the programs running now */
static unsigned int	 nruns;

static void
deliver_reply(struct parent *p, struct run *r, uint32_t result,
    const char *text)
{
	struct child	*relay = p->slots[p->conf.workers].child;
	struct imsg_out	 out;

	/* A relay that restarted reloaded the queue: it will ask again. */
	if (relay == NULL || relay->pid != r->relay_pid)
		return;
	imsg_out_init(&out, IMSG_DELIVER_DONE, r->id, -1);
	imsg_add_u32(&out, result);
	imsg_add_str(&out, text);
	parent_child_send(relay, &out);
}

/* Keep the first line of the program's standard error, drop the rest. */
static void
deliver_stderr(int fd, int events, void *arg)
{
	struct run	*r = arg;
	char		 buf[512];
	ssize_t		 n, i;

	(void)events;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n && !r->errdone; i++) {
			if (buf[i] == '\n' || r->errlen + 1 == RUN_ERRLINE) {
				r->errdone = 1;
				break;
			}
			r->errline[r->errlen++] = (buf[i] >= ' ' &&
			    buf[i] != 127 && buf[i] != '"') ? buf[i] : '?';
		}
	}
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		ev_del(fd);
		close(fd);
		r->errfd = -1;
	}
}

static void
deliver_timeout(void *arg)
{
	struct run	*r = arg;

	log_warnx("event=deliver-timeout queue_id=%s pid=%d action=killed",
	    r->qid, (int)r->pid);
	r->timed_out = 1;
	kill(-r->pid, SIGKILL);
	kill(r->pid, SIGKILL);
}

/* In the child: become the user, set up descriptors, exec. */
static void __attribute__((noreturn))
deliver_exec(struct parent *p, int spoolfd, int errfd, char **argv,
    char **envp)
{
	struct rlimit	 rl;
	sigset_t	 none;
	int		 null;

	setsid();
	/* The program's soft limit as the parent had it (parent/main.c). */
	if (p->nofile_soft != 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = p->nofile_soft;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (dup2(spoolfd, STDIN_FILENO) == -1 ||
	    dup2(errfd, STDERR_FILENO) == -1)
		_exit(127);
	/* Under -d a hook that prints shows in the terminal, as Python's. */
	if (!p->conf.foreground &&
	    ((null = open("/dev/null", O_WRONLY)) == -1 ||
	    dup2(null, STDOUT_FILENO) == -1))
		_exit(127);
	close_range(STDERR_FILENO + 1, ~0U, 0);
	if (geteuid() == 0) {
		gid_t gid = p->deliver_gid;

		if (setgroups(1, &gid) == -1 ||
		    setresgid(gid, gid, gid) == -1 ||
		    setresuid(p->deliver_uid, p->deliver_uid,
		    p->deliver_uid) == -1 || setuid(0) != -1)
			_exit(127);
	}
	/* Not the parent's directory: nothing relative leads anywhere. */
	if (chdir("/") == -1)
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	execve(argv[0], argv, envp);
	dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static char *
env_entry(const char *name, const char *value)
{
	char	*e;

	if (asprintf(&e, "%s=%s", name, value) == -1)
		return NULL;
	return e;
}

/*
 * IMSG_DELIVER_RUN from the relay: check it, then start the program.
 * Returns -1 if the message is malformed (the relay is then killed).
 */
int
parent_deliver_run(struct parent *p, struct child *relay, struct imsg *imsg)
{
	struct deliver_env	 d;
	char			*envp[RUN_ENV_MAX];
	char			 argbuf[CONF_DELIVER_MAX];
	char			*argv[CONF_DELIVER_ARGS];
	struct stat		 st;
	struct run		*r;
	uint32_t		 i;
	int			 errpipe[2], n = 0, rc = -1;

	memset(envp, 0, sizeof(envp));
	memset(&d, 0, sizeof(d));
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("deliver run");
	r->id = imsg->hdr.peerid;
	r->relay_pid = relay->pid;
	r->errfd = -1;
	if (imsg->fd == -1 || fstat(imsg->fd, &st) == -1 ||
	    !S_ISREG(st.st_mode) || deliver_env_decode(imsg, &d) == -1)
		goto done;
	_Static_assert(sizeof(r->qid) == sizeof(d.qid), "queue id");
	memcpy(r->qid, d.qid, sizeof(r->qid));
	rc = 0;
	if (nruns >= p->conf.deliver_max) {
		deliver_reply(p, r, DELIVER_TEMPFAIL, "too many deliver "
		    "programs running");
		goto done;
	}
	if (cmd_split(p->deliver, argbuf, sizeof(argbuf), argv,
	    CONF_DELIVER_ARGS) < 1 || pipe2(errpipe, O_CLOEXEC) == -1) {
		deliver_reply(p, r, DELIVER_TEMPFAIL, "cannot start the "
		    "deliver program");
		goto done;
	}
	envp[n++] = env_entry("PATH", "/usr/local/bin:/usr/bin:/bin");
	envp[n++] = env_entry("SMTPD_PEER", d.peer);
	envp[n++] = env_entry("SMTPD_MAIL_FROM", d.from);
	envp[n++] = env_entry("SMTPD_RCPT_TO", d.rcpts);
	envp[n++] = env_entry("SMTPD_HELO", d.helo);
	envp[n++] = env_entry("SMTPD_QUEUE_ID", r->qid);
	for (i = 0; i < (uint32_t)n; i++)
		if (envp[i] == NULL)
			fatal("deliver environment");
	if ((r->pid = fork()) == -1) {
		log_warn("event=deliver-fork queue_id=%s", r->qid);
		close(errpipe[0]);
		close(errpipe[1]);
		deliver_reply(p, r, DELIVER_TEMPFAIL, "cannot fork");
		goto done;
	}
	if (r->pid == 0)
		deliver_exec(p, imsg->fd, errpipe[1], argv, envp);
	close(errpipe[1]);
	r->errfd = errpipe[0];
	proc_nonblock(r->errfd);
	ev_add(r->errfd, EV_READ, deliver_stderr, r);
	ev_timer_set(&r->timer, deliver_timeout, r);
	ev_timer_add(&r->timer, (uint64_t)p->conf.deliver_timeout * 1000);
	r->next = runs;
	runs = r;
	nruns++;
	log_info("event=deliver-start queue_id=%s pid=%d program=%s", r->qid,
	    (int)r->pid, argv[0]);
	r = NULL;
done:
	for (i = 0; i < RUN_ENV_MAX; i++)
		free(envp[i]);
	deliver_env_free(&d);
	free(r);
	return rc;
}

/* A pid ended: if it was a deliver program, report; 1 if it was. */
int
parent_deliver_exited(struct parent *p, pid_t pid, int status)
{
	struct run	**rp, *r;
	char		 text[RUN_ERRLINE + 64];
	uint32_t	 result;

	for (rp = &runs; (r = *rp) != NULL; rp = &r->next)
		if (r->pid == pid)
			break;
	if (r == NULL)
		return 0;
	*rp = r->next;
	nruns--;
	ev_timer_del(&r->timer);
	if (r->errfd != -1) {
		deliver_stderr(r->errfd, EV_READ, r);
		if (r->errfd != -1) {
			ev_del(r->errfd);
			close(r->errfd);
		}
	}
	r->errline[r->errlen] = '\0';
	if (r->timed_out) {
		result = DELIVER_PERMFAIL;
		snprintf(text, sizeof(text), "deliver program killed after "
		    "%us", p->conf.deliver_timeout);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		result = DELIVER_OK;
		snprintf(text, sizeof(text), "delivered");
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 75) {
		result = DELIVER_TEMPFAIL;
		snprintf(text, sizeof(text), "deliver program exit 75%s%s",
		    r->errlen ? ": " : "", r->errline);
	} else if (WIFEXITED(status)) {
		result = DELIVER_PERMFAIL;
		snprintf(text, sizeof(text), "deliver program exit %d%s%s",
		    WEXITSTATUS(status), r->errlen ? ": " : "", r->errline);
	} else {
		result = DELIVER_PERMFAIL;
		snprintf(text, sizeof(text), "deliver program killed by "
		    "signal %d", WTERMSIG(status));
	}
	log_info("event=deliver-exit queue_id=%s pid=%d result=%s "
	    "stderr=%s reason=%s", r->qid, (int)pid,
	    result == DELIVER_OK ? "delivered" : result == DELIVER_TEMPFAIL ?
	    "deferred" : "failed", log_qq(r->errline), log_qq(text));
	deliver_reply(p, r, result, text);
	free(r);
	return 1;
}

/*
 * The daemon stops: no program may outlive it, since nobody would time
 * it out any more.  Each one still running is killed with its process
 * group and reaped; its message stays queued for the next start.
 */
void
parent_deliver_kill_all(void)
{
	struct run	*r;
	int		 status;

	while ((r = runs) != NULL) {
		runs = r->next;
		nruns--;
		log_warnx("event=deliver-killed queue_id=%s pid=%d reason=stop",
		    r->qid, (int)r->pid);
		kill(-r->pid, SIGKILL);
		kill(r->pid, SIGKILL);
		while (waitpid(r->pid, &status, 0) == -1 && errno == EINTR)
			;
		ev_timer_del(&r->timer);
		if (r->errfd != -1) {
			ev_del(r->errfd);
			close(r->errfd);
		}
		free(r);
	}
}
