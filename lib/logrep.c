/*
 * Back-off for repeated log lines.  A key names the error, not the
 * message it happened to (e.g. "queue-update:28" for ENOSPC), so 512
 * messages failing the same way make one line and a count.  The table
 * is small; when it is full the slot idle longest is reused, which at
 * worst logs a line too many.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "log.h"
#include "logrep.h"

struct logrep {
	char		 key[LOGREP_KEY_MAX];
	uint64_t	 next;		/* ms: the next line may go out then */
	uint64_t	 last;		/* ms: the last occurrence */
	uint64_t	 interval;	/* ms */
	unsigned int	 left_out;	/* occurrences not logged since */
};

static struct logrep	 reps[LOGREP_SLOTS];

static uint64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct logrep *
rep_slot(const char *key, uint64_t now)
{
	struct logrep	*r, *oldest = &reps[0];
	size_t		 i;

	for (i = 0; i < LOGREP_SLOTS; i++) {
		r = &reps[i];
		if (r->key[0] != '\0' && strcmp(r->key, key) == 0)
			return r;
		if (r->key[0] == '\0' || r->last < oldest->last)
			oldest = r;
	}
	memset(oldest, 0, sizeof(*oldest));
	strlcpy(oldest->key, key, sizeof(oldest->key));
	oldest->interval = LOGREP_FIRST_MS;
	oldest->last = now;
	return oldest;
}

/* Log fmt (a warning) unless key was logged within its interval. */
void
log_rep(const char *key, const char *fmt, ...)
{
	struct logrep	*r;
	char		 line[1024];
	uint64_t	 now = now_ms();
	va_list		 ap;

	r = rep_slot(key, now);
	/* Quiet for a long while: the next burst starts from the beginning. */
	if (now - r->last > 2 * r->interval + LOGREP_MAX_MS / 60 &&
	    r->left_out == 0)
		r->interval = LOGREP_FIRST_MS;
	r->last = now;
	if (now < r->next) {
		r->left_out++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r->left_out > 0) {
		log_warnx("%s repeated=%u", line, r->left_out);
		r->interval *= 2;
		if (r->interval > LOGREP_MAX_MS)
			r->interval = LOGREP_MAX_MS;
	} else
		log_warnx("%s", line);
	r->left_out = 0;
	r->next = now + r->interval;
}

/* The error went away: the next one is news again. */
void
log_rep_clear(const char *key)
{
	size_t	 i;

	for (i = 0; i < LOGREP_SLOTS; i++)
		if (reps[i].key[0] != '\0' && strcmp(reps[i].key, key) == 0)
			memset(&reps[i], 0, sizeof(reps[i]));
}
