/*
 * Privilege drop and the seccomp filter.  Every allowed system call is
 * listed by name for the role that needs it; anything else kills the
 * process (SCMP_ACT_KILL_PROCESS), which the parent sees and logs.
 * Where a call can do more than the role needs, its arguments are
 * checked too, as OpenSSH's filter does: fcntl(2) cannot set an owner or
 * a signal for SIGIO (a worker could otherwise have the kernel send
 * SIGKILL or SIGSTOP to any process), and no mapping is executable.
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"

/* RLIMIT_DATA: a base for the role, and so much per session it serves. */
#define SANDBOX_DATA_SESSION		(256ULL << 20)
#define SANDBOX_DATA_RELAY		(2048ULL << 20)
#define SANDBOX_DATA_PER_SESSION	(256ULL << 10)

/* clang says so with __has_feature, gcc with __SANITIZE_ADDRESS__. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SMTPD_SANITIZE 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SMTPD_SANITIZE 1
#endif

/* System calls every child makes after start-up. */
static const int sandbox_common[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(close), SCMP_SYS(exit), SCMP_SYS(exit_group),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(restart_syscall),
	SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap),
	SCMP_SYS(madvise), SCMP_SYS(futex),
	SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(getpid),
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(sendto),
	SCMP_SYS(fstat), SCMP_SYS(newfstatat),
	SCMP_SYS(lseek), SCMP_SYS(getrandom),
};

/* The session worker: accepts and speaks SMTP on inherited sockets. */
static const int sandbox_session[] = {
	SCMP_SYS(accept4), SCMP_SYS(accept), SCMP_SYS(shutdown),
	SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(setsockopt),
	SCMP_SYS(recvfrom), SCMP_SYS(pwrite64),
};

/* The relay: spool files, the queue, and upstream connections. */
static const int sandbox_relay[] = {
	SCMP_SYS(memfd_create), SCMP_SYS(dup), SCMP_SYS(pread64),
	SCMP_SYS(pwrite64), SCMP_SYS(ftruncate), SCMP_SYS(fsync),
	SCMP_SYS(fdatasync), SCMP_SYS(syncfs), SCMP_SYS(openat),
	SCMP_SYS(renameat),
	SCMP_SYS(renameat2), SCMP_SYS(unlinkat), SCMP_SYS(mkdirat),
	SCMP_SYS(getdents64), SCMP_SYS(connect), SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
	SCMP_SYS(shutdown), SCMP_SYS(recvfrom), SCMP_SYS(fstatfs),
	SCMP_SYS(accept4),	/* the control socket */
};

#ifdef SMTPD_SANITIZE
/* What the sanitizer runtimes need at exit (leak check, reports). */
static const int sandbox_sanitizer[] = {
	SCMP_SYS(sigaltstack), SCMP_SYS(rt_sigaction), SCMP_SYS(prctl),
	SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(ptrace), SCMP_SYS(wait4),
	SCMP_SYS(sched_yield), SCMP_SYS(openat),
	SCMP_SYS(readlink), SCMP_SYS(gettid), SCMP_SYS(getppid),
	SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(tgkill),
	SCMP_SYS(sched_getaffinity), SCMP_SYS(getrlimit),
	SCMP_SYS(prlimit64), SCMP_SYS(setrlimit), SCMP_SYS(kill),
	SCMP_SYS(getdents64), SCMP_SYS(process_vm_readv), SCMP_SYS(exit),
	SCMP_SYS(ioctl), SCMP_SYS(write),
};
#endif

static void
sandbox_allow(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	size_t	 i;
	int	 rc;

	for (i = 0; i < n; i++)
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0)) < 0)
			fatalx("seccomp_rule_add %d: %d", calls[i], rc);
}

/*
 * Whether this is a sanitizer build.  LeakSanitizer cannot stop the
 * world inside the seccomp sandbox (its tracer is refused), so the
 * parent turns leak detection off in its children; the children's
 * leaks are valgrind's to find.
 */
int
sandbox_sanitized(void)
{
#ifdef SMTPD_SANITIZE
	return 1;
#else
	return 0;
#endif
}

#define ALLOW(ctx, list) \
	sandbox_allow((ctx), (list), sizeof(list) / sizeof((list)[0]))

/* An argument comparison (the libseccomp macros leave fields out). */
static struct scmp_arg_cmp
arg_cmp(unsigned int arg, enum scmp_compare op, scmp_datum_t a,
    scmp_datum_t b)
{
	struct scmp_arg_cmp	 c;

	memset(&c, 0, sizeof(c));
	c.arg = arg;
	c.op = op;
	c.datum_a = a;
	c.datum_b = b;
	return c;
}

#define ARG_EQ(n, v)		arg_cmp((n), SCMP_CMP_EQ, (v), 0)
/* (arg & mask) == v */
#define ARG_MASKED(n, mask, v)	arg_cmp((n), SCMP_CMP_MASKED_EQ, (mask), (v))

