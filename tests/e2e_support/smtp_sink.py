"""A test SMTP server (aiosmtpd): writes a JSON summary of each message and recipient to a
directory, so a test can read them back. Usage: smtp_sink.py PORT DIR"""
import email
import email.policy
import json
import os
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        types = [p.get_content_type() for p in msg.walk()]
        for rcpt in envelope.rcpt_tos:
            self.n += 1
            doc = {
                "to": rcpt,
                "subject": str(msg["subject"]),
                "message_id": str(msg["message-id"]),
                "types": types,
                "text": msg.get_body(("plain",)).get_content() if msg.get_body(("plain",)) else "",
            }
            path = os.path.join(self.out, "%05d.json" % self.n)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(doc, f, ensure_ascii=False)
            os.rename(path + ".tmp", path)
        return "250 OK"


if __name__ == "__main__":
    port, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    c = Controller(Sink(out), hostname="127.0.0.1", port=port)
    c.start()
    print("ready", flush=True)
    threading.Event().wait()
