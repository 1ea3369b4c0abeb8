/*
 * smtpd.conf: every keyword with good and bad values, errors reported
 * as "file:line: what" on the right line, quoting, comments and commas,
 * the relay-recipients file, and the deliver command splitter.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "parent/parse.h"

static char	 dir[64];
static char	 conf_path[128];
static char	 rcpt_path[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_parse.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/smtpd.conf", dir);
	snprintf(rcpt_path, sizeof(rcpt_path), "%s/recipients", dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(conf_path);
	unlink(rcpt_path);
	return rmdir(dir);
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE	*f;

	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
put(const char *path, const char *text)
{
	write_file(path, text, strlen(text));
}

/* Parse text as the configuration file; the errors in *errs. */
static int
parse_len(const char *text, size_t len, struct conf_file *cf, char **errs)
{
	FILE	*ef;
	size_t	 elen;
	int	 rc;

	write_file(conf_path, text, len);
	conf_file_init(cf);
	ef = open_memstream(errs, &elen);
	assert_non_null(ef);
	rc = conf_file_parse(cf, conf_path, ef);
	assert_int_equal(fclose(ef), 0);
	return rc;
}

static int
parse(const char *text, struct conf_file *cf, char **errs)
{
	return parse_len(text, strlen(text), cf, errs);
}

/* The expected error text: "N: what" lines, each given the path. */
static char *
expand(const char *path, const char *lines)
{
	char	*out;
	size_t	 olen;
	FILE	*f;

	f = open_memstream(&out, &olen);
	assert_non_null(f);
	while (*lines != '\0') {
		const char *nl = strchr(lines, '\n');
		size_t n = nl != NULL ? (size_t)(nl - lines) : strlen(lines);

		fprintf(f, "%s:%.*s\n", path, (int)n, lines);
		lines += n;
		if (*lines == '\n')
			lines++;
	}
	assert_int_equal(fclose(f), 0);
	return out;
}

