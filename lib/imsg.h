/*
 * imsg: length-prefixed messages on a SOCK_STREAM socketpair, with at
 * most one descriptor per message passed by SCM_RIGHTS.  Every message
 * carries a fixed header; payloads are built and read with typed helpers
 * that fail on short or over-long data, never silently.
 */
#ifndef SMTPD_IMSG_H
#define SMTPD_IMSG_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#define IMSG_MAX_SIZE	65536		/* header and payload */
#define IMSG_MAX_FDS	64		/* descriptors held unclaimed */
#define IMSG_F_FD	0x1

struct imsg_hdr {
	uint32_t	type;
	uint32_t	len;		/* header included */
	uint32_t	peerid;
	uint32_t	pid;
	uint32_t	flags;
};

struct imsg {
	struct imsg_hdr	 hdr;
	int		 fd;		/* -1 when none was attached */
	uint8_t		*data;
	size_t		 datalen;
	size_t		 rpos;		/* read position of the get helpers */
};

struct imsg_wmsg {
	struct imsg_wmsg	*next;
	int			 fd;
	size_t			 len;
	size_t			 off;
	uint8_t			*buf;		/* the imsg_out's, handed over */
};

struct imsgbuf {
	int			 fd;
	pid_t			 pid;
	uint8_t			 rbuf[2 * IMSG_MAX_SIZE];
	size_t			 rlen;
	int			 rfds[IMSG_MAX_FDS];
	size_t			 nrfds;
	struct imsg_wmsg	*whead;
	struct imsg_wmsg	*wtail;
	size_t			 wqueued;	/* messages waiting */
};

/*
 * A message being composed.  Its bytes (header included) are on the
 * heap and grow as needed up to IMSG_MAX_SIZE; imsgbuf_queue() takes
 * them, or frees them if it fails.  One never queued is freed with
 * imsg_out_free().
 */
struct imsg_out {
	struct imsg_hdr	 hdr;
	int		 fd;
	size_t		 len;		/* header included */
	size_t		 cap;
	int		 overflow;	/* too long, or out of memory */
	uint8_t		*buf;
};

void	imsgbuf_init(struct imsgbuf *, int fd);
void	imsgbuf_clear(struct imsgbuf *);
ssize_t	imsgbuf_read(struct imsgbuf *);
int	imsgbuf_write(struct imsgbuf *);
int	imsgbuf_pending(const struct imsgbuf *);
ssize_t	imsgbuf_get(struct imsgbuf *, struct imsg *);
void	imsg_free(struct imsg *);

void	imsg_out_init(struct imsg_out *, uint32_t type, uint32_t peerid,
	    int fd);
void	imsg_out_free(struct imsg_out *);
int	imsg_add_data(struct imsg_out *, const void *, size_t);
int	imsg_add_u32(struct imsg_out *, uint32_t);
int	imsg_add_u64(struct imsg_out *, uint64_t);
int	imsg_add_str(struct imsg_out *, const char *);
int	imsg_add_sa(struct imsg_out *, const struct sockaddr *, socklen_t);
int	imsgbuf_queue(struct imsgbuf *, struct imsg_out *);
int	imsg_compose(struct imsgbuf *, uint32_t type, uint32_t peerid, int fd,
	    const void *, size_t);

int	imsg_get_data(struct imsg *, void *, size_t);
int	imsg_get_u32(struct imsg *, uint32_t *);
int	imsg_get_u64(struct imsg *, uint64_t *);
int	imsg_get_str(struct imsg *, char *, size_t);
int	imsg_get_sa(struct imsg *, struct sockaddr_storage *, socklen_t *);
int	imsg_get_end(const struct imsg *);

#endif
