"""The `router-service` command: the router, the consumers, a simulated provider, the embedded stack.

The one place that starts both sides (`up` runs the router and the consumers in one process;
`consume` runs the consumers), so that `router_service` never imports `consumers` (README
"Layout"). `cli.py` parses the command line; `stack.py` is the embedded stack.
"""
