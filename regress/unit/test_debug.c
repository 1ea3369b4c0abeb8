/*
 * The debug printer against what Python's DebuggingServer printed for
 * the same data.
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

#include "debug.h"

#define HEAD	"---------- MESSAGE FOLLOWS ----------\n"
#define TAIL	"------------ END MESSAGE ------------\n"

/* Print spool (as the worker wrote it) and compare with want. */
static void
check(const char *spool, size_t len, const char *want)
{
	char	*out = NULL;
	size_t	 outlen = 0;
	FILE	*f = open_memstream(&out, &outlen);
	int	 fd = memfd_create("t", 0);

	assert_int_equal(write(fd, spool, len), (ssize_t)len);
	assert_int_equal(debug_print(fd, len, "127.0.0.1", f), 0);
	fclose(f);
	assert_string_equal(out, want);
	free(out);
	close(fd);
}

static void
test_classic(void **state)
{
	const char *spool = "Subject: x\r\nTo: y\r\n\r\nbody\r\n";

	(void)state;
	check(spool, strlen(spool), HEAD "Subject: x\nTo: y\nX-Peer: 127.0.0.1"
	    "\n\nbody\n" TAIL);
}

static void
test_no_empty_line(void **state)
{
	const char *spool = "Subject: x\r\nbody\r\n";

	(void)state;
	check(spool, strlen(spool), HEAD "Subject: x\nbody\nX-Peer: 127.0.0.1"
	    "\n" TAIL);
}

static void
test_empty_message(void **state)
{
	(void)state;
	/* Python printed X-Peer and one empty line for empty data. */
	check("", 0, HEAD "X-Peer: 127.0.0.1\n\n" TAIL);
}

static void
test_only_first_empty_line(void **state)
{
	const char *spool = "\r\nA\r\n\r\nB\r\n";

	(void)state;
	check(spool, strlen(spool), HEAD "X-Peer: 127.0.0.1\n\nA\n\nB\n" TAIL);
}

static void
test_binary_bytes_pass(void **state)
{
	const char spool[] = "H: \xff\x00z\r\n\r\n\xc3\xa9\r\n";

	(void)state;
	{
		char	*out = NULL;
		size_t	 outlen = 0;
		FILE	*f = open_memstream(&out, &outlen);
		int	 fd = memfd_create("t", 0);
		const char want[] = HEAD "H: \xff\x00z\nX-Peer: 127.0.0.1\n\n"
		    "\xc3\xa9\n" TAIL;

		assert_int_equal(write(fd, spool, sizeof(spool) - 1),
		    (ssize_t)sizeof(spool) - 1);
		assert_int_equal(debug_print(fd, sizeof(spool) - 1, "127.0.0.1",
		    f), 0);
		fclose(f);
		assert_int_equal(outlen, sizeof(want) - 1);
		assert_memory_equal(out, want, outlen);
		free(out);
		close(fd);
	}
}

/* Bytes past the committed size (a worker still writing) are not ours. */
static void
test_only_committed_size(void **state)
{
	const char	*spool = "A: b\r\n\r\nbody\r\nLATE\r\n";
	char		*out = NULL;
	size_t		 outlen = 0;
	FILE		*f = open_memstream(&out, &outlen);
	int		 fd = memfd_create("t", 0);

	(void)state;
	assert_int_equal(write(fd, spool, strlen(spool)),
	    (ssize_t)strlen(spool));
	assert_int_equal(debug_print(fd, strlen("A: b\r\n\r\nbody\r\n"),
	    "127.0.0.1", f), 0);
	fclose(f);
	assert_string_equal(out, HEAD "A: b\nX-Peer: 127.0.0.1\n\nbody\n" TAIL);
	free(out);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classic),
		cmocka_unit_test(test_no_empty_line),
		cmocka_unit_test(test_empty_message),
		cmocka_unit_test(test_only_first_empty_line),
		cmocka_unit_test(test_binary_bytes_pass),
		cmocka_unit_test(test_only_committed_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
