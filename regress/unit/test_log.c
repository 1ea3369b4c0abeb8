/*
 * Lines held on standard error (log_batch): informational ones wait for
 * log_flush(), a warning goes at once after them, and every write holds
 * whole lines only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int	 memfd = -1;

/* What reached standard error so far. */
static char *
written(void)
{
	static char	 buf[65536];
	ssize_t		 n;

	n = pread(memfd, buf, sizeof(buf) - 1, 0);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

static size_t
count(const char *s, const char *what)
{
	size_t	 n = 0;

	while ((s = strstr(s, what)) != NULL) {
		n++;
		s += strlen(what);
	}
	return n;
}

static int
setup(void **state)
{
	(void)state;
	memfd = memfd_create("stderr", 0);
	assert_true(memfd != -1);
	assert_int_equal(dup2(memfd, STDERR_FILENO), STDERR_FILENO);
	log_init(1, 0, "test");
	return 0;
}

static void
test_held_until_flush(void **state)
{
	(void)state;
	log_batch(1);
	log_info("event=one");
	log_info("event=two");
	assert_string_equal(written(), "");
	log_flush();
	assert_int_equal(count(written(), "event=one\n"), 1);
	assert_int_equal(count(written(), "event=two\n"), 1);
	assert_true(strstr(written(), "event=one") <
	    strstr(written(), "event=two"));
	log_batch(0);
}

static void
test_warning_at_once(void **state)
{
	char	*w;

	(void)state;
	log_batch(1);
	log_info("event=before");
	log_warnx("event=warned");
	w = written();
	/* The warning is out, after the line held before it. */
	assert_non_null(strstr(w, "event=before\n"));
	assert_non_null(strstr(w, "event=warned\n"));
	assert_true(strstr(w, "event=before") < strstr(w, "event=warned"));
	log_batch(0);
}

/* More than the buffer holds: written as it fills, never a cut line. */
static void
test_many_lines(void **state)
{
	char	*w, *p, *nl;
	int	 i;

	(void)state;
	assert_int_equal(ftruncate(memfd, 0), 0);
	assert_int_equal(lseek(STDERR_FILENO, 0, SEEK_SET), 0);
	log_batch(1);
	for (i = 0; i < 400; i++)
		log_info("event=line n=%04d %s", i, "padding padding padding");
	log_batch(0);
	w = written();
	assert_int_equal(count(w, "event=line "), 400);
	for (p = w, i = 0; (nl = strchr(p, '\n')) != NULL; p = nl + 1, i++)
		assert_non_null(memmem(p, (size_t)(nl - p), "event=line n=",
		    strlen("event=line n=")));
	assert_int_equal(i, 400);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held_until_flush),
		cmocka_unit_test(test_warning_at_once),
		cmocka_unit_test(test_many_lines),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
