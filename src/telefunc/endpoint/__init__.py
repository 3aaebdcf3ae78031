"""The asyncio layer both sides share: above :mod:`telefunc.wire`, below the server and client.

:mod:`telefunc.endpoint.channel` turns a channel's sans-I/O core into futures and listener
calls; :mod:`telefunc.endpoint.client_errors` is the rate-limited log for what a peer gets
wrong. Nothing here imports :mod:`telefunc.server` or :mod:`telefunc.client`.
"""
