"""The server side of telefunc: telefunction registry, RPC handling, shield, context."""