static int
count_lines(const char *s)
{
	int	 n = 0;

	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

/* Parse text; the errors must be exactly want ("N: what\n..."). */
static void
expect(const char *text, const char *want)
{
	struct conf_file	 cf;
	char			*errs, *exp;
	int			 rc;

	rc = parse(text, &cf, &errs);
	exp = expand(conf_path, want);
	if (strcmp(errs, exp) != 0)
		fail_msg("for:\n%s\ngot:\n%s\nwanted:\n%s", text, errs, exp);
	assert_int_equal(rc, count_lines(exp));
	free(exp);
	free(errs);
	conf_file_free(&cf);
}

static void
expect_ok(const char *text)
{
	expect(text, "");
}

static void
test_all_keywords(void **state)
{
	struct conf_file	 cf;
	char			*errs, *text;
	struct sockaddr_storage	 ss;
	socklen_t		 slen;
	int			 rc;

	(void)state;
	put(rcpt_path, "bob@listed.example\n@whole.example\n");
	assert_true(asprintf(&text,
	    "# A configuration with every keyword.\n"
	    "hostname mx.example.org\n"
	    "listen on 127.0.0.1 port 2525\n"
	    "listen on ::1 port 587 starttls-required auth\n"
	    "listen on 0.0.0.0 port 465 tls auth\n"
	    "listen on localhost\n"
	    "tls certificate /etc/ssl/cert.pem key /etc/ssl/key.pem\n"
	    "mode relay\n"
	    "upstream smtp.example.net port 587 starttls no-verify\n"
	    "upstream-auth /etc/smtpd/upstream-auth\n"
	    "upstream-ca /etc/ssl/ca.pem\n"
	    "deliver \"/usr/bin/procmail -d 'a b'\"\n"
	    "deliver-timeout 5m\n"
	    "deliver-max 8\n"
	    "relay-domains example.org, Example.NET.\n"
	    "relay-domains \"third.example\"\n"
	    "relay-recipients %s\n"
	    "trusted-networks 10.0.0.0/8, 2001:db8::/32\n"
	    "users /etc/smtpd/users\n"
	    "user nobody\n"
	    "chroot /var/empty2\n"
	    "queue /var/spool/q\n"
	    "workers 4\n"
	    "max-sessions 100\n"
	    "max-sessions-per-ip 0\n"
	    "max-message-size 10M\n"
	    "max-recipients 200\n"
	    "timeout 30s\n"
	    "queue-lifetime 4d\n"
	    "queue-retry 1m\n"
	    "x-peer-header no\n"
	    "smtputf8 yes\n", rcpt_path) > 0);
	rc = parse(text, &cf, &errs);
	assert_string_equal(errs, "");
	assert_int_equal(rc, 0);

	assert_string_equal(cf.conf.hostname, "mx.example.org");
	assert_int_equal(cf.nlisten, 4);
	assert_string_equal(cf.listen[0].hp.host, "127.0.0.1");
	assert_int_equal(cf.listen[0].hp.port, 2525);
	assert_int_equal(cf.listen[0].flags, 0);
	assert_string_equal(cf.listen[1].hp.host, "::1");
	assert_int_equal(cf.listen[1].hp.port, 587);
	assert_int_equal(cf.listen[1].flags, LISTEN_STARTTLS_REQ | LISTEN_AUTH);
	assert_int_equal(cf.listen[2].hp.port, 465);
	assert_int_equal(cf.listen[2].flags, LISTEN_TLS | LISTEN_AUTH);
	assert_int_equal(cf.listen[3].hp.port, 25);
	assert_int_equal(hostport_sockaddr(&cf.listen[1].hp, &ss, &slen), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_string_equal(cf.tls_cert, "/etc/ssl/cert.pem");
	assert_string_equal(cf.tls_key, "/etc/ssl/key.pem");
	assert_int_equal(cf.conf.mode, MODE_RELAY);
	assert_string_equal(cf.conf.upstream_host, "smtp.example.net");
	assert_int_equal(cf.conf.upstream_port, 587);
	assert_int_equal(cf.conf.upstream_tls, UPSTREAM_STARTTLS);
	assert_int_equal(cf.conf.upstream_verify, 0);
	assert_string_equal(cf.upstream_auth, "/etc/smtpd/upstream-auth");
	assert_string_equal(cf.conf.upstream_ca, "/etc/ssl/ca.pem");
	assert_string_equal(cf.deliver, "/usr/bin/procmail -d 'a b'");
	assert_int_equal(cf.conf.deliver_timeout, 300);
	assert_int_equal(cf.conf.deliver_max, 8);
	assert_int_equal(cf.policy.ndomains, 3);
	assert_string_equal(cf.policy.domains[0], "example.org");
	assert_string_equal(cf.policy.domains[1], "example.net");
	assert_string_equal(cf.policy.domains[2], "third.example");
	assert_string_equal(cf.recipients, rcpt_path);
	assert_int_equal(cf.policy.nrcpts, 2);
	assert_string_equal(cf.policy.rcpts[0], "@whole.example");
	assert_string_equal(cf.policy.rcpts[1], "bob@listed.example");
	assert_int_equal(cf.policy.nnets, 2);
	assert_int_equal(cf.policy.nets[0].prefix, 8);
	assert_int_equal(cf.policy.nets[1].prefix, 32);
	assert_string_equal(cf.users, "/etc/smtpd/users");
	assert_string_equal(cf.conf.user, "nobody");
	assert_string_equal(cf.conf.chroot, "/var/empty2");
	assert_string_equal(cf.conf.queue, "/var/spool/q");
	assert_int_equal(cf.conf.workers, 4);
	assert_int_equal(cf.conf.max_sessions, 100);
	assert_int_equal(cf.conf.max_per_ip, 0);
	assert_int_equal(cf.conf.max_size, 10 * 1024 * 1024);
	assert_int_equal(cf.conf.max_rcpt, 200);
	assert_int_equal(cf.conf.timeout, 30);
	assert_int_equal(cf.conf.queue_lifetime, 4 * 86400);
	assert_int_equal(cf.conf.queue_retry, 60);
	assert_int_equal(cf.conf.x_peer, 0);
	assert_int_equal(cf.conf.smtputf8, 1);
	free(errs);
	free(text);
	conf_file_free(&cf);
	unlink(rcpt_path);
}

/* An empty file, and one of comments only, leave the defaults. */
static void
test_defaults(void **state)
{
	struct conf_file	 cf, def;
	char			*errs;

	(void)state;
	conf_file_init(&def);
	assert_int_equal(parse("", &cf, &errs), 0);
	assert_string_equal(errs, "");
	assert_memory_equal(&cf.conf, &def.conf, sizeof(def.conf));
	assert_int_equal(cf.nlisten, 0);
	free(errs);
	conf_file_free(&cf);
	assert_int_equal(parse("# only\n\n   \n\t# comments\n#", &cf, &errs),
	    0);
	assert_string_equal(errs, "");
	assert_memory_equal(&cf.conf, &def.conf, sizeof(def.conf));
	free(errs);
	conf_file_free(&cf);
	conf_file_free(&def);
}

static void
test_values_good(void **state)
{
	struct conf_file	 cf;
	char			*errs;

	(void)state;
	expect_ok("hostname localhost\n");
	expect_ok("hostname a-b.c-d.example\n");
	expect_ok("listen on 0.0.0.0\nlisten on ::\nlisten on \"\"\n");
	expect_ok("listen on 127.0.0.1 port 1\nlisten on ::1 port 65535\n");
	expect_ok("mode debug\n");
	expect_ok("mode PureProxy\n");
	expect_ok("mode deliver\ndeliver /bin/cat\n");
	expect_ok("upstream 2001:db8::1\n");
	expect_ok("upstream 192.0.2.1 port 25 tls\n");
	expect_ok("upstream smtp.example plain\n");
	expect_ok("deliver-timeout 1\ndeliver-max 1\n");
	expect_ok("deliver-max 256\n");
	expect_ok("workers 256\n");
	expect_ok("max-sessions 100000\nmax-sessions-per-ip 100000\n");
	expect_ok("max-message-size 1\n");
	expect_ok("max-message-size 1g\n");
	expect_ok("max-recipients 1\n");
	expect_ok("timeout 1h\nqueue-lifetime 60\nqueue-retry 1s\n");
	expect_ok("x-peer-header yes\nsmtputf8 no\n");
	expect_ok("trusted-networks ::ffff:10.0.0.0/104\n");
	expect_ok("relay-domains b\xc3\xbc" "cher.example\n");

	assert_int_equal(parse("upstream h.example tls starttls plain\n"
	    "max-message-size 2K\ntimeout 4d\n", &cf, &errs), 0);
	assert_int_equal(cf.conf.upstream_tls, UPSTREAM_PLAIN);
	assert_int_equal(cf.conf.upstream_port, 25);
	assert_int_equal(cf.conf.upstream_verify, 1);
	assert_int_equal(cf.conf.max_size, 2048);
	assert_int_equal(cf.conf.timeout, 4 * 86400);
	free(errs);
	conf_file_free(&cf);
}

struct bad {
	const char	*text;
	const char	*errs;		/* "LINE: what" lines */
};

static const struct bad bad_conf[] = {
	{ "hostname bad_name\n", "1: hostname: bad_name is not a host name" },
	{ "hostname\n", "1: hostname: wrong number of arguments" },
	{ "hostname a b\n", "1: hostname: wrong number of arguments" },
	{ "hostname \"a b\"\n", "1: hostname: a b is not a host name" },
	{ "hostname \"\"\n", "1: hostname:  is not a host name" },
	{ "listen 127.0.0.1\n", "1: listen: wrong number of arguments" },
	{ "listen at 127.0.0.1\n",
	    "1: listen: expected \"listen on ADDRESS\"" },
	{ "listen on 127.0.0.1 port 0\n",
	    "1: listen port: 0 is too small (1 to 65535)" },
	{ "listen on 127.0.0.1 port 65536\n",
	    "1: listen port: 65536 is too large (1 to 65535)" },
	{ "listen on 127.0.0.1 port smtp\n",
	    "1: listen port: smtp is invalid (1 to 65535)" },
	{ "listen on 127.0.0.1 port\n", "1: listen: unknown option port" },
	{ "listen on 127.0.0.1 bogus\n", "1: listen: unknown option bogus" },
	{ "listen on 127.0.0.1 TLS\n", "1: listen: unknown option TLS" },
	{ "listen on mx.example.org\n",
	    "1: listen: mx.example.org is not an IP address or localhost" },
	{ "listen on [::1]\n",
	    "1: listen: [::1] is not an IP address or localhost" },
	{ "listen on 127.0.0.1 tls starttls-required\n",
	    "1: listen: tls and starttls-required exclude each other" },
	{ "listen on 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25\n",
	    "1: listen: wrong number of arguments" },
	{ "listen on 127.0.0.1 proxy-from\n",
	    "1: listen: proxy-from needs an address or network" },
	{ "listen on 127.0.0.1 proxy-from auth\n",
	    "1: listen: proxy-from needs an address or network, not auth" },
	{ "listen on 127.0.0.1 proxy-from 10.0.0.1/8\n",
	    "1: listen: proxy-from needs an address or network, not "
	    "10.0.0.1/8" },
	{ "listen on 127.0.0.1 proxy-from 1.0.0.1 1.0.0.2 1.0.0.3 1.0.0.4 "
	    "1.0.0.5 1.0.0.6 1.0.0.7 1.0.0.8 1.0.0.9 1.0.0.10 1.0.0.11 "
	    "1.0.0.12 1.0.0.13 1.0.0.14 1.0.0.15 1.0.0.16 1.0.0.17\n",
	    "1: listen: proxy-from: more than 16 networks" },
	{ "stop-timeout 0\n",
	    "1: stop-timeout: 0 is not a duration (30s, 5m, 1h, 4d)" },
	{ "stop-timeout 2h\n",
	    "1: stop-timeout: 2h is not a duration (30s, 5m, 1h, 4d)" },
	{ "tls certificate /a key\n", "1: tls: wrong number of arguments" },
	{ "tls cert /a key /b\n",
	    "1: tls: expected \"tls certificate FILE key FILE\"" },
	{ "tls certificate a key /b\n",
	    "1: tls certificate: a is not an absolute path\n"
	    "1: tls needs both certificate and key" },
	{ "tls certificate /a key b\n",
	    "1: tls key: b is not an absolute path\n"
	    "1: tls needs both certificate and key" },
	{ "upstream 1:2:3:4:5:6:7:8:9\n",
	    "1: upstream: 1:2:3:4:5:6:7:8:9 is not a host name or address" },
	{ "mode fast\n", "1: mode: fast is not debug, relay or deliver" },
	{ "mode Relay\n", "1: mode: Relay is not debug, relay or deliver" },
	{ "mode deliver\n", "1: mode deliver needs a deliver program" },
	{ "upstream bad_host\n",
	    "1: upstream: bad_host is not a host name or address" },
	{ "upstream h.example port 0\n",
	    "1: upstream port: 0 is too small (1 to 65535)" },
	{ "upstream h.example bogus\n", "1: upstream: unknown option bogus" },
	{ "upstream h.example port\n", "1: upstream: unknown option port" },
	{ "upstream a b c d e f\n", "1: upstream: unknown option b" },
	{ "upstream x host h.example rate 5/day\n",
	    "1: upstream: rate 5/day is not N/s, N/min or N/h (N from 1 to "
	    "100000)" },
	{ "upstream x host h.example max-connections 0\n",
	    "1: upstream max-connections: 0 is too small (1 to 1024)" },
	{ "upstream x host h.example\nupstream x host i.example\n",
	    "2: upstream: x given twice, badly named or one too many (at "
	    "most 32)" },
	{ "upstream x host h.example\nroute via y\n",
	    "2: route: via y: no such upstream (define it before) or more "
	    "than 8" },
	{ "upstream x host h.example\nroute sender @a.example via x\n",
	    "2: route: no default route (a route with no sender, user or "
	    "domain)" },
	{ "upstream x host h.example\nroute for a.example via x\n",
	    "2: route: expected \"for domain D\"" },
	{ "accept from any for any\n",
	    "1: accept: \"accept from any for any\" is an open relay; "
	    "refused" },
	{ "accept from src 10.0.0.1/8 for any\n",
	    "1: accept: 10.0.0.1/8 is not an address or network (host bits "
	    "must be zero)" },
	{ "accept from local\n", "1: accept: \"for\" is required" },
	{ "accept from lan for any\n",
	    "1: accept: from lan: expected any, local, src or auth" },
	{ "accept for domain a..b\n", "1: accept: a..b is not a domain" },
	{ "upstream-auth etc/auth\n",
	    "1: upstream-auth: etc/auth is not an absolute path" },
	{ "upstream-ca ca.pem\n",
	    "1: upstream-ca: ca.pem is not an absolute path" },
	{ "deliver prog\n",
	    "1: deliver: the program must be an absolute path" },
	{ "deliver /bin/prog arg\n", "1: deliver: wrong number of arguments" },
	{ "deliver \"/bin/prog 'x\"\n",
	    "1: deliver: unbalanced quote, too many words or no program" },
	{ "deliver \"\"\n",
	    "1: deliver: unbalanced quote, too many words or no program" },
	{ "deliver \"  \"\n",
	    "1: deliver: unbalanced quote, too many words or no program" },
	{ "deliver \"$HOME/bin/prog\"\n",
	    "1: deliver: the program must be an absolute path" },
	{ "deliver-timeout 0\n",
	    "1: deliver-timeout: 0 is not a duration (30s, 5m, 1h, 4d)" },
	{ "deliver-timeout 5x\n",
	    "1: deliver-timeout: 5x is not a duration (30s, 5m, 1h, 4d)" },
	{ "deliver-timeout 5mm\n",
	    "1: deliver-timeout: 5mm is not a duration (30s, 5m, 1h, 4d)" },
	{ "deliver-timeout -1\n",
	    "1: deliver-timeout: -1 is not a duration (30s, 5m, 1h, 4d)" },
	{ "deliver-timeout m\n",
	    "1: deliver-timeout: m is not a duration (30s, 5m, 1h, 4d)" },
	{ "deliver-timeout 99999999d\n",
	    "1: deliver-timeout: 99999999d is not a duration (30s, 5m, 1h, 4d)" },
	{ "deliver-max 0\n", "1: deliver-max: 0 is too small (1 to 256)" },
	{ "deliver-max 257\n", "1: deliver-max: 257 is too large (1 to 256)" },
	{ "relay-domains bad_domain\n",
	    "1: relay-domains: bad_domain is not a domain" },
	{ "relay-domains a.example, .b.example, c.example\n",
	    "1: relay-domains: .b.example is not a domain" },
	{ "relay-domains\n", "1: relay-domains: wrong number of arguments" },
	{ "relay-recipients recipients\n",
	    "1: relay-recipients: recipients is not an absolute path" },
	{ "trusted-networks 10.0.0.1/8\n",
	    "1: trusted-networks: 10.0.0.1/8 is not an address or network "
	    "(host bits must be zero)" },
	{ "trusted-networks 10.0.0.0/8, localhost\n",
	    "1: trusted-networks: localhost is not an address or network "
	    "(host bits must be zero)" },
	{ "users users.txt\n", "1: users: users.txt is not an absolute path" },
	{ "user 0123456789012345678901234567890123456789012345678901234567890"
	    "123\n", "1: user: name too long" },
	{ "chroot var/empty\n", "1: chroot: var/empty is not an absolute path" },
	{ "queue spool\n", "1: queue: spool is not an absolute path" },
	{ "workers 0\n", "1: workers: 0 is too small (1 to 256)" },
	{ "workers 257\n", "1: workers: 257 is too large (1 to 256)" },
	{ "workers four\n", "1: workers: four is invalid (1 to 256)" },
	{ "max-sessions 0\n", "1: max-sessions: 0 is too small (1 to 100000)" },
	{ "max-sessions 100001\n",
	    "1: max-sessions: 100001 is too large (1 to 100000)" },
	{ "max-sessions-per-ip -1\n",
	    "1: max-sessions-per-ip: -1 is too small (0 to 100000)" },
	{ "max-message-size 10Q\n",
	    "1: max-message-size: 10Q is not a size (bytes, or with K, M or G)" },
	{ "max-message-size 0\n",
	    "1: max-message-size: 0 is not a size (bytes, or with K, M or G)" },
	{ "max-message-size M\n",
	    "1: max-message-size: M is not a size (bytes, or with K, M or G)" },
	{ "max-recipients 0\n",
	    "1: max-recipients: 0 is too small (1 to 200)" },
	{ "max-recipients 201\n",
	    "1: max-recipients: 201 is too large (1 to 200)" },
	{ "timeout 0s\n", "1: timeout: 0s is not a duration (30s, 5m, 1h, 4d)" },
	{ "timeout 1w\n", "1: timeout: 1w is not a duration (30s, 5m, 1h, 4d)" },
	{ "queue-lifetime 1.5d\n",
	    "1: queue-lifetime: 1.5d is not a duration (30s, 5m, 1h, 4d)" },
	{ "queue-retry \" 1m\"\n",
	    "1: queue-retry:  1m is not a duration (30s, 5m, 1h, 4d)" },
	{ "x-peer-header maybe\n", "1: x-peer-header: expected yes or no" },
	{ "x-peer-header YES\n", "1: x-peer-header: expected yes or no" },
	{ "smtputf8 on\n", "1: smtputf8: expected yes or no" },
	{ "frobnicate yes\n", "1: unknown keyword frobnicate" },
	{ "Hostname mx.example\n", "1: unknown keyword Hostname" },
	{ "\"hostname\" mx.example\n", "" },
	{ "hostname a.example\nhostname b.example\n",
	    "2: hostname given twice" },
	{ "mode relay\nmode relay\nmode relay\n",
	    "2: mode given twice\n3: mode given twice" },
	{ "workers 0\nworkers 4\n",
	    "1: workers: 0 is too small (1 to 256)\n2: workers given twice" },
	/* Quotes. */
	{ "hostname \"mx.example\n", "1: unterminated quote" },
	{ "hostname \"mx.example\\\"\n", "1: unterminated quote" },
	{ "hostname \"a\"b\n", "1: text after a closing quote" },
	{ "hostname a\"b\"\n", "1: quote inside a word" },
	{ "hostname \"a#b\"\n", "1: hostname: a#b is not a host name" },
	{ "hostname \"a\\\\b\"\n", "1: hostname: a\\b is not a host name" },
	{ "hostname \"a\\\"b\"\n", "1: hostname: a\"b is not a host name" },
	{ "hostname \"a\\nb\"\n", "1: hostname: a\\nb is not a host name" },
	{ "hostname 'a.example'\n", "1: hostname: 'a.example' is not a host "
	    "name" },
	/* Comments and commas. */
	{ "hostname a.example# comment\n", "" },
	{ "hostname \"a.example\"# comment\n", "" },
	{ "hostname # a.example\n", "1: hostname: wrong number of arguments" },
	{ "# hostname a.example\nhostname b.example\n", "" },
	{ "hostname a.example,\n", "" },
	{ "listen on 127.0.0.1 proxy-from 127.0.0.1, 10.0.0.0/8 auth\n", "" },
	{ "listen on ::1 port 2525 proxy-from ::1 tls\n", "" },
	{ "stop-timeout 30s\n", "" },
	{ "hostname a.example,b.example\n",
	    "1: hostname: wrong number of arguments" },
	{ "hostname ,,a.example,,\n", "" },
	{ "hostname a.example\r\n", "" },
	{ "hostname\ta.example\t\n", "" },
};

static void
test_bad_values(void **state)
{
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(bad_conf) / sizeof(bad_conf[0]); i++)
		expect(bad_conf[i].text, bad_conf[i].errs);
}

/* Errors name the right line, and parsing goes on past them. */
static void
test_line_numbers(void **state)
{
	struct conf_file	 cf;
	char			*errs, *exp;
	char			 longline[CONF_LINE_MAX + 40];
	static const char	 nul[] = "hostname a\0b.example\nworkers 0\nfoo\n";
	int			 rc;

	(void)state;
	expect("# header comment\n"
	    "\n"
	    "hostname mx.example.org\n"
	    "workers 0\n"
	    "   # indented comment\n"
	    "frobnicate\n"
	    "\t\n"
	    "hostname again.example\n"
	    "timeout 1w  # trailing comment\n"
	    "max-recipients 5",
	    "4: workers: 0 is too small (1 to 256)\n"
	    "6: unknown keyword frobnicate\n"
	    "8: hostname given twice\n"
	    "9: timeout: 1w is not a duration (30s, 5m, 1h, 4d)");

	/* The last line needs no newline. */
	rc = parse("workers 3\nmax-recipients 5", &cf, &errs);
	assert_int_equal(rc, 0);
	assert_int_equal(cf.conf.max_rcpt, 5);
	free(errs);
	conf_file_free(&cf);

	/* Cross-keyword errors name the line of the keyword. */
	expect("\nmode deliver\n\n\n", "2: mode deliver needs a deliver program");

	/* A line too long is an error; the next line still counts. */
	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "hostname ", 9);
	snprintf(longline + CONF_LINE_MAX + 1, 39, "\nworkers 0\nworkers 1\n");
	rc = parse(longline, &cf, &errs);
	assert_true(asprintf(&exp, "%s:1: line longer than %d characters\n"
	    "%s:2: workers: 0 is too small (1 to 256)\n"
	    "%s:3: workers given twice\n", conf_path, CONF_LINE_MAX,
	    conf_path, conf_path) > 0);
	assert_string_equal(errs, exp);
	assert_int_equal(rc, 3);
	free(exp);
	free(errs);
	conf_file_free(&cf);

	/* CONF_LINE_MAX characters exactly is fine. */
	memset(longline, ' ', sizeof(longline));
	memcpy(longline, "hostname a.example", 18);
	longline[CONF_LINE_MAX] = '\n';
	longline[CONF_LINE_MAX + 1] = '\0';
	rc = parse(longline, &cf, &errs);
	assert_string_equal(errs, "");
	assert_int_equal(rc, 0);
	free(errs);
	conf_file_free(&cf);

	/* A NUL byte is an error of its line, and hides nothing. */
	rc = parse_len(nul, sizeof(nul) - 1, &cf, &errs);
	assert_true(asprintf(&exp, "%s:1: NUL byte in line\n"
	    "%s:2: workers: 0 is too small (1 to 256)\n"
	    "%s:3: unknown keyword foo\n", conf_path, conf_path,
	    conf_path) > 0);
	assert_string_equal(errs, exp);
	assert_int_equal(rc, 3);
	assert_string_not_equal(cf.conf.hostname, "a");
	free(exp);
	free(errs);
	conf_file_free(&cf);
}