static void
sandbox_rule(scmp_filter_ctx ctx, int call, const char *name,
    unsigned int n, const struct scmp_arg_cmp *cmps)
{
	int	 rc;

	if ((rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, call, n,
	    cmps)) < 0)
		fatalx("seccomp_rule_add %s: %d", name, rc);
}

#define RULE(ctx, call, ...) do {					\
	const struct scmp_arg_cmp cmps_[] = { __VA_ARGS__ };		\
	sandbox_rule((ctx), SCMP_SYS(call), #call,			\
	    sizeof(cmps_) / sizeof(cmps_[0]), cmps_);			\
} while (0)

/*
 * fcntl(2): descriptor flags and status flags, but never O_ASYNC, and
 * none of F_SETOWN, F_SETOWN_EX, F_SETSIG, F_SETLEASE, F_NOTIFY or the
 * locks: the commands that make the kernel signal someone.
 */
static void
sandbox_allow_fcntl(scmp_filter_ctx ctx)
{
	RULE(ctx, fcntl, ARG_EQ(1, F_GETFD));
	RULE(ctx, fcntl, ARG_EQ(1, F_SETFD));
	RULE(ctx, fcntl, ARG_EQ(1, F_GETFL));
	RULE(ctx, fcntl, ARG_EQ(1, F_SETFL), ARG_MASKED(2, O_ASYNC, 0));
}

/* mmap(2), and mprotect(2) where allowed: never PROT_EXEC. */
static void
sandbox_allow_noexec(scmp_filter_ctx ctx, int mprotect_too)
{
	RULE(ctx, mmap, ARG_MASKED(2, PROT_EXEC, 0));
	if (mprotect_too)
		RULE(ctx, mprotect, ARG_MASKED(2, PROT_EXEC, 0));
}

/*
 * socket(2) of one family, stream sockets only (SOCK_NONBLOCK and
 * SOCK_CLOEXEC may be or'ed into the type, as they are).
 */
static void
sandbox_allow_socket(scmp_filter_ctx ctx, int family)
{
	RULE(ctx, socket, ARG_EQ(0, (scmp_datum_t)family),
	    ARG_MASKED(1, ~(scmp_datum_t)(SOCK_NONBLOCK | SOCK_CLOEXEC) &
	    0xffffffff, SOCK_STREAM));
}

/* Load the filter of role; its default action kills the process. */
static void
sandbox_seccomp(enum proc_role role)
{
	scmp_filter_ctx	 ctx;
	int		 rc;

#ifdef SMTPD_VALGRIND_BUILD
	/*
	 * valgrind cannot run code under seccomp(2): the build that
	 * "make valgrind" makes, and only it, goes without the filter.
	 */
	(void)role;
	(void)ctx;
	(void)rc;
	log_warnx("sandbox: valgrind build, no seccomp filter");
	return;
#endif
	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		fatalx("seccomp_init");
	ALLOW(ctx, sandbox_common);
	sandbox_allow_fcntl(ctx);
	/* The workers make no socket at all: they only accept. */
	if (role == ROLE_SESSION)
		ALLOW(ctx, sandbox_session);
	else if (role == ROLE_RELAY) {
		ALLOW(ctx, sandbox_relay);
		/* Upstream connections: TCP over v4 or v6 and nothing else. */
		sandbox_allow_socket(ctx, AF_INET);
		sandbox_allow_socket(ctx, AF_INET6);
	}
#ifdef SMTPD_SANITIZE
	ALLOW(ctx, sandbox_sanitizer);
	/* The runtimes change protections of their own memory. */
	sandbox_allow_noexec(ctx, 1);
#else
	sandbox_allow_noexec(ctx, 0);
#endif
	/* Every thread of the process under it (relay/syncer.c). */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0)
		fatalx("seccomp TSYNC: %d", rc);
	if ((rc = seccomp_load(ctx)) < 0)
		fatalx("seccomp_load: %d", rc);
	seccomp_release(ctx);
}

/*
 * chroot, then the uid/gid drop, verified.  The relay has a user of its
 * own: a worker can neither signal it nor read the queue.
 */
static void
sandbox_drop(enum proc_role role, const struct smtpd_conf *conf,
    const char *root)
{
	gid_t	 gid = role == ROLE_RELAY ? conf->queue_gid : conf->gid;
	uid_t	 uid = role == ROLE_RELAY ? conf->queue_uid : conf->uid;
	uid_t	 ruid, euid, suid;
	gid_t	 rgid, egid, sgid;

	if (chroot(root) == -1)
		fatal("chroot %s", root);
	if (chdir("/") == -1)
		fatal("chdir /");
	if (setgroups(1, &gid) == -1)
		fatal("setgroups");
	if (setresgid(gid, gid, gid) == -1)
		fatal("setresgid");
	if (setresuid(uid, uid, uid) == -1)
		fatal("setresuid");
	if (getresuid(&ruid, &euid, &suid) == -1 ||
	    getresgid(&rgid, &egid, &sgid) == -1)
		fatal("getresuid");
	if (ruid != uid || euid != uid || suid != uid ||
	    rgid != gid || egid != gid || sgid != gid)
		fatalx("privilege drop did not take");
	/* Prove that root cannot be regained. */
	if (setuid(0) != -1 || seteuid(0) != -1 || setgid(0) != -1)
		fatalx("root could be regained after the drop");
}

