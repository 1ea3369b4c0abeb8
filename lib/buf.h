/*
 * A growable byte buffer with a hard ceiling, for replies waiting to be
 * written.  Its memory is released when it drains, so an idle session
 * costs nothing here.
 */
#ifndef SMTPD_BUF_H
#define SMTPD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 off;		/* first byte not yet written */
	size_t	 size;
	size_t	 max;
};

void	buf_init(struct buf *, size_t max);
int	buf_add(struct buf *, const void *, size_t);
int	buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vprintf(struct buf *, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
size_t	buf_left(const struct buf *);
void	buf_drain(struct buf *, size_t);
void	buf_free(struct buf *);

#endif
