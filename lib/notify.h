/*
 * The service manager's notification protocol (sd_notify(3)), spoken
 * without libsystemd: datagrams of "KEY=value" lines to the socket named
 * by $NOTIFY_SOCKET.
 */
#ifndef SMTPD_NOTIFY_H
#define SMTPD_NOTIFY_H

/*
 * Take $NOTIFY_SOCKET (and remove it from the environment, so no child
 * sees it).  Returns 1 if a service manager listens, 0 if not, -1 if
 * the variable names no usable socket.
 */
int	notify_init(void);
/* 1 once notify_init() found a service manager. */
int	notify_active(void);
/* Send the state lines fmt makes; nothing when no manager listens. */
void	notify_send(const char *, ...)
	    __attribute__((format(printf, 1, 2)));

#endif
