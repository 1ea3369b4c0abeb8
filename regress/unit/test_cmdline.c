/*
 * The command line of SPEC section 3: options, modes and their Python
 * aliases, host:port pairs, sizes, and what is refused.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parent/cmdline.h"

#define MAXARGS	16

static char	 errbuf[512];

/* Parse a NULL-terminated list of arguments after "smtpd". */
static int
parse(struct cmdline *cl, ...)
{
	static char	*argv[MAXARGS + 2];
	va_list		 ap;
	int		 argc = 0;
	char		*a;

	argv[argc++] = "smtpd";
	va_start(ap, cl);
	while ((a = va_arg(ap, char *)) != NULL) {
		assert_true(argc <= MAXARGS);
		argv[argc++] = a;
	}
	va_end(ap);
	argv[argc] = NULL;
	errbuf[0] = '\0';
	return cmdline_parse(argc, argv, cl, errbuf, sizeof(errbuf));
}

static void
assert_err_has(const char *what)
{
	if (strstr(errbuf, what) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", errbuf, what);
}

static void
test_no_args(void **state)
{
	struct cmdline	 cl;

	(void)state;
	memset(&cl, 0xa5, sizeof(cl));
	assert_int_equal(parse(&cl, NULL), 0);
	assert_int_equal(cl.foreground, 0);
	assert_int_equal(cl.no_drop, 0);
	assert_int_equal(cl.check_only, 0);
	assert_int_equal(cl.verbose, 0);
	assert_int_equal(cl.version, 0);
	assert_int_equal(cl.help, 0);
	assert_int_equal(cl.smtputf8, 0);
	assert_int_equal(cl.mode, 0);
	assert_true(cl.max_size == 0);
	assert_null(cl.conffile);
	assert_null(cl.role);
	assert_int_equal(cl.have_listen, 0);
	assert_int_equal(cl.have_remote, 0);
	assert_string_equal(cl.program, "");
}

/* Python's own invocation works as it is. */
static void
test_python_form(void **state)
{
	struct cmdline	 cl;

	(void)state;
	assert_int_equal(parse(&cl, "-n", "-c", "DebuggingServer",
	    "localhost:1025", NULL), 0);
	assert_int_equal(cl.no_drop, 1);
	assert_int_equal(cl.mode, MODE_DEBUG);
	assert_int_equal(cl.have_listen, 1);
	assert_string_equal(cl.listen.host, "localhost");
	assert_int_equal(cl.listen.port, 1025);
	assert_int_equal(cl.have_remote, 0);

	assert_int_equal(parse(&cl, "-n", "-c", "PureProxy", "localhost:1025",
	    "smtp.example.com:25", NULL), 0);
	assert_int_equal(cl.mode, MODE_RELAY);
	assert_string_equal(cl.listen.host, "localhost");
	assert_int_equal(cl.listen.port, 1025);
	assert_int_equal(cl.have_remote, 1);
	assert_string_equal(cl.remote.host, "smtp.example.com");
	assert_int_equal(cl.remote.port, 25);
	assert_string_equal(cl.program, "");
}

static void
test_flags(void **state)
{
	struct cmdline	 cl;

	(void)state;
	assert_int_equal(parse(&cl, "-d", "-n", "-t", "-u", "-v", "-V", "-h",
	    "-f", "/etc/x.conf", "-s", "10M", "-c", "relay", NULL), 0);
	assert_int_equal(cl.foreground, 1);
	assert_int_equal(cl.no_drop, 1);
	assert_int_equal(cl.check_only, 1);
	assert_int_equal(cl.smtputf8, 1);
	assert_int_equal(cl.verbose, 1);
	assert_int_equal(cl.version, 1);
	assert_int_equal(cl.help, 1);
	assert_string_equal(cl.conffile, "/etc/x.conf");
	assert_true(cl.max_size == 10 * 1024 * 1024);
	assert_int_equal(cl.mode, MODE_RELAY);
	assert_int_equal(cl.have_listen, 0);

	/* Clustered, attached arguments, repeated -v. */
	assert_int_equal(parse(&cl, "-dvvv", "-cdeliver", "-s1k", NULL), 0);
	assert_int_equal(cl.foreground, 1);
	assert_int_equal(cl.verbose, 3);
	assert_int_equal(cl.mode, MODE_DELIVER);
	assert_true(cl.max_size == 1024);
	assert_int_equal(cl.no_drop, 0);

	/* The last -c wins. */
	assert_int_equal(parse(&cl, "-c", "relay", "-c", "debug", NULL), 0);
	assert_int_equal(cl.mode, MODE_DEBUG);

	/* The hidden child role. */
	assert_int_equal(parse(&cl, "-X", "session", NULL), 0);
	assert_string_equal(cl.role, "session");

	/* "--" ends the options. */
	assert_int_equal(parse(&cl, "-d", "--", "127.0.0.1:25", NULL), 0);
	assert_int_equal(cl.have_listen, 1);
	assert_string_equal(cl.listen.host, "127.0.0.1");
}

static void
test_deliver(void **state)
{
	struct cmdline	 cl;
	char		 longpath[PATH_MAX + 10];

	(void)state;
	assert_int_equal(parse(&cl, "-c", "deliver", "127.0.0.1:2525",
	    "/usr/local/bin/hook", NULL), 0);
	assert_int_equal(cl.mode, MODE_DELIVER);
	assert_int_equal(cl.have_listen, 1);
	assert_int_equal(cl.listen.port, 2525);
	assert_int_equal(cl.have_remote, 0);
	assert_string_equal(cl.program, "/usr/local/bin/hook");
	/* A program path is not a host:port. */
	assert_int_equal(parse(&cl, "-c", "deliver", "127.0.0.1:2525",
	    "hook", NULL), 0);
	assert_string_equal(cl.program, "hook");
	/* In relay mode the same is an error. */
	assert_int_equal(parse(&cl, "-c", "relay", "127.0.0.1:2525",
	    "/usr/local/bin/hook", NULL), -1);
	assert_int_equal(cl.have_remote, 0);

	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	longpath[PATH_MAX] = '\0';
	assert_int_equal(parse(&cl, "-c", "deliver", ":25", longpath, NULL),
	    -1);
	assert_err_has("too long");
	longpath[PATH_MAX - 1] = '\0';
	assert_int_equal(parse(&cl, "-c", "deliver", ":25", longpath, NULL),
	    0);
	assert_int_equal(strlen(cl.program), PATH_MAX - 1);
}

static void
test_errors(void **state)
{
	struct cmdline	 cl;

	(void)state;
	assert_int_equal(parse(&cl, "-c", "bogus", NULL), -1);
	assert_err_has("unknown mode");
	assert_err_has("bogus");
	assert_int_equal(parse(&cl, "-c", "Debug", NULL), -1);
	assert_int_equal(parse(&cl, "-c", "", NULL), -1);
	assert_int_equal(parse(&cl, "-x", NULL), -1);
	assert_err_has("-x");
	assert_int_equal(parse(&cl, "-c", NULL), -1);
	assert_int_equal(parse(&cl, "-s", NULL), -1);
	assert_int_equal(parse(&cl, "-s", "0", NULL), -1);
	assert_err_has("bad size");
	assert_int_equal(parse(&cl, "a:1", "b:2", "c:3", NULL), -1);
	assert_err_has("too many");
	assert_int_equal(parse(&cl, "localhost", NULL), -1);
	assert_int_equal(cl.have_listen, 0);
	assert_int_equal(parse(&cl, "localhost:1025", "upstream", NULL), -1);
	assert_int_equal(cl.have_remote, 0);
	/* Options after the first operand are operands. */
	assert_int_equal(parse(&cl, "localhost:25", "-d", NULL), -1);
	assert_int_equal(cl.foreground, 0);
}

/*
 * A parse that fails in the middle of a cluster must not leave getopt
 * state behind for the next one (which would then read the old argv).
 */
static void
test_reparse(void **state)
{
	struct cmdline	 cl;
	char		 a1[] = "-qd", a2[] = "-v";
	char		*argv1[] = { "smtpd", a1, NULL };
	char		*argv2[] = { "smtpd", a2, NULL };

	(void)state;
	assert_int_equal(cmdline_parse(2, argv1, &cl, errbuf, sizeof(errbuf)),
	    -1);
	assert_int_equal(cl.foreground, 0);
	/* Scribble over the old argument, as a freed argv would be. */
	memcpy(a1, "-nn", 3);
	assert_int_equal(cmdline_parse(2, argv2, &cl, errbuf, sizeof(errbuf)),
	    0);
	assert_int_equal(cl.verbose, 1);
	assert_int_equal(cl.foreground, 0);
	assert_int_equal(cl.no_drop, 0);

	/* The same after a failure on a missing argument. */
	assert_int_equal(parse(&cl, "-vs", NULL), -1);
	assert_int_equal(parse(&cl, "-d", NULL), 0);
	assert_int_equal(cl.foreground, 1);
	assert_int_equal(cl.verbose, 0);
}

static void
test_modes(void **state)
{
	(void)state;
	assert_int_equal(cmdline_mode("debug"), MODE_DEBUG);
	assert_int_equal(cmdline_mode("DebuggingServer"), MODE_DEBUG);
	assert_int_equal(cmdline_mode("relay"), MODE_RELAY);
	assert_int_equal(cmdline_mode("PureProxy"), MODE_RELAY);
	assert_int_equal(cmdline_mode("deliver"), MODE_DELIVER);
	assert_int_equal(cmdline_mode("DEBUG"), 0);
	assert_int_equal(cmdline_mode("debugg"), 0);
	assert_int_equal(cmdline_mode("deb"), 0);
	assert_int_equal(cmdline_mode(""), 0);
	assert_int_equal(cmdline_mode("MailmanProxy"), 0);
}

static void
test_size(void **state)
{
	uint64_t	 v;

	(void)state;
	v = 7;
	assert_int_equal(parse_size("1", &v), 0);
	assert_true(v == 1);
	assert_int_equal(parse_size("33554432", &v), 0);
	assert_true(v == 33554432);
	assert_int_equal(parse_size("10k", &v), 0);
	assert_true(v == 10240);
	assert_int_equal(parse_size("10K", &v), 0);
	assert_true(v == 10240);
	assert_int_equal(parse_size("32M", &v), 0);
	assert_true(v == 33554432);
	assert_int_equal(parse_size("2g", &v), 0);
	assert_true(v == 2147483648ULL);
	assert_int_equal(parse_size("16G", &v), 0);
	assert_true(v == 17179869184ULL);
	assert_int_equal(parse_size("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_size("17179869183G", &v), 0);
	assert_true(v == 17179869183ULL * 1073741824ULL);

	v = 7;
	assert_int_equal(parse_size("0", &v), -1);
	assert_int_equal(parse_size("0K", &v), -1);
	assert_int_equal(parse_size("", &v), -1);
	assert_int_equal(parse_size("K", &v), -1);
	assert_int_equal(parse_size("-1", &v), -1);
	assert_int_equal(parse_size("+1", &v), -1);
	assert_int_equal(parse_size(" 1", &v), -1);
	assert_int_equal(parse_size("1 ", &v), -1);
	assert_int_equal(parse_size("10X", &v), -1);
	assert_int_equal(parse_size("10MB", &v), -1);
	assert_int_equal(parse_size("10KK", &v), -1);
	assert_int_equal(parse_size("1.5M", &v), -1);
	assert_int_equal(parse_size("0x10", &v), -1);
	assert_int_equal(parse_size("18446744073709551616", &v), -1);
	assert_int_equal(parse_size("17179869184G", &v), -1);
	assert_int_equal(parse_size("18014398509481984K", &v), -1);
	assert_true(v == 7);
}

static void
test_hostport(void **state)
{
	struct hostport	 hp;
	char		 err[256], host[400];

	(void)state;
	assert_int_equal(hostport_parse("localhost:8025", &hp, err,
	    sizeof(err)), 0);
	assert_string_equal(hp.host, "localhost");
	assert_int_equal(hp.port, 8025);
	assert_int_equal(hostport_parse("127.0.0.1:25", &hp, err, sizeof(err)),
	    0);
	assert_string_equal(hp.host, "127.0.0.1");
	assert_int_equal(hp.port, 25);
	assert_int_equal(hostport_parse("[::1]:1025", &hp, err, sizeof(err)),
	    0);
	assert_string_equal(hp.host, "::1");
	assert_int_equal(hp.port, 1025);
	assert_int_equal(hostport_parse("[2001:db8::25]:65535", &hp, err,
	    sizeof(err)), 0);
	assert_string_equal(hp.host, "2001:db8::25");
	assert_int_equal(hp.port, 65535);
	assert_int_equal(hostport_parse(":25", &hp, err, sizeof(err)), 0);
	assert_string_equal(hp.host, "");
	assert_int_equal(hp.port, 25);
	assert_int_equal(hostport_parse("mx.example.org:1", &hp, err,
	    sizeof(err)), 0);
	assert_string_equal(hp.host, "mx.example.org");
	assert_int_equal(hp.port, 1);

	/* Refused, and nothing half-filled. */
	assert_int_equal(hostport_parse("localhost", &hp, err, sizeof(err)),
	    -1);
	assert_string_equal(hp.host, "");
	assert_int_equal(hp.port, 0);
	assert_int_equal(hostport_parse("localhost:", &hp, err, sizeof(err)),
	    -1);
	assert_int_equal(hostport_parse("localhost:0", &hp, err, sizeof(err)),
	    -1);
	assert_int_equal(hostport_parse("localhost:65536", &hp, err,
	    sizeof(err)), -1);
	assert_int_equal(hostport_parse("localhost: 25", &hp, err,
	    sizeof(err)), -1);
	assert_int_equal(hostport_parse("localhost:+25", &hp, err,
	    sizeof(err)), -1);
	assert_int_equal(hostport_parse("localhost:-1", &hp, err, sizeof(err)),
	    -1);
	assert_int_equal(hostport_parse("localhost:25x", &hp, err,
	    sizeof(err)), -1);
	assert_int_equal(hostport_parse("localhost:smtp", &hp, err,
	    sizeof(err)), -1);
	assert_int_equal(hostport_parse("::1:25", &hp, err, sizeof(err)), -1);
	assert_int_equal(hostport_parse("[::1]", &hp, err, sizeof(err)), -1);
	assert_int_equal(hostport_parse("[::1]25", &hp, err, sizeof(err)), -1);
	assert_int_equal(hostport_parse("[::1:25", &hp, err, sizeof(err)), -1);
	assert_int_equal(hostport_parse("[::1]:", &hp, err, sizeof(err)), -1);
	assert_int_equal(hostport_parse("", &hp, err, sizeof(err)), -1);

	/* A host name of 255 octets fits, 256 does not. */
	memset(host, 'h', 255);
	strcpy(host + 255, ":25");
	assert_int_equal(hostport_parse(host, &hp, err, sizeof(err)), 0);
	assert_int_equal(strlen(hp.host), 255);
	memset(host, 'h', 256);
	strcpy(host + 256, ":25");
	assert_int_equal(hostport_parse(host, &hp, err, sizeof(err)), -1);
	memset(host, 'h', 350);
	strcpy(host + 350, ":25");
	assert_int_equal(hostport_parse(host, &hp, err, sizeof(err)), -1);
	assert_true(strlen(err) < sizeof(err));
}

static void
test_sockaddr(void **state)
{
	struct hostport		 hp;
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t		 slen;
	char			 err[128];

	(void)state;
	assert_int_equal(hostport_parse("localhost:8025", &hp, err,
	    sizeof(err)), 0);
	assert_int_equal(hostport_sockaddr(&hp, &ss, &slen), 0);
	assert_int_equal(slen, sizeof(struct sockaddr_in));
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(sin->sin_port, htons(8025));
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));

	assert_int_equal(hostport_parse("LocalHost:25", &hp, err, sizeof(err)),
	    0);
	assert_int_equal(hostport_sockaddr(&hp, &ss, &slen), 0);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));

	assert_int_equal(hostport_parse(":25", &hp, err, sizeof(err)), 0);
	assert_int_equal(hostport_sockaddr(&hp, &ss, &slen), 0);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(sin->sin_port, htons(25));

	assert_int_equal(hostport_parse("192.0.2.7:587", &hp, err,
	    sizeof(err)), 0);
	assert_int_equal(hostport_sockaddr(&hp, &ss, &slen), 0);
	assert_int_equal(sin->sin_addr.s_addr, inet_addr("192.0.2.7"));
	assert_int_equal(sin->sin_port, htons(587));

	assert_int_equal(hostport_parse("[::1]:1025", &hp, err, sizeof(err)),
	    0);
	assert_int_equal(hostport_sockaddr(&hp, &ss, &slen), 0);
	assert_int_equal(slen, sizeof(struct sockaddr_in6));
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(sin6->sin6_port, htons(1025));
	assert_memory_equal(&sin6->sin6_addr, &in6addr_loopback,
	    sizeof(in6addr_loopback));

	/* Never a DNS query: names other than localhost are refused. */
	slen = 99;
	assert_int_equal(hostport_parse("mx.example.org:25", &hp, err,
	    sizeof(err)), 0);
	assert_int_equal(hostport_sockaddr(&hp, &ss, &slen), -1);
	assert_int_equal(slen, 99);
	assert_int_equal(hostport_parse("localhost.:25", &hp, err,
	    sizeof(err)), 0);
	assert_int_equal(hostport_sockaddr(&hp, &ss, &slen), -1);
	assert_int_equal(hostport_parse("[999.1.1.1]:25", &hp, err,
	    sizeof(err)), 0);
	assert_int_equal(hostport_sockaddr(&hp, &ss, &slen), -1);
	assert_int_equal(hostport_parse("[fe80::1%lo]:25", &hp, err,
	    sizeof(err)), 0);
	assert_int_equal(hostport_sockaddr(&hp, &ss, &slen), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_args),
		cmocka_unit_test(test_python_form),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_deliver),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_reparse),
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_sockaddr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
