"""A prompt's audio uploaded through the console's multipart form.

The HTTP guard bounds every body to 16 KiB; this one path may carry up to
``MAX_UPLOAD`` (enough for a few minutes of MP3), and reads no more than that itself
where it is mounted without the guard. The body is parsed by the standard library's
MIME parser: form fields as text, the file part as bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser

MOUNT = "/console"
UPLOAD_ROUTE = "/manage/prompts/upload"
UPLOAD_PATH = MOUNT + UPLOAD_ROUTE
MAX_UPLOAD = 8 << 20


class BadUpload(Exception):
    pass


@dataclass(slots=True)
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str = ""
    data: bytes = b""


def parse(content_type: str, body: bytes) -> Upload:
    """The fields and the (first) file of a ``multipart/form-data`` body."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadUpload("the form must be sent as multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise BadUpload("the form's body is not multipart")
    out = Upload()
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            if not out.filename and data:
                out.filename, out.data = filename, data
        else:
            out.fields[name] = data.decode("utf-8", "replace")
    return out
