#!/usr/bin/env python3
"""The custom server of Python's smtpd documentation, as a deliver hook.

Python 3.11 and older:

    class CustomSMTPServer(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
            print('Receiving message from:', peer)
            print('Message addressed from:', mailfrom)
            print('Message addressed to  :', rcpttos)
            print('Message length        :', len(data))

smtpd runs this program once per message, as an unprivileged user, with
the message on standard input (as received: CRLF line ends, dot-stuffing
undone) and the envelope in the environment:

    smtpd -d -c deliver 127.0.0.1:1025 /path/to/process_message.py

Exit 0: delivered; exit 75: try again later; anything else: bounce.
"""
import os
import sys


def process_message(peer, mailfrom, rcpttos, data):
    print('Receiving message from:', peer)
    print('Message addressed from:', mailfrom)
    print('Message addressed to  :', rcpttos)
    print('Message length        :', len(data))


def main():
    raw = sys.stdin.buffer.read()
    # Python's smtpd joined the lines with LF and dropped the last one.
    data = raw.replace(b"\r\n", b"\n")
    if data.endswith(b"\n"):
        data = data[:-1]
    host, _, port = os.environ["SMTPD_PEER"].rpartition(":")
    rcpts = os.environ["SMTPD_RCPT_TO"].split(",")
    process_message((host, int(port)), os.environ["SMTPD_MAIL_FROM"],
                    rcpts, data)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
