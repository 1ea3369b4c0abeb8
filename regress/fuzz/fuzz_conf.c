/*
 * libFuzzer harness for smtpd.conf.  The input is written to a memfd
 * and parsed as "/proc/self/fd/N", both as the configuration file and
 * as a relay-recipients file; it is also split as a deliver command.
 * Every error is one "path:LINE: what" line, their number is what the
 * parser returns, line numbers never go backwards, and what a clean
 * parse yields is within the documented bounds.  Inputs that name the
 * relay-recipients keyword are not parsed as a configuration: that
 * would open whatever file the input names (a FIFO, /dev/stdin); the
 * recipients parser gets every input directly instead.
 *
 * FUZZ_SRCS: parent/parse.c parent/parse_relay.c parent/cmdline.c lib/conf.c
 * FUZZ_SRCS: lib/routes.c
 * FUZZ_SRCS: lib/policy.c lib/rules.c lib/addr.c lib/imsg.c
 */
#include <sys/mman.h>
#include <sys/socket.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parent/parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	 fd = -1;
static char	 path[64];

static void
check_str(const char *s, size_t size)
{
	if (strnlen(s, size) == size)
		abort();
}

/* Each line of errs is "path:N: ..." with N never going back. */
static int
check_errs(const char *errs, size_t len, unsigned int maxline)
{
	const char	*p = errs, *nl;
	size_t		 plen = strlen(path);
	unsigned long	 line, last = 0;
	char		*end;
	int		 n = 0;

	if (len > 0 && errs[len - 1] != '\n')
		abort();
	for (; p < errs + len; p = nl + 1) {
		nl = memchr(p, '\n', errs + len - p);
		if (nl == NULL || strncmp(p, path, plen) != 0 || p[plen] != ':')
			abort();
		line = strtoul(p + plen + 1, &end, 10);
		if (end == p + plen + 1 || *end != ':' || end[1] != ' ' ||
		    line < 1 || line > maxline)
			abort();
		n++;
		/* Checks across keywords come last, at their keyword's line. */
		if (strncmp(end + 2, "mode deliver needs", 18) == 0 ||
		    strncmp(end + 2, "tls needs both", 14) == 0)
			continue;
		if (line < last)
			abort();
		last = line;
	}
	return n;
}

static void
check_conf(const struct conf_file *cf)
{
	const struct smtpd_conf	*c = &cf->conf;
	size_t			 i;

	if (cf->nlisten > CONF_MAX_LISTEN)
		abort();
	check_str(c->hostname, sizeof(c->hostname));
	check_str(c->chroot, sizeof(c->chroot));
	check_str(c->queue, sizeof(c->queue));
	check_str(c->user, sizeof(c->user));
	check_str(c->upstream_host, sizeof(c->upstream_host));
	check_str(c->upstream_ca, sizeof(c->upstream_ca));
	check_str(cf->tls_cert, sizeof(cf->tls_cert));
	check_str(cf->tls_key, sizeof(cf->tls_key));
	check_str(cf->deliver, sizeof(cf->deliver));
	check_str(cf->recipients, sizeof(cf->recipients));
	check_str(cf->users, sizeof(cf->users));
	for (i = 0; i < cf->nlisten; i++) {
		struct sockaddr_storage	 ss;
		socklen_t		 slen;

		check_str(cf->listen[i].hp.host, sizeof(cf->listen[i].hp.host));
		if (cf->listen[i].hp.port == 0 ||
		    hostport_sockaddr(&cf->listen[i].hp, &ss, &slen) != 0 ||
		    (cf->listen[i].flags & ~(uint32_t)(LISTEN_TLS |
		    LISTEN_STARTTLS_REQ | LISTEN_AUTH)) != 0 ||
		    ((cf->listen[i].flags & LISTEN_TLS) &&
		    (cf->listen[i].flags & LISTEN_STARTTLS_REQ)))
			abort();
	}
	if (c->mode < MODE_DEBUG || c->mode > MODE_DELIVER ||
	    c->workers > 256 || c->max_rcpt < 1 || c->max_rcpt > CONF_RCPT_MAX ||
	    c->max_sessions < 1 || c->max_sessions > 100000 ||
	    c->max_per_ip > 100000 || c->max_size == 0 || c->timeout == 0 ||
	    c->queue_lifetime == 0 || c->queue_retry == 0 ||
	    c->deliver_timeout == 0 || c->deliver_max < 1 ||
	    c->deliver_max > 256 || c->upstream_port < 1 ||
	    c->upstream_port > 65535 || c->upstream_tls > UPSTREAM_OPPORTUNISTIC ||
	    c->x_peer > 1 || c->smtputf8 > 1)
		abort();
	if (c->chroot[0] != '/' || c->queue[0] != '/' ||
	    (c->upstream_ca[0] != '\0' && c->upstream_ca[0] != '/') ||
	    (cf->users[0] != '\0' && cf->users[0] != '/') ||
	    (cf->upstream_auth[0] != '\0' && cf->upstream_auth[0] != '/'))
		abort();
	/* A clean parse has both TLS files or neither, and a program. */
	if ((cf->tls_cert[0] == '\0') != (cf->tls_key[0] == '\0'))
		abort();
	if (c->mode == MODE_DELIVER && cf->deliver[0] == '\0')
		abort();
	if (cf->deliver[0] != '\0') {
		char	 buf[CONF_DELIVER_MAX], *argv[CONF_DELIVER_ARGS];

		if (cmd_split(cf->deliver, buf, sizeof(buf), argv,
		    CONF_DELIVER_ARGS) < 1 || argv[0][0] != '/')
			abort();
	}
	for (i = 0; i < cf->policy.ndomains; i++) {
		const char *d = cf->policy.domains[i];

		if (d[0] == '\0' || strlen(d) > ADDR_DOMAIN_MAX ||
		    d[strlen(d) - 1] == '.' || strstr(d, "..") != NULL)
			abort();
	}
}

