/*
 * The imsg rule table (lib/imsg_rules.c) and the one receive path
 * (proc_recv): every type is declared, with its roles, and a message
 * that breaks its rule never reaches a handler.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "imsg.h"
#include "policy.h"
#include "proc.h"
#include "proto.h"

#define PAYLOAD_MAX	(IMSG_MAX_SIZE - sizeof(struct imsg_hdr))

static int	handled;	/* calls of the test handler */

static int
on_any(struct proc_chan *ch, struct imsg *imsg)
{
	(void)ch;
	(void)imsg;
	handled++;
	return 0;
}

static int
on_refuse(struct proc_chan *ch, struct imsg *imsg)
{
	(void)ch;
	(void)imsg;
	handled++;
	return -1;
}

/* A handler for every type but IMSG_PING, which refuses. */
static struct proc_handler all_handlers[IMSG_MAX];

static void
handlers_init(void)
{
	uint32_t	 t;

	for (t = IMSG_NONE + 1; t < IMSG_MAX; t++) {
		all_handlers[t - 1].type = t;
		all_handlers[t - 1].fn = t == IMSG_PING ? on_refuse : on_any;
	}
	all_handlers[IMSG_MAX - 1].type = IMSG_NONE;
	all_handlers[IMSG_MAX - 1].fn = NULL;
}

static int
valid_role(enum proc_role r)
{
	return r == ROLE_PARENT || r == ROLE_SESSION || r == ROLE_RELAY;
}

/* Each type has one run of rows, sorted, named once, with sane bounds. */
static void
test_table_walk(void **state)
{
	const struct imsg_rule	*r, *q;
	char			 want[64];
	size_t			 i, j, first;
	uint32_t		 t;
	int			 rows;

	(void)state;
	for (i = 1; i < imsg_nrules; i++)
		assert_true(imsg_rules[i - 1].type <= imsg_rules[i].type);
	for (t = IMSG_NONE + 1; t < IMSG_MAX; t++) {
		rows = 0;
		first = imsg_nrules;
		for (i = 0; i < imsg_nrules; i++) {
			if (imsg_rules[i].type != t)
				continue;
			if (first == imsg_nrules)
				first = i;
			/* One run: no row of another type in between. */
			assert_int_equal(i, first + rows);
			rows++;
		}
		assert_true(rows >= 1);
		for (i = first; i < first + rows; i++) {
			r = &imsg_rules[i];
			assert_non_null(r->name);
			assert_true(strncmp(r->name, "IMSG_", 5) == 0);
			assert_string_equal(r->name, imsg_name(t));
			assert_true(valid_role(r->from));
			assert_true(valid_role(r->to));
			assert_int_not_equal(r->from, r->to);
			/* Every message has the parent or the relay at one end. */
			assert_true(r->from != ROLE_SESSION ||
			    r->to != ROLE_SESSION);
			assert_true(r->phase != 0 &&
			    (r->phase & ~(uint32_t)PHASE_ANY) == 0);
			/* Only a child hears start-up, and from the parent. */
			if (r->phase & PHASE_STARTUP)
				assert_int_equal(r->from, ROLE_PARENT);
			assert_true(r->fd == IMSG_FD_NEVER ||
			    r->fd == IMSG_FD_ALWAYS || r->fd == IMSG_FD_OPTIONAL);
			assert_true(r->min <= r->max);
			assert_true(r->max <= PAYLOAD_MAX);
			/* A size rule that is not exact needs a parser. */
			if (r->min != r->max)
				assert_true(r->by_handler);
			assert_ptr_equal(imsg_rule_find(t, r->from, r->to), r);
			for (j = i + 1; j < first + rows; j++) {
				q = &imsg_rules[j];
				assert_false(q->from == r->from &&
				    q->to == r->to);
			}
		}
	}
	for (i = 0; i < imsg_nrules; i++)
		assert_true(imsg_rules[i].type > IMSG_NONE &&
		    imsg_rules[i].type < IMSG_MAX);
	snprintf(want, sizeof(want), "imsg type %u", (unsigned)IMSG_MAX);
	assert_string_equal(imsg_name(IMSG_MAX), want);
	assert_string_equal(imsg_name(IMSG_LOG), "IMSG_LOG");
}

