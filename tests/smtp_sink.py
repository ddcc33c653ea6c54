"""A real SMTP server for the tests (aiosmtpd): every message it accepts is decoded with
Python's email package and written as one JSON file to OUTDIR, so tests can read the
subject, recipients, Message-ID and both MIME parts. A recipient whose address contains
"+reject" is refused the way real servers do it, naming the address in the reply (550).
With DELAY (seconds, e.g. 0.4) every message is answered only that long after its data
arrived, as a slow or overloaded mail server does.
Usage: smtp_sink.py PORT OUTDIR [DELAY]"""
import asyncio
import json
import os
import sys
import uuid
from email import policy
from email.parser import BytesParser

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, outdir, delay):
        self.outdir = outdir
        self.delay = delay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "+reject" in address:
            return f"550 5.1.1 <{address}>: Recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        msg = BytesParser(policy=policy.default).parsebytes(envelope.content)
        parts = {}
        for part in msg.walk():
            ctype = part.get_content_type()
            if ctype in ("text/plain", "text/html") and not part.is_multipart():
                parts[ctype] = part.get_content()
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "content_type": msg.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        }
        name = os.path.join(self.outdir, uuid.uuid4().hex + ".json")
        with open(name + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(name + ".tmp", name)
        return "250 OK"


async def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    os.makedirs(outdir, exist_ok=True)
    controller = Controller(Sink(outdir, delay), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