static void
test_words(void **state)
{
	struct conf_file	 cf;
	char			*errs, *text;
	size_t			 i, off;
	int			 rc;

	(void)state;
	rc = parse("relay-domains a.example,b.example , c.example,\"d.example\""
	    "\n", &cf, &errs);
	assert_int_equal(rc, 0);
	assert_int_equal(cf.policy.ndomains, 4);
	assert_string_equal(cf.policy.domains[3], "d.example");
	free(errs);
	conf_file_free(&cf);

	rc = parse("trusted-networks 10.0.0.0/8,192.168.0.0/16\n"
	    "trusted-networks ::1\n", &cf, &errs);
	assert_int_equal(rc, 0);
	assert_int_equal(cf.policy.nnets, 3);
	free(errs);
	conf_file_free(&cf);

	/* A deliver command keeps its quotes and escapes for cmd_split. */
	rc = parse("deliver \"/bin/prog \\\"a b\\\" 'c d' \\\\e\"\n", &cf,
	    &errs);
	assert_string_equal(errs, "");
	assert_string_equal(cf.deliver, "/bin/prog \"a b\" 'c d' \\e");
	free(errs);
	conf_file_free(&cf);

	/* CONF_WORDS_MAX words on a line, and one more. */
	text = malloc(CONF_WORDS_MAX * 4 + 32);
	assert_non_null(text);
	off = (size_t)sprintf(text, "relay-domains");
	for (i = 1; i < CONF_WORDS_MAX; i++)
		off += (size_t)sprintf(text + off, " d%zu", i % 10);
	sprintf(text + off, "\n");
	rc = parse(text, &cf, &errs);
	assert_string_equal(errs, "");
	assert_int_equal(cf.policy.ndomains, CONF_WORDS_MAX - 1);
	free(errs);
	conf_file_free(&cf);
	sprintf(text + off, " x\n");
	expect(text, "1: too many words");
	free(text);
}

