/*
 * The metrics listener's request parser: GET /metrics and nothing
 * else, an answer as soon as the request line is bad, none before the
 * empty line otherwise, and always one for a full buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "httpreq.h"

static int
req(const char *s)
{
	return http_request(s, strlen(s));
}

static void
test_get_metrics(void **state)
{
	(void)state;
	assert_int_equal(req("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
	    HTTP_OK);
	assert_int_equal(req("GET /metrics HTTP/1.0\r\n\r\n"), HTTP_OK);
	assert_int_equal(req("GET /metrics?a=b HTTP/1.1\r\n\r\n"), HTTP_OK);
	/* Bare LF line ends, as curl never sends but nc users do. */
	assert_int_equal(req("GET /metrics HTTP/1.1\nHost: x\n\n"), HTTP_OK);
	assert_int_equal(req("GET /metrics HTTP/1.1\r\nX:\r\n\r\n"), HTTP_OK);
}

static void
test_incomplete(void **state)
{
	(void)state;
	assert_int_equal(req(""), HTTP_MORE);
	assert_int_equal(req("GET /metr"), HTTP_MORE);
	assert_int_equal(req("GET /metrics HTTP/1.1\r\n"), HTTP_MORE);
	assert_int_equal(req("GET /metrics HTTP/1.1\r\nHost: x\r\n"),
	    HTTP_MORE);
	/* A path that will be 404 still waits for the header's end. */
	assert_int_equal(req("GET / HTTP/1.1\r\n"), HTTP_MORE);
}

static void
test_refused(void **state)
{
	(void)state;
	assert_int_equal(req("POST /metrics HTTP/1.1\r\n\r\n"),
	    HTTP_BAD_METHOD);
	assert_int_equal(req("get /metrics HTTP/1.1\r\n\r\n"),
	    HTTP_BAD_METHOD);
	assert_int_equal(req("GET / HTTP/1.1\r\n\r\n"), HTTP_NOT_FOUND);
	assert_int_equal(req("GET /metricsx HTTP/1.1\r\n\r\n"),
	    HTTP_NOT_FOUND);
	assert_int_equal(req("GET /Metrics HTTP/1.1\r\n\r\n"),
	    HTTP_NOT_FOUND);
	/* A bad request line is answered without waiting for more. */
	assert_int_equal(req("GET /metrics HTTP/2.0\r\n"), HTTP_BAD_VERSION);
	assert_int_equal(req("GET /metrics\r\n"), HTTP_BAD_REQUEST);
	assert_int_equal(req("GET  /metrics HTTP/1.1\r\n"), HTTP_BAD_REQUEST);
	assert_int_equal(req("GET /metrics HTTP/1.1 x\r\n"),
	    HTTP_BAD_REQUEST);
	assert_int_equal(req("G(T /metrics HTTP/1.1\r\n"), HTTP_BAD_REQUEST);
	assert_int_equal(req("GET /metrics HTTP/1.10\r\n"),
	    HTTP_BAD_REQUEST);
	assert_int_equal(req("\r\n\r\n"), HTTP_BAD_REQUEST);
	assert_int_equal(req("GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"),
	    HTTP_BAD_REQUEST);
	assert_int_equal(req("GET /metrics HTTP/1.1\r\n: v\r\n\r\n"),
	    HTTP_BAD_REQUEST);
	assert_int_equal(req("GET /metrics HTTP/1.1\r\nA b: v\r\n\r\n"),
	    HTTP_BAD_REQUEST);
	assert_int_equal(req("GET /metrics HTTP/1.1\r\nX: a\033b\r\n\r\n"),
	    HTTP_BAD_REQUEST);
	assert_int_equal(http_request("GET /\0 HTTP/1.1\r\n\r\n", 19),
	    HTTP_BAD_REQUEST);
}

static void
test_full_buffer(void **state)
{
	char	*buf;
	size_t	 head;

	(void)state;
	buf = malloc(HTTP_REQUEST_MAX + 1);
	assert_non_null(buf);
	head = strlen("GET /metrics HTTP/1.1\r\nX: ");
	memcpy(buf, "GET /metrics HTTP/1.1\r\nX: ", head);
	memset(buf + head, 'a', HTTP_REQUEST_MAX + 1 - head);
	assert_int_equal(http_request(buf, HTTP_REQUEST_MAX - 1), HTTP_MORE);
	assert_int_equal(http_request(buf, HTTP_REQUEST_MAX), HTTP_TOO_LARGE);
	assert_int_equal(http_request(buf, HTTP_REQUEST_MAX + 1),
	    HTTP_TOO_LARGE);
	/* No line end at all: the same. */
	memset(buf, 'G', HTTP_REQUEST_MAX);
	assert_int_equal(http_request(buf, HTTP_REQUEST_MAX), HTTP_TOO_LARGE);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_metrics),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_full_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
