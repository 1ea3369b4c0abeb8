/*
 * sd_notify without libsystemd: the datagram reaches a socket named by
 * a path or an abstract name, the variable leaves the environment, and
 * a bad or absent variable sends nothing.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <bsd/string.h>

#include "notify.h"

/* A datagram socket bound at name (a path, or '@' for abstract). */
static int
listener(const char *name)
{
	struct sockaddr_un	 sun;
	socklen_t		 len;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, name, sizeof(sun.sun_path));
	len = offsetof(struct sockaddr_un, sun_path) + strlen(name);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	else
		unlink(name);
	assert_true((fd = socket(AF_UNIX, SOCK_DGRAM, 0)) != -1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, len), 0);
	return fd;
}

static void
roundtrip(const char *name)
{
	char	 buf[128];
	ssize_t	 n;
	int	 fd;

	fd = listener(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(notify_init(), 1);
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_true(notify_active());
	notify_send("READY=1\nSTATUS=%s", "serving");
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_int_equal(n, 22);
	buf[n] = '\0';
	assert_string_equal(buf, "READY=1\nSTATUS=serving");
	close(fd);
}

static void
test_path_socket(void **state)
{
	char	 path[64];

	(void)state;
	snprintf(path, sizeof(path), "/tmp/smtpd-notify-test.%d",
	    (int)getpid());
	roundtrip(path);
	unlink(path);
}

static void
test_abstract_socket(void **state)
{
	char	 name[64];

	(void)state;
	snprintf(name, sizeof(name), "@smtpd-notify-test.%d", (int)getpid());
	roundtrip(name);
}

static void
test_bad_variable(void **state)
{
	char	 longname[200];

	(void)state;
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(notify_init(), -1);
	assert_null(getenv("NOTIFY_SOCKET"));
	memset(longname, 'x', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(notify_init(), -1);
	unsetenv("NOTIFY_SOCKET");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_variable),
		cmocka_unit_test(test_path_socket),
		cmocka_unit_test(test_abstract_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
