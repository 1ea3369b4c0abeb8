/*
 * The configuration on the wire: a round trip over a real socketpair,
 * and every truncation, extension and absurd value refused.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

#define HDRSZ	sizeof(struct imsg_hdr)

static void
sample(struct smtpd_conf *c)
{
	conf_defaults(c);
	c->mode = MODE_RELAY;
	c->verbose = 1;
	c->foreground = 1;
	c->smtputf8 = 1;
	c->drop_privs = 1;
	c->uid = 101;
	c->gid = 102;
	c->queue_uid = 103;
	c->queue_gid = 104;
	c->workers = 3;
	c->max_rcpt = 7;
	c->max_sessions = 8;
	c->max_per_ip = 9;
	c->max_bad = 10;
	c->timeout = 11;
	c->max_size = 0x123456789ULL;
	memset(c->hostname, 0, sizeof(c->hostname));
	memset(c->chroot, 0, sizeof(c->chroot));
	memset(c->queue, 0, sizeof(c->queue));
	memset(c->user, 0, sizeof(c->user));
	memset(c->queue_user, 0, sizeof(c->queue_user));
	memset(c->deliver_user, 0, sizeof(c->deliver_user));
	strcpy(c->hostname, "mx.example.org");
	strcpy(c->chroot, "/var/empty");
	strcpy(c->queue, "/var/spool/smtpd");
	strcpy(c->user, "_smtpd");
	strcpy(c->queue_user, "_smtpq");
	strcpy(c->deliver_user, "_smtpdeliver");
}

static void
assert_conf_equal(const struct smtpd_conf *a, const struct smtpd_conf *b)
{
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->verbose, b->verbose);
	assert_int_equal(a->foreground, b->foreground);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->drop_privs, b->drop_privs);
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->gid, b->gid);
	assert_int_equal(a->queue_uid, b->queue_uid);
	assert_int_equal(a->queue_gid, b->queue_gid);
	assert_int_equal(a->workers, b->workers);
	assert_int_equal(a->max_rcpt, b->max_rcpt);
	assert_int_equal(a->max_sessions, b->max_sessions);
	assert_int_equal(a->max_per_ip, b->max_per_ip);
	assert_int_equal(a->max_bad, b->max_bad);
	assert_int_equal(a->timeout, b->timeout);
	assert_true(a->max_size == b->max_size);
	assert_string_equal(a->hostname, b->hostname);
	assert_string_equal(a->chroot, b->chroot);
	assert_string_equal(a->queue, b->queue);
	assert_string_equal(a->user, b->user);
	/* Fields added later travel too. */
	assert_memory_equal(a, b, sizeof(*a));
}

/* Send c through a socketpair and read back the message. */
static void
send_recv(const struct smtpd_conf *c, struct imsg *imsg)
{
	struct imsgbuf	 w, r;
	int		 sv[2];
	ssize_t		 n;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
	imsgbuf_init(&w, sv[0]);
	imsgbuf_init(&r, sv[1]);
	assert_int_equal(conf_send(&w, c), 0);
	assert_int_equal(imsgbuf_write(&w), 0);
	assert_false(imsgbuf_pending(&w));
	assert_true(imsgbuf_read(&r) > 0);
	n = imsgbuf_get(&r, imsg);
	assert_true(n > (ssize_t)HDRSZ);
	assert_int_equal(imsg->hdr.type, IMSG_CONF);
	assert_int_equal(imsg->fd, -1);
	assert_int_equal(imsgbuf_get(&r, imsg + 1), 0);
	imsgbuf_clear(&w);
	imsgbuf_clear(&r);
	close(sv[0]);
	close(sv[1]);
}

/* A copy of imsg with its payload cut or extended to len bytes. */
static void
resized(const struct imsg *from, struct imsg *to, size_t len)
{
	memset(to, 0, sizeof(*to));
	to->fd = -1;
	to->hdr = from->hdr;
	to->datalen = len;
	to->data = calloc(1, len + 1);
	assert_non_null(to->data);
	memcpy(to->data, from->data, len < from->datalen ? len :
	    from->datalen);
}

