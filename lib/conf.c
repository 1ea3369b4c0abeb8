/*
 * Configuration defaults and its imsg encoding.  Every field is read
 * with a checked helper; a child refuses a configuration it cannot fully
 * parse.
 */
#include <string.h>
#include <unistd.h>

#include "conf.h"

/* Defaults of SPEC sections 3 and 4. */
void
conf_defaults(struct smtpd_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->mode = MODE_DEBUG;
	c->workers = 0;
	c->max_rcpt = DEFAULT_MAX_RCPT;
	c->max_sessions = DEFAULT_MAX_SESSIONS;
	c->max_per_ip = DEFAULT_MAX_PER_IP;
	c->max_bad = DEFAULT_MAX_BAD;
	c->timeout = DEFAULT_TIMEOUT;
	c->max_size = DEFAULT_MAX_SIZE;
	c->max_spool_pending = DEFAULT_SPOOL_PENDING;
	c->session_lifetime = DEFAULT_SESSION_LIFE;
	c->data_rate_min = DEFAULT_DATA_RATE;
	c->data_rate_grace = DEFAULT_DATA_GRACE;
	c->queue_lifetime = DEFAULT_QUEUE_LIFETIME;
	c->queue_retry = DEFAULT_QUEUE_RETRY;
	c->x_peer = 1;
	c->upstream_port = 25;
	c->upstream_tls = UPSTREAM_OPPORTUNISTIC;
	c->upstream_verify = 1;
	c->deliver_timeout = DEFAULT_DELIVER_TIMEOUT;
	c->deliver_max = DEFAULT_DELIVER_MAX;
	strcpy(c->upstream_host, "localhost");
	if (gethostname(c->hostname, sizeof(c->hostname)) == -1 ||
	    c->hostname[0] == '\0')
		strcpy(c->hostname, "localhost");
	c->hostname[sizeof(c->hostname) - 1] = '\0';
	strcpy(c->chroot, SMTPD_CHROOT);
	strcpy(c->queue, SMTPD_QUEUE);
	strcpy(c->user, SMTPD_USER);
	strcpy(c->queue_user, SMTPD_QUEUE_USER);
	strcpy(c->deliver_user, SMTPD_DELIVER_USER);
}

int
conf_send(struct imsgbuf *ib, const struct smtpd_conf *c)
{
	struct imsg_out	 out;

	imsg_out_init(&out, IMSG_CONF, 0, -1);
	imsg_add_u32(&out, c->mode);
	imsg_add_u32(&out, c->verbose);
	imsg_add_u32(&out, c->foreground);
	imsg_add_u32(&out, c->smtputf8);
	imsg_add_u32(&out, c->drop_privs);
	imsg_add_u32(&out, c->uid);
	imsg_add_u32(&out, c->gid);
	imsg_add_u32(&out, c->queue_uid);
	imsg_add_u32(&out, c->queue_gid);
	imsg_add_u32(&out, c->workers);
	imsg_add_u32(&out, c->max_rcpt);
	imsg_add_u32(&out, c->max_sessions);
	imsg_add_u32(&out, c->max_per_ip);
	imsg_add_u32(&out, c->max_bad);
	imsg_add_u32(&out, c->timeout);
	imsg_add_u64(&out, c->max_size);
	imsg_add_u64(&out, c->max_spool_pending);
	imsg_add_u32(&out, c->session_lifetime);
	imsg_add_u32(&out, c->data_rate_min);
	imsg_add_u32(&out, c->data_rate_grace);
	imsg_add_u32(&out, c->queue_lifetime);
	imsg_add_u32(&out, c->queue_retry);
	imsg_add_u32(&out, c->x_peer);
	imsg_add_u32(&out, c->debug_format);
	imsg_add_u32(&out, c->upstream_port);
	imsg_add_u32(&out, c->upstream_tls);
	imsg_add_u32(&out, c->upstream_verify);
	imsg_add_u32(&out, c->deliver_timeout);
	imsg_add_u32(&out, c->deliver_max);
	imsg_add_u32(&out, c->auth_enabled);
	imsg_add_u64(&out, c->queue_min_free);
	imsg_add_u32(&out, c->queue_min_free_pct);
	imsg_add_str(&out, c->hostname);
	imsg_add_str(&out, c->chroot);
	imsg_add_str(&out, c->queue);
	imsg_add_str(&out, c->user);
	imsg_add_str(&out, c->queue_user);
	imsg_add_str(&out, c->deliver_user);
	imsg_add_str(&out, c->upstream_host);
	imsg_add_str(&out, c->upstream_ca);
	return imsgbuf_queue(ib, &out);
}

