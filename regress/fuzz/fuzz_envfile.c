/*
 * libFuzzer harness for the queue's envelope file parser.  The input is
 * the file.  What parses must hold only bounded, terminated fields, and
 * must write out as a file of printable lines that parses back to the
 * same message and writes out again byte for byte the same.
 *
 * FUZZ_SRCS: relay/queue.c relay/queue_pool.c lib/log.c lib/proc.c
 * FUZZ_SRCS: relay/queue_check.c relay/queue_load.c relay/queue_inline.c
 * FUZZ_SRCS: lib/imsg.c lib/event.c
 * FUZZ_SRCS: lib/imsg_rules.c
 * FUZZ_LIBS: -lcrypto
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay/queue.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	 fd1 = -1, fd2 = -1;

/* The envelope file of m, in fd (truncated first); its length. */
static size_t
write_env(int fd, const struct qmsg *m, char **text)
{
	struct stat	 st;

	if (ftruncate(fd, 0) == -1 || lseek(fd, 0, SEEK_SET) == -1 ||
	    envfile_write(fd, m) != 0 || fstat(fd, &st) == -1 ||
	    (*text = malloc(st.st_size > 0 ? st.st_size : 1)) == NULL ||
	    pread(fd, *text, st.st_size, 0) != st.st_size)
		abort();
	return (size_t)st.st_size;
}

static void
check_str(const char *s, size_t size)
{
	if (strnlen(s, size) == size)
		abort();
}

static void
check_equal(const struct qmsg *a, const struct qmsg *b)
{
	uint32_t	 i;

	if (strcmp(a->id, b->id) != 0 || strcmp(a->peer_ip, b->peer_ip) != 0 ||
	    a->peer_port != b->peer_port || strcmp(a->helo, b->helo) != 0 ||
	    strcmp(a->from, b->from) != 0 || a->size != b->size ||
	    a->flags != b->flags || a->is_bounce != b->is_bounce ||
	    a->created != b->created || a->next_try != b->next_try ||
	    a->attempts != b->attempts || a->nrcpt != b->nrcpt)
		abort();
	for (i = 0; i < a->nrcpt; i++)
		if (strcmp(a->rcpts[i].addr, b->rcpts[i].addr) != 0 ||
		    a->rcpts[i].state != b->rcpts[i].state ||
		    a->rcpts[i].code != b->rcpts[i].code ||
		    strcmp(a->rcpts[i].text, b->rcpts[i].text) != 0 ||
		    a->rcpts[i].bounced != b->rcpts[i].bounced)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmsg	 m, b;
	char		*t1, *t2;
	size_t		 l1, l2, i;
	uint32_t	 r;

	if (fd1 == -1 && ((fd1 = memfd_create("env1", 0)) == -1 ||
	    (fd2 = memfd_create("env2", 0)) == -1))
		abort();
	memset(&m, 0, sizeof(m));
	if (envfile_parse((const char *)data, size, &m) != 0) {
		free(m.rcpts);
		return 0;
	}
	check_str(m.id, sizeof(m.id));
	check_str(m.peer_ip, sizeof(m.peer_ip));
	check_str(m.helo, sizeof(m.helo));
	check_str(m.from, sizeof(m.from));
	if (strlen(m.id) != QUEUE_ID_LEN || m.peer_ip[0] == '\0' ||
	    m.nrcpt == 0 || m.nrcpt > ENV_RCPT_MAX || m.peer_port > 65535 ||
	    (m.flags & ~(uint32_t)ENV_F_MASK) != 0 || m.is_bounce > 1 ||
	    m.created < 0 || m.next_try < 0 || m.size > INT64_MAX)
		abort();
	for (r = 0; r < m.nrcpt; r++) {
		check_str(m.rcpts[r].addr, sizeof(m.rcpts[r].addr));
		check_str(m.rcpts[r].text, sizeof(m.rcpts[r].text));
		if ((m.rcpts[r].state != RCPT_PENDING &&
		    m.rcpts[r].state != RCPT_DONE &&
		    m.rcpts[r].state != RCPT_FAILED) ||
		    m.rcpts[r].code < 0 || m.rcpts[r].code > 599 ||
		    m.rcpts[r].bounced < 0 || m.rcpts[r].bounced > 1)
			abort();
	}

	/* Written out: printable lines only, one rcpt- line a recipient. */
	l1 = write_env(fd1, &m, &t1);
	if (l1 == 0 || t1[l1 - 1] != '\n')
		abort();
	for (i = 0, r = 0; i < l1; i++) {
		if (t1[i] == '\n') {
			if (i + 6 < l1 && memcmp(t1 + i + 1, "rcpt-", 5) == 0)
				r++;
			continue;
		}
		if ((unsigned char)t1[i] < ' ' || (unsigned char)t1[i] >= 0x7f)
			abort();
	}
	if (r != m.nrcpt)
		abort();

	/* Parsed again: the same message, and the same file once more. */
	memset(&b, 0, sizeof(b));
	if (envfile_parse(t1, l1, &b) != 0)
		abort();
	check_equal(&m, &b);
	l2 = write_env(fd2, &b, &t2);
	if (l2 != l1 || memcmp(t1, t2, l1) != 0)
		abort();
	free(t1);
	free(t2);
	free(m.rcpts);
	free(b.rcpts);
	return 0;
}