static void
test_defaults(void **state)
{
	struct smtpd_conf	 c;

	(void)state;
	memset(&c, 0xa5, sizeof(c));
	conf_defaults(&c);
	assert_int_equal(c.mode, MODE_DEBUG);
	assert_int_equal(c.verbose, 0);
	assert_int_equal(c.foreground, 0);
	assert_int_equal(c.smtputf8, 0);
	assert_int_equal(c.drop_privs, 0);
	assert_int_equal(c.workers, 0);
	assert_int_equal(c.max_rcpt, DEFAULT_MAX_RCPT);
	assert_int_equal(c.max_sessions, DEFAULT_MAX_SESSIONS);
	assert_int_equal(c.max_per_ip, DEFAULT_MAX_PER_IP);
	assert_int_equal(c.max_bad, DEFAULT_MAX_BAD);
	assert_int_equal(c.timeout, DEFAULT_TIMEOUT);
	assert_int_equal(c.timeout, 300);	/* SPEC 4: idle time-out */
	assert_true(c.max_size == DEFAULT_MAX_SIZE);
	assert_true(c.max_size == 33554432);
	assert_true(c.hostname[0] != '\0');
	assert_true(strlen(c.hostname) < sizeof(c.hostname));
	assert_string_equal(c.chroot, SMTPD_CHROOT);
	assert_string_equal(c.queue, SMTPD_QUEUE);
	assert_string_equal(c.user, SMTPD_USER);
	assert_string_equal(c.queue_user, SMTPD_QUEUE_USER);
	assert_string_equal(c.queue_user, "_smtpq");
	assert_string_equal(c.deliver_user, SMTPD_DELIVER_USER);
	assert_string_equal(c.deliver_user, "_smtpdeliver");
}

static void
test_roundtrip(void **state)
{
	struct smtpd_conf	 c, d;
	struct imsg		 imsg[2];

	(void)state;
	sample(&c);
	send_recv(&c, imsg);
	memset(&d, 0xa5, sizeof(d));
	assert_int_equal(conf_recv(&imsg[0], &d), 0);
	assert_conf_equal(&c, &d);
	imsg_free(&imsg[0]);

	/* The defaults travel too, and maximal strings. */
	conf_defaults(&c);
	memset(c.hostname, 'h', sizeof(c.hostname) - 1);
	memset(c.chroot, 'c', sizeof(c.chroot) - 1);
	memset(c.queue, 'q', sizeof(c.queue) - 1);
	memset(c.user, 'u', sizeof(c.user) - 1);
	memset(c.queue_user, 'q', sizeof(c.queue_user) - 1);
	memset(c.deliver_user, 'd', sizeof(c.deliver_user) - 1);
	send_recv(&c, imsg);
	assert_int_equal(conf_recv(&imsg[0], &d), 0);
	assert_conf_equal(&c, &d);
	imsg_free(&imsg[0]);
}

/* Every truncation and any extra byte is refused. */
static void
test_truncated_extra(void **state)
{
	struct smtpd_conf	 c, d;
	struct imsg		 imsg[2], cut;
	size_t			 len;

	(void)state;
	sample(&c);
	send_recv(&c, imsg);
	for (len = 0; len < imsg[0].datalen; len++) {
		resized(&imsg[0], &cut, len);
		if (conf_recv(&cut, &d) != -1)
			fail_msg("a payload cut to %zu of %zu bytes was "
			    "accepted", len, imsg[0].datalen);
		imsg_free(&cut);
	}
	for (len = imsg[0].datalen + 1; len < imsg[0].datalen + 9; len++) {
		resized(&imsg[0], &cut, len);
		assert_int_equal(conf_recv(&cut, &d), -1);
		imsg_free(&cut);
	}
	resized(&imsg[0], &cut, imsg[0].datalen);
	assert_int_equal(conf_recv(&cut, &d), 0);
	assert_conf_equal(&c, &d);
	imsg_free(&cut);
	imsg_free(&imsg[0]);
}

