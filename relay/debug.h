/*
 * debug mode delivery: the block Python's DebuggingServer printed.
 */
#ifndef SMTPD_DEBUG_H
#define SMTPD_DEBUG_H

#include <stdint.h>
#include <stdio.h>

int	debug_print(int spoolfd, uint64_t size, const char *peer_ip, FILE *);

#endif
