/*
 * Confinement of a child process, in the order ARCHITECTURE.md gives:
 * chroot, drop to the unprivileged user and prove root cannot come
 * back, rlimits, no-new-privs, then a seccomp allow-list that kills.
 */
#ifndef SMTPD_SANDBOX_H
#define SMTPD_SANDBOX_H

#include "proto.h"

void	sandbox_enter(enum proc_role, const struct smtpd_conf *,
	    const char *root, unsigned int maxfiles);
int	sandbox_sanitized(void);
void	sandbox_set_thread_hook(void (*)(void));

#endif
