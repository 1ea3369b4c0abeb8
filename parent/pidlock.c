/*
 * The queue lock and the pid file (SPEC sections 7.3 and 12).  The lock
 * is flock(2) on QUEUE/smtpd.lock, taken before the fork into the
 * background: the lock belongs to the open file, which the daemon
 * keeps, so it holds from the check to the exit, and the kernel drops
 * it however the parent ends.  The file holds the holder's pid, so that
 * a second smtpd can say who has the queue.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "parent.h"

static struct {
	int	 lockfd;
	int	 pidfd;			/* until the pid is written */
	char	 pid_file[PATH_MAX];	/* "" when there is none */
} pl = { -1, -1, "" };

/* Write our pid into fd (the lock file or the pid file), from offset 0. */
static int
pid_write(int fd)
{
	char	 buf[32];
	int	 n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, n, 0) != n)
		return -1;
	return 0;
}

/*
 * Lock the queue, or say who holds it: 0, or -1 with one line for
 * standard error in err.
 */
int
parent_lock_queue(const char *queue, char *err, size_t errlen)
{
	char	 path[PATH_MAX], pid[32];
	ssize_t	 n;
	int	 fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/smtpd.lock", queue) >=
	    sizeof(path)) {
		snprintf(err, errlen, "queue %s: name too long", queue);
		return -1;
	}
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) == -1) {
		snprintf(err, errlen, "queue lock %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK) {
			snprintf(err, errlen, "queue lock %s: %s", path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, errlen, "queue %s is in use by another smtpd "
		    "(pid %s, lock %s)", queue, pid[0] != '\0' ? pid :
		    "unknown", path);
		close(fd);
		return -1;
	}
	if (pid_write(fd) == -1) {
		snprintf(err, errlen, "queue lock %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	pl.lockfd = fd;
	return 0;
}

/*
 * Before the fork: open the pid file (not in the foreground: SPEC
 * section 12), so that a path that cannot be written is a start-up
 * error on standard error, not a line in a log nobody reads.
 */
int
parent_open_pid(const char *path, int foreground, char *err, size_t errlen)
{
	if (foreground)
		return 0;
	if ((pl.pidfd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0644)) == -1) {
		snprintf(err, errlen, "pid file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	strlcpy(pl.pid_file, path, sizeof(pl.pid_file));
	return 0;
}

/* After the fork: the lock file and the pid file name the daemon. */
void
parent_write_pid(void)
{
	if (pl.lockfd != -1 && pid_write(pl.lockfd) == -1)
		log_warn("event=queue-lock op=write");
	if (pl.pidfd == -1)
		return;
	if (pid_write(pl.pidfd) == -1)
		log_warn("event=pid-file path=%s", pl.pid_file);
	close(pl.pidfd);
	pl.pidfd = -1;
	/*
	 * fatal() exits too: no pid file may outlive the daemon.  Only the
	 * parent gets here; its children exec or _exit.
	 */
	atexit(parent_remove_pid);
}

/* A clean stop: the pid file goes; the lock goes with the process. */
void
parent_remove_pid(void)
{
	if (pl.pid_file[0] != '\0' && unlink(pl.pid_file) == -1)
		log_warn("event=pid-file-remove path=%s", pl.pid_file);
	pl.pid_file[0] = '\0';
}
