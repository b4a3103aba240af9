"""Routing policy: pure decisions about which deployments serve a request, in what order, and why.

Entry points: `router.Router.route` (named policies, round-robin tickets and random draws) or the
pure `planner.plan`. No I/O, clocks or randomness of its own; standard library only.
"""
