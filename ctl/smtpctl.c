/*
 * smtpctl: one command to the daemon, its answer on standard output;
 * exit 0, or 1 with one line on standard error (SPEC section 12).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "smtpctl.h"

/* The control-socket line of the configuration file, if it has one. */
static const char *
conf_socket(void)
{
	static char	 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char		 line[4096], *p, *end;
	FILE		*f;
	int		 found = 0;

	if ((f = fopen(CTL_CONFFILE, "r")) == NULL)
		return NULL;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		p = line + strspn(line, " \t");
		if (strncmp(p, "control-socket", 14) != 0 ||
		    (p[14] != ' ' && p[14] != '\t'))
			continue;
		p += 14 + strspn(p + 14, " \t");
		if (*p == '"' && (end = strchr(++p, '"')) != NULL)
			*end = '\0';
		else
			p[strcspn(p, " \t\r\n#")] = '\0';
		found = *p != '\0' && strlcpy(path, p, sizeof(path)) <
		    sizeof(path);
	}
	fclose(f);
	return found ? path : NULL;
}

/* -s PATH, $SMTPD_CONTROL_SOCKET, control-socket, /run/smtpd.sock. */
const char *
ctl_socket_path(const char *opt)
{
	const char	*p;

	if (opt != NULL)
		return opt;
	if ((p = getenv("SMTPD_CONTROL_SOCKET")) != NULL && *p != '\0')
		return p;
	if ((p = conf_socket()) != NULL)
		return p;
	return CTL_DEFAULT_SOCKET;
}

/* The answer's text, made here (the daemon could not be asked). */
static void __attribute__((format(printf, 2, 3)))
ctl_text(struct ctl_answer *a, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (vasprintf(&a->text, fmt, ap) == -1)
		a->text = NULL;
	va_end(ap);
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t	 w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
ctl_connect(const char *path, struct ctl_answer *a)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		a->status = CTL_ERROR;
		ctl_text(a, "%s: path too long", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		a->status = CTL_DOWN;
		ctl_text(a, "smtpd is not running (%s: %s)", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

/* Split what came back into its status line and the rest. */
static void
ctl_parse(struct ctl_answer *a)
{
	static const struct { const char *word; enum ctl_status st; } w[] = {
		{ "ok", CTL_OK }, { "error", CTL_ERROR },
		{ "denied", CTL_DENIED }, { "tempfail", CTL_TEMPFAIL },
	};
	char	*nl, *sp;
	size_t	 i;

	a->status = CTL_ERROR;
	if (a->buf == NULL || (nl = memchr(a->buf, '\n', a->bodylen)) ==
	    NULL) {
		a->text = strdup("no answer from smtpd");
		return;
	}
	*nl = '\0';
	a->body = nl + 1;
	a->bodylen -= (size_t)(nl + 1 - a->buf);
	if ((sp = strchr(a->buf, ' ')) != NULL)
		*sp++ = '\0';
	a->text = strdup(sp != NULL ? sp : "");
	for (i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (strcmp(a->buf, w[i].word) == 0)
			a->status = w[i].st;
}

/*
 * Send the request's lines (header, without its ending empty line) and
 * datalen bytes of data; read the answer to the end.
 */
int
ctl_request(const char *path, const char *header, const char *data,
    size_t datalen, struct ctl_answer *a)
{
	char	 buf[65536];
	FILE	*f;
	ssize_t	 n;
	int	 fd;

	memset(a, 0, sizeof(*a));
	signal(SIGPIPE, SIG_IGN);
	if ((fd = ctl_connect(path, a)) == -1)
		return -1;
	if (write_all(fd, header, strlen(header)) == -1 ||
	    write_all(fd, "\n\n", 2) == -1 ||
	    (datalen > 0 && write_all(fd, data, datalen) == -1)) {
		/* The daemon may have answered before it read everything. */
		if (errno != EPIPE && errno != ECONNRESET) {
			a->status = CTL_TEMPFAIL;
			ctl_text(a, "write to %s: %s", path,
			    strerror(errno));
			close(fd);
			return -1;
		}
	}
	if ((f = open_memstream(&a->buf, &a->bodylen)) == NULL)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, f);
	fclose(f);
	close(fd);
	ctl_parse(a);
	return a->status == CTL_OK ? 0 : -1;
}

void
ctl_answer_free(struct ctl_answer *a)
{
	free(a->buf);
	free(a->text);
	memset(a, 0, sizeof(*a));
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: smtpctl [-s socket] command [argument ...]\n"
	    "commands: show queue [--json] | show message ID | "
	    "show stats [--json] | show metrics |\n"
	    "  flush [ID ... | all] | hold ID ... | all | release ID ... | "
	    "all |\n  remove ID ... | all | bounce ID ... | "
	    "pause delivery | resume delivery |\n"
	    "  reload | log verbose | brief\n");
	exit(1);
}

/* The command line as one request line: words without blanks. */
static int
ctl_command_line(int argc, char **argv, char *line, size_t len)
{
	int	 i;
	char	*p;

	line[0] = '\0';
	for (i = 0; i < argc; i++) {
		for (p = argv[i]; *p != '\0'; p++)
			if (isspace((unsigned char)*p) ||
			    iscntrl((unsigned char)*p))
				return -1;
		if (argv[i][0] == '\0' || (i > 0 && strlcat(line, " ", len) >=
		    len) || strlcat(line, argv[i], len) >= len)
			return -1;
	}
	return 0;
}

static int
smtpctl_main(int argc, char **argv, const char *sockopt)
{
	struct ctl_answer	 a;
	char			 line[8192];

	if (argc == 0)
		usage();
	if (ctl_command_line(argc, argv, line, sizeof(line)) == -1) {
		fprintf(stderr, "smtpctl: bad argument\n");
		return 1;
	}
	if (ctl_request(ctl_socket_path(sockopt), line, NULL, 0, &a) == -1) {
		fprintf(stderr, "smtpctl: %s\n", a.text != NULL ? a.text :
		    strerror(errno));
		ctl_answer_free(&a);
		return 1;
	}
	fwrite(a.body, 1, a.bodylen, stdout);
	ctl_answer_free(&a);
	return fflush(stdout) == 0 ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	const char	*name = basename(argv[0]), *sockopt = NULL;
	char		*q[] = { "show", "queue", NULL };
	int		 ch;

	if (strcmp(name, "sendmail") == 0)
		return sendmail_main(argc, argv, ctl_socket_path(NULL));
	if (strcmp(name, "mailq") == 0)
		return smtpctl_main(2, q, NULL);
	while ((ch = getopt(argc, argv, "+hs:")) != -1) {
		switch (ch) {
		case 's':
			sockopt = optarg;
			break;
		default:
			usage();
		}
	}
	return smtpctl_main(argc - optind, argv + optind, sockopt);
}
