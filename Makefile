# smtpd: a hardened, privilege-separated SMTP daemon.
#
#   make            build build/smtpd
#   make run        install missing packages, build, run the debug server
#   make check      install missing packages, build, run every test
#   make asan       the tests with AddressSanitizer and UBSan
#   make valgrind   the tests under valgrind
#   make fuzz       each libFuzzer harness for a bounded time
#                   (FUZZ_SECONDS=600 for the long run)
#   make install    PREFIX=/usr/local DESTDIR=
#   make uninstall  what install put there, but /etc/smtpd/smtpd.conf
#   make install-sendmail  also /usr/sbin/sendmail and /usr/bin/mailq

PREFIX	?= /usr/local
SBINDIR	?= $(PREFIX)/sbin
MANDIR	?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
# systemd reads units, sysusers.d and tmpfiles.d under /usr/local/lib
# as well as /usr/lib.
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
DESTDIR	?=
BUILD	?= build
PYTHON	?= /usr/bin/python3
CC	?= cc
SAN	?=
FUZZ_SECONDS ?= 20
FUZZ_SMOKE_SECONDS ?= 3

PKGS	 = libbsd libseccomp openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN	 = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
	   -Wmissing-prototypes -Wformat=2
# A flag, if $(CC) takes it without a word of complaint; else nothing.
cc_flag = $(shell $(CC) -Werror $(1) -x c -c -o /dev/null /dev/null \
	   >/dev/null 2>&1 && echo $(1))
# -U first: a distribution's compiler may define _FORTIFY_SOURCE itself.
HARDEN	:= -fstack-protector-strong -fPIE -U_FORTIFY_SOURCE \
	   -D_FORTIFY_SOURCE=2 -fstack-clash-protection \
	   $(call cc_flag,-ftrivial-auto-var-init=zero) \
	   $(call cc_flag,-fzero-call-used-regs=used) \
	   $(call cc_flag,-fcf-protection)
CFLAGS	?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) $(CFLAGS) -I. -Ilib \
	   $(PKG_CFLAGS) $(SAN)
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now $(LDFLAGS) $(SAN)