/*
 * The highest capability this kernel knows: /proc/sys/kernel/cap_last_cap
 * (read before the chroot), else the one these headers know.
 */
static int
sandbox_cap_last(void)
{
	FILE	*f;
	int	 last = -1;

	if ((f = fopen("/proc/sys/kernel/cap_last_cap", "re")) != NULL) {
		if (fscanf(f, "%d", &last) != 1)
			last = -1;
		fclose(f);
	}
	if (last < 0 || last > 63)
		last = CAP_LAST_CAP;
	return last;
}

/*
 * Empty the capability bounding set, so that nothing this process
 * executes could ever gain a capability.  It takes CAP_SETPCAP: without
 * root (-n as a user) there is nothing to drop from, and nothing that
 * could be gained either.
 */
static void
sandbox_capbnd(void)
{
	int	 cap, last = sandbox_cap_last();

	for (cap = 0; cap <= last; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break;		/* beyond what this kernel has */
		if (errno == EPERM && geteuid() != 0)
			return;
		fatal("PR_CAPBSET_DROP %d", cap);
	}
	for (cap = 0; cap <= last; cap++)
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0)
			fatalx("capability %d still in the bounding set", cap);
}

static void
sandbox_rlimit(int resource, rlim_t value, const char *name)
{
	struct rlimit	 rl;

	rl.rlim_cur = rl.rlim_max = value;
	if (setrlimit(resource, &rl) == -1)
		fatal("setrlimit %s", name);
}

/*
 * A bound on memory (brk and private mappings): generous for what the
 * role may hold at once, so that a leak or a flood ends in a failed
 * allocation and a restart, not in the OOM killer choosing a victim.
 * The sanitizers' shadow memory and valgrind cannot live under it.
 */
static void
sandbox_rlimit_data(enum proc_role role, const struct smtpd_conf *conf)
{
#if !defined(SMTPD_SANITIZE) && !defined(SMTPD_VALGRIND_BUILD)
	uint64_t	 sessions = conf->max_sessions;
	uint64_t	 bound;

	if (role == ROLE_RELAY)
		sessions *= conf->workers > 0 ? conf->workers : 1;
	bound = (role == ROLE_RELAY ? SANDBOX_DATA_RELAY :
	    SANDBOX_DATA_SESSION) + sessions * SANDBOX_DATA_PER_SESSION;
	sandbox_rlimit(RLIMIT_DATA, (rlim_t)bound, "RLIMIT_DATA");
#else
	(void)role;
	(void)conf;
#endif
}

/*
 * Confine the calling child.  root is the directory to chroot to when
 * privileges are dropped; maxfiles bounds its descriptors.
 */
static void	(*sandbox_thread_hook)(void);

/*
 * A thread the next sandbox_enter() starts once the privileges are
 * dropped and before RLIMIT_NPROC forbids it: it shares the chroot, the
 * users, the empty bounding set and the limits, and the filter, loaded
 * with TSYNC, confines it with the rest (no clone(2) needed in it).
 */
void
sandbox_set_thread_hook(void (*hook)(void))
{
	sandbox_thread_hook = hook;
}

void
sandbox_enter(enum proc_role role, const struct smtpd_conf *conf,
    const char *root, unsigned int maxfiles)
{
	struct rlimit	 rl;

	sandbox_capbnd();
	if (conf->drop_privs)
		sandbox_drop(role, conf, root);
	else
		log_debug("not dropping privileges (-n or not root)");
	if (sandbox_thread_hook != NULL)
		sandbox_thread_hook();

	sandbox_rlimit(RLIMIT_CORE, 0, "RLIMIT_CORE");
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("getrlimit");
	if (rl.rlim_max != RLIM_INFINITY && maxfiles > rl.rlim_max)
		maxfiles = rl.rlim_max;
	rl.rlim_cur = rl.rlim_max = maxfiles;
	/* A bound, not a protection: valgrind, for one, forbids it. */
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("setrlimit RLIMIT_NOFILE %u", maxfiles);
	/*
	 * A worker writes messages into spool files: never more than a
	 * message may hold (SIGXFSZ is ignored: the write fails instead).
	 */
	if (role == ROLE_SESSION)
		sandbox_rlimit(RLIMIT_FSIZE, conf->max_size + 65536,
		    "RLIMIT_FSIZE");
	/* Without root, RLIMIT_NPROC would count the user's own shells. */
	if (conf->drop_privs)
		sandbox_rlimit(RLIMIT_NPROC, 0, "RLIMIT_NPROC");
	sandbox_rlimit_data(role, conf);
#ifndef SMTPD_SANITIZE
	/* (LeakSanitizer must ptrace the process at exit: not then.) */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		fatal("PR_SET_DUMPABLE");
#endif
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("PR_SET_NO_NEW_PRIVS");
	sandbox_seccomp(role);
}
