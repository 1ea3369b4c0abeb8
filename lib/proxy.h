/*
 * The PROXY protocol header a load balancer puts before the client's
 * bytes (HAProxy's proxy-protocol.txt, versions 1 and 2): who the
 * client really is.
 */
#ifndef SMTPD_PROXY_H
#define SMTPD_PROXY_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

/* Version 1: "PROXY " ... CRLF, 107 octets at most with the CRLF. */
#define PROXY_V1_MAX		107
/* Version 2: a 16-octet head, then addresses and TLVs. */
#define PROXY_V2_HEAD		16
/*
 * The most of version 2 we take: the addresses of any family and room
 * for TLVs (the specification asks receivers for 536 at least).
 */
#define PROXY_V2_BODY_MAX	1024
#define PROXY_HDR_MAX		(PROXY_V2_HEAD + PROXY_V2_BODY_MAX)
/* Seconds a listener with proxy-from waits for the whole header. */
#define PROXY_TIMEOUT		5

struct proxy_hdr {
	int			 version;	/* 1 or 2 */
	/*
	 * 1 when the header names no client (v2 LOCAL, such as a health
	 * check of the balancer itself, or v1 UNKNOWN): the connection's
	 * own addresses stand.
	 */
	int			 local;
	struct sockaddr_storage	 src;		/* the client */
	struct sockaddr_storage	 dst;		/* where it connected */
	socklen_t		 srclen;
	socklen_t		 dstlen;
};

/*
 * Parse the header at the start of buf[0..len).  Returns its length
 * (what to drop before SMTP begins), 0 when more bytes are needed to
 * decide, or -1 with *errstr saying why the bytes are not a valid
 * header (nothing of them may then be used).
 */
ssize_t	proxy_parse(const uint8_t *, size_t, struct proxy_hdr *,
	    const char **);

#endif
