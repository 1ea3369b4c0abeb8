/*
 * What the files of the queue share: queue.c (the queue's files, the
 * envelope format, load) and queue_pool.c (the pool of free files and
 * the spool files made from it).  Nothing else includes this.
 */
#ifndef SMTPD_QUEUE_INT_H
#define SMTPD_QUEUE_INT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

struct qmsg;

#define ENVFILE_MAX	(1024 * 1024)
#define QUEUE_KEY_LEN	32		/* queue.key: the check's key */

struct queue_dirs {
	int	tmpfd;
	int	qfd;
	int	corruptfd;
	int	datafd;		/* data/: the message files of workers */
};

extern struct queue_dirs	queue_dir;

int	valid_id(const char *id);
int	valid_id_prefix(const char *name);
int	env_unescape(const char *in, char *out, size_t len);
void	quarantine_files(const struct qmsg *m, const char *env);
int	queue_msg_dir(const struct qmsg *m, const char **name);
void	pool_put(const char *name, uint32_t owner);
void	pool_put_after(const char *name, uint32_t owner, uint64_t gen);
void	pool_put_data(const char *name, uint32_t owner, uint64_t gen,
	    int unsynced);
uint64_t queue_gen_next(void);
int	queue_gen_durable(uint64_t gen);
int	queue_body_hash(int fd, uint64_t size, uint64_t *out);
int	queue_check_line(const char *head, size_t headlen, const char *tail,
	    size_t taillen, int inline_env, uint64_t body, char *line,
	    size_t len);
int	queue_check_set_key(const unsigned char *key);
int	queue_check_key_load(int root);
char	*envfile_render(const struct qmsg *m, int inline_env, size_t *lenp);
int	queue_check_hex(const char *s, int n, uint64_t *v);
int	queue_check_env(const char *text, size_t len);
int	queue_check_msg(const struct qmsg *m, char *why, size_t len);
int	queue_inline_write(struct qmsg *m, int fd);
int	queue_inline_free(const struct qmsg *m);
void	queue_inline_cut(struct qmsg *m);
int	queue_inline_any(void);
int	queue_inline_open(const struct qmsg *m, off_t *end);
struct qmsg *queue_inline_load(const char *name, int *found, char *why,
	    size_t whylen);
int	pool_get(uint32_t owner, char *name, size_t len);
int	pool_fit(int fd, off_t len);
void	pool_release(int dirfd, const char *name, uint32_t owner);

#endif
