"""A real SMTP server for the tests: aiosmtpd, saving every message it accepts to a folder.

Usage: python3 sink.py PORT FOLDER. Each message becomes FOLDER/<pid>-<n>.json (written under a
temporary name first, then renamed, so a reader never sees half a message): the envelope
recipients, the headers that matter and the decoded text and HTML parts. Prints "ready" once it
listens.
"""

import asyncio
import email
import email.policy
import json
import itertools
import os
import sys

from aiosmtpd.controller import Controller


class SaveToFolder:
    def __init__(self, folder):
        self.folder = folder
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        saved = {
            "rcpt_to": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "text": text.get_content() if text else "",
            "html": html.get_content() if html else "",
        }
        path = os.path.join(self.folder, f"{os.getpid()}-{n:06d}.json")
        with open(path + ".tmp", "w") as out:
            json.dump(saved, out)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    os.makedirs(folder, exist_ok=True)
    controller = Controller(SaveToFolder(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