/* The pairs the comment of lib/proto.h used to list are all there. */
static void
test_table_pairs(void **state)
{
	(void)state;
	assert_non_null(imsg_rule_find(IMSG_CONF_DOMAIN, ROLE_PARENT,
	    ROLE_SESSION));
	assert_non_null(imsg_rule_find(IMSG_CONF_DOMAIN, ROLE_PARENT,
	    ROLE_RELAY));
	assert_non_null(imsg_rule_find(IMSG_LOG, ROLE_SESSION, ROLE_PARENT));
	assert_non_null(imsg_rule_find(IMSG_LOG, ROLE_RELAY, ROLE_PARENT));
	assert_non_null(imsg_rule_find(IMSG_PING, ROLE_PARENT, ROLE_RELAY));
	assert_non_null(imsg_rule_find(IMSG_PONG, ROLE_SESSION, ROLE_PARENT));
	assert_null(imsg_rule_find(IMSG_LOAD, ROLE_RELAY, ROLE_PARENT));
	assert_null(imsg_rule_find(IMSG_MSG_OPEN, ROLE_SESSION, ROLE_PARENT));
	assert_null(imsg_rule_find(IMSG_RESOLVE, ROLE_SESSION, ROLE_PARENT));
	assert_null(imsg_rule_find(IMSG_STOP, ROLE_SESSION, ROLE_RELAY));
}

struct link {
	int			 sv[2];
	struct imsgbuf		 w, r;
	struct proc_chan	 ch;
};

static void
link_open(struct link *l, enum proc_role self, enum proc_role peer)
{
	assert_int_equal(socketpair(AF_UNIX,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, l->sv), 0);
	imsgbuf_init(&l->w, l->sv[0]);
	imsgbuf_init(&l->r, l->sv[1]);
	proc_chan_init(&l->ch, &l->r, self, peer, all_handlers, NULL);
	handled = 0;
}

static void
link_close(struct link *l)
{
	imsgbuf_clear(&l->w);
	imsgbuf_clear(&l->r);
	close(l->sv[0]);
	close(l->sv[1]);
}

/* Send one message from the peer; proc_recv()'s verdict on it. */
static enum proc_status
link_send(struct link *l, uint32_t type, int fd, size_t len)
{
	static uint8_t	 zero[IMSG_MAX_SIZE];

	assert_int_equal(imsg_compose(&l->w, type, 7, fd, zero, len), 0);
	assert_int_equal(imsgbuf_write(&l->w), 0);
	assert_false(imsgbuf_pending(&l->w));
	return proc_recv(&l->ch);
}