/* Through the real encoder and a socketpair, then conf_recv(). */
static int
recv_conf(const struct smtpd_conf *c, struct smtpd_conf *d)
{
	struct imsg	 imsg[2];
	int		 rc;

	send_recv(c, imsg);
	rc = conf_recv(&imsg[0], d);
	imsg_free(&imsg[0]);
	return rc;
}

#define MARK	"@@HOSTNAME-MARK@@"

/*
 * The encoding of c with its hostname replaced by hostlen bytes of host,
 * which conf_send could never produce: the hostname is found by a marker
 * so that the test does not depend on the fields around it.
 */
static int
recv_host(const struct smtpd_conf *c, const void *host, uint32_t hostlen,
    struct smtpd_conf *d)
{
	struct smtpd_conf	 tmp;
	struct imsg		 imsg[2], fake;
	uint8_t			*at;
	uint32_t		 len;
	size_t			 k, tail;
	int			 rc;

	tmp = *c;
	memset(tmp.hostname, 0, sizeof(tmp.hostname));
	strcpy(tmp.hostname, MARK);
	send_recv(&tmp, imsg);
	at = memmem(imsg[0].data, imsg[0].datalen, MARK, strlen(MARK));
	assert_non_null(at);
	k = at - imsg[0].data;
	assert_true(k >= 4);
	memcpy(&len, at - 4, 4);
	assert_int_equal(len, strlen(MARK));
	tail = imsg[0].datalen - k - strlen(MARK);

	memset(&fake, 0, sizeof(fake));
	fake.fd = -1;
	fake.datalen = k + hostlen + tail;
	assert_non_null(fake.data = malloc(fake.datalen));
	memcpy(fake.data, imsg[0].data, k - 4);
	memcpy(fake.data + k - 4, &hostlen, 4);
	memcpy(fake.data + k, host, hostlen);
	memcpy(fake.data + k + hostlen, at + strlen(MARK), tail);
	rc = conf_recv(&fake, d);
	imsg_free(&fake);
	imsg_free(&imsg[0]);
	return rc;
}

static void
test_bad_values(void **state)
{
	struct smtpd_conf	 c, d;
	char			 host[300];

	(void)state;
	sample(&c);
	assert_int_equal(recv_conf(&c, &d), 0);
	assert_conf_equal(&c, &d);

	c.mode = 0;
	assert_int_equal(recv_conf(&c, &d), -1);
	c.mode = MODE_DELIVER + 1;
	assert_int_equal(recv_conf(&c, &d), -1);
	c.mode = MODE_DELIVER;
	assert_int_equal(recv_conf(&c, &d), 0);
	c.mode = MODE_DEBUG;
	assert_int_equal(recv_conf(&c, &d), 0);

	sample(&c);
	c.max_sessions = 0;
	assert_int_equal(recv_conf(&c, &d), -1);
	sample(&c);
	c.max_rcpt = 0;
	assert_int_equal(recv_conf(&c, &d), -1);
	sample(&c);
	c.timeout = 0;
	assert_int_equal(recv_conf(&c, &d), -1);

	/* Dropping privileges to root is no drop at all. */
	sample(&c);
	c.uid = 0;
	assert_int_equal(recv_conf(&c, &d), -1);
	c.drop_privs = 0;
	assert_int_equal(recv_conf(&c, &d), 0);
	sample(&c);
	c.gid = 0;
	assert_int_equal(recv_conf(&c, &d), -1);
	/* Nor to root for the relay, nor to the workers' user. */
	sample(&c);
	c.queue_uid = 0;
	assert_int_equal(recv_conf(&c, &d), -1);
	sample(&c);
	c.queue_gid = 0;
	assert_int_equal(recv_conf(&c, &d), -1);
	sample(&c);
	c.queue_uid = c.uid;
	assert_int_equal(recv_conf(&c, &d), -1);
	c.drop_privs = 0;
	assert_int_equal(recv_conf(&c, &d), 0);

	/* Strings: too long for the field, or with a NUL inside. */
	sample(&c);
	memset(host, 'h', sizeof(host));
	assert_int_equal(recv_host(&c, host, 255, &d), 0);
	assert_int_equal(strlen(d.hostname), 255);
	assert_int_equal(recv_host(&c, host, 256, &d), -1);
	assert_int_equal(recv_host(&c, host, 299, &d), -1);
	assert_int_equal(recv_host(&c, "mx\0evil", 7, &d), -1);
	assert_int_equal(recv_host(&c, "mx\0", 3, &d), -1);
	assert_int_equal(recv_host(&c, "mx.example.net", 14, &d), 0);
	assert_string_equal(d.hostname, "mx.example.net");
	assert_string_equal(d.chroot, c.chroot);
	assert_string_equal(d.user, c.user);
	assert_int_equal(recv_host(&c, "", 0, &d), 0);
	assert_string_equal(d.hostname, "");
}

