"""Telefunctions the benchmarks call."""


async def add(a: int, b: int) -> int:
    return a + b
