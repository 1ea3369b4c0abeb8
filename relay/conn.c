/*
 * The accepted connections of the control socket and the metrics
 * listener: see conn.h.  Each is bounded three ways, so that a client
 * cannot hold the relay's memory or descriptors: at most list->max at
 * once, a deadline from accept, and an answer that ends it.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "conn.h"
#include "event.h"
#include "log.h"
#include "proc.h"

static void	conn_io(int, int, void *);

struct conn *
conn_find(struct conn_list *l, uint32_t id)
{
	struct conn	*c;

	for (c = l->head; c != NULL; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

void
conn_close(struct conn *c)
{
	struct conn_list	*l = c->list;
	struct conn		**cp;

	for (cp = &l->head; *cp != NULL; cp = &(*cp)->next)
		if (*cp == c) {
			*cp = c->next;
			break;
		}
	l->n--;
	ev_timer_del(&c->timer);
	ev_del(c->fd);
	close(c->fd);
	if (l->free != NULL)
		l->free(c);
	free(c->out);
	free(c);
}

/*
 * The deadline: once the answer is going, the client has had its time
 * and is dropped; before, the owner may still want to say why.
 */
static void
conn_timeout(void *arg)
{
	struct conn	*c = arg;

	if (c->state != CONN_REQUEST || c->list->timeout == NULL) {
		conn_close(c);
		return;
	}
	c->list->timeout(c);
}

/* The answer is buf (malloc'd, len bytes, now ours): write, then end. */
void
conn_answer(struct conn *c, char *buf, size_t len)
{
	free(c->out);
	c->out = buf;
	c->outlen = len;
	c->outoff = 0;
	c->state = CONN_WRITE;
	if (ev_mod(c->fd, EV_WRITE) == -1)
		conn_close(c);
}

/*
 * Written, and a list that lingers: our side ends, and what the client
 * still sends is read and dropped for a while, so that a close with
 * unread bytes does not reset the connection before the client has
 * read the answer.
 */
static void
conn_linger(struct conn *c)
{
	if (shutdown(c->fd, SHUT_WR) == -1 || ev_mod(c->fd, EV_READ) == -1) {
		conn_close(c);
		return;
	}
	c->state = CONN_LINGER;
	ev_timer_add(&c->timer, c->list->linger_ms);
}

static void
conn_write(struct conn *c)
{
	ssize_t	 n;

	while (c->outoff < c->outlen) {
		n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			break;
		c->outoff += (size_t)n;
	}
	/* Not all written: the client is gone, there is nothing to wait for. */
	if (c->outoff < c->outlen || c->list->linger_ms == 0)
		conn_close(c);
	else
		conn_linger(c);
}

/* Lingering: the client's bytes are dropped until it closes too. */
static void
conn_drain(struct conn *c)
{
	char	 discard[4096];
	ssize_t	 n;

	n = read(c->fd, discard, sizeof(discard));
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
		conn_close(c);
}

static void
conn_io(int fd, int events, void *arg)
{
	struct conn	*c = arg;

	(void)fd;
	if (c->state == CONN_WRITE && (events & EV_WRITE))
		conn_write(c);
	else if (c->state == CONN_LINGER && (events & EV_READ))
		conn_drain(c);
	else if (c->state == CONN_REQUEST && (events & EV_READ))
		c->list->read(c);
}

/*
 * The ids wrap within CONN_ID_MASK, never 0, so that they never reach
 * the bit that says which list a reply from the parent is for.
 */
static uint32_t
conn_next_id(struct conn_list *l)
{
	if (++l->next_id > CONN_ID_MASK)
		l->next_id = 1;
	return l->id_bit | l->next_id;
}

static void
conn_accept_one(struct conn_list *l, int fd)
{
	struct conn	*c;

	if (l->n >= l->max) {
		log_warnx("event=%s-busy clients=%u", l->name, l->n);
		close(fd);
		return;
	}
	if ((c = calloc(1, l->size)) == NULL) {
		close(fd);
		return;
	}
	c->list = l;
	c->fd = fd;
	c->state = CONN_REQUEST;
	c->id = conn_next_id(l);
	if (ev_add(fd, l->events, conn_io, c) == -1) {
		free(c);
		close(fd);
		return;
	}
	c->next = l->head;
	l->head = c;
	l->n++;
	ev_timer_set(&c->timer, conn_timeout, c);
	ev_timer_add(&c->timer, l->deadline_ms);
	if (l->open != NULL && l->open(c) == -1)
		conn_close(c);
}

static void
conn_accept(int fd, int events, void *arg)
{
	struct conn_list	*l = arg;
	int			 s;

	(void)events;
	while ((s = accept4(fd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) != -1)
		conn_accept_one(l, s);
	if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
		log_warn("event=%s-accept", l->name);
}

/* A listening socket whose clients go on l. */
void
conn_listen(struct conn_list *l, int fd)
{
	proc_nonblock(fd);
	if (ev_add(fd, EV_READ, conn_accept, l) == -1)
		fatal("ev_add %s", l->name);
}
