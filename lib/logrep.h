/*
 * Repeated identical errors, logged with back-off (SPEC section 7.3):
 * the first occurrence of a key is logged at once, later ones at
 * growing intervals (1 s doubling to 1 h) with the number of lines
 * left out in between, never once per message per retry.
 */
#ifndef SMTPD_LOGREP_H
#define SMTPD_LOGREP_H

#define LOGREP_SLOTS		32
#define LOGREP_KEY_MAX		96
#define LOGREP_FIRST_MS		1000
#define LOGREP_MAX_MS		3600000

void	log_rep(const char *key, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_rep_clear(const char *key);

#endif
