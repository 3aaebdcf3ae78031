"""Wire-level building blocks shared by the telefunc server and client.

Each module in this package implements one piece of the telefunc@0.2.23 wire protocol
(for example :mod:`telefunc.wire.serializer`, the ``@brillout/json-serializer`` codec).
Everything here is pure Python and standard library only, so it also imports under Pyodide.
"""
