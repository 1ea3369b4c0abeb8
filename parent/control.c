/*
 * The control socket (SPEC section 12), as the parent sees it: the
 * parent creates it and hands it to the relay, which serves it.  The
 * parent never reads what a control client sends: it answers the
 * relay's questions about a peer's uid (SO_PEERCRED, from the kernel),
 * and runs the few orders only it can carry out (reload, log level,
 * its own counters), each a number it checks.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "parent.h"
#include "proc.h"

static struct {
	int	 fd;
	char	 path[PATH_MAX];	/* "" when we made none */
	dev_t	 dev;			/* of the file we made there */
	ino_t	 ino;
} ctl = { -1, "", 0, 0 };

/* At exit: our socket goes, not one a newer daemon put there since. */
static void
control_unlink(void)
{
	struct stat	 st;

	if (ctl.path[0] != '\0' && stat(ctl.path, &st) == 0 &&
	    st.st_dev == ctl.dev && st.st_ino == ctl.ino)
		(void)unlink(ctl.path);
	ctl.path[0] = '\0';
}

/* Whether a daemon answers on the socket at sun. */
static int
control_in_use(const struct sockaddr_un *sun)
{
	int	 fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return rc;
}

static int
control_bind(int fd, struct sockaddr_un *sun, char *err, size_t errlen)
{
	if (bind(fd, (struct sockaddr *)sun, sizeof(*sun)) == 0)
		return 0;
	if (errno == EADDRINUSE && control_in_use(sun)) {
		snprintf(err, errlen, "control socket %s is in use by another "
		    "smtpd", sun->sun_path);
		errno = EADDRINUSE;
		return -1;
	}
	/* A stale socket of a daemon that is gone (connect set errno). */
	if (access(sun->sun_path, F_OK) == 0 && unlink(sun->sun_path) == 0 &&
	    bind(fd, (struct sockaddr *)sun, sizeof(*sun)) == 0)
		return 0;
	snprintf(err, errlen, "control socket %s: %s", sun->sun_path,
	    strerror(errno));
	errno = 0;
	return -1;
}

/*
 * Create the listening control socket at path.  Anyone may connect:
 * every local user may submit mail (sendmail); what else a peer may do
 * is decided by its uid, not by the file's mode.
 */
int
parent_control_open(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket %s: path too long", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	if (control_bind(fd, &sun, err, errlen) == -1) {
		close(fd);
		return -1;
	}
	if (chmod(path, 0666) == -1 || listen(fd, 128) == -1) {
		snprintf(err, errlen, "control socket %s: %s", path,
		    strerror(errno));
		(void)unlink(path);
		close(fd);
		return -1;
	}
	if (stat(path, &st) == 0) {
		ctl.dev = st.st_dev;
		ctl.ino = st.st_ino;
	}
	ctl.fd = fd;
	strlcpy(ctl.path, path, sizeof(ctl.path));
	/* fatal() exits too: no socket may outlive the daemon. */
	atexit(control_unlink);
	return 0;
}

/* A new relay gets the listening socket (at start and respawn). */
void
parent_control_send(struct child *relay)
{
	struct imsg_out	 out;
	int		 fd;

	if (ctl.fd == -1)
		return;
	if ((fd = dup(ctl.fd)) == -1) {
		log_warn("event=control op=dup");
		return;
	}
	imsg_out_init(&out, IMSG_CONF_CONTROL, 0, fd);
	parent_child_send(relay, &out);
}

/* Whether the user (uid, primary gid) is in the control-group. */
static int
control_member(const struct parent *p, const struct passwd *pw, gid_t gid)
{
	struct group	*gr;
	char		**m;

	if (p->conf.control_group[0] == '\0' ||
	    (gr = getgrnam(p->conf.control_group)) == NULL)
		return 0;
	if (gid == gr->gr_gid || (pw != NULL && pw->pw_gid == gr->gr_gid))
		return 1;
	for (m = gr->gr_mem; pw != NULL && *m != NULL; m++)
		if (strcmp(*m, pw->pw_name) == 0)
			return 1;
	return 0;
}

/*
 * IMSG_CTL_PEER: the relay asks who a control client is, by the uid
 * and gid the kernel gave it.  The answer: whether it may administer
 * (root, or a member of control-group), and its user name, the local
 * part of the mail it submits.
 */
