"""Driver run under Pyodide by ``js/pyodide/run_python.mjs``: every core scenario, in order.

Prints one JSON line per scenario: ``{"scenario": name, "result": ...}`` or
``{"scenario": name, "error": traceback}``; one failing scenario does not hide the others.
``imports`` runs first, in the fresh interpreter, so its ``sys.modules`` check is meaningful.
"""

import asyncio
import importlib
import inspect
import json
import sys
import traceback

SCENARIOS = ("imports", "serializer", "mux", "rpc", "channel")


async def main() -> None:
    """Run the scenarios named in argv (default: all); one JSON line each."""
    for name in sys.argv[1:] or SCENARIOS:
        try:
            module = importlib.import_module(f"scenario_{name}")
            result = module.run()
            if inspect.isawaitable(result):
                # This runs on Pyodide's webloop, the loop a Python Worker uses.
                result = await asyncio.wait_for(result, 30)
            print(json.dumps({"scenario": name, "result": result}))
        except BaseException:
            print(json.dumps({"scenario": name, "error": traceback.format_exc()}))
