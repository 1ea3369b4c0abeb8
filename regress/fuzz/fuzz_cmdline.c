/*
 * libFuzzer harness for the command line.  The input, split on NUL
 * bytes, is the argument vector after "smtpd"; each argument lives in
 * its own exact-size allocation, freed after the run, so that anything
 * kept pointing into an old argv is caught.  Each piece is also given
 * to hostport_parse(), parse_size() and cmdline_mode().
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parent/cmdline.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAXARGS	32

static void
check_hostport(const struct hostport *hp)
{
	struct sockaddr_storage	 ss;
	socklen_t		 slen;

	if (strnlen(hp->host, sizeof(hp->host)) == sizeof(hp->host) ||
	    hp->port == 0)
		abort();
	if (hostport_sockaddr(hp, &ss, &slen) == 0) {
		if (!(ss.ss_family == AF_INET &&
		    slen == sizeof(struct sockaddr_in)) &&
		    !(ss.ss_family == AF_INET6 &&
		    slen == sizeof(struct sockaddr_in6)))
			abort();
		if (ntohs(((struct sockaddr_in *)&ss)->sin_port) != hp->port)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmdline	 cl;
	struct hostport	 hp;
	char		*argv[MAXARGS + 2], err[256];
	size_t		 off, len;
	uint64_t	 v;
	int		 argc = 0, i, rc, mode;

	if ((argv[argc++] = strdup("smtpd")) == NULL)
		return 0;
	for (off = 0; off <= size && argc <= MAXARGS; off += len + 1) {
		const uint8_t *nul = memchr(data + off, '\0', size - off);

		len = nul != NULL ? (size_t)(nul - (data + off)) : size - off;
		if ((argv[argc] = malloc(len + 1)) == NULL)
			goto done;
		memcpy(argv[argc], data + off, len);
		argv[argc][len] = '\0';
		argc++;
		if (nul == NULL)
			break;
	}
	argv[argc] = NULL;

	err[0] = '\0';
	rc = cmdline_parse(argc, argv, &cl, err, sizeof(err));
	if (strnlen(err, sizeof(err)) == sizeof(err))
		abort();
	if (rc == 0) {
		if (cl.have_listen)
			check_hostport(&cl.listen);
		if (cl.have_remote)
			check_hostport(&cl.remote);
		if (cl.have_remote && cl.mode == MODE_DELIVER)
			abort();
		if (cl.program[0] != '\0' && cl.mode != MODE_DELIVER)
			abort();
		if (cl.mode < 0 || cl.mode > MODE_DELIVER)
			abort();
		if (strnlen(cl.program, sizeof(cl.program)) ==
		    sizeof(cl.program))
			abort();
	} else if (rc != -1 || err[0] == '\0')
		abort();

	for (i = 1; i < argc; i++) {
		if (hostport_parse(argv[i], &hp, err, sizeof(err)) == 0)
			check_hostport(&hp);
		v = 0;
		if (parse_size(argv[i], &v) == 0 && v == 0)
			abort();
		mode = cmdline_mode(argv[i]);
		if (mode < 0 || mode > MODE_DELIVER)
			abort();
	}
done:
	for (i = 0; i < argc; i++)
		free(argv[i]);
	return 0;
}
