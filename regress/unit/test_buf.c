/*
 * The reply buffer: growth, the ceiling on unsent bytes, draining and
 * the release of memory once empty.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void
test_add_and_drain(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 100);
	assert_null(b.data);
	assert_int_equal(buf_left(&b), 0);
	assert_int_equal(b.max, 100);

	assert_int_equal(buf_add(&b, "250 ok\r\n", 8), 0);
	assert_int_equal(buf_left(&b), 8);
	assert_non_null(b.data);
	assert_memory_equal(b.data + b.off, "250 ok\r\n", 8);
	assert_int_equal(buf_add(&b, "354 go\r\n", 8), 0);
	assert_int_equal(buf_left(&b), 16);
	assert_memory_equal(b.data + b.off, "250 ok\r\n354 go\r\n", 16);

	buf_drain(&b, 4);
	assert_int_equal(buf_left(&b), 12);
	assert_memory_equal(b.data + b.off, "ok\r\n354 go\r\n", 12);
	buf_drain(&b, 12);
	assert_int_equal(buf_left(&b), 0);
	/* Drained: the memory is gone. */
	assert_null(b.data);
	assert_int_equal(b.size, 0);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);

	/* Usable again after draining. */
	assert_int_equal(buf_add(&b, "x", 1), 0);
	assert_int_equal(buf_left(&b), 1);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(buf_left(&b), 0);
	buf_free(&b);
}

static void
test_ceiling(void **state)
{
	struct buf	 b;
	char		 big[300];

	(void)state;
	memset(big, 'a', sizeof(big));
	buf_init(&b, 100);
	assert_int_equal(buf_add(&b, big, 101), -1);
	assert_int_equal(buf_left(&b), 0);
	assert_int_equal(buf_add(&b, big, 100), 0);
	assert_int_equal(buf_left(&b), 100);
	assert_int_equal(buf_add(&b, big, 1), -1);
	assert_int_equal(buf_add(&b, big, 0), 0);
	assert_int_equal(buf_left(&b), 100);

	/* The ceiling counts bytes not yet written. */
	buf_drain(&b, 30);
	assert_int_equal(buf_left(&b), 70);
	assert_int_equal(buf_add(&b, "0123456789012345678901234567890", 31),
	    -1);
	assert_int_equal(buf_add(&b, "012345678901234567890123456789", 30),
	    0);
	assert_int_equal(buf_left(&b), 100);
	assert_memory_equal(b.data + b.off + 70,
	    "012345678901234567890123456789", 30);
	assert_memory_equal(b.data + b.off, big, 70);
	/* A huge length never wraps around. */
	assert_int_equal(buf_add(&b, big, SIZE_MAX), -1);
	assert_int_equal(buf_add(&b, big, SIZE_MAX - 5), -1);
	assert_int_equal(buf_left(&b), 100);
	buf_free(&b);

	/* A zero ceiling holds nothing, but adding nothing is fine. */
	buf_init(&b, 0);
	assert_int_equal(buf_add(&b, "x", 1), -1);
	assert_int_equal(buf_add(&b, "x", 0), 0);
	assert_int_equal(buf_left(&b), 0);
	buf_free(&b);

	/* Nothing added to an empty buffer, nothing allocated. */
	buf_init(&b, 10);
	assert_int_equal(buf_add(&b, "", 0), 0);
	assert_int_equal(buf_left(&b), 0);
	buf_drain(&b, 0);
	assert_null(b.data);
	buf_free(&b);
}

static void
test_growth(void **state)
{
	struct buf	 b;
	char		 chunk[1000], *want;
	size_t		 i, total = 0, head = 0;

	(void)state;
	want = malloc(300000);
	assert_non_null(want);
	buf_init(&b, 200000);
	for (i = 0; i < 150; i++) {
		memset(chunk, 'A' + i % 26, sizeof(chunk));
		assert_int_equal(buf_add(&b, chunk, 1 + i * 7 % 1000), 0);
		memcpy(want + total, chunk, 1 + i * 7 % 1000);
		total += 1 + i * 7 % 1000;
		assert_true(b.size >= b.len);
	}
	assert_int_equal(buf_left(&b), total);
	assert_memory_equal(b.data + b.off, want, total);

	/* Drain a little at a time while adding: content stays in order. */
	for (i = 0; buf_left(&b) > 0; i++) {
		size_t	 n = buf_left(&b) < 333 ? buf_left(&b) : 333;

		/* want[head .. total) is what the buffer must hold. */
		assert_memory_equal(b.data + b.off, want + head, n);
		head += n;
		buf_drain(&b, n);
		if (i < 100 && b.data != NULL) {
			memset(chunk, 'a' + i % 26, 100);
			assert_int_equal(buf_add(&b, chunk, 100), 0);
			memcpy(want + total, chunk, 100);
			total += 100;
		}
		assert_int_equal(buf_left(&b), total - head);
	}
	assert_null(b.data);
	buf_free(&b);
	free(want);
}

static void
test_printf(void **state)
{
	struct buf	 b;
	char		 longs[1100];

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(buf_printf(&b, "%d %s\r\n", 250, "2.0.0 Ok"), 0);
	assert_int_equal(buf_left(&b), 14);
	assert_memory_equal(b.data, "250 2.0.0 Ok\r\n", 14);

	/* One line is at most 1023 octets. */
	memset(longs, 'x', sizeof(longs));
	longs[1024] = '\0';
	assert_int_equal(buf_printf(&b, "%s", longs), -1);
	assert_int_equal(buf_left(&b), 14);
	longs[1023] = '\0';
	assert_int_equal(buf_printf(&b, "%s", longs), 0);
	assert_int_equal(buf_left(&b), 14 + 1023);
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	assert_int_equal(buf_left(&b), 14 + 1023);
	buf_free(&b);

	/* The ceiling applies to printf too. */
	buf_init(&b, 10);
	assert_int_equal(buf_printf(&b, "%s", "0123456789"), 0);
	assert_int_equal(buf_printf(&b, "%c", 'x'), -1);
	assert_int_equal(buf_left(&b), 10);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_and_drain),
		cmocka_unit_test(test_ceiling),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_printf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