LIB_SRCS    = $(wildcard lib/*.c)
PARENT_SRCS = $(wildcard parent/*.c)
SMTPD_SRCS  = $(wildcard smtpd/*.c)
RELAY_SRCS  = $(wildcard relay/*.c)
SRCS	    = $(LIB_SRCS) $(PARENT_SRCS) $(SMTPD_SRCS) $(RELAY_SRCS)
OBJS	    = $(SRCS:%.c=$(BUILD)/obj/%.o)
CTL_SRCS    = $(wildcard ctl/*.c)
CTL_OBJS    = $(CTL_SRCS:%.c=$(BUILD)/obj/%.o)
# What the unit tests link: the library and the parsers they drive.
LIB_OBJS    = $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_OBJS   = $(LIB_OBJS) $(BUILD)/obj/parent/cmdline.o \
	      $(BUILD)/obj/smtpd/smtp.o $(BUILD)/obj/smtpd/smtp_auth.o \
	      $(BUILD)/obj/smtpd/smtp_log.o $(BUILD)/obj/smtpd/smtp_params.o \
	      $(BUILD)/obj/relay/debug.o \
	      $(BUILD)/obj/relay/client.o \
	      $(BUILD)/obj/relay/client_body.o $(BUILD)/obj/relay/client_io.o \
	      $(BUILD)/obj/relay/client_auth.o $(BUILD)/obj/relay/client_probe.o \
	      $(BUILD)/obj/relay/reply.o $(BUILD)/obj/relay/queue.o \
	      $(BUILD)/obj/relay/queue_pool.o $(BUILD)/obj/relay/queue_check.o \
	      $(BUILD)/obj/relay/queue_load.o $(BUILD)/obj/relay/queue_inline.o \
	      $(BUILD)/obj/parent/parse.o $(BUILD)/obj/parent/parse_relay.o

UNIT_SRCS   = $(wildcard regress/unit/test_*.c)
UNIT_BINS   = $(UNIT_SRCS:regress/unit/%.c=$(BUILD)/regress/%)

# ca-certificates: the system CA store, which verifying an upstream's
# certificate needs (the default); a minimal Debian 12 lacks it.
BUILD_DEPS  = gcc make pkg-config libbsd-dev libssl-dev libseccomp-dev \
	      libcmocka-dev libcrypt-dev ca-certificates
# Every tool the tests run, as a minimal Debian 12 lacks it (installed
# with --no-install-recommends): swaks needs libnet-ssleay-perl for TLS;
# groff-base and man-db render the manuals as man(1) does.
TEST_DEPS   = python3 python3-pytest swaks libnet-ssleay-perl curl mandoc \
	      groff-base man-db postfix openssl iproute2 procps gdb strace clang \
	      libclang-rt-14-dev systemd haproxy \
	      python3-prometheus-client
VALGRIND_DEPS = valgrind

.PHONY: all deps test-deps run check unit e2e sandbox-tests lint asan \
	valgrind fuzz fuzz-smoke install install-sendmail uninstall unit-check \
	clean user

all: $(BUILD)/smtpd $(BUILD)/smtpctl

$(BUILD)/smtpd: $(OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJS) $(PKG_LIBS) -lcrypt

# smtpctl, and sendmail and mailq by its name: no part of the daemon.
$(BUILD)/smtpctl: $(CTL_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CTL_OBJS) $(shell pkg-config --libs libbsd)

# Each object depends on the headers it includes (-MMD), and a removed
# header breaks no build (-MP).
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/regress/test_%: regress/unit/test_%.c $(TEST_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(TEST_OBJS) \
	    $(ALL_LDFLAGS) $(PKG_LIBS) -lcrypt $(CMOCKA_LIBS)

-include $(OBJS:.o=.d) $(CTL_OBJS:.o=.d) $(UNIT_BINS:=.d)

# Install what a fresh Debian 12 lacks (as root); say what is missing
# otherwise.
deps:
	@sh regress/deps.sh $(BUILD_DEPS)

test-deps: deps
	@sh regress/deps.sh $(TEST_DEPS)

# The three unprivileged users (SPEC section 10: session workers, the
# relay and its queue, the deliver program) and the empty chroot.
SMTPD_USERS = _smtpd _smtpq _smtpdeliver

user:
	@if [ "$$(id -u)" = 0 ]; then \
		for u in $(SMTPD_USERS); do \
			id -u $$u >/dev/null 2>&1 || useradd --system \
			    --user-group --home-dir /var/empty \
			    --no-create-home --shell /usr/sbin/nologin $$u \
			    || exit 1; \
		done; \
		mkdir -p /var/empty && chmod 755 /var/empty; \
	fi

run: deps user
	$(MAKE) all
	$(BUILD)/smtpd -d -c debug 127.0.0.1:1025

check: test-deps user
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) lint
	$(MAKE) unit-check
	$(MAKE) e2e
	$(MAKE) fuzz-smoke

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

e2e: $(BUILD)/smtpd $(BUILD)/smtpctl
	SMTPD_BIN=$(CURDIR)/$(BUILD)/smtpd $(PYTHON) -m pytest -q \
	    -rfEs -p no:cacheprovider regress/e2e regress/sandbox

MANPAGES    = smtpd.8 smtpd.conf.5 smtpctl.8

lint:
	sh regress/man.sh $(MANPAGES)
	sh regress/style.sh $(SRCS) $(CTL_SRCS)

asan: test-deps user
	$(MAKE) BUILD=build/asan CC=clang \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    CFLAGS="-O1 -g" all unit e2e

# valgrind cannot run code under seccomp(2): this build (build/valgrind,
# never installed) leaves the filter out and says so in its log.
valgrind: test-deps user
	@sh regress/deps.sh $(VALGRIND_DEPS)
	$(MAKE) BUILD=build/valgrind CFLAGS="-O1 -g -DSMTPD_VALGRIND_BUILD" \
	    build/valgrind/smtpd $(UNIT_BINS:$(BUILD)/%=build/valgrind/%)
	@set -e; for t in $(UNIT_BINS:$(BUILD)/%=build/valgrind/%); do \
	    echo "== valgrind $$t"; \
	    valgrind -q --error-exitcode=99 --leak-check=full \
	    --errors-for-leak-kinds=definite $$t; done
	SMTPD_VALGRIND=1 SMTPD_BIN=$(CURDIR)/build/valgrind/smtpd \
	    $(PYTHON) -m pytest -q -p no:cacheprovider \
	    regress/e2e/test_classic.py

fuzz: test-deps
	@sh regress/fuzz/run.sh $(FUZZ_SECONDS)

# Every harness for a few seconds on its seed corpus: a found bug's
# reproducer in the corpus fails make check (about a minute and a half).
fuzz-smoke: test-deps
	@sh regress/fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

$(BUILD)/smtpd.service: etc/smtpd.service.in
	@mkdir -p $(dir $@)
	sed 's|@SBINDIR@|$(SBINDIR)|g' etc/smtpd.service.in > $@

# What install puts in place, each file once: uninstall removes exactly
# these.  The sample configuration is not among them: it is installed
# only where none exists, and never removed.
INSTALLED = $(SBINDIR)/smtpd $(SBINDIR)/smtpctl $(MANDIR)/man8/smtpd.8 \
	    $(MANDIR)/man8/smtpctl.8 \
	    $(MANDIR)/man5/smtpd.conf.5 $(SYSTEMDDIR)/smtpd.service \
	    $(SYSUSERSDIR)/smtpd.conf $(TMPFILESDIR)/smtpd.conf

install: all $(BUILD)/smtpd.service
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(SYSTEMDDIR) \
	    $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/smtpd
	install -m 0755 $(BUILD)/smtpd $(DESTDIR)$(SBINDIR)/smtpd
	install -m 0755 $(BUILD)/smtpctl $(DESTDIR)$(SBINDIR)/smtpctl
	install -m 0644 smtpd.8 $(DESTDIR)$(MANDIR)/man8/smtpd.8
	install -m 0644 smtpctl.8 $(DESTDIR)$(MANDIR)/man8/smtpctl.8
	install -m 0644 smtpd.conf.5 $(DESTDIR)$(MANDIR)/man5/smtpd.conf.5
	install -m 0644 $(BUILD)/smtpd.service \
	    $(DESTDIR)$(SYSTEMDDIR)/smtpd.service
	install -m 0644 etc/smtpd.sysusers $(DESTDIR)$(SYSUSERSDIR)/smtpd.conf
	install -m 0644 etc/smtpd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/smtpd.conf
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/smtpd/smtpd.conf ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/smtpd/smtpd.conf"; \
	else \
		install -m 0644 smtpd.conf \
		    $(DESTDIR)$(SYSCONFDIR)/smtpd/smtpd.conf; \
	fi

# sendmail(8) and mailq(1) as links to smtpctl: only when asked, as
# they replace what another MTA may have put there.
install-sendmail: install
	install -d $(DESTDIR)/usr/sbin $(DESTDIR)/usr/bin
	ln -sf $(SBINDIR)/smtpctl $(DESTDIR)/usr/sbin/sendmail
	ln -sf $(SBINDIR)/smtpctl $(DESTDIR)/usr/bin/mailq

uninstall:
	rm -f $(INSTALLED:%=$(DESTDIR)%)
	@for l in $(DESTDIR)/usr/sbin/sendmail $(DESTDIR)/usr/bin/mailq; do \
		[ "$$(readlink $$l)" = $(SBINDIR)/smtpctl ] && rm -f $$l; \
	done; true
	@echo "$(DESTDIR)$(SYSCONFDIR)/smtpd/smtpd.conf is kept"

# The unit as make install writes it must pass systemd's own check.
unit-check: all
	@mkdir -p $(BUILD)/unit-check
	sed 's|@SBINDIR@|$(CURDIR)/$(BUILD)|g' etc/smtpd.service.in \
	    > $(BUILD)/unit-check/smtpd.service
	systemd-analyze verify --man=no $(BUILD)/unit-check/smtpd.service
	@echo "systemd-analyze verify: clean"

clean:
	rm -rf build