static void
test_recipients_file(void **state)
{
	struct conf_file	 cf;
	char			*errs, *text, *exp;
	static const char	 rnul[] = "a@b.example\0junk\nc@d.example\n";
	int			 rc;

	(void)state;
	assert_true(asprintf(&text, "relay-recipients %s\n", rcpt_path) > 0);

	/* Missing: an error naming the file. */
	unlink(rcpt_path);
	rc = parse(text, &cf, &errs);
	assert_true(rc >= 1);
	assert_non_null(strstr(errs, rcpt_path));
	assert_non_null(strstr(errs, strerror(ENOENT)));
	free(errs);
	conf_file_free(&cf);

	/* Errors in it, with its own name and line numbers. */
	put(rcpt_path, "# recipients\n"
	    "bob@listed.example\n"
	    "nobody\n"
	    "\n"
	    "a@b.example c@d.example\n"
	    "@Whole.Example.  # a comment\n"
	    "x@y@z\n"
	    "@\n");
	rc = parse(text, &cf, &errs);
	assert_true(asprintf(&exp, "%s:3: nobody is not an address or @domain\n"
	    "%s:5: one address or @domain a line\n"
	    "%s:7: x@y@z is not an address or @domain\n"
	    "%s:8: @ is not an address or @domain\n", rcpt_path, rcpt_path,
	    rcpt_path, rcpt_path) > 0);
	assert_string_equal(errs, exp);
	assert_true(rc >= 1);
	assert_int_equal(cf.policy.nrcpts, 2);
	free(exp);
	free(errs);
	conf_file_free(&cf);

	/* A good one, and an empty one. */
	put(rcpt_path, "bob@listed.example\n\"\\\"x y\\\"@q.example\"");
	rc = parse(text, &cf, &errs);
	assert_string_equal(errs, "");
	assert_int_equal(rc, 0);
	assert_int_equal(cf.policy.nrcpts, 2);
	free(errs);
	conf_file_free(&cf);
	write_file(rcpt_path, "", 0);
	rc = parse(text, &cf, &errs);
	assert_string_equal(errs, "");
	assert_int_equal(rc, 0);
	assert_int_equal(cf.policy.nrcpts, 0);
	free(errs);
	conf_file_free(&cf);

	/* A NUL byte hides no line of it. */
	write_file(rcpt_path, rnul, sizeof(rnul) - 1);
	rc = parse(text, &cf, &errs);
	assert_true(asprintf(&exp, "%s:1: NUL byte in line\n",
	    rcpt_path) > 0);
	assert_string_equal(errs, exp);
	assert_true(rc >= 1);
	assert_int_equal(cf.policy.nrcpts, 1);
	free(exp);
	free(errs);
	conf_file_free(&cf);

	/* Given twice. */
	put(rcpt_path, "bob@listed.example\n");
	free(text);
	assert_true(asprintf(&text, "relay-recipients %s\n"
	    "relay-recipients %s\n", rcpt_path, rcpt_path) > 0);
	rc = parse(text, &cf, &errs);
	assert_true(asprintf(&exp, "%s:2: relay-recipients given twice\n",
	    conf_path) > 0);
	assert_string_equal(errs, exp);
	free(exp);
	free(errs);
	conf_file_free(&cf);
	free(text);
	unlink(rcpt_path);
}

