/*
 * The upstream-auth file: "user password" on its first line, in a file
 * that only its owner may read.  The parent reads it (as root) and hands
 * the pair to the relay.  Kept apart from main.c so that the parser can
 * be run on its own (regress/fuzz/fuzz_upstream_auth.c).
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <bsd/string.h>

#include "parent.h"

/*
 * Read path into user and pass; -1 and the reason in err (a sentence
 * that starts with kw, the setting that named the file, and names the
 * file) if it cannot be used.
 */
int
upstream_auth_read(const char *kw, const char *path, char *user,
    size_t userlen, char *pass, size_t passlen, char *err, size_t errlen)
{
	char		 line[600], *sp;
	size_t		 n;
	struct stat	 st;
	FILE		*f;
	int		 rc = -1;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s %s: %s", kw, path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == -1)
		snprintf(err, errlen, "%s %s: %s", kw, path,
		    strerror(errno));
	else if (st.st_mode & (S_IRWXG | S_IRWXO))
		snprintf(err, errlen, "%s %s: readable by others "
		    "(chmod 600 it)", kw, path);
	else if (fgets(line, sizeof(line), f) == NULL)
		snprintf(err, errlen, "%s %s: empty", kw, path);
	else if (strlen(line) == sizeof(line) - 1 &&
	    line[sizeof(line) - 2] != '\n' && fgetc(f) != EOF)
		snprintf(err, errlen, "%s %s: first line too long", kw, path);
	else
		rc = 0;
	fclose(f);
	if (rc == -1) {
		explicit_bzero(line, sizeof(line));
		return -1;
	}
	rc = -1;
	/* A file written on Windows ends its line in CRLF; that CR is no
	 * part of the password. */
	line[strcspn(line, "\n")] = '\0';
	if ((n = strlen(line)) > 0 && line[n - 1] == '\r')
		line[n - 1] = '\0';
	if ((sp = strchr(line, ' ')) == NULL || sp == line || sp[1] == '\0')
		snprintf(err, errlen, "%s %s: expected \"user "
		    "password\"", kw, path);
	else {
		*sp++ = '\0';
		if (strlcpy(user, line, userlen) >= userlen ||
		    strlcpy(pass, sp, passlen) >= passlen)
			snprintf(err, errlen, "%s %s: user or "
			    "password too long", kw, path);
		else
			rc = 0;
	}
	explicit_bzero(line, sizeof(line));
	if (rc == -1) {
		explicit_bzero(user, userlen);
		explicit_bzero(pass, passlen);
	}
	return rc;
}