/* Parse the memfd as a configuration; the errors go to *errs. */
static int
parse_conf(struct conf_file *cf, char **errs, size_t *elen)
{
	FILE	*ef;
	int	 rc;

	conf_file_init(cf);
	if ((ef = open_memstream(errs, elen)) == NULL)
		abort();
	rc = conf_file_parse(cf, path, ef);
	if (fclose(ef) != 0)
		abort();
	return rc;
}

static void
fuzz_split(const uint8_t *data, size_t size)
{
	char	*cmd, *buf, **argv;
	size_t	 buflen;
	int	 max, n, i;

	if (size < 2)
		return;
	buflen = 1 + data[0] % 64;
	max = 1 + data[1] % 16;
	data += 2;
	size -= 2;
	if ((cmd = malloc(size + 1)) == NULL)
		return;
	memcpy(cmd, data, size);
	cmd[size] = '\0';
	/* Exactly this large, so ASan sees one byte too many. */
	buf = malloc(buflen);
	argv = malloc(max * sizeof(*argv));
	if (buf == NULL || argv == NULL)
		abort();
	n = cmd_split(cmd, buf, buflen, argv, max);
	if (n < -1 || n >= max)
		abort();
	if (n >= 0) {
		if (argv[n] != NULL)
			abort();
		for (i = 0; i < n; i++)
			if (argv[i] < buf || argv[i] >= buf + buflen ||
			    memchr(argv[i], '\0', buf + buflen - argv[i]) ==
			    NULL || (i > 0 && argv[i] <= argv[i - 1]))
				abort();
	}
	free(argv);
	free(buf);
	free(cmd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_file	 cf, cf2;
	struct policy		 p;
	char			*errs, *errs2;
	size_t			 elen, elen2, i;
	unsigned int		 lines = 1;
	int			 rc, rc2;

	if (fd == -1) {
		if ((fd = memfd_create("conf", 0)) == -1)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) == -1 || pwrite(fd, data, size, 0) !=
	    (ssize_t)size)
		abort();
	for (i = 0; i < size; i++)
		if (data[i] == '\n')
			lines++;

	/* As a relay-recipients file. */
	{
		FILE *ef = open_memstream(&errs, &elen);

		if (ef == NULL)
			abort();
		policy_init(&p);
		rc = conf_recipients_load(&p, path, ef);
		if (fclose(ef) != 0 || rc < 0 ||
		    check_errs(errs, elen, lines) != rc)
			abort();
		for (i = 0; i < p.nrcpts; i++)
			if (strchr(p.rcpts[i], '@') == NULL ||
			    strlen(p.rcpts[i]) > ADDR_PATH_MAX)
				abort();
		policy_free(&p);
		free(errs);
	}

	/* As the configuration file, twice: the same both times. */
	if (memmem(data, size, "relay-recipients", 16) == NULL) {
		rc = parse_conf(&cf, &errs, &elen);
		if (rc < 0 || check_errs(errs, elen, lines) != rc)
			abort();
		if (rc == 0)
			check_conf(&cf);
		rc2 = parse_conf(&cf2, &errs2, &elen2);
		if (rc2 != rc || elen2 != elen ||
		    memcmp(errs, errs2, elen) != 0 ||
		    memcmp(&cf.conf, &cf2.conf, sizeof(cf.conf)) != 0 ||
		    cf.nlisten != cf2.nlisten ||
		    cf.policy.ndomains != cf2.policy.ndomains ||
		    cf.policy.nnets != cf2.policy.nnets)
			abort();
		free(errs);
		free(errs2);
		conf_file_free(&cf);
		conf_file_free(&cf2);
	}

	fuzz_split(data, size);
	return 0;
}