/* Fill c from an IMSG_CONF; -1 if anything is short, long or absurd. */
int
conf_recv(struct imsg *imsg, struct smtpd_conf *c)
{
	memset(c, 0, sizeof(*c));
	if (imsg_get_u32(imsg, &c->mode) == -1 ||
	    imsg_get_u32(imsg, &c->verbose) == -1 ||
	    imsg_get_u32(imsg, &c->foreground) == -1 ||
	    imsg_get_u32(imsg, &c->smtputf8) == -1 ||
	    imsg_get_u32(imsg, &c->drop_privs) == -1 ||
	    imsg_get_u32(imsg, &c->uid) == -1 ||
	    imsg_get_u32(imsg, &c->gid) == -1 ||
	    imsg_get_u32(imsg, &c->queue_uid) == -1 ||
	    imsg_get_u32(imsg, &c->queue_gid) == -1 ||
	    imsg_get_u32(imsg, &c->workers) == -1 ||
	    imsg_get_u32(imsg, &c->max_rcpt) == -1 ||
	    imsg_get_u32(imsg, &c->max_sessions) == -1 ||
	    imsg_get_u32(imsg, &c->max_per_ip) == -1 ||
	    imsg_get_u32(imsg, &c->max_bad) == -1 ||
	    imsg_get_u32(imsg, &c->timeout) == -1 ||
	    imsg_get_u64(imsg, &c->max_size) == -1 ||
	    imsg_get_u64(imsg, &c->max_spool_pending) == -1 ||
	    imsg_get_u32(imsg, &c->session_lifetime) == -1 ||
	    imsg_get_u32(imsg, &c->data_rate_min) == -1 ||
	    imsg_get_u32(imsg, &c->data_rate_grace) == -1 ||
	    imsg_get_u32(imsg, &c->queue_lifetime) == -1 ||
	    imsg_get_u32(imsg, &c->queue_retry) == -1 ||
	    imsg_get_u32(imsg, &c->x_peer) == -1 ||
	    imsg_get_u32(imsg, &c->debug_format) == -1 ||
	    imsg_get_u32(imsg, &c->upstream_port) == -1 ||
	    imsg_get_u32(imsg, &c->upstream_tls) == -1 ||
	    imsg_get_u32(imsg, &c->upstream_verify) == -1 ||
	    imsg_get_u32(imsg, &c->deliver_timeout) == -1 ||
	    imsg_get_u32(imsg, &c->deliver_max) == -1 ||
	    imsg_get_u32(imsg, &c->auth_enabled) == -1 ||
	    imsg_get_u64(imsg, &c->queue_min_free) == -1 ||
	    imsg_get_u32(imsg, &c->queue_min_free_pct) == -1 ||
	    imsg_get_str(imsg, c->hostname, sizeof(c->hostname)) == -1 ||
	    imsg_get_str(imsg, c->chroot, sizeof(c->chroot)) == -1 ||
	    imsg_get_str(imsg, c->queue, sizeof(c->queue)) == -1 ||
	    imsg_get_str(imsg, c->user, sizeof(c->user)) == -1 ||
	    imsg_get_str(imsg, c->queue_user, sizeof(c->queue_user)) == -1 ||
	    imsg_get_str(imsg, c->deliver_user, sizeof(c->deliver_user)) ==
	    -1 ||
	    imsg_get_str(imsg, c->upstream_host, sizeof(c->upstream_host)) ==
	    -1 ||
	    imsg_get_str(imsg, c->upstream_ca, sizeof(c->upstream_ca)) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	if (c->mode < MODE_DEBUG || c->mode > MODE_DELIVER ||
	    c->max_sessions == 0 || c->max_rcpt == 0 || c->timeout == 0 ||
	    c->upstream_port == 0 || c->upstream_port > 65535 ||
	    c->upstream_tls > UPSTREAM_OPPORTUNISTIC || c->queue_retry == 0 ||
	    c->debug_format > DEBUG_FORMAT_BYTES ||
	    c->deliver_max == 0 || c->deliver_timeout == 0 ||
	    c->queue_min_free_pct > 100 ||
	    (c->drop_privs && (c->uid == 0 || c->gid == 0 ||
	    c->queue_uid == 0 || c->queue_gid == 0 || c->uid == c->queue_uid)))
		return -1;
	return 0;
}
