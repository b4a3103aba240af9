"""The fleet view: what every router instance learns from the consumers' snapshot topics.

The consumers (`consumers/`) aggregate every router's events into health, quality and cost
snapshots. Each router reads them back (`subscriber.py`), turns the newest records into a
`FleetView` (`view.py`, pure) and routes on that merged with its own live state
(`signals.py`, pure): local state reacts to this instance's own failures at once, the fleet view
covers what the other instances saw. A snapshot topic with no record for `stale_after_s` is
stale; the router then routes on local state alone, and says so in metrics.
"""