static int
devnull(void)
{
	int	 fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/* The verdict, and the reason naming the type. */
static void
refused(enum proc_role self, enum proc_role peer, uint32_t type, int fd,
    size_t len, const char *what)
{
	struct link	 l;
	char		 want[PROC_WHY_MAX];

	link_open(&l, self, peer);
	l.ch.phase = PHASE_RUNNING;
	assert_int_equal(link_send(&l, type, fd, len), PROC_BAD);
	assert_int_equal(handled, 0);
	snprintf(want, sizeof(want), "%s from %s: %s", imsg_name(type),
	    role_name(peer), what);
	assert_string_equal(l.ch.why, want);
	link_close(&l);
}

static void
accepted(enum proc_role self, enum proc_role peer, uint32_t type, int fd,
    size_t len)
{
	struct link	 l;

	link_open(&l, self, peer);
	l.ch.phase = PHASE_RUNNING;
	assert_int_equal(link_send(&l, type, fd, len), PROC_OK);
	assert_int_equal(handled, 1);
	link_close(&l);
}

static void
test_recv_wrong_role(void **state)
{
	(void)state;
	handlers_init();
	refused(ROLE_PARENT, ROLE_SESSION, IMSG_RESOLVE, -1, 0,
	    "not allowed from this sender");
	refused(ROLE_PARENT, ROLE_RELAY, IMSG_LOAD, -1, 4,
	    "not allowed from this sender");
	refused(ROLE_PARENT, ROLE_SESSION, IMSG_WORKER_BAD, -1, 0,
	    "not allowed from this sender");
	refused(ROLE_RELAY, ROLE_SESSION, IMSG_MSG_OK, -1, 4,
	    "not allowed from this sender");
	refused(ROLE_RELAY, ROLE_SESSION, IMSG_STOP, -1, 0,
	    "not allowed from this sender");
	refused(ROLE_SESSION, ROLE_RELAY, IMSG_MSG_OPEN, -1, 0,
	    "not allowed from this sender");
	refused(ROLE_SESSION, ROLE_PARENT, IMSG_POLICY_BEGIN, -1, 0,
	    "not allowed from this sender");
	refused(ROLE_RELAY, ROLE_PARENT, IMSG_RETIRE, -1, 0,
	    "not allowed from this sender");
	refused(ROLE_PARENT, ROLE_SESSION, 9999, -1, 0, "unknown type");
	refused(ROLE_PARENT, ROLE_SESSION, IMSG_NONE, -1, 0, "unknown type");
	accepted(ROLE_PARENT, ROLE_SESSION, IMSG_LOAD, -1, 4);
	accepted(ROLE_PARENT, ROLE_RELAY, IMSG_RESOLVE, -1, 4);
	accepted(ROLE_RELAY, ROLE_SESSION, IMSG_MSG_OPEN, -1, 8);
}

static void
test_recv_size(void **state)
{
	(void)state;
	handlers_init();
	refused(ROLE_PARENT, ROLE_SESSION, IMSG_LOAD, -1, 3,
	    "payload too short");
	refused(ROLE_PARENT, ROLE_SESSION, IMSG_LOAD, -1, 5,
	    "payload too long");
	refused(ROLE_PARENT, ROLE_RELAY, IMSG_PONG, -1, 0,
	    "payload too short");
	refused(ROLE_PARENT, ROLE_SESSION, IMSG_LOG, -1, 7,
	    "payload too short");
	refused(ROLE_PARENT, ROLE_SESSION, IMSG_SLOT_ASK, -1,
	    4 + sizeof(struct sockaddr_in6) + 1, "payload too long");
	refused(ROLE_RELAY, ROLE_SESSION, IMSG_MSG_OPEN, -1, 9,
	    "payload too long");
	refused(ROLE_SESSION, ROLE_RELAY, IMSG_QUEUE_SPACE, -1, 2,
	    "payload too short");
	refused(ROLE_SESSION, ROLE_PARENT, IMSG_AUTH_RESULT, -1, 8,
	    "payload too long");
	refused(ROLE_RELAY, ROLE_PARENT, IMSG_CONF_NET, -1,
	    sizeof(struct netaddr) - 1, "payload too short");
	accepted(ROLE_PARENT, ROLE_SESSION, IMSG_SLOT_ASK, -1,
	    4 + sizeof(struct sockaddr_in));
	accepted(ROLE_RELAY, ROLE_SESSION, IMSG_MSG_COMMIT, -1, PAYLOAD_MAX);
}

static void
test_recv_fd(void **state)
{
	(void)state;
	handlers_init();
	refused(ROLE_PARENT, ROLE_SESSION, IMSG_LOAD, devnull(), 4,
	    "descriptor where none belongs");
	refused(ROLE_RELAY, ROLE_SESSION, IMSG_MSG_OPEN, devnull(), 8,
	    "descriptor where none belongs");
	refused(ROLE_SESSION, ROLE_RELAY, IMSG_MSG_FD, -1, 0,
	    "descriptor missing");
	refused(ROLE_SESSION, ROLE_PARENT, IMSG_RELAY_CHANNEL, -1, 0,
	    "descriptor missing");
	refused(ROLE_PARENT, ROLE_RELAY, IMSG_DELIVER_RUN, -1, 20,
	    "descriptor missing");
	accepted(ROLE_SESSION, ROLE_RELAY, IMSG_MSG_FD, devnull(), 0);
	accepted(ROLE_RELAY, ROLE_PARENT, IMSG_RELAY_CHANNEL, devnull(), 0);
}

/* Start-up messages only before IMSG_CONF_END, orders only after. */
static void
test_recv_phase(void **state)
{
	struct link	 l;

	(void)state;
	handlers_init();
	link_open(&l, ROLE_SESSION, ROLE_PARENT);
	assert_int_equal(l.ch.phase, PHASE_STARTUP);
	assert_int_equal(link_send(&l, IMSG_STOP, -1, 0), PROC_BAD);
	assert_string_equal(l.ch.why, "IMSG_STOP from parent: not allowed "
	    "during start-up");
	link_close(&l);

	link_open(&l, ROLE_RELAY, ROLE_PARENT);
	assert_int_equal(link_send(&l, IMSG_CONF_DOMAIN, -1, 4), PROC_OK);
	assert_int_equal(link_send(&l, IMSG_CONF_UPSTREAM_AUTH, -1, 12),
	    PROC_OK);
	l.ch.phase = PHASE_RUNNING;
	assert_int_equal(link_send(&l, IMSG_CONF_DOMAIN, -1, 4), PROC_OK);
	/* A reload's credentials: its handler takes them or not. */
	assert_int_equal(link_send(&l, IMSG_CONF_UPSTREAM_AUTH, -1, 12),
	    PROC_OK);
	assert_int_equal(link_send(&l, IMSG_CONF_END, -1, 0), PROC_BAD);
	assert_string_equal(l.ch.why, "IMSG_CONF_END from parent: "
	    "allowed during start-up only");
	assert_int_equal(handled, 4);
	link_close(&l);
}

/*
 * IMSG_CONF_END ends the start-up, and what came behind it waits for
 * the next proc_recv(): the process gets ready for it first.
 */
static void
test_recv_conf_end(void **state)
{
	struct proc_handler	 h[] = {
		{ IMSG_CONF_END, proc_conf_end },
		{ IMSG_STOP, on_any },
		{ IMSG_NONE, NULL },
	};
	struct link		 l;

	(void)state;
	link_open(&l, ROLE_SESSION, ROLE_PARENT);
	l.ch.handlers = h;
	assert_int_equal(imsg_compose(&l.w, IMSG_CONF_END, 0, -1, NULL, 0), 0);
	assert_int_equal(imsg_compose(&l.w, IMSG_STOP, 0, -1, NULL, 0), 0);
	assert_int_equal(imsgbuf_write(&l.w), 0);
	assert_int_equal(proc_recv(&l.ch), PROC_OK);
	assert_int_equal(l.ch.phase, PHASE_RUNNING);
	assert_int_equal(handled, 0);
	assert_int_equal(proc_dispatch(&l.ch), PROC_OK);
	assert_int_equal(handled, 1);
	/* No handler for a type the rules allow: refused all the same. */
	assert_int_equal(link_send(&l, IMSG_RETIRE, -1, 0), PROC_BAD);
	assert_string_equal(l.ch.why, "IMSG_RETIRE from parent: not expected "
	    "here");
	link_close(&l);
}

/* A handler's own refusal, the end of file and a broken header. */
static void
test_recv_handler_eof(void **state)
{
	struct link	 l;
	struct imsg_hdr	 hdr;

	(void)state;
	handlers_init();
	link_open(&l, ROLE_RELAY, ROLE_PARENT);
	l.ch.phase = PHASE_RUNNING;
	assert_int_equal(link_send(&l, IMSG_PING, -1, 4), PROC_BAD);
	assert_int_equal(handled, 1);
	assert_string_equal(l.ch.why, "IMSG_PING from parent: malformed");
	memset(&hdr, 0, sizeof(hdr));
	hdr.type = IMSG_PING;
	hdr.len = 3;
	assert_int_equal(write(l.sv[0], &hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(proc_recv(&l.ch), PROC_BAD);
	assert_string_equal(l.ch.why, "malformed message");
	link_close(&l);

	link_open(&l, ROLE_PARENT, ROLE_SESSION);
	close(l.sv[0]);
	l.sv[0] = open("/dev/null", O_RDONLY);
	assert_int_equal(proc_recv(&l.ch), PROC_EOF);
	link_close(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_walk),
		cmocka_unit_test(test_table_pairs),
		cmocka_unit_test(test_recv_wrong_role),
		cmocka_unit_test(test_recv_size),
		cmocka_unit_test(test_recv_fd),
		cmocka_unit_test(test_recv_phase),
		cmocka_unit_test(test_recv_conf_end),
		cmocka_unit_test(test_recv_handler_eof),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
