/*
 * The parent's side of SMTP AUTH: the users file ("name crypt-hash" a
 * line) is read here, as root, and a worker only ever learns whether a
 * password was right (the queue and the throttling are in authq.c).  Also the server certificate and key, read here
 * and handed to each worker as PEM text over its channel.
 */
#include <sys/stat.h>

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <openssl/crypto.h>

#include "log.h"
#include "parent.h"

#define USERS_MAX	100000
#define PEM_MAX		(1024 * 1024)
#define PEM_CHUNK	(IMSG_MAX_SIZE - 64)

struct user {
	char	*name;
	char	*hash;
};

static struct {
	struct user	*users;
	size_t		 nusers;
	char		*dummy;		/* the setting for an unknown user */
} auth;

/* Without users (none read yet), a hash of some cost all the same. */
#define AUTH_DUMMY_SETTING	"$6$smtpdsmtpdsmtpd$"

static void
users_free(struct user *users, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		free(users[i].name);
		explicit_bzero(users[i].hash, strlen(users[i].hash));
		free(users[i].hash);
	}
	free(users);
}

/*
 * One line of f into line (size octets); 0 at the end of the file, -1
 * if it is longer than line holds (then it is skipped whole: the tail
 * of a long comment must not be read as an entry of its own).
 */
static int
users_getline(FILE *f, char *line, size_t size)
{
	int	 c;

	line[size - 1] = 'x';
	if (fgets(line, size, f) == NULL)
		return 0;
	/* Full without its LF, and more follows: too long. */
	if (line[size - 1] != '\0' || line[size - 2] == '\n' ||
	    (c = getc(f)) == EOF)
		return 1;
	while (c != '\n' && c != EOF)
		c = getc(f);
	return -1;
}

/*
 * Read the users file; -1 (and a line on errs for each problem) if it
 * cannot be used.  The running list is replaced only on success.
 */
int
parent_users_load(const char *path, FILE *errs)
{
	struct user	*users = NULL, *more;
	size_t		 n = 0, lineno = 0;
	char		 line[1024], *name, *hash, *nl;
	struct stat	 st;
	FILE		*f;
	int		 errors = 0, rc;

	if ((f = fopen(path, "re")) == NULL) {
		fprintf(errs, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	/* A directory opens and reads as empty: no user at all. */
	if (fstat(fileno(f), &st) == -1 || !S_ISREG(st.st_mode)) {
		fprintf(errs, "%s: not a regular file\n", path);
		fclose(f);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		fprintf(errs, "%s: readable by others (chmod 600 it)\n", path);
		fclose(f);
		return -1;
	}
	while ((rc = users_getline(f, line, sizeof(line))) != 0) {
		lineno++;
		if (rc == -1) {
			fprintf(errs, "%s:%zu: line too long\n", path, lineno);
			errors++;
			continue;
		}
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		name = line + strspn(line, " \t");
		if (*name == '#' || *name == '\0')
			continue;
		hash = name + strcspn(name, " \t");
		if (*hash != '\0')
			*hash++ = '\0';
		hash += strspn(hash, " \t");
		hash[strcspn(hash, " \t")] = '\0';
		if (*hash != '$' || n == USERS_MAX) {
			fprintf(errs, "%s:%zu: expected \"name crypt-hash\"\n",
			    path, lineno);
			errors++;
			continue;
		}
		if ((more = reallocarray(users, n + 1, sizeof(*users))) ==
		    NULL)
			fatal("users");
		users = more;
		if ((users[n].name = strdup(name)) == NULL ||
		    (users[n].hash = strdup(hash)) == NULL)
			fatal("users");
		n++;
	}
	explicit_bzero(line, sizeof(line));
	/* A read error is no end of the file: the users after it count. */
	if (ferror(f)) {
		fprintf(errs, "%s: %s\n", path, strerror(errno));
		errors++;
	}
	fclose(f);
	if (errors > 0) {
		users_free(users, n);
		return -1;
	}
	users_free(auth.users, auth.nusers);
	auth.users = users;
	auth.nusers = n;
	/*
	 * An unknown user is checked against the first entry's hash, so
	 * that it costs what a known user of the file costs: the same
	 * method, the same parameters (a yescrypt file gets a yescrypt
	 * check, not a cheap SHA-512 one).
	 */
	free(auth.dummy);
	if ((auth.dummy = strdup(n > 0 ? users[0].hash :
	    AUTH_DUMMY_SETTING)) == NULL)
		fatal("users");
	return 0;
}

/*
 * Whether password is user's.  Known or not, the user costs one hash
 * of the file's own kind, and the comparison takes the same time.
 */
int
parent_auth_verify(const char *user, const char *password)
{
	struct crypt_data	*cd;
	const char		*hash = NULL, *out;
	size_t			 i;
	int			 ok = 0;

	for (i = 0; i < auth.nusers; i++)
		if (strcmp(auth.users[i].name, user) == 0)
			hash = auth.users[i].hash;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return 0;
	/* An unknown user costs a hash too: no timing oracle. */
	out = crypt_r(password, hash != NULL ? hash : auth.dummy != NULL ?
	    auth.dummy : AUTH_DUMMY_SETTING, cd);
	if (hash != NULL && out != NULL && out[0] != '*' &&
	    strlen(out) == strlen(hash))
		ok = CRYPTO_memcmp(out, hash, strlen(hash)) == 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/* Read a PEM file into memory (as root); NULL and a message if not. */
char *
parent_read_pem(const char *path, size_t *len, char *err, size_t errlen)
{
	struct stat	 st;
	char		*buf;
	FILE		*f;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == -1 || st.st_size <= 0 ||
	    st.st_size > PEM_MAX) {
		snprintf(err, errlen, "%s: empty or too large", path);
		fclose(f);
		return NULL;
	}
	if ((buf = malloc(st.st_size)) == NULL ||
	    fread(buf, 1, st.st_size, f) != (size_t)st.st_size) {
		snprintf(err, errlen, "%s: read error", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t)st.st_size;
	return buf;
}

/* Send PEM text to a worker in chunks that fit an imsg. */
void
parent_send_pem(struct child *c, uint32_t type, const char *pem, size_t len)
{
	struct imsg_out	 out;
	size_t		 off, n;

	for (off = 0; off < len; off += n) {
		n = len - off > PEM_CHUNK ? PEM_CHUNK : len - off;
		imsg_out_init(&out, type, 0, -1);
		imsg_add_data(&out, pem + off, n);
		parent_child_send(c, &out);
	}
}