/* Every number of settings[] is checked against its own bounds. */
static void
test_table_bounds(void **state)
{
	const struct setting	*st;
	struct smtpd_conf	 c, d;
	uint64_t		 top;
	size_t			 i;

	(void)state;
	for (i = 0; i < nsettings; i++) {
		st = &settings[i];
		if (setting_is_str(st)) {
			assert_true(st->size == st->max);
			continue;
		}
		top = st->size == sizeof(uint64_t) ? UINT64_MAX : UINT32_MAX;
		assert_true(st->max <= top);
		assert_true(setting_in_bounds(st, st->def));
		sample(&c);
		c.drop_privs = 0;
		setting_set(&c, st, st->min);
		assert_int_equal(recv_conf(&c, &d), 0);
		setting_set(&c, st, st->max);
		assert_int_equal(recv_conf(&c, &d), 0);
		assert_true(setting_get(&d, st) == st->max);
		if (st->min > 0 && st->min - 1 != st->def) {
			setting_set(&c, st, st->min - 1);
			if (recv_conf(&c, &d) != -1)
				fail_msg("%s below its bounds accepted",
				    st->name);
		}
		if (st->max < top && st->max + 1 != st->def) {
			setting_set(&c, st, st->max + 1);
			if (recv_conf(&c, &d) != -1)
				fail_msg("%s above its bounds accepted",
				    st->name);
		}
	}
}

/* A reload keeps what needs a restart and names what the file changed. */
static void
test_keep(void **state)
{
	struct smtpd_conf	 old, c;
	char			 kept[256];

	(void)state;
	sample(&old);
	c = old;
	assert_int_equal(conf_keep(&c, &old, kept, sizeof(kept)), 0);
	assert_string_equal(kept, "");
	c.timeout = 99;
	c.workers = 5;
	c.upstream_port = 2525;
	c.upstream_tls = UPSTREAM_TLS;
	c.queue_retry = 7;
	strcpy(c.queue, "/elsewhere");
	strcpy(c.user, "other");
	c.uid = 4242;
	assert_int_equal(conf_keep(&c, &old, kept, sizeof(kept)), 2);
	assert_string_equal(kept, "queue user");
	/* A reload applies everything else (SPEC 12). */
	assert_int_equal(c.timeout, 99);
	assert_int_equal(c.workers, 5);
	assert_int_equal(c.upstream_port, 2525);
	assert_int_equal(c.upstream_tls, UPSTREAM_TLS);
	assert_int_equal(c.queue_retry, 7);
	assert_int_equal(c.uid, old.uid);
	assert_string_equal(c.queue, old.queue);
	assert_string_equal(c.user, old.user);
	assert_int_equal(conf_kept_same(&c, &old), 1);
	c.gid = 4242;
	assert_int_equal(conf_kept_same(&c, &old), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_truncated_extra),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_table_bounds),
		cmocka_unit_test(test_keep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