int
parent_control_peer(struct parent *p, struct child *c, struct imsg *imsg)
{
	struct imsg_out	 out;
	struct passwd	*pw;
	uint32_t	 uid, gid;
	char		 name[64];
	int		 admin;

	if (imsg_get_u32(imsg, &uid) == -1 || imsg_get_u32(imsg, &gid) == -1)
		return -1;
	pw = getpwuid((uid_t)uid);
	if (pw != NULL && strlen(pw->pw_name) < sizeof(name))
		strlcpy(name, pw->pw_name, sizeof(name));
	else
		snprintf(name, sizeof(name), "%u", uid);
	admin = uid == 0 || control_member(p, pw, (gid_t)gid);
	imsg_out_init(&out, IMSG_CTL_PEER_INFO, imsg->hdr.peerid, -1);
	imsg_add_u32(&out, (uint32_t)admin);
	imsg_add_str(&out, name);
	parent_child_send(c, &out);
	return 0;
}

static void
control_result(struct child *c, uint32_t conn, int ok, const char *text)
{
	struct imsg_out	 out;

	imsg_out_init(&out, IMSG_CTL_RESULT, conn, -1);
	imsg_add_u32(&out, ok ? 1 : 0);
	imsg_add_str(&out, text);
	parent_child_send(c, &out);
}

/* The log level, here and in every child, at run time. */
static void
control_log_level(struct parent *p, int verbose)
{
	struct imsg_out	 out;
	struct child	*w;

	log_set_verbose(verbose);
	p->conf.verbose = (uint32_t)verbose;
	for (w = p->children; w != NULL; w = w->next) {
		imsg_out_init(&out, IMSG_LOG_LEVEL, 0, -1);
		imsg_add_u32(&out, (uint32_t)verbose);
		parent_child_send(w, &out);
	}
	log_info("event=log-level level=%s", verbose ? "verbose" : "brief");
}

/* The names of the REFUSED_* reasons, in the metrics. */
static const char *const refused_names[REFUSED_NREASONS] = {
	"max-sessions", "max-sessions-per-ip", "proxy", "starttls-required",
	"sender-login", "relay-denied", "routing-characters", "storage",
};

/* IMSG_STAT: a worker counted an event; the totals outlive it. */
int
parent_control_stat(struct parent *p, struct imsg *imsg)
{
	uint32_t	 what;

	if (imsg_get_u32(imsg, &what) == -1 || what >= STAT_MAX)
		return -1;
	p->stats[what]++;
	return 0;
}

/* What the parent counts, a "name value" line each. */
static void
control_stats(struct parent *p, char *buf, size_t len)
{
	struct child	*w;
	uint32_t	 open = 0, workers = 0, i;
	int		 n;

	for (w = p->children; w != NULL; w = w->next)
		if (w->role == ROLE_SESSION) {
			open += w->load;
			workers++;
		}
	n = snprintf(buf, len, "sessions_open %u\nworkers %u\n"
	    "auth_success %llu\nauth_failure %llu\nsessions_total %llu\n"
	    "tls_sessions %llu\n", open, workers,
	    (unsigned long long)p->auth_ok, (unsigned long long)p->auth_failed,
	    (unsigned long long)p->stats[STAT_SESSION],
	    (unsigned long long)p->stats[STAT_TLS]);
	for (i = 0; i < REFUSED_NREASONS && n > 0 && (size_t)n < len; i++)
		n += snprintf(buf + n, len - (size_t)n, "refused_%s %llu\n",
		    refused_names[i],
		    (unsigned long long)p->stats[STAT_REFUSED + i]);
}

/* IMSG_CTL_REQUEST: an order from smtpctl, by way of the relay. */
int
parent_control_request(struct parent *p, struct child *c, struct imsg *imsg)
{
	char		 text[1024];
	uint32_t	 req;

	if (imsg_get_u32(imsg, &req) == -1 || req == 0 || req > CTL_REQ_MAX)
		return -1;
	switch (req) {
	case CTL_REQ_RELOAD:
		if (p->stopping) {
			control_result(c, imsg->hdr.peerid, 0, "stopping");
			break;
		}
		parent_reload_notify(p);
		control_result(c, imsg->hdr.peerid, p->reload_ok,
		    p->reload_result);
		break;
	case CTL_REQ_VERBOSE:
	case CTL_REQ_BRIEF:
		control_log_level(p, req == CTL_REQ_VERBOSE);
		control_result(c, imsg->hdr.peerid, 1, "");
		break;
	case CTL_REQ_STATS:
		control_stats(p, text, sizeof(text));
		control_result(c, imsg->hdr.peerid, 1, text);
		break;
	}
	return 0;
}
