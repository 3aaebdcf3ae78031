"""A telefunc file that fails to import, for the CLI error test."""


async def fine() -> int:
    return 1


raise RuntimeError("boom at import")
