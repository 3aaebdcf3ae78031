"""Telefunctions receiving uploaded files (the `bin` request kind)."""

from __future__ import annotations

from telefunc import UploadedFile


async def describe_upload(
    label: str, first: UploadedFile, second: UploadedFile
) -> dict[str, object]:
    # Read the second file first: the first one's bytes must be skipped, not lost or mixed in.
    second_bytes = await second.read()
    return {
        "label": label,
        "first": {"name": first.name, "type": first.type, "size": first.size},
        "second": {"name": second.name, "size": second.size, "text": second_bytes.decode()},
    }


async def upload_text(file: UploadedFile) -> dict[str, object]:
    return {"name": file.name, "type": file.type, "size": file.size, "text": await file.text()}
