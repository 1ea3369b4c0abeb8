/*
 * debug mode delivery: the block Python's DebuggingServer printed.
 */
#ifndef SMTPD_DEBUG_H
#define SMTPD_DEBUG_H

#include <stdio.h>

int	debug_print(int spoolfd, const char *peer_ip, FILE *);

#endif