static void
test_missing_file(void **state)
{
	struct conf_file	 cf;
	char			*errs, *exp;
	size_t			 elen;
	FILE			*ef;
	char			 path[160];

	(void)state;
	snprintf(path, sizeof(path), "%s/nonexistent.conf", dir);
	conf_file_init(&cf);
	ef = open_memstream(&errs, &elen);
	assert_non_null(ef);
	assert_int_equal(conf_file_parse(&cf, path, ef), -1);
	fclose(ef);
	assert_true(asprintf(&exp, "%s: %s\n", path, strerror(ENOENT)) > 0);
	assert_string_equal(errs, exp);
	free(exp);
	free(errs);
	conf_file_free(&cf);
}

static void
test_duration(void **state)
{
	static const char	*bad[] = {
		"", "0", "0s", "s", "-1", "+1", " 1", "1 ", "1x", "1ss", "1.5",
		"4294967296", "4294967296s", "71582789m", "1193047h", "49711d",
		"99999999999999999999", "0x10",
	};
	uint32_t		 v;
	size_t			 i;

	(void)state;
	assert_int_equal(parse_duration("1", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(parse_duration("30s", &v), 0);
	assert_int_equal(v, 30);
	assert_int_equal(parse_duration("5m", &v), 0);
	assert_int_equal(v, 300);
	assert_int_equal(parse_duration("1h", &v), 0);
	assert_int_equal(v, 3600);
	assert_int_equal(parse_duration("4d", &v), 0);
	assert_int_equal(v, 4 * 86400);
	assert_int_equal(parse_duration("4294967295", &v), 0);
	assert_int_equal(v, UINT32_MAX);
	assert_int_equal(parse_duration("49710d", &v), 0);
	assert_int_equal(v, 49710u * 86400);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		if (parse_duration(bad[i], &v) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
		assert_int_equal(v, 7);
	}
}

/* Split cmd; compare to the NULL-terminated want, or expect -1. */
static void
split(const char *cmd, int max, const char **want)
{
	char	 buf[256], *argv[16];
	int	 n, i;

	assert_true(max <= 16);
	n = cmd_split(cmd, buf, sizeof(buf), argv, max);
	if (want == NULL) {
		if (n != -1)
			fail_msg("split accepted: %s", cmd);
		return;
	}
	for (i = 0; want[i] != NULL; i++)
		;
	if (n != i)
		fail_msg("%s: %d words, wanted %d", cmd, n, i);
	for (i = 0; i < n; i++)
		assert_string_equal(argv[i], want[i]);
	assert_null(argv[n]);
}

static void
test_cmd_split(void **state)
{
	char		 buf[8], *argv[4];

	(void)state;
	split("/bin/prog a b", 16, (const char *[]){ "/bin/prog", "a", "b",
	    NULL });
	split("  /bin/prog\t a  ", 16, (const char *[]){ "/bin/prog", "a",
	    NULL });
	split("", 16, (const char *[]){ NULL });
	split(" \t ", 16, (const char *[]){ NULL });
	split("'a b' \"c d\"", 16, (const char *[]){ "a b", "c d", NULL });
	split("a'b c'd", 16, (const char *[]){ "ab cd", NULL });
	split("''", 16, (const char *[]){ "", NULL });
	split("\"\" x", 16, (const char *[]){ "", "x", NULL });
	split("a\\ b", 16, (const char *[]){ "a b", NULL });
	split("a\\\\b", 16, (const char *[]){ "a\\b", NULL });
	split("'a\\b'", 16, (const char *[]){ "a\\b", NULL });
	split("'a\\'", 16, (const char *[]){ "a\\", NULL });
	split("\"a\\\"b\"", 16, (const char *[]){ "a\"b", NULL });
	split("\"a\\\\\"", 16, (const char *[]){ "a\\", NULL });
	split("\"it's\"", 16, (const char *[]){ "it's", NULL });
	split("'say \"hi\"'", 16, (const char *[]){ "say \"hi\"", NULL });
	split("a\\", 16, (const char *[]){ "a\\", NULL });
	split("\\'a", 16, (const char *[]){ "'a", NULL });
	/* Nothing is expanded: no shell ever sees it. */
	split("$HOME `id` $(id) ~ * ;|& > < ${X} \\$Y \"$Z\"", 16,
	    (const char *[]){ "$HOME", "`id`", "$(id)", "~", "*", ";|&", ">",
	    "<", "${X}", "$Y", "$Z", NULL });
	split("a\nb", 16, (const char *[]){ "a\nb", NULL });
	/* Unbalanced quotes. */
	split("'a", 16, NULL);
	split("\"a", 16, NULL);
	split("a'b", 16, NULL);
	split("\"a\\\"", 16, NULL);
	split("'a'\"", 16, NULL);
	/* max counts the NULL: max - 1 words. */
	split("a b c", 4, (const char *[]){ "a", "b", "c", NULL });
	split("a b c d", 4, NULL);
	split("a b c ", 4, (const char *[]){ "a", "b", "c", NULL });

	/* The buffer: words and their NULs must fit. */
	assert_int_equal(cmd_split("abc def", buf, 8, argv, 4), 2);
	assert_string_equal(argv[1], "def");
	assert_int_equal(cmd_split("abc defg", buf, 8, argv, 4), -1);
	assert_int_equal(cmd_split("abcdefg", buf, 8, argv, 4), 1);
	assert_int_equal(cmd_split("abcdefgh", buf, 8, argv, 4), -1);
	assert_int_equal(cmd_split("''''''''''''", buf, 8, argv, 4), 1);
	assert_string_equal(argv[0], "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_keywords),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values_good),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_line_numbers),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_recipients_file),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_cmd_split),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
