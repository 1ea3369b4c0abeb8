/*
 * The one HTTP request the metrics listener answers (SPEC section 12):
 * "GET /metrics".  http_request() looks at what a client sent so far
 * and says whether more must come, or which status the answer has.
 */
#ifndef SMTPD_HTTPREQ_H
#define SMTPD_HTTPREQ_H

#include <stddef.h>

#define HTTP_REQUEST_MAX	8192	/* request line and header fields */

#define HTTP_MORE		0	/* incomplete: read on */
#define HTTP_OK			200	/* GET /metrics */
#define HTTP_BAD_REQUEST	400
#define HTTP_NOT_FOUND		404
#define HTTP_BAD_METHOD		405	/* not GET */
#define HTTP_TOO_LARGE		431	/* no end in HTTP_REQUEST_MAX bytes */
#define HTTP_BAD_VERSION	505	/* not HTTP/1.x */

int	http_request(const char *buf, size_t len);

#endif
